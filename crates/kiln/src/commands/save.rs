//! `kiln save`.

use crate::output::{with_hint, Reporter};
use anyhow::{bail, Context, Result};
use kiln_archive::{SaveFormat, SaveImage};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Clone, Copy, clap::ValueEnum)]
enum Format {
    /// Docker's legacy layout only
    Docker,
    /// OCI image layout only
    Oci,
}

#[derive(clap::Args)]
pub struct Args {
    /// Images to save (names, IDs or digests)
    #[arg(required = true)]
    images: Vec<String>,
    /// Write to this file instead of standard output
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Archive layout; the default (an OCI layout plus Docker's manifest.json) loads in
    /// Docker, Podman and OCI tools alike
    #[arg(long, value_enum)]
    format: Option<Format>,
    /// No progress output
    #[arg(short, long)]
    quiet: bool,
}

pub fn run(root: &Path, args: Args) -> Result<ExitCode> {
    let store = super::open_store(root)?;
    let mut images = Vec::new();
    for r in &args.images {
        let resolved = super::resolve(&store, r)?;
        let name = resolved
            .name
            .as_deref()
            .map(kiln_oci::Reference::parse)
            .transpose()?;
        images.push(SaveImage {
            descriptor: resolved.descriptor,
            name,
        });
    }
    let format = match args.format {
        None => SaveFormat::Combined,
        Some(Format::Docker) => SaveFormat::Docker,
        Some(Format::Oci) => SaveFormat::Oci,
    };
    let progress = Reporter::new(args.quiet);
    match &args.output {
        Some(path) => {
            // Write beside the destination, then rename: never a half-written archive.
            let dir = path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            let tmp = tempfile::NamedTempFile::new_in(dir)
                .with_context(|| format!("cannot write in {}", dir.display()))?;
            let out = std::io::BufWriter::with_capacity(1 << 20, tmp);
            let out = kiln_archive::save(&store, &images, out, format, &progress)?;
            let tmp = out.into_inner().map_err(|e| e.into_error())?;
            tmp.as_file().sync_all()?;
            tmp.persist(path)
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        None => {
            if std::io::stdout().is_terminal() {
                bail!(with_hint(
                    anyhow::anyhow!("refusing to write an archive to a terminal"),
                    "use `-o FILE` or redirect standard output",
                ));
            }
            let out = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
            let mut out = kiln_archive::save(&store, &images, out, format, &progress)?;
            out.flush()?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
