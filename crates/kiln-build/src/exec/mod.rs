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
//!
//! The module's files: `error` (the error type), `stage` (a stage's state, its base
//! and the dispatch of its instructions), `config` (instructions that only change the
//! image config), `layer` (layer steps, their snapshots and the cache), `run` (RUN),
//! `run_mount` (its `--mount`s), `copy` (COPY and ADD), `glob` (COPY's source
//! patterns), `mount` (views of stages and images the steps read).

mod config;
mod copy;
mod error;
mod glob;
mod layer;
mod mount;
mod run;
mod run_mount;
mod stage;
#[cfg(test)]
mod tests;

pub use error::{BuildError, Result};
pub use layer::{cache_put, CacheEntry};

use crate::dockerfile::{self, Dockerfile, Instruction, Stage};
use crate::dockerignore::Ignore;
use crate::plan;
use kiln_layer::Compression;
use kiln_oci::types::Descriptor;
use kiln_oci::{Digest, Platform};
use kiln_store::{ImageInfo, Store};
use sha2::{Digest as _, Sha256};
use stage::StageState;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;

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
    /// `--network host`: the step shares the host's network namespace.
    Host,
    /// `--network none`: the step gets a namespace with only a loopback interface.
    None,
}

/// Where a `--secret` comes from.
#[derive(Clone, Debug)]
pub enum SecretSource {
    /// `src=PATH`: the file on the host, bind-mounted read-only into the step.
    File(PathBuf),
    /// `env=VAR`: the value of this environment variable of the build process.
    Env(String),
}

/// What a build is asked to do.
#[derive(Clone, Debug)]
pub struct BuildOptions {
    /// The build context directory on the host: what `COPY`/`ADD` read from.
    pub context: PathBuf,
    /// The Dockerfile's path, relative to `context` unless absolute; used to find its
    /// `.dockerignore`.
    pub dockerfile_name: String,
    /// `--build-arg NAME=value`s, by name.
    pub build_args: BTreeMap<String, String>,
    /// `--target`: the stage to build, by `AS` name; the last stage when `None`.
    pub target: Option<String>,
    /// `--no-cache`: look up no cached layer (every step runs), except `fresh_keys`.
    pub no_cache: bool,
    /// The network `RUN` steps get unless one sets `--network`.
    pub network: RunNetwork,
    /// `--label`s added to the final image's config, over the Dockerfile's `LABEL`s.
    pub labels: BTreeMap<String, String>,
    /// `--secret`s `RUN --mount=type=secret` can use, by id.
    pub secrets: BTreeMap<String, SecretSource>,
    /// Seconds since the Unix epoch used for every time in the image (created, history,
    /// file mtimes clamped to it), so that the same inputs give the same digest.
    pub source_date_epoch: i64,
    /// The platform the image is built for (FROM images resolved for it, `TARGET*`
    /// build args, the config's os/architecture when the base sets none).
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
/// Images named by FROM and `--from`: found in the store or pulled by the caller.
pub trait Images: Sync {
    /// The image named `name` (a reference as written in `FROM`/`--from`, variables
    /// expanded), from the store or pulled; [`BuildError::Image`] when it cannot be had.
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

/// The image a build made.
#[derive(Clone, Debug)]
pub struct BuildResult {
    /// Descriptor of the image's manifest as written to the store.
    pub descriptor: Descriptor,
    /// The image ID: its config's digest.
    pub id: Digest,
    /// How many steps were run or reused (each `FROM` and each instruction counts).
    pub steps: usize,
    /// How many of those layer steps were cache hits.
    pub cached: usize,
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
    // The PID lets prune tell the directory of a killed build from a running one's.
    let id = kiln_runtime::launch::options::random_id();
    format!("build-{}-{}", std::process::id(), &id[..16])
}

/// Runs builds.
pub struct Builder<'a> {
    /// The store base images are read from and layers, cache and the image written to.
    pub store: &'a Store,
    /// Resolves the images `FROM` and `--from` name.
    pub images: &'a dyn Images,
    /// Receives the steps, cache hits and `RUN` output as the build goes.
    pub progress: &'a dyn BuildProgress,
    /// What to build and how.
    pub opts: &'a BuildOptions,
    /// How the Dockerfile is named in error messages (e.g. `Dockerfile`).
    pub file: String,
    ignore: Ignore,
    steps: Mutex<(usize, usize)>,
    used: Mutex<Vec<(String, CacheEntry)>>,
}

impl<'a> Builder<'a> {
    /// A builder for one build; reads the context's `.dockerignore` (or
    /// `<Dockerfile>.dockerignore`) now, and fails if it exists but cannot be read.
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

/// Docker's default PATH for images that set none.
pub use kiln_oci::types::DEFAULT_PATH;

fn default_shell() -> Vec<String> {
    vec!["/bin/sh".into(), "-c".into()]
}

use kiln_oci::types::rfc3339;

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
