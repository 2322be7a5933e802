//! `kiln export`: an image's layers flattened into one file tree, as a tar.

use anyhow::{Context, Result};
use kiln_oci::types::Descriptor;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// The image (name, ID or digest)
    image: String,
    /// Write to this file instead of standard output
    #[arg(short, long)]
    output: Option<PathBuf>,
}

pub fn run(root: &Path, args: Args) -> Result<ExitCode> {
    let store = super::open_store(root)?;
    let info = store.image(&super::resolve(&store, &args.image)?.descriptor)?;
    store.hold_image(&info)?;
    let layers: Vec<Descriptor> = info.manifest.layers.clone();
    let mut open = |i: usize| -> std::io::Result<Box<dyn Read>> {
        let f = store
            .open_blob(&layers[i].digest)
            .map_err(std::io::Error::other)?;
        let (_, r) = kiln_layer::decompress(std::io::BufReader::with_capacity(1 << 20, f))?;
        Ok(r)
    };
    super::write_archive(args.output.as_deref(), |out| {
        kiln_layer::flatten(layers.len(), &mut open, out)
            .with_context(|| format!("cannot export {}", args.image))?;
        Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}
