//! Errors of archive loading and saving.

/// Each error names the archive and the entry or digest it is about.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// The input, once any whole-archive gzip or zstd was removed, does not start with
    /// a readable tar header.
    #[error("{archive}: not a tar archive: {reason}")]
    NotATar {
        /// The archive's file name as the user gave it, or `standard input`.
        archive: String,
        /// What the decompressor or tar reader said about the first header.
        reason: String,
    },
    /// Reading the content of an entry failed or ended before the size its header
    /// gives, or a compressed layer entry did not decompress.
    #[error("{archive}: the archive is truncated or unreadable at entry `{entry}`")]
    Truncated {
        /// The archive's file name, as the user gave it.
        archive: String,
        /// The entry's path inside the archive, as written in its header.
        entry: String,
        /// The read error, `UnexpectedEof` when the entry ended early.
        #[source]
        source: std::io::Error,
    },
    /// The header of the entry after `entry` could not be read: it has no name yet.
    #[error("{archive}: the archive is truncated or unreadable after entry `{entry}`")]
    TruncatedAfter {
        /// The archive's file name, as the user gave it.
        archive: String,
        /// The last entry whose header was read (`(start)` before any).
        entry: String,
        /// The tar reader's error, with unprintable bytes of its message escaped.
        #[source]
        source: std::io::Error,
    },
    /// The archive (or directory) has neither a top-level `manifest.json` nor an
    /// `index.json`, so it is no image archive kiln knows.
    #[error(
        "{archive}: neither a Docker archive (no manifest.json) nor an OCI archive (no index.json)"
    )]
    UnknownFormat {
        /// The archive's file name or the directory's path.
        archive: String,
    },
    /// A document of the archive lists a file (a config, a layer, `index.json`) that no
    /// entry or link of the archive provides.
    #[error("{archive}: {what} refers to `{name}`, which is not in the archive")]
    MissingEntry {
        /// The archive's file name, as the user gave it.
        archive: String,
        /// The document that refers to the file, e.g. `manifest.json (image <config>)`.
        what: String,
        /// The path inside the archive that was looked for.
        name: String,
    },
    /// A descriptor of the OCI layout names a blob that has no `blobs/sha256/<hex>`
    /// entry in the archive.
    #[error("{archive}: blob {digest} is missing")]
    MissingBlob {
        /// The archive's file name, as the user gave it.
        archive: String,
        /// The missing blob's digest, `sha256:<hex>`.
        digest: String,
    },
    /// The SHA-256 of a blob's bytes is not the digest it is stored under (or, in a
    /// Docker archive, the digest its config file is named after).
    #[error("{archive}: blob {expected} has the wrong content: its bytes hash to {actual}")]
    DigestMismatch {
        /// The archive's file name, as the user gave it.
        archive: String,
        /// The digest the blob should have, `sha256:<hex>`.
        expected: String,
        /// The digest of the bytes the archive actually holds.
        actual: String,
    },
    /// A blob's length differs from the `size` of the descriptor that refers to it.
    #[error("{archive}: blob {digest} is {actual} bytes, its descriptor says {expected}")]
    SizeMismatch {
        /// The archive's file name, as the user gave it.
        archive: String,
        /// The blob's digest, `sha256:<hex>`.
        digest: String,
        /// Size in bytes that the descriptor gives.
        expected: u64,
        /// Size in bytes of the blob in the archive.
        actual: u64,
    },
    /// In a Docker archive, the uncompressed content of a layer hashes to something
    /// other than the diff ID the image config lists for it.
    #[error("{archive}: layer `{entry}` does not match the image config: its content is {actual}, the config says {expected}")]
    DiffIdMismatch {
        /// The archive's file name, as the user gave it.
        archive: String,
        /// The layer's path inside the archive, as `manifest.json` lists it.
        entry: String,
        /// The diff ID the image config lists for this layer.
        expected: String,
        /// The digest of the layer's uncompressed tar as found in the archive.
        actual: String,
    },
    /// A descriptor of the OCI layout has a media type that is no index, manifest,
    /// config or layer type kiln knows, so the blob cannot be checked.
    #[error("{archive}: blob {digest} has unknown media type `{media_type}`")]
    UnknownMediaType {
        /// The archive's file name, as the user gave it.
        archive: String,
        /// The digest of the blob the descriptor points to.
        digest: String,
        /// The descriptor's `mediaType`, as written.
        media_type: String,
    },
    /// A JSON document of the archive (`index.json`, `manifest.json`, a manifest or a
    /// config) does not parse into the shape expected of it.
    #[error("{archive}: `{entry}` is not valid JSON")]
    Json {
        /// The archive's file name, as the user gave it.
        archive: String,
        /// The document's path inside the archive.
        entry: String,
        /// The parser's error, with line and column.
        #[source]
        source: serde_json::Error,
    },
    /// A JSON document of the archive is larger than kiln reads for its kind (the caps
    /// `kiln pull` uses: 4 MiB for a manifest, 16 MiB for a config or the top
    /// documents).
    #[error("{archive}: `{entry}` ({what}) is {size} bytes, more than {limit}, the most kiln accepts for it: refused")]
    TooLarge {
        /// The archive's file name, as the user gave it.
        archive: String,
        /// What kind of document the entry was read as, e.g. `a manifest`.
        what: String,
        /// The entry's path inside the archive.
        entry: String,
        /// Size in bytes of the entry.
        size: u64,
        /// The cap for this kind of document, in words (e.g. `4 MiB`).
        limit: String,
    },
    /// The archive breaks a rule that has no variant of its own: too many entries, an
    /// entry name too long or escaping the archive, no images listed, layer and diff ID
    /// counts that differ, a bad name in `RepoTags`.
    #[error("{archive}: {reason}")]
    Invalid {
        /// The archive's file name, as the user gave it.
        archive: String,
        /// The rule that was broken, as a sentence for the user.
        reason: String,
    },
    /// A file of kiln's own (a staged entry, the staging directory, a file of a layout
    /// directory being read or written, or the output) could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory the operation was on, or what was being written.
        path: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A `oci:`, `oci-archive:` or `docker-archive:` source or destination has nothing
    /// after the colon; holds the whole argument.
    #[error("`{0}` names no path")]
    NoPath(String),
    /// A skopeo transport kiln does not implement (`containers-storage:`, `dir:`,
    /// `docker-daemon:`); holds the transport's name without the colon.
    #[error("transport `{0}:` is not supported")]
    UnsupportedTransport(String),
    /// The copy source loaded more than one image and named none of them.
    #[error("{source_name} holds {count} images")]
    SeveralImages {
        /// The source as the user wrote it.
        source_name: String,
        /// How many images it holds.
        count: usize,
    },
    /// None of the images the copy source loaded has the name (or layout entry) asked
    /// for; holds the source as the user wrote it.
    #[error("{0}: no image of that name in it")]
    NoSuchImage(String),
    /// The `index.json` of an OCI layout directory could not be read.
    #[error("cannot read {path}")]
    Read {
        /// Path of the `index.json` file.
        path: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The `index.json` of an OCI layout directory is not a valid OCI image index.
    #[error("{path} is not a valid OCI index")]
    InvalidIndex {
        /// Path of the `index.json` file.
        path: String,
        /// The parser's error.
        #[source]
        source: serde_json::Error,
    },
    /// The image store failed: taking its lock, writing or installing a blob, tagging.
    #[error(transparent)]
    Store(#[from] kiln_store::StoreError),
    /// An OCI-level error, such as a name that is not a valid image reference.
    #[error(transparent)]
    Oci(#[from] kiln_oci::OciError),
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
