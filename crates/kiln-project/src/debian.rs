//! A Debian base image from the archive (kiln-debian), with the maintainer scripts kiln
//! does not replicate run as one kiln build step. Shared by `kiln base debian` and the
//! project builder.

use crate::{Error, Progress, Result};
use kiln_build::exec::{BuildOptions, Builder, Images, RunNetwork};
use kiln_debian::image::{self as debimage, Options};
use kiln_debian::lock::Lock;
use kiln_oci::types::Descriptor;
use kiln_oci::Platform;
use kiln_store::{ImageInfo, Store};
use std::collections::BTreeMap;

/// The outcome of [`build`].
pub struct DebianImage {
    /// The image (not tagged).
    pub descriptor: Descriptor,
    pub lock: Lock,
    /// The packages were resolved (no lock was given, or it did not exist yet).
    pub resolved: bool,
    pub downloaded: usize,
    pub bytes: u64,
    pub cached_layers: usize,
    /// The maintainer scripts run in a container, named (`libc-bin (ldconfig)`).
    pub scripts_run: Vec<String>,
    /// How each package's scripts were handled: (package, native|nothing|container, why).
    pub handling: Vec<(String, String, String)>,
    /// The image's time.
    pub epoch: i64,
}

/// The architecture of this host, as Debian names it.
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "aarch64" => "arm64",
        _ => "amd64",
    }
}

/// A kiln-debian error as this crate's, its hint kept.
pub(crate) fn debian_error(e: kiln_debian::DebianError) -> Error {
    match e.hint() {
        Some(h) => Error::with_hint(e.to_string(), h),
        None => Error::new(e.to_string()),
    }
}

/// Builds the image `opts` describe. The caller must already be in a private mount
/// namespace (`kiln_runtime::container::private_mount_namespace`) when scripts may run.
pub fn build(store: &Store, opts: &Options, progress: &dyn Progress) -> Result<DebianImage> {
    let cache = kiln_store::layout::cache_dir(store.root(), kiln_store::layout::Cache::Debian);
    let fetcher = kiln_debian::fetch::Fetcher::new();
    let (lock, resolved) =
        debimage::plan(opts, &fetcher, &cache, progress).map_err(debian_error)?;
    let base_count = lock.packages.iter().filter(|p| p.group == "base").count();
    progress.note(&format!(
        "{} {} packages ({base_count} essential/required, {} requested and their dependencies) for {} {}",
        if resolved { "resolved" } else { "locked:" },
        lock.packages.len(),
        lock.packages.len() - base_count,
        lock.suite,
        lock.architecture,
    ));
    if resolved {
        if let Some(l) = &opts.lock {
            progress.note(&format!("wrote the lock {}", l.display()));
        }
    }
    let (downloaded, bytes) =
        debimage::download(&lock, &fetcher, &cache, opts.jobs, progress).map_err(debian_error)?;
    let epoch = opts.source_date_epoch.unwrap_or_else(|| lock.timestamp());
    let asm = debimage::assemble(store, &lock, &cache, epoch, opts.jobs.min(4), progress)
        .map_err(debian_error)?;
    let (stage, _) = store.write_image(&asm.config, asm.layers.clone())?;
    let mut scripts_run: Vec<String> = Vec::new();
    for s in &asm.scripts {
        let mut what = Vec::new();
        if s.preinst {
            what.push("preinst");
        }
        if s.postinst {
            what.push("postinst");
        }
        scripts_run.push(format!("{} ({})", s.name, what.join(", ")));
    }
    if asm.ldconfig {
        scripts_run.push("libc-bin (ldconfig)".into());
    }
    let arch = &opts.arch;
    let descriptor = if scripts_run.is_empty() {
        stage
    } else if arch != host_arch() {
        if !asm.scripts.is_empty() {
            return Err(Error::with_hint(
                format!(
                    "the maintainer scripts of {} must run, and this {} host cannot run {arch} programs",
                    scripts_run.join(", "),
                    host_arch()
                ),
                format!("build on an {arch} machine, or leave out the packages that need their scripts"),
            ));
        }
        progress.note(&format!(
            "ldconfig not run ({arch} programs cannot run on this host): the image has no /etc/ld.so.cache"
        ));
        scripts_run.clear();
        stage
    } else {
        progress.note(&format!(
            "running in a container the maintainer scripts kiln does not replicate: {}",
            scripts_run.join(", ")
        ));
        configure_in_container(store, stage, &asm, epoch, progress)?
    };
    Ok(DebianImage {
        descriptor,
        lock,
        resolved,
        downloaded,
        bytes,
        cached_layers: asm.cached_layers,
        scripts_run,
        handling: asm.handling.clone(),
        epoch,
    })
}

/// The image under construction, as FROM of the container step.
struct Stage<'a> {
    store: &'a Store,
    descriptor: Descriptor,
}

impl Images for Stage<'_> {
    fn resolve(&self, _name: &str) -> kiln_build::exec::Result<ImageInfo> {
        Ok(self.store.image(&self.descriptor)?)
    }
}

/// Runs the maintainer scripts kiln does not replicate (and ldconfig) in a kiln
/// container on top of `stage`, as one build step with no network: its changes become
/// the image's last layer, cached like any build step.
fn configure_in_container(
    store: &Store,
    stage: Descriptor,
    asm: &debimage::Assembled,
    epoch: i64,
    progress: &dyn Progress,
) -> Result<Descriptor> {
    let script = debimage::configure_script(asm);
    let dockerfile = format!(
        "FROM kiln-debian-stage\nRUN --network=none {}\n",
        serde_json::to_string(&["/bin/sh", "-c", &script]).expect("serializes")
    );
    let df = kiln_build::dockerfile::parse(&dockerfile, "kiln base debian")
        .map_err(|e| Error::new(e.to_string()))?;
    let context = tempfile::Builder::new()
        .prefix(&format!("debian-context-{}-", std::process::id()))
        .tempdir_in(store.root().join("tmp"))
        .map_err(|e| Error::new(format!("cannot make a build context: {e}")))?;
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
    let builder = Builder::new(store, &images, progress, &opts, "kiln base debian".into())
        .map_err(|e| Error::new(e.to_string()))?;
    let result = builder
        .build(&df)
        .map_err(|e| Error::new(format!("the maintainer scripts failed: {e}")))?;
    Ok(result.descriptor)
}
