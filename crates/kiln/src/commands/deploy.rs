//! `kiln deploy`: Kubernetes objects for an image in the store (kiln-deploy writes them;
//! this pushes first with `--push` and finds the digest the registry serves).

use crate::output::{with_hint, Reporter};
use crate::registry_flags::{push_image, RegistryFlags};
use crate::versions::{version_error, warn_bad};
use anyhow::{anyhow, Context, Result};
use kiln_deploy::{default_name, registry_name, Pullable};
use kiln_oci::Reference;
use kiln_store::history;
use kiln_store::Store;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Yaml,
    Json,
}

#[derive(clap::Args)]
pub struct Args {
    /// Image in the store (name, ID or digest), or a kiln project directory (built when
    /// stale; its ports, resources, healthcheck and writable paths are the defaults)
    image: String,
    /// The objects for the version before the current one in the tag's history (or the
    /// one `--to` names): what `kubectl apply` needs to roll a deployment back
    #[arg(long)]
    rollback: bool,
    /// With --rollback: the version (a digest from `kiln history`, or -N for N back)
    #[arg(long, requires = "rollback", value_name = "DIGEST|-N")]
    to: Option<String>,
    /// Push the image here first (`registry.example.com/team/name[:tag]`); the objects
    /// reference the digest the registry serves
    #[arg(long, value_name = "REGISTRY/NAME[:TAG]")]
    push: Option<String>,
    /// Fixed number of pods (default 1)
    #[arg(long, value_name = "N")]
    replicas: Option<i32>,
    /// Fewest pods the autoscaler keeps (needs --max)
    #[arg(long, value_name = "N")]
    min: Option<i32>,
    /// Most pods the autoscaler makes: writes a HorizontalPodAutoscaler
    #[arg(long, value_name = "N")]
    max: Option<i32>,
    /// CPU utilization the autoscaler aims at, in percent of the CPU request (default 80)
    #[arg(long, value_name = "PCT")]
    cpu_target: Option<i32>,
    /// NVIDIA GPUs per pod (`nvidia.com/gpu`), with the matching toleration
    #[arg(long, value_name = "N")]
    gpus: Option<u32>,
    /// Run only on nodes with this label (repeatable)
    #[arg(long, value_name = "KEY=VALUE")]
    node_selector: Vec<String>,
    /// Namespace of the objects (default: kubectl's current one)
    #[arg(long, short = 'n', value_name = "NS")]
    namespace: Option<String>,
    /// Name of the objects (default: the last part of the image's name)
    #[arg(long)]
    name: Option<String>,
    /// Port the application serves (default: the image's exposed ports)
    #[arg(long, value_name = "PORT")]
    port: Option<u16>,
    /// CPU request and limit (`500m`, `2`)
    #[arg(long, value_name = "QUANTITY")]
    cpu: Option<String>,
    /// Memory request and limit (`512Mi`, `4Gi`)
    #[arg(long, value_name = "QUANTITY")]
    memory: Option<String>,
    /// Output format
    #[arg(short = 'o', long = "output", value_enum, default_value = "yaml")]
    format: Format,
    /// Write one file per object into this directory (default: standard output)
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// A Job that runs to completion instead of a Deployment and a Service
    #[arg(long)]
    job: bool,
    /// Allow an image that runs as root (the pod is then not runAsNonRoot)
    #[arg(long)]
    allow_root: bool,
    /// Require a Service: fail if the image (or project) declares no port
    #[arg(long)]
    service: bool,
    #[command(flatten)]
    registry: RegistryFlags,
}

/// Finds what the cluster pulls for an image already in a registry: a registry name of
/// the image (it was pulled, or named so), or a push of its manifest recorded in the
/// history.
fn pullable(
    store: &Store,
    image: &str,
    resolved: &kiln_store::Resolved,
    info: &kiln_store::ImageInfo,
) -> Result<Pullable> {
    let digest = &resolved.descriptor.digest;
    let mut names: Vec<String> = resolved.name.iter().cloned().collect();
    names.extend(store.names_of(digest)?);
    if let Some(r) = names.iter().find_map(|n| registry_name(n)) {
        return Ok(Pullable::new(&r, &digest.to_string()));
    }
    // `kiln push` leaves the manifest as it is unless it recompresses: the same digest.
    let (moves, _) = store.history()?;
    let digests = [
        digest.to_string(),
        info.manifest_descriptor.digest.to_string(),
    ];
    if let Some(m) = history::last_push(&moves, &digests) {
        let name = m.name.strip_prefix("docker://").unwrap_or(&m.name);
        if let Ok(r) = Reference::parse(name) {
            return Ok(Pullable::new(&r, m.digest.as_deref().unwrap_or("")));
        }
    }
    Err(deploy_error(kiln_deploy::no_registry_name(image)))
}

pub fn run(root: &Path, mut args: Args) -> Result<ExitCode> {
    let store = super::open_store(root)?;
    // A kiln project: built when stale, deployed by digest under the project's name.
    if let Some(dir) = crate::project_cli::project_dir(&args.image) {
        if args.rollback {
            anyhow::bail!(with_hint(
                anyhow!("--rollback takes the image's name, not the project directory"),
                "`kiln deploy NAME:TAG --rollback` (`kiln history NAME:TAG` lists the versions)",
            ));
        }
        let (digest, project) = crate::project_cli::build_for_run(root, &dir)?;
        if args.name.is_none() && args.push.is_none() {
            args.name = Some(project.name.clone());
        }
        args.image = digest;
    }
    let version_of_name = Reference::parse(&args.image)
        .ok()
        .and_then(|r| r.tag().map(str::to_string));
    // --rollback: the previous version; for a registry name kiln pushed, the manifest the
    // registry serves, and the image in the store it was pushed from.
    let mut rolled_back: Option<Pullable> = None;
    if args.rollback {
        if args.push.is_some() {
            anyhow::bail!(with_hint(
                anyhow!(
                    "--rollback deploys a version that was already pushed; --push is for new ones"
                ),
                "drop --push",
            ));
        }
        let reference = super::parse_reference(&args.image)?;
        let digest = store
            .previous_version(&reference, args.to.as_deref(), &mut |b| warn_bad(&store, b))
            .map_err(version_error)?;
        eprintln!("rolling back {} to {digest}", args.image);
        let (moves, _) = store.history()?;
        let local = history::pushed_from(&moves, &digest);
        if let (Some(local), Ok(r)) = (local, Reference::parse(&args.image)) {
            if registry_name(&args.image).is_some() {
                rolled_back = Some(Pullable::new(&r, &digest));
                args.image = local;
            } else {
                args.image = digest;
            }
        } else {
            args.image = digest;
        }
    }
    let resolved = store.resolve(&args.image).map_err(|e| match e {
        kiln_store::StoreError::ImageNotFound { .. } => with_hint(
            e,
            "kiln deploys images from its store: build, pull or load it first (`kiln images` lists them)",
        ),
        other => super::resolve(&store, &args.image)
            .err()
            .unwrap_or_else(|| other.into()),
    })?;
    let info = store.image(&resolved.descriptor)?;
    // Refuse bad options before pushing anything.
    let mut node_selector = BTreeMap::new();
    for s in &args.node_selector {
        let (k, v) = kiln_deploy::parse_node_selector(s).map_err(deploy_error)?;
        node_selector.insert(k, v);
    }
    let mut opts = kiln_deploy::Options {
        name: String::new(),
        namespace: args.namespace.clone(),
        replicas: args.replicas,
        min: args.min,
        max: args.max,
        cpu_target: args.cpu_target,
        gpus: args.gpus,
        node_selector,
        port: args.port,
        cpu: args.cpu.clone(),
        memory: args.memory.clone(),
        job: args.job,
        allow_root: args.allow_root,
        service: args.service,
    };
    let pull = match (&args.push, rolled_back) {
        (_, Some(p)) => {
            opts.name = default_name(args.name.as_deref(), &p.repository);
            p
        }
        (Some(dest), None) => {
            let dest = super::parse_reference(dest)?;
            opts.name = default_name(args.name.as_deref(), dest.repository());
            // Check everything that does not depend on the digest before pushing.
            kiln_deploy::check(&info.config, &opts).map_err(deploy_error)?;
            store.hold_image(&info)?;
            let progress = Reporter::new(false);
            let report = push_image(
                &store,
                &info,
                &dest,
                None,
                u64::MAX,
                &args.registry,
                &progress,
            )
            .with_context(|| format!("cannot push `{}` to {dest}", args.image))?;
            eprintln!("Pushed {dest}@{}", report.digest);
            Pullable::new(&dest, &report.digest.to_string())
        }
        (None, None) => {
            let p = pullable(&store, &args.image, &resolved, &info)?;
            opts.name = default_name(args.name.as_deref(), &p.repository);
            p
        }
    };
    let version = pull.tag.clone().or(version_of_name);
    let objects = kiln_deploy::generate(
        &kiln_deploy::Image {
            reference: pull.reference,
            version,
            config: &info.config,
        },
        &opts,
    )
    .map_err(deploy_error)?;
    for w in &objects.warnings {
        eprintln!("warning: {w}");
    }
    let render = |o: &[kiln_deploy::Object]| match args.format {
        Format::Yaml => kiln_deploy::to_yaml(o),
        Format::Json => kiln_deploy::to_json(o),
    };
    match &args.out {
        None => print!("{}", render(&objects.objects)),
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            let ext = match args.format {
                Format::Yaml => "yaml",
                Format::Json => "json",
            };
            for o in &objects.objects {
                let path = dir.join(format!("{}.{ext}", o.kind.to_ascii_lowercase()));
                let text = match args.format {
                    Format::Yaml => kiln_deploy::to_yaml(std::slice::from_ref(o)),
                    Format::Json => {
                        let mut s = serde_json::to_string_pretty(&o.value)?;
                        s.push('\n');
                        s
                    }
                };
                std::fs::write(&path, text)
                    .with_context(|| format!("cannot write {}", path.display()))?;
                println!("{}", path.display());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn deploy_error(e: kiln_deploy::Error) -> anyhow::Error {
    let hint = e.hint();
    match hint {
        Some(h) => with_hint(e, &h),
        None => e.into(),
    }
}
