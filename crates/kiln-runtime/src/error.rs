//! Runtime errors.

use std::path::PathBuf;

/// Each error names the image, layer, path or value it is about.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// A file or directory operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory the operation was on.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A layer of the image cannot be used.
    #[error("layer {digest}: {reason}")]
    Layer {
        /// The layer's digest, `sha256:<hex>`.
        digest: String,
        /// Why it cannot be used.
        reason: String,
    },
    /// A value given to the runtime is malformed (a port specification, capability,
    /// rlimit, seccomp profile or BPF program), or a container is in the wrong state for
    /// the request (`container state`: running when removed, not running when signalled).
    #[error("invalid {what} `{value}`: {reason}")]
    Invalid {
        /// What kind of value it is, e.g. `port specification`.
        what: &'static str,
        /// The value as given, a seccomp profile's path, or the container's name.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A signal name or number that is none (`kiln kill --signal`).
    #[error("invalid signal `{value}`")]
    InvalidSignal {
        /// The signal as given.
        value: String,
    },
    /// A container still ran 10 seconds after `stop` sent it SIGKILL.
    #[error("container {container} did not stop after SIGKILL")]
    NotStopped {
        /// The container as named to the user.
        container: String,
    },
    /// `--user` names a user that the image's /etc/passwd lacks (and is no number).
    #[error("unable to find user {user}: no matching entries in passwd file")]
    UnknownUser {
        /// The user part of `--user`, as given.
        user: String,
    },
    /// `--user` names a group that the image's /etc/group lacks (and is no number).
    #[error("unable to find group {group}: no matching entries in group file")]
    UnknownGroup {
        /// The group part of `--user`, as given.
        group: String,
    },
    /// A request kiln refuses, with what to do instead.
    #[error("{message}")]
    Refused {
        /// What was refused and why, as shown to the user.
        message: String,
        /// What to do instead, shown after the message.
        hint: Option<String>,
    },
    /// The container's command cannot start: Docker's exit code (126, 127) with its message.
    #[error("{message}")]
    Exec {
        /// 127 when the command was not found, 126 when it is not executable.
        code: u8,
        /// Docker's message, e.g. `exec: "x": executable file not found in $PATH`.
        message: String,
    },
    /// CDI devices (`--device`, `--gpus`) could not be loaded, resolved or applied.
    #[error(transparent)]
    Cdi(#[from] crate::cdi::CdiError),
    /// The image store failed: reading the image, preparing its snapshots.
    #[error(transparent)]
    Store(#[from] kiln_store::StoreError),
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
