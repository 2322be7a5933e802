//! `kiln push`: the blobs a registry lacks, then the manifest.
//!
//! Per blob: `HEAD` (skip what exists), else a cross-repository mount from a repository
//! of the same registry the blob was pulled from or pushed to, else an upload: small
//! blobs in one `PUT` (monolithic), others in `PATCH` requests with `Content-Range` (one
//! per blob, or chunks of `--chunk-size` for registries that cap request sizes). A
//! PATCH that fails is resumed from the offset the registry reports, and the upload's
//! URL is kept under `cache/uploads/`, so a push interrupted by a crash or a registry
//! restart resumes where the registry's upload stopped.
//!
//! Layers stored uncompressed are pushed gzip-compressed (Docker's default); with
//! `--compression` every layer is pushed in that compression. Recompressed blobs are
//! written to the store and remembered (`cache/variants/`), so pushing again neither
//! recompresses nor uploads anything.

use crate::client::{content_digest, Body, Repo, Req};
use crate::error::{RegistryError, Result};
use crate::pull::BlobReport;
use kiln_layer::pool::run_parallel;
use kiln_layer::{Compression, Compressor};
use kiln_oci::media::{self, Kind};
use kiln_oci::types::{to_canonical_json, Descriptor, Index, Manifest};
use kiln_oci::{Digest, Reference};
use kiln_store::layout::Cache;
use kiln_store::{ImageInfo, Progress, Store};
use reqwest::header;
use reqwest::{Method, StatusCode};
use std::fs;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::PathBuf;

/// Blobs up to this size go in one PUT.
const MONOLITHIC_MAX: u64 = 4 << 20;

/// How to push.
pub struct PushOptions<'a> {
    /// Recompress every layer to this; `None` keeps compressed layers as they are and
    /// gzips uncompressed ones.
    pub compression: Option<Compression>,
    /// Blobs uploaded at once (at least one).
    pub jobs: usize,
    /// Bytes per PATCH; `u64::MAX` sends each blob in one streamed PATCH (as Docker
    /// does), still resumed from the registry's offset if it breaks.
    pub chunk_size: u64,
    /// Told when each blob starts, of its bytes as they are sent, and how it ended
    /// (pushed, already there, mounted).
    pub progress: &'a dyn Progress,
}

/// The result of a push.
#[derive(Clone, Debug, serde::Serialize)]
pub struct PushReport {
    /// The destination pushed to, fully qualified (`registry/repository:tag`).
    pub reference: String,
    /// The digest of the manifest (or index) pushed.
    pub digest: Digest,
    /// Size in bytes of that manifest (or index).
    pub size: u64,
    /// One report per distinct blob (configs and layers of every manifest pushed),
    /// saying how it got there.
    pub blobs: Vec<BlobReport>,
    /// Bytes of blobs sent (manifests not counted).
    pub uploaded_bytes: u64,
    /// The artifacts (SBOM, provenance) pushed with the image, as the registry names
    /// them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub referrers: Vec<Digest>,
}

fn cache_dir(store: &Store, cache: Cache) -> PathBuf {
    kiln_store::layout::cache_dir(store.root(), cache)
}

/// Remembers that `digest` is in `registry/repository` (a later push may mount it).
pub fn record_source(store: &Store, digest: &Digest, registry: &str, repository: &str) {
    let dir = cache_dir(store, Cache::Sources);
    let path = dir.join(digest.hex());
    let line = format!("{registry} {repository}");
    let old = fs::read_to_string(&path).unwrap_or_default();
    if old.lines().any(|l| l == line) {
        return;
    }
    // Best effort: a lost record only costs a mount.
    let _ = fs::create_dir_all(&dir);
    let _ = store.write_atomic(&path, format!("{old}{line}\n").as_bytes());
}

fn sources(store: &Store, digest: &Digest, registry: &str, except: &str) -> Vec<String> {
    fs::read_to_string(cache_dir(store, Cache::Sources).join(digest.hex()))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once(' '))
        .filter(|(r, repo)| *r == registry && *repo != except)
        .map(|(_, repo)| repo.to_string())
        .collect()
}

fn suffix_name(c: Compression) -> &'static str {
    match c {
        Compression::None => "tar",
        Compression::Gzip => "gzip",
        Compression::Zstd => "zstd",
    }
}

fn layer_compression(media_type: &str) -> Compression {
    if media_type.ends_with("+zstd") || media_type.ends_with(".zstd") {
        Compression::Zstd
    } else if media_type.ends_with("gzip") {
        Compression::Gzip
    } else {
        Compression::None
    }
}

/// The layer as it will be pushed: the stored blob, or a recompressed copy of it.
fn layer_for_push(
    store: &Store,
    layer: &Descriptor,
    want: Option<Compression>,
    docker_types: bool,
) -> Result<Descriptor> {
    let have = layer_compression(&layer.media_type);
    let target = match want {
        Some(c) => c,
        None if have == Compression::None => Compression::Gzip,
        None => return Ok(layer.clone()),
    };
    if target == have {
        return Ok(layer.clone());
    }
    let media_type = match (target, docker_types) {
        (Compression::Gzip, true) => media::DOCKER_LAYER_GZIP,
        (c, _) => media::oci_layer(c.media_type_suffix()),
    };
    let variant = |digest: Digest, size: u64| {
        let mut out = layer.clone();
        out.media_type = media_type.into();
        out.digest = digest;
        out.size = size;
        out
    };
    let memo = cache_dir(store, Cache::Variants).join(format!(
        "{}-{}",
        layer.digest.hex(),
        suffix_name(target)
    ));
    if let Some(d) = fs::read_to_string(&memo)
        .ok()
        .and_then(|s| Digest::parse(s.trim()).ok())
        .filter(|d| store.has_blob(d))
    {
        let size = store.blob_size(&d)?;
        return Ok(variant(d, size));
    }
    let file = store.open_blob(&layer.digest)?;
    let (_, mut plain) = kiln_layer::decompress(io::BufReader::with_capacity(1 << 20, file))
        .map_err(kiln_store::StoreError::io(store.blob_path(&layer.digest)))?;
    let writer = store.blob_writer()?;
    let mut comp = Compressor::new(writer, target)
        .map_err(kiln_store::StoreError::io(store.blob_path(&layer.digest)))?;
    io::copy(&mut plain, &mut comp)
        .map_err(kiln_store::StoreError::io(store.blob_path(&layer.digest)))?;
    let writer = comp
        .finish()
        .map_err(kiln_store::StoreError::io(store.blob_path(&layer.digest)))?;
    let (digest, size) = writer.commit(None)?;
    let _ = fs::create_dir_all(memo.parent().expect("memo has a parent"));
    let _ = store.write_atomic(&memo, digest.to_string().as_bytes());
    Ok(variant(digest, size))
}

/// The manifest to push for one stored manifest: the same, or one naming recompressed
/// layers (an OCI manifest when a layer became zstd, which Docker's types cannot name).
fn manifest_for_push(
    store: &Store,
    manifest: &Manifest,
    manifest_bytes: Vec<u8>,
    media_type: &str,
    want: Option<Compression>,
) -> Result<(Manifest, Vec<u8>, String)> {
    let docker = media_type == media::DOCKER_MANIFEST;
    let mut layers = Vec::with_capacity(manifest.layers.len());
    for l in &manifest.layers {
        layers.push(layer_for_push(
            store,
            l,
            want,
            docker && want != Some(Compression::Zstd),
        )?);
    }
    if layers == manifest.layers {
        return Ok((manifest.clone(), manifest_bytes, media_type.to_string()));
    }
    let mut m = manifest.clone();
    m.layers = layers;
    let mut mt = media_type.to_string();
    if docker && want == Some(Compression::Zstd) {
        mt = media::OCI_MANIFEST.into();
        m.media_type = Some(mt.clone());
        if m.config.media_type == media::DOCKER_CONFIG {
            m.config.media_type = media::OCI_CONFIG.into();
        }
        for l in &mut m.layers {
            if l.media_type == media::DOCKER_LAYER_GZIP {
                l.media_type = media::OCI_LAYER_GZIP.into();
            }
        }
    }
    let bytes = to_canonical_json(&m);
    Ok((m, bytes, mt))
}

/// Pushes the image `image` to `dest`.
pub fn push(
    store: &Store,
    repo: &Repo,
    image: &ImageInfo,
    dest: &Reference,
    opts: &PushOptions<'_>,
) -> Result<PushReport> {
    let _gc = store.gc_lock(false)?;
    // Manifests to push: every platform of an index whose manifests are all here,
    // otherwise the one this host uses.
    let mut plan: Vec<(Descriptor, Manifest, Vec<u8>)> = Vec::new();
    let mut index: Option<Index> = None;
    if media::kind(&image.descriptor.media_type) == Some(Kind::Index) {
        let idx: Index = store.read_json(&image.descriptor.digest)?;
        let complete = idx.manifests.iter().all(|d| {
            media::kind(&d.media_type) == Some(Kind::Manifest)
                && store.has_blob(&d.digest)
                && store.read_json::<Manifest>(&d.digest).is_ok_and(|m| {
                    m.layers.iter().all(|l| store.has_blob(&l.digest))
                        && store.has_blob(&m.config.digest)
                })
        });
        if complete {
            for d in &idx.manifests {
                let bytes = store.read_blob(&d.digest)?;
                let m: Manifest = store.read_json(&d.digest)?;
                plan.push((d.clone(), m, bytes));
            }
            index = Some(idx);
        }
    }
    if plan.is_empty() {
        let bytes = store.read_blob(&image.manifest_descriptor.digest)?;
        plan.push((
            image.manifest_descriptor.clone(),
            image.manifest.clone(),
            bytes,
        ));
    }
    let mut pushed_manifests = Vec::new();
    // (stored digest, descriptor as pushed): the subjects whose referrers follow.
    let mut subjects: Vec<(Digest, Descriptor)> = Vec::new();
    let mut blobs: Vec<Descriptor> = Vec::new();
    for (desc, m, bytes) in plan {
        let (m2, b2, mt) = manifest_for_push(store, &m, bytes, &desc.media_type, opts.compression)?;
        for d in std::iter::once(&m2.config).chain(&m2.layers) {
            if !blobs.iter().any(|b| b.digest == d.digest) {
                blobs.push(d.clone());
            }
        }
        let mut nd = Descriptor::new(&mt, Digest::of_bytes(&b2), b2.len() as u64);
        nd.platform = desc.platform.clone();
        nd.annotations = desc.annotations.clone();
        subjects.push((desc.digest.clone(), nd.clone()));
        pushed_manifests.push((nd, b2));
    }
    for b in &blobs {
        for r in sources(store, &b.digest, repo.registry(), repo.repository()) {
            repo.add_pull_scope(&r);
        }
    }
    let reports = push_blobs(store, repo, &blobs, opts)?;
    let tag = dest.tag().map(str::to_string);
    let (digest, size) = match index {
        Some(mut idx) => {
            for (d, b) in &pushed_manifests {
                put_manifest(repo, &d.digest.to_string(), b, &d.media_type)?;
            }
            idx.manifests = pushed_manifests.into_iter().map(|(d, _)| d).collect();
            let mt = idx
                .media_type
                .clone()
                .unwrap_or_else(|| media::OCI_INDEX.into());
            let bytes = if mt == image.descriptor.media_type
                && idx.manifests.iter().map(|d| &d.digest).eq(store
                    .read_json::<Index>(&image.descriptor.digest)?
                    .manifests
                    .iter()
                    .map(|d| &d.digest))
            {
                store.read_blob(&image.descriptor.digest)?
            } else {
                to_canonical_json(&idx)
            };
            let d = Digest::of_bytes(&bytes);
            put_manifest(repo, tag.as_deref().unwrap_or(&d.to_string()), &bytes, &mt)?;
            let pushed = Descriptor::new(&mt, d.clone(), bytes.len() as u64);
            subjects.push((image.descriptor.digest.clone(), pushed));
            (d, bytes.len() as u64)
        }
        None => {
            let (d, b) = &pushed_manifests[0];
            put_manifest(
                repo,
                tag.as_deref().unwrap_or(&d.digest.to_string()),
                b,
                &d.media_type,
            )?;
            (d.digest.clone(), b.len() as u64)
        }
    };
    for b in &blobs {
        record_source(store, &b.digest, repo.registry(), repo.repository());
    }
    let referrers = push_referrers(store, repo, &subjects, opts)?;
    let uploaded_bytes = reports
        .iter()
        .filter(|r| r.status == "pushed")
        .map(|r| r.size)
        .sum();
    Ok(PushReport {
        reference: dest.to_string(),
        digest,
        size,
        blobs: reports,
        uploaded_bytes,
        referrers,
    })
}

/// Pushes, after the image, the artifacts of the store whose subject is one of the
/// manifests pushed (`subjects`: stored digest, descriptor as pushed): each artifact's
/// blobs and manifest, then, on a registry without the referrers API (distribution
/// 2.x), the fallback tag `sha256-<hex>` of the subject: its index of referrers is
/// fetched, the artifacts added, and put back. A manifest pushed with other bytes than
/// stored (layers recompressed) gets artifacts whose `subject` (and an in-toto
/// statement's subject digest) name what the registry has; their documents are the same.
fn push_referrers(
    store: &Store,
    repo: &Repo,
    subjects: &[(Digest, Descriptor)],
    opts: &PushOptions<'_>,
) -> Result<Vec<Digest>> {
    let mut pushed = Vec::new();
    for (local, remote) in subjects {
        let refs = store.referrers(local, None)?;
        if refs.is_empty() {
            continue;
        }
        let mut descs = Vec::new();
        for r in refs {
            let (m, bytes) = if *local == remote.digest {
                (r.manifest.clone(), store.read_blob(&r.descriptor.digest)?)
            } else {
                resubject(store, &r.manifest, local, remote)?
            };
            let blobs: Vec<Descriptor> = std::iter::once(&m.config)
                .chain(&m.layers)
                .cloned()
                .collect();
            push_blobs(store, repo, &blobs, opts)?;
            let digest = Digest::of_bytes(&bytes);
            put_manifest(repo, &digest.to_string(), &bytes, media::OCI_MANIFEST)?;
            let mut d = Descriptor::new(media::OCI_MANIFEST, digest.clone(), bytes.len() as u64);
            d.artifact_type = m.artifact_type.clone();
            d.annotations = m.annotations.clone();
            descs.push(d);
            pushed.push(digest);
        }
        if !has_referrers_api(repo, &remote.digest)? {
            update_referrers_tag(repo, &remote.digest, descs)?;
        }
    }
    Ok(pushed)
}

/// An artifact of `local` made an artifact of `remote`: the manifest's subject, and the
/// subject digest of an in-toto statement that named `local`.
fn resubject(
    store: &Store,
    manifest: &Manifest,
    local: &Digest,
    remote: &Descriptor,
) -> Result<(Manifest, Vec<u8>)> {
    let mut m = manifest.clone();
    m.subject = Some(Descriptor::new(
        &remote.media_type,
        remote.digest.clone(),
        remote.size,
    ));
    for l in &mut m.layers {
        if l.media_type != "application/vnd.in-toto+json" {
            continue;
        }
        let mut doc: serde_json::Value = store.read_json(&l.digest)?;
        let mut changed = false;
        if let Some(subs) = doc.get_mut("subject").and_then(|s| s.as_array_mut()) {
            for s in subs {
                if let Some(h) = s.pointer_mut("/digest/sha256") {
                    if h.as_str() == Some(local.hex()) {
                        *h = remote.digest.hex().into();
                        changed = true;
                    }
                }
            }
        }
        if changed {
            let mut bytes = serde_json::to_vec_pretty(&doc).expect("JSON values serialize");
            bytes.push(b'\n');
            l.digest = store.write_blob(&bytes)?;
            l.size = bytes.len() as u64;
        }
    }
    let bytes = to_canonical_json(&m);
    Ok((m, bytes))
}

/// Whether the registry answers the referrers API (distribution spec 1.1).
fn has_referrers_api(repo: &Repo, digest: &Digest) -> Result<bool> {
    let resp = repo.execute(Req {
        method: Method::GET,
        url: repo.url(&format!("referrers/{digest}")),
        headers: vec![(header::ACCEPT, media::OCI_INDEX.into())],
        body: Body::Empty,
        idempotent: true,
    })?;
    Ok(resp.status().is_success()
        && resp
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| t.starts_with(media::OCI_INDEX)))
}

/// Adds `descs` to the referrers fallback tag of `digest` (GET, add, PUT).
fn update_referrers_tag(repo: &Repo, digest: &Digest, descs: Vec<Descriptor>) -> Result<()> {
    let tag = crate::client::referrers_tag(digest);
    let mut index: Index = match repo.get_manifest(&tag) {
        Ok((bytes, _, _)) => serde_json::from_slice(&bytes)
            .map_err(|e| repo.protocol(format!("referrers tag {tag}: {e}")))?,
        Err(RegistryError::NotFound { .. }) => Index::default(),
        Err(e) => return Err(e),
    };
    let before = index.manifests.len();
    for d in descs {
        if !index.manifests.iter().any(|m| m.digest == d.digest) {
            index.manifests.push(d);
        }
    }
    if index.manifests.len() != before || before == 0 {
        index.media_type = Some(media::OCI_INDEX.into());
        put_manifest(repo, &tag, &to_canonical_json(&index), media::OCI_INDEX)?;
    }
    Ok(())
}

fn push_blobs(
    store: &Store,
    repo: &Repo,
    blobs: &[Descriptor],
    opts: &PushOptions<'_>,
) -> Result<Vec<BlobReport>> {
    run_parallel(blobs, opts.jobs, |blob| push_blob(store, repo, blob, opts))
}

fn push_blob(
    store: &Store,
    repo: &Repo,
    blob: &Descriptor,
    opts: &PushOptions<'_>,
) -> Result<BlobReport> {
    let id = blob.digest.to_string();
    let report = |status| BlobReport {
        digest: blob.digest.clone(),
        size: blob.size,
        status,
    };
    if repo.blob_exists(&blob.digest)?.is_some() {
        opts.progress.finish(&id, "layer already exists");
        return Ok(report("exists"));
    }
    // A mount from a repository of the same registry known to hold the blob.
    if let Some(from) = sources(store, &blob.digest, repo.registry(), repo.repository())
        .into_iter()
        .next()
    {
        match mount(repo, &blob.digest, &from)? {
            None => {
                opts.progress.finish(&id, &format!("mounted from {from}"));
                return Ok(report("mounted"));
            }
            // 202: the registry started an upload instead; use it.
            Some(loc) => {
                upload(store, repo, blob, Some(loc), opts)?;
                opts.progress.finish(&id, "pushed");
                return Ok(report("pushed"));
            }
        }
    }
    upload(store, repo, blob, None, opts)?;
    opts.progress.finish(&id, "pushed");
    Ok(report("pushed"))
}

/// `POST ...?mount=&from=`: `None` when mounted, else the upload URL it opened.
fn mount(repo: &Repo, digest: &Digest, from: &str) -> Result<Option<reqwest::Url>> {
    let mut url = repo.url("blobs/uploads/");
    url.query_pairs_mut()
        .append_pair("mount", &digest.to_string())
        .append_pair("from", from);
    let resp = repo.execute(Req {
        method: Method::POST,
        url,
        headers: vec![],
        body: Body::Empty,
        idempotent: true,
    })?;
    match resp.status() {
        StatusCode::CREATED => Ok(None),
        StatusCode::ACCEPTED => Ok(Some(repo.location(&resp)?)),
        _ => Err(repo.status_error("upload", &Method::POST, resp)),
    }
}

fn start_upload(repo: &Repo) -> Result<reqwest::Url> {
    let resp = repo.execute(Req {
        method: Method::POST,
        url: repo.url("blobs/uploads/"),
        headers: vec![],
        body: Body::Empty,
        idempotent: true,
    })?;
    if resp.status() != StatusCode::ACCEPTED {
        return Err(repo.status_error("upload", &Method::POST, resp));
    }
    repo.location(&resp)
}

/// Where a pending upload of `digest` to this repository is remembered.
fn upload_memo(store: &Store, repo: &Repo, digest: &Digest) -> PathBuf {
    let key =
        Digest::of_bytes(format!("{} {} {digest}", repo.registry(), repo.repository()).as_bytes());
    cache_dir(store, Cache::Uploads).join(key.hex())
}

/// The offset the registry has of an upload (`GET` of the upload URL), or `None` when
/// the upload is unknown to it.
fn upload_offset(repo: &Repo, loc: &reqwest::Url) -> Result<Option<(u64, reqwest::Url)>> {
    let resp = repo.execute(Req {
        method: Method::GET,
        url: loc.clone(),
        headers: vec![],
        body: Body::Empty,
        idempotent: true,
    })?;
    if resp.status() == StatusCode::NOT_FOUND {
        return Ok(None);
    }
    if resp.status() != StatusCode::NO_CONTENT && !resp.status().is_success() {
        return Err(repo.status_error("upload", &Method::GET, resp));
    }
    let next = resp
        .headers()
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|r| r.rsplit('-').next()?.trim().parse::<u64>().ok())
        .map_or(0, |end| end + 1);
    let loc = repo.location(&resp).unwrap_or_else(|_| loc.clone());
    Ok(Some((next, loc)))
}

fn upload(
    store: &Store,
    repo: &Repo,
    blob: &Descriptor,
    started: Option<reqwest::Url>,
    opts: &PushOptions<'_>,
) -> Result<()> {
    let id = blob.digest.to_string();
    let path = store.blob_path(&blob.digest);
    let open_at = |offset: u64, len: u64| -> io::Result<(Box<dyn Read + Send>, u64)> {
        let mut f = fs::File::open(&path)?;
        f.seek(SeekFrom::Start(offset))?;
        Ok((
            Box::new(io::BufReader::with_capacity(1 << 20, f).take(len)),
            len,
        ))
    };
    opts.progress.start(
        &id,
        &format!("{} blob", blob.digest.short()),
        Some(blob.size),
    );
    if blob.size <= MONOLITHIC_MAX && started.is_none() {
        // Monolithic: POST, then one PUT with the whole blob.
        let loc = start_upload(repo)?;
        let open = || open_at(0, blob.size);
        let resp = repo.execute(Req {
            method: Method::PUT,
            url: with_digest(&loc, &blob.digest),
            headers: vec![(header::CONTENT_TYPE, "application/octet-stream".into())],
            body: Body::Stream(&open),
            idempotent: true,
        })?;
        finish_check(repo, resp, &blob.digest)?;
        opts.progress.advance(&id, blob.size);
        return Ok(());
    }
    let memo = upload_memo(store, repo, &blob.digest);
    // Resume an upload a previous kiln left, if the registry still has it.
    let mut state = None;
    if started.is_none() {
        if let Some(loc) = fs::read_to_string(&memo)
            .ok()
            .and_then(|s| reqwest::Url::parse(s.trim()).ok())
        {
            state = upload_offset(repo, &loc).ok().flatten();
        }
    }
    let (mut offset, mut loc) = match state {
        Some(s) => s,
        None => (
            0,
            match started {
                Some(l) => l,
                None => start_upload(repo)?,
            },
        ),
    };
    let _ = fs::create_dir_all(memo.parent().expect("memo has a parent"));
    let _ = store.write_atomic(&memo, loc.as_str().as_bytes());
    let mut failures = 0;
    while offset < blob.size {
        let len = opts.chunk_size.max(1 << 20).min(blob.size - offset);
        let open = || open_at(offset, len);
        let sent = repo.execute(Req {
            method: Method::PATCH,
            url: loc.clone(),
            headers: vec![
                (header::CONTENT_TYPE, "application/octet-stream".into()),
                (
                    header::CONTENT_RANGE,
                    format!("{}-{}", offset, offset + len - 1),
                ),
            ],
            body: Body::Stream(&open),
            idempotent: false,
        });
        match sent {
            Ok(resp) if resp.status() == StatusCode::ACCEPTED => {
                loc = repo.location(&resp)?;
                offset += len;
                opts.progress.advance(&id, len);
                let _ = store.write_atomic(&memo, loc.as_str().as_bytes());
            }
            Ok(resp)
                if resp.status() == StatusCode::RANGE_NOT_SATISFIABLE
                    || resp.status().is_server_error() =>
            {
                failures += 1;
                if failures > 5 {
                    return Err(repo.status_error("upload", &Method::PATCH, resp));
                }
                (offset, loc) = resume(repo, &loc)?;
            }
            Ok(resp) => return Err(repo.status_error("upload", &Method::PATCH, resp)),
            Err(RegistryError::Unreachable { .. }) if failures < 5 => {
                failures += 1;
                std::thread::sleep(std::time::Duration::from_millis(500 << failures));
                (offset, loc) = resume(repo, &loc)?;
            }
            Err(e) => return Err(e),
        }
    }
    let resp = repo.execute(Req {
        method: Method::PUT,
        url: with_digest(&loc, &blob.digest),
        headers: vec![],
        body: Body::Empty,
        idempotent: true,
    })?;
    let r = finish_check(repo, resp, &blob.digest);
    let _ = fs::remove_file(&memo);
    r
}

fn resume(repo: &Repo, loc: &reqwest::Url) -> Result<(u64, reqwest::Url)> {
    upload_offset(repo, loc)?.ok_or_else(|| repo.protocol("the registry lost the upload"))
}

fn with_digest(loc: &reqwest::Url, digest: &Digest) -> reqwest::Url {
    let mut u = loc.clone();
    u.query_pairs_mut()
        .append_pair("digest", &digest.to_string());
    u
}

fn finish_check(repo: &Repo, resp: reqwest::blocking::Response, digest: &Digest) -> Result<()> {
    if resp.status() != StatusCode::CREATED && !resp.status().is_success() {
        return Err(repo.status_error(&format!("blob {digest}"), &Method::PUT, resp));
    }
    if let Some(d) = content_digest(resp.headers()) {
        if &d != digest {
            return Err(RegistryError::DigestMismatch {
                registry: repo.registry().to_string(),
                digest: digest.to_string(),
                actual: d.to_string(),
            });
        }
    }
    Ok(())
}

/// `PUT` of a manifest by tag or digest; checks the digest the registry computed.
pub fn put_manifest(
    repo: &Repo,
    reference: &str,
    bytes: &[u8],
    media_type: &str,
) -> Result<Digest> {
    let resp = repo.execute(Req {
        method: Method::PUT,
        url: repo.url(&format!("manifests/{reference}")),
        headers: vec![(header::CONTENT_TYPE, media_type.to_string())],
        body: Body::Bytes(bytes),
        idempotent: true,
    })?;
    let digest = Digest::of_bytes(bytes);
    finish_check(repo, resp, &digest)?;
    Ok(digest)
}
