//! Errors of archive loading and saving.

/// Each error names the archive and the entry or digest it is about.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("{archive}: not a tar archive: {reason}")]
    NotATar { archive: String, reason: String },
    #[error("{archive}: the archive is truncated or unreadable at entry `{entry}`")]
    Truncated {
        archive: String,
        entry: String,
        #[source]
        source: std::io::Error,
    },
    /// The header of the entry after `entry` could not be read: it has no name yet.
    #[error("{archive}: the archive is truncated or unreadable after entry `{entry}`")]
    TruncatedAfter {
        archive: String,
        entry: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{archive}: neither a Docker archive (no manifest.json) nor an OCI archive (no index.json)"
    )]
    UnknownFormat { archive: String },
    #[error("{archive}: {what} refers to `{name}`, which is not in the archive")]
    MissingEntry {
        archive: String,
        what: String,
        name: String,
    },
    #[error("{archive}: blob {digest} is missing")]
    MissingBlob { archive: String, digest: String },
    #[error("{archive}: blob {expected} has the wrong content: its bytes hash to {actual}")]
    DigestMismatch {
        archive: String,
        expected: String,
        actual: String,
    },
    #[error("{archive}: blob {digest} is {actual} bytes, its descriptor says {expected}")]
    SizeMismatch {
        archive: String,
        digest: String,
        expected: u64,
        actual: u64,
    },
    #[error("{archive}: layer `{entry}` does not match the image config: its content is {actual}, the config says {expected}")]
    DiffIdMismatch {
        archive: String,
        entry: String,
        expected: String,
        actual: String,
    },
    #[error("{archive}: blob {digest} has unknown media type `{media_type}`")]
    UnknownMediaType {
        archive: String,
        digest: String,
        media_type: String,
    },
    #[error("{archive}: `{entry}` is not valid JSON")]
    Json {
        archive: String,
        entry: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{archive}: `{entry}` ({what}) is {size} bytes, more than {limit}, the most kiln accepts for it: refused")]
    TooLarge {
        archive: String,
        what: String,
        entry: String,
        size: u64,
        limit: String,
    },
    #[error("{archive}: {reason}")]
    Invalid { archive: String, reason: String },
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{0}` names no path")]
    NoPath(String),
    #[error("transport `{0}:` is not supported")]
    UnsupportedTransport(String),
    #[error("{source_name} holds {count} images")]
    SeveralImages { source_name: String, count: usize },
    #[error("{0}: no image of that name in it")]
    NoSuchImage(String),
    #[error("cannot read {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a valid OCI index")]
    InvalidIndex {
        path: String,
        #[source]
        source: serde_json::Error,
    },
    #[error(transparent)]
    Store(#[from] kiln_store::StoreError),
    #[error(transparent)]
    Oci(#[from] kiln_oci::OciError),
    #[error(transparent)]
    Layer(#[from] kiln_layer::LayerError),
}

impl ArchiveError {
    /// Advice for the user, where there is some.
    pub fn hint(&self) -> Option<String> {
        let hint = match self {
            Self::NotATar { .. } | Self::UnknownFormat { .. } => Some(
                "`kiln load` takes the output of `docker save`, `podman save` (docker-archive or oci-archive) or `kiln save`, optionally gzip- or zstd-compressed",
            ),
            Self::Truncated { .. } | Self::TruncatedAfter { .. } => Some("the file may be incomplete; save or download it again"),
            Self::DigestMismatch { .. } | Self::DiffIdMismatch { .. } | Self::SizeMismatch { .. } => {
                Some("the archive is corrupted or was modified after it was written; nothing was loaded")
            }
            Self::NoPath(_) | Self::UnsupportedTransport(_) => {
                Some(crate::transport::TRANSPORT_HINT)
            }
            Self::SeveralImages { .. } => Some("name one: append `:NAME` to the source"),
            _ => None,
        };
        hint.map(str::to_string)
    }
}

/// Result of this crate.
pub type Result<T> = std::result::Result<T, ArchiveError>;
