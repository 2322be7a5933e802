//! The one error type of kiln-debian. Every variant names what failed (the file, URL,
//! package or line); [`DebianError::hint`] says what the user can do about it, where
//! kiln knows.

use std::io;
use std::path::PathBuf;

/// A boxed cause of any kind (an I/O error, a layer error, another [`DebianError`]).
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

#[derive(Debug, thiserror::Error)]
pub enum DebianError {
    // I/O.
    /// A file or directory could not be read or written.
    #[error("{}: {source}", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot decompress the index: {source}")]
    Decompress {
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Store(#[from] kiln_store::StoreError),
    #[error("cannot write the layer: {source}")]
    WriteLayer {
        #[source]
        source: Cause,
    },
    #[error(transparent)]
    Layer(#[from] kiln_layer::LayerError),

    // HTTP and downloads.
    #[error("{url}: {msg}")]
    Http { url: String, msg: String },
    #[error("{what}: SHA256 {actual} does not match the expected {expected}{size}")]
    Mismatch {
        what: String,
        expected: String,
        actual: String,
        /// ` (size N, expected M)` when the size differs too, else empty.
        size: String,
    },
    /// A package of the lock could not be downloaded or verified.
    #[error("package {name} {version}: {source}")]
    Download {
        name: String,
        version: String,
        #[source]
        source: Box<DebianError>,
        hint: Option<String>,
    },

    // Keyrings, signatures and InRelease.
    #[error("keyring {}: {source}", .path.display())]
    KeyringRead {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("keyring {name}: {msg}")]
    Keyring { name: String, msg: String },
    /// A signed file or a key is not acceptable.
    #[error("{0}")]
    Signature(String),
    /// An InRelease whose signature does not verify against the keyring.
    #[error("{url}: {source}")]
    Unsigned {
        url: String,
        #[source]
        source: Box<DebianError>,
    },
    /// A verified InRelease that is unusable (expired, no file list, no index for the
    /// architecture, an index that does not match it).
    #[error("{url}: {msg}")]
    Release {
        url: String,
        msg: String,
        hint: Option<String>,
    },
    /// The InRelease of `suite` could not be fetched (it may not exist).
    #[error("{source}")]
    Suite {
        suite: String,
        mirror: String,
        #[source]
        source: Box<DebianError>,
    },

    // Index and control file parsing.
    /// A control-file line that is neither a field nor a continuation.
    #[error("line {line}: {msg}")]
    Syntax { line: usize, msg: String },
    /// A Packages index (or InRelease) that cannot be read.
    #[error("{file}: {}{msg}", .line.map(|l| format!("line {l}: ")).unwrap_or_default())]
    Index {
        file: String,
        line: Option<usize>,
        msg: String,
    },
    /// A relationship field (`Depends: ...`) that does not parse.
    #[error("{0}")]
    Relation(String),
    /// A version that does not parse.
    #[error("{0}")]
    Version(String),
    /// A relationship field of an indexed package that does not parse.
    #[error("package {package} {version} ({suite}): {field}: {source}")]
    PackageField {
        package: String,
        version: String,
        suite: String,
        field: String,
        #[source]
        source: Box<DebianError>,
    },

    // The resolver.
    #[error("`{0}` is not a Debian package name")]
    BadRequest(String),
    /// No set of packages satisfies the dependencies (or the conflicts).
    #[error("{0}")]
    Unsatisfiable(String),
    /// A requested name no package of the suites has (nor provides).
    #[error("package {name} is not in the suites")]
    UnknownPackage { name: String, similar: Vec<String> },
    /// A requested package at a version the suites do not have.
    #[error("package {dep} is not in the suites (they have {have})")]
    NoSuchVersion { dep: String, have: String },

    // .deb files.
    #[error("{}: {msg}", .path.display())]
    Deb { path: PathBuf, msg: String },
    /// A member (`control.tar.xz`, `data.tar.zst`) of a .deb that cannot be read.
    #[error("{}: {member}: {source}", .path.display())]
    DebMember {
        path: PathBuf,
        member: String,
        #[source]
        source: Cause,
    },

    // The dpkg database.
    #[error("{0}")]
    Dpkg(String),
    #[error("conffile {path}: {source}")]
    Conffile {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("package {name}: {source}")]
    Package {
        name: String,
        #[source]
        source: Box<DebianError>,
    },
    #[error("writing {what}: {source}")]
    WriteDatabase {
        what: String,
        #[source]
        source: io::Error,
    },

    // Maintainer scripts and their native effects.
    /// An `update-alternatives` call of a postinst kiln cannot read.
    #[error("{0}")]
    Script(String),
    /// Why ca-certificates' postinst cannot be replicated on this tree.
    #[error("{0}")]
    CaCerts(String),
    #[error("configuring {package}: {what}: {source}")]
    ConfigureIo {
        package: String,
        what: String,
        #[source]
        source: io::Error,
    },
    #[error("configuring {package}: {source}")]
    Configure {
        package: String,
        #[source]
        source: Box<DebianError>,
    },
    #[error("configuring {package}: postinst: {source}")]
    Postinst {
        package: String,
        #[source]
        source: Box<DebianError>,
    },

    // Lock files.
    #[error("{}: {msg}", .path.display())]
    Lock {
        path: PathBuf,
        msg: String,
        hint: Option<String>,
    },
    #[error("{}: not a kiln lock file: {source}", .path.display())]
    LockFormat {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

pub type Result<T, E = DebianError> = std::result::Result<T, E>;

impl DebianError {
    /// What the user can do about it, if kiln knows.
    pub fn hint(&self) -> Option<String> {
        match self {
            DebianError::Download { hint, .. }
            | DebianError::Release { hint, .. }
            | DebianError::Lock { hint, .. } => hint.clone(),
            DebianError::Unsigned { .. } => Some(
                "the file is not signed by a Debian archive key kiln trusts (see --keyring)".into(),
            ),
            DebianError::Suite {
                suite,
                mirror,
                source,
            } => source.to_string().contains("404").then(|| {
                format!(
                    "is `{suite}` a suite of {mirror} (bookworm, trixie, sid...)? --security-mirror none and --no-updates leave out the other suites"
                )
            }),
            DebianError::UnknownPackage { similar, .. } if similar.is_empty() => Some(
                "names are Debian's binary package names (apt-cache search, packages.debian.org); another component may have it (--components main,contrib,non-free,non-free-firmware)".into(),
            ),
            DebianError::UnknownPackage { similar, .. } => {
                Some(format!("similar names: {}", similar.join(", ")))
            }
            DebianError::Package { source, .. }
            | DebianError::Configure { source, .. }
            | DebianError::Postinst { source, .. }
            | DebianError::PackageField { source, .. } => source.hint(),
            _ => None,
        }
    }

    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> DebianError {
        let path = path.into();
        move |source| DebianError::Io { path, source }
    }
}
