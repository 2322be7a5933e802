//! Errors of layer writing, extraction and flattening.

use std::io;
use std::path::PathBuf;

/// Every error names the tar entry or the filesystem path it is about. The `source` of a variant is not
/// repeated in its message: the caller prints the chain (`caused by: ...`).
#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    /// An entry that would reach outside the root, or that cannot be applied safely.
    #[error("layer entry `{entry}`: {reason}")]
    UnsafeEntry {
        /// The entry's path as the tar stream names it.
        entry: String,
        /// What makes it unsafe, e.g. "path escapes the root".
        reason: String,
    },
    /// A well-formed entry whose kind or fields this crate does not support.
    #[error("layer entry `{entry}`: {reason}")]
    Unsupported {
        /// The entry's path as the tar stream names it.
        entry: String,
        /// What is not supported, e.g. an unknown entry type or an owner id over 32 bits.
        reason: String,
    },
    /// Applying an entry to the filesystem failed.
    #[error("layer entry `{entry}`: cannot {action}")]
    Apply {
        /// The entry's path as the tar stream names it.
        entry: String,
        /// The step that failed, as a verb phrase (`create file`, `chown`).
        action: &'static str,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// Reading or writing a filesystem path failed.
    #[error("cannot {action} `{}`", path.display())]
    Io {
        /// The filesystem path that could not be read or written.
        path: PathBuf,
        /// The step that failed, as a verb phrase (`open`, `read symlink`).
        action: &'static str,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// A tar extension member (GNU long name or link, PAX header) larger than the cap that bounds what
    /// is read into memory (see [`crate::TarGuard`]).
    #[error("tar: {what} member of {size} bytes (more than {cap})")]
    Oversized {
        /// Which kind of extension member it is, e.g. `a GNU long name`.
        what: &'static str,
        /// The member's size in bytes, as its header declares it.
        size: u64,
        /// The cap, for people (`1 MiB`).
        cap: String,
    },
    /// The tar stream is malformed, truncated, or could not be read or written.
    #[error("tar stream: {context}")]
    Tar {
        /// What was being read or written, with the entry's path when there is one.
        context: String,
        /// The underlying read or write error (`InvalidData` for a malformed stream).
        #[source]
        source: io::Error,
    },
}

/// Result of this crate.
pub type Result<T> = std::result::Result<T, LayerError>;

/// Names a raw tar path for messages; non-UTF-8 bytes are shown lossily.
pub(crate) fn show(path: &[u8]) -> String {
    String::from_utf8_lossy(path).into_owned()
}

/// Shorthand for a tar-level error about a named entry (or the stream when `entry` is empty).
pub(crate) fn tar_err(entry: &[u8], what: &str, source: io::Error) -> LayerError {
    let context = if entry.is_empty() {
        what.to_string()
    } else {
        format!("{what} `{}`", show(entry))
    };
    LayerError::Tar { context, source }
}

pub(crate) fn apply_err(
    entry: &[u8],
    action: &'static str,
    source: impl Into<io::Error>,
) -> LayerError {
    LayerError::Apply {
        entry: show(entry),
        action,
        source: source.into(),
    }
}

pub(crate) fn unsafe_entry(entry: &[u8], reason: impl Into<String>) -> LayerError {
    LayerError::UnsafeEntry {
        entry: show(entry),
        reason: reason.into(),
    }
}
