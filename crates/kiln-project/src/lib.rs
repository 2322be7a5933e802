//! kiln projects: an ML application declared once in `kiln.toml` and built into a
//! layered, reproducible OCI image without a container for the Python part.
//!
//! - [`manifest`]: kiln.toml, parsed strictly (errors name file:line:column);
//! - [`lockfile`]: kiln.lock, every input pinned (Debian lock or base digest, each Python
//!   distribution's wheel URL and sha256, each weights file's sha256);
//! - [`uv`]: finding or installing the pinned uv, resolving and installing wheels with it;
//! - [`build`](mod@build): the layers, lowest first by how rarely they change: weights, OS, an env
//!   layer (user, venv skeleton), Python (large distributions alone), code; then config;
//! - [`debian`]: the Debian base from the archive (shared with `kiln base debian`);
//! - [`init`]: `kiln init` detection and the kiln.toml it writes.
//!
//! Libraries never print: progress goes through [`Progress`].

// Libraries report through their progress traits and errors; only the CLI prints.
#![deny(clippy::print_stdout, clippy::print_stderr)]
#![warn(missing_docs)]

pub mod build;
pub mod debian;
mod fetch;
pub mod image;
pub mod init;
pub mod lockfile;
pub mod manifest;
pub mod pylock;
pub mod uv;

pub use build::{build, BuildOutcome, BuildRequest};
pub use manifest::Project;

/// An error with an optional hint (the CLI prints it as `hint: ...`).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    message: String,
    hint: Option<String>,
}

impl Error {
    /// An error with `message` (what failed, naming the file or thing it concerns) and no
    /// hint.
    pub fn new(message: impl Into<String>) -> Self {
        Error {
            message: message.into(),
            hint: None,
        }
    }

    /// An error with `message` and a `hint`: what the user can do about it, which the CLI
    /// prints on its own line after the message.
    pub fn with_hint(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Error {
            message: message.into(),
            hint: Some(hint.into()),
        }
    }

    /// What the user can do about it, if kiln knows.
    pub fn hint(&self) -> Option<String> {
        self.hint.clone()
    }
}

impl From<kiln_store::StoreError> for Error {
    fn from(e: kiln_store::StoreError) -> Self {
        Error::new(e.to_string())
    }
}

/// The result of kiln-project's fallible functions: [`Error`] unless another error type is
/// named.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Progress of a project build: notes, and the output of the container steps it runs.
pub trait Progress: kiln_debian::image::Progress + kiln_build::exec::BuildProgress + Sync {}

impl<T: kiln_debian::image::Progress + kiln_build::exec::BuildProgress + Sync> Progress for T {}
