//! Progress events. Libraries never print; the CLI implements this trait with bars on a
//! terminal, plain lines in CI, or JSON events.

/// Receives progress of long operations. `id` identifies one task (a blob, a layer).
pub trait Progress: Sync {
    /// A task starts; `total` is its size in bytes when known.
    fn start(&self, _id: &str, _label: &str, _total: Option<u64>) {}
    /// `n` more bytes of the task are done.
    fn advance(&self, _id: &str, _n: u64) {}
    /// The task ended, with a short status such as `done` or `exists`.
    fn finish(&self, _id: &str, _status: &str) {}
}

/// Progress that goes nowhere.
pub struct NoProgress;
impl Progress for NoProgress {}
