//! kiln projects on the command line: `kiln build DIR` (when DIR has kiln.toml),
//! `kiln lock`, `kiln init`, and `kiln run DIR`. The work is in kiln-project; this module
//! parses flags and prints.

use crate::output::with_hint;
use anyhow::{anyhow, bail, Context, Result};
use kiln_oci::Reference;
use kiln_project::build::{BuildOutcome, BuildRequest};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

/// Progress lines on stderr: `[  1.2s] note` and the output of container steps.
pub struct Notes {
    pub quiet: bool,
    pub started: Instant,
}

impl kiln_debian::image::Progress for Notes {
    fn note(&self, msg: &str) {
        if !self.quiet {
            eprintln!("[{:5.1}s] {msg}", self.started.elapsed().as_secs_f64());
        }
    }
}

impl kiln_build::exec::BuildProgress for Notes {
    fn output(&self, _n: usize, line: &str) {
        if !self.quiet {
            eprintln!("  | {line}");
        }
    }
}

/// A kiln-project error as an anyhow error with its hint.
pub fn project_err(e: kiln_project::Error) -> anyhow::Error {
    match e.hint_text() {
        Some(h) if !h.is_empty() => with_hint(anyhow!("{e}"), h),
        _ => anyhow!("{e}"),
    }
}

/// What `kiln build DIR` passes for a project.
pub struct BuildArgs {
    pub dir: PathBuf,
    pub tags: Vec<String>,
    pub locked: bool,
    pub no_cache: bool,
    pub quiet: bool,
    pub json: bool,
    pub message: Option<String>,
    pub labels: Vec<(String, String)>,
    pub provenance: bool,
    pub iidfile: Option<PathBuf>,
}

fn request(
    dir: &Path,
    locked: bool,
    no_cache: bool,
    labels: BTreeMap<String, String>,
) -> Result<BuildRequest> {
    Ok(BuildRequest {
        dir: dir.to_path_buf(),
        locked,
        lock_only: false,
        refresh: false,
        no_cache,
        jobs: 8,
        source_date_epoch: super::source_date_epoch()?,
        labels,
    })
}

/// The names a project image gets: the ones given, else NAME:VERSION and NAME:latest.
fn default_tags(outcome: &BuildOutcome, given: &[String]) -> Result<Vec<Reference>> {
    if !given.is_empty() {
        return given.iter().map(|t| super::parse_reference(t)).collect();
    }
    let p = &outcome.project;
    let mut v = Vec::new();
    if let Some(ver) = &p.version {
        v.push(super::parse_reference(&format!("{}:{ver}", p.name))?);
    }
    v.push(super::parse_reference(&format!("{}:latest", p.name))?);
    Ok(v)
}

fn human_size(n: u64) -> String {
    if n >= 1 << 30 {
        format!("{:.1} GB", n as f64 / 1e9)
    } else if n >= 1 << 20 {
        format!("{:.1} MB", n as f64 / 1e6)
    } else {
        format!("{:.1} kB", n as f64 / 1e3)
    }
}

/// Builds the project in `a.dir`; returns the image's descriptor and tags.
pub fn build(root: &Path, a: BuildArgs) -> Result<ExitCode> {
    let started = Instant::now();
    let store = super::open_store(root)?;
    let (mut labels, git) = super::git_labels(&a.dir);
    labels.extend(a.labels.iter().cloned());
    kiln_store::history::set_inputs(serde_json::json!({
        "git": git.as_ref().map(|g| serde_json::json!({"commit": g.commit, "dirty": g.dirty})),
        "message": a.message,
    }));
    let notes = Notes {
        quiet: a.quiet || a.json,
        started,
    };
    let req = request(&a.dir, a.locked, a.no_cache, labels)?;
    let outcome = kiln_project::build(&store, &req, &notes).map_err(project_err)?;
    let descriptor = outcome.descriptor.clone().expect("a build makes an image");
    let tags = default_tags(&outcome, &a.tags)?;
    for t in &tags {
        store.tag(&descriptor, t)?;
    }
    let info = store.image(&descriptor)?;
    // A project image always carries its SBOM and provenance (`kiln sbom`, `kiln push`).
    {
        let base_digest = info
            .config
            .config
            .as_ref()
            .and_then(|c| c.labels.as_ref())
            .and_then(|l| l.get("org.opencontainers.image.base.digest"))
            .cloned()
            .unwrap_or_default();
        let inputs = kiln_sbom::provenance::BuildInputs {
            name: tags.first().map(|t| t.familiar()),
            context: a.dir.clone(),
            dockerfile: a.dir.join(kiln_project::manifest::FILE),
            build_args: BTreeMap::new(),
            secret_ids: vec![],
            target: None,
            provenance: a.provenance,
            project: Some(kiln_sbom::provenance::ProjectInputs {
                lock: a.dir.join(kiln_project::lockfile::FILE),
                base: format!("{}@{base_digest}", outcome.lock.base.image),
            }),
        };
        kiln_sbom::attach::attach(&store, &descriptor, &inputs)?;
    }
    if let Some(f) = &a.iidfile {
        std::fs::write(f, info.id.to_string())
            .with_context(|| format!("cannot write {}", f.display()))?;
    }
    let secs = started.elapsed().as_secs_f64();
    if a.json {
        let report = serde_json::json!({
            "id": info.id.to_string(),
            "digest": descriptor.digest.to_string(),
            "tags": tags.iter().map(|t| t.to_string()).collect::<Vec<_>>(),
            "lock": {"digest": outcome.lock.digest(), "changes": outcome.lock_changes},
            "layers": outcome.layers,
            "seconds": secs,
        });
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else if a.quiet {
        println!("{}", info.id);
    } else {
        for l in &outcome.layers {
            eprintln!(
                "  {:<7} {:>9}  {}{}",
                l.kind,
                human_size(l.size),
                l.name,
                if l.cached { "  (cached)" } else { "" }
            );
        }
        eprintln!("built {} in {secs:.1}s", info.id);
        for t in &tags {
            eprintln!("naming to {t}");
        }
        println!("{}", info.id);
    }
    Ok(ExitCode::SUCCESS)
}

/// Builds the project for `kiln run DIR` (quietly when nothing changed) and returns the
/// image digest and the project.
pub fn build_for_run(root: &Path, dir: &Path) -> Result<(String, kiln_project::Project)> {
    // Before any thread starts: the mounts of build containers (Debian scripts, sdist
    // builds) stay in this process's namespace.
    kiln_runtime::container::private_mount_namespace()?;
    let store = super::open_store(root)?;
    let notes = Notes {
        quiet: false,
        started: Instant::now(),
    };
    let req = request(dir, false, false, BTreeMap::new())?;
    let outcome = kiln_project::build(&store, &req, &notes).map_err(project_err)?;
    let descriptor = outcome.descriptor.clone().expect("a build makes an image");
    for t in default_tags(&outcome, &[])? {
        store.tag(&descriptor, &t)?;
    }
    Ok((descriptor.digest.to_string(), outcome.project))
}

/// The project directory `arg` names, if it names one (`.`, `./x`, `/x`, `../x` with a
/// kiln.toml).
pub fn project_dir(arg: &str) -> Option<PathBuf> {
    let looks_like_path = arg == "."
        || arg == ".."
        || arg.starts_with("./")
        || arg.starts_with('/')
        || arg.starts_with("../");
    let p = Path::new(arg);
    (looks_like_path && p.join(kiln_project::manifest::FILE).is_file())
        .then(|| p.canonicalize().unwrap_or_else(|_| p.to_path_buf()))
}

#[derive(clap::Args)]
pub struct LockArgs {
    /// The project directory
    #[arg(default_value = ".")]
    dir: PathBuf,
    /// Resolve everything again (newest versions the inputs allow), even if kiln.lock is fresh
    #[arg(long)]
    upgrade: bool,
    /// Fail if kiln.lock is missing or out of date instead of writing it (for CI)
    #[arg(long)]
    check: bool,
    /// Print a JSON report on stdout
    #[arg(long)]
    json: bool,
}

pub fn run_lock(root: &Path, a: LockArgs) -> Result<ExitCode> {
    let started = Instant::now();
    let store = super::open_store(root)?;
    let dir = a
        .dir
        .canonicalize()
        .with_context(|| format!("project {}", a.dir.display()))?;
    let notes = Notes {
        quiet: a.json,
        started,
    };
    let mut req = request(&dir, a.check, false, BTreeMap::new())?;
    req.lock_only = true;
    req.refresh = a.upgrade;
    let outcome = kiln_project::build(&store, &req, &notes).map_err(project_err)?;
    let lock = &outcome.lock;
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "lock": dir.join(kiln_project::lockfile::FILE).display().to_string(),
                "digest": lock.digest(),
                "changes": outcome.lock_changes,
                "base": lock.base.image,
                "debian_packages": lock.base.debian.as_ref().map(|d| d.packages.len()),
                "python": {"version": lock.python.version, "platform": lock.python.platform, "packages": lock.python.packages.len()},
                "weights": lock.weights.iter().map(|w| serde_json::json!({"name": w.name, "files": w.files.len()})).collect::<Vec<_>>(),
            }))?
        );
    } else {
        let state = if outcome.lock_changes.is_empty() {
            "is up to date".to_string()
        } else {
            format!("written ({})", outcome.lock_changes.join("; "))
        };
        eprintln!(
            "kiln.lock {state}: base {}{}, Python {} ({}) with {} distributions, {} weights entries",
            lock.base.image,
            lock.base
                .debian
                .as_ref()
                .map(|d| format!(" ({} Debian packages)", d.packages.len()))
                .unwrap_or_default(),
            lock.python.version,
            lock.python.platform,
            lock.python.packages.len(),
            lock.weights.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(clap::Args)]
pub struct InitArgs {
    /// The project directory
    #[arg(default_value = ".")]
    dir: PathBuf,
    /// Project (image) name (default: pyproject's name, else the directory's)
    #[arg(long)]
    name: Option<String>,
    /// Base: debian:bookworm, debian:trixie or an image reference
    #[arg(long)]
    base: Option<String>,
    /// Python version (MAJOR.MINOR)
    #[arg(long)]
    python: Option<String>,
    /// The command that starts the app (a shell-style string, split on spaces)
    #[arg(long)]
    command: Option<String>,
    /// The port the app listens on
    #[arg(long)]
    port: Option<u16>,
    /// Overwrite an existing kiln.toml
    #[arg(long, short)]
    force: bool,
}

pub fn run_init(a: InitArgs) -> Result<ExitCode> {
    let dir = a
        .dir
        .canonicalize()
        .with_context(|| format!("project {}", a.dir.display()))?;
    let toml_path = dir.join(kiln_project::manifest::FILE);
    if toml_path.exists() && !a.force {
        bail!(with_hint(
            anyhow!("{} exists", toml_path.display()),
            "`kiln init --force` overwrites it"
        ));
    }
    let opts = kiln_project::init::InitOptions {
        name: a.name.clone(),
        base: a.base.clone(),
        python: a.python.clone(),
        command: a
            .command
            .as_ref()
            .map(|c| c.split_whitespace().map(str::to_string).collect()),
        port: a.port,
    };
    let d = kiln_project::init::detect(&dir, &opts).map_err(|e| anyhow!("{e}"))?;
    let text = kiln_project::init::render_toml(&d);
    std::fs::write(&toml_path, &text)
        .with_context(|| format!("cannot write {}", toml_path.display()))?;
    let ignore_path = dir.join(".kilnignore");
    let wrote_ignore = if ignore_path.exists() {
        false
    } else {
        std::fs::write(&ignore_path, kiln_project::init::render_ignore(&d))
            .with_context(|| format!("cannot write {}", ignore_path.display()))?;
        true
    };
    eprintln!("wrote {}", toml_path.display());
    if wrote_ignore {
        eprintln!("wrote {}", ignore_path.display());
    }
    for l in &d.detected {
        eprintln!("  detected: {l}");
    }
    for l in &d.missing {
        eprintln!("  check: {l}");
    }
    eprintln!(
        "next: `kiln build {}` (then `kiln run {}`)",
        a.dir.display(),
        a.dir.display()
    );
    Ok(ExitCode::SUCCESS)
}
