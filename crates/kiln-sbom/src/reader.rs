//! The layer reader: the few paths an environment is made of (package databases,
//! os-release, Python metadata, interpreters, copyright files), as the image's final tree
//! shows them (whiteouts applied), without unpacking or reading anything else.
//!
//! Which paths matter is decided by two rules on names alone, shared by both readers so
//! they see exactly the same files:
//! - [`descend`]: whether a directory can hold anything of interest (a walk never enters
//!   `usr/share`, a package's own directory in `site-packages`, the standard library...);
//! - [`wanted`]: whether a file is of interest, given that every directory above it was
//!   descended into, or it is one of the fixed paths (`var/lib/dpkg/status`, ...).
//!
//! Two readers give the same [`Files`]:
//! - [`read_snapshots`] walks the unpacked snapshots (overlay whiteout format) as
//!   overlayfs would stack them, listing only descended directories and reading only
//!   wanted files: no decompression at all;
//! - [`read_layers`] streams each layer's tar once (in parallel), keeping wanted files and
//!   the few entries that can hide them, then replays them bottom layer first.

use crate::error::{Result, SbomError};
use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// A file of interest in the final tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Node {
    /// A regular file's bytes (empty for files only their presence matters, such as
    /// interpreters).
    File(Vec<u8>),
    /// A symbolic link's target.
    Symlink(String),
}

/// The files of interest of an image, by path relative to its root.
#[derive(Debug, Default)]
pub struct Files {
    /// Wanted paths found, with their content.
    pub map: BTreeMap<String, Node>,
    /// Set when the files come from snapshots: copyright files are read on demand.
    overlay: Option<Overlay>,
}

/// The fixed paths of package databases, always read.
const FIXED: &[&str] = &[
    "etc/os-release",
    "usr/lib/os-release",
    "var/lib/dpkg/status",
    "lib/apk/db/installed",
];
const STATUS_D: &str = "var/lib/dpkg/status.d";
const DOC: &str = "usr/share/doc";

/// Trees a walk never enters: kernel filesystems, and trees that hold no Python
/// distributions (the package databases in them are fixed paths).
const SKIP_PATHS: &[&str] = &[
    "proc",
    "sys",
    "dev",
    "run",
    "boot",
    "etc",
    "var/lib/dpkg",
    "var/lib/apt",
    "var/cache",
    "var/log",
    "usr/share",
    "usr/include",
    "usr/src",
    "lib/apk",
];
/// Directory names that never hold Python distributions (conda's `pkgs` holds unpacked
/// package copies that are not installed).
const SKIP_NAMES: &[&str] = &[
    "__pycache__",
    "node_modules",
    ".git",
    ".cache",
    "include",
    "share",
    "locale",
    "man",
    "doc",
    "lib-dynload",
    "test",
    "tests",
    "pkgs",
    "perl",
    "perl5",
    "gconv",
    "firmware",
    "modules",
    "terminfo",
    "zoneinfo",
];
/// Python's site directories hold nothing deeper than this (conda environments:
/// `opt/conda/envs/NAME/lib/python3.X/site-packages/NAME.dist-info` is 8).
const MAX_DEPTH: usize = 10;

/// The largest package-database file read (a dpkg status of thousands of packages is a
/// few MB): an image is untrusted, and a file named `METADATA` may be any size.
const MAX_FILE: u64 = 64 << 20;

/// Reads a wanted file, at most [`MAX_FILE`] bytes; a larger one is an error naming it.
fn read_bounded(mut r: impl Read, what: &str) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    r.by_ref().take(MAX_FILE + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > MAX_FILE {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{what} is larger than {} MiB", MAX_FILE >> 20),
        ));
    }
    Ok(buf)
}

fn is_site_dir(name: &str) -> bool {
    name == "site-packages" || name == "dist-packages"
}

fn is_meta_dir(name: &str) -> bool {
    name.ends_with(".dist-info") || name.ends_with(".egg-info")
}

/// Whether a walk enters directory `path` (at `depth`, 1 for a top-level one) whose
/// parent is named `parent`.
pub fn descend(path: &str, parent: &str, name: &str, depth: usize) -> bool {
    if depth > MAX_DEPTH || SKIP_PATHS.contains(&path) || SKIP_NAMES.contains(&name) {
        return false;
    }
    if name.ends_with("-linux-gnu") {
        return false;
    }
    if is_site_dir(parent) {
        return is_meta_dir(name);
    }
    if is_meta_dir(parent) || parent == "conda-meta" {
        return false;
    }
    // A `lib/python3.X` directory: its standard library is of no interest.
    if is_python_lib(parent) {
        return is_site_dir(name);
    }
    true
}

/// Whether `name` is a `lib/pythonX[.Y]` directory's name.
fn is_python_lib(name: &str) -> bool {
    interpreter_version(name).is_some()
        || name
            .strip_prefix("python")
            .is_some_and(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
}

/// Whether `name` is an interpreter binary name such as `python3.11`.
pub(crate) fn interpreter_version(name: &str) -> Option<&str> {
    let v = name.strip_prefix("python")?;
    let (major, minor) = v.split_once('.')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    (digits(major) && digits(minor)).then_some(v)
}

/// What a wanted file is read as.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Want {
    Content,
    /// Only its presence (and a link's target) matters.
    Presence,
}

/// Whether the non-directory at `path` (parent `parent`, name `name`) is wanted, given
/// that its ancestors were all descended into.
fn wanted_in_walk(parent: &str, name: &str) -> Option<Want> {
    if (parent.ends_with(".dist-info") && (name == "METADATA" || name == "INSTALLER"))
        || (parent.ends_with(".egg-info") && name == "PKG-INFO")
        || (is_site_dir(parent) && name.ends_with(".egg-info"))
        || (parent == "conda-meta" && name.ends_with(".json"))
    {
        return Some(Want::Content);
    }
    (parent == "bin" && interpreter_version(name).is_some()).then_some(Want::Presence)
}

/// Whether `path` is one of the fixed wanted paths (outside the walk).
fn fixed(path: &str) -> bool {
    if FIXED.contains(&path) {
        return true;
    }
    if let Some(name) = path
        .strip_prefix(STATUS_D)
        .and_then(|r| r.strip_prefix('/'))
    {
        return !name.contains('/') && !name.ends_with(".md5sums") && !name.is_empty();
    }
    if let Some(rest) = path.strip_prefix(DOC).and_then(|r| r.strip_prefix('/')) {
        return rest
            .split_once('/')
            .is_some_and(|(pkg, f)| !pkg.is_empty() && f == "copyright");
    }
    false
}

/// Whether `path` is a directory on the way to a fixed path.
fn fixed_prefix(path: &str) -> bool {
    const DIRS: &[&str] = &[
        "etc",
        "usr",
        "usr/lib",
        "var",
        "var/lib",
        "var/lib/dpkg",
        STATUS_D,
        "lib",
        "lib/apk",
        "lib/apk/db",
        "usr/share",
        DOC,
    ];
    DIRS.contains(&path)
        || path
            .strip_prefix(DOC)
            .and_then(|r| r.strip_prefix('/'))
            .is_some_and(|pkg| !pkg.contains('/'))
}

fn split_last(path: &str) -> (&str, &str) {
    match path.rsplit_once('/') {
        Some((p, n)) => (p, n),
        None => ("", path),
    }
}

fn base(path: &str) -> &str {
    split_last(path).1
}

/// Whether every directory of `dir` (itself included) is descended into.
fn walkable(dir: &str) -> bool {
    if dir.is_empty() {
        return true;
    }
    let mut parent = "";
    let mut depth = 0;
    let mut end = 0;
    for comp in dir.split('/') {
        depth += 1;
        end += comp.len() + usize::from(depth > 1);
        if !descend(&dir[..end], parent, comp, depth) {
            return false;
        }
        parent = comp;
    }
    true
}

/// What a non-directory at `path` is read as, if it is wanted.
fn wanted(path: &str) -> Option<Want> {
    if fixed(path) {
        return Some(Want::Content);
    }
    let (dir, name) = split_last(path);
    if !walkable(dir) {
        return None;
    }
    wanted_in_walk(base(dir), name)
}

/// Whether a directory at `path` can hold wanted files (so a non-directory or a
/// whiteout there can hide some).
fn relevant_dir(path: &str) -> bool {
    fixed_prefix(path) || walkable(path)
}

impl Files {
    /// The content of the regular file at `path`, following symbolic links among the
    /// wanted files (`etc/os-release` -> `../usr/lib/os-release`).
    pub fn content(&self, path: &str) -> Option<&[u8]> {
        let mut path = path.to_string();
        for _ in 0..8 {
            match self.map.get(&path)? {
                Node::File(b) => return Some(b),
                Node::Symlink(t) => path = resolve_link(&path, t)?,
            }
        }
        None
    }

    /// The Debian copyright file of `package`, if the image has one.
    pub fn copyright(&self, package: &str) -> Option<Vec<u8>> {
        let path = format!("{DOC}/{package}/copyright");
        if let Some(ov) = &self.overlay {
            return match ov.resolve(&path) {
                Resolved::Other(l, ft) if ft.is_file() => fs::File::open(ov.layers[l].join(&path))
                    .and_then(|f| read_bounded(f, &path))
                    .ok(),
                _ => None,
            };
        }
        self.content(&path).map(<[u8]>::to_vec)
    }
}

/// The path a symbolic link at `from` points to, relative to the root; `None` when it
/// leaves the root.
fn resolve_link(from: &str, target: &str) -> Option<String> {
    let mut parts: Vec<&str> = if target.starts_with('/') {
        Vec::new()
    } else {
        split_last(from)
            .0
            .split('/')
            .filter(|s| !s.is_empty())
            .collect()
    };
    for comp in target.split('/') {
        match comp {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            c => parts.push(c),
        }
    }
    Some(parts.join("/"))
}

// ---------------------------------------------------------------------------------------
// Snapshots

/// A stack of snapshot directories read as overlayfs stacks them.
#[derive(Debug)]
struct Overlay {
    /// Top layer first.
    layers: Vec<PathBuf>,
}

/// What a path is in the stacked view.
enum Resolved {
    Missing,
    /// A directory, present in these layers (top first) and merged.
    Dir(Vec<usize>),
    /// A non-directory, in this layer.
    Other(usize, fs::FileType),
}

fn is_whiteout(meta: &fs::Metadata) -> bool {
    meta.file_type().is_char_device() && meta.rdev() == 0
}

fn is_opaque(dir: &Path) -> bool {
    let mut buf = [0u8; 4];
    matches!(rustix::fs::getxattr(dir, "trusted.overlay.opaque", &mut buf), Ok(1) if buf[0] == b'y')
}

impl Overlay {
    /// Resolves `path` component by component, as overlayfs looks it up (symbolic links
    /// on the way are not followed: the package databases never sit behind one).
    fn resolve(&self, path: &str) -> Resolved {
        let mut live: Vec<usize> = (0..self.layers.len()).collect();
        let mut end = 0;
        let comps: Vec<&str> = path.split('/').collect();
        for (i, comp) in comps.iter().enumerate() {
            end += comp.len() + usize::from(i > 0);
            let sub = &path[..end];
            let hits = live.iter().filter_map(|&l| {
                let meta = fs::symlink_metadata(self.layers[l].join(sub)).ok()?;
                Some((l, meta.file_type()))
            });
            let r = self.merge(sub, hits);
            if i + 1 == comps.len() {
                return r;
            }
            let Resolved::Dir(dirs) = r else {
                return Resolved::Missing;
            };
            live = dirs;
        }
        Resolved::Missing
    }

    /// The merged entries of directory `dir` present in layers `live` (top first):
    /// name -> what it is.
    fn list(&self, dir: &str, live: &[usize]) -> Result<BTreeMap<String, Resolved>> {
        let mut seen: HashMap<String, Vec<(usize, fs::FileType)>> = HashMap::new();
        for &l in live {
            let p = self.layers[l].join(dir);
            let rd = match fs::read_dir(&p) {
                Ok(rd) => rd,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(SbomError::io(&p)(e)),
            };
            for e in rd {
                let e = e.map_err(SbomError::io(&p))?;
                let Ok(name) = e.file_name().into_string() else {
                    continue;
                };
                let ft = e.file_type().map_err(SbomError::io(e.path()))?;
                seen.entry(name).or_default().push((l, ft));
            }
        }
        let mut out = BTreeMap::new();
        for (name, hits) in seen {
            match self.merge(&join(dir, &name), hits) {
                Resolved::Missing => {}
                r => {
                    out.insert(name, r);
                }
            }
        }
        Ok(out)
    }

    /// What `path` is in the merged tree, from the layers that hold it (top first, with
    /// the kind of file each has there), as overlayfs merges them: a directory merged down
    /// to a whiteout, an opaque directory or a non-directory; else the topmost
    /// non-directory unless a whiteout hides it.
    fn merge(&self, path: &str, hits: impl IntoIterator<Item = (usize, fs::FileType)>) -> Resolved {
        let mut dirs = Vec::new();
        let mut other = None;
        for (l, ft) in hits {
            let full = self.layers[l].join(path);
            if ft.is_char_device() && fs::symlink_metadata(&full).is_ok_and(|m| is_whiteout(&m)) {
                break;
            }
            if ft.is_dir() {
                dirs.push(l);
                if is_opaque(&full) {
                    break;
                }
            } else {
                if dirs.is_empty() {
                    other = Some((l, ft));
                }
                break;
            }
        }
        match (dirs.is_empty(), other) {
            (false, _) => Resolved::Dir(dirs),
            (true, Some((l, ft))) => Resolved::Other(l, ft),
            (true, None) => Resolved::Missing,
        }
    }

    fn read(&self, l: usize, path: &str, ft: fs::FileType, want: Want) -> Result<Option<Node>> {
        let full = self.layers[l].join(path);
        if ft.is_symlink() {
            let t = fs::read_link(&full).map_err(SbomError::io(&full))?;
            return Ok(Some(Node::Symlink(t.to_string_lossy().into_owned())));
        }
        if !ft.is_file() {
            return Ok(None);
        }
        if want == Want::Presence {
            return Ok(Some(Node::File(Vec::new())));
        }
        let file = fs::File::open(&full).map_err(SbomError::io(&full))?;
        Ok(Some(Node::File(
            read_bounded(file, &full.to_string_lossy()).map_err(SbomError::io(&full))?,
        )))
    }

    fn walk(
        &self,
        dir: &str,
        live: &[usize],
        depth: usize,
        out: &mut BTreeMap<String, Node>,
    ) -> Result<()> {
        let parent = base(dir);
        for (name, r) in self.list(dir, live)? {
            let path = join(dir, &name);
            match r {
                Resolved::Dir(layers) => {
                    if descend(&path, parent, &name, depth + 1) {
                        self.walk(&path, &layers, depth + 1, out)?;
                    }
                }
                Resolved::Other(l, ft) => {
                    if let Some(want) = wanted_in_walk(parent, &name) {
                        if let Some(node) = self.read(l, &path, ft, want)? {
                            out.insert(path, node);
                        }
                    }
                }
                Resolved::Missing => {}
            }
        }
        Ok(())
    }
}

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

/// Reads the files of interest from snapshot directories (bottom layer first), each
/// in overlayfs's whiteout format. Copyright files are read on demand.
pub fn read_snapshots(snapshots: &[PathBuf]) -> Result<Files> {
    let ov = Overlay {
        layers: snapshots.iter().rev().cloned().collect(),
    };
    let mut map = BTreeMap::new();
    let all: Vec<usize> = (0..ov.layers.len()).collect();
    ov.walk("", &all, 0, &mut map)?;
    for path in FIXED {
        if let Resolved::Other(l, ft) = ov.resolve(path) {
            if let Some(node) = ov.read(l, path, ft, Want::Content)? {
                map.insert(path.to_string(), node);
            }
        }
    }
    if let Resolved::Dir(live) = ov.resolve(STATUS_D) {
        for (name, r) in ov.list(STATUS_D, &live)? {
            let path = join(STATUS_D, &name);
            if let (true, Resolved::Other(l, ft)) = (fixed(&path), r) {
                if let Some(node) = ov.read(l, &path, ft, Want::Content)? {
                    map.insert(path, node);
                }
            }
        }
    }
    Ok(Files {
        map,
        overlay: Some(ov),
    })
}

// ---------------------------------------------------------------------------------------
// Layer tars

/// What one layer does to the files of interest, in tar order.
#[derive(Debug)]
enum Op {
    /// A wanted file.
    Put(String, Node),
    /// A hard link to `target` (a wanted file of the same layer, or of a lower one).
    Link(String, String),
    /// A directory that can hold wanted files: replaces a non-directory there.
    Dir(String),
    /// A non-directory where wanted files could be: hides everything below.
    NonDir(String),
    /// `.wh.NAME`: deletes the path and everything below in lower layers.
    Whiteout(String),
    /// `.wh..wh..opq`: hides the lower layers' entries below the directory.
    Opaque(String),
}

fn clean(raw: &[u8]) -> Option<String> {
    let s = std::str::from_utf8(raw).ok()?;
    let parts: Vec<&str> = s
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    if parts.contains(&"..") {
        return None;
    }
    Some(parts.join("/"))
}

/// Streams one decompressed layer tar and returns what it does to the files of interest.
fn layer_ops(r: impl Read) -> std::io::Result<Vec<Op>> {
    let mut ar = tar::Archive::new(kiln_layer::TarGuard::new(r));
    let mut ops = Vec::new();
    for e in ar.entries()? {
        let mut e = e?;
        let Some(path) = clean(&e.path_bytes()) else {
            continue;
        };
        if path.is_empty() {
            continue;
        }
        let (dir, name) = split_last(&path);
        if let Some(wh) = name.strip_prefix(".wh.") {
            if wh == ".wh..opq" {
                ops.push(Op::Opaque(dir.to_string()));
            } else if !wh.is_empty() && !wh.starts_with(".wh.") {
                ops.push(Op::Whiteout(join(dir, wh)));
            }
            continue;
        }
        let kind = e.header().entry_type();
        if kind.is_dir() {
            if relevant_dir(&path) {
                ops.push(Op::Dir(path));
            }
            continue;
        }
        if kind.is_pax_global_extensions() || kind.is_pax_local_extensions() {
            continue;
        }
        match wanted(&path) {
            Some(want) => {
                if kind.is_symlink() {
                    let t = e
                        .link_name_bytes()
                        .map(|b| String::from_utf8_lossy(&b).into_owned())
                        .unwrap_or_default();
                    ops.push(Op::Put(path, Node::Symlink(t)));
                } else if kind.is_hard_link() {
                    let t = e.link_name_bytes().and_then(|b| clean(&b));
                    match t {
                        Some(t) => ops.push(Op::Link(path, t)),
                        None => ops.push(Op::NonDir(path)),
                    }
                } else if kind.is_file() || kind == tar::EntryType::Continuous {
                    let buf = if want == Want::Content {
                        read_bounded(&mut e, &path)?
                    } else {
                        Vec::new()
                    };
                    ops.push(Op::Put(path, Node::File(buf)));
                } else {
                    ops.push(Op::NonDir(path));
                }
            }
            None => {
                if relevant_dir(&path) {
                    ops.push(Op::NonDir(path));
                }
            }
        }
    }
    Ok(ops)
}

/// Removes the entries strictly below `dir` made by layers below `layer`.
fn remove_below(map: &mut BTreeMap<String, (usize, Node)>, dir: &str, layer: usize) {
    let prefix = format!("{dir}/");
    let doomed: Vec<String> = map
        .range(prefix.clone()..)
        .take_while(|(p, _)| p.starts_with(&prefix))
        .filter(|(_, (l, _))| *l < layer)
        .map(|(p, _)| p.clone())
        .collect();
    for p in doomed {
        map.remove(&p);
    }
}

/// Applies the layers' operations, bottom layer first.
fn replay(layers: Vec<Vec<Op>>) -> BTreeMap<String, Node> {
    let mut map: BTreeMap<String, (usize, Node)> = BTreeMap::new();
    for (layer, ops) in layers.into_iter().enumerate() {
        for op in ops {
            match op {
                Op::Put(path, node) => {
                    remove_below(&mut map, &path, usize::MAX);
                    map.insert(path, (layer, node));
                }
                Op::Link(path, target) => {
                    let node = map
                        .get(&target)
                        .map_or(Node::File(Vec::new()), |(_, n)| n.clone());
                    remove_below(&mut map, &path, usize::MAX);
                    map.insert(path, (layer, node));
                }
                Op::Dir(path) => {
                    map.remove(&path);
                }
                Op::NonDir(path) => {
                    map.remove(&path);
                    remove_below(&mut map, &path, usize::MAX);
                }
                Op::Whiteout(path) => {
                    if map.get(&path).is_some_and(|(l, _)| *l < layer) {
                        map.remove(&path);
                    }
                    remove_below(&mut map, &path, layer);
                }
                Op::Opaque(dir) => {
                    if dir.is_empty() {
                        map.retain(|_, (l, _)| *l >= layer);
                    } else {
                        remove_below(&mut map, &dir, layer);
                    }
                }
            }
        }
    }
    map.into_iter().map(|(p, (_, n))| (p, n)).collect()
}

/// Reads the files of interest from layer blobs (bottom layer first; uncompressed, gzip
/// or zstd), each streamed once, several at a time. `name(i)` names layer `i` in errors.
pub fn read_layers(
    open: &(dyn Fn(usize) -> std::io::Result<Box<dyn Read + Send>> + Sync),
    count: usize,
    name: &dyn Fn(usize) -> String,
) -> Result<Files> {
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(count.max(1));
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut results: Vec<Option<std::io::Result<Vec<Op>>>> = (0..count).map(|_| None).collect();
    let slots = std::sync::Mutex::new(&mut results);
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= count {
                    break;
                }
                let r = open(i).and_then(|blob| {
                    let (_, plain) = kiln_layer::decompress(blob)?;
                    layer_ops(plain)
                });
                slots.lock().expect("no worker panics holding it")[i] = Some(r);
            });
        }
    });
    let mut layers = Vec::with_capacity(count);
    for (i, r) in results.into_iter().enumerate() {
        let ops = r
            .expect("every layer was read")
            .map_err(|source| SbomError::Layer {
                layer: name(i),
                source,
            })?;
        layers.push(ops);
    }
    Ok(Files {
        map: replay(layers),
        overlay: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_of(entries: &[(&str, Option<&str>)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, data) in entries {
            let mut h = tar::Header::new_ustar();
            match data {
                Some(d) => {
                    h.set_entry_type(tar::EntryType::Regular);
                    h.set_size(d.len() as u64);
                    h.set_mode(0o644);
                    b.append_data(&mut h, path, d.as_bytes()).unwrap();
                }
                None => {
                    h.set_entry_type(tar::EntryType::Directory);
                    h.set_size(0);
                    h.set_mode(0o755);
                    b.append_data(&mut h, path, &[][..]).unwrap();
                }
            }
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn rules() {
        assert!(wanted("var/lib/dpkg/status").is_some());
        assert!(wanted("var/lib/dpkg/status.d/base-files").is_some());
        assert!(wanted("var/lib/dpkg/status.d/base-files.md5sums").is_none());
        assert!(wanted("usr/share/doc/bash/copyright").is_some());
        assert!(wanted("usr/share/doc/bash/changelog.gz").is_none());
        assert!(
            wanted("usr/local/lib/python3.11/site-packages/six-1.16.0.dist-info/METADATA")
                .is_some()
        );
        assert!(
            wanted("usr/local/lib/python3.11/site-packages/six-1.16.0.dist-info/RECORD").is_none()
        );
        assert!(wanted("usr/lib/python3/dist-packages/foo.egg-info").is_some());
        assert!(wanted("usr/lib/python3.11/test/x.dist-info/METADATA").is_none());
        assert!(
            wanted("usr/local/lib/python3.11/site-packages/torch/x.dist-info/METADATA").is_none()
        );
        assert!(wanted("opt/conda/conda-meta/python-3.11.5-h1.json").is_some());
        assert!(
            wanted("opt/conda/pkgs/x/lib/python3.11/site-packages/a.dist-info/METADATA").is_none()
        );
        assert_eq!(wanted("usr/bin/python3.11"), Some(Want::Presence));
        assert!(wanted("usr/bin/python3").is_none());
        assert!(wanted("proc/x/site-packages/a.dist-info/METADATA").is_none());
        assert_eq!(
            resolve_link("etc/os-release", "../usr/lib/os-release").as_deref(),
            Some("usr/lib/os-release")
        );
        assert_eq!(
            resolve_link("etc/os-release", "/usr/lib/os-release").as_deref(),
            Some("usr/lib/os-release")
        );
    }

    #[test]
    fn layers_apply_whiteouts() {
        let sp = "usr/lib/python3/dist-packages";
        let l0 = tar_of(&[
            ("var/lib/dpkg/status", Some("Package: a\n")),
            (&format!("{sp}/a-1.dist-info/METADATA"), Some("Name: a\n")),
            (&format!("{sp}/b-1.dist-info/METADATA"), Some("Name: b\n")),
            (&format!("{sp}/c-1.dist-info/METADATA"), Some("Name: c\n")),
            (&format!("{sp}/big/module.py"), Some("x")),
        ]);
        let l1 = tar_of(&[
            ("var/lib/dpkg/status", Some("Package: b\n")),
            (&format!("{sp}/.wh.a-1.dist-info"), Some("")),
            (&format!("{sp}/b-2.dist-info/METADATA"), Some("Name: b2\n")),
            (&format!("{sp}/c-1.dist-info/.wh..wh..opq"), Some("")),
        ]);
        let layers = [l0, l1];
        let open = |i: usize| -> std::io::Result<Box<dyn Read + Send>> {
            Ok(Box::new(std::io::Cursor::new(layers[i].clone())))
        };
        let files = read_layers(&open, 2, &|i| i.to_string()).unwrap();
        let keys: Vec<&str> = files.map.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                &format!("{sp}/b-1.dist-info/METADATA")[..],
                &format!("{sp}/b-2.dist-info/METADATA"),
                "var/lib/dpkg/status"
            ]
        );
        assert_eq!(
            files.content("var/lib/dpkg/status"),
            Some(&b"Package: b\n"[..])
        );
    }

    #[test]
    fn snapshots_without_whiteouts() {
        let d = tempfile::tempdir().unwrap();
        let l0 = d.path().join("0");
        let l1 = d.path().join("1");
        let sp = "usr/local/lib/python3.11/site-packages";
        fs::create_dir_all(l0.join(sp).join("six-1.dist-info")).unwrap();
        fs::create_dir_all(l0.join(sp).join("six")).unwrap();
        fs::write(l0.join(sp).join("six-1.dist-info/METADATA"), "Name: six\n").unwrap();
        fs::write(l0.join(sp).join("six-1.dist-info/RECORD"), "x").unwrap();
        fs::create_dir_all(l1.join(sp).join("idna-3.dist-info")).unwrap();
        fs::write(
            l1.join(sp).join("idna-3.dist-info/METADATA"),
            "Name: idna\n",
        )
        .unwrap();
        fs::create_dir_all(l1.join("etc")).unwrap();
        std::os::unix::fs::symlink("../usr/lib/os-release", l1.join("etc/os-release")).unwrap();
        fs::create_dir_all(l1.join("usr/lib")).unwrap();
        fs::write(l1.join("usr/lib/os-release"), "ID=debian\n").unwrap();
        let files = read_snapshots(&[l0, l1]).unwrap();
        assert_eq!(files.content("etc/os-release"), Some(&b"ID=debian\n"[..]));
        assert!(files
            .map
            .contains_key(&format!("{sp}/six-1.dist-info/METADATA")));
        assert!(files
            .map
            .contains_key(&format!("{sp}/idna-3.dist-info/METADATA")));
        assert!(!files
            .map
            .contains_key(&format!("{sp}/six-1.dist-info/RECORD")));
    }
}
