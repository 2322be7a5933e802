//! `kiln copy SRC DST`: an image between any two of a registry (`docker://`), the local
//! store (`kiln:` or a bare name), an OCI layout directory (`oci:`), an OCI archive
//! (`oci-archive:`) and a Docker archive (`docker-archive:`), as `skopeo copy` does.
//!
//! Images travel through a store: the local one when it is an end of the copy,
//! otherwise a staging store under the store's `tmp/`, removed afterwards.

use crate::output::{with_hint, Reporter};
use crate::registry_flags::{pull_into, push_image, registry_error, RegistryFlags};
use anyhow::{Context, Result};
use kiln_archive::transport::{pick, raw_ref_entry, write_layout, Picked, Transport};
use kiln_archive::ArchiveError;
use kiln_oci::{Platform, Reference};
use kiln_registry::{PullOptions, Repo};
use kiln_store::Store;
use std::path::Path;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// Source: docker://REF, oci:DIR[:REF], oci-archive:FILE[:REF],
    /// docker-archive:FILE[:REF], kiln:REF or REF (the local store)
    source: String,
    /// Destination, in the same forms
    destination: String,
    /// Platform to pick from a multi-platform source
    #[arg(long)]
    platform: Option<String>,
    /// No progress output
    #[arg(short, long)]
    quiet: bool,
    #[command(flatten)]
    registry: RegistryFlags,
}

/// A source or destination, with the reference hint for a bad registry name.
fn parse(s: &str) -> Result<Transport> {
    Transport::parse(s).map_err(|e| match e {
        ArchiveError::Oci(e) => with_hint(e, super::REFERENCE_HINT),
        e => e.into(),
    })
}

pub fn run(root: &Path, args: Args) -> Result<ExitCode> {
    let src = parse(&args.source)?;
    let dst = parse(&args.destination)?;
    let platform = args.platform.as_deref().map(Platform::parse).transpose()?;
    let store = super::open_store(root)?;
    let progress = Reporter::new(args.quiet);
    // Into the local store: pull or load straight into it.
    let dst_local = matches!(dst, Transport::Local(_));
    let staging_dir;
    let stage: Store = if dst_local || matches!(src, Transport::Local(_)) {
        store.clone()
    } else {
        staging_dir = tempfile::Builder::new()
            .prefix(&format!("copy-{}-", std::process::id()))
            .tempdir_in(store.root().join("tmp"))
            .context("cannot make a staging directory")?;
        Store::open(staging_dir.path())?
    };
    let staged = match &src {
        Transport::Local(r) => {
            let res = super::resolve(&store, r)?;
            Picked {
                name: res.name.as_deref().and_then(|n| Reference::parse(n).ok()),
                descriptor: res.descriptor,
            }
        }
        Transport::Registry(r) if dst_local => {
            let rep = pull_into(&stage, r, platform, &args.registry, &progress)?;
            Picked {
                descriptor: rep.descriptor,
                name: Some(r.clone()),
            }
        }
        Transport::Registry(r) => {
            let opts = args.registry.options()?;
            let repos = Repo::for_pull(&opts, r)?;
            let rep = kiln_registry::pull(
                &stage,
                &repos,
                r,
                &PullOptions {
                    platform,
                    unpack: false,
                    tag: false,
                    jobs: kiln_registry::pull::DEFAULT_JOBS,
                    progress: &progress,
                },
            )
            .map_err(registry_error)?;
            Picked {
                descriptor: rep.descriptor,
                name: Some(r.clone()),
            }
        }
        Transport::OciDir(dir, want) => {
            let raw = raw_ref_entry(dir, want.as_deref())?;
            let loaded = kiln_archive::load_dir(&stage, dir, &progress)?;
            pick(loaded, want.as_deref(), raw.as_ref(), &args.source)?
        }
        Transport::OciArchive(file, want) | Transport::DockerArchive(file, want) => {
            let f = std::fs::File::open(file)
                .with_context(|| format!("cannot open {}", file.display()))?;
            let loaded =
                kiln_archive::load_reader(&stage, f, &file.display().to_string(), &progress)?;
            pick(loaded, want.as_deref(), None, &args.source)?
        }
    };
    let name_for = |r: &Option<String>| -> Result<Option<Reference>> {
        Ok(match r {
            Some(r) => Some(super::parse_reference(r)?),
            None => staged.name.clone(),
        })
    };
    match &dst {
        Transport::Local(r) => {
            let name = super::parse_reference(r)?;
            store.tag(&staged.descriptor, &name)?;
        }
        Transport::Registry(r) => {
            let image = stage.image(&staged.descriptor)?;
            let rep = push_image(&stage, &image, r, None, u64::MAX, &args.registry, &progress)?;
            if !args.quiet {
                eprintln!(
                    "Pushed {} ({} bytes of blobs sent)",
                    rep.digest, rep.uploaded_bytes
                );
            }
        }
        Transport::OciDir(dir, r) => write_layout(&stage, &staged.descriptor, dir, r.as_deref())?,
        Transport::OciArchive(file, r) | Transport::DockerArchive(file, r) => {
            let format = if matches!(dst, Transport::OciArchive(..)) {
                kiln_archive::SaveFormat::Oci
            } else {
                kiln_archive::SaveFormat::Docker
            };
            let images = [kiln_archive::SaveImage {
                descriptor: staged.descriptor.clone(),
                name: name_for(r)?,
            }];
            super::write_archive(Some(file), |out| {
                kiln_archive::save(&stage, &images, out, format, &progress)?;
                Ok(())
            })?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
