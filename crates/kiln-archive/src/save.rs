//! `kiln save`: images from the store into one deterministic tar.
//!
//! The default format is an OCI image layout (oci-layout, index.json, blobs/sha256/...)
//! plus Docker's manifest.json naming the same blobs, the shape Docker 25 writes: Docker
//! 20.10 reads manifest.json, Podman, skopeo and containerd read the layout. Entries are
//! sorted and carry fixed metadata, so the same images give the same bytes.

use crate::error::{ArchiveError, Result};
use kiln_oci::media::{self, Kind, ANNOTATION_IMAGE_NAME, ANNOTATION_REF_NAME};
use kiln_oci::types::{to_canonical_json, Descriptor, Index, Manifest};
use kiln_oci::{Digest, Reference};
use kiln_store::{Progress, Store};
use std::collections::BTreeMap;
use std::io::{self, Read, Write};

/// Archive layouts `kiln save` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SaveFormat {
    /// OCI layout + Docker manifest.json: loads everywhere.
    #[default]
    Combined,
    /// Docker's legacy layout only (`<id>/layer.tar`, uncompressed layers).
    Docker,
    /// OCI layout only.
    Oci,
}

/// One image to save: its index.json descriptor and the name to record, if any.
pub struct SaveImage {
    /// The image's manifest or index in the store, with everything it refers to.
    pub descriptor: Descriptor,
    /// The name written to the `image.name`/`ref.name` annotations and `RepoTags`;
    /// `None` saves the image unnamed.
    pub name: Option<Reference>,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "PascalCase")]
struct DockerEntry {
    config: String,
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

fn header(path: &str, size: u64, dir: bool) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(if dir {
        tar::EntryType::Directory
    } else {
        tar::EntryType::Regular
    });
    h.set_mode(if dir { 0o755 } else { 0o644 });
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_size(size);
    h.set_path(path).expect("archive paths are short ASCII");
    h.set_cksum();
    h
}

fn io_err(what: &str) -> impl Fn(io::Error) -> ArchiveError + '_ {
    move |source| ArchiveError::Io {
        path: what.to_string(),
        source,
    }
}

/// Writes `images` to `out` in `format`.
pub fn save<W: Write>(
    store: &Store,
    images: &[SaveImage],
    out: W,
    format: SaveFormat,
    progress: &dyn Progress,
) -> Result<W> {
    let mut blobs: BTreeMap<Digest, u64> = BTreeMap::new();
    let mut index = Index::default();
    let mut docker: Vec<DockerEntry> = Vec::new();
    // For the Docker layout: diff ID -> stored (possibly compressed) layer blob.
    let mut docker_layers: BTreeMap<Digest, Digest> = BTreeMap::new();
    for img in images {
        collect(store, &img.descriptor, &mut blobs)?;
        let mut desc = img.descriptor.clone();
        desc.annotations = img.name.as_ref().map(|n| {
            [
                (ANNOTATION_IMAGE_NAME.to_string(), n.to_string()),
                (ANNOTATION_REF_NAME.to_string(), n.familiar()),
            ]
            .into()
        });
        if !index.manifests.contains(&desc) {
            index.manifests.push(desc);
        }
        let info = store.image(&img.descriptor)?;
        store.hold_image(&info)?;
        let tags: Vec<String> = img.name.iter().map(|n| n.familiar()).collect();
        if let Some(existing) = docker
            .iter_mut()
            .find(|d| d.config.ends_with(info.id.hex()))
        {
            existing.repo_tags.get_or_insert_with(Vec::new).extend(tags);
            continue;
        }
        let (config, layers) = match format {
            SaveFormat::Docker => (
                format!("{}.json", info.id.hex()),
                info.config
                    .rootfs
                    .diff_ids
                    .iter()
                    .map(|d| format!("{}/layer.tar", d.hex()))
                    .collect(),
            ),
            _ => (
                format!("blobs/sha256/{}", info.id.hex()),
                info.manifest
                    .layers
                    .iter()
                    .map(|l| format!("blobs/sha256/{}", l.digest.hex()))
                    .collect(),
            ),
        };
        docker.push(DockerEntry {
            config,
            repo_tags: (!tags.is_empty()).then_some(tags),
            layers,
        });
        if format == SaveFormat::Docker {
            // Docker's layout stores each layer uncompressed under its diff ID.
            for (l, diff) in info
                .manifest
                .layers
                .iter()
                .zip(&info.config.rootfs.diff_ids)
            {
                blobs.remove(&l.digest);
                blobs.insert(diff.clone(), u64::MAX);
                docker_layers.insert(diff.clone(), l.digest.clone());
            }
        }
    }
    let mut tar = tar::Builder::new(out);
    let add = |tar: &mut tar::Builder<W>, path: &str, bytes: &[u8]| -> Result<()> {
        tar.append(&header(path, bytes.len() as u64, false), bytes)
            .map_err(io_err(path))
    };
    let docker_json = serde_json::to_vec(&docker).expect("serializes");
    if format != SaveFormat::Docker {
        add(&mut tar, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        add(&mut tar, "index.json", &to_canonical_json(&index))?;
    }
    if format != SaveFormat::Oci {
        add(&mut tar, "manifest.json", &docker_json)?;
    }
    if format == SaveFormat::Docker {
        for (digest, _) in blobs.iter() {
            if let Some(compressed) = docker_layers.get(digest) {
                write_uncompressed_layer(store, &mut tar, compressed, digest, progress)?;
            } else if docker.iter().any(|d| d.config.starts_with(digest.hex())) {
                let path = format!("{}.json", digest.hex());
                add(&mut tar, &path, &store.read_blob(digest)?)?;
            }
        }
        // Manifests are not part of Docker's layout.
    } else {
        for dir in ["blobs/", "blobs/sha256/"] {
            tar.append(&header(dir, 0, true), io::empty())
                .map_err(io_err(dir))?;
        }
        for (digest, size) in &blobs {
            let path = format!("blobs/sha256/{}", digest.hex());
            // Large reads: tar's copy loop would otherwise read in 8 KiB pieces.
            let file = io::BufReader::with_capacity(1 << 20, store.open_blob(digest)?);
            progress.start(&path, &digest.to_string(), Some(*size));
            let reader = ProgressReader {
                inner: file,
                id: &path,
                progress,
            };
            tar.append(&header(&path, *size, false), reader)
                .map_err(io_err(&path))?;
            progress.finish(&path, "written");
        }
    }
    tar.into_inner().map_err(io_err("archive"))
}

fn write_uncompressed_layer<W: Write>(
    store: &Store,
    tar: &mut tar::Builder<W>,
    blob: &Digest,
    diff_id: &Digest,
    progress: &dyn Progress,
) -> Result<()> {
    let path = format!("{}/layer.tar", diff_id.hex());
    tar.append(
        &header(&format!("{}/", diff_id.hex()), 0, true),
        io::empty(),
    )
    .map_err(io_err(&path))?;
    // The tar header needs the size first: count the uncompressed bytes in one pass,
    // then stream them in a second. Uncompressed blobs take the fast path.
    let open = || -> Result<Box<dyn Read>> {
        let (_, r) = kiln_layer::decompress(store.open_blob(blob)?).map_err(io_err(&path))?;
        Ok(r)
    };
    let size = io::copy(&mut open()?, &mut io::sink()).map_err(io_err(&path))?;
    progress.start(&path, &diff_id.to_string(), Some(size));
    let reader = ProgressReader {
        inner: open()?,
        id: &path,
        progress,
    };
    tar.append(&header(&path, size, false), reader)
        .map_err(io_err(&path))?;
    progress.finish(&path, "written");
    Ok(())
}

/// Every blob an image needs, with its size. Absent children of an index are skipped.
fn collect(store: &Store, d: &Descriptor, out: &mut BTreeMap<Digest, u64>) -> Result<()> {
    if out.contains_key(&d.digest) {
        return Ok(());
    }
    out.insert(d.digest.clone(), d.size);
    match media::kind(&d.media_type) {
        Some(Kind::Index) => {
            let ix: Index = store.read_json(&d.digest)?;
            for c in ix.manifests.iter().filter(|c| store.has_blob(&c.digest)) {
                collect(store, c, out)?;
            }
        }
        Some(Kind::Manifest) => {
            let m: Manifest = store.read_json(&d.digest)?;
            collect(store, &m.config, out)?;
            for l in &m.layers {
                collect(store, l, out)?;
            }
        }
        _ => {}
    }
    Ok(())
}

struct ProgressReader<'a, R> {
    inner: R,
    id: &'a str,
    progress: &'a dyn Progress,
}

impl<R: Read> Read for ProgressReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.advance(self.id, n as u64);
        Ok(n)
    }
}
