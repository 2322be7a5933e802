//! `kiln save`.

use crate::output::Reporter;
use anyhow::Result;
use kiln_archive::{SaveFormat, SaveImage};
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
    super::write_archive(args.output.as_deref(), |out| {
        kiln_archive::save(&store, &images, out, format, &progress)?;
        Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}
