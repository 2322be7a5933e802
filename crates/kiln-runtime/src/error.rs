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
    /// A request kiln refuses, with what to do instead.
    #[error("{message}")]
    Refused {
        message: String,
        hint: Option<String>,
    },
    /// The container's command cannot start: Docker's exit code (126, 127) with its message.
    #[error("{message}")]
    Exec { code: u8, message: String },
    #[error(transparent)]
    Cdi(#[from] crate::cdi::CdiError),
    #[error(transparent)]
    Store(#[from] kiln_store::StoreError),
    #[error(transparent)]
    Extract(#[from] kiln_layer::LayerError),
}

impl RuntimeError {
    /// A refusal with a hint.
    pub fn refused(message: impl Into<String>, hint: impl Into<String>) -> RuntimeError {
        RuntimeError::Refused {
            message: message.into(),
            hint: Some(hint.into()),
        }
    }

    /// What to do about it, when kiln knows.
    pub fn hint(&self) -> Option<String> {
        match self {
            RuntimeError::Refused { hint, .. } => hint.clone(),
            RuntimeError::UnknownUser { .. } | RuntimeError::UnknownGroup { .. } => Some(
                "give a numeric `uid[:gid]`, or a name the image's /etc/passwd and /etc/group have"
                    .into(),
            ),
            _ => None,
        }
    }

    /// The exit code Docker gives this failure (125 unless the command could not start).
    pub fn exit_code(&self) -> u8 {
        match self {
            RuntimeError::Exec { code, .. } => *code,
            _ => crate::launch::EXIT_KILN,
        }
    }

    /// Wraps an io error with its path.
    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> RuntimeError {
        let path = path.into();
        move |source| RuntimeError::Io { path, source }
    }
}

/// Result of this crate.
pub type Result<T> = std::result::Result<T, RuntimeError>;
