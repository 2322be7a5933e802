//! `kiln export`: an image's layers flattened into one file tree, as a tar.

use anyhow::{bail, Context, Result};
use kiln_oci::types::Descriptor;
use std::io::{IsTerminal, Read, Write};
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
    let layers: Vec<Descriptor> = info.manifest.layers.clone();
    let mut open = |i: usize| -> std::io::Result<Box<dyn Read>> {
        let f = store
            .open_blob(&layers[i].digest)
            .map_err(std::io::Error::other)?;
        let (_, r) = kiln_layer::decompress(std::io::BufReader::with_capacity(1 << 20, f))?;
        Ok(r)
    };
    match &args.output {
        Some(path) => {
            let dir = path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            let tmp = tempfile::NamedTempFile::new_in(dir)
                .with_context(|| format!("cannot write in {}", dir.display()))?;
            let out = std::io::BufWriter::with_capacity(1 << 20, tmp);
            let out = kiln_layer::flatten(layers.len(), &mut open, out)
                .with_context(|| format!("cannot export {}", args.image))?;
            let tmp = out.into_inner().map_err(|e| e.into_error())?;
            tmp.persist(path)
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        None => {
            if std::io::stdout().is_terminal() {
                bail!("refusing to write an archive to a terminal; use `-o FILE`");
            }
            let out = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
            let mut out = kiln_layer::flatten(layers.len(), &mut open, out)
                .with_context(|| format!("cannot export {}", args.image))?;
            out.flush()?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
