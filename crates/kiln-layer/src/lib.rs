//! Layers as tar streams: deterministic writing, safe extraction, flattening, and gzip/zstd.
//!
//! The layer format written here ([`write_dir`], [`normalize`], [`flatten`]):
//! - paths relative to the root, no leading `./` or `/`, directories with a trailing `/`;
//! - ustar headers holding mode (permission bits + setuid/setgid/sticky), numeric uid/gid, whole-second
//!   mtime, device numbers; no user/group names, no atime/ctime;
//! - a PAX `x` header only where needed: paths or link targets over 100 bytes, sizes and ids too big for
//!   octal fields, and xattrs as `SCHILY.xattr.NAME` records;
//! - ends with two zero blocks.
//!
//! This crate knows nothing of images; it sees tar streams and directories.

// Libraries report through their progress traits and errors; only the CLI prints.
#![deny(clippy::print_stdout, clippy::print_stderr)]
#![warn(missing_docs)]

pub mod error;
pub mod pool;

mod compress;
mod entries;
mod extract;
mod flatten;
mod guard;
mod tarfmt;
mod write;

pub use compress::{decompress, Compression, Compressor, GZIP_LEVEL, ZSTD_LEVEL};
pub use entries::{EntryMeta, EntryWriter};
pub use error::{LayerError, Result};
pub use extract::{
    extract, extract_mapped, overlay_supported, ExtractOptions, ExtractStats, PathMap, PathRole,
    Whiteouts,
};
pub use flatten::flatten;
pub use guard::{TarGuard, EXTENSION_CAP};
pub use write::{normalize, write_dir, WriteOptions};
