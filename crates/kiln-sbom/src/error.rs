//! Errors of the SBOM crate.

use std::path::PathBuf;

/// Errors reading an image's environment; each names the path or layer it is about.
#[derive(Debug, thiserror::Error)]
pub enum SbomError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("layer {layer}: {source}")]
    Layer {
        layer: String,
        #[source]
        source: std::io::Error,
    },
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
