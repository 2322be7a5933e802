//! `kiln copy SRC DST`: an image between any two of a registry (`docker://`), the local
//! store (`kiln:` or a bare name), an OCI layout directory (`oci:`), an OCI archive
//! (`oci-archive:`) and a Docker archive (`docker-archive:`), as `skopeo copy` does.
//!
//! Images travel through a store: the local one when it is an end of the copy,
//! otherwise a staging store under the store's `tmp/`, removed afterwards.

use crate::output::{with_hint, Reporter};
use crate::registry_flags::{pull_into, push_image, registry_error, RegistryFlags};
use anyhow::{anyhow, bail, Context, Result};
use kiln_oci::media::ANNOTATION_REF_NAME;
use kiln_oci::types::{Descriptor, Index};
use kiln_oci::{Platform, Reference};
use kiln_registry::{PullOptions, Repo};
use kiln_store::Store;
use std::path::{Path, PathBuf};
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

#[derive(Debug)]
enum Transport {
    Registry(Reference),
    Local(String),
    OciDir(PathBuf, Option<String>),
    OciArchive(PathBuf, Option<String>),
    DockerArchive(PathBuf, Option<String>),
}

const TRANSPORT_HINT: &str = "use docker://REF, oci:DIR[:REF], oci-archive:FILE[:REF], docker-archive:FILE[:REF] or kiln:REF";

fn path_and_ref(rest: &str) -> (PathBuf, Option<String>) {
    match rest.split_once(':') {
        Some((p, r)) if !r.is_empty() => (PathBuf::from(p), Some(r.to_string())),
        Some((p, _)) => (PathBuf::from(p), None),
        None => (PathBuf::from(rest), None),
    }
}

fn parse(s: &str) -> Result<Transport> {
    if let Some(r) = s.strip_prefix("docker://") {
        return Ok(Transport::Registry(super::parse_reference(r)?));
    }
    if let Some(r) = s.strip_prefix("kiln:") {
        return Ok(Transport::Local(r.to_string()));
    }
    for (prefix, make) in [
        (
            "oci:",
            Transport::OciDir as fn(PathBuf, Option<String>) -> Transport,
        ),
        ("oci-archive:", Transport::OciArchive),
        ("docker-archive:", Transport::DockerArchive),
    ] {
        if let Some(rest) = s.strip_prefix(prefix) {
            let (p, r) = path_and_ref(rest);
            if p.as_os_str().is_empty() {
                bail!(with_hint(anyhow!("`{s}` names no path"), TRANSPORT_HINT));
            }
            return Ok(make(p, r));
        }
    }
    if let Some((t, _)) = s.split_once(':') {
        if !t.contains('/')
            && !t.contains('.')
            && ["containers-storage", "dir", "docker-daemon"].contains(&t)
        {
            bail!(with_hint(
                anyhow!("transport `{t}:` is not supported"),
                TRANSPORT_HINT
            ));
        }
    }
    Ok(Transport::Local(s.to_string()))
}

/// An image in some store, ready to be written somewhere.
struct Staged {
    descriptor: Descriptor,
    name: Option<Reference>,
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
            Staged {
                name: res.name.as_deref().and_then(|n| Reference::parse(n).ok()),
                descriptor: res.descriptor,
            }
        }
        Transport::Registry(r) if dst_local => {
            let rep = pull_into(&stage, r, platform, &args.registry, &progress)?;
            Staged {
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
            Staged {
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

/// The entry of an OCI layout's index.json whose `ref.name` is exactly `want`.
fn raw_ref_entry(dir: &Path, want: Option<&str>) -> Result<Option<Descriptor>> {
    let Some(want) = want else { return Ok(None) };
    let path = dir.join("index.json");
    let bytes = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let index: Index = serde_json::from_slice(&bytes)
        .with_context(|| format!("{} is not a valid OCI index", path.display()))?;
    Ok(index
        .manifests
        .into_iter()
        .find(|d| d.annotation(ANNOTATION_REF_NAME) == Some(want)))
}

fn pick(
    loaded: Vec<kiln_archive::LoadedImage>,
    want: Option<&str>,
    raw: Option<&Descriptor>,
    source: &str,
) -> Result<Staged> {
    let found = match (want, raw) {
        (_, Some(d)) => loaded.into_iter().find(|l| l.descriptor.digest == d.digest),
        (Some(w), None) => {
            let wanted = Reference::parse(w).ok();
            loaded.into_iter().find(|l| {
                l.names
                    .iter()
                    .any(|n| Some(n) == wanted.as_ref() || n.familiar() == w)
            })
        }
        (None, None) if loaded.len() == 1 => loaded.into_iter().next(),
        (None, None) => bail!(with_hint(
            anyhow!("{source} holds {} images", loaded.len()),
            "name one: append `:NAME` to the source",
        )),
    };
    let l = found.ok_or_else(|| anyhow!("{source}: no image of that name in it"))?;
    Ok(Staged {
        name: l.names.first().cloned(),
        descriptor: l.descriptor,
    })
}

/// Writes the image into the OCI layout `dir` (created if needed), named `name` in
/// `ref.name` exactly as given (the layout convention skopeo and umoci follow).
fn write_layout(stage: &Store, desc: &Descriptor, dir: &Path, name: Option<&str>) -> Result<()> {
    let fresh = !dir.join("oci-layout").exists();
    let made: Vec<PathBuf> = ["tmp", "locks", "history"]
        .iter()
        .map(|d| dir.join(d))
        .filter(|p| !p.exists())
        .collect();
    let layout = Store::open(dir)?;
    let result = (|| -> Result<()> {
        for d in stage.blobs_of(desc)? {
            if !layout.has_blob(&d) {
                let mut w = layout.blob_writer()?;
                std::io::copy(&mut stage.open_blob(&d)?, &mut w)?;
                w.commit(Some(&d))?;
            }
        }
        layout.set_ref_name(desc, name)?;
        Ok(())
    })();
    // The layout gets only what the OCI spec names; kiln's own directories go again.
    for p in made {
        let _ = std::fs::remove_dir_all(p);
    }
    if result.is_err() && fresh {
        let _ = std::fs::remove_dir_all(dir);
    }
    result
}
