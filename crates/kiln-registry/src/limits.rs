//! Caps on what kiln reads from a registry. Every body is bounded: a blob by the size its
//! descriptor declares (one byte more is read to detect a registry that sends more), and
//! the documents kiln holds in memory by the caps below. `kiln load` applies the same
//! caps to the documents of an archive (`kiln_archive::load`).

/// Largest manifest or index accepted (the distribution spec's suggested limit, and
/// what the distribution registry itself accepts).
pub const MAX_MANIFEST: u64 = 4 << 20;
/// Largest image config accepted. Real configs are a few KiB; the history of a long
/// build or many labels stay far below this.
pub const MAX_CONFIG: u64 = 16 << 20;
/// Largest answer of a token service (a JSON object holding a token or two).
pub const MAX_TOKEN: u64 = 1 << 20;
/// Largest error body read for its message.
pub const MAX_ERROR_BODY: u64 = 64 << 10;

/// `n` bytes in words: `4 MiB`, `10240 bytes`.
pub fn human(n: u64) -> String {
    if n >= 1 << 20 && n.is_multiple_of(1 << 20) {
        format!("{} MiB", n >> 20)
    } else if n >= 1 << 10 && n.is_multiple_of(1 << 10) {
        format!("{} KiB", n >> 10)
    } else {
        format!("{n} bytes")
    }
}
