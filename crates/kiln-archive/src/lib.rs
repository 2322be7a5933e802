//! Image archives: `kiln load` and `kiln save`.
//!
//! Reads Docker's `docker save` archives (the 20.10 layout with `manifest.json` and
//! `<id>/layer.tar`, and the 25+ layout that is an OCI layout plus `manifest.json`), OCI
//! archives (`podman save --format oci-archive`) and OCI layout directories, whole-archive
//! gzip or zstd included. Writes one deterministic tar that Docker, Podman and OCI tools
//! all load: an OCI layout plus Docker's `manifest.json`.

// Libraries report through their progress traits and errors; only the CLI prints.
#![deny(clippy::print_stdout, clippy::print_stderr)]
#![warn(missing_docs)]

pub mod error;
mod load;
mod save;
pub mod transport;

pub use error::{ArchiveError, Result};
pub use load::{load_dir, load_reader, LoadedImage};
pub use save::{save, SaveFormat, SaveImage};
