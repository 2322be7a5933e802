//! Errors of the SBOM crate.

use std::path::PathBuf;

/// Errors reading an image's environment; each names the path or layer it is about.
#[derive(Debug, thiserror::Error)]
pub enum SbomError {
    /// Reading a file or directory on the host failed: in an unpacked snapshot (or the
    /// snapshot asked for is missing), or the build context, Dockerfile or lock file
    /// hashed for provenance.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory on the host that could not be read.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A layer blob could not be opened, decompressed or read as a tar stream.
    #[error("layer {layer}: {source}")]
    Layer {
        /// The layer's name in messages: its blob digest.
        layer: String,
        /// The underlying I/O or decompression error.
        #[source]
        source: std::io::Error,
    },
    /// The store failed, e.g. holding the image's blobs and snapshots against prune.
    #[error(transparent)]
    Store(#[from] kiln_store::StoreError),
}

impl SbomError {
    /// Wraps an io error with the path it happened on.
    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> SbomError {
        let path = path.into();
        move |source| SbomError::Io { path, source }
    }
}

/// Result of this crate.
pub type Result<T> = std::result::Result<T, SbomError>;
