//! A Debian base image from the archive (kiln-debian), with the maintainer scripts kiln
//! does not replicate run as one kiln build step. Shared by `kiln base debian` and the
//! project builder.

use crate::{Error, Progress, Result};
use kiln_build::exec::{BuildOptions, Builder, Images, RunNetwork};
use kiln_debian::image::{self as debimage, Options, ScriptRunner};
use kiln_oci::types::Descriptor;
use kiln_oci::Platform;
use kiln_store::{ImageInfo, Store};
use std::collections::BTreeMap;

pub use kiln_debian::image::{host_arch, DebianImage};

/// A kiln-debian error as this crate's, its hint kept.
pub(crate) fn debian_error(e: kiln_debian::DebianError) -> Error {
    match e.hint() {
        Some(h) => Error::with_hint(e.to_string(), h),
        None => Error::new(e.to_string()),
    }
}

/// Builds the image `opts` describe ([`kiln_debian::image::build`]), its maintainer
/// scripts run as a kiln build step. The caller must already be in a private mount
/// namespace (`kiln_runtime::container::private_mount_namespace`) when scripts may run.
pub fn build(store: &Store, opts: &Options, progress: &dyn Progress) -> Result<DebianImage> {
    let runner = BuildStep { store, progress };
    debimage::build(store, opts, &runner, progress).map_err(debian_error)
}

/// The [`ScriptRunner`] of [`build`]: the script as one kiln build step.
struct BuildStep<'a> {
    store: &'a Store,
    progress: &'a dyn Progress,
}

impl ScriptRunner for BuildStep<'_> {
    fn run(&self, stage: &Descriptor, script: &str, epoch: i64) -> kiln_debian::Result<Descriptor> {
        configure_in_container(self.store, stage.clone(), script, epoch, self.progress).map_err(
            |e| kiln_debian::DebianError::ScriptStep {
                hint: e.hint(),
                msg: e.to_string(),
            },
        )
    }
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

/// Runs `script` (the maintainer scripts kiln does not replicate, and ldconfig) in a
/// kiln container on top of `stage`, as one build step with no network: its changes
/// become the image's last layer, cached like any build step.
fn configure_in_container(
    store: &Store,
    stage: Descriptor,
    script: &str,
    epoch: i64,
    progress: &dyn Progress,
) -> Result<Descriptor> {
    let dockerfile = format!(
        "FROM kiln-debian-stage\nRUN --network=none {}\n",
        serde_json::to_string(&["/bin/sh", "-c", script]).expect("serializes")
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
