//! `kiln base debian`: a Debian image straight from the archive (see kiln-debian).

use crate::output::with_hint;
use crate::project_cli::{project_err, Notes};
use anyhow::{anyhow, bail, Result};
use kiln_debian::image::{Options, DEFAULT_MIRROR, DEFAULT_SECURITY_MIRROR};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub distro: Distro,
}

#[derive(clap::Subcommand)]
pub enum Distro {
    /// Build a Debian image from the archive: verified, resolved, reproducible
    Debian(DebianArgs),
}

#[derive(clap::Args)]
pub struct DebianArgs {
    /// Debian suite (codename): bookworm, trixie, ...
    #[arg(long, default_value = "bookworm")]
    pub suite: String,
    /// Packages to install on top of the Essential/required set and apt
    /// (comma-separated; `name=version` pins a version)
    #[arg(long, short = 'p', value_delimiter = ',')]
    pub packages: Vec<String>,
    /// Name the image (repeatable)
    #[arg(short = 't', long = "tag")]
    pub tags: Vec<String>,
    /// Archive mirror (http://, https:// or file://)
    #[arg(long, default_value = DEFAULT_MIRROR)]
    pub mirror: String,
    /// Security archive mirror, or `none`
    #[arg(long, default_value = DEFAULT_SECURITY_MIRROR)]
    pub security_mirror: String,
    /// Leave out the SUITE-updates suite
    #[arg(long)]
    pub no_updates: bool,
    /// Archive components (comma-separated)
    #[arg(long, value_delimiter = ',', default_value = "main")]
    pub components: Vec<String>,
    /// Architecture: amd64 or arm64 (default: the host's)
    #[arg(long)]
    pub arch: Option<String>,
    /// Lock file: written on the first run, then installed exactly
    #[arg(long, value_name = "FILE")]
    pub lock: Option<PathBuf>,
    /// OpenPGP keyring to trust instead of the Debian archive keys (repeatable)
    #[arg(long, value_name = "FILE")]
    pub keyring: Vec<PathBuf>,
    /// Parallel downloads
    #[arg(long, default_value_t = 8)]
    pub jobs: usize,
    /// Print a JSON report on stdout
    #[arg(long)]
    pub json: bool,
    /// Print only the image ID
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

pub fn run(root: &Path, args: Args) -> Result<ExitCode> {
    let Distro::Debian(a) = args.distro;
    // Before any thread starts: the container step's mounts stay in our namespace.
    kiln_runtime::container::private_mount_namespace()?;
    let started = std::time::Instant::now();
    let arch = a
        .arch
        .clone()
        .unwrap_or_else(|| kiln_project::debian::host_arch().to_string());
    if !matches!(arch.as_str(), "amd64" | "arm64") {
        bail!(with_hint(
            anyhow!("--arch {arch} is not supported"),
            "use amd64 or arm64"
        ));
    }
    let tags = a
        .tags
        .iter()
        .map(|t| super::parse_reference(t))
        .collect::<Result<Vec<_>>>()?;
    let source_date_epoch = match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) if !v.is_empty() => Some(
            v.parse::<i64>()
                .map_err(|_| anyhow!("SOURCE_DATE_EPOCH=`{v}` is not a number of seconds"))?,
        ),
        _ => None,
    };
    let opts = Options {
        suite: a.suite.clone(),
        arch: arch.clone(),
        mirror: a.mirror.trim_end_matches('/').to_string(),
        security_mirror: (a.security_mirror != "none")
            .then(|| a.security_mirror.trim_end_matches('/').to_string()),
        updates: !a.no_updates,
        components: a.components.clone(),
        packages: a
            .packages
            .iter()
            .map(|p| p.trim().to_string())
            .filter(|p| !p.is_empty())
            .collect(),
        keyrings: a.keyring.clone(),
        lock: a.lock.clone(),
        source_date_epoch,
        jobs: a.jobs.max(1),
    };
    let store = super::open_store(root)?;
    let notes = Notes {
        quiet: a.quiet || a.json,
        started,
    };
    let img = kiln_project::debian::build(&store, &opts, &notes).map_err(project_err)?;
    let descriptor = img.descriptor.clone();
    let (lock, resolved) = (&img.lock, img.resolved);
    for t in &tags {
        store.tag(&descriptor, t)?;
    }
    if tags.is_empty() {
        store.add_untagged(&descriptor)?;
    }
    let info = store.image(&descriptor)?;
    let id = info.id.clone();
    let secs = started.elapsed().as_secs_f64();
    if a.json {
        let native: BTreeMap<&str, String> = img
            .handling
            .iter()
            .map(|(n, kind, why)| {
                (
                    n.as_str(),
                    match kind.as_str() {
                        "native" => format!("native: {why}"),
                        "nothing" => format!("nothing to do: {why}"),
                        _ => "run in a container".to_string(),
                    },
                )
            })
            .collect();
        let report = serde_json::json!({
            "id": id.to_string(),
            "digest": descriptor.digest.to_string(),
            "tags": tags.iter().map(|t| t.to_string()).collect::<Vec<_>>(),
            "suite": lock.suite,
            "architecture": lock.architecture,
            "packages": lock.packages.len(),
            "resolved": resolved,
            "lock": opts.lock.as_ref().map(|p| p.display().to_string()),
            "downloaded": {"packages": img.downloaded, "bytes": img.bytes},
            "cached_layers": img.cached_layers,
            "scripts_run": img.scripts_run,
            "maintainer_scripts": native,
            "seconds": secs,
        });
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else if a.quiet {
        println!("{id}");
    } else {
        eprintln!("built {id} in {secs:.1}s");
        for t in &tags {
            eprintln!("naming to {t}");
        }
        println!("{id}");
    }
    Ok(ExitCode::SUCCESS)
}
