//! The executor's errors.

use crate::dockerfile;
use std::path::PathBuf;

/// Build errors; each names the Dockerfile line it is about.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Parse(#[from] dockerfile::ParseError),
    #[error("{file}:{line}: {text}\n  {message}")]
    Step {
        file: String,
        line: usize,
        text: String,
        message: String,
    },
    #[error("{file}:{line}: `{text}` failed with exit code {code}{}", last_lines(.output))]
    RunFailed {
        file: String,
        line: usize,
        text: String,
        code: i32,
        output: Vec<String>,
    },
    /// `FROM`/`--target` names no stage of the Dockerfile, or a stage refers to itself or
    /// to a later one.
    #[error("line {line}: FROM {base}: {source}")]
    BaseName {
        line: usize,
        base: String,
        #[source]
        source: dockerfile::SyntaxError,
    },
    #[error("the Dockerfile has no stage")]
    NoStages,
    #[error("target stage `{0}` could not be found")]
    NoTarget(String),
    #[error("there is no stage {0}")]
    NoStage(usize),
    #[error("stage {0} depends on itself")]
    StageCycle(usize),
    #[error("stage {stage} (line {line}) refers to stage {dep}, which comes after it")]
    LaterStage {
        stage: usize,
        line: usize,
        dep: usize,
    },
    /// A file or directory of the build (the context, a step's directories) could not be
    /// read or written.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The directory of a `WORKDIR` could not be made.
    #[error("WORKDIR {dir}: {source}")]
    Workdir {
        dir: String,
        #[source]
        source: std::io::Error,
    },
    /// A file named as the Dockerfile writes it (a COPY source or destination) that
    /// cannot be reached.
    #[error("{name}: {source}")]
    Named {
        name: String,
        #[source]
        source: std::io::Error,
    },
    /// A COPY/ADD source could not be copied to its target in the stage's root.
    #[error("{} -> {target}: {source}", src.display())]
    Copy {
        src: PathBuf,
        target: String,
        #[source]
        source: std::io::Error,
    },
    /// An `ADD`ed archive could not be unpacked.
    #[error("{}: {source}", path.display())]
    Extract {
        path: PathBuf,
        #[source]
        source: kiln_layer::LayerError,
    },
    /// A system resource of the builder (a pipe, a temporary directory) failed.
    #[error("{0}")]
    Os(#[source] std::io::Error),
    #[error("{0}")]
    Sys(#[source] nix::errno::Errno),
    /// A step's changes could not be written as a layer.
    #[error("cannot write the layer: {0}")]
    WriteLayer(#[source] kiln_store::compose::LayerWriteError<kiln_layer::LayerError>),
    #[error("RUN steps on a private network need `pasta` (apt-get install passt); or use --network host|none")]
    NoPasta,
    /// `ADD URL`: the HTTP client could not be set up.
    #[error(transparent)]
    Http(#[from] reqwest::Error),
    /// `ADD URL`: the download failed.
    #[error("{url}: {source}")]
    Download {
        url: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("{url}: the server answered {status}")]
    DownloadStatus {
        url: String,
        status: reqwest::StatusCode,
    },
    #[error("{url}: checksum mismatch: expected {want}, got {got}")]
    Checksum {
        url: String,
        want: String,
        got: String,
    },
    /// A FROM image the caller's [`Images`] cannot give (not found, not pulled).
    #[error("{0}")]
    Image(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// `--cache-from`/`--cache-to`: the cache's `index.json` cannot be read.
    #[error("{}: {source}", path.display())]
    CacheIndex {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{}: `{key}` is not a cache key", path.display())]
    CacheKey { path: PathBuf, key: String },
    #[error("{}: {source}", path.display())]
    CacheDiffId {
        path: PathBuf,
        #[source]
        source: kiln_oci::OciError,
    },
    /// A cached layer that cannot be added to the store (its digest does not match).
    #[error("{}: {source}", path.display())]
    CacheBlob {
        path: PathBuf,
        #[source]
        source: kiln_store::StoreError,
    },
    /// A helper process building a stage ahead could not be started.
    #[error("cannot start a build helper: {0}")]
    HelperStart(#[source] std::io::Error),
    #[error(transparent)]
    Store(#[from] kiln_store::StoreError),
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

pub type Result<T> = std::result::Result<T, BuildError>;
