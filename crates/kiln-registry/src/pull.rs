//! `kiln pull`: a manifest (or an index and the manifest for the platform), its config,
//! and its layers, downloaded in parallel. Each layer streams through one pass: its
//! bytes are hashed and written to the store while they are decompressed and unpacked
//! into the layer's snapshot, so the image is ready to run when the pull ends. Nothing
//! enters the store before its digest matched; the name is given last.

use crate::client::{manifest_ref, Repo};
use crate::error::{RegistryError, Result};
use crate::limits::{human, MAX_CONFIG};
use kiln_layer::pool::run_parallel;
use kiln_oci::media::{self, Kind};
use kiln_oci::types::{Descriptor, ImageConfig, Index, Manifest};
use kiln_oci::{Digest, Platform, Reference};
use kiln_store::prune::chain_ids;
use kiln_store::{snapshot, BlobWriter, Progress, Store};
use std::io::{self, Read, Write};

/// Layers downloaded at once (Docker's default is 3).
pub const DEFAULT_JOBS: usize = 4;

/// How to pull.
pub struct PullOptions<'a> {
    /// The platform to pick from an index; the host's when `None`.
    pub platform: Option<Platform>,
    /// Unpack layers into snapshots (off when the store is only a staging area).
    pub unpack: bool,
    /// Give the image the reference's name in the store.
    pub tag: bool,
    /// Layers downloaded at once (at least one).
    pub jobs: usize,
    /// Told when each layer starts, of its bytes as they arrive, and when it is done.
    pub progress: &'a dyn Progress,
}

/// What happened to one blob.
#[derive(Clone, Debug, serde::Serialize)]
pub struct BlobReport {
    /// Digest of the blob as stored in the registry (compressed, for a layer).
    pub digest: Digest,
    /// Size of the blob in bytes, as the manifest gives it.
    pub size: u64,
    /// `downloaded`, `exists` (already in the store); for pushes `pushed`, `exists`
    /// (already in the registry), `mounted`.
    pub status: &'static str,
}

/// The result of a pull.
#[derive(Clone, Debug, serde::Serialize)]
pub struct PullReport {
    /// The reference pulled, fully qualified (`docker.io/library/debian:12`).
    pub reference: String,
    /// The digest of what the reference names in the registry (index or manifest).
    pub digest: Digest,
    /// The index.json entry made for it.
    #[serde(skip)]
    pub descriptor: Descriptor,
    /// The config digest (the image ID).
    pub id: Digest,
    /// One report per layer of the manifest, in its order.
    pub layers: Vec<BlobReport>,
    /// Bytes of the layers that had to be downloaded (those already in the store not
    /// counted).
    pub downloaded_bytes: u64,
    /// The artifacts of the image (SBOM, provenance) brought with it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub referrers: Vec<Digest>,
    /// Artifacts listed by the registry that could not be brought (the image is
    /// pulled all the same).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub referrer_errors: Vec<String>,
}

/// Pulls `reference` from the first of `repos` (mirrors first) that has it.
pub fn pull(
    store: &Store,
    repos: &[Repo],
    reference: &Reference,
    opts: &PullOptions<'_>,
) -> Result<PullReport> {
    let mut last = None;
    for (i, repo) in repos.iter().enumerate() {
        match pull_from(store, repo, reference, opts) {
            Ok(r) => return Ok(r),
            // A mirror that fails is skipped; the registry's own error is reported.
            Err(e) if i + 1 < repos.len() => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| RegistryError::NotFound {
        what: reference.to_string(),
    }))
}

fn write_small(store: &Store, bytes: &[u8], digest: &Digest) -> Result<()> {
    if !store.has_blob_held(digest) {
        let got = store.write_blob(bytes)?;
        debug_assert_eq!(&got, digest);
    }
    Ok(())
}

fn pull_from(
    store: &Store,
    repo: &Repo,
    reference: &Reference,
    opts: &PullOptions<'_>,
) -> Result<PullReport> {
    // Blobs being added are protected from a concurrent prune.
    let _gc = store.gc_lock(false)?;
    let (bytes, media_type, top_digest) = repo.get_manifest(&manifest_ref(reference))?;
    let top = Descriptor::new(&media_type, top_digest.clone(), bytes.len() as u64);
    let (manifest_desc, manifest_bytes, index_bytes) = match media::kind(&media_type) {
        Some(Kind::Index) => {
            let index: Index = parse(repo, &bytes, "index")?;
            let want = opts.platform.clone().unwrap_or_else(Platform::host);
            let chosen =
                choose_platform(&index, &want).ok_or_else(|| RegistryError::NoPlatform {
                    reference: reference.to_string(),
                    platform: want.to_string(),
                    available: platforms(&index),
                })?;
            let (mb, mt, _) = repo.get_manifest(&chosen.digest.to_string())?;
            if media::kind(&mt) != Some(Kind::Manifest) {
                return Err(repo.protocol(format!(
                    "{} in the index of {reference} is a {mt}, not an image manifest",
                    chosen.digest
                )));
            }
            (chosen, mb, Some(bytes))
        }
        Some(Kind::Manifest) => (top.clone(), bytes, None),
        _ => return Err(repo.protocol(format!("{reference} is a `{media_type}`, not an image"))),
    };
    let manifest: Manifest = parse(repo, &manifest_bytes, "manifest")?;
    // The config: small, read whole, verified, stored.
    if manifest.config.size > MAX_CONFIG {
        return Err(repo.protocol(format!(
            "the config {} of {reference} is {} bytes, more than {}, the most kiln accepts: refused",
            manifest.config.digest,
            manifest.config.size,
            human(MAX_CONFIG)
        )));
    }
    let config_bytes = if store.has_blob_held(&manifest.config.digest) {
        store.read_blob(&manifest.config.digest)?
    } else {
        // The reader stops at the declared size, which is at most MAX_CONFIG.
        get_small(repo, &manifest.config, "config")?
    };
    let config: ImageConfig = parse(repo, &config_bytes, "image config")?;
    let diff_ids = &config.rootfs.diff_ids;
    if diff_ids.len() != manifest.layers.len() {
        return Err(repo.protocol(format!(
            "{reference}: the config lists {} layers but the manifest has {}",
            diff_ids.len(),
            manifest.layers.len()
        )));
    }
    for l in &manifest.layers {
        if media::kind(&l.media_type) != Some(Kind::Layer) {
            return Err(repo.protocol(format!(
                "layer {} has media type `{}`, which kiln cannot unpack",
                l.digest, l.media_type
            )));
        }
    }
    let layers = fetch_layers(store, repo, &manifest.layers, diff_ids, opts)?;
    write_small(store, &config_bytes, &manifest.config.digest)?;
    write_small(store, &manifest_bytes, &manifest_desc.digest)?;
    if let Some(ib) = &index_bytes {
        write_small(store, ib, &top_digest)?;
    }
    // An index is kept (its digest is what the registry calls the image) when the
    // manifest chosen is this host's; otherwise the manifest itself is the entry.
    let host = Platform::host();
    let keep_index = index_bytes.is_some()
        && opts
            .platform
            .as_ref()
            .is_none_or(|p| p.os == host.os && p.architecture == host.architecture);
    let entry = if keep_index {
        top.clone()
    } else {
        let mut d = manifest_desc.clone();
        d.platform = None;
        d
    };
    if opts.tag {
        let name = if reference.tag().is_none() && reference.digest().is_none() {
            reference.with_tag("latest")
        } else {
            reference.clone()
        };
        store.tag(&entry, &name)?;
    } else {
        store.add_untagged(&entry)?;
    }
    // Remembered so that a push to another repository of this registry mounts them.
    for d in std::iter::once(&manifest.config.digest).chain(layers.iter().map(|l| &l.digest)) {
        crate::push::record_source(store, d, repo.registry(), repo.repository());
    }
    let downloaded_bytes = layers
        .iter()
        .filter(|l| l.status == "downloaded")
        .map(|l| l.size)
        .sum();
    let mut subjects = vec![top_digest.clone()];
    if manifest_desc.digest != top_digest {
        subjects.push(manifest_desc.digest.clone());
    }
    let (referrers, referrer_errors) = pull_referrers(store, repo, &subjects);
    Ok(PullReport {
        reference: reference.to_string(),
        digest: top_digest,
        descriptor: entry,
        id: manifest.config.digest.clone(),
        layers,
        downloaded_bytes,
        referrers,
        referrer_errors,
    })
}

/// The most artifacts of one subject a pull brings.
const MAX_REFERRERS: usize = 64;
/// The largest artifact blob (an SBOM of a big image is a few MB).
const MAX_ARTIFACT_BLOB: u64 = 64 << 20;

/// Brings the artifacts whose subject is one of `subjects` (the referrers API, else the
/// fallback tag `sha256-<hex>`), each manifest and blob verified against its digest, and
/// registers them in the store ([`Store::add_referrer_manifest`]). Best effort: what
/// fails is reported, the image stays pulled.
fn pull_referrers(store: &Store, repo: &Repo, subjects: &[Digest]) -> (Vec<Digest>, Vec<String>) {
    let mut got = Vec::new();
    let mut errors = Vec::new();
    for subject in subjects {
        let index = match repo.referrers(subject, None) {
            Ok(i) => i,
            Err(e) => {
                errors.push(format!("referrers of {subject}: {e}"));
                continue;
            }
        };
        for d in index.manifests.iter().take(MAX_REFERRERS) {
            if media::kind(&d.media_type) != Some(Kind::Manifest) {
                continue;
            }
            match pull_artifact(store, repo, &d.digest, subject) {
                Ok(()) => got.push(d.digest.clone()),
                Err(e) => errors.push(format!("artifact {} of {subject}: {e}", d.digest)),
            }
        }
    }
    (got, errors)
}

fn pull_artifact(store: &Store, repo: &Repo, digest: &Digest, subject: &Digest) -> Result<()> {
    let (bytes, _, _) = repo.get_manifest(&digest.to_string())?;
    let m: Manifest = parse(repo, &bytes, "artifact manifest")?;
    if m.subject.as_ref().map(|s| &s.digest) != Some(subject) {
        return Err(repo.protocol(format!(
            "artifact {digest} does not name {subject} as its subject"
        )));
    }
    for b in std::iter::once(&m.config).chain(&m.layers) {
        if store.has_blob_held(&b.digest) {
            continue;
        }
        if b.size > MAX_ARTIFACT_BLOB {
            return Err(repo.protocol(format!(
                "blob {} of artifact {digest} is {} bytes, more than {}: refused",
                b.digest,
                b.size,
                human(MAX_ARTIFACT_BLOB)
            )));
        }
        let buf = get_small(repo, b, "blob")?;
        write_small(store, &buf, &b.digest)?;
    }
    write_small(store, &bytes, digest)?;
    store.add_referrer_manifest(digest)?;
    Ok(())
}

/// Downloads the blob `desc` whole into memory (the caller bounds its declared size) and
/// checks its digest; `what` names it in a read error (`config`, `blob`).
fn get_small(repo: &Repo, desc: &Descriptor, what: &str) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    let mut reader = repo.get_blob(&desc.digest, desc.size)?;
    if let Err(e) = reader.read_to_end(&mut buf) {
        return Err(if reader.oversized() {
            reader.oversized_error()
        } else {
            repo.protocol(format!("{what} {}: {e}", desc.digest))
        });
    }
    let actual = Digest::of_bytes(&buf);
    if actual != desc.digest {
        return Err(RegistryError::DigestMismatch {
            registry: repo.registry().to_string(),
            digest: desc.digest.to_string(),
            actual: actual.to_string(),
        });
    }
    Ok(buf)
}

fn parse<T: serde::de::DeserializeOwned>(repo: &Repo, bytes: &[u8], what: &str) -> Result<T> {
    serde_json::from_slice(bytes)
        .map_err(|e| repo.protocol(format!("the {what} is not valid: {e}")))
}

fn choose_platform(index: &Index, want: &Platform) -> Option<Descriptor> {
    let candidates = || {
        index
            .manifests
            .iter()
            .filter(|d| media::kind(&d.media_type) == Some(Kind::Manifest))
    };
    candidates()
        .find(|d| {
            d.platform.as_ref().is_some_and(|p| {
                p.os == want.os
                    && p.architecture == want.architecture
                    && (want.variant.is_none() || p.variant == want.variant)
            })
        })
        .or_else(|| {
            candidates().find(|d| {
                d.platform
                    .as_ref()
                    .is_some_and(|p| want.matches(&p.os, &p.architecture, p.variant.as_deref()))
            })
        })
        .cloned()
}

fn platforms(index: &Index) -> String {
    let v: Vec<String> = index
        .manifests
        .iter()
        .filter_map(|d| d.platform.as_ref())
        .map(|p| match &p.variant {
            Some(v) => format!("{}/{}/{v}", p.os, p.architecture),
            None => format!("{}/{}", p.os, p.architecture),
        })
        .collect();
    if v.is_empty() {
        "no platforms listed".into()
    } else {
        v.join(", ")
    }
}

/// Copies what it reads into the blob being written, reporting progress.
struct Tee<'a, R> {
    inner: R,
    out: &'a mut BlobWriter,
    progress: &'a dyn Progress,
    id: String,
}

impl<R: Read> Read for Tee<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.out.write_all(&buf[..n])?;
        self.progress.advance(&self.id, n as u64);
        Ok(n)
    }
}

fn fetch_layers(
    store: &Store,
    repo: &Repo,
    layers: &[Descriptor],
    diff_ids: &[Digest],
    opts: &PullOptions<'_>,
) -> Result<Vec<BlobReport>> {
    let chains = chain_ids(diff_ids);
    let jobs: Vec<(&Descriptor, &Digest, &Digest)> = layers
        .iter()
        .zip(diff_ids)
        .zip(&chains)
        .map(|((l, d), c)| (l, d, c))
        .collect();
    run_parallel(&jobs, opts.jobs, |(layer, diff_id, chain)| {
        fetch_layer(store, repo, layer, diff_id, chain, opts)
    })
}

fn fetch_layer(
    store: &Store,
    repo: &Repo,
    layer: &Descriptor,
    diff_id: &Digest,
    chain: &Digest,
    opts: &PullOptions<'_>,
) -> Result<BlobReport> {
    let id = layer.digest.to_string();
    let need_snapshot = opts.unpack && !snapshot::path(store, chain).is_dir();
    if store.has_blob_held(&layer.digest) {
        if need_snapshot {
            let file = store.open_blob(&layer.digest)?;
            snapshot::unpack_stream(
                store,
                io::BufReader::with_capacity(1 << 20, file),
                &layer.digest,
                diff_id,
                chain,
                snapshot::Verify::Both,
            )?;
        }
        opts.progress.finish(&id, "already exists");
        return Ok(BlobReport {
            digest: layer.digest.clone(),
            size: layer.size,
            status: "exists",
        });
    }
    opts.progress.start(
        &id,
        &format!("{} layer", layer.digest.short()),
        Some(layer.size),
    );
    let mut writer = store.blob_writer()?;
    // Bounded by the declared size: a registry that sends more is cut off there, so the
    // temp file never holds more than the manifest promised.
    let reader = repo.get_blob(&layer.digest, layer.size)?;
    let mut tee = Tee {
        inner: io::BufReader::with_capacity(1 << 20, reader),
        out: &mut writer,
        progress: opts.progress,
        id: id.clone(),
    };
    let drain = |tee: &mut Tee<'_, _>| {
        io::copy(tee, &mut io::sink())
            .map(drop)
            .map_err(|e| kiln_store::StoreError::io(store.blob_path(&layer.digest))(e))
    };
    let streamed = if need_snapshot {
        snapshot::unpack_stream(
            store,
            &mut tee,
            &layer.digest,
            diff_id,
            chain,
            // The blob writer hashes the same bytes and refuses a mismatch below.
            snapshot::Verify::DiffId,
        )
        // Whatever the unpacker left unread is read too (and counted, and bounded).
        .and_then(|()| drain(&mut tee))
    } else {
        drain(&mut tee)
    };
    let blob = tee.inner.get_ref();
    if blob.oversized() {
        // The registry sent more than declared: refused, whatever the unpacker made of
        // the bytes it got (a snapshot it finished matched the config's diff ID).
        return Err(blob.oversized_error());
    }
    drop(tee);
    // A digest the store refused is the registry's bad blob: say which registry.
    let from_registry = |e: kiln_store::StoreError| match e {
        kiln_store::StoreError::DigestMismatch { expected, actual } => {
            RegistryError::DigestMismatch {
                registry: repo.registry().to_string(),
                digest: expected,
                actual,
            }
        }
        other => other.into(),
    };
    streamed.map_err(from_registry)?;
    let count = writer.count();
    if count != layer.size {
        return Err(repo.protocol(format!(
            "blob {} is {count} bytes, the manifest says {}",
            layer.digest, layer.size
        )));
    }
    writer.commit(Some(&layer.digest)).map_err(from_registry)?;
    opts.progress.finish(&id, "pull complete");
    Ok(BlobReport {
        digest: layer.digest.clone(),
        size: layer.size,
        status: "downloaded",
    })
}
