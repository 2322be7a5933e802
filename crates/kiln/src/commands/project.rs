//! kiln projects on the command line: `kiln lock` and `kiln init` (`kiln build DIR` and
//! `kiln run DIR` build through `crate::project_cli`). The work is in kiln-project; this
//! module parses flags and prints.

use crate::output::with_hint;
use crate::project_cli::{project_err, Notes};
use anyhow::{anyhow, bail, Context, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

// Kept while `commands/run.rs` still reaches them here.

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
    let mut req = kiln_project::BuildRequest::new(
        &dir,
        a.check,
        false,
        super::source_date_epoch()?,
        BTreeMap::new(),
    );
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
