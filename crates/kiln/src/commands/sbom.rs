//! `kiln sbom`: an image's packages as SPDX 2.3 or CycloneDX 1.6 JSON. An SPDX SBOM
//! attached to the image (`kiln build --sbom`, or pulled with it) is preferred: the
//! same bytes as when it was made.

use crate::image_env::Read;
use anyhow::Result;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// The image (name, ID or digest)
    image: String,
    /// Document format
    #[arg(long, value_enum, default_value = "spdx")]
    format: Format,
    /// Write to this file instead of standard output
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Read the unpacked snapshots or the layer blobs (default: snapshots when all exist)
    #[arg(long, value_enum, default_value = "auto", hide = true)]
    read: Read,
    /// Read the image's layers even when an SBOM is attached to it
    #[arg(long)]
    fresh: bool,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Format {
    Spdx,
    Cyclonedx,
}

pub fn run(root: &Path, args: Args) -> Result<ExitCode> {
    if matches!(args.format, Format::Spdx) && matches!(args.read, Read::Auto) && !args.fresh {
        let store = super::open_store(root)?;
        let resolved = super::resolve(&store, &args.image)?;
        let info = store.image(&resolved.descriptor)?;
        if let Some(doc) = kiln_sbom::attach::attached_sbom(&store, &info)? {
            return emit(&args, &doc);
        }
    }
    let env = crate::image_env::read(root, &args.image, args.read)?;
    let doc = match args.format {
        Format::Spdx => kiln_sbom::spdx::write(&env),
        Format::Cyclonedx => kiln_sbom::cyclonedx::write(&env),
    };
    for n in &env.notes {
        eprintln!("note: {n}");
    }
    emit(&args, &doc)
}

fn emit(args: &Args, doc: &[u8]) -> Result<ExitCode> {
    match &args.output {
        Some(path) => super::write_archive(Some(path), |out| Ok(out.write_all(doc)?))?,
        None => std::io::stdout().lock().write_all(doc)?,
    }
    Ok(ExitCode::SUCCESS)
}
