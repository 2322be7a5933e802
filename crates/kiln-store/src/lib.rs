//! The local image store: a standard OCI image layout (`oci-layout`, `index.json`,
//! `blobs/sha256/...`) that any OCI tool reads, plus kiln's own directories beside it
//! (`history/`, `snapshots/`, `tmp/`, `locks/`).
//!
//! Rules: a blob enters `blobs/` only after its bytes were hashed and matched, fsynced and
//! renamed into place; index.json is rewritten atomically under an exclusive lock; blobs
//! being added are protected from `prune` by a shared GC lock. A kiln killed at any instant
//! leaves a store that [`Store::check`] passes.

// Libraries report through their progress traits and errors; only the CLI prints.
#![deny(clippy::print_stdout, clippy::print_stderr)]
#![warn(missing_docs)]

pub mod check;
pub mod compose;
pub mod diff;
pub mod error;
pub mod history;
pub mod images;
pub mod layout;
pub mod lease;
pub mod lock;
pub mod progress;
pub mod prune;
pub mod referrers;
pub mod snapshot;
mod store;

pub use error::{Result, StoreError};
pub use images::{ImageInfo, Resolved};
pub use progress::{NoProgress, Progress};
pub use prune::{PruneOptions, PruneReport};
pub use store::{BlobWriter, Store};
