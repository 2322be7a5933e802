//! An image's exact environment, read from its layers alone (no container started):
//! the distribution, OS packages (dpkg, apk), Python interpreters and distributions
//! (dist-info, egg-info), conda packages, CUDA/cuDNN/NCCL versions and the run config;
//! written as kiln's stable JSON ([`Environment`]), SPDX 2.3 ([`spdx::write`]) or
//! CycloneDX 1.6 ([`cyclonedx::write`]). Documents depend on the image alone: the same
//! image gives the same bytes.
//!
//! Only the package databases are read ([`reader`]): from the image's snapshots when all
//! are unpacked (a few `stat`s and reads), else by streaming each layer blob once.

// Libraries report through their progress traits and errors; only the CLI prints.
#![deny(clippy::print_stdout, clippy::print_stderr)]
#![warn(missing_docs)]

pub mod apk;
pub mod attach;
pub mod conda;
pub mod control;
pub mod cyclonedx;
pub mod dpkg;
pub mod env;
pub mod error;
pub mod license;
pub mod pkgdiff;
pub mod provenance;
pub mod python;
pub mod reader;
pub mod spdx;

pub use env::Environment;
pub use error::{Result, SbomError};

use kiln_store::{ImageInfo, Store};
use std::io::Read;

/// Where the files are read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// Snapshots when every layer has one, else layer blobs.
    Auto,
    /// The unpacked snapshots (`snapshots/<chain-id>/`); fails if one is missing.
    Snapshots,
    /// The layer blobs, each streamed once.
    Layers,
}

/// Reads the environment of `image` (holding its blobs and snapshots from prune while
/// reading). `name` is the name the user gave, if a name. Returns the source used too.
pub fn read_environment(
    store: &Store,
    image: &ImageInfo,
    name: Option<&str>,
    source: Source,
) -> Result<(Environment, Source)> {
    store.hold_image(image)?;
    let chains = kiln_store::prune::chain_ids(&image.config.rootfs.diff_ids);
    let snapshots: Vec<_> = chains
        .iter()
        .map(|c| kiln_store::snapshot::path(store, c))
        .collect();
    let all_unpacked =
        chains.len() == image.manifest.layers.len() && snapshots.iter().all(|p| p.is_dir());
    let use_snapshots = match source {
        Source::Snapshots => true,
        Source::Layers => false,
        Source::Auto => all_unpacked,
    };
    let files = if use_snapshots {
        if !all_unpacked {
            let missing = snapshots
                .iter()
                .find(|p| !p.is_dir())
                .cloned()
                .unwrap_or_default();
            return Err(SbomError::Io {
                path: missing,
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "the image's layers are not all unpacked",
                ),
            });
        }
        reader::read_snapshots(&snapshots)?
    } else {
        let layers = &image.manifest.layers;
        let open = |i: usize| -> std::io::Result<Box<dyn Read + Send>> {
            let f = store
                .open_blob(&layers[i].digest)
                .map_err(std::io::Error::other)?;
            Ok(Box::new(std::io::BufReader::with_capacity(1 << 20, f)))
        };
        reader::read_layers(&open, layers.len(), &|i| layers[i].digest.to_string())?
    };
    let summary = env::ImageSummary {
        name: name.map(str::to_string),
        digest: image.manifest_descriptor.digest.to_string(),
        id: image.id.to_string(),
        created: image.config.created.clone(),
        os: image.config.os.clone(),
        architecture: image.config.architecture.clone(),
        variant: image.config.variant.clone(),
    };
    let used = if use_snapshots {
        Source::Snapshots
    } else {
        Source::Layers
    };
    Ok((env::assemble(&files, summary, &image.config), used))
}
