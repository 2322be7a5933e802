//! `kiln load`: Docker and OCI archives and OCI layout directories into the store.
//!
//! A tar archive is read in one streaming pass: every file is hashed while it is copied
//! to a staging directory inside the store, through one fixed buffer, so memory stays
//! bounded whatever the archive holds (entries of the same content are staged once).
//! JSON documents are read back from the staging directory only when needed, and only
//! up to caps (the same as `kiln pull`'s): a manifest or index 4 MiB, a config 16 MiB,
//! `index.json` and `manifest.json` 16 MiB. Only after the whole archive was read and
//! every manifest, config and layer matched its digest are the blobs fsynced and moved
//! (renamed) into `blobs/` and the names written to index.json, so a bad archive leaves
//! neither a partial image nor a tag.

use crate::error::{ArchiveError, Result};
use kiln_layer::Compression;
use kiln_oci::media::{self, Kind, ANNOTATION_IMAGE_NAME, ANNOTATION_REF_NAME};
use kiln_oci::types::{to_canonical_json, Descriptor, ImageConfig, Index, Manifest};
use kiln_oci::{Digest, HashingReader, HashingWriter, Reference};
use kiln_store::snapshot::{self, Detached};
use kiln_store::{Progress, Store};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

/// Entries larger than this get a progress line while they are read.
const SHOW_PROGRESS: u64 = 1 << 20;
/// Largest manifest or index blob (as `kiln pull` accepts: the distribution spec's limit).
const MAX_MANIFEST: u64 = 4 << 20;
/// Largest image config (as `kiln pull` accepts).
const MAX_CONFIG: u64 = 16 << 20;
/// Largest `index.json` or `manifest.json` at the top of an archive (they list every
/// image in it).
const MAX_TOP_DOCUMENT: u64 = 16 << 20;
/// Most entries (files and links) an archive may hold: each costs a little memory.
const MAX_ENTRIES: usize = 100_000;
/// Longest entry name or link target kept.
const MAX_NAME: usize = 4096;

/// `n` bytes in words.
fn human(n: u64) -> String {
    if n >= 1 << 20 && n.is_multiple_of(1 << 20) {
        format!("{} MiB", n >> 20)
    } else {
        format!("{n} bytes")
    }
}

/// An image that was loaded.
#[derive(Clone, Debug)]
pub struct LoadedImage {
    /// The image's manifest or index as the store's index.json lists it (annotations
    /// dropped); for a Docker archive, an OCI manifest kiln wrote for it.
    pub descriptor: Descriptor,
    /// The names it was tagged with, from `ref.name`/`image.name` annotations or
    /// `RepoTags`; empty when the archive gave it none (it is then kept untagged).
    pub names: Vec<Reference>,
    /// The config digest (Docker's image ID) of the host's manifest, when there is one.
    pub id: Option<Digest>,
}

/// A file of the archive, staged on disk.
struct Item {
    digest: Digest,
    size: u64,
    magic: [u8; 4],
    /// The staged copy (shared by entries of the same content).
    path: PathBuf,
}

/// The staging directory; removed with everything in it when dropped.
struct Staging(PathBuf);

impl Staging {
    fn new(store: &Store) -> Result<Self> {
        let dir = store.tmp_path("load");
        fs::create_dir(&dir).map_err(|source| ArchiveError::Io {
            path: dir.display().to_string(),
            source,
        })?;
        Ok(Self(dir))
    }
}
impl Drop for Staging {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Normalizes an entry name: no `./`, no leading or trailing `/`, no `..` escapes.
fn clean(name: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for p in name.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            p => parts.push(p),
        }
    }
    Some(parts.join("/"))
}

/// Everything read from an archive, by entry name.
struct Entries {
    archive: String,
    items: BTreeMap<String, Item>,
    links: BTreeMap<String, String>,
    /// The staged file of each content, so that a repeated one is kept once.
    staged: HashMap<Digest, PathBuf>,
    /// A buffer for copying, the only one.
    buf: Vec<u8>,
    /// Entries seen (files and links, a repeated name counted again).
    seq: usize,
    /// Where layers are unpacked while they are read (`None`: they are not).
    unpack: Option<Store>,
    /// Layers being unpacked ahead, by the digest of their bytes.
    unpacking: Vec<(Digest, std::thread::JoinHandle<Option<Detached>>)>,
}

/// Layers unpacked while the archive was read: their snapshots are ready when the first
/// container starts (podman and docker unpack on load too), and reading a layer once
/// for both costs less than reading it again later.
const UNPACK_AHEAD_MIN: u64 = 1 << 20;

/// Whether the first bytes of an entry look like a layer: a tar (`ustar` at 257), or a
/// gzip or zstd stream.
fn looks_like_layer(head: &[u8]) -> bool {
    head.starts_with(&[0x1f, 0x8b])
        || head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd])
        || head.get(257..262) == Some(b"ustar".as_slice())
}

/// A layer being unpacked ahead: where its bytes go, and the unpacker. Dropped before
/// [`Ahead::finish`] (the entry failed), it ends the stream and waits for the unpacker,
/// which removes what it wrote: nothing is left in the store's `tmp/`.
struct Ahead {
    tx: Option<std::sync::mpsc::SyncSender<Vec<u8>>>,
    handle: Option<std::thread::JoinHandle<Option<Detached>>>,
}

impl Ahead {
    /// Sends a chunk; false once the unpacker has stopped (not a layer after all).
    fn send(&self, chunk: &[u8]) -> bool {
        self.tx
            .as_ref()
            .is_some_and(|tx| tx.send(chunk.to_vec()).is_ok())
    }

    /// Ends the stream; the unpacker, to be joined once the manifest is known.
    fn finish(mut self) -> std::thread::JoinHandle<Option<Detached>> {
        self.tx.take();
        self.handle
            .take()
            .expect("an unfinished unpacker has its thread")
    }
}

impl Drop for Ahead {
    fn drop(&mut self) {
        self.tx.take();
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// A reader of the chunks a channel delivers.
struct ChunkReader {
    rx: std::sync::mpsc::Receiver<Vec<u8>>,
    chunk: Vec<u8>,
    at: usize,
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.at == self.chunk.len() {
            match self.rx.recv() {
                Ok(c) => {
                    self.chunk = c;
                    self.at = 0;
                }
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len() - self.at);
        buf[..n].copy_from_slice(&self.chunk[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

impl Drop for Entries {
    fn drop(&mut self) {
        // Nothing keeps writing into the store's tmp/ once the load is over.
        for (_, h) in self.unpacking.drain(..) {
            let _ = h.join();
        }
    }
}

impl Entries {
    fn new(archive: &str, unpack: Option<Store>) -> Self {
        Self {
            archive: archive.to_string(),
            items: BTreeMap::new(),
            links: BTreeMap::new(),
            staged: HashMap::new(),
            buf: vec![0u8; 256 << 10],
            seq: 0,
            unpack,
            unpacking: Vec::new(),
        }
    }

    /// Starts unpacking the entry `name` whose first bytes are `head`, when it looks like
    /// a layer big enough to matter and the store does not have it already (an entry
    /// named by its digest, `blobs/sha256/HEX`: loading a new version over its base
    /// unpacks only the new layers); returns where to send its bytes.
    fn unpack_ahead(&mut self, name: &str, head: &[u8], size: u64) -> Option<Ahead> {
        let store = self.unpack.clone()?;
        if size < UNPACK_AHEAD_MIN || !looks_like_layer(head) {
            return None;
        }
        let known = name
            .strip_prefix("blobs/sha256/")
            .and_then(|hex| Digest::from_hex(hex).ok())
            .is_some_and(|d| store.has_blob(&d));
        if known {
            return None;
        }
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(16);
        let handle = std::thread::spawn(move || {
            let reader = ChunkReader {
                rx,
                chunk: Vec::new(),
                at: 0,
            };
            // Not a layer after all, or a broken one: nothing is adopted, and the first
            // run unpacks it from the blob (and reports what is wrong with it).
            snapshot::unpack_detached(&store, reader).ok()
        });
        Some(Ahead {
            tx: Some(tx),
            handle: Some(handle),
        })
    }

    /// Counts one more entry; too many is an error.
    fn count_one(&mut self) -> Result<()> {
        self.seq += 1;
        if self.seq > MAX_ENTRIES {
            return Err(ArchiveError::Invalid {
                archive: self.archive.clone(),
                reason: format!("more than {MAX_ENTRIES} entries: not an image archive kiln loads"),
            });
        }
        Ok(())
    }

    /// Copies one file to `staging/<n>` while hashing it; a content already staged is
    /// not kept twice. `size` is what the header says; `err` maps a read error.
    #[allow(clippy::too_many_arguments)]
    fn stage(
        &mut self,
        name: String,
        mut input: impl Read,
        size: u64,
        staging: &Path,
        progress: &dyn Progress,
        err: &dyn Fn(io::Error) -> ArchiveError,
    ) -> Result<()> {
        self.count_one()?;
        let show = size > SHOW_PROGRESS;
        if show {
            progress.start(&name, &name, Some(size));
        }
        let path = staging.join(self.seq.to_string());
        let io_err = |source| ArchiveError::Io {
            path: path.display().to_string(),
            source,
        };
        let file = File::create(&path).map_err(io_err)?;
        let mut w = HashingWriter::new(BufWriter::with_capacity(64 << 10, file));
        let mut magic = [0u8; 4];
        let mut ahead: Option<Ahead> = None;
        let mut first = true;
        loop {
            let k = match input.read(&mut self.buf) {
                Ok(k) => k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    let _ = fs::remove_file(&path);
                    return Err(err(e));
                }
            };
            if k == 0 {
                break;
            }
            let at = w.count() as usize;
            if at < 4 {
                let m = (4 - at).min(k);
                magic[at..at + m].copy_from_slice(&self.buf[..m]);
            }
            if first {
                first = false;
                let head = self.buf[..k].to_vec();
                ahead = self.unpack_ahead(&name, &head, size);
            }
            // The unpacker stopped (not a layer): the load goes on without it.
            if ahead.as_ref().is_some_and(|a| !a.send(&self.buf[..k])) {
                ahead = None;
            }
            if let Err(e) = w.write_all(&self.buf[..k]) {
                let _ = fs::remove_file(&path);
                return Err(io_err(e));
            }
            if show {
                progress.advance(&name, k as u64);
            }
        }
        let (digest, written, file) = w.finish();
        if let Some(a) = ahead {
            self.unpacking.push((digest.clone(), a.finish()));
        }
        let flushed = file.into_inner().map_err(|e| e.into_error());
        if let Err(e) = flushed {
            let _ = fs::remove_file(&path);
            return Err(io_err(e));
        }
        if written != size {
            let _ = fs::remove_file(&path);
            return Err(err(io::ErrorKind::UnexpectedEof.into()));
        }
        if show {
            progress.finish(&name, "read");
        }
        let path = match self.staged.get(&digest) {
            Some(existing) => {
                let _ = fs::remove_file(&path);
                existing.clone()
            }
            None => {
                self.staged.insert(digest.clone(), path.clone());
                path
            }
        };
        self.items.insert(
            name,
            Item {
                digest,
                size: written,
                magic,
                path,
            },
        );
        Ok(())
    }

    fn get(&self, name: &str) -> Option<&Item> {
        let mut name = clean(name)?;
        for _ in 0..16 {
            if let Some(i) = self.items.get(&name) {
                return Some(i);
            }
            name = self.links.get(&name)?.clone();
        }
        None
    }

    /// An entry's bytes, when it is no larger than `cap`.
    fn bytes(&self, what: &str, name: &str, cap: u64) -> Result<Vec<u8>> {
        let item = self.get(name).ok_or_else(|| ArchiveError::MissingEntry {
            archive: self.archive.clone(),
            what: what.to_string(),
            name: name.to_string(),
        })?;
        self.check_size(item, what, name, cap)?;
        let io_err = |source| ArchiveError::Io {
            path: item.path.display().to_string(),
            source,
        };
        let mut out = Vec::with_capacity(item.size as usize);
        File::open(&item.path)
            .map_err(io_err)?
            .take(cap + 1)
            .read_to_end(&mut out)
            .map_err(io_err)?;
        if out.len() as u64 != item.size {
            return Err(io_err(io::Error::other("the staged copy changed size")));
        }
        Ok(out)
    }

    fn check_size(&self, item: &Item, what: &str, name: &str, cap: u64) -> Result<()> {
        if item.size > cap {
            return Err(ArchiveError::TooLarge {
                archive: self.archive.clone(),
                what: what.to_string(),
                entry: name.to_string(),
                size: item.size,
                limit: human(cap),
            });
        }
        Ok(())
    }

    /// An entry parsed as JSON, when it is no larger than `cap`.
    fn json<T: serde::de::DeserializeOwned>(&self, what: &str, name: &str, cap: u64) -> Result<T> {
        serde_json::from_slice(&self.bytes(what, name, cap)?).map_err(|source| ArchiveError::Json {
            archive: self.archive.clone(),
            entry: name.to_string(),
            source,
        })
    }

    /// The item holding blob `digest` in an OCI layout, checked against its digest.
    fn blob(&self, digest: &Digest, size: Option<u64>) -> Result<&Item> {
        let item = self
            .get(&format!("blobs/sha256/{}", digest.hex()))
            .ok_or_else(|| ArchiveError::MissingBlob {
                archive: self.archive.clone(),
                digest: digest.to_string(),
            })?;
        self.verify(item, digest, size)?;
        Ok(item)
    }

    fn verify(&self, item: &Item, digest: &Digest, size: Option<u64>) -> Result<()> {
        if item.digest != *digest {
            return Err(ArchiveError::DigestMismatch {
                archive: self.archive.clone(),
                expected: digest.to_string(),
                actual: item.digest.to_string(),
            });
        }
        if let Some(expected) = size.filter(|s| *s != item.size) {
            return Err(ArchiveError::SizeMismatch {
                archive: self.archive.clone(),
                digest: digest.to_string(),
                expected,
                actual: item.size,
            });
        }
        Ok(())
    }
}

/// Reads a tar stream (optionally gzip or zstd compressed as a whole) and loads every
/// image in it. `archive` names the source in messages.
pub fn load_reader(
    store: &Store,
    input: impl Read,
    archive: &str,
    progress: &dyn Progress,
) -> Result<Vec<LoadedImage>> {
    let _gc = store.gc_lock(false)?;
    let staging = Staging::new(store)?;
    let mut entries = read_entries(store, input, archive, &staging.0, progress)?;
    let plan = if entries.get("index.json").is_some() {
        plan_oci(&entries)?
    } else if entries.get("manifest.json").is_some() {
        plan_docker(&entries)?
    } else {
        return Err(ArchiveError::UnknownFormat {
            archive: archive.to_string(),
        });
    };
    commit(store, &mut entries, plan)
}

fn read_entries(
    store: &Store,
    input: impl Read,
    archive: &str,
    staging: &Path,
    progress: &dyn Progress,
) -> Result<Entries> {
    let (_, input) = kiln_layer::decompress(input).map_err(|e| ArchiveError::NotATar {
        archive: archive.to_string(),
        reason: e.to_string(),
    })?;
    let mut tar = tar::Archive::new(kiln_layer::TarGuard::new(input));
    let mut out = Entries::new(archive, Some(store.clone()));
    let iter = tar.entries().map_err(|e| ArchiveError::NotATar {
        archive: archive.to_string(),
        reason: e.to_string(),
    })?;
    let mut last = String::from("(start)");
    for (n, entry) in iter.enumerate() {
        let entry = entry.map_err(|e| {
            // The tar crate quotes a bad header's bytes in its message: binary noise, or
            // lines of text, that must not reach the terminal.
            // The guard's refusal of an oversized extension member is a message of its
            // own, and says which member it was.
            if n == 0
                && e.kind() == std::io::ErrorKind::InvalidData
                && e.to_string().starts_with("tar: ")
            {
                ArchiveError::NotATar {
                    archive: archive.to_string(),
                    reason: e.to_string(),
                }
            } else if n == 0 {
                ArchiveError::NotATar {
                    archive: archive.to_string(),
                    reason: "it does not start with a tar header".into(),
                }
            } else {
                ArchiveError::TruncatedAfter {
                    archive: archive.to_string(),
                    entry: last.clone(),
                    source: io::Error::new(e.kind(), printable(&e.to_string())),
                }
            }
        })?;
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        if raw.len() > MAX_NAME {
            return Err(ArchiveError::Invalid {
                archive: archive.to_string(),
                reason: format!(
                    "an entry after `{last}` has a name of {} bytes: not an image archive kiln loads",
                    raw.len()
                ),
            });
        }
        last = raw.clone();
        let Some(name) = clean(&raw) else {
            return Err(ArchiveError::Invalid {
                archive: archive.to_string(),
                reason: format!("entry `{raw}` points outside the archive"),
            });
        };
        let kind = entry.header().entry_type();
        if kind.is_symlink() || kind.is_hard_link() {
            let target = entry
                .link_name()
                .ok()
                .flatten()
                .map(|t| t.to_string_lossy().into_owned())
                .unwrap_or_default();
            // Symlinks are relative to the entry's directory; hardlinks to the root.
            let base = if kind.is_symlink() {
                name.rsplit_once('/').map(|(d, _)| d).unwrap_or("")
            } else {
                ""
            };
            if target.len() <= MAX_NAME {
                if let Some(t) = clean(&format!("{base}/{target}")) {
                    out.count_one()?;
                    out.links.insert(name, t);
                }
            }
            continue;
        }
        if !kind.is_file() {
            continue;
        }
        let size = entry.size();
        let truncated = |source: io::Error| ArchiveError::Truncated {
            archive: archive.to_string(),
            entry: raw.clone(),
            source,
        };
        out.stage(name, entry, size, staging, progress, &truncated)?;
    }
    Ok(out)
}

/// `s` up to its first control or invalid character.
fn printable(s: &str) -> String {
    match s.find(|c: char| c.is_control() || c == char::REPLACEMENT_CHARACTER) {
        Some(i) => format!("{}...", s[..i].trim_end()),
        None => s.to_string(),
    }
}

/// What to install: blobs (by the entry that holds them), and images with their names.
struct Plan {
    /// digest -> (entry name, or the bytes of a document kiln wrote)
    blobs: BTreeMap<Digest, Source>,
    images: Vec<(Descriptor, Vec<Reference>)>,
}

enum Source {
    Entry(String),
    New(Vec<u8>),
}

fn names_from_annotations(d: &Descriptor) -> Option<Reference> {
    if let Some(full) = d.annotation(ANNOTATION_IMAGE_NAME) {
        if let Ok(r) = Reference::parse(full) {
            return Some(r);
        }
    }
    // `ref.name` holds a full name (kiln, skopeo with a name, podman) or, as the OCI spec
    // intends and Docker 25 writes, just a tag, which names no repository on its own.
    let name = d.annotation(ANNOTATION_REF_NAME)?;
    if name.contains('/') || name.contains(':') {
        Reference::parse(name).ok()
    } else {
        None
    }
}

fn plan_oci(e: &Entries) -> Result<Plan> {
    let index: Index = e.json("the layout", "index.json", MAX_TOP_DOCUMENT)?;
    // Docker 25+ archives also carry manifest.json, the only place with full names when
    // index.json holds bare tags.
    let docker_names: BTreeMap<String, Vec<String>> = if e.get("manifest.json").is_some() {
        let list: Vec<DockerEntry> = e.json("the archive", "manifest.json", MAX_TOP_DOCUMENT)?;
        list.into_iter()
            .map(|d| {
                (
                    clean(&d.config).unwrap_or_default(),
                    d.repo_tags.unwrap_or_default(),
                )
            })
            .collect()
    } else {
        BTreeMap::new()
    };
    let mut plan = Plan {
        blobs: BTreeMap::new(),
        images: Vec::new(),
    };
    for top in &index.manifests {
        let mut configs = Vec::new();
        walk(e, top, &mut plan.blobs, &mut configs, true)?;
        let mut names: Vec<Reference> = names_from_annotations(top).into_iter().collect();
        if names.is_empty() {
            for c in &configs {
                for n in docker_names
                    .get(&format!("blobs/sha256/{}", c.hex()))
                    .into_iter()
                    .flatten()
                {
                    names.push(repo_tag(e, n)?);
                }
            }
        }
        let mut desc = top.clone();
        desc.annotations = None;
        if let Some(existing) = plan
            .images
            .iter_mut()
            .find(|(d, _)| d.digest == desc.digest)
        {
            existing.1.extend(names);
        } else {
            plan.images.push((desc, names));
        }
    }
    if plan.images.is_empty() {
        return Err(ArchiveError::Invalid {
            archive: e.archive.clone(),
            reason: "index.json lists no images".into(),
        });
    }
    Ok(plan)
}

/// Checks a descriptor and everything below it; `required` is false for the children of
/// an index, which may be absent (an archive of one platform of a multi-platform image).
fn walk(
    e: &Entries,
    d: &Descriptor,
    blobs: &mut BTreeMap<Digest, Source>,
    configs: &mut Vec<Digest>,
    required: bool,
) -> Result<bool> {
    let kind = media::kind(&d.media_type).ok_or_else(|| ArchiveError::UnknownMediaType {
        archive: e.archive.clone(),
        digest: d.digest.to_string(),
        media_type: d.media_type.clone(),
    })?;
    if !required && e.get(&format!("blobs/sha256/{}", d.digest.hex())).is_none() {
        return Ok(false);
    }
    let item = e.blob(&d.digest, Some(d.size))?;
    let name = format!("blobs/sha256/{}", d.digest.hex());
    match kind {
        Kind::Index | Kind::Manifest => e.check_size(item, "a manifest", &name, MAX_MANIFEST)?,
        Kind::Config => e.check_size(item, "an image config", &name, MAX_CONFIG)?,
        Kind::Layer => {}
    }
    blobs.insert(item.digest.clone(), Source::Entry(name.clone()));
    match kind {
        Kind::Index => {
            let ix: Index = e.json("the index", &name, MAX_MANIFEST)?;
            let mut any = ix.manifests.is_empty();
            for c in &ix.manifests {
                any |= walk(e, c, blobs, configs, false)?;
            }
            if !any {
                return Err(ArchiveError::Invalid {
                    archive: e.archive.clone(),
                    reason: format!(
                        "index {} has none of its manifests in the archive",
                        d.digest
                    ),
                });
            }
        }
        Kind::Manifest => {
            let m: Manifest = e.json("the manifest", &name, MAX_MANIFEST)?;
            walk(e, &m.config, blobs, configs, true)?;
            configs.push(m.config.digest.clone());
            for l in &m.layers {
                walk(e, l, blobs, configs, true)?;
            }
        }
        Kind::Config | Kind::Layer => {}
    }
    Ok(true)
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerEntry {
    config: String,
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

fn plan_docker(e: &Entries) -> Result<Plan> {
    let list: Vec<DockerEntry> = e.json("the archive", "manifest.json", MAX_TOP_DOCUMENT)?;
    let mut plan = Plan {
        blobs: BTreeMap::new(),
        images: Vec::new(),
    };
    if list.is_empty() {
        return Err(ArchiveError::Invalid {
            archive: e.archive.clone(),
            reason: "manifest.json lists no images".into(),
        });
    }
    for entry in &list {
        let what = format!("manifest.json (image {})", entry.config);
        let config_item = e
            .get(&entry.config)
            .ok_or_else(|| ArchiveError::MissingEntry {
                archive: e.archive.clone(),
                what: what.clone(),
                name: entry.config.clone(),
            })?;
        // Docker names config files by their digest: check it when it does.
        if let Some(hex) = entry
            .config
            .rsplit('/')
            .next()
            .map(|n| n.trim_end_matches(".json"))
        {
            if let Ok(named) = Digest::from_hex(hex) {
                e.verify(config_item, &named, None)?;
            }
        }
        e.check_size(config_item, "an image config", &entry.config, MAX_CONFIG)?;
        let config: ImageConfig = e.json(&what, &entry.config, MAX_CONFIG)?;
        if config.rootfs.diff_ids.len() != entry.layers.len() {
            return Err(ArchiveError::Invalid {
                archive: e.archive.clone(),
                reason: format!(
                    "{what}: {} layers listed, but the config has {} diff_ids",
                    entry.layers.len(),
                    config.rootfs.diff_ids.len()
                ),
            });
        }
        let mut layers = Vec::new();
        for (path, diff_id) in entry.layers.iter().zip(&config.rootfs.diff_ids) {
            let item = e.get(path).ok_or_else(|| ArchiveError::MissingEntry {
                archive: e.archive.clone(),
                what: what.clone(),
                name: path.clone(),
            })?;
            let compression = Compression::detect(&item.magic);
            let actual = if compression == Compression::None {
                item.digest.clone()
            } else {
                uncompressed_digest(e, item, path)?
            };
            if actual != *diff_id {
                return Err(ArchiveError::DiffIdMismatch {
                    archive: e.archive.clone(),
                    entry: path.clone(),
                    expected: diff_id.to_string(),
                    actual: actual.to_string(),
                });
            }
            plan.blobs
                .insert(item.digest.clone(), Source::Entry(path.clone()));
            layers.push(Descriptor::new(
                media::oci_layer(compression.media_type_suffix()),
                item.digest.clone(),
                item.size,
            ));
        }
        plan.blobs.insert(
            config_item.digest.clone(),
            Source::Entry(entry.config.clone()),
        );
        let manifest = Manifest::oci(
            Descriptor::new(
                media::OCI_CONFIG,
                config_item.digest.clone(),
                config_item.size,
            ),
            layers,
        );
        let bytes = to_canonical_json(&manifest);
        let digest = Digest::of_bytes(&bytes);
        let desc = Descriptor::new(media::OCI_MANIFEST, digest.clone(), bytes.len() as u64);
        plan.blobs.insert(digest, Source::New(bytes));
        let names = entry
            .repo_tags
            .iter()
            .flatten()
            .map(|t| repo_tag(e, t))
            .collect::<Result<Vec<_>>>()?;
        plan.images.push((desc, names));
    }
    Ok(plan)
}

/// A name from manifest.json's RepoTags; a bad one names the archive and the entry.
fn repo_tag(e: &Entries, tag: &str) -> Result<Reference> {
    Reference::parse(tag).map_err(|err| ArchiveError::Invalid {
        archive: e.archive.clone(),
        reason: format!("manifest.json: RepoTags: {err}"),
    })
}

fn uncompressed_digest(e: &Entries, item: &Item, path: &str) -> Result<Digest> {
    let io_err = |source: io::Error| ArchiveError::Truncated {
        archive: e.archive.clone(),
        entry: path.to_string(),
        source,
    };
    let reader = io::BufReader::with_capacity(256 << 10, File::open(&item.path).map_err(io_err)?);
    let (_, dec) = kiln_layer::decompress(reader).map_err(io_err)?;
    let mut h = HashingReader::new(dec);
    io::copy(&mut h, &mut io::sink()).map_err(io_err)?;
    Ok(h.finish().0)
}

fn commit(store: &Store, e: &mut Entries, plan: Plan) -> Result<Vec<LoadedImage>> {
    for (digest, source) in &plan.blobs {
        if store.has_blob_held(digest) {
            continue;
        }
        match source {
            Source::New(bytes) => {
                store.write_blob(bytes)?;
            }
            Source::Entry(name) => {
                let item = e.get(name).expect("planned entries exist");
                // Staged without fsync (most entries of an archive may never be used):
                // made durable now, before it is renamed into blobs/.
                File::open(&item.path)
                    .and_then(|f| f.sync_all())
                    .map_err(|source| ArchiveError::Io {
                        path: item.path.display().to_string(),
                        source,
                    })?;
                store.install_tmp(&item.path, digest)?;
            }
        }
    }
    let mut loaded = Vec::new();
    let mut seen = BTreeSet::new();
    let mut unpacked: Option<HashMap<Digest, Detached>> = None;
    for (desc, names) in plan.images {
        if names.is_empty() {
            store.add_untagged(&desc)?;
        }
        for n in &names {
            if seen.insert(n.familiar()) {
                store.tag(&desc, n)?;
            }
        }
        let image = store.image(&desc).ok();
        if let Some(i) = &image {
            if unpacked.is_none() {
                unpacked = Some(
                    e.unpacking
                        .drain(..)
                        .filter_map(|(d, h)| h.join().ok().flatten().map(|x| (d, x)))
                        .collect(),
                );
            }
            let ready = unpacked.as_mut().expect("joined above");
            snapshot::adopt_image(store, &i.manifest, &i.config, ready)?;
        }
        let id = image.map(|i| i.id);
        loaded.push(LoadedImage {
            descriptor: desc,
            names,
            id,
        });
    }
    Ok(loaded)
}

/// Loads an OCI image layout directory.
pub fn load_dir(store: &Store, dir: &Path, progress: &dyn Progress) -> Result<Vec<LoadedImage>> {
    // Reading the directory as if it were an archive keeps one code path: every file is
    // hashed on the way in exactly as a tar entry is.
    let archive = dir.display().to_string();
    if !dir.join("index.json").is_file() {
        return Err(ArchiveError::UnknownFormat { archive });
    }
    let _gc = store.gc_lock(false)?;
    let staging = Staging::new(store)?;
    let mut entries = Entries::new(&archive, Some(store.clone()));
    let mut files = vec![PathBuf::from("index.json")];
    if dir.join("manifest.json").is_file() {
        files.push("manifest.json".into());
    }
    let blobs = dir.join("blobs/sha256");
    if let Ok(rd) = fs::read_dir(&blobs) {
        for ent in rd.flatten() {
            files.push(Path::new("blobs/sha256").join(ent.file_name()));
        }
    }
    for rel in files {
        let path = dir.join(&rel);
        let name = rel.to_string_lossy().into_owned();
        let io_err = |source| ArchiveError::Io {
            path: path.display().to_string(),
            source,
        };
        let f = File::open(&path).map_err(io_err)?;
        let size = f.metadata().map_err(io_err)?.len();
        entries.stage(name, f, size, &staging.0, progress, &io_err)?;
    }
    let plan = plan_oci(&entries)?;
    commit(store, &mut entries, plan)
}
