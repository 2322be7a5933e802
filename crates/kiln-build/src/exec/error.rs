//! The executor's errors.

use crate::dockerfile;
use std::path::PathBuf;

/// Build errors; each names the Dockerfile line it is about.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The Dockerfile does not parse.
    #[error(transparent)]
    Parse(#[from] dockerfile::ParseError),
    /// An instruction cannot be carried out as written: a bad flag value, a variable
    /// that does not expand, a source that matches nothing, a missing secret...
    #[error("{file}:{line}: {text}\n  {message}")]
    Step {
        /// The Dockerfile's name as the builder was given it.
        file: String,
        /// 1-based line of the instruction.
        line: usize,
        /// The instruction as written.
        text: String,
        /// What is wrong with it.
        message: String,
    },
    /// A `RUN` step's command exited with a non-zero status.
    #[error("{file}:{line}: `{text}` failed with exit code {code}{}", last_lines(.output))]
    RunFailed {
        /// The Dockerfile's name as the builder was given it.
        file: String,
        /// 1-based line of the `RUN` instruction.
        line: usize,
        /// The instruction as written.
        text: String,
        /// The command's exit code.
        code: i32,
        /// The last lines (at most 10) the command printed, for the message.
        output: Vec<String>,
    },
    /// `FROM`/`--target` names no stage of the Dockerfile, or a stage refers to itself or
    /// to a later one.
    #[error("line {line}: FROM {base}: {source}")]
    BaseName {
        /// 1-based line of the `FROM` instruction.
        line: usize,
        /// The image word as written in the `FROM` line.
        base: String,
        /// Why its global `ARG`s could not be substituted.
        #[source]
        source: dockerfile::SyntaxError,
    },
    /// The Dockerfile has no `FROM` line, so there is nothing to build.
    #[error("the Dockerfile has no stage")]
    NoStages,
    /// `--target` names no stage's `AS` name; holds the name asked for.
    #[error("target stage `{0}` could not be found")]
    NoTarget(String),
    /// A stage asked for by index (a helper building a stage ahead) is beyond the last
    /// stage; holds the index.
    #[error("there is no stage {0}")]
    NoStage(usize),
    /// The stage with this index reads from itself, directly or through other stages.
    #[error("stage {0} depends on itself")]
    StageCycle(usize),
    /// A stage reads (`FROM`, `COPY --from`, `RUN --mount=from=`) from a stage defined
    /// after it.
    #[error("stage {stage} (line {line}) refers to stage {dep}, which comes after it")]
    LaterStage {
        /// Index of the stage that refers to a later one.
        stage: usize,
        /// 1-based line of that stage's `FROM`.
        line: usize,
        /// Index of the later stage it refers to.
        dep: usize,
    },
    /// A file or directory of the build (the context, a step's directories) could not be
    /// read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory on the host.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The directory of a `WORKDIR` could not be made.
    #[error("WORKDIR {dir}: {source}")]
    Workdir {
        /// The directory's absolute path in the stage's root.
        dir: String,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A file named as the Dockerfile writes it (a COPY source or destination) that
    /// cannot be reached.
    #[error("{name}: {source}")]
    Named {
        /// The path as the Dockerfile names it (a source relative to its root, or the
        /// destination).
        name: String,
        /// The underlying I/O error (e.g. a symlink leading out of the root).
        #[source]
        source: std::io::Error,
    },
    /// A COPY/ADD source could not be copied to its target in the stage's root.
    #[error("{} -> {target}: {source}", src.display())]
    Copy {
        /// The source file on the host (in the context or a mounted stage or image).
        src: PathBuf,
        /// The absolute path in the stage's root it was being copied to.
        target: String,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// An `ADD`ed archive could not be unpacked.
    #[error("{}: {source}", path.display())]
    Extract {
        /// The archive on the host.
        path: PathBuf,
        /// Why unpacking failed.
        #[source]
        source: kiln_layer::LayerError,
    },
    /// A system resource of the builder (a pipe, a temporary directory) failed.
    #[error("{0}")]
    Os(#[source] std::io::Error),
    /// A system call of the builder (making a pipe for a step's output) failed.
    #[error("{0}")]
    Sys(#[source] nix::errno::Errno),
    /// A step's changes could not be written as a layer.
    #[error("cannot write the layer: {0}")]
    WriteLayer(#[source] kiln_store::compose::LayerWriteError<kiln_layer::LayerError>),
    /// A `RUN` step on the default private network needs the `pasta` binary, and it is
    /// not installed.
    #[error("RUN steps on a private network need `pasta` (apt-get install passt); or use --network host|none")]
    NoPasta,
    /// `ADD URL`: the HTTP client could not be set up.
    #[error(transparent)]
    Http(#[from] reqwest::Error),
    /// `ADD URL`: the download failed.
    #[error("{url}: {source}")]
    Download {
        /// The URL being downloaded.
        url: String,
        /// The HTTP client's or the read's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// `ADD URL`: the server answered with a status other than success (2xx).
    #[error("{url}: the server answered {status}")]
    DownloadStatus {
        /// The URL asked for.
        url: String,
        /// The HTTP status the server answered.
        status: reqwest::StatusCode,
    },
    /// `ADD --checksum`: the downloaded file's digest is not the one given.
    #[error("{url}: checksum mismatch: expected {want}, got {got}")]
    Checksum {
        /// The URL downloaded.
        url: String,
        /// The digest given with `--checksum` (`sha256:<hex>`).
        want: String,
        /// The digest of what was downloaded (`sha256:<hex>`).
        got: String,
    },
    /// A FROM image the caller's [`Images`] cannot give (not found, not pulled).
    #[error("{0}")]
    Image(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// `--cache-from`/`--cache-to`: the cache's `index.json` cannot be read.
    #[error("{}: {source}", path.display())]
    CacheIndex {
        /// The `index.json` file.
        path: PathBuf,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
    /// `--cache-from`: an entry of the cache's `index.json` has a key that is not 64 hex
    /// digits.
    #[error("{}: `{key}` is not a cache key", path.display())]
    CacheKey {
        /// The `index.json` file.
        path: PathBuf,
        /// The key as found.
        key: String,
    },
    /// `--cache-from`: an entry of the cache's `index.json` has a diff ID that is not a
    /// digest.
    #[error("{}: {source}", path.display())]
    CacheDiffId {
        /// The `index.json` file.
        path: PathBuf,
        /// Why the diff ID does not parse.
        #[source]
        source: kiln_oci::OciError,
    },
    /// A cached layer that cannot be added to the store (its digest does not match).
    #[error("{}: {source}", path.display())]
    CacheBlob {
        /// The blob file in the cache directory.
        path: PathBuf,
        /// The store's error.
        #[source]
        source: kiln_store::StoreError,
    },
    /// A helper process building a stage ahead could not be started.
    #[error("cannot start a build helper: {0}")]
    HelperStart(#[source] std::io::Error),
    /// The store failed: reading a blob or image, writing a layer or the image.
    #[error(transparent)]
    Store(#[from] kiln_store::StoreError),
    /// A `RUN` step's container could not be set up or started.
    #[error(transparent)]
    Runtime(#[from] kiln_runtime::RuntimeError),
}

impl BuildError {
    /// Advice for the user, where there is some (a RUN step's container failing to start
    /// gives the runtime's).
    pub fn hint(&self) -> Option<String> {
        match self {
            Self::Runtime(e) => e.hint(),
            _ => None,
        }
    }
}

fn last_lines(lines: &[String]) -> String {
    if lines.is_empty() {
        return String::new();
    }
    let mut s = String::from("; its last output:");
    for l in lines {
        s.push_str("\n  > ");
        s.push_str(l);
    }
    s
}

/// Result of the build crate's fallible operations.
pub type Result<T> = std::result::Result<T, BuildError>;
