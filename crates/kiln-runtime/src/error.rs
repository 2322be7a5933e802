//! Runtime errors.

use std::path::PathBuf;

/// Each error names the image, layer, path or value it is about.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("layer {digest}: {reason}")]
    Layer { digest: String, reason: String },
    #[error("invalid {what} `{value}`: {reason}")]
    Invalid {
        what: &'static str,
        value: String,
        reason: String,
    },
    #[error("unable to find user {user}: no matching entries in passwd file")]
    UnknownUser { user: String },
    #[error("unable to find group {group}: no matching entries in group file")]
    UnknownGroup { group: String },
    #[error(transparent)]
    Store(#[from] kiln_store::StoreError),
    #[error(transparent)]
    Extract(#[from] kiln_layer::LayerError),
}

impl RuntimeError {
    /// Wraps an io error with its path.
    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> RuntimeError {
        let path = path.into();
        move |source| RuntimeError::Io { path, source }
    }
}

/// Result of this crate.
pub type Result<T> = std::result::Result<T, RuntimeError>;
