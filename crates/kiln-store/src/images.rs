//! Images in the store: index.json entries, names, resolution and platform selection.
//!
//! Each entry of index.json is one (image, name) pair: a descriptor of a manifest or an
//! index, annotated with `org.opencontainers.image.ref.name` (the familiar name, e.g.
//! `iris:v1`, which is what `skopeo oci:ROOT:iris:v1` and `umoci` look up) and
//! `io.containerd.image.name` (the full name). An image without names keeps one entry
//! without annotations (Docker's dangling `<none>:<none>`), so its blobs stay referenced.

use crate::error::{Result, StoreError};
use crate::history::Move;
use crate::lease::Held;
use crate::store::Store;
use kiln_oci::media::{self, Kind, ANNOTATION_IMAGE_NAME, ANNOTATION_REF_NAME};
use kiln_oci::types::{Descriptor, ImageConfig, Index, Manifest};
use kiln_oci::{Digest, Platform, Reference};

/// An image as users see it.
#[derive(Clone, Debug)]
pub struct ImageInfo {
    /// Familiar names (`iris:v1`), sorted; empty for a dangling image.
    pub names: Vec<String>,
    /// The index.json entry: a manifest, or an index of several platforms.
    pub descriptor: Descriptor,
    /// The manifest chosen for this host (the entry itself when it is a manifest).
    pub manifest_descriptor: Descriptor,
    /// The manifest `manifest_descriptor` points to, parsed.
    pub manifest: Manifest,
    /// The config digest: Docker's image ID.
    pub id: Digest,
    /// The image configuration of `manifest`, parsed.
    pub config: ImageConfig,
    /// Bytes stored: config and layers of the chosen manifest, plus the index if any.
    pub size: u64,
}

/// What a user's reference resolved to.
#[derive(Clone, Debug)]
pub struct Resolved {
    /// The image's index.json entry, without its name annotations (the name found is in
    /// `name`).
    pub descriptor: Descriptor,
    /// The familiar name it was found by, if it was found by name.
    pub name: Option<String>,
}

fn entry_name(d: &Descriptor) -> Option<&str> {
    d.annotation(ANNOTATION_REF_NAME)
}

fn named(desc: &Descriptor, reference: &Reference) -> Descriptor {
    let mut d = desc.clone();
    let ann = d.annotations.get_or_insert_with(Default::default);
    ann.retain(|k, _| k != ANNOTATION_REF_NAME && k != ANNOTATION_IMAGE_NAME);
    ann.insert(ANNOTATION_REF_NAME.into(), reference.familiar());
    ann.insert(ANNOTATION_IMAGE_NAME.into(), reference.to_string());
    d
}

fn dangling(desc: &Descriptor) -> Descriptor {
    let mut d = desc.clone();
    if let Some(ann) = d.annotations.as_mut() {
        ann.retain(|k, _| k != ANNOTATION_REF_NAME && k != ANNOTATION_IMAGE_NAME);
        if ann.is_empty() {
            d.annotations = None;
        }
    }
    d
}

/// Removes `name` from the index; an image left with no entry stays as a dangling one.
/// Returns the digest the name pointed to.
fn drop_name(index: &mut Index, familiar: &str) -> Option<Digest> {
    let pos = index
        .manifests
        .iter()
        .position(|d| entry_name(d) == Some(familiar))?;
    let old = index.manifests.remove(pos);
    if !index.manifests.iter().any(|d| d.digest == old.digest) {
        index.manifests.push(dangling(&old));
    }
    Some(old.digest)
}

impl Store {
    /// Gives `reference` to the image `desc` (a manifest or index already in the store),
    /// moving the name from any other image. Records the move in the history.
    pub fn tag(&self, desc: &Descriptor, reference: &Reference) -> Result<()> {
        self.tag_as(desc, reference, "tag")
    }

    /// [`Store::tag`], recorded in the history as `action` (`rollback`).
    pub fn tag_as(&self, desc: &Descriptor, reference: &Reference, action: &str) -> Result<()> {
        let familiar = reference.familiar();
        let _gc = self.ensure_complete(desc)?;
        let previous = self.update_index(|index| {
            let previous = drop_name(index, &familiar);
            index
                .manifests
                .retain(|d| !(d.digest == desc.digest && entry_name(d).is_none()));
            index.manifests.push(named(desc, reference));
            Ok(previous)
        })?;
        if previous.as_ref() != Some(&desc.digest) {
            self.record_move(Move {
                action: action.into(),
                name: familiar,
                digest: Some(desc.digest.to_string()),
                previous: previous.map(|p| p.to_string()),
                ..Default::default()
            })?;
        }
        Ok(())
    }

    /// Adds `desc` to index.json with `ref.name` exactly `name` (an OCI layout's own
    /// convention, often just a tag), replacing the entry that had that name.
    pub fn set_ref_name(&self, desc: &Descriptor, name: Option<&str>) -> Result<()> {
        let Some(name) = name else {
            return self.add_untagged(desc);
        };
        let _gc = self.ensure_complete(desc)?;
        self.update_index(|index| {
            index.manifests.retain(|d| entry_name(d) != Some(name));
            let mut d = dangling(desc);
            d.annotations
                .get_or_insert_with(Default::default)
                .insert(ANNOTATION_REF_NAME.into(), name.into());
            index.manifests.push(d);
            Ok(())
        })
    }

    /// Checks, before an image enters index.json, that its blobs are all here, holding
    /// them; returns the shared GC lock, to keep until the index is written, so that a
    /// prune either ran before the check or runs after the image is referenced. An index
    /// needs only the manifests present (the other platforms were never pulled).
    fn ensure_complete(&self, desc: &Descriptor) -> Result<crate::lock::Lock> {
        let gc = self.gc_lock(false)?;
        let mut stack = vec![desc.clone()];
        while let Some(d) = stack.pop() {
            let mut need = vec![Held::Blob(d.digest.clone())];
            let children: Vec<Descriptor> = match media::kind(&d.media_type) {
                Some(Kind::Index) => {
                    self.hold(&need)?;
                    let index: Index = self.read_json(&d.digest)?;
                    stack.extend(
                        index
                            .manifests
                            .into_iter()
                            .filter(|m| self.has_blob(&m.digest)),
                    );
                    continue;
                }
                Some(Kind::Manifest) => {
                    self.hold(&need)?;
                    let m: Manifest = self.read_json(&d.digest)?;
                    std::iter::once(m.config).chain(m.layers).collect()
                }
                _ => Vec::new(),
            };
            need.extend(children.iter().map(|c| Held::Blob(c.digest.clone())));
            if let Some(Held::Blob(missing)) = self.hold(&need)?.into_iter().next() {
                return Err(StoreError::BlobMissing {
                    digest: missing.to_string(),
                });
            }
        }
        Ok(gc)
    }

    /// The blobs of an image that are in the store: the manifest or index, and for each
    /// manifest present its config and layers. Parents come before their children.
    pub fn blobs_of(&self, desc: &Descriptor) -> Result<Vec<Digest>> {
        let mut out: Vec<Digest> = Vec::new();
        let mut stack = vec![desc.clone()];
        while let Some(d) = stack.pop() {
            if out.contains(&d.digest) || !self.has_blob(&d.digest) {
                continue;
            }
            out.push(d.digest.clone());
            match media::kind(&d.media_type) {
                Some(Kind::Index) => stack.extend(self.read_json::<Index>(&d.digest)?.manifests),
                Some(Kind::Manifest) => {
                    let m: Manifest = self.read_json(&d.digest)?;
                    stack.push(m.config);
                    stack.extend(m.layers);
                }
                _ => {}
            }
        }
        Ok(out)
    }

    /// Adds an image without a name, unless it is already in the index.
    pub fn add_untagged(&self, desc: &Descriptor) -> Result<()> {
        let _gc = self.ensure_complete(desc)?;
        self.update_index(|index| {
            if !index.manifests.iter().any(|d| d.digest == desc.digest) {
                index.manifests.push(dangling(desc));
            }
            Ok(())
        })
    }

    /// Removes a name. The image stays (dangling) unless `remove_image` follows.
    pub fn untag(&self, reference: &Reference) -> Result<Digest> {
        let familiar = reference.familiar();
        let removed = self.update_index(|index| {
            drop_name(index, &familiar).ok_or_else(|| StoreError::ImageNotFound {
                reference: familiar.clone(),
            })
        })?;
        self.record_move(Move {
            action: "untag".into(),
            name: familiar,
            previous: Some(removed.to_string()),
            ..Default::default()
        })?;
        Ok(removed)
    }

    /// Drops every index entry of an image. Its blobs go at the next prune.
    pub fn remove_image(&self, digest: &Digest) -> Result<Vec<String>> {
        let names = self.update_index(|index| {
            let names = index
                .manifests
                .iter()
                .filter(|d| d.digest == *digest)
                .filter_map(|d| entry_name(d).map(str::to_string))
                .collect::<Vec<_>>();
            index.manifests.retain(|d| d.digest != *digest);
            Ok(names)
        })?;
        for name in &names {
            self.record_move(Move {
                action: "untag".into(),
                name: name.clone(),
                previous: Some(digest.to_string()),
                ..Default::default()
            })?;
        }
        Ok(names)
    }

    /// The index.json entry of the image `digest` (named or dangling), or, for an image
    /// no entry refers to any more but whose blob is here, a descriptor made from the blob.
    pub fn descriptor_of(&self, digest: &Digest) -> Result<Option<Descriptor>> {
        if let Some(d) = self
            .index()?
            .manifests
            .into_iter()
            .find(|d| d.digest == *digest)
        {
            return Ok(Some(dangling(&d)));
        }
        if !self.has_blob(digest) {
            return Ok(None);
        }
        let bytes = self.read_blob(digest)?;
        let doc: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|source| StoreError::Json {
                what: format!("blob {digest}"),
                source,
            })?;
        let media_type = match doc.get("mediaType").and_then(|m| m.as_str()) {
            Some(m) => m.to_string(),
            None if doc.get("manifests").is_some() => media::OCI_INDEX.to_string(),
            None => media::OCI_MANIFEST.to_string(),
        };
        Ok(Some(Descriptor::new(
            &media_type,
            digest.clone(),
            bytes.len() as u64,
        )))
    }

    /// The names of the image `digest`, sorted, from index.json alone (no blob is read).
    pub fn names_of(&self, digest: &Digest) -> Result<Vec<String>> {
        let mut names: Vec<String> = self
            .index()?
            .manifests
            .iter()
            .filter(|d| d.digest == *digest)
            .filter_map(|d| entry_name(d).map(str::to_string))
            .collect();
        names.sort();
        Ok(names)
    }

    /// Every image in the store, one item per image (names merged), sorted by name.
    pub fn images(&self) -> Result<Vec<ImageInfo>> {
        let index = self.index()?;
        let mut out: Vec<ImageInfo> = Vec::new();
        for d in &index.manifests {
            if crate::referrers::is_referrer(d) {
                continue; // an SBOM or provenance of an image, not an image
            }
            if let Some(existing) = out.iter_mut().find(|i| i.descriptor.digest == d.digest) {
                if let Some(n) = entry_name(d) {
                    existing.names.push(n.to_string());
                    existing.names.sort();
                }
                continue;
            }
            let mut info = self.image(d)?;
            info.names = entry_name(d)
                .map(|n| vec![n.to_string()])
                .unwrap_or_default();
            out.push(info);
        }
        out.sort_by(|a, b| a.names.first().cmp(&b.names.first()).then(a.id.cmp(&b.id)));
        Ok(out)
    }

    /// Loads an image's manifest and config, choosing the host platform in an index.
    pub fn image(&self, desc: &Descriptor) -> Result<ImageInfo> {
        let (manifest_descriptor, mut size) = match media::kind(&desc.media_type) {
            Some(Kind::Manifest) => (desc.clone(), 0),
            Some(Kind::Index) => {
                let index: Index = self.read_json(&desc.digest)?;
                (
                    self.select_platform(&index, &desc.digest, &Platform::host())?,
                    desc.size,
                )
            }
            _ => {
                return Err(StoreError::UnknownMediaType {
                    media_type: desc.media_type.clone(),
                    digest: desc.digest.to_string(),
                })
            }
        };
        let manifest: Manifest = self.read_json(&manifest_descriptor.digest)?;
        let config: ImageConfig = self.read_json(&manifest.config.digest)?;
        size += manifest_descriptor.size
            + manifest.config.size
            + manifest.layers.iter().map(|l| l.size).sum::<u64>();
        Ok(ImageInfo {
            names: Vec::new(),
            descriptor: desc.clone(),
            id: manifest.config.digest.clone(),
            manifest_descriptor,
            manifest,
            config,
            size,
        })
    }

    /// The manifest of `index` for `platform` that is present in the store.
    pub fn select_platform(
        &self,
        index: &Index,
        index_digest: &Digest,
        platform: &Platform,
    ) -> Result<Descriptor> {
        index
            .manifests
            .iter()
            .filter(|d| media::kind(&d.media_type) == Some(Kind::Manifest))
            .find(|d| {
                d.platform
                    .as_ref()
                    .is_some_and(|p| platform.matches(&p.os, &p.architecture, p.variant.as_deref()))
                    && self.has_blob(&d.digest)
            })
            .cloned()
            .ok_or_else(|| StoreError::ImageNotFound {
                reference: format!("{index_digest} for platform {platform}"),
            })
    }

    /// Resolves what a user typed: a name (`iris:v1`, `docker.io/library/iris:v1`),
    /// `name@sha256:...`, a full digest, or a unique prefix of an image ID or digest.
    pub fn resolve(&self, input: &str) -> Result<Resolved> {
        let index = self.index()?;
        let by_name = Reference::parse(input).ok().and_then(|r| {
            let familiar_name = r.familiar_name();
            index.manifests.iter().find_map(|d| {
                let name = entry_name(d)?;
                let matches = match (r.digest(), r.tag()) {
                    (Some(digest), _) => {
                        d.digest == digest
                            && Reference::parse(name)
                                .is_ok_and(|n| n.familiar_name() == familiar_name)
                    }
                    (None, _) => name == r.familiar(),
                };
                matches.then(|| Resolved {
                    descriptor: dangling(d),
                    name: Some(name.to_string()),
                })
            })
        });
        if let Some(found) = by_name {
            return Ok(found);
        }
        let needle = input.strip_prefix("sha256:").unwrap_or(input);
        let is_hex = !needle.is_empty() && needle.bytes().all(|b| b.is_ascii_hexdigit());
        if is_hex {
            let mut hits: Vec<&Descriptor> = Vec::new();
            for d in &index.manifests {
                if hits.iter().any(|h| h.digest == d.digest) || crate::referrers::is_referrer(d) {
                    continue;
                }
                let id_matches = self
                    .image(d)
                    .map(|i| i.id.hex().starts_with(needle))
                    .unwrap_or(false);
                if d.digest.hex().starts_with(needle) || id_matches {
                    hits.push(d);
                }
            }
            match hits.len() {
                1 => {
                    return Ok(Resolved {
                        descriptor: dangling(hits[0]),
                        name: None,
                    })
                }
                n if n > 1 => {
                    return Err(StoreError::Ambiguous {
                        prefix: input.to_string(),
                    })
                }
                _ => {}
            }
        }
        // A name that does not parse is reported as such, not as "not found".
        Reference::parse(input)?;
        Err(StoreError::ImageNotFound {
            reference: input.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_oci::types::{to_canonical_json, ImageConfig, RootFs};

    fn image(store: &Store, n: u8) -> Descriptor {
        let config = ImageConfig {
            created: None,
            author: None,
            architecture: "amd64".into(),
            os: "linux".into(),
            variant: None,
            config: None,
            rootfs: RootFs {
                kind: "layers".into(),
                diff_ids: vec![],
            },
            history: None,
            extra: [("n".to_string(), serde_json::json!(n))].into(),
        };
        let cbytes = to_canonical_json(&config);
        let cd = store.write_blob(&cbytes).unwrap();
        let m = Manifest {
            schema_version: 2,
            media_type: Some(media::OCI_MANIFEST.into()),
            artifact_type: None,
            config: Descriptor::new(media::OCI_CONFIG, cd, cbytes.len() as u64),
            layers: vec![],
            subject: None,
            annotations: None,
            extra: Default::default(),
        };
        let mbytes = to_canonical_json(&m);
        let md = store.write_blob(&mbytes).unwrap();
        Descriptor::new(media::OCI_MANIFEST, md, mbytes.len() as u64)
    }

    #[test]
    fn tags_move_and_dangle() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let a = image(&store, 1);
        let b = image(&store, 2);
        let r = Reference::parse("app:v1").unwrap();
        store.tag(&a, &r).unwrap();
        store
            .tag(&a, &Reference::parse("app:latest").unwrap())
            .unwrap();
        assert_eq!(store.resolve("app:v1").unwrap().descriptor.digest, a.digest);
        assert_eq!(
            store
                .resolve("docker.io/library/app:v1")
                .unwrap()
                .descriptor
                .digest,
            a.digest
        );
        store.tag(&b, &r).unwrap();
        assert_eq!(store.resolve("app:v1").unwrap().descriptor.digest, b.digest);
        let images = store.images().unwrap();
        assert_eq!(images.len(), 2);
        store
            .untag(&Reference::parse("app:latest").unwrap())
            .unwrap();
        // `a` lost every name but is still listed, dangling.
        let images = store.images().unwrap();
        assert!(images
            .iter()
            .any(|i| i.descriptor.digest == a.digest && i.names.is_empty()));
        assert_eq!(
            store
                .resolve(&a.digest.hex()[..10])
                .unwrap()
                .descriptor
                .digest,
            a.digest
        );
        assert!(matches!(
            store.resolve("nope:v1"),
            Err(StoreError::ImageNotFound { .. })
        ));
        assert!(matches!(store.resolve("Bad:Ref"), Err(StoreError::Oci(_))));
        let history = std::fs::read_to_string(dir.path().join("history/tags.jsonl")).unwrap();
        assert_eq!(history.lines().count(), 4);
    }
}
