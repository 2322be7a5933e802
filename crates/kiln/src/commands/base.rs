//! `kiln base debian`: a Debian image straight from the archive (see kiln-debian).

use crate::output::with_hint;
use anyhow::{anyhow, bail, Context, Result};
use kiln_build::exec::{BuildOptions, BuildProgress, Builder, Images, RunNetwork};
use kiln_debian::image::{self as debimage, Options, DEFAULT_MIRROR, DEFAULT_SECURITY_MIRROR};
use kiln_oci::types::Descriptor;
use kiln_oci::Platform;
use kiln_store::{ImageInfo, Store};
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

struct Notes {
    quiet: bool,
    started: std::time::Instant,
}

impl debimage::Progress for Notes {
    fn note(&self, msg: &str) {
        if !self.quiet {
            eprintln!("[{:5.1}s] {msg}", self.started.elapsed().as_secs_f64());
        }
    }
}

impl BuildProgress for Notes {
    fn output(&self, _n: usize, line: &str) {
        if !self.quiet {
            eprintln!("  | {line}");
        }
    }
}

/// The image under construction, as FROM of the container step.
struct Stage<'a> {
    store: &'a Store,
    descriptor: Descriptor,
}

impl Images for Stage<'_> {
    fn resolve(&self, _name: &str) -> std::result::Result<ImageInfo, String> {
        self.store
            .image(&self.descriptor)
            .map_err(|e| e.to_string())
    }
}

fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "aarch64" => "arm64",
        _ => "amd64",
    }
}

pub fn run(root: &Path, args: Args) -> Result<ExitCode> {
    let Distro::Debian(a) = args.distro;
    // Before any thread starts: the container step's mounts stay in our namespace.
    kiln_runtime::container::private_mount_namespace()?;
    let started = std::time::Instant::now();
    let arch = a.arch.clone().unwrap_or_else(|| host_arch().to_string());
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
    let cache = store.root().join("cache/debian");
    let notes = Notes {
        quiet: a.quiet || a.json,
        started,
    };
    let fetcher = kiln_debian::fetch::Fetcher::new();
    let (lock, resolved) =
        debimage::plan(&opts, &fetcher, &cache, &notes).map_err(|e| anyhow!("{e}"))?;
    let base_count = lock.packages.iter().filter(|p| p.group == "base").count();
    debimage::Progress::note(
        &notes,
        &format!(
            "{} {} packages ({base_count} essential/required, {} requested and their dependencies) for {} {}",
            if resolved { "resolved" } else { "locked:" },
            lock.packages.len(),
            lock.packages.len() - base_count,
            lock.suite,
            lock.architecture,
        ),
    );
    if resolved {
        if let Some(l) = &opts.lock {
            debimage::Progress::note(&notes, &format!("wrote the lock {}", l.display()));
        }
    }
    let (downloaded, bytes) = debimage::download(&lock, &fetcher, &cache, opts.jobs, &notes)
        .map_err(|e| anyhow!("{e}"))?;
    let epoch = source_date_epoch.unwrap_or_else(|| lock.timestamp());
    let asm = debimage::assemble(&store, &lock, &cache, epoch, opts.jobs.min(4), &notes)
        .map_err(|e| anyhow!("{e}"))?;
    let (stage, _) = store.write_image(&asm.config, asm.layers.clone())?;
    let mut script_names: Vec<String> = Vec::new();
    for s in &asm.scripts {
        let mut what = Vec::new();
        if s.preinst {
            what.push("preinst");
        }
        if s.postinst {
            what.push("postinst");
        }
        script_names.push(format!("{} ({})", s.name, what.join(", ")));
    }
    if asm.ldconfig {
        script_names.push("libc-bin (ldconfig)".into());
    }
    let descriptor = if script_names.is_empty() {
        stage
    } else if arch != host_arch() {
        if !asm.scripts.is_empty() {
            bail!(with_hint(
                anyhow!(
                    "the maintainer scripts of {} must run, and this {} host cannot run {arch} programs",
                    script_names.join(", "),
                    host_arch()
                ),
                "build on an {arch} machine, or leave out the packages that need their scripts"
            ));
        }
        debimage::Progress::note(
            &notes,
            &format!("ldconfig not run ({arch} programs cannot run on this host): the image has no /etc/ld.so.cache"),
        );
        stage
    } else {
        debimage::Progress::note(
            &notes,
            &format!(
                "running in a container the maintainer scripts kiln does not replicate: {}",
                script_names.join(", ")
            ),
        );
        configure_in_container(&store, stage, &asm, epoch, &notes)?
    };
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
        let native: BTreeMap<&str, String> = asm
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
            "downloaded": {"packages": downloaded, "bytes": bytes},
            "cached_layers": asm.cached_layers,
            "scripts_run": script_names,
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

/// Runs the maintainer scripts kiln does not replicate (and ldconfig) in a kiln
/// container on top of `stage`, as one build step with no network: its changes become
/// the image's last layer, cached like any build step.
fn configure_in_container(
    store: &Store,
    stage: Descriptor,
    asm: &debimage::Assembled,
    epoch: i64,
    notes: &Notes,
) -> Result<Descriptor> {
    let script = debimage::configure_script(asm);
    let dockerfile = format!(
        "FROM kiln-debian-stage\nRUN --network=none {}\n",
        serde_json::to_string(&["/bin/sh", "-c", &script])?
    );
    let df = kiln_build::dockerfile::parse(&dockerfile, "kiln base debian")?;
    let context = tempfile::Builder::new()
        .prefix(&format!("debian-context-{}-", std::process::id()))
        .tempdir_in(store.root().join("tmp"))
        .context("cannot make a build context")?;
    let opts = BuildOptions {
        context: context.path().to_path_buf(),
        dockerfile_name: "Dockerfile".into(),
        build_args: BTreeMap::new(),
        target: None,
        no_cache: false,
        network: RunNetwork::None,
        labels: BTreeMap::new(),
        secrets: BTreeMap::new(),
        source_date_epoch: epoch,
        platform: Platform::host(),
        host_ca: None,
        stage_index: None,
        fresh_keys: Default::default(),
        compression: kiln_layer::Compression::None,
    };
    let images = Stage {
        store,
        descriptor: stage,
    };
    let builder = Builder::new(store, &images, notes, &opts, "kiln base debian".into())?;
    let result = builder
        .build(&df)
        .map_err(|e| anyhow!("the maintainer scripts failed: {e}"))?;
    Ok(result.descriptor)
}
