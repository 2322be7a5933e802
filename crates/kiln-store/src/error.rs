//! Errors of the store.

use std::path::PathBuf;

/// Store errors; each names the path, digest or reference it is about.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file or directory of the store could not be read, written or renamed.
    #[error("{path}: {source}")]
    Io {
        /// The path the operation failed on.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A blob that a manifest, index or lease refers to is absent from `blobs/sha256/`.
    #[error("blob {digest} is not in the store")]
    BlobMissing {
        /// Digest of the missing blob (`sha256:...`).
        digest: String,
    },
    /// Bytes read or written do not hash to the digest they were stored or announced
    /// under: a corrupted blob, or a download that is not what was asked for.
    #[error("blob {expected} has the wrong content: its bytes hash to {actual}")]
    DigestMismatch {
        /// The digest the bytes should have.
        expected: String,
        /// The digest the bytes actually hash to.
        actual: String,
    },
    /// A layer could not be unpacked or read (a bad tar, a failed extraction), an image's
    /// layers do not match its config's diff IDs, or an artifact manifest has no subject.
    #[error("layer {digest}: {reason}")]
    Layer {
        /// Digest of the layer blob, or of the config or manifest the problem is in;
        /// `(not yet known)` for a layer still being unpacked from a stream.
        digest: String,
        /// What went wrong, as the layer code reported it.
        reason: String,
    },
    /// A stored document (index.json, a manifest, a config) does not parse as the JSON
    /// type expected.
    #[error("{what} is not valid JSON: {source}")]
    Json {
        /// Which document, e.g. `blob sha256:...` or `artifact manifest sha256:...`.
        what: String,
        /// The parser's error, with line and column.
        #[source]
        source: serde_json::Error,
    },
    /// No tag, digest or ID prefix in the store matches what the user gave.
    #[error("no such image: {reference}")]
    ImageNotFound {
        /// The name, digest or ID as the user wrote it.
        reference: String,
    },
    /// A short image ID matches several images.
    #[error("`{prefix}` matches more than one image; give more characters or a name")]
    Ambiguous {
        /// The hex prefix the user gave.
        prefix: String,
    },
    /// A descriptor's media type is none kiln knows (see [`kiln_oci::media::kind`]), so
    /// the blob cannot be interpreted.
    #[error("unknown media type `{media_type}` for {digest}")]
    UnknownMediaType {
        /// The media type found in the descriptor.
        media_type: String,
        /// Digest of the blob the descriptor points to.
        digest: String,
    },
    /// A digest, reference or platform did not parse (e.g. a malformed image name).
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
