//! Pure data types of OCI images: digests, references, media types, platforms and
//! config edits. Nothing here does I/O beyond hashing what callers stream through it.

// Libraries report through their progress traits and errors; only the CLI prints.
#![deny(clippy::print_stdout, clippy::print_stderr)]
#![warn(missing_docs)]

pub mod change;
pub mod digest;
pub mod error;
pub mod media;
pub mod platform;
pub mod reference;
pub mod types;

pub use digest::{Digest, HashingReader, HashingWriter};
pub use error::{OciError, Result};
pub use platform::Platform;
pub use reference::Reference;
pub use types::{ContainerConfig, Descriptor, History, ImageConfig, Index, Manifest, RootFs};
