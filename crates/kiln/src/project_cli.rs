//! Building kiln projects for `kiln build DIR`, `kiln run DIR` and `kiln deploy DIR`:
//! progress notes, errors with their hints, and the build report.

use crate::output::with_hint;
use anyhow::{anyhow, Context, Result};
use kiln_project::image::default_tags;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

pub use kiln_project::image::project_dir;

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
    match e.hint() {
        Some(h) if !h.is_empty() => with_hint(anyhow!("{e}"), &h),
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
    let store = crate::commands::open_store(root)?;
    let (mut labels, git) = crate::commands::git_labels(&a.dir);
    labels.extend(a.labels.iter().cloned());
    kiln_store::history::set_inputs(serde_json::json!({
        "git": git.as_ref().map(|g| serde_json::json!({"commit": g.commit, "dirty": g.dirty})),
        "message": a.message,
    }));
    let notes = Notes {
        quiet: a.quiet || a.json,
        started,
    };
    let req = kiln_project::BuildRequest::new(
        &a.dir,
        a.locked,
        a.no_cache,
        crate::commands::source_date_epoch()?,
        labels,
    );
    let outcome = kiln_project::build(&store, &req, &notes).map_err(project_err)?;
    let descriptor = outcome.descriptor.clone().expect("a build makes an image");
    let tags = default_tags(&outcome, &a.tags).map_err(project_err)?;
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
    let store = crate::commands::open_store(root)?;
    let notes = Notes {
        quiet: false,
        started: Instant::now(),
    };
    let req = kiln_project::BuildRequest::new(
        dir,
        false,
        false,
        crate::commands::source_date_epoch()?,
        BTreeMap::new(),
    );
    let outcome = kiln_project::build(&store, &req, &notes).map_err(project_err)?;
    let descriptor = outcome.descriptor.clone().expect("a build makes an image");
    for t in default_tags(&outcome, &[]).map_err(project_err)? {
        store.tag(&descriptor, &t)?;
    }
    Ok((descriptor.digest.to_string(), outcome.project))
}

/// The flags of `kiln run` a project gives defaults for.
pub struct RunFlags<'a> {
    pub image: &'a mut String,
    pub network: &'a str,
    pub publish: &'a mut Vec<String>,
    pub cpus: &'a mut Option<f64>,
    pub memory: &'a mut Option<String>,
    pub gpus: &'a mut Option<String>,
}

/// `kiln run DIR` of a kiln project: built when stale, then run with its ports and
/// resources (flags given win). Nothing happens when the image is not a project.
pub fn run_defaults(root: &Path, f: RunFlags) -> Result<()> {
    let Some(dir) = project_dir(f.image.as_str()) else {
        return Ok(());
    };
    let (image, project) = build_for_run(root, &dir)?;
    *f.image = image;
    if f.publish.is_empty() && !matches!(f.network, "none" | "host") {
        *f.publish = project.ports.iter().map(|p| format!("{p}:{p}")).collect();
    }
    if f.cpus.is_none() {
        *f.cpus = project.manifest.resources.cpus.map(|c| c.value());
    }
    if f.memory.is_none() {
        *f.memory = project.memory_bytes.map(|b| b.to_string());
    }
    if f.gpus.is_none() && project.manifest.resources.gpus > 0 {
        *f.gpus = Some(project.manifest.resources.gpus.to_string());
    }
    Ok(())
}
