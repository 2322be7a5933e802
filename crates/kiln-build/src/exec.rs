//! The executor: runs a build plan's stages against the store.
//!
//! Each stage starts from an image (from the store, or pulled by the caller's
//! [`Images`]), `scratch`, or an earlier stage, and applies its instructions in order:
//! config instructions change the image config; RUN runs in a kiln container on an
//! overlay of the stage so far, and the overlay's upper directory (deletions as
//! whiteouts) becomes one layer; COPY and ADD write into such an overlay the same way.
//! Every layer step has a content cache key (the parent's key, the instruction with its
//! variables expanded, the build args it sees, and a hash of the files it copies); a
//! hit reuses the layer without running anything. Times in the image come from
//! SOURCE_DATE_EPOCH, so the same inputs give the same digest.

use crate::dockerfile::{self, Command, CopyArgs, Dockerfile, Heredoc, Instruction, Kind, Stage};
use crate::dockerignore::Ignore;
use crate::fsutil::{self, CopyMeta, Keep};
use crate::plan::{self, Plan};
use kiln_layer::{Compression, WriteOptions};
use kiln_oci::media;
use kiln_oci::types::{Descriptor, History, ImageConfig, Manifest, RootFs};
use kiln_oci::{Digest, Platform};
use kiln_runtime::container::{self, ContainerDirs};
use kiln_runtime::launch::{options::NetworkMode, NetworkSetup};
use kiln_runtime::spec::{self, SpecOptions, UserMount};
use kiln_store::lease::Held;
use kiln_store::{snapshot, ImageInfo, Store};
use sha2::{Digest as _, Sha256};
use std::collections::{BTreeMap, VecDeque};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Build arguments Docker accepts without an ARG instruction (never in history).
pub const PREDEFINED_ARGS: &[&str] = &[
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// The network of RUN steps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunNetwork {
    /// A network namespace of the step's own, reaching out through pasta's user-mode
    /// stack (BuildKit's default isolation: the step cannot see the host's loopback).
    Private,
    Host,
    None,
}

/// Where a `--secret` comes from.
#[derive(Clone, Debug)]
pub enum SecretSource {
    File(PathBuf),
    Env(String),
}

/// What a build is asked to do.
#[derive(Clone, Debug)]
pub struct BuildOptions {
    pub context: PathBuf,
    pub dockerfile_name: String,
    pub build_args: BTreeMap<String, String>,
    pub target: Option<String>,
    pub no_cache: bool,
    pub network: RunNetwork,
    pub labels: BTreeMap<String, String>,
    pub secrets: BTreeMap<String, SecretSource>,
    pub source_date_epoch: i64,
    pub platform: Platform,
    /// The host's CA bundle, offered to every RUN step (`--host-ca`): mounted read-only
    /// at [`HOST_CA_PATH`] and named by the variables package managers read, for that
    /// step only. It never lands in a layer, the cache key or the history.
    pub host_ca: Option<PathBuf>,
    /// How new layers are stored: uncompressed by default (as Docker's image store keeps
    /// them; `kiln push` compresses them), gzip or zstd on request.
    pub compression: Compression,
    /// Build this stage (by index) instead of the target: a stage built ahead, in
    /// parallel with others, by a helper process.
    pub stage_index: Option<usize>,
    /// Cache keys made by this build's helper processes: hits even with `no_cache`.
    pub fresh_keys: std::collections::BTreeSet<String>,
}

/// Where `--host-ca` mounts the host's CA bundle in RUN steps.
pub const HOST_CA_PATH: &str = "/run/kiln/host-ca.crt";
/// Variables that point package managers and TLS libraries at a CA bundle.
const CA_VARIABLES: &[&str] = &[
    "SSL_CERT_FILE",
    "PIP_CERT",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "NODE_EXTRA_CA_CERTS",
    "UV_NATIVE_TLS",
];

/// Images named by FROM and `--from`: found in the store or pulled by the caller.
pub trait Images: Sync {
    fn resolve(&self, name: &str) -> Result<ImageInfo>;
}

/// Progress of a build, one step at a time (BuildKit's plain format is the model).
pub trait BuildProgress: Sync {
    /// A step starts: `#n [stage i/total] INSTRUCTION`.
    fn step(&self, _n: usize, _stage: &str, _i: usize, _total: usize, _text: &str) {}
    /// The step was a cache hit.
    fn cached(&self, _n: usize) {}
    /// A line of a RUN step's output.
    fn output(&self, _n: usize, _line: &str) {}
    /// The step finished after `secs`.
    fn done(&self, _n: usize, _secs: f64) {}
}

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
    /// Kept for callers outside this crate's own modules (a build helper's start).
    #[error("{0}")]
    Other(String),
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

/// The image a build made.
#[derive(Clone, Debug)]
pub struct BuildResult {
    pub descriptor: Descriptor,
    pub id: Digest,
    pub steps: usize,
    pub cached: usize,
}

/// The state of a stage being built.
#[derive(Clone)]
struct StageState {
    layers: Vec<Descriptor>,
    config: ImageConfig,
    /// The cache key of everything so far.
    key: String,
    /// ARGs in scope: name -> value.
    args: BTreeMap<String, String>,
    shell: Vec<String>,
    /// WORKDIRs not yet created in any layer: (path, the USER then). BuildKit makes each
    /// at once, owned by that user; kiln makes them in the next layer step (or a layer
    /// of their own at the end of the stage), which gives the same tree.
    pending_dirs: Vec<(String, String)>,
    /// A CMD was set in this stage (ENTRYPOINT then keeps it; an inherited one is reset).
    cmd_set: bool,
}

impl StageState {
    fn cfg(&mut self) -> &mut kiln_oci::types::ContainerConfig {
        self.config.config.get_or_insert_with(Default::default)
    }
    fn env(&self) -> Vec<(String, String)> {
        self.config
            .config
            .as_ref()
            .and_then(|c| c.env.clone())
            .unwrap_or_default()
            .into_iter()
            .map(|e| match e.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (e, String::new()),
            })
            .collect()
    }
    fn set_env(&mut self, k: &str, v: &str) {
        let mut env = self.env();
        // A variable set again keeps its place (Docker replaces it in place).
        match env.iter_mut().find(|(n, _)| n == k) {
            Some(e) => e.1 = v.to_string(),
            None => env.push((k.to_string(), v.to_string())),
        }
        self.cfg().env = Some(env.into_iter().map(|(k, v)| format!("{k}={v}")).collect());
    }
    /// Variables for substitution: ARGs, overridden by ENV (Docker's rule).
    fn lookup(&self, name: &str) -> Option<String> {
        self.env()
            .into_iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
            .or_else(|| self.args.get(name).cloned())
    }
    fn workdir(&self) -> String {
        self.config
            .config
            .as_ref()
            .and_then(|c| c.working_dir.clone())
            .filter(|w| !w.is_empty())
            .unwrap_or_else(|| "/".into())
    }
}

fn hash(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    hex::encode(h.finalize())
}

fn random_id() -> String {
    let mut b = [0u8; 16];
    let _ = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut b));
    // The PID lets prune tell the directory of a killed build from a running one's.
    format!("build-{}-{}", std::process::id(), hex::encode(&b[..8]))
}

/// A cached layer step.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct CacheEntry {
    pub layer: Descriptor,
    pub diff_id: Digest,
}

/// Records a cached layer step under its key.
pub fn cache_put(store: &Store, key: &str, e: &CacheEntry) {
    let dir = kiln_store::layout::cache_dir(store.root(), kiln_store::layout::Cache::Build);
    let _ = std::fs::create_dir_all(&dir);
    let _ = store.write_atomic(&dir.join(key), &serde_json::to_vec(e).expect("serializes"));
}

/// Runs builds.
pub struct Builder<'a> {
    pub store: &'a Store,
    pub images: &'a dyn Images,
    pub progress: &'a dyn BuildProgress,
    pub opts: &'a BuildOptions,
    pub file: String,
    ignore: Ignore,
    steps: Mutex<(usize, usize)>,
    used: Mutex<Vec<(String, CacheEntry)>>,
}

impl<'a> Builder<'a> {
    pub fn new(
        store: &'a Store,
        images: &'a dyn Images,
        progress: &'a dyn BuildProgress,
        opts: &'a BuildOptions,
        file: String,
    ) -> Result<Self> {
        let ignore =
            match crate::dockerignore::find(&opts.context, &opts.dockerfile_name) {
                Some(p) => Ignore::parse(&std::fs::read_to_string(&p).map_err(|source| {
                    BuildError::Io {
                        path: p.clone(),
                        source,
                    }
                })?),
                None => Ignore::parse(""),
            };
        Ok(Self {
            store,
            images,
            progress,
            opts,
            file,
            ignore,
            steps: Mutex::new((0, 0)),
            used: Mutex::new(Vec::new()),
        })
    }

    fn step_error(&self, ins: &Instruction, message: impl std::fmt::Display) -> BuildError {
        BuildError::Step {
            file: self.file.clone(),
            line: ins.line,
            text: ins.original.clone(),
            message: message.to_string(),
        }
    }

    /// Builds the target stage of `df` (and the stages it needs); writes the image.
    pub fn build(&self, df: &Dockerfile) -> Result<BuildResult> {
        let mut plan = plan::plan(df, self.opts.target.as_deref(), &self.global_args(df))?;
        if let Some(i) = self.opts.stage_index {
            plan = plan::plan_stage(df, i, &self.global_args(df))?;
        }
        let mut done: BTreeMap<usize, StageState> = BTreeMap::new();
        for &i in &plan.order {
            let st = self.build_stage(df, &plan, &df.stages[i], &done)?;
            done.insert(i, st);
        }
        let mut st = done
            .remove(&plan.target)
            .expect("the target stage was built");
        for (k, v) in &self.opts.labels {
            st.cfg()
                .labels
                .get_or_insert_with(Default::default)
                .insert(k.clone(), v.clone());
        }
        let created = rfc3339(self.opts.source_date_epoch);
        st.config.created = Some(created);
        if st.config.architecture.is_empty() {
            st.config.architecture = self.opts.platform.architecture.clone();
            st.config.os = self.opts.platform.os.clone();
            st.config.variant = self.opts.platform.variant.clone();
        }
        let (descriptor, id) = self.store.write_image(&st.config, st.layers.clone())?;
        let (steps, cached) = *self.steps.lock().expect("steps lock");
        Ok(BuildResult {
            descriptor,
            id,
            steps,
            cached,
        })
    }

    fn global_args(&self, df: &Dockerfile) -> BTreeMap<String, String> {
        // BuildKit's automatic platform ARGs are in the global scope (FROM lines see
        // them; a stage sees one after `ARG NAME`); a --build-arg overrides them.
        let mut out: BTreeMap<String, String> =
            platform_args(&self.opts.platform, &kiln_oci::Platform::host())
                .into_iter()
                .map(|(k, v)| {
                    let v = self.opts.build_args.get(k).cloned().unwrap_or(v);
                    (k.to_string(), v)
                })
                .collect();
        for a in &df.global_args {
            let v = self.opts.build_args.get(&a.name).cloned().or_else(|| {
                a.default
                    .as_ref()
                    .and_then(|d| dockerfile::expand(d, df.escape, &|n| out.get(n).cloned()).ok())
            });
            if let Some(v) = v {
                out.insert(a.name.clone(), v);
            }
        }
        out
    }

    fn build_stage(
        &self,
        df: &Dockerfile,
        plan: &Plan,
        stage: &Stage,
        done: &BTreeMap<usize, StageState>,
    ) -> Result<StageState> {
        let globals = self.global_args(df);
        let mut st = match &plan.bases[stage.index] {
            plan::Base::Scratch => StageState {
                layers: vec![],
                config: ImageConfig {
                    created: None,
                    author: None,
                    architecture: self.opts.platform.architecture.clone(),
                    os: self.opts.platform.os.clone(),
                    variant: self.opts.platform.variant.clone(),
                    // BuildKit's empty image: the default PATH, WorkingDir `/`.
                    config: Some(kiln_oci::types::ContainerConfig {
                        env: Some(vec![format!("PATH={DEFAULT_PATH}")]),
                        working_dir: Some("/".into()),
                        ..Default::default()
                    }),
                    rootfs: RootFs {
                        kind: "layers".into(),
                        diff_ids: vec![],
                    },
                    history: None,
                    extra: Default::default(),
                },
                key: hash(&["scratch"]),
                args: BTreeMap::new(),
                shell: default_shell(),
                pending_dirs: Vec::new(),
                cmd_set: false,
            },
            plan::Base::Stage(i) => {
                let mut s = done.get(i).expect("stages are built in order").clone();
                s.args = BTreeMap::new();
                s.cmd_set = false;
                s
            }
            plan::Base::Image(name) => {
                let n = self.next_step(stage, 0, stage.instructions.len(), &format!("FROM {name}"));
                let t = Instant::now();
                let img = self.images.resolve(name).map_err(|e| BuildError::Step {
                    file: self.file.clone(),
                    line: stage.line,
                    text: format!("FROM {}", stage.base),
                    message: e.to_string(),
                })?;
                self.progress.done(n, t.elapsed().as_secs_f64());
                let mut config = img.config.clone();
                config.history.get_or_insert_with(Vec::new);
                let shell = config
                    .config
                    .as_ref()
                    .and_then(|c| c.extra.get("Shell"))
                    .and_then(|v| serde_json::from_value::<Vec<String>>(v.clone()).ok())
                    .unwrap_or_else(default_shell);
                // BuildKit gives images without PATH the default one.
                let has_path = config
                    .config
                    .as_ref()
                    .and_then(|c| c.env.as_ref())
                    .is_some_and(|e| e.iter().any(|v| v.starts_with("PATH=")));
                if !has_path {
                    let cfg = config.config.get_or_insert_with(Default::default);
                    let mut env = vec![format!("PATH={DEFAULT_PATH}")];
                    env.extend(cfg.env.take().unwrap_or_default());
                    cfg.env = Some(env);
                }
                StageState {
                    layers: img.manifest.layers.clone(),
                    config,
                    key: hash(&["image", &img.id.to_string()]),
                    args: BTreeMap::new(),
                    shell,
                    pending_dirs: Vec::new(),
                    cmd_set: false,
                }
            }
        };
        // ONBUILD triggers of a base image run first, then leave the config (Docker's
        // rule: they fire once, in the image built FROM it).
        let mut triggers = Vec::new();
        // The same for an earlier stage of this Dockerfile that declared ONBUILD.
        if !matches!(plan.bases[stage.index], plan::Base::Scratch) {
            let cfg = st.cfg();
            if let Some(list) = cfg.extra.remove("OnBuild") {
                for t in list
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|v| v.as_str())
                {
                    let parsed = dockerfile::parse(&format!("FROM scratch\n{t}\n"), &self.file)
                        .map_err(|e| BuildError::Step {
                            file: self.file.clone(),
                            line: stage.line,
                            text: format!("ONBUILD {t}"),
                            message: e.message.clone(),
                        })?;
                    let mut ins = parsed.stages[0].instructions[0].clone();
                    ins.line = stage.line;
                    ins.original = format!("ONBUILD {t}");
                    triggers.push(ins);
                }
            }
        }
        let total = stage.instructions.len() + triggers.len();
        for (i, ins) in triggers.iter().chain(&stage.instructions).enumerate() {
            self.instruction(df, plan, stage, &mut st, ins, i + 1, total, &globals, done)?;
        }
        if !st.pending_dirs.is_empty() {
            let wd = st.workdir();
            self.layer_step(&mut st, &format!("WORKDIR {wd}"), None, |_rootfs| Ok(None))?;
        }
        Ok(st)
    }

    fn next_step(&self, stage: &Stage, i: usize, total: usize, text: &str) -> usize {
        let mut s = self.steps.lock().expect("steps lock");
        s.0 += 1;
        let label = stage
            .name
            .clone()
            .unwrap_or_else(|| format!("stage-{}", stage.index));
        self.progress.step(s.0, &label, i, total, text);
        s.0
    }

    #[allow(clippy::too_many_arguments)]
    fn instruction(
        &self,
        df: &Dockerfile,
        plan: &Plan,
        stage: &Stage,
        st: &mut StageState,
        ins: &Instruction,
        i: usize,
        total: usize,
        globals: &BTreeMap<String, String>,
        done: &BTreeMap<usize, StageState>,
    ) -> Result<()> {
        let esc = df.escape;
        let expand = |st: &StageState, w: &str| -> Result<String> {
            dockerfile::expand(w, esc, &|n| st.lookup(n)).map_err(|e| self.step_error(ins, e))
        };
        let n = self.next_step(stage, i, total, &ins.original);
        let t = Instant::now();
        let history = |st: &mut StageState, created_by: String| {
            st.config
                .history
                .get_or_insert_with(Vec::new)
                .push(History {
                    created: Some(rfc3339(self.opts.source_date_epoch)),
                    created_by: Some(created_by),
                    author: None,
                    comment: Some("kiln build".into()),
                    empty_layer: true,
                });
        };
        match &ins.kind {
            Kind::Arg(decls) => {
                for a in decls {
                    let v = self
                        .opts
                        .build_args
                        .get(&a.name)
                        .cloned()
                        .or_else(|| {
                            globals
                                .get(&a.name)
                                .filter(|_| a.default.is_none())
                                .cloned()
                        })
                        .or(match &a.default {
                            Some(d) => Some(expand(st, d)?),
                            None => None,
                        });
                    if let Some(v) = v {
                        st.args.insert(a.name.clone(), v);
                    } else {
                        st.args.remove(&a.name);
                    }
                }
                st.key = hash(&[&st.key, &ins.original]);
                history(
                    st,
                    format!(
                        "ARG {}",
                        decls
                            .iter()
                            .map(|a| a.name.clone())
                            .collect::<Vec<_>>()
                            .join(" ")
                    ),
                );
            }
            Kind::Env(pairs) => {
                let mut shown = Vec::new();
                // Every value on the line sees the environment as it was before the
                // line (BuildKit: `ENV A=10 B=$A` gives B the old A).
                let before = st.clone();
                for (k, v) in pairs {
                    let v = expand(&before, v)?;
                    shown.push(format!("{k}={v}"));
                    st.set_env(k, &v);
                }
                st.key = hash(&[&st.key, "ENV", &shown.join(" ")]);
                history(st, format!("ENV {}", shown.join(" ")));
            }
            Kind::Label(pairs) => {
                let mut shown = Vec::new();
                for (k, v) in pairs {
                    let k = expand(st, k)?;
                    let v = expand(st, v)?;
                    shown.push(format!("{k}={v}"));
                    st.cfg()
                        .labels
                        .get_or_insert_with(Default::default)
                        .insert(k, v);
                }
                st.key = hash(&[&st.key, "LABEL", &shown.join(" ")]);
                history(st, format!("LABEL {}", shown.join(" ")));
            }
            Kind::Workdir(w) => {
                let w = expand(st, w)?;
                // BuildKit keeps an absolute path as written (`/final/dir/`) and joins a
                // relative one to the current directory (cleaned, as Go's path.Join).
                let path = if w.starts_with('/') {
                    w.clone()
                } else {
                    clean_path(&format!("{}/{}", st.workdir().trim_end_matches('/'), w))
                };
                st.cfg().working_dir = Some(path.clone());
                let user = st
                    .config
                    .config
                    .as_ref()
                    .and_then(|c| c.user.clone())
                    .unwrap_or_default();
                let dir = clean_path(&path);
                if dir != "/" {
                    st.pending_dirs.push((dir, user.clone()));
                }
                st.key = hash(&[&st.key, "WORKDIR", &path, &user]);
                history(st, format!("WORKDIR {path}"));
            }
            Kind::User(u) => {
                let u = expand(st, u)?;
                st.cfg().user = Some(u.clone());
                st.key = hash(&[&st.key, "USER", &u]);
                history(st, format!("USER {u}"));
            }
            Kind::Expose(ports) => {
                let mut shown = Vec::new();
                for p in ports {
                    for p in dockerfile::expand_words(p, esc, &|n| st.lookup(n))
                        .map_err(|e| self.step_error(ins, e))?
                    {
                        // `8000-8002` exposes each port of the range (nat.ParsePortSpecs).
                        for p in port_range(&p).map_err(|e| self.step_error(ins, e))? {
                            shown.push(p.clone());
                            st.cfg()
                                .exposed_ports
                                .get_or_insert_with(Default::default)
                                .insert(p, serde_json::json!({}));
                        }
                    }
                }
                st.key = hash(&[&st.key, "EXPOSE", &shown.join(" ")]);
                history(st, format!("EXPOSE {}", shown.join(" ")));
            }
            Kind::Volume(vols) => {
                let mut shown = Vec::new();
                for v in vols {
                    let v = expand(st, v)?;
                    shown.push(v.clone());
                    st.cfg()
                        .volumes
                        .get_or_insert_with(Default::default)
                        .insert(v, serde_json::json!({}));
                }
                st.key = hash(&[&st.key, "VOLUME", &shown.join(" ")]);
                history(st, format!("VOLUME [{}]", shown.join(" ")));
            }
            Kind::StopSignal(s) => {
                let s = expand(st, s)?;
                st.cfg().stop_signal = Some(s.clone());
                st.key = hash(&[&st.key, "STOPSIGNAL", &s]);
                history(st, format!("STOPSIGNAL {s}"));
            }
            Kind::Cmd(c) | Kind::Entrypoint(c) => {
                let argv = match c {
                    Command::Exec(v) => v.clone(),
                    Command::Shell(s) => st.shell.iter().cloned().chain([s.clone()]).collect(),
                };
                let is_cmd = matches!(ins.kind, Kind::Cmd(_));
                let cmd_set = st.cmd_set;
                let cfg = st.cfg();
                if is_cmd {
                    cfg.cmd = Some(argv.clone());
                } else {
                    cfg.entrypoint = Some(argv.clone());
                    // ENTRYPOINT resets a CMD inherited from the base, not one set in
                    // this stage (BuildKit's rule).
                    if !cmd_set {
                        cfg.cmd = None;
                    }
                }
                if is_cmd {
                    st.cmd_set = true;
                }
                let word = if is_cmd { "CMD" } else { "ENTRYPOINT" };
                let shown = serde_json::to_string(&argv).expect("strings serialize");
                st.key = hash(&[&st.key, word, &shown]);
                history(st, format!("{word} {shown}"));
            }
            Kind::Shell(sh) => {
                st.shell = sh.clone();
                st.cfg().extra.insert("Shell".into(), serde_json::json!(sh));
                st.key = hash(&[&st.key, "SHELL", &sh.join(" ")]);
                history(
                    st,
                    format!("SHELL {}", serde_json::to_string(sh).expect("strings")),
                );
            }
            Kind::Healthcheck(h) => {
                let v = match h {
                    None => serde_json::json!({"Test": ["NONE"]}),
                    Some(h) => {
                        let mut m = serde_json::Map::new();
                        m.insert("Test".into(), serde_json::json!(h.test));
                        for (k, v) in [
                            ("Interval", &h.interval),
                            ("Timeout", &h.timeout),
                            ("StartPeriod", &h.start_period),
                            ("StartInterval", &h.start_interval),
                        ] {
                            if let Some(v) = v {
                                let ns = dockerfile::parse_go_duration(v)
                                    .map_err(|e| self.step_error(ins, e))?;
                                m.insert(k.into(), serde_json::json!(ns));
                            }
                        }
                        if let Some(r) = h.retries {
                            m.insert("Retries".into(), serde_json::json!(r));
                        }
                        serde_json::Value::Object(m)
                    }
                };
                st.cfg().extra.insert("Healthcheck".into(), v.clone());
                st.key = hash(&[&st.key, "HEALTHCHECK", &v.to_string()]);
                history(st, format!("HEALTHCHECK {v}"));
            }
            Kind::Onbuild(trigger) => {
                let cfg = st.cfg();
                let list = cfg
                    .extra
                    .entry("OnBuild".to_string())
                    .or_insert_with(|| serde_json::json!([]));
                if let Some(a) = list.as_array_mut() {
                    a.push(serde_json::json!(trigger));
                }
                st.key = hash(&[&st.key, "ONBUILD", trigger]);
                history(st, format!("ONBUILD {trigger}"));
            }
            Kind::Maintainer(m) => {
                st.config.author = Some(m.clone());
                history(st, format!("MAINTAINER {m}"));
            }
            Kind::Run {
                cmd,
                mounts,
                network,
                heredocs,
                ..
            } => {
                self.run_step(
                    df,
                    plan,
                    st,
                    ins,
                    n,
                    cmd,
                    mounts,
                    network.as_deref(),
                    heredocs,
                    done,
                )?;
            }
            Kind::Copy(c) | Kind::Add(c) => {
                let is_add = matches!(ins.kind, Kind::Add(_));
                self.copy_step(df, plan, st, ins, c, is_add, done)?;
            }
        }
        self.progress.done(n, t.elapsed().as_secs_f64());
        Ok(())
    }

    /// The snapshot directories of a stage's layers, bottom first (unpacked on demand).
    fn lowers(&self, st: &StageState) -> Result<Vec<PathBuf>> {
        let manifest = Manifest::oci(
            Descriptor::new(media::OCI_CONFIG, Digest::of_bytes(b""), 0),
            st.layers.clone(),
        );
        Ok(snapshot::prepare(self.store, &manifest, &st.config)?)
    }

    /// Looks up a cached layer.
    fn cache_get(&self, key: &str) -> Option<CacheEntry> {
        if self.opts.no_cache && !self.opts.fresh_keys.contains(key) {
            return None;
        }
        let p = kiln_store::layout::cache_dir(self.store.root(), kiln_store::layout::Cache::Build)
            .join(key);
        let e: CacheEntry = serde_json::from_slice(&std::fs::read(p).ok()?).ok()?;
        // Held before it is used; gone (pruned) means a miss.
        let missing = self
            .store
            .hold(&[Held::Blob(e.layer.digest.clone())])
            .ok()?;
        missing.is_empty().then_some(e)
    }

    fn cache_put(&self, key: &str, e: &CacheEntry) {
        cache_put(self.store, key, e);
    }

    /// Stages worth building ahead in parallel helper processes: the needed stages, other
    /// than the target, that no other such stage builds on (each helper builds what its
    /// stage needs). Empty when fewer than two could run at once.
    pub fn parallel_stages(&self, df: &Dockerfile) -> Result<Vec<usize>> {
        let plan = plan::plan(df, self.opts.target.as_deref(), &self.global_args(df))?;
        let out = plan::independent(df, &plan, &self.global_args(df));
        Ok(if out.len() >= 2 { out } else { vec![] })
    }

    /// The layer steps of this build (hits and new ones): what `--cache-to` exports.
    pub fn used_cache(&self) -> Vec<(String, CacheEntry)> {
        self.used.lock().expect("used lock").clone()
    }

    fn add_layer(&self, st: &mut StageState, key: String, e: CacheEntry, created_by: String) {
        self.used
            .lock()
            .expect("used lock")
            .push((key.clone(), e.clone()));
        st.layers.push(e.layer);
        st.config.rootfs.diff_ids.push(e.diff_id);
        st.key = key;
        st.config
            .history
            .get_or_insert_with(Vec::new)
            .push(History {
                created: Some(rfc3339(self.opts.source_date_epoch)),
                created_by: Some(created_by),
                author: None,
                comment: Some("kiln build".into()),
                empty_layer: false,
            });
    }

    /// A step that changes the root filesystem: a cache hit, or `work` run on an overlay
    /// of the stage whose upper directory becomes the layer.
    fn layer_step(
        &self,
        st: &mut StageState,
        key_text: &str,
        n: Option<usize>,
        work: impl FnOnce(&Path) -> Result<Option<Vec<String>>>,
    ) -> Result<()> {
        let key = hash(&[&st.key, key_text]);
        if let Some(e) = self.cache_get(&key) {
            if let Some(n) = n {
                self.progress.cached(n);
                self.steps.lock().expect("steps lock").1 += 1;
            }
            st.pending_dirs.clear();
            self.add_layer(st, key, e, key_text.to_string());
            return Ok(());
        }
        let lowers = self.lowers(st)?;
        let id = random_id();
        let dirs = ContainerDirs::new(self.store.root(), &id);
        let result = (|| -> Result<CacheEntry> {
            container::mount_rootfs_with(&dirs, &lowers, true)?;
            let rootfs = dirs.rootfs();
            for (dir, user) in &st.pending_dirs {
                // Made by WORKDIR, owned by the USER of that moment (BuildKit's mkdir
                // with parents; an existing directory is left as it is).
                let owner = if user.is_empty() {
                    None
                } else {
                    Some(owner_in_root(&rootfs, user)?)
                };
                fsutil::mkdir_all(&rootfs, dir, owner).map_err(|source| BuildError::Workdir {
                    dir: dir.clone(),
                    source,
                })?;
            }
            let exclude = work(&rootfs)?;
            let _ = nix::mount::umount2(&rootfs, nix::mount::MntFlags::MNT_DETACH);
            let mut exclude: Vec<Vec<u8>> = exclude
                .unwrap_or_default()
                .into_iter()
                .map(String::into_bytes)
                .collect();
            exclude.extend(container::runtime_mount_points(&dirs.upper()));
            let opts = WriteOptions {
                source_date_epoch: Some(self.opts.source_date_epoch),
                overlay_whiteouts: true,
                exclude,
            };
            let _gc = self.store.gc_lock(false)?;
            let layer = self
                .store
                .write_layer(self.opts.compression, |out| {
                    kiln_layer::write_dir(&dirs.upper(), out, &opts).map(|_| ())
                })
                .map_err(BuildError::WriteLayer)?;
            // The upper directory is already the layer unpacked in overlay form: made
            // exactly like the layer (excluded paths gone, times clamped), it becomes the
            // layer's snapshot, and the next step need not unpack what this one wrote.
            let mut chain: Vec<Digest> = st.config.rootfs.diff_ids.clone();
            chain.push(layer.diff_id.clone());
            let chain_id = kiln_store::prune::chain_ids(&chain)
                .pop()
                .expect("one layer at least");
            let snap = snapshot::path(self.store, &chain_id);
            self.store.hold(&[Held::Snapshot(chain_id.clone())])?;
            if !snap.exists() {
                let upper = dirs.upper();
                for x in &opts.exclude {
                    let p = upper.join(String::from_utf8_lossy(x).as_ref());
                    match std::fs::symlink_metadata(&p) {
                        Ok(m) if m.is_dir() => {
                            let _ = std::fs::remove_dir_all(&p);
                        }
                        Ok(_) => {
                            let _ = std::fs::remove_file(&p);
                        }
                        Err(_) => {}
                    }
                }
                if fsutil::clamp_times(&upper, self.opts.source_date_epoch).is_ok() {
                    if let Some(parent) = snap.parent() {
                        let _ = std::fs::create_dir_all(parent);
                    }
                    // Another build may have made it meanwhile: theirs is as good.
                    let _ = std::fs::rename(&upper, &snap);
                }
            }
            Ok(CacheEntry {
                layer: layer.descriptor,
                diff_id: layer.diff_id,
            })
        })();
        let _ = container::remove_dirs(&dirs);
        let e = result?;
        self.cache_put(&key, &e);
        st.pending_dirs.clear();
        self.add_layer(st, key, e, key_text.to_string());
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn run_step(
        &self,
        _df: &Dockerfile,
        plan: &Plan,
        st: &mut StageState,
        ins: &Instruction,
        n: usize,
        cmd: &Command,
        mounts: &[String],
        network: Option<&str>,
        heredocs: &[Heredoc],
        done: &BTreeMap<usize, StageState>,
    ) -> Result<()> {
        let argv: Vec<String> = match cmd {
            Command::Exec(v) => v.clone(),
            Command::Shell(s) => {
                let script = if heredocs.is_empty() {
                    s.clone()
                } else {
                    dockerfile::heredoc_script(s, heredocs)
                };
                st.shell.iter().cloned().chain([script]).collect()
            }
        };
        let net = match network {
            None => self.opts.network,
            Some("host") => RunNetwork::Host,
            Some("none") => RunNetwork::None,
            Some("default") => self.opts.network,
            Some("private") => RunNetwork::Private,
            Some(other) => {
                return Err(self.step_error(
                    ins,
                    format!("unknown network `{other}` (host, none, default)"),
                ))
            }
        };
        let run_mounts = mounts
            .iter()
            .map(|m| parse_run_mount(m).map_err(|e| self.step_error(ins, e)))
            .collect::<Result<Vec<_>>>()?;
        // The cache key: the command, the build args it sees, the mounts (secrets by id only).
        let args_text: Vec<String> = st.args.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let mounts_text: Vec<String> = run_mounts.iter().map(|m| m.key_text()).collect();
        let key_text = format!(
            "RUN {} |{}| {} net={:?}",
            serde_json::to_string(&argv).expect("strings"),
            args_text.join(" "),
            mounts_text.join(" "),
            net
        );
        let created_by = match cmd {
            Command::Exec(v) => format!("RUN {}", serde_json::to_string(v).expect("strings")),
            Command::Shell(s) => format!("RUN {} {s}", st.shell.join(" ")),
        };
        let env: Vec<String> = {
            let mut env = st.env();
            for (k, v) in &st.args {
                if !env.iter().any(|(e, _)| e == k) {
                    env.push((k.clone(), v.clone()));
                }
            }
            if !env.iter().any(|(k, _)| k == "PATH") {
                env.push(("PATH".into(), DEFAULT_PATH.into()));
            }
            // Docker's predefined proxy args reach RUN without an ARG (and stay out of
            // the cache key and the history).
            for (k, v) in &self.opts.build_args {
                if PREDEFINED_ARGS.contains(&k.as_str()) && !env.iter().any(|(e, _)| e == k) {
                    env.push((k.clone(), v.clone()));
                }
            }
            if self.opts.host_ca.is_some() {
                for var in CA_VARIABLES {
                    if !env.iter().any(|(e, _)| e == var) {
                        let v = if *var == "UV_NATIVE_TLS" {
                            "true"
                        } else {
                            HOST_CA_PATH
                        };
                        env.push((var.to_string(), v.to_string()));
                    }
                }
            }
            env.into_iter().map(|(k, v)| format!("{k}={v}")).collect()
        };
        let user_spec = st
            .config
            .config
            .as_ref()
            .and_then(|c| c.user.clone())
            .unwrap_or_default();
        let cwd = st.workdir();
        let key = hash(&[&st.key, &key_text]);
        if let Some(e) = self.cache_get(&key) {
            self.progress.cached(n);
            self.steps.lock().expect("steps lock").1 += 1;
            st.pending_dirs.clear();
            self.add_layer(st, key, e, created_by);
            return Ok(());
        }
        let mut extra_mounts = Vec::new();
        // Unmounted and removed however this step ends.
        let mut stage_mounts = TempMounts::default();
        let mut excluded = Vec::new();
        if let Some(ca) = &self.opts.host_ca {
            extra_mounts.push(UserMount::Bind {
                source: ca.display().to_string(),
                destination: HOST_CA_PATH.into(),
                readonly: true,
            });
            excluded.push(HOST_CA_PATH.trim_start_matches('/').to_string());
            excluded.push("run/kiln".to_string());
        }
        for m in &run_mounts {
            match m.kind {
                MountKind::Cache => {
                    let id = m.id.clone().unwrap_or_else(|| m.target.clone());
                    let dir = kiln_store::layout::cache_dir(
                        self.store.root(),
                        kiln_store::layout::Cache::Mounts,
                    )
                    .join(hash(&[&id]));
                    std::fs::create_dir_all(&dir).map_err(|source| BuildError::Io {
                        path: dir.clone(),
                        source,
                    })?;
                    extra_mounts.push(UserMount::Bind {
                        source: dir.display().to_string(),
                        destination: m.target.clone(),
                        readonly: false,
                    });
                }
                MountKind::Tmpfs => extra_mounts.push(UserMount::Tmpfs {
                    destination: m.target.clone(),
                    options: vec![],
                }),
                MountKind::Secret => {
                    let id = m
                        .id
                        .clone()
                        .unwrap_or_else(|| m.target.rsplit('/').next().unwrap_or("").to_string());
                    let target = if m.target.is_empty() {
                        format!("/run/secrets/{id}")
                    } else {
                        m.target.clone()
                    };
                    excluded.push(target.trim_start_matches('/').to_string());
                    match self.opts.secrets.get(&id) {
                        Some(SecretSource::File(p)) => extra_mounts.push(UserMount::Bind { source: p.display().to_string(), destination: target, readonly: true }),
                        Some(SecretSource::Env(var)) => {
                            let value = std::env::var(var).map_err(|_| self.step_error(ins, format!("secret `{id}`: ${var} is not set")))?;
                            let dir = self.store.tmp_path("secret");
                            std::fs::create_dir_all(&dir).map_err(BuildError::Os)?;
                            let f = dir.join(&id);
                            std::fs::write(&f, value).map_err(BuildError::Os)?;
                            extra_mounts.push(UserMount::Bind { source: f.display().to_string(), destination: target, readonly: true });
                            stage_mounts.push(dir);
                        }
                        None if m.required => return Err(self.step_error(ins, format!("secret `{id}` is required but was not given (--secret id={id},src=FILE)"))),
                        None => {}
                    }
                }
                MountKind::Bind => {
                    // The source is resolved inside its root as if that were `/` (a link
                    // to `/` in the context means the context, never the host's root).
                    let (root, what) = match &m.from {
                        None => (self.opts.context.clone(), "the build context".to_string()),
                        Some(from) => {
                            let dir = self.mount_source(plan, from, done, ins)?;
                            stage_mounts.push(dir.clone());
                            (dir.join("rootfs"), format!("`{from}`"))
                        }
                    };
                    let named = m.source.as_deref().unwrap_or("/");
                    let mut source = fsutil::secure_join(&root, named)
                        .map_err(|e| self.step_error(ins, e.to_string()))?;
                    if std::fs::symlink_metadata(&source).is_err() {
                        return Err(self.step_error(
                            ins,
                            format!("--mount=type=bind: `{named}` is not in {what}"),
                        ));
                    }
                    if m.rw {
                        // BuildKit's rw bind is copy-on-write: the step may write, and
                        // its writes are thrown away with the mount.
                        let dir = self.copy_on_write(&source, ins)?;
                        source = dir.join("rootfs");
                        stage_mounts.push(dir);
                    }
                    extra_mounts.push(UserMount::Bind {
                        source: source.display().to_string(),
                        destination: m.target.clone(),
                        readonly: !m.rw,
                    });
                }
            }
        }
        let progress = self.progress;
        let file = self.file.clone();
        let result = self.layer_step(st, &key_text, None, |rootfs| {
            let user = kiln_runtime::user::resolve(
                &user_spec,
                container::read_in_root(rootfs, "/etc/passwd").as_deref(),
                container::read_in_root(rootfs, "/etc/group").as_deref(),
            )?;
            let dirs = ContainerDirs {
                dir: rootfs
                    .parent()
                    .and_then(Path::parent)
                    .expect("rootfs is bundle/rootfs")
                    .to_path_buf(),
            };
            let id = dirs
                .dir
                .file_name()
                .expect("a container dir")
                .to_string_lossy()
                .into_owned();
            let etc_files =
                container::write_etc_files(&dirs.dir, "buildkitsandbox", net == RunNetwork::Host)?;
            // The namespace first: pasta comes up while the container is created, and
            // is waited for right before the step's process starts.
            let mode = match net {
                RunNetwork::Host => NetworkMode::Host,
                RunNetwork::None => NetworkMode::None,
                RunNetwork::Private => NetworkMode::Private {
                    pasta: kiln_runtime::pasta::binary().ok_or_else(|| BuildError::NoPasta)?,
                    publish: vec![],
                },
            };
            let mut network = NetworkSetup::start(&dirs.dir, &mode)?;
            let netns_path = network.netns().map(|p| p.display().to_string());
            let opts = SpecOptions {
                args: argv.clone(),
                env: env.clone(),
                cwd: cwd.clone(),
                uid: user.uid,
                gid: user.gid,
                additional_gids: user.additional_gids,
                hostname: "buildkitsandbox".into(),
                network: network.spec_network(),
                mounts: extra_mounts.clone(),
                etc_files,
                // kiln's default, also in builds: set-user-ID programs (su, sudo) cannot
                // gain privileges in a RUN step. (libcontainer loads the seccomp filter
                // after dropping capabilities, which needs no-new-privileges.)
                no_new_privileges: true,
                cgroups_path: format!("/kiln/{id}"),
                cgroup_view: kiln_runtime::cgroupfs::prepare(&dirs.dir, &format!("/kiln/{id}"))
                    .map_err(|source| BuildError::Io {
                        path: dirs.dir.clone(),
                        source,
                    })?,
                netns_path,
                ..Default::default()
            };
            let config = spec::build(&opts);
            let config_path = dirs.bundle().join("config.json");
            std::fs::write(
                &config_path,
                serde_json::to_vec_pretty(&config).expect("serializes"),
            )
            .map_err(|source| BuildError::Io {
                path: config_path.clone(),
                source,
            })?;
            let (out_r, out_w) =
                nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(BuildError::Sys)?;
            let tail: Arc<Mutex<VecDeque<String>>> = Arc::new(Mutex::new(VecDeque::new()));
            // The reader runs with every signal blocked, so the wait loop gets them all.
            let all = nix::sys::signal::SigSet::all();
            let _ = all.thread_block();
            let reader = {
                let tail = tail.clone();
                std::thread::scope(|s| {
                    let h = s.spawn(move || {
                        for line in BufReader::new(std::fs::File::from(out_r))
                            .split(b'\n')
                            .map_while(|l| l.ok())
                        {
                            let line = String::from_utf8_lossy(&line).into_owned();
                            progress.output(n, &line);
                            let mut t = tail.lock().expect("tail lock");
                            if t.len() == 10 {
                                t.pop_front();
                            }
                            t.push_back(line);
                        }
                    });
                    let _ = all.thread_unblock();
                    let null = kiln_runtime::container::dev_null().map_err(BuildError::Os);
                    let res = null.and_then(|null| {
                        let err_w = out_w.try_clone().map_err(BuildError::Os)?;
                        let exit = container::run_foreground(
                            &dirs,
                            &id,
                            Some([null.into(), out_w, err_w]),
                            false,
                            container::OnSignal::Kill,
                            || network.ready(),
                            |_| {},
                        )?;
                        Ok(exit)
                    });
                    let _ = h.join();
                    res
                })
            };
            drop(network);
            let exit = reader?;
            if exit.code() != 0 {
                return Err(BuildError::RunFailed {
                    file: file.clone(),
                    line: ins.line,
                    text: ins.original.clone(),
                    code: exit.code(),
                    output: tail.lock().expect("tail lock").iter().cloned().collect(),
                });
            }
            let mut excluded = excluded.clone();
            // /run made only to hold the CA mount point is not the step's change.
            let run_dir = dirs.upper().join("run");
            let only_kiln = std::fs::read_dir(&run_dir)
                .map(|d| d.flatten().all(|e| e.file_name() == "kiln"))
                .unwrap_or(false);
            if self.opts.host_ca.is_some() && only_kiln {
                excluded.push("run".into());
            }
            Ok(Some(excluded))
        });
        drop(stage_mounts);
        result?;
        if let Some(last) = st.config.history.as_mut().and_then(|h| h.last_mut()) {
            last.created_by = Some(created_by);
        }
        Ok(())
    }

    /// A writable view of `source` whose writes never reach it: an overlay with a
    /// throw-away upper directory (a copy, for a single file). Returns a directory whose
    /// `rootfs` is the view (the caller unmounts and removes it).
    fn copy_on_write(&self, source: &Path, ins: &Instruction) -> Result<PathBuf> {
        let dir = self.store.tmp_path("bind");
        let view = dir.join("rootfs");
        let io = |source: std::io::Error| BuildError::Io {
            path: dir.clone(),
            source,
        };
        if !source.is_dir() {
            std::fs::create_dir_all(&dir).map_err(io)?;
            std::fs::copy(source, &view).map_err(io)?;
            return Ok(dir);
        }
        for d in ["rootfs", "upper", "work"] {
            std::fs::create_dir_all(dir.join(d)).map_err(io)?;
        }
        // overlayfs splits its options at `,` and lower layers at `:`; a backslash
        // escapes them.
        let escape = |p: &Path| {
            p.to_string_lossy()
                .replace('\\', "\\\\")
                .replace(',', "\\,")
                .replace(':', "\\:")
        };
        let data = format!(
            "lowerdir={},upperdir={},workdir={}",
            escape(source),
            escape(&dir.join("upper")),
            escape(&dir.join("work"))
        );
        nix::mount::mount(
            Some("overlay"),
            &view,
            Some("overlay"),
            nix::mount::MsFlags::empty(),
            Some(data.as_str()),
        )
        .map_err(|e| {
            let _ = std::fs::remove_dir_all(&dir);
            self.step_error(
                ins,
                format!("cannot mount a writable view of {}: {e}", source.display()),
            )
        })?;
        Ok(dir)
    }

    /// Mounts a stage's (or an image's) file system read-only for `--from`; returns a
    /// directory whose `rootfs` is the mount (the caller unmounts and removes it).
    fn mount_source(
        &self,
        plan: &Plan,
        from: &str,
        done: &BTreeMap<usize, StageState>,
        ins: &Instruction,
    ) -> Result<PathBuf> {
        let lowers = match plan.stage_by_ref(from) {
            Some(i) => {
                let st = done.get(&i).ok_or_else(|| {
                    self.step_error(ins, format!("stage `{from}` is not built before this one"))
                })?;
                self.lowers(st)?
            }
            None => {
                let img = self
                    .images
                    .resolve(from)
                    .map_err(|e| self.step_error(ins, e))?;
                snapshot::prepare(self.store, &img.manifest, &img.config)?
            }
        };
        let dir = self.store.tmp_path("from");
        let rootfs = dir.join("rootfs");
        std::fs::create_dir_all(&rootfs).map_err(|source| BuildError::Io {
            path: rootfs.clone(),
            source,
        })?;
        if lowers.is_empty() {
            return Ok(dir);
        }
        let mut lw: Vec<PathBuf> = lowers.iter().rev().cloned().collect();
        if lw.len() == 1 {
            // overlayfs needs two lower layers without an upper one: add an empty one.
            let empty = dir.join("empty");
            std::fs::create_dir_all(&empty).map_err(BuildError::Os)?;
            lw.push(empty);
        }
        let data = format!(
            "lowerdir={}",
            lw.iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(":")
        );
        nix::mount::mount(
            Some("overlay"),
            &rootfs,
            Some("overlay"),
            nix::mount::MsFlags::MS_RDONLY,
            Some(data.as_str()),
        )
        .map_err(|e| self.step_error(ins, format!("cannot mount `{from}`: {e}")))?;
        Ok(dir)
    }

    #[allow(clippy::too_many_arguments)]
    fn copy_step(
        &self,
        df: &Dockerfile,
        plan: &Plan,
        st: &mut StageState,
        ins: &Instruction,
        c: &CopyArgs,
        is_add: bool,
        done: &BTreeMap<usize, StageState>,
    ) -> Result<()> {
        let esc = df.escape;
        // Variables as they are before this step (the closure must not hold `st`).
        let vars = st.clone();
        let expand = |w: &str| {
            dockerfile::expand(w, esc, &|n| vars.lookup(n)).map_err(|e| self.step_error(ins, e))
        };
        let dest_raw = expand(&c.dest)?;
        let dest = if dest_raw.starts_with('/') {
            dest_raw.clone()
        } else {
            format!("{}/{}", st.workdir().trim_end_matches('/'), dest_raw)
        };
        let dest_is_dir = dest_raw.ends_with('/') || dest_raw == "." || dest_raw.ends_with("/.");
        let dest = clean_path(&dest);
        let mut source_root_mount = None;
        let (src_root, from_context) = match &c.from {
            None => (self.opts.context.clone(), true),
            Some(f) => {
                let f = expand(f)?;
                let d = self.mount_source(plan, &f, done, ins)?;
                source_root_mount = Some(d.clone());
                (d.join("rootfs"), false)
            }
        };
        let cleanup = |m: &Option<PathBuf>| {
            if let Some(d) = m {
                let _ = nix::mount::umount2(&d.join("rootfs"), nix::mount::MntFlags::MNT_DETACH);
                let _ = std::fs::remove_dir_all(d);
            }
        };
        let result = (|| -> Result<()> {
            // Sources: heredocs become files; the rest are globs in the context or stage.
            let tmp_heredocs = tempfile::tempdir().map_err(BuildError::Os)?;
            let mut sources: Vec<Source> = Vec::new();
            for h in &c.heredocs {
                let content = if h.expand {
                    dockerfile::expand_heredoc(&h.content, esc, &|n| vars.lookup(n))
                        .map_err(|e| self.step_error(ins, e))?
                } else {
                    h.content.clone()
                };
                let p = tmp_heredocs.path().join(&h.name);
                std::fs::write(&p, content).map_err(BuildError::Os)?;
                use std::os::unix::fs::PermissionsExt;
                let _ = std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644));
                sources.push(Source {
                    label: h.name.clone(),
                    rel: h.name.clone(),
                    path: p,
                });
            }
            for s in &c.sources {
                let s = expand(s)?;
                if is_add && (s.starts_with("http://") || s.starts_with("https://")) {
                    let p = download(&s, c.checksum.as_deref(), tmp_heredocs.path())
                        .map_err(|e| self.step_error(ins, e))?;
                    let name = p
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    sources.push(Source {
                        label: s.clone(),
                        rel: name,
                        path: p,
                    });
                    continue;
                }
                let matches = glob(&src_root, &s, from_context.then_some(&self.ignore))
                    .map_err(|e| self.step_error(ins, e))?;
                if matches.is_empty() {
                    return Err(self.step_error(
                        ins,
                        format!(
                            "{s}: no such file or directory in the {}",
                            if from_context {
                                "build context"
                            } else {
                                "source stage"
                            }
                        ),
                    ));
                }
                sources.extend(matches.into_iter().map(|(rel, path)| Source {
                    label: s.clone(),
                    rel,
                    path,
                }));
            }
            if sources.len() > 1 && !dest_is_dir {
                return Err(self.step_error(ins, "when copying several sources, the destination must be a directory ending in `/`"));
            }
            let ignore = &self.ignore;
            // `--exclude` patterns (.dockerignore syntax), relative to the source root.
            let excludes = c
                .exclude
                .iter()
                .map(|e| expand(e))
                .collect::<Result<Vec<_>>>()?;
            let exclude = Ignore::parse(&excludes.join("\n"));
            // Each source's own tree is what its patterns see (BuildKit matches them
            // relative to the path being copied).
            let roots: Vec<PathBuf> = sources.iter().map(|s| s.path.clone()).collect();
            let ctx = self.opts.context.clone();
            let filter = move |p: &Path| -> Keep {
                if !excludes.is_empty() {
                    let rel = roots
                        .iter()
                        .filter(|r| p.starts_with(r) && p != r.as_path())
                        .max_by_key(|r| r.as_os_str().len())
                        .and_then(|r| p.strip_prefix(r).ok());
                    if rel.is_some_and(|rel| exclude.is_excluded(&rel.to_string_lossy())) {
                        return Keep::No;
                    }
                }
                if !from_context {
                    return Keep::Yes;
                }
                match p.strip_prefix(&ctx) {
                    Ok(rel) => ignore_keep(ignore, &rel.to_string_lossy(), p),
                    Err(_) => Keep::Yes,
                }
            };
            sources.retain(|s| {
                s.label.starts_with("http")
                    || fsutil::kept(&s.path, &filter)
                    || c.heredocs.iter().any(|h| h.name == s.label)
            });
            let chmod = match &c.chmod {
                Some(m) => Some(u32::from_str_radix(&expand(m)?, 8).map_err(|_| {
                    self.step_error(
                        ins,
                        format!("invalid --chmod `{m}`: an octal mode is expected"),
                    )
                })?),
                None => None,
            };
            let chown = c.chown.as_ref().map(|o| expand(o)).transpose()?;
            // The name each source is copied under is part of what is copied.
            let hashed: Vec<(String, PathBuf)> = sources
                .iter()
                .map(|s| (format!("{}\0{}", s.label, s.rel), s.path.clone()))
                .collect();
            let content = fsutil::content_hash(&hashed, &filter)
                .map_err(|e| self.step_error(ins, e.to_string()))?;
            let word = if is_add { "ADD" } else { "COPY" };
            let key_text = format!(
                "{word} {content} {dest}{} chown={chown:?} chmod={chmod:?} link={}",
                if dest_is_dir { "/" } else { "" },
                c.link
            );
            let created_by = format!("{word} {} {dest_raw}", c.sources.join(" "));
            let n = self.steps.lock().expect("steps lock").0;
            let from_image = !from_context;
            self.layer_step(st, &key_text, Some(n), |rootfs| {
                let owner = match &chown {
                    Some(o) => Some(owner_in_root(rootfs, o)?),
                    None => None,
                };
                let meta = CopyMeta {
                    owner,
                    mode: chmod,
                    keep_owner: from_image && owner.is_none(),
                };
                let mut links = fsutil::HardLinks::new();
                for source in &sources {
                    let src = &source.path;
                    let md = std::fs::symlink_metadata(src).map_err(|source| BuildError::Io {
                        path: src.clone(),
                        source,
                    })?;
                    let target = if c.parents && src.starts_with(&src_root) {
                        // `--parents`: the source's path under the root is kept.
                        format!("{}/{}", dest.trim_end_matches('/'), source.rel)
                    } else if md.is_dir() {
                        dest.clone()
                    } else if let Some(plain) = (is_add
                        && from_context
                        && !source.label.starts_with("http://")
                        && !source.label.starts_with("https://"))
                    .then(|| open_tar(src))
                    .flatten()
                    {
                        let d = fsutil::mkdir_all(rootfs, &dest, None).map_err(|source| {
                            BuildError::Named {
                                name: dest.clone(),
                                source,
                            }
                        })?;
                        kiln_layer::extract(
                            plain,
                            &d,
                            &kiln_layer::ExtractOptions {
                                same_owner: true,
                                ..Default::default()
                            },
                        )
                        .map_err(|source| BuildError::Extract {
                            path: src.clone(),
                            source,
                        })?;
                        continue;
                    } else {
                        let into_dir = dest_is_dir
                            || fsutil::secure_join(rootfs, &dest)
                                .map(|p| p.is_dir())
                                .unwrap_or(false);
                        if into_dir {
                            // Named as the Dockerfile names it (a link copies what it
                            // points to, under the link's name).
                            let name = source.rel.rsplit('/').next().unwrap_or(&source.rel);
                            format!("{}/{name}", dest.trim_end_matches('/'))
                        } else {
                            dest.clone()
                        }
                    };
                    fsutil::copy_into(rootfs, src, &target, &meta, &filter, &mut links).map_err(
                        |source| BuildError::Copy {
                            src: src.clone(),
                            target: target.clone(),
                            source,
                        },
                    )?;
                }
                Ok(None)
            })?;
            if let Some(last) = st.config.history.as_mut().and_then(|h| h.last_mut()) {
                last.created_by = Some(created_by);
            }
            Ok(())
        })();
        cleanup(&source_root_mount);
        result
    }
}

/// `ADD URL`: the file downloaded into `dir` (named after the URL's last path part,
/// mode 0600 and the mtime of `Last-Modified`, as Docker does), checked against
/// `--checksum` when given.
fn download(url: &str, checksum: Option<&str>, dir: &Path) -> Result<PathBuf> {
    use std::io::Write as _;
    let client = reqwest::blocking::Client::builder()
        .user_agent(concat!("kiln/", env!("CARGO_PKG_VERSION")))
        .build()?;
    let failed = |e: Box<dyn std::error::Error + Send + Sync>| BuildError::Download {
        url: url.to_string(),
        source: e,
    };
    let mut resp = client.get(url).send().map_err(|e| failed(e.into()))?;
    if !resp.status().is_success() {
        return Err(BuildError::DownloadStatus {
            url: url.to_string(),
            status: resp.status(),
        });
    }
    let name = resp
        .url()
        .path_segments()
        .and_then(|mut s| s.next_back().map(str::to_string))
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "__unnamed__".into());
    let mtime = resp
        .headers()
        .get(reqwest::header::LAST_MODIFIED)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| chrono::DateTime::parse_from_rfc2822(v).ok())
        .map(|t| t.timestamp());
    let sub = dir.join(format!("url-{}", hash(&[url])));
    std::fs::create_dir_all(&sub).map_err(BuildError::Os)?;
    let path = sub.join(&name);
    let mut f = std::fs::File::create(&path).map_err(|source| BuildError::Io {
        path: path.clone(),
        source,
    })?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = std::io::Read::read(&mut resp, &mut buf).map_err(|e| failed(e.into()))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        f.write_all(&buf[..n]).map_err(BuildError::Os)?;
    }
    let got = format!("sha256:{}", hex::encode(h.finalize()));
    if let Some(want) = checksum {
        if want != got {
            return Err(BuildError::Checksum {
                url: url.to_string(),
                want: want.to_string(),
                got,
            });
        }
    }
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
        .map_err(BuildError::Os)?;
    if let Some(t) = mtime {
        let ts = rustix::fs::Timespec {
            tv_sec: t,
            tv_nsec: 0,
        };
        let _ = rustix::fs::utimensat(
            rustix::fs::CWD,
            &path,
            &rustix::fs::Timestamps {
                last_access: ts,
                last_modification: ts,
            },
            rustix::fs::AtFlags::empty(),
        );
    }
    Ok(path)
}

/// The owner BuildKit's file operations give for `user[:group]` (`--chown`, the
/// directory WORKDIR makes), looked up in the root's /etc/passwd and /etc/group: a user
/// alone gets the group of its passwd entry when named; a bare uid gets gid = uid.
fn owner_in_root(rootfs: &Path, spec: &str) -> Result<(u32, u32)> {
    let u = kiln_runtime::user::resolve(
        spec,
        container::read_in_root(rootfs, "/etc/passwd").as_deref(),
        container::read_in_root(rootfs, "/etc/group").as_deref(),
    )?;
    let gid = if spec.contains(':') {
        u.gid
    } else if spec.parse::<u32>().is_ok() {
        u.uid
    } else {
        u.gid
    };
    Ok((u.uid, gid))
}

/// BuildKit's automatic platform ARGs for a build of `target` on `build`, platforms
/// normalized as containerd's `platforms.Normalize` (arm64's `v8` is no variant).
pub fn platform_args(target: &Platform, build: &Platform) -> Vec<(&'static str, String)> {
    let parts = |p: &Platform| {
        let variant = match (p.architecture.as_str(), p.variant.as_deref()) {
            ("arm64", Some("v8")) => String::new(),
            (_, v) => v.unwrap_or("").to_string(),
        };
        let mut full = format!("{}/{}", p.os, p.architecture);
        if !variant.is_empty() {
            full = format!("{full}/{variant}");
        }
        (full, p.os.clone(), p.architecture.clone(), variant)
    };
    let (tp, tos, tarch, tvar) = parts(target);
    let (bp, bos, barch, bvar) = parts(build);
    vec![
        ("TARGETPLATFORM", tp),
        ("TARGETOS", tos),
        ("TARGETARCH", tarch),
        ("TARGETVARIANT", tvar),
        ("BUILDPLATFORM", bp),
        ("BUILDOS", bos),
        ("BUILDARCH", barch),
        ("BUILDVARIANT", bvar),
    ]
}

/// One EXPOSE word as Docker's `nat.ParsePortSpecs` reads it: `PORT[-END][/PROTO]`,
/// the protocol `tcp` by default; a range gives every port in it.
fn port_range(word: &str) -> std::result::Result<Vec<String>, dockerfile::SyntaxError> {
    let (ports, proto) = word.split_once('/').unwrap_or((word, "tcp"));
    let proto = proto.to_ascii_lowercase();
    let num = |s: &str| {
        s.parse::<u16>().map_err(|_| {
            dockerfile::SyntaxError::Instruction(format!("invalid port `{s}` in `{word}`"))
        })
    };
    let (start, end) = match ports.split_once('-') {
        Some((a, b)) => (num(a)?, num(b)?),
        None => (num(ports)?, num(ports)?),
    };
    if end < start {
        return Err(dockerfile::SyntaxError::Instruction(format!(
            "invalid port range `{ports}`: the end is before the start"
        )));
    }
    Ok((start..=end).map(|p| format!("{p}/{proto}")).collect())
}

/// Docker's default PATH for images that set none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

fn default_shell() -> Vec<String> {
    vec!["/bin/sh".into(), "-c".into()]
}

fn rfc3339(epoch: i64) -> String {
    chrono::DateTime::from_timestamp(epoch, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Lexical cleaning of an absolute path (`filepath.Clean`).
pub fn clean_path(p: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for part in p.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            x => out.push(x),
        }
    }
    format!("/{}", out.join("/"))
}

/// The tar stream of a local ADD source when it is a tar Docker unpacks: plain, gzip,
/// bzip2, xz or zstd, whose first header reads as a tar header (moby's
/// `archive.IsArchivePath`). Anything else (`data.csv.gz`, a bare `.xz` file) is `None`
/// and is copied as it is.
fn open_tar(p: &Path) -> Option<Box<dyn std::io::Read>> {
    use std::io::Read;
    let mut f = std::io::BufReader::new(std::fs::File::open(p).ok()?);
    let magic = f.fill_buf().ok()?.to_vec();
    let mut plain: Box<dyn Read> = if magic.starts_with(b"BZh") {
        Box::new(bzip2::read::MultiBzDecoder::new(f))
    } else if magic.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Box::new(liblzma::read::XzDecoder::new_multi_decoder(f))
    } else {
        kiln_layer::decompress(f).ok()?.1
    };
    let mut head = vec![0u8; 512];
    let mut n = 0;
    while n < head.len() {
        match plain.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
    if n < 512 || !tar_header_checksum_ok(&head) {
        return None;
    }
    Some(Box::new(std::io::Cursor::new(head).chain(plain)))
}

/// Whether a 512-byte block is a tar header: its checksum field matches the sum of its
/// bytes (unsigned or signed, as Go's archive/tar accepts), the field counted as spaces.
fn tar_header_checksum_ok(h: &[u8]) -> bool {
    let field = &h[148..156];
    let text: String = field
        .iter()
        .take_while(|b| **b != 0)
        .map(|b| *b as char)
        .collect();
    let Ok(want) = i64::from_str_radix(text.trim(), 8) else {
        return false;
    };
    let (mut unsigned, mut signed) = (0i64, 0i64);
    for (i, b) in h.iter().enumerate() {
        let b = if (148..156).contains(&i) { b' ' } else { *b };
        unsigned += b as i64;
        signed += b as i8 as i64;
    }
    want == unsigned || want == signed
}

/// Directories whose `rootfs` may be a mount (stage views, copy-on-write binds, secret
/// files): unmounted and removed on drop.
#[derive(Default)]
struct TempMounts(Vec<PathBuf>);

impl TempMounts {
    fn push(&mut self, dir: PathBuf) {
        self.0.push(dir);
    }
}

impl Drop for TempMounts {
    fn drop(&mut self) {
        // The last mounted first: a view may sit on a stage mounted before it.
        for d in self.0.iter().rev() {
            let _ = nix::mount::umount2(&d.join("rootfs"), nix::mount::MntFlags::MNT_DETACH);
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

/// One thing a COPY or ADD copies.
struct Source {
    /// The source as the Dockerfile writes it.
    label: String,
    /// Its path as named, relative to its root: the name it is copied under, and the
    /// path `--parents` keeps.
    rel: String,
    /// Where it is on the host, every symlink resolved inside its root.
    path: PathBuf,
}

/// Expands a COPY source (with `*`, `?`, `[...]` in any component) under `root`, as if
/// `root` were the root file system (BuildKit's rule): every symlink on the way, the
/// last one included, is resolved inside the root, so a link to `/etc` means
/// `<root>/etc` and never the host's. Returns each match as (the path as named,
/// relative to the root; where it leads on the host). `ignore` is checked on both, so
/// a link cannot reach an excluded file under another name.
fn glob(root: &Path, pattern: &str, ignore: Option<&Ignore>) -> Result<Vec<(String, PathBuf)>> {
    let clean = clean_path(&format!("/{pattern}"));
    let parts: Vec<&str> = clean.split('/').filter(|p| !p.is_empty()).collect();
    if parts.is_empty() {
        return Ok(vec![(String::new(), root.to_path_buf())]);
    }
    let mut current = vec![(String::new(), root.to_path_buf())];
    for part in &parts {
        let mut next = Vec::new();
        for (rel, dir) in &current {
            let names: Vec<String> = if part.contains(['*', '?', '[']) {
                let Ok(rd) = std::fs::read_dir(dir) else {
                    continue;
                };
                let mut names: Vec<String> = rd
                    .flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|name| wildcard(part, name))
                    .collect();
                names.sort();
                names
            } else {
                vec![part.to_string()]
            };
            let dir_in_root = dir.strip_prefix(root).unwrap_or(Path::new(""));
            for name in names {
                let named = if rel.is_empty() {
                    name.clone()
                } else {
                    format!("{rel}/{name}")
                };
                let inside = format!("/{}/{name}", dir_in_root.to_string_lossy());
                let resolved =
                    fsutil::secure_join(root, &inside).map_err(|source| BuildError::Named {
                        name: named.clone(),
                        source,
                    })?;
                if std::fs::symlink_metadata(&resolved).is_ok() {
                    next.push((named, resolved));
                }
            }
        }
        current = next;
    }
    if let Some(ig) = ignore {
        // An excluded directory stays when an exception may re-include something
        // below it; the copy then takes only what is re-included.
        current.retain(|(named, p)| {
            ignore_keep(ig, named, p) != Keep::No
                && p.strip_prefix(root)
                    .is_ok_and(|r| ignore_keep(ig, &r.to_string_lossy(), p) != Keep::No)
        });
    }
    Ok(current)
}

/// What `.dockerignore` says of the context path `rel` (on the host at `p`).
fn ignore_keep(ig: &Ignore, rel: &str, p: &Path) -> Keep {
    if !ig.is_excluded(rel) {
        Keep::Yes
    } else if ig.may_include_under(rel) && std::fs::symlink_metadata(p).is_ok_and(|m| m.is_dir()) {
        Keep::Below
    } else {
        Keep::No
    }
}

/// Shell-style wildcard match of one path component.
fn wildcard(pattern: &str, name: &str) -> bool {
    fn go(p: &[char], n: &[char]) -> bool {
        match (p.first(), n.first()) {
            (None, None) => true,
            (Some('*'), _) => go(&p[1..], n) || (!n.is_empty() && go(p, &n[1..])),
            (Some('?'), Some(_)) => go(&p[1..], &n[1..]),
            (Some('['), Some(c)) => {
                let Some(end) = p.iter().position(|x| *x == ']') else {
                    return false;
                };
                let class = &p[1..end];
                let (neg, class) = match class.first() {
                    Some('!') | Some('^') => (true, &class[1..]),
                    _ => (false, class),
                };
                let mut hit = false;
                let mut i = 0;
                while i < class.len() {
                    if i + 2 < class.len() && class[i + 1] == '-' {
                        hit |= class[i] <= *c && *c <= class[i + 2];
                        i += 3;
                    } else {
                        hit |= class[i] == *c;
                        i += 1;
                    }
                }
                hit != neg && go(&p[end + 1..], &n[1..])
            }
            (Some('\\'), Some(c)) if p.len() > 1 => p[1] == *c && go(&p[2..], &n[1..]),
            (Some(a), Some(b)) => a == b && go(&p[1..], &n[1..]),
            _ => false,
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    go(&p, &n)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MountKind {
    Bind,
    Cache,
    Tmpfs,
    Secret,
}

/// One `RUN --mount=...`.
#[derive(Clone, Debug)]
struct RunMount {
    kind: MountKind,
    target: String,
    source: Option<String>,
    from: Option<String>,
    id: Option<String>,
    rw: bool,
    required: bool,
}

impl RunMount {
    /// What the cache key sees: never a secret's content.
    fn key_text(&self) -> String {
        format!(
            "{:?}:{}:{:?}:{:?}:{:?}:{}",
            self.kind, self.target, self.source, self.from, self.id, self.rw
        )
    }
}

fn parse_run_mount(spec: &str) -> std::result::Result<RunMount, dockerfile::SyntaxError> {
    let mut m = RunMount {
        kind: MountKind::Bind,
        target: String::new(),
        source: None,
        from: None,
        id: None,
        rw: false,
        required: false,
    };
    for kv in spec.split(',') {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        match k {
            "type" => {
                m.kind = match v {
                    "bind" => MountKind::Bind,
                    "cache" => MountKind::Cache,
                    "tmpfs" => MountKind::Tmpfs,
                    "secret" => MountKind::Secret,
                    other => {
                        return Err(dockerfile::SyntaxError::Instruction(format!(
                            "--mount: type `{other}` is not supported (bind, cache, tmpfs, secret)"
                        )))
                    }
                }
            }
            "target" | "dst" | "destination" => m.target = v.to_string(),
            "source" | "src" => m.source = Some(v.to_string()),
            "from" => m.from = Some(v.to_string()),
            "id" => m.id = Some(v.to_string()),
            "rw" | "readwrite" => m.rw = v.is_empty() || v == "true",
            "ro" | "readonly" => m.rw = !(v.is_empty() || v == "true"),
            "required" => m.required = v.is_empty() || v == "true",
            "sharing" | "mode" | "uid" | "gid" | "size" | "env" => {}
            other => {
                return Err(dockerfile::SyntaxError::Instruction(format!(
                    "--mount: unknown option `{other}`"
                )))
            }
        }
    }
    if m.kind == MountKind::Cache {
        m.rw = true;
    }
    if m.target.is_empty() && m.kind != MountKind::Secret {
        return Err(dockerfile::SyntaxError::Instruction(format!(
            "--mount `{spec}` has no target"
        )));
    }
    if !m.target.is_empty() && !m.target.starts_with('/') {
        m.target = format!("/{}", m.target);
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_and_durations() {
        assert!(wildcard("*.py", "app.py"));
        assert!(!wildcard("*.py", "app.pyc"));
        assert!(wildcard("file?.txt", "file1.txt"));
        assert!(wildcard("[a-c]x", "bx"));
        assert!(!wildcard("[!a-c]x", "bx"));
        assert_eq!(clean_path("/a/./b/../c//d/"), "/a/c/d");
        assert_eq!(clean_path("/../.."), "/");
    }

    #[test]
    fn expose_ranges_and_platform_args() {
        assert_eq!(
            port_range("8000-8002").unwrap(),
            ["8000/tcp", "8001/tcp", "8002/tcp"]
        );
        assert_eq!(port_range("53/UDP").unwrap(), ["53/udp"]);
        assert!(port_range("9-1").is_err());
        assert!(port_range("http").is_err());
        let arm = Platform::parse("linux/arm64/v8").unwrap();
        let amd = Platform::parse("linux/amd64").unwrap();
        let args: BTreeMap<_, _> = platform_args(&arm, &amd).into_iter().collect();
        assert_eq!(args["TARGETPLATFORM"], "linux/arm64");
        assert_eq!(args["TARGETARCH"], "arm64");
        assert_eq!(args["TARGETVARIANT"], "");
        assert_eq!(args["BUILDPLATFORM"], "linux/amd64");
        assert_eq!(args["BUILDOS"], "linux");
    }

    #[test]
    fn only_tars_are_unpacked() {
        let dir = tempfile::tempdir().unwrap();
        let tar = dir.path().join("a.tar");
        {
            let mut b = tar::Builder::new(std::fs::File::create(&tar).unwrap());
            let mut h = tar::Header::new_gnu();
            h.set_size(3);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(&mut h, "x.txt", &b"abc"[..]).unwrap();
            b.finish().unwrap();
        }
        let bytes = std::fs::read(&tar).unwrap();
        let bz = dir.path().join("a.tar.bz2");
        let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
        std::io::Write::write_all(&mut e, &bytes).unwrap();
        std::fs::write(&bz, e.finish().unwrap()).unwrap();
        let xz = dir.path().join("a.tar.xz");
        let mut e = liblzma::write::XzEncoder::new(Vec::new(), 1);
        std::io::Write::write_all(&mut e, &bytes).unwrap();
        std::fs::write(&xz, e.finish().unwrap()).unwrap();
        let notar = dir.path().join("data.csv.xz");
        let mut e = liblzma::write::XzEncoder::new(Vec::new(), 1);
        std::io::Write::write_all(&mut e, &[b'a'; 600]).unwrap();
        std::fs::write(&notar, e.finish().unwrap()).unwrap();
        let short = dir.path().join("short.txt");
        std::fs::write(&short, "hello\n").unwrap();
        for p in [&tar, &bz, &xz] {
            let mut r = open_tar(p).unwrap_or_else(|| panic!("{}", p.display()));
            let mut out = Vec::new();
            std::io::Read::read_to_end(&mut r, &mut out).unwrap();
            assert_eq!(out, bytes, "{}", p.display());
        }
        assert!(open_tar(&notar).is_none());
        assert!(open_tar(&short).is_none());
    }

    #[test]
    fn env_set_again_keeps_its_place() {
        let mut st = StageState {
            layers: vec![],
            config: ImageConfig {
                created: None,
                author: None,
                architecture: String::new(),
                os: String::new(),
                variant: None,
                config: None,
                rootfs: RootFs {
                    kind: "layers".into(),
                    diff_ids: vec![],
                },
                history: None,
                extra: Default::default(),
            },
            key: String::new(),
            args: BTreeMap::new(),
            shell: default_shell(),
            pending_dirs: vec![],
            cmd_set: false,
        };
        st.set_env("PATH", "/bin");
        st.set_env("A", "1");
        st.set_env("PATH", "/x:/bin");
        assert_eq!(
            st.config.config.unwrap().env.unwrap(),
            ["PATH=/x:/bin", "A=1"]
        );
    }

    #[test]
    fn run_mounts_parse() {
        let m = parse_run_mount("type=cache,target=/root/.cache/pip").unwrap();
        assert_eq!(m.kind, MountKind::Cache);
        assert!(m.rw);
        let s = parse_run_mount("type=secret,id=ca,target=/etc/ssl/ca.pem").unwrap();
        assert_eq!(s.kind, MountKind::Secret);
        assert!(!s.key_text().contains("pem-content"));
        assert!(parse_run_mount("type=nfs,target=/x").is_err());
        assert!(parse_run_mount("type=bind").is_err());
    }
}
