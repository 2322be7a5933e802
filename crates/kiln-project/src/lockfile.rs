//! `kiln.lock`: every input of a project build, pinned. The base (the Debian lock, or an
//! image's digest), the interpreter and platform, every Python distribution with its
//! wheel URL and sha256, and every weights file with its size and sha256.
//!
//! Each section carries the fingerprint of what it was made from (kiln.toml's section,
//! uv.lock, requirements.txt, ...), so a stale section is found without the network, and
//! `kiln build --locked` can say exactly what changed.

use crate::manifest::{Dependencies, Project};
use crate::pylock::LockedDist;
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

/// The lock file's name, next to kiln.toml.
pub const FILE: &str = "kiln.lock";
/// The format version this kiln writes; [`KilnLock::read`] refuses any other.
pub const VERSION: u32 = 1;

/// kiln.lock: every input of the project's image, pinned, each section with the fingerprint
/// of what it was made from. Read with [`KilnLock::read`], written with [`KilnLock::write`];
/// [`staleness`] says what no longer matches the project.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KilnLock {
    /// The format version, [`VERSION`].
    pub version: u32,
    /// The base: its Debian lock or its image digest.
    pub base: BaseLock,
    /// The interpreter, the platform and every Python distribution to install.
    pub python: PythonLock,
    /// One entry per `[weights.NAME]` of kiln.toml (`[[weights]]` in the file), by name.
    #[serde(default, rename = "weights", skip_serializing_if = "Vec::is_empty")]
    pub weights: Vec<WeightsLock>,
}

/// `[base]` of kiln.lock.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BaseLock {
    /// Fingerprint of `[base]` and the architecture.
    pub inputs: String,
    /// `[base].image` of kiln.toml when it was locked (`debian:SUITE` or an image reference).
    pub image: String,
    /// The manifest digest of an image base.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// The Debian lock of a `debian:SUITE` base.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub debian: Option<kiln_debian::lock::Lock>,
}

/// `[python]` of kiln.lock.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PythonLock {
    /// Fingerprint of `[python]`, the dependency files and the interpreter.
    pub inputs: String,
    /// What the dependencies came from: `uv.lock`, `requirements.txt`, `inline`, `none`.
    pub source: String,
    /// MAJOR.MINOR of the base's interpreter.
    pub version: String,
    /// The interpreter in the image.
    pub interpreter: String,
    /// uv's `--python-platform`.
    pub platform: String,
    /// The distributions to install, each pinned to one file (`[[python.package]]` in the
    /// file); empty when there are no dependencies.
    #[serde(default, rename = "package", skip_serializing_if = "Vec::is_empty")]
    pub packages: Vec<LockedDist>,
}

/// One `[[weights]]` entry of kiln.lock: a `[weights.NAME]` of kiln.toml and its files.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WeightsLock {
    /// The NAME of its `[weights.NAME]` table.
    pub name: String,
    /// Its path relative to the project, as kiln.toml writes it.
    pub path: String,
    /// Where it goes in the image (an absolute path).
    pub target: String,
    /// Every file of it (`[[weights.file]]` in the file), sorted by path; one file with an
    /// empty path when the entry is a single file.
    #[serde(rename = "file")]
    pub files: Vec<WeightsFile>,
}

/// One file of a weights entry, pinned by size and content.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WeightsFile {
    /// Relative to the entry's path ("" when the entry is one file).
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// sha256 of the content, lowercase hex without a prefix.
    pub sha256: String,
}

/// sha256 (hex) of `parts`, each prefixed by its length so that no two lists of parts
/// hash alike: fingerprints here, layer cache keys in the builder.
pub(crate) fn hash_parts(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    hex::encode(h.finalize())
}

fn digest_of(parts: &[&[u8]]) -> String {
    format!("sha256:{}", hash_parts(parts))
}

/// Fingerprint of the base section.
pub fn base_inputs(p: &Project, arch: &str) -> String {
    let m = &p.manifest.base;
    let packages = m
        .packages
        .as_ref()
        .map(|p| p.get_ref().join("\n"))
        .unwrap_or_default();
    digest_of(&[
        b"kiln base v2",
        m.image.get_ref().trim().as_bytes(),
        packages.as_bytes(),
        arch.as_bytes(),
    ])
}

/// The files the Python dependencies are read from.
pub fn python_files(p: &Project) -> Vec<PathBuf> {
    match &p.deps {
        Dependencies::UvLock(l) => vec![l.with_file_name("pyproject.toml"), l.clone()],
        Dependencies::Requirements(r) => vec![r.clone()],
        _ => vec![],
    }
}

/// Fingerprint of the Python section: the `[python]` table, the dependency files' bytes,
/// and the interpreter and platform the base gives.
pub fn python_inputs(p: &Project, interpreter: &str, platform: &str) -> Result<String> {
    let py = &p.manifest.python;
    let mut parts: Vec<Vec<u8>> = vec![
        b"kiln python v1".to_vec(),
        interpreter.as_bytes().to_vec(),
        platform.as_bytes().to_vec(),
        py.index_url.clone().unwrap_or_default().into_bytes(),
        py.extra_index_url.join("\n").into_bytes(),
        py.find_links.join("\n").into_bytes(),
    ];
    // uv reads index settings from its environment too: they are inputs.
    for var in [
        "UV_INDEX_URL",
        "UV_EXTRA_INDEX_URL",
        "UV_DEFAULT_INDEX",
        "UV_INDEX",
        "UV_FIND_LINKS",
    ] {
        parts.push(format!("{var}={}", std::env::var(var).unwrap_or_default()).into_bytes());
    }
    // Local find-links directories: their listing (names and sizes).
    for f in &py.find_links {
        if f.contains("://") {
            continue;
        }
        let dir = p.dir.join(f);
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .map(|e| {
                        let size = e.metadata().map(|m| m.len()).unwrap_or(0);
                        format!("{} {size}", e.file_name().to_string_lossy())
                    })
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        parts.push(names.join("\n").into_bytes());
    }
    match &p.deps {
        Dependencies::Inline(v) => parts.push(format!("inline\n{}", v.join("\n")).into_bytes()),
        Dependencies::None => parts.push(b"none".to_vec()),
        _ => {
            for f in python_files(p) {
                let bytes =
                    std::fs::read(&f).map_err(|e| Error::new(format!("{}: {e}", f.display())))?;
                parts.push(bytes);
            }
        }
    }
    let refs: Vec<&[u8]> = parts.iter().map(|v| v.as_slice()).collect();
    Ok(digest_of(&refs))
}

/// The files of a weights entry: (relative path, absolute path), sorted; "" for a file.
pub fn weights_files(path: &Path) -> Result<Vec<(String, PathBuf)>> {
    let md = std::fs::metadata(path).map_err(|e| Error::new(format!("{}: {e}", path.display())))?;
    if md.is_file() {
        return Ok(vec![(String::new(), path.to_path_buf())]);
    }
    let mut out = Vec::new();
    let mut stack = vec![(String::new(), path.to_path_buf())];
    while let Some((rel, dir)) = stack.pop() {
        let rd =
            std::fs::read_dir(&dir).map_err(|e| Error::new(format!("{}: {e}", dir.display())))?;
        for e in rd {
            let e = e.map_err(|e| Error::new(format!("{}: {e}", dir.display())))?;
            let name = e.file_name().to_string_lossy().into_owned();
            let r = if rel.is_empty() {
                name.clone()
            } else {
                format!("{rel}/{name}")
            };
            // Follows links, but only to files and directories inside the entry.
            let ft = e
                .file_type()
                .map_err(|er| Error::new(format!("{}: {er}", e.path().display())))?;
            if ft.is_symlink() {
                let real = std::fs::canonicalize(e.path()).ok();
                let root = std::fs::canonicalize(path).ok();
                match (real, root) {
                    (Some(real), Some(root)) if real.starts_with(&root) && real.is_file() => {
                        out.push((r, e.path()))
                    }
                    _ => {
                        return Err(Error::with_hint(
                            format!(
                                "{}: a link that leaves the weights directory",
                                e.path().display()
                            ),
                            "weights directories hold files; copy what the link points to into it",
                        ))
                    }
                }
            } else if ft.is_dir() {
                stack.push((r, e.path()));
            } else if ft.is_file() {
                out.push((r, e.path()));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// sha256 of a file, remembered in `cache` by (path, size, mtime, inode) so that gigabytes
/// of unchanged weights are not read on every build.
pub fn file_sha256(path: &Path, cache: &mut HashCache) -> Result<(u64, String)> {
    use std::os::unix::fs::MetadataExt;
    let md = std::fs::metadata(path).map_err(|e| Error::new(format!("{}: {e}", path.display())))?;
    let key = format!(
        "{}\0{}\0{}\0{}\0{}",
        path.display(),
        md.size(),
        md.mtime(),
        md.mtime_nsec(),
        md.ino()
    );
    if let Some(h) = cache.entries.get(&key) {
        return Ok((md.size(), h.clone()));
    }
    let mut f =
        std::fs::File::open(path).map_err(|e| Error::new(format!("{}: {e}", path.display())))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n_total = 0u64;
    loop {
        let n = f
            .read(&mut buf)
            .map_err(|e| Error::new(format!("{}: {e}", path.display())))?;
        if n == 0 {
            break;
        }
        n_total += n as u64;
        h.update(&buf[..n]);
    }
    let hex = hex::encode(h.finalize());
    cache.entries.insert(key, hex.clone());
    cache.dirty = true;
    Ok((n_total, hex))
}

/// Remembered file hashes (`cache/project/hashes.json`).
#[derive(Default)]
pub struct HashCache {
    path: Option<PathBuf>,
    entries: BTreeMap<String, String>,
    dirty: bool,
}

impl HashCache {
    /// The cache kept at `path` (kiln uses `hashes.json` in the store's project cache). A
    /// missing or unreadable file gives an empty cache: it is only a shortcut.
    pub fn open(path: PathBuf) -> HashCache {
        let entries = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        HashCache {
            path: Some(path),
            entries,
            dirty: false,
        }
    }

    /// Writes the cache back if a hash was added, atomically (a temporary file renamed over
    /// it). Errors are ignored: a lost cache only means reading the files again.
    pub fn save(&self) {
        if let (true, Some(p)) = (self.dirty, &self.path) {
            if let Some(d) = p.parent() {
                let _ = std::fs::create_dir_all(d);
            }
            let tmp = p.with_extension(format!("tmp.{}", std::process::id()));
            if std::fs::write(&tmp, serde_json::to_vec(&self.entries).unwrap_or_default()).is_ok() {
                let _ = std::fs::rename(&tmp, p);
            }
        }
    }
}

/// The weights section as the project's files are now.
pub fn weights_now(p: &Project, cache: &mut HashCache) -> Result<Vec<WeightsLock>> {
    let mut out = Vec::new();
    for w in &p.weights {
        let mut files = Vec::new();
        for (rel, abs) in weights_files(&w.path)? {
            let (size, sha256) = file_sha256(&abs, cache)?;
            files.push(WeightsFile {
                path: rel,
                size,
                sha256,
            });
        }
        out.push(WeightsLock {
            name: w.name.clone(),
            path: w.rel.clone(),
            target: w.target.clone(),
            files,
        });
    }
    Ok(out)
}

impl KilnLock {
    /// Reads the lock at `path`; `Ok(None)` when there is none. Fails when the file cannot be
    /// read, is not a kiln.lock (the error names `path:LINE:COLUMN`), or has another
    /// [`VERSION`] (the hint says to run `kiln lock` again).
    pub fn read(path: &Path) -> Result<Option<KilnLock>> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::new(format!("{}: {e}", path.display()))),
        };
        let lock: KilnLock = crate::manifest::parse_toml(
            path,
            &text,
            "kiln.lock is written by `kiln lock`; delete it and run `kiln lock` again",
        )?;
        if lock.version != VERSION {
            return Err(Error::with_hint(
                format!(
                    "{}: lock version {} is not {VERSION}",
                    path.display(),
                    lock.version
                ),
                "run `kiln lock` with this kiln to write it again",
            ));
        }
        Ok(Some(lock))
    }

    /// The file's text: a header comment, then TOML in a stable order.
    pub fn to_text(&self) -> String {
        let body = toml::to_string(self).expect("a lock serializes");
        format!("# kiln.lock: every input of this project's image, pinned. Written by `kiln lock`;\n# do not edit. `kiln build --locked` fails when it no longer matches kiln.toml.\n{body}")
    }

    /// Writes [`KilnLock::to_text`] to `path` atomically: a temporary file in the same
    /// directory, renamed over it. Fails on an I/O error, naming `path`.
    pub fn write(&self, path: &Path) -> Result<()> {
        let tmp = path.with_file_name(format!(".kiln.lock.{}", std::process::id()));
        std::fs::write(&tmp, self.to_text())
            .and_then(|_| std::fs::rename(&tmp, path))
            .map_err(|e| Error::new(format!("{}: {e}", path.display())))
    }

    /// sha256 of the lock's text: the `kiln.lock` digest the image records.
    pub fn digest(&self) -> String {
        format!(
            "sha256:{}",
            hex::encode(Sha256::digest(self.to_text().as_bytes()))
        )
    }
}

/// What differs between a lock and the project now: human lines, empty when fresh.
pub fn staleness(
    lock: &KilnLock,
    p: &Project,
    arch: &str,
    python_inputs_now: Option<&str>,
    weights_now: &[WeightsLock],
) -> Vec<String> {
    let mut out = Vec::new();
    if lock.base.inputs != base_inputs(p, arch) {
        out.push(format!(
            "[base] changed (kiln.lock has `{}`{})",
            lock.base.image,
            lock.base
                .debian
                .as_ref()
                .map(|d| format!(" with packages [{}]", d.requested.join(", ")))
                .unwrap_or_default()
        ));
    }
    if let Some(now) = python_inputs_now {
        if lock.python.inputs != now {
            let files: Vec<String> = python_files(p)
                .iter()
                .filter_map(|f| f.file_name().map(|n| n.to_string_lossy().into_owned()))
                .collect();
            out.push(if files.is_empty() {
                "[python] changed".to_string()
            } else {
                format!("[python] or {} changed", files.join(" / "))
            });
        }
    }
    let old: BTreeMap<&str, &WeightsLock> =
        lock.weights.iter().map(|w| (w.name.as_str(), w)).collect();
    let new: BTreeMap<&str, &WeightsLock> =
        weights_now.iter().map(|w| (w.name.as_str(), w)).collect();
    for (name, w) in &new {
        match old.get(name) {
            None => out.push(format!("weights `{name}` is new")),
            Some(o) if o == w => {}
            Some(o) => {
                let of: BTreeMap<&str, &WeightsFile> =
                    o.files.iter().map(|f| (f.path.as_str(), f)).collect();
                let mut said = false;
                for f in &w.files {
                    if of.get(f.path.as_str()) != Some(&f) {
                        let shown = if f.path.is_empty() {
                            w.path.clone()
                        } else {
                            format!("{}/{}", w.path, f.path)
                        };
                        out.push(format!("weights file {shown} changed"));
                        said = true;
                    }
                }
                if !said {
                    out.push(format!("weights `{name}` changed"));
                }
            }
        }
    }
    for name in old.keys() {
        if !new.contains_key(name) {
            out.push(format!("weights `{name}` was removed"));
        }
    }
    out
}
