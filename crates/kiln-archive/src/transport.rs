//! Where `kiln copy` takes an image from or puts it: a registry (`docker://REF`), the
//! local store (`kiln:REF` or a bare name), an OCI layout directory (`oci:DIR[:REF]`),
//! an OCI archive (`oci-archive:FILE[:REF]`) or a Docker archive
//! (`docker-archive:FILE[:REF]`), as skopeo names them; picking an image out of what was
//! loaded, and writing one into an OCI layout.

use crate::{ArchiveError, LoadedImage, Result};
use kiln_oci::media::ANNOTATION_REF_NAME;
use kiln_oci::types::{Descriptor, Index};
use kiln_oci::Reference;
use kiln_store::Store;
use std::path::{Path, PathBuf};

/// One end of a copy.
#[derive(Debug, PartialEq)]
pub enum Transport {
    /// `docker://REF`: an image in a registry.
    Registry(Reference),
    /// `kiln:REF` or a bare name: the local store, with the name (or, as a source, the
    /// ID) as written, not yet parsed.
    Local(String),
    /// `oci:DIR[:REF]`: an OCI layout directory and the `ref.name` of the image in it.
    OciDir(PathBuf, Option<String>),
    /// `oci-archive:FILE[:REF]`: a tar of an OCI layout and the `ref.name` in it.
    OciArchive(PathBuf, Option<String>),
    /// `docker-archive:FILE[:REF]`: a `docker save` tar and the image name in it.
    DockerArchive(PathBuf, Option<String>),
}

/// The forms [`Transport::parse`] takes.
pub const TRANSPORT_HINT: &str = "use docker://REF, oci:DIR[:REF], oci-archive:FILE[:REF], docker-archive:FILE[:REF] or kiln:REF";

fn path_and_ref(rest: &str) -> (PathBuf, Option<String>) {
    match rest.split_once(':') {
        Some((p, r)) if !r.is_empty() => (PathBuf::from(p), Some(r.to_string())),
        Some((p, _)) => (PathBuf::from(p), None),
        None => (PathBuf::from(rest), None),
    }
}

impl Transport {
    /// Parses `docker://REF`, `kiln:REF`, `oci:DIR[:REF]`, `oci-archive:FILE[:REF]`,
    /// `docker-archive:FILE[:REF]`, or a name in the local store. A bad registry
    /// reference is [`ArchiveError::Oci`].
    pub fn parse(s: &str) -> Result<Transport> {
        if let Some(r) = s.strip_prefix("docker://") {
            return Ok(Transport::Registry(Reference::parse(r)?));
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
                    return Err(ArchiveError::NoPath(s.to_string()));
                }
                return Ok(make(p, r));
            }
        }
        if let Some((t, _)) = s.split_once(':') {
            if !t.contains('/')
                && !t.contains('.')
                && ["containers-storage", "dir", "docker-daemon"].contains(&t)
            {
                return Err(ArchiveError::UnsupportedTransport(t.to_string()));
            }
        }
        Ok(Transport::Local(s.to_string()))
    }
}

/// An image in some store, ready to be written somewhere.
#[derive(Debug)]
pub struct Picked {
    /// The image's manifest or index descriptor.
    pub descriptor: Descriptor,
    /// The name it came with (a loaded image's first name, the registry reference), if
    /// any: what a destination that names none records.
    pub name: Option<Reference>,
}

/// The entry of an OCI layout's index.json whose `ref.name` is exactly `want`.
pub fn raw_ref_entry(dir: &Path, want: Option<&str>) -> Result<Option<Descriptor>> {
    let Some(want) = want else { return Ok(None) };
    let path = dir.join("index.json");
    let bytes = std::fs::read(&path).map_err(|source| ArchiveError::Read {
        path: path.display().to_string(),
        source,
    })?;
    let index: Index =
        serde_json::from_slice(&bytes).map_err(|source| ArchiveError::InvalidIndex {
            path: path.display().to_string(),
            source,
        })?;
    Ok(index
        .manifests
        .into_iter()
        .find(|d| d.annotation(ANNOTATION_REF_NAME) == Some(want)))
}

/// The image of `loaded` that the source `source` names: the layout entry `raw`, else
/// the one named `want`, else the only one.
pub fn pick(
    loaded: Vec<LoadedImage>,
    want: Option<&str>,
    raw: Option<&Descriptor>,
    source: &str,
) -> Result<Picked> {
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
        (None, None) => {
            return Err(ArchiveError::SeveralImages {
                source_name: source.to_string(),
                count: loaded.len(),
            })
        }
    };
    let l = found.ok_or_else(|| ArchiveError::NoSuchImage(source.to_string()))?;
    Ok(Picked {
        name: l.names.first().cloned(),
        descriptor: l.descriptor,
    })
}

/// Writes the image into the OCI layout `dir` (created if needed), named `name` in
/// `ref.name` exactly as given (the layout convention skopeo and umoci follow).
pub fn write_layout(
    stage: &Store,
    desc: &Descriptor,
    dir: &Path,
    name: Option<&str>,
) -> Result<()> {
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
                std::io::copy(&mut stage.open_blob(&d)?, &mut w).map_err(|source| {
                    ArchiveError::Io {
                        path: dir.display().to_string(),
                        source,
                    }
                })?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transports() {
        assert_eq!(
            Transport::parse("oci:/x:app:v1").unwrap(),
            Transport::OciDir("/x".into(), Some("app:v1".into()))
        );
        assert_eq!(
            Transport::parse("docker-archive:a.tar").unwrap(),
            Transport::DockerArchive("a.tar".into(), None)
        );
        assert_eq!(
            Transport::parse("kiln:app").unwrap(),
            Transport::Local("app".into())
        );
        assert_eq!(
            Transport::parse("app:v1").unwrap(),
            Transport::Local("app:v1".into())
        );
        assert!(matches!(
            Transport::parse("docker://registry.example.com/app:v1").unwrap(),
            Transport::Registry(_)
        ));
        let e = Transport::parse("oci:").unwrap_err();
        assert_eq!(e.to_string(), "`oci:` names no path");
        assert_eq!(e.hint().as_deref(), Some(TRANSPORT_HINT));
        let e = Transport::parse("dir:/x").unwrap_err();
        assert_eq!(e.to_string(), "transport `dir:` is not supported");
        assert!(matches!(
            Transport::parse("docker://UPPER").unwrap_err(),
            ArchiveError::Oci(_)
        ));
    }
}
