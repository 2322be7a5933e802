//! The Debian archive for `kiln base debian`: signed indexes (InRelease verified against
//! the archive keys, then Packages, then every .deb by SHA256), a deterministic dependency
//! resolver, .deb unpacking onto a merged-/usr tree and the dpkg database, written without
//! running package scripts except where a package truly needs them.

// Libraries report through their progress traits and errors; only the CLI prints.
#![deny(clippy::print_stdout, clippy::print_stderr)]
#![warn(missing_docs)]

pub mod archive;
pub mod cacerts;
pub mod control;
pub mod deb;
pub mod dpkg;
pub mod error;
pub mod fetch;
pub mod image;
pub mod index;
pub mod lock;
pub mod native;
pub mod resolve;
pub mod unpack;
pub mod verify;
pub mod version;

pub use error::{DebianError, Result};
