//! Errors of the store.

use std::path::PathBuf;

/// Store errors; each names the path, digest or reference it is about.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("blob {digest} is not in the store")]
    BlobMissing { digest: String },
    #[error("blob {expected} has the wrong content: its bytes hash to {actual}")]
    DigestMismatch { expected: String, actual: String },
    #[error("blob {digest} is {actual} bytes, but its descriptor says {expected}")]
    SizeMismatch {
        digest: String,
        expected: u64,
        actual: u64,
    },
    #[error("layer {digest}: {reason}")]
    Layer { digest: String, reason: String },
    #[error("{what} is not valid JSON: {source}")]
    Json {
        what: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("no such image: {reference}")]
    ImageNotFound { reference: String },
    #[error("`{prefix}` matches more than one image; give more characters or a name")]
    Ambiguous { prefix: String },
    #[error("unknown media type `{media_type}` for {digest}")]
    UnknownMediaType { media_type: String, digest: String },
    #[error("{path} is not an OCI image layout: {reason}")]
    NotALayout { path: PathBuf, reason: String },
    #[error(transparent)]
    Oci(#[from] kiln_oci::OciError),
}

impl StoreError {
    /// Wraps an io error with the path it happened on.
    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> StoreError {
        let path = path.into();
        move |source| StoreError::Io { path, source }
    }
}

/// Result of this crate.
pub type Result<T> = std::result::Result<T, StoreError>;
