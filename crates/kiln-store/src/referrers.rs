//! Referrers: OCI 1.1 artifacts (an SBOM, a provenance statement, a signature) whose
//! manifest names an image as its `subject`.
//!
//! In the store an artifact is an ordinary OCI image manifest (`artifactType`, the empty
//! config `application/vnd.oci.empty.v1+json`, one layer per document, `subject`) whose
//! blobs sit in `blobs/sha256/` like any other, with one **untagged** index.json entry:
//! no `org.opencontainers.image.ref.name`, the descriptor's `artifactType`, and the
//! annotation [`ANNOTATION_SUBJECT`] naming the subject's digest, so that the referrers
//! of an image are found from index.json alone, and any OCI tool reading the layout
//! (oras, skopeo, umoci) sees a well-formed manifest.
//!
//! Reachability ([`Store::prune`]): an index.json entry whose manifest has a `subject` is
//! not a root; it is reachable while its subject is reachable (from a tag, an untagged
//! image kept for rollback, or another reachable artifact), and its entry is dropped by
//! prune once the subject is gone. `kiln images` does not list artifacts.

use crate::error::{Result, StoreError};
use crate::store::Store;
use kiln_oci::media::{self, Kind};
use kiln_oci::types::{to_canonical_json, Descriptor, Manifest, StringMap};
use kiln_oci::Digest;

/// The annotation of an artifact's index.json entry that names its subject's digest.
pub const ANNOTATION_SUBJECT: &str = "dev.kiln.referrer.subject";
/// The empty descriptor's media type (OCI image spec 1.1).
pub const EMPTY_MEDIA_TYPE: &str = "application/vnd.oci.empty.v1+json";
/// The empty descriptor's bytes: `{}`.
pub const EMPTY_BYTES: &[u8] = b"{}";
/// sha256 of [`EMPTY_BYTES`].
pub const EMPTY_DIGEST: &str =
    "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";

/// The empty descriptor, the config of every artifact kiln writes.
pub fn empty_descriptor() -> Descriptor {
    Descriptor::new(
        EMPTY_MEDIA_TYPE,
        Digest::parse(EMPTY_DIGEST).expect("a valid digest"),
        EMPTY_BYTES.len() as u64,
    )
}

/// Whether an index.json entry is an artifact with a subject (not an image to list).
pub fn is_referrer(d: &Descriptor) -> bool {
    d.annotation(ANNOTATION_SUBJECT).is_some()
}

/// The artifact manifest of one document.
pub fn artifact_manifest(
    subject: &Descriptor,
    artifact_type: &str,
    document: Descriptor,
    annotations: Option<StringMap>,
) -> Manifest {
    let mut subject = subject.clone();
    // The subject descriptor names the manifest, nothing else about the image's entry.
    subject.annotations = None;
    subject.platform = None;
    subject.urls = None;
    let mut m = Manifest::oci(empty_descriptor(), vec![document]);
    m.artifact_type = Some(artifact_type.to_string());
    m.subject = Some(subject);
    m.annotations = annotations;
    m
}

/// An artifact of the store: its index.json entry and its manifest.
#[derive(Clone, Debug)]
pub struct Referrer {
    /// The artifact's entry in index.json.
    pub descriptor: Descriptor,
    /// The artifact's manifest; its `subject` is the image it is about.
    pub manifest: Manifest,
}

impl Referrer {
    /// The manifest's `artifactType`, else its config's media type (OCI 1.1's rule).
    pub fn artifact_type(&self) -> &str {
        self.manifest
            .artifact_type
            .as_deref()
            .unwrap_or(&self.manifest.config.media_type)
    }
}

/// The index.json entry of an artifact manifest.
fn entry(digest: Digest, size: u64, m: &Manifest, subject: &Digest) -> Descriptor {
    let mut d = Descriptor::new(media::OCI_MANIFEST, digest, size);
    d.artifact_type = m.artifact_type.clone();
    d.annotations = Some([(ANNOTATION_SUBJECT.to_string(), subject.to_string())].into());
    d
}

impl Store {
    /// Writes one document as an artifact of `subject` (an image manifest or index in
    /// the store) and adds its entry to index.json. With `replace`, the other artifacts
    /// of the same type and subject leave index.json (their blobs go at the next prune):
    /// what `kiln build --sbom` attaches is the current SBOM of the image.
    pub fn add_referrer(
        &self,
        subject: &Descriptor,
        artifact_type: &str,
        document_media_type: &str,
        document: &[u8],
        annotations: Option<StringMap>,
        replace: bool,
    ) -> Result<Descriptor> {
        let _gc = self.gc_lock(false)?;
        if !self.has_blob(&subject.digest) {
            return Err(StoreError::BlobMissing {
                digest: subject.digest.to_string(),
            });
        }
        self.write_blob(EMPTY_BYTES)?;
        let doc = self.write_blob(document)?;
        let m = artifact_manifest(
            subject,
            artifact_type,
            Descriptor::new(document_media_type, doc, document.len() as u64),
            annotations,
        );
        let bytes = to_canonical_json(&m);
        let digest = self.write_blob(&bytes)?;
        let desc = entry(digest, bytes.len() as u64, &m, &subject.digest);
        let subject_s = subject.digest.to_string();
        self.update_index(|index| {
            index.manifests.retain(|d| {
                let same = d.annotation(ANNOTATION_SUBJECT) == Some(subject_s.as_str())
                    && d.artifact_type.as_deref() == Some(artifact_type);
                d.digest != desc.digest && !(replace && same)
            });
            index.manifests.push(desc.clone());
            Ok(())
        })?;
        Ok(desc)
    }

    /// Adds an artifact manifest whose blobs (manifest, config, layers) are already in
    /// the store (a pull) to index.json. Returns its entry.
    pub fn add_referrer_manifest(&self, digest: &Digest) -> Result<Descriptor> {
        let _gc = self.gc_lock(false)?;
        self.hold(&[crate::lease::Held::Blob(digest.clone())])?;
        let bytes = self.read_blob(digest)?;
        let m: Manifest = serde_json::from_slice(&bytes).map_err(|source| StoreError::Json {
            what: format!("artifact manifest {digest}"),
            source,
        })?;
        let subject = m.subject.as_ref().ok_or_else(|| StoreError::Layer {
            digest: digest.to_string(),
            reason: "an artifact manifest without a subject".into(),
        })?;
        for b in std::iter::once(&m.config).chain(&m.layers) {
            if !self.has_blob(&b.digest) {
                return Err(StoreError::BlobMissing {
                    digest: b.digest.to_string(),
                });
            }
        }
        let desc = entry(digest.clone(), bytes.len() as u64, &m, &subject.digest);
        self.update_index(|index| {
            if !index.manifests.iter().any(|d| d.digest == desc.digest) {
                index.manifests.push(desc.clone());
            }
            Ok(())
        })?;
        Ok(desc)
    }

    /// The artifacts in the store whose subject is `subject`, sorted by artifact type
    /// then digest; `artifact_type` filters.
    pub fn referrers(
        &self,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Referrer>> {
        let want = subject.to_string();
        let mut out = Vec::new();
        for d in self.index()?.manifests {
            if d.annotation(ANNOTATION_SUBJECT) != Some(want.as_str()) {
                continue;
            }
            if artifact_type.is_some() && d.artifact_type.as_deref() != artifact_type {
                continue;
            }
            if !self.has_blob(&d.digest) {
                continue;
            }
            let manifest: Manifest = self.read_json(&d.digest)?;
            if manifest.subject.as_ref().map(|s| &s.digest) != Some(subject) {
                continue;
            }
            out.push(Referrer {
                descriptor: d,
                manifest,
            });
        }
        out.sort_by(|a, b| {
            (a.descriptor.artifact_type.as_deref(), &a.descriptor.digest)
                .cmp(&(b.descriptor.artifact_type.as_deref(), &b.descriptor.digest))
        });
        out.dedup_by(|a, b| a.descriptor.digest == b.descriptor.digest);
        Ok(out)
    }

    /// The bytes of the first layer of the newest-by-digest artifact of `artifact_type`
    /// whose subject is `subject`, verified against its digest; `None` when there is none.
    pub fn referrer_document(
        &self,
        subject: &Digest,
        artifact_type: &str,
    ) -> Result<Option<Vec<u8>>> {
        let Some(r) = self
            .referrers(subject, Some(artifact_type))?
            .into_iter()
            .next()
        else {
            return Ok(None);
        };
        let Some(layer) = r.manifest.layers.first() else {
            return Ok(None);
        };
        Ok(Some(self.read_blob(&layer.digest)?))
    }

    /// Problems of an artifact entry, for `kiln check`: its manifest, config and
    /// documents present at their declared sizes (documents may have any media type).
    pub(crate) fn check_referrer(&self, d: &Descriptor) -> Vec<String> {
        let what = format!("artifact {}", d.digest);
        let mut problems = Vec::new();
        let sized = |b: &Descriptor, problems: &mut Vec<String>| match self.blob_size(&b.digest) {
            Ok(n) if n == b.size => true,
            Ok(n) => {
                problems.push(format!(
                    "{what}: blob {} is {n} bytes, its descriptor says {}",
                    b.digest, b.size
                ));
                false
            }
            Err(_) => {
                problems.push(format!(
                    "{what}: blob {} ({}) is missing",
                    b.digest, b.media_type
                ));
                false
            }
        };
        if !sized(d, &mut problems) {
            return problems;
        }
        match self.read_json::<Manifest>(&d.digest) {
            Ok(m) => {
                if media::kind(&d.media_type) != Some(Kind::Manifest) || m.subject.is_none() {
                    problems.push(format!("{what}: not an artifact manifest with a subject"));
                }
                for b in std::iter::once(&m.config).chain(&m.layers) {
                    sized(b, &mut problems);
                }
            }
            Err(e) => problems.push(format!("{what}: {e}")),
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_descriptor_is_the_spec_one() {
        assert_eq!(Digest::of_bytes(EMPTY_BYTES).to_string(), EMPTY_DIGEST);
    }

    #[test]
    fn referrers_follow_their_subject() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let cfg = store.write_blob(br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#).unwrap();
        let m = Manifest::oci(
            Descriptor::new(
                media::OCI_CONFIG,
                cfg.clone(),
                store.blob_size(&cfg).unwrap(),
            ),
            vec![],
        );
        let mb = to_canonical_json(&m);
        let md = store.write_blob(&mb).unwrap();
        let image = Descriptor::new(media::OCI_MANIFEST, md.clone(), mb.len() as u64);
        store
            .tag(&image, &kiln_oci::Reference::parse("app:v1").unwrap())
            .unwrap();
        let a = store
            .add_referrer(
                &image,
                "application/spdx+json",
                "application/spdx+json",
                b"{\"a\":1}",
                None,
                true,
            )
            .unwrap();
        // Replaced by a newer document of the same type.
        let b = store
            .add_referrer(
                &image,
                "application/spdx+json",
                "application/spdx+json",
                b"{\"a\":2}",
                None,
                true,
            )
            .unwrap();
        assert_ne!(a.digest, b.digest);
        let refs = store.referrers(&md, None).unwrap();
        assert_eq!(refs.len(), 1);
        assert_eq!(
            store
                .referrer_document(&md, "application/spdx+json")
                .unwrap()
                .unwrap(),
            b"{\"a\":2}"
        );
        // Not an image.
        assert_eq!(store.images().unwrap().len(), 1);
        assert!(store.check(&crate::NoProgress).unwrap().problems.is_empty());
        // Kept while the image is (this process's lease holds the blobs it wrote, so
        // the index entries tell), dropped with it.
        store.prune().unwrap();
        assert!(store
            .index()
            .unwrap()
            .manifests
            .iter()
            .any(|d| d.digest == b.digest));
        assert_eq!(store.referrers(&md, None).unwrap().len(), 1);
        store.remove_image(&md).unwrap();
        store.prune().unwrap();
        assert!(store.index().unwrap().manifests.is_empty());
        assert!(store.check(&crate::NoProgress).unwrap().problems.is_empty());
    }
}
