//! `kiln build`: a Dockerfile (or Containerfile) built without a daemon.

use crate::output::with_hint;
use crate::registry_flags::{resolve_or_pull, PullPolicy, RegistryFlags};
use anyhow::{anyhow, bail, Context, Result};
use kiln_build::exec::{BuildOptions, BuildProgress, Builder, Images, RunNetwork, SecretSource};
use kiln_oci::Platform;
use kiln_store::{ImageInfo, Store};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Mutex;

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum ProgressMode {
    Auto,
    Plain,
    Json,
    Quiet,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum LayerCompression {
    None,
    Gzip,
    Zstd,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum NetworkMode {
    /// A private network namespace with outbound access through pasta (the default)
    Default,
    Host,
    None,
}

#[derive(clap::Args)]
pub struct Args {
    /// Build context directory, or a kiln project (a directory with kiln.toml)
    context: PathBuf,
    /// kiln project: fail if kiln.lock is missing or out of date instead of updating it
    #[arg(long)]
    locked: bool,
    /// Dockerfile (default: CONTEXT/Dockerfile, else CONTEXT/Containerfile)
    #[arg(short, long)]
    file: Option<PathBuf>,
    /// Name the image (repeatable)
    #[arg(short, long = "tag")]
    tags: Vec<String>,
    /// A build argument `KEY=VALUE` (`KEY` alone takes it from the environment)
    #[arg(long = "build-arg")]
    build_args: Vec<String>,
    /// Build this stage
    #[arg(long)]
    target: Option<String>,
    /// A secret for `RUN --mount=type=secret`: `id=ID,src=PATH` or `id=ID,env=VAR`
    #[arg(long)]
    secret: Vec<String>,
    /// Offer the host's CA bundle ($SSL_CERT_FILE, else /etc/ssl/certs/ca-certificates.crt)
    /// to every RUN step: mounted at /run/kiln/host-ca.crt and named by SSL_CERT_FILE,
    /// PIP_CERT, REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE and NODE_EXTRA_CA_CERTS for the step.
    /// It is never in a layer. Also a secret `ca-certificates` for explicit mounts.
    #[arg(long)]
    host_ca: bool,
    /// Ignore the build cache
    #[arg(long)]
    no_cache: bool,
    /// Network of RUN steps
    #[arg(long, value_enum, default_value = "default")]
    network: NetworkMode,
    /// Platform of the image (only the host's can run RUN steps)
    #[arg(long)]
    platform: Option<String>,
    /// Write the image ID to this file
    #[arg(long)]
    iidfile: Option<PathBuf>,
    /// Add a label `KEY=VALUE` to the image
    #[arg(long)]
    label: Vec<String>,
    /// A message recorded with this version in the tag's history (`kiln history`)
    #[arg(short, long)]
    message: Option<String>,
    /// Also write the image as an archive: `type=oci|docker,dest=FILE`
    #[arg(long)]
    output: Option<String>,
    /// Progress output
    #[arg(long, value_enum, default_value = "auto")]
    progress: ProgressMode,
    /// Print only the image ID
    #[arg(short, long)]
    quiet: bool,
    /// Import a build cache first: `type=local,src=DIR`
    #[arg(long)]
    cache_from: Vec<String>,
    /// Export this build's cache: `type=local,dest=DIR`
    #[arg(long)]
    cache_to: Option<String>,
    /// How new layers are stored: `none` (the default, as Docker's image store; `kiln
    /// push` compresses), `gzip` or `zstd`
    #[arg(long, value_enum, default_value = "none")]
    compression: LayerCompression,
    /// Pull base images: `missing`, `always` or `never`
    #[arg(long, value_enum, default_value = "missing")]
    pull: PullPolicy,
    /// Attach an SBOM (SPDX JSON) and SLSA provenance to the image as OCI artifacts
    #[arg(long)]
    sbom: bool,
    /// With --sbom: attach the provenance too (`--provenance=false` leaves it out)
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    provenance: bool,
    #[command(flatten)]
    registry: RegistryFlags,
    /// (internal) Build only the stage with this index: a helper building it ahead
    #[arg(long, hide = true)]
    stage_index: Option<usize>,
    /// (internal) Write the cache keys of the layers built to this file
    #[arg(long, hide = true)]
    record_keys: Option<PathBuf>,
}

/// The arguments of a helper process that builds stage `i` ahead of the main build.
fn helper_args(
    args: &Args,
    context: &Path,
    file: &Path,
    i: usize,
    keys: &Path,
) -> Vec<std::ffi::OsString> {
    let mut v: Vec<std::ffi::OsString> = vec!["build".into(), "-q".into()];
    let mut push = |k: &str, val: &dyn AsRef<std::ffi::OsStr>| {
        v.push(k.into());
        v.push(val.as_ref().to_os_string());
    };
    push("-f", &file);
    for a in &args.build_args {
        push("--build-arg", a);
    }
    for s in &args.secret {
        push("--secret", s);
    }
    for l in &args.label {
        push("--label", l);
    }
    push(
        "--network",
        &format!("{:?}", args.network).to_ascii_lowercase(),
    );
    push(
        "--compression",
        &format!("{:?}", args.compression).to_ascii_lowercase(),
    );
    push("--pull", &format!("{:?}", args.pull).to_ascii_lowercase());
    if let Some(p) = &args.platform {
        push("--platform", p);
    }
    if let Some(t) = args.registry.tls_verify {
        push("--tls-verify", &t.to_string());
    }
    if let Some(a) = &args.registry.authfile {
        push("--authfile", a);
    }
    push("--stage-index", &i.to_string());
    push("--record-keys", &keys);
    if args.host_ca {
        v.push("--host-ca".into());
    }
    if args.no_cache {
        v.push("--no-cache".into());
    }
    v.push(context.as_os_str().to_os_string());
    v
}

/// Helper processes building stages ahead; stopped (SIGTERM, then waited for) if the
/// main build ends first.
struct Helpers(Vec<std::process::Child>);
impl Drop for Helpers {
    fn drop(&mut self) {
        for c in &mut self.0 {
            if let Ok(None) = c.try_wait() {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(c.id() as i32),
                    nix::sys::signal::Signal::SIGTERM,
                );
            }
            let _ = c.wait();
        }
    }
}

/// FROM images: the store, then a registry as `--pull` says.
struct StoreImages<'a> {
    store: &'a Store,
    policy: PullPolicy,
    flags: RegistryFlags,
}

impl Images for StoreImages<'_> {
    fn resolve(&self, name: &str) -> std::result::Result<ImageInfo, String> {
        let r = resolve_or_pull(self.store, name, self.policy, None, &self.flags)
            .map_err(|e| format!("{e:#}"))?;
        let image = self.store.image(&r.descriptor).map_err(|e| e.to_string())?;
        // Held for the whole build: a base image untagged and pruned meanwhile stays.
        self.store.hold_image(&image).map_err(|e| e.to_string())?;
        Ok(image)
    }
}

/// BuildKit-style plain progress (`#n [stage i/n] ...`), or JSON lines.
struct Printer {
    mode: ProgressMode,
    out: Mutex<std::io::Stderr>,
}

impl Printer {
    fn line(&self, s: &str) {
        let mut o = self.out.lock().expect("stderr lock");
        let _ = writeln!(o, "{s}");
    }
}

impl BuildProgress for Printer {
    fn step(&self, n: usize, stage: &str, i: usize, total: usize, text: &str) {
        match self.mode {
            ProgressMode::Json => self.line(
                &serde_json::json!({"step": n, "stage": stage, "index": i, "total": total, "instruction": text}).to_string(),
            ),
            ProgressMode::Quiet => {}
            _ => self.line(&format!("#{n} [{stage} {i}/{total}] {text}")),
        }
    }
    fn cached(&self, n: usize) {
        match self.mode {
            ProgressMode::Json => {
                self.line(&serde_json::json!({"step": n, "cached": true}).to_string())
            }
            ProgressMode::Quiet => {}
            _ => self.line(&format!("#{n} CACHED")),
        }
    }
    fn output(&self, n: usize, line: &str) {
        match self.mode {
            ProgressMode::Json => {
                self.line(&serde_json::json!({"step": n, "output": line}).to_string())
            }
            ProgressMode::Quiet => {}
            _ => self.line(&format!("#{n} {line}")),
        }
    }
    fn done(&self, n: usize, secs: f64) {
        match self.mode {
            ProgressMode::Json => {
                self.line(&serde_json::json!({"step": n, "seconds": secs}).to_string())
            }
            ProgressMode::Quiet => {}
            _ => self.line(&format!("#{n} DONE {secs:.1}s")),
        }
    }
}

fn key_value(s: &str, what: &str) -> Result<(String, String)> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => bail!(with_hint(
            anyhow!("invalid {what} `{s}`"),
            &format!("use `--{what} KEY=VALUE`")
        )),
    }
}

/// The directory of `type=local,src=DIR` (or `dest=`).
fn local_cache_dir(spec: &str, key: &str) -> Result<PathBuf> {
    let mut kind = "local";
    let mut dir = None;
    for kv in spec.split(',') {
        match kv.split_once('=') {
            Some(("type", v)) => kind = v,
            Some((k, v)) if k == key => dir = Some(PathBuf::from(v)),
            _ => {}
        }
    }
    if kind != "local" {
        bail!(with_hint(
            anyhow!("cache type `{kind}` is not supported"),
            "use `type=local,src=DIR` / `type=local,dest=DIR`"
        ));
    }
    dir.ok_or_else(|| {
        with_hint(
            anyhow!("`{spec}` names no directory"),
            &format!("use `type=local,{key}=DIR`"),
        )
    })
}

/// SOURCE_DATE_EPOCH: the variable, else the last commit's time when the context is a
/// git checkout, else 0 (the epoch).
/// SOURCE_DATE_EPOCH, else the time of the context's git commit, else 0.
fn epoch(git: Option<&kiln_build::git::GitInfo>) -> Result<i64> {
    if let Some(e) = super::source_date_epoch()? {
        return Ok(e);
    }
    Ok(git.and_then(|g| g.time).unwrap_or(0))
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
    let mut build_args = BTreeMap::new();
    for a in &args.build_args {
        match a.split_once('=') {
            Some((k, v)) => build_args.insert(k.to_string(), v.to_string()),
            None => match std::env::var(a) {
                Ok(v) => build_args.insert(a.clone(), v),
                Err(_) => None,
            },
        };
    }
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
    let mut secrets = BTreeMap::new();
    for s in &args.secret {
        let mut id = None;
        let mut src = None;
        for kv in s.split(',') {
            match kv.split_once('=') {
                Some(("id", v)) => id = Some(v.to_string()),
                Some(("src" | "source", v)) => src = Some(SecretSource::File(PathBuf::from(v))),
                Some(("env", v)) => src = Some(SecretSource::Env(v.to_string())),
                Some(("type", _)) => {}
                _ => bail!(with_hint(
                    anyhow!("invalid --secret `{s}`"),
                    "use `id=ID,src=PATH` or `id=ID,env=VAR`"
                )),
            }
        }
        let id = id.ok_or_else(|| anyhow!("--secret `{s}` has no id"))?;
        let src = src.unwrap_or_else(|| SecretSource::Env(id.clone()));
        if let SecretSource::File(p) = &src {
            if !p.is_file() {
                bail!("--secret {id}: {} is not a file", p.display());
            }
        }
        secrets.insert(id, src);
    }
    let mut host_ca = None;
    if args.host_ca {
        let ca = std::env::var_os("SSL_CERT_FILE")
            .map(PathBuf::from)
            .filter(|p| p.is_file())
            .unwrap_or_else(|| PathBuf::from("/etc/ssl/certs/ca-certificates.crt"));
        if !ca.is_file() {
            bail!("--host-ca: no CA bundle at {}", ca.display());
        }
        secrets.insert("ca-certificates".into(), SecretSource::File(ca.clone()));
        host_ca = Some(ca);
    }
    let platform = match &args.platform {
        Some(p) => {
            let p = Platform::parse(p)?;
            let host = Platform::host();
            if p.os != host.os || p.architecture != host.architecture {
                bail!("--platform {p}: only the host's platform ({host}) can be built here");
            }
            p
        }
        None => Platform::host(),
    };
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
        network: match args.network {
            NetworkMode::None => RunNetwork::None,
            NetworkMode::Host => RunNetwork::Host,
            NetworkMode::Default => {
                if kiln_runtime::pasta::binary().is_none() {
                    bail!(with_hint(
                        anyhow!("RUN steps get a private network through `pasta`, which is not installed"),
                        "apt-get install passt, or pass --network host (or none)",
                    ));
                }
                RunNetwork::Private
            }
        },
        labels,
        secrets,
        source_date_epoch: epoch(git.as_ref())?,
        platform,
        host_ca,
        stage_index: None,
        fresh_keys: Default::default(),
        compression: match args.compression {
            LayerCompression::None => kiln_layer::Compression::None,
            LayerCompression::Gzip => kiln_layer::Compression::Gzip,
            LayerCompression::Zstd => kiln_layer::Compression::Zstd,
        },
    };
    let store = super::open_store(root)?;
    for c in &args.cache_from {
        let dir = local_cache_dir(c, "src")?;
        if dir.join("index.json").exists() {
            let n = kiln_build::cache::import_local(&store, &dir)
                .map_err(|e| anyhow!("--cache-from: {e}"))?;
            if !args.quiet {
                eprintln!("imported {n} cached layers from {}", dir.display());
            }
        } else if !args.quiet {
            // BuildKit ignores a missing cache too: the first CI run has none.
            eprintln!("--cache-from {}: no cache there yet", dir.display());
        }
    }
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
            let keys_dir = tempfile::Builder::new()
                .prefix(&format!("build-keys-{}-", std::process::id()))
                .tempdir_in(store.root().join("tmp"))?;
            let exe = std::env::current_exe().context("cannot find the kiln executable")?;
            let mut helpers = Helpers(Vec::new());
            for &i in &stages {
                let keys = keys_dir.path().join(i.to_string());
                let child = std::process::Command::new(&exe)
                    .arg("--root")
                    .arg(root)
                    .args(helper_args(&args, &context, &file, i, &keys))
                    .stdin(std::process::Stdio::null())
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .spawn()
                    .context("cannot start a build helper")?;
                helpers.0.push(child);
            }
            if !matches!(printer.mode, ProgressMode::Quiet | ProgressMode::Json) {
                printer.line(&format!("building stages {stages:?} in parallel"));
            }
            for c in &mut helpers.0 {
                // A helper that fails leaves its stage to the main build, which reports
                // the error where it happens.
                let _ = c.wait();
            }
            for &i in &stages {
                if let Ok(text) = std::fs::read_to_string(keys_dir.path().join(i.to_string())) {
                    opts.fresh_keys.extend(text.lines().map(str::to_string));
                }
            }
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
        let mut kind = None;
        let mut dest = None;
        for kv in o.split(',') {
            match kv.split_once('=') {
                Some(("type", v)) => kind = Some(v.to_string()),
                Some(("dest", v)) => dest = Some(PathBuf::from(v)),
                _ => bail!("invalid --output `{o}`: use type=oci|docker,dest=FILE"),
            }
        }
        let format = match kind.as_deref() {
            Some("oci") => kiln_archive::SaveFormat::Oci,
            Some("docker") => kiln_archive::SaveFormat::Docker,
            _ => bail!("invalid --output `{o}`: type must be oci or docker"),
        };
        let dest = dest.ok_or_else(|| anyhow!("--output `{o}` has no dest"))?;
        let images = [kiln_archive::SaveImage {
            descriptor: result.descriptor.clone(),
            name: tags.first().cloned(),
        }];
        let progress = crate::output::Reporter::new(true);
        super::write_archive(Some(&dest), |out| {
            kiln_archive::save(&store, &images, out, format, &progress)?;
            Ok(())
        })?;
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
