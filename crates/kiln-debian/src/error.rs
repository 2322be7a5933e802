//! The one error type of kiln-debian. Every variant names what failed (the file, URL,
//! package or line); [`DebianError::hint`] says what the user can do about it, where
//! kiln knows.

use std::io;
use std::path::PathBuf;

/// A boxed cause of any kind (an I/O error, a layer error, another [`DebianError`]).
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong building a Debian image: downloads, signatures, indexes,
/// dependency resolution, unpacking, configuring packages, lock files.
#[derive(Debug, thiserror::Error)]
pub enum DebianError {
    // I/O.
    /// A file or directory could not be read or written.
    #[error("{}: {source}", .path.display())]
    Io {
        /// The file or directory at fault.
        path: PathBuf,
        /// What the system reported.
        #[source]
        source: io::Error,
    },
    /// A Packages index (`.xz`, `.gz`) did not decompress, or is not UTF-8 text.
    #[error("cannot decompress the index: {source}")]
    Decompress {
        /// The decoder's (or the UTF-8 check's) error.
        #[source]
        source: io::Error,
    },
    /// The image store failed (blobs, snapshots, memos, the gc lock).
    #[error(transparent)]
    Store(#[from] kiln_store::StoreError),
    /// A layer's tar could not be written into the store.
    #[error("cannot write the layer: {source}")]
    WriteLayer {
        /// The store's or the tar writer's error.
        #[source]
        source: Cause,
    },
    /// Reading, writing or extracting a tar stream failed.
    #[error(transparent)]
    Layer(#[from] kiln_layer::LayerError),

    // HTTP and downloads.
    /// A download failed: a 4xx answer, a 5xx or connection error on each of 3 tries,
    /// or a body cut short.
    #[error("{url}: {msg}")]
    Http {
        /// The URL asked for.
        url: String,
        /// The HTTP status (`404 Not Found`) or the transport's chain of causes.
        msg: String,
    },
    /// A downloaded or cached file whose SHA256 (or size) is not the one the signed
    /// index, InRelease or lock gives.
    #[error("{what}: SHA256 {actual} does not match the expected {expected}{size}")]
    Mismatch {
        /// The URL downloaded or the cached file checked.
        what: String,
        /// SHA256 (lowercase hex) the index or lock gives.
        expected: String,
        /// SHA256 (lowercase hex) of the bytes actually read.
        actual: String,
        /// ` (size N, expected M)` when the size differs too, else empty.
        size: String,
    },
    /// A package of the lock could not be downloaded or verified.
    #[error("package {name} {version}: {source}")]
    Download {
        /// Package name.
        name: String,
        /// The version the lock pins.
        version: String,
        /// Why: an [`DebianError::Http`] or [`DebianError::Mismatch`] error.
        #[source]
        source: Box<DebianError>,
        /// What to do: delete a cached file that changed, or resolve again (or use a
        /// snapshot mirror) when the mirror no longer has the version.
        hint: Option<String>,
    },

    // Keyrings, signatures and InRelease.
    /// A keyring file given with `--keyring` could not be read.
    #[error("keyring {}: {source}", .path.display())]
    KeyringRead {
        /// The keyring file.
        path: PathBuf,
        /// What the system reported.
        #[source]
        source: io::Error,
    },
    /// A keyring that is not an OpenPGP keyring, or holds no public key.
    #[error("keyring {name}: {msg}")]
    Keyring {
        /// The keyring's path, or a name for kiln's built-in one.
        name: String,
        /// What is wrong with it.
        msg: String,
    },
    /// A signed file or a key is not acceptable.
    #[error("{0}")]
    Signature(String),
    /// An InRelease whose signature does not verify against the keyring.
    #[error("{url}: {source}")]
    Unsigned {
        /// URL of the InRelease.
        url: String,
        /// Why it does not verify (a [`DebianError::Signature`]).
        #[source]
        source: Box<DebianError>,
    },
    /// A verified InRelease that is unusable (expired, no file list, no index for the
    /// architecture, an index that does not match it).
    #[error("{url}: {msg}")]
    Release {
        /// URL of the InRelease.
        url: String,
        /// What makes it unusable.
        msg: String,
        /// What the user can do about it, if kiln knows.
        hint: Option<String>,
    },
    /// The InRelease of `suite` could not be fetched (it may not exist).
    #[error("{source}")]
    Suite {
        /// The suite (`bookworm-security`).
        suite: String,
        /// Base URL of the mirror asked.
        mirror: String,
        /// Why its InRelease could not be had (HTTP error, signature, expiry...).
        #[source]
        source: Box<DebianError>,
    },

    // Index and control file parsing.
    /// A control-file line that is neither a field nor a continuation.
    #[error("line {line}: {msg}")]
    Syntax {
        /// Line number in the text parsed, counted from 1.
        line: usize,
        /// What is wrong with the line.
        msg: String,
    },
    /// A Packages index (or InRelease) that cannot be read.
    #[error("{file}: {}{msg}", .line.map(|l| format!("line {l}: ")).unwrap_or_default())]
    Index {
        /// The index (or InRelease), by URL or path.
        file: String,
        /// Line of the error, counted from 1, when known.
        line: Option<usize>,
        /// What is wrong.
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
        /// Package name.
        package: String,
        /// Its version in the index.
        version: String,
        /// The suite whose index listed it.
        suite: String,
        /// The field (`Depends`, `Pre-Depends`, `Conflicts`, `Breaks`).
        field: String,
        /// The parse error ([`DebianError::Relation`] or [`DebianError::Version`]).
        #[source]
        source: Box<DebianError>,
    },

    // The resolver.
    /// A requested package (`--packages`) that is not a package name (lowercase letters,
    /// digits, `+ - .`) optionally followed by `=VERSION`; holds the request.
    #[error("`{0}` is not a Debian package name")]
    BadRequest(String),
    /// No set of packages satisfies the dependencies (or the conflicts).
    #[error("{0}")]
    Unsatisfiable(String),
    /// A requested name no package of the suites has (nor provides).
    #[error("package {name} is not in the suites")]
    UnknownPackage {
        /// The name asked for.
        name: String,
        /// Up to 5 names of the suites that contain it or that it contains, for the
        /// hint.
        similar: Vec<String>,
    },
    /// A requested package at a version the suites do not have.
    #[error("package {dep} is not in the suites (they have {have})")]
    NoSuchVersion {
        /// The request, as a relationship (`bash (= 5.2.15-2)`).
        dep: String,
        /// The versions the suites have, best first, comma-separated.
        have: String,
    },

    // .deb files.
    /// A file that is not a well-formed .deb (not an `ar` archive, an unsupported format
    /// version, no `debian-binary`, data before control, a member missing).
    #[error("{}: {msg}", .path.display())]
    Deb {
        /// The .deb file.
        path: PathBuf,
        /// What is wrong with it.
        msg: String,
    },
    /// A member (`control.tar.xz`, `data.tar.zst`) of a .deb that cannot be read.
    #[error("{}: {member}: {source}", .path.display())]
    DebMember {
        /// The .deb file.
        path: PathBuf,
        /// The member's name in the `ar` archive.
        member: String,
        /// The decompression, tar or extraction error.
        #[source]
        source: Cause,
    },

    /// A package's repack (its data recompressed with zstd, kept in the cache) failed to
    /// read: damaged or cut. It has been removed.
    #[error("{}: {source}", .path.display())]
    Repack {
        /// The repacked .deb (under the cache's `repacked/`).
        path: PathBuf,
        /// Why it could not be read (the zstd checksum, a cut file...).
        #[source]
        source: Box<DebianError>,
    },

    // The dpkg database.
    /// A package's `control` file the dpkg database cannot record (empty, no
    /// `Package`).
    #[error("{0}")]
    Dpkg(String),
    /// A conffile a package lists could not be read to record its md5sum.
    #[error("conffile {path}: {source}")]
    Conffile {
        /// The conffile as the package lists it (`/etc/...`).
        path: String,
        /// What the system reported.
        #[source]
        source: io::Error,
    },
    /// A package's dpkg status entry could not be made.
    #[error("package {name}: {source}")]
    Package {
        /// Package name.
        name: String,
        /// Why (a [`DebianError::Conffile`]).
        #[source]
        source: Box<DebianError>,
    },
    /// A file of the databases layer (dpkg `status`, triggers, diversions,
    /// alternatives...) could not be written.
    #[error("writing {what}: {source}")]
    WriteDatabase {
        /// Which database file.
        what: String,
        /// What the system reported.
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
    /// Writing a file failed while kiln configured a package natively (in place of its
    /// maintainer scripts).
    #[error("configuring {package}: {what}: {source}")]
    ConfigureIo {
        /// Package name.
        package: String,
        /// The file (or step, `shadowconfig`) being written.
        what: String,
        /// What the system reported.
        #[source]
        source: io::Error,
    },
    /// A package's native configuration cannot be done on this tree (ca-certificates'
    /// bundle, see [`DebianError::CaCerts`]).
    #[error("configuring {package}: {source}")]
    Configure {
        /// Package name.
        package: String,
        /// Why.
        #[source]
        source: Box<DebianError>,
    },
    /// A postinst whose `update-alternatives` calls kiln cannot read.
    #[error("configuring {package}: postinst: {source}")]
    Postinst {
        /// Package name.
        package: String,
        /// The [`DebianError::Script`] naming the call.
        #[source]
        source: Box<DebianError>,
    },
    /// Maintainer scripts must run, and this `host` cannot run the image's `arch`
    /// programs (`scripts`: the scripts, named and joined).
    #[error("the maintainer scripts of {scripts} must run, and this {host} host cannot run {arch} programs")]
    ForeignScripts {
        /// The scripts that must run, named (`foo (postinst), libc-bin (ldconfig)`).
        scripts: String,
        /// This host's architecture, as Debian names it.
        host: String,
        /// The image's architecture.
        arch: String,
    },
    /// The step running the maintainer scripts failed: the
    /// [`ScriptRunner`](crate::image::ScriptRunner)'s message and hint.
    #[error("{msg}")]
    ScriptStep {
        /// What failed, as the runner says it.
        msg: String,
        /// What the user can do about it, if the runner knows.
        hint: Option<String>,
    },

    // Lock files.
    /// A lock file that cannot be used: an unsupported `lock-version`, an invalid
    /// package entry, or a lock made for another suite, architecture or package list.
    #[error("{}: {msg}", .path.display())]
    Lock {
        /// The lock file.
        path: PathBuf,
        /// What is wrong.
        msg: String,
        /// What the user can do about it (remove the lock to resolve again).
        hint: Option<String>,
    },
    /// A lock file that is not the JSON kiln writes.
    #[error("{}: not a kiln lock file: {source}", .path.display())]
    LockFormat {
        /// The lock file.
        path: PathBuf,
        /// The JSON error, with its line and column.
        #[source]
        source: serde_json::Error,
    },
}

/// Result of this crate; the error is a [`DebianError`] unless given.
pub type Result<T, E = DebianError> = std::result::Result<T, E>;

impl DebianError {
    /// What the user can do about it, if kiln knows.
    pub fn hint(&self) -> Option<String> {
        match self {
            DebianError::Download { hint, .. }
            | DebianError::Release { hint, .. }
            | DebianError::Lock { hint, .. }
            | DebianError::ScriptStep { hint, .. } => hint.clone(),
            DebianError::ForeignScripts { arch, .. } => Some(format!(
                "build on an {arch} machine, or leave out the packages that need their scripts"
            )),
            DebianError::Repack { .. } => Some(
                "kiln removed the damaged copy: run the command again, and it unpacks the .deb instead".into(),
            ),
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
