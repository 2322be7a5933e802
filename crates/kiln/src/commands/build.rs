//! `kiln build`: a Dockerfile (or Containerfile) built without a daemon.

use crate::build_cli::{
    self, epoch, key_value, local_cache_dir, LayerCompression, NetworkMode, Printer, ProgressMode,
    StoreImages,
};
use crate::output::with_hint;
use crate::registry_flags::{PullPolicy, RegistryFlags};
use anyhow::{anyhow, bail, Context, Result};
use kiln_build::exec::{BuildOptions, Builder};
use kiln_build::schedule::Helpers;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Mutex;

#[derive(clap::Args)]
pub struct Args {
    /// Build context directory, or a kiln project (a directory with kiln.toml)
    pub(crate) context: PathBuf,
    /// kiln project: fail if kiln.lock is missing or out of date instead of updating it
    #[arg(long)]
    pub(crate) locked: bool,
    /// Dockerfile (default: CONTEXT/Dockerfile, else CONTEXT/Containerfile)
    #[arg(short, long)]
    pub(crate) file: Option<PathBuf>,
    /// Name the image (repeatable)
    #[arg(short, long = "tag")]
    pub(crate) tags: Vec<String>,
    /// A build argument `KEY=VALUE` (`KEY` alone takes it from the environment)
    #[arg(long = "build-arg")]
    pub(crate) build_args: Vec<String>,
    /// Build this stage
    #[arg(long)]
    pub(crate) target: Option<String>,
    /// A secret for `RUN --mount=type=secret`: `id=ID,src=PATH` or `id=ID,env=VAR`
    #[arg(long)]
    pub(crate) secret: Vec<String>,
    /// Offer the host's CA bundle ($SSL_CERT_FILE, else /etc/ssl/certs/ca-certificates.crt)
    /// to every RUN step: mounted at /run/kiln/host-ca.crt and named by SSL_CERT_FILE,
    /// PIP_CERT, REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE and NODE_EXTRA_CA_CERTS for the step.
    /// It is never in a layer. Also a secret `ca-certificates` for explicit mounts.
    #[arg(long)]
    pub(crate) host_ca: bool,
    /// Ignore the build cache
    #[arg(long)]
    pub(crate) no_cache: bool,
    /// Network of RUN steps
    #[arg(long, value_enum, default_value = "default")]
    pub(crate) network: NetworkMode,
    /// Platform of the image (only the host's can run RUN steps)
    #[arg(long)]
    pub(crate) platform: Option<String>,
    /// Write the image ID to this file
    #[arg(long)]
    pub(crate) iidfile: Option<PathBuf>,
    /// Add a label `KEY=VALUE` to the image
    #[arg(long)]
    pub(crate) label: Vec<String>,
    /// A message recorded with this version in the tag's history (`kiln history`)
    #[arg(short, long)]
    pub(crate) message: Option<String>,
    /// Also write the image as an archive: `type=oci|docker,dest=FILE`
    #[arg(long)]
    pub(crate) output: Option<String>,
    /// Progress output
    #[arg(long, value_enum, default_value = "auto")]
    pub(crate) progress: ProgressMode,
    /// Print only the image ID
    #[arg(short, long)]
    pub(crate) quiet: bool,
    /// Import a build cache first: `type=local,src=DIR`
    #[arg(long)]
    pub(crate) cache_from: Vec<String>,
    /// Export this build's cache: `type=local,dest=DIR`
    #[arg(long)]
    pub(crate) cache_to: Option<String>,
    /// How new layers are stored: `none` (the default, as Docker's image store; `kiln
    /// push` compresses), `gzip` or `zstd`
    #[arg(long, value_enum, default_value = "none")]
    pub(crate) compression: LayerCompression,
    /// Pull base images: `missing`, `always` or `never`
    #[arg(long, value_enum, default_value = "missing")]
    pub(crate) pull: PullPolicy,
    /// Attach an SBOM (SPDX JSON) and SLSA provenance to the image as OCI artifacts
    #[arg(long)]
    pub(crate) sbom: bool,
    /// With --sbom: attach the provenance too (`--provenance=false` leaves it out)
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub(crate) provenance: bool,
    #[command(flatten)]
    pub(crate) registry: RegistryFlags,
    /// (internal) Build only the stage with this index: a helper building it ahead
    #[arg(long, hide = true)]
    pub(crate) stage_index: Option<usize>,
    /// (internal) Write the cache keys of the layers built to this file
    #[arg(long, hide = true)]
    pub(crate) record_keys: Option<PathBuf>,
}

pub fn run(root: &Path, args: Args) -> Result<ExitCode> {
    // Before any thread starts: mounts made for build steps stay in our namespace.
    kiln_runtime::container::private_mount_namespace()?;
    let context = args
        .context
        .canonicalize()
        .with_context(|| format!("build context {}", args.context.display()))?;
    if !context.is_dir() {
        bail!("the build context {} is not a directory", context.display());
    }
    if args.file.is_none() && context.join(kiln_project::manifest::FILE).is_file() {
        let labels = args
            .label
            .iter()
            .map(|l| key_value(l, "label"))
            .collect::<Result<Vec<_>>>()?;
        return crate::project_cli::build(
            root,
            crate::project_cli::BuildArgs {
                dir: context,
                tags: args.tags.clone(),
                locked: args.locked,
                no_cache: args.no_cache,
                quiet: args.quiet || matches!(args.progress, ProgressMode::Quiet),
                json: matches!(args.progress, ProgressMode::Json),
                message: args.message.clone(),
                labels,
                provenance: args.provenance,
                iidfile: args.iidfile.clone(),
            },
        );
    }
    if args.locked {
        bail!(with_hint(
            anyhow!(
                "--locked is for kiln projects, and {} has no kiln.toml",
                context.display()
            ),
            "`kiln init` writes a kiln.toml"
        ));
    }
    let file = match &args.file {
        Some(f) => f.clone(),
        None => ["Dockerfile", "Containerfile"]
            .iter()
            .map(|n| context.join(n))
            .find(|p| p.exists())
            .ok_or_else(|| {
                with_hint(
                    anyhow!("no Dockerfile or Containerfile in {}", context.display()),
                    "name one with `-f FILE`",
                )
            })?,
    };
    let text = std::fs::read_to_string(&file)
        .with_context(|| format!("cannot read {}", file.display()))?;
    let shown = file.display().to_string();
    let df = kiln_build::dockerfile::parse(&text, &shown)?;
    let tags = args
        .tags
        .iter()
        .map(|t| super::parse_reference(t))
        .collect::<Result<Vec<_>>>()?;
    let build_args = build_cli::build_args(&args.build_args);
    // A git checkout names the commit and where it comes from (labels given win).
    let (mut labels, git) = super::git_labels(&context);
    for l in &args.label {
        let (k, v) = key_value(l, "label")?;
        labels.insert(k, v);
    }
    // What `kiln history` shows of this build.
    kiln_store::history::set_inputs(serde_json::json!({
        "git": git.as_ref().map(|g| serde_json::json!({"commit": g.commit, "dirty": g.dirty})),
        "message": args.message,
    }));
    let mut secrets = build_cli::secrets(&args.secret)?;
    let host_ca = build_cli::host_ca(args.host_ca, &mut secrets)?;
    let platform = build_cli::platform(args.platform.as_deref())?;
    let opts = BuildOptions {
        context: context.clone(),
        // The whole path: `-f build/App.Dockerfile` uses
        // `build/App.Dockerfile.dockerignore` when it exists (as Docker does).
        dockerfile_name: std::path::absolute(&file)
            .unwrap_or_else(|_| file.clone())
            .to_string_lossy()
            .into_owned(),
        build_args,
        target: args.target.clone(),
        no_cache: args.no_cache,
        network: args.network.run_network()?,
        labels,
        secrets,
        source_date_epoch: epoch(git.as_ref())?,
        platform,
        host_ca,
        stage_index: None,
        fresh_keys: Default::default(),
        compression: args.compression.into(),
    };
    let store = super::open_store(root)?;
    build_cli::import_caches(&store, &args.cache_from, args.quiet)?;
    let images = StoreImages {
        store: &store,
        policy: args.pull,
        flags: args.registry.clone(),
    };
    let printer = Printer {
        mode: if args.quiet {
            ProgressMode::Quiet
        } else {
            args.progress
        },
        out: Mutex::new(std::io::stderr()),
    };
    let started = std::time::Instant::now();
    let mut opts = opts;
    opts.stage_index = args.stage_index;
    if args.stage_index.is_none() {
        // Independent stages are built at the same time by helper processes (each a
        // `kiln build` of one stage; separate processes keep each container's reaping
        // and signals its own); the main build then finds their layers in the cache.
        let stages =
            Builder::new(&store, &images, &printer, &opts, shown.clone())?.parallel_stages(&df)?;
        if !stages.is_empty() {
            let exe = std::env::current_exe().context("cannot find the kiln executable")?;
            let helpers = Helpers::start(&store.root().join("tmp"), &stages, |i, keys| {
                let mut c = std::process::Command::new(&exe);
                c.arg("--root")
                    .arg(root)
                    .args(build_cli::helper_args(&args, &context, &file, i, keys));
                c
            })?;
            if !matches!(printer.mode, ProgressMode::Quiet | ProgressMode::Json) {
                printer.line(&format!("building stages {stages:?} in parallel"));
            }
            opts.fresh_keys.extend(helpers.wait());
        }
    }
    let builder = Builder::new(&store, &images, &printer, &opts, shown)?;
    let result = builder.build(&df)?;
    if let Some(f) = &args.record_keys {
        let keys: Vec<String> = builder.used_cache().into_iter().map(|(k, _)| k).collect();
        std::fs::write(f, keys.join("\n"))
            .with_context(|| format!("cannot write {}", f.display()))?;
    }
    if args.stage_index.is_some() {
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(c) = &args.cache_to {
        let dir = local_cache_dir(c, "dest")?;
        kiln_build::cache::export_local(&store, &builder.used_cache(), &dir)
            .map_err(|e| anyhow!("--cache-to: {e}"))?;
    }
    for t in &tags {
        store.tag(&result.descriptor, t)?;
    }
    if tags.is_empty() {
        store.add_untagged(&result.descriptor)?;
    }
    if args.sbom {
        let inputs = kiln_sbom::provenance::BuildInputs {
            name: tags.first().map(|t| t.familiar()),
            context: context.clone(),
            dockerfile: std::path::absolute(&file).unwrap_or_else(|_| file.clone()),
            build_args: opts.build_args.clone(),
            secret_ids: opts.secrets.keys().cloned().collect(),
            target: args.target.clone(),
            provenance: args.provenance,
            project: None,
        };
        kiln_sbom::attach::attach(&store, &result.descriptor, &inputs)?;
    }
    if let Some(f) = &args.iidfile {
        std::fs::write(f, result.id.to_string())
            .with_context(|| format!("cannot write {}", f.display()))?;
    }
    if let Some(o) = &args.output {
        build_cli::write_output(&store, &result.descriptor, tags.first(), o)?;
    }
    if args.quiet {
        println!("{}", result.id);
    } else {
        eprintln!(
            "built {} in {:.1}s ({} of {} layer steps cached)",
            result.id,
            started.elapsed().as_secs_f64(),
            result.cached,
            result.steps
        );
        for t in &tags {
            eprintln!("naming to {t}");
        }
        println!("{}", result.id);
    }
    Ok(ExitCode::SUCCESS)
}
