//! Reading an image's environment for `kiln env` and `kiln sbom`.

use crate::commands::{open_store, resolve};
use anyhow::{Context, Result};
use kiln_sbom::{Environment, Source};
use std::path::Path;

/// Where `kiln env` and `kiln sbom` read the image's files from.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Read {
    Auto,
    Snapshots,
    Layers,
}

/// Resolves `image` and reads its environment.
pub fn read(root: &Path, image: &str, from: Read) -> Result<Environment> {
    let store = open_store(root)?;
    let resolved = resolve(&store, image)?;
    let info = store.image(&resolved.descriptor)?;
    let source = match from {
        Read::Auto => Source::Auto,
        Read::Snapshots => Source::Snapshots,
        Read::Layers => Source::Layers,
    };
    let name = resolved.name.as_deref().or(Some(image));
    let (env, _) = kiln_sbom::read_environment(&store, &info, name, source)
        .with_context(|| format!("cannot read the environment of {image}"))?;
    Ok(env)
}
