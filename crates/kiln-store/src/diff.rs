//! Which files differ between two images, reading only the layers they do not share.
//!
//! Two versions of an image usually share their lower layers (the same chain IDs): those
//! are never read. Each image's remaining layers are streamed once (content hashed on the
//! way), whiteouts and opaque directories applied; a path either image's own layers do not
//! touch is the same in both. Where one image's layers touch a path and the other's do
//! not, the other's state comes from the shared layers' snapshots (unpacked once, as for
//! a container), looked up without following any symlink.

use crate::error::{Result, StoreError};
use crate::images::ImageInfo;
use crate::prune::chain_ids;
use crate::store::Store;
use kiln_oci::types::Manifest;
use kiln_oci::Digest;
use serde::Serialize;
use sha2::{Digest as _, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// A file's state, as far as a diff cares (no times: builds clamp them).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FileState {
    /// `file`, `dir`, `symlink`, `hardlink`, `char`, `block`, `fifo`.
    pub kind: &'static str,
    /// Permission bits with setuid/setgid/sticky (`mode & 0o7777`), without the file type.
    pub mode: u32,
    /// Numeric owner user id.
    pub uid: u64,
    /// Numeric owner group id.
    pub gid: u64,
    /// Size in bytes for a regular file; 0 for every other kind.
    pub size: u64,
    /// Target of a symlink, or the path (in the image) a hard link points to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    /// Hex sha256 of a regular file's content; `None` for other kinds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

/// One path that differs.
#[derive(Clone, Debug, Serialize)]
pub struct FileChange {
    /// Absolute path inside the image, e.g. `/etc/passwd`.
    pub path: String,
    /// `added`, `removed` or `modified`.
    pub change: &'static str,
    /// State in the first image; `None` when the path was added.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub before: Option<FileState>,
    /// State in the second image; `None` when the path was removed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<FileState>,
}

/// The file differences of two images.
#[derive(Debug, Default, Serialize)]
pub struct FilesDiff {
    /// The paths that differ, sorted by path.
    pub changes: Vec<FileChange>,
    /// Bottom layers both images share (never read).
    pub shared_layers: usize,
    /// Layers streamed to find the changes.
    pub layers_read: usize,
}

/// What an image's own layers (above the shared ones) did: each path's final state
/// (`None`: deleted), and the paths below which the shared layers' content is hidden.
#[derive(Default)]
struct Own {
    paths: BTreeMap<String, Option<FileState>>,
    hidden: BTreeSet<String>,
}

fn clean(raw: &[u8]) -> String {
    let s = String::from_utf8_lossy(raw);
    s.split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect::<Vec<_>>()
        .join("/")
}

fn under(path: &str, dir: &str) -> bool {
    dir.is_empty()
        || path.len() > dir.len() && path.starts_with(dir) && path.as_bytes()[dir.len()] == b'/'
}

/// The proper ancestors of a clean path, nearest first (`a/b/c` -> `a/b`, `a`, ``).
fn ancestors(path: &str) -> impl Iterator<Item = &str> {
    let mut cur = Some(path);
    std::iter::from_fn(move || {
        let p = cur?;
        let parent = p.rsplit_once('/').map_or("", |(d, _)| d);
        cur = (!p.is_empty()).then_some(parent);
        cur
    })
}

/// Whether the image's own layers hide `path` of the shared layers: a whiteout or an
/// opaque directory above it, or a non-directory over one of its parents.
fn hidden_by(own: &Own, path: &str) -> bool {
    ancestors(path).any(|a| {
        own.hidden.contains(a)
            || own
                .paths
                .get(a)
                .is_some_and(|s| s.as_ref().is_none_or(|s| s.kind != "dir"))
    })
}

impl Own {
    /// Everything below `dir` from lower layers goes: the image's own (a whiteout, an
    /// opaque dir, a non-directory over a directory) and, with `base`, the shared layers'.
    fn hide_below(&mut self, dir: &str, base: bool) {
        let below: Vec<String> = self
            .paths
            .range(format!("{dir}/")..)
            .map(|(k, _)| k.clone())
            .take_while(|k| under(k, dir))
            .collect();
        for k in below {
            self.paths.remove(&k);
        }
        if base {
            self.hidden.insert(dir.to_string());
        }
    }

    fn apply_layer(&mut self, reader: impl Read) -> io::Result<()> {
        let (_, plain) = kiln_layer::decompress(reader)?;
        let mut ar = tar::Archive::new(kiln_layer::TarGuard::new(plain));
        for e in ar.entries()? {
            let mut e = e?;
            let path = clean(&e.path_bytes());
            let (parent, name) = match path.rsplit_once('/') {
                Some((p, n)) => (p.to_string(), n.to_string()),
                None => (String::new(), path.clone()),
            };
            if name == ".wh..wh..opq" {
                self.hide_below(&parent, true);
                continue;
            }
            if let Some(gone) = name.strip_prefix(".wh.") {
                let target = if parent.is_empty() {
                    gone.to_string()
                } else {
                    format!("{parent}/{gone}")
                };
                self.hide_below(&target, true);
                self.paths.insert(target, None);
                continue;
            }
            if path.is_empty() {
                continue;
            }
            let h = e.header().clone();
            use tar::EntryType as T;
            let kind = match h.entry_type() {
                T::Regular | T::Continuous | T::GNUSparse => "file",
                T::Directory => "dir",
                T::Symlink => "symlink",
                T::Link => "hardlink",
                T::Char => "char",
                T::Block => "block",
                T::Fifo => "fifo",
                _ => continue,
            };
            if kind != "dir" {
                // The shared layers' content below is hidden by the entry itself (see
                // `hidden_by`), not listed: a layer of many files stays linear.
                self.hide_below(&path, false);
            }
            let link = e
                .link_name_bytes()
                .map(|l| String::from_utf8_lossy(&l).into_owned());
            let sha256 = if kind == "file" {
                Some(sha256_hex(&mut e)?)
            } else {
                None
            };
            self.paths.insert(
                path,
                Some(FileState {
                    kind,
                    mode: h.mode()? & 0o7777,
                    uid: h.uid()?,
                    gid: h.gid()?,
                    size: if kind == "file" { e.size() } else { 0 },
                    link: if kind == "hardlink" {
                        link.map(|l| clean(l.as_bytes()))
                    } else {
                        link
                    },
                    sha256,
                }),
            );
        }
        Ok(())
    }
}

/// Hex sha256 of everything `r` reads.
fn sha256_hex(r: &mut impl io::Read) -> io::Result<String> {
    let mut hasher = Sha256::new();
    io::copy(r, &mut hasher)?;
    Ok(hex::encode(hasher.finalize()))
}

/// The shared layers, as their snapshot directories (bottom first).
struct Base {
    dirs: Vec<PathBuf>,
}

impl Base {
    /// The state of `path` in the stacked snapshots: the top layer that has it, unless a
    /// whiteout, an opaque directory or a non-directory above hides it. No symlink is
    /// followed: each component is looked at with lstat.
    fn lookup(&self, path: &str) -> io::Result<Option<FileState>> {
        let parts: Vec<&str> = path.split('/').collect();
        for dir in self.dirs.iter().rev() {
            let mut cur = dir.clone();
            let mut stop = false;
            for (i, part) in parts.iter().enumerate() {
                cur.push(part);
                let md = match fs::symlink_metadata(&cur) {
                    Ok(m) => m,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => break,
                    Err(e) => return Err(e),
                };
                let whiteout = md.file_type().is_char_device() && md.rdev() == 0;
                if whiteout {
                    return Ok(None);
                }
                let last = i + 1 == parts.len();
                if last {
                    return Ok(Some(state(&cur, &md)?));
                }
                if !md.is_dir() {
                    return Ok(None);
                }
                if is_opaque(&cur) {
                    // Nothing below this directory comes from lower layers.
                    stop = true;
                }
            }
            if stop {
                return Ok(None);
            }
        }
        Ok(None)
    }

    /// Whether any shared layer has a directory at `path` (lstat, no symlink followed in
    /// the last component; a rare false positive only adds candidates).
    fn has_dir(&self, path: &str) -> bool {
        self.dirs
            .iter()
            .any(|d| fs::symlink_metadata(d.join(path)).is_ok_and(|m| m.is_dir()))
    }

    /// Every path below `dir` in any of the snapshots (what a whiteout or an opaque
    /// directory of one image hides).
    fn paths_below(&self, dir: &str) -> BTreeSet<String> {
        fn walk(root: &Path, rel: &str, out: &mut BTreeSet<String>) {
            let p = if rel.is_empty() {
                root.to_path_buf()
            } else {
                root.join(rel)
            };
            let Ok(rd) = fs::read_dir(&p) else { return };
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let child = if rel.is_empty() {
                    name
                } else {
                    format!("{rel}/{name}")
                };
                let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
                out.insert(child.clone());
                if is_dir {
                    walk(root, &child, out);
                }
            }
        }
        let mut out = BTreeSet::new();
        for d in &self.dirs {
            walk(d, dir, &mut out);
        }
        out
    }
}

fn is_opaque(dir: &Path) -> bool {
    rustix::fs::lgetxattr(dir, "trusted.overlay.opaque", &mut [0u8; 4]).is_ok_and(|n| n == 1)
}

fn state(path: &Path, md: &fs::Metadata) -> io::Result<FileState> {
    let ft = md.file_type();
    let kind = if ft.is_file() {
        "file"
    } else if ft.is_dir() {
        "dir"
    } else if ft.is_symlink() {
        "symlink"
    } else if ft.is_char_device() {
        "char"
    } else if ft.is_block_device() {
        "block"
    } else {
        "fifo"
    };
    let sha256 = if kind == "file" {
        Some(sha256_hex(&mut fs::File::open(path)?)?)
    } else {
        None
    };
    Ok(FileState {
        kind,
        mode: md.mode() & 0o7777,
        uid: md.uid() as u64,
        gid: md.gid() as u64,
        size: if kind == "file" { md.len() } else { 0 },
        link: if kind == "symlink" {
            Some(fs::read_link(path)?.to_string_lossy().into_owned())
        } else {
            None
        },
        sha256,
    })
}

/// Two states that differ only in the way a hard link is recorded (a link in one layer,
/// the file itself in another) are still different entries: compared as they are.
fn final_state(own: &Own, base: &Base, path: &str) -> io::Result<Option<FileState>> {
    match own.paths.get(path) {
        Some(s) => Ok(s.clone()),
        None if hidden_by(own, path) => Ok(None),
        None => base.lookup(path),
    }
}

impl Store {
    /// The files that differ between images `a` and `b` (`a` is the older one: a file
    /// only `b` has is `added`).
    pub fn diff_files(&self, a: &ImageInfo, b: &ImageInfo) -> Result<FilesDiff> {
        let ca = chain_ids(&a.config.rootfs.diff_ids);
        let cb = chain_ids(&b.config.rootfs.diff_ids);
        let shared = ca.iter().zip(&cb).take_while(|(x, y)| x == y).count();
        let base_dirs = if shared == 0 {
            Vec::new()
        } else {
            let manifest = Manifest::oci(
                a.manifest.config.clone(),
                a.manifest.layers[..shared].to_vec(),
            );
            let mut config = a.config.clone();
            config.rootfs.diff_ids.truncate(shared);
            crate::snapshot::prepare(self, &manifest, &config)?
        };
        let base = Base { dirs: base_dirs };
        let mut layers_read = 0;
        let mut own = |img: &ImageInfo| -> Result<Own> {
            let mut o = Own::default();
            for layer in &img.manifest.layers[shared..] {
                let file = self.open_blob(&layer.digest)?;
                o.apply_layer(io::BufReader::with_capacity(1 << 20, file))
                    .map_err(|e| layer_error(&layer.digest, e))?;
                layers_read += 1;
            }
            Ok(o)
        };
        let (oa, ob) = (own(a)?, own(b)?);
        let mut candidates: BTreeSet<String> = oa.paths.keys().cloned().collect();
        candidates.extend(ob.paths.keys().cloned());
        for h in oa.hidden.iter().chain(&ob.hidden) {
            candidates.extend(base.paths_below(h));
        }
        // A non-directory over a shared directory hides what the directory holds.
        for (p, s) in oa.paths.iter().chain(&ob.paths) {
            if s.as_ref().is_some_and(|s| s.kind != "dir") && base.has_dir(p) {
                candidates.extend(base.paths_below(p));
            }
        }
        let io = |e: io::Error| StoreError::Io {
            path: self.root().join("snapshots"),
            source: e,
        };
        let mut changes = Vec::new();
        for path in candidates {
            let before = final_state(&oa, &base, &path).map_err(io)?;
            let after = final_state(&ob, &base, &path).map_err(io)?;
            let change = match (&before, &after) {
                (None, None) => continue,
                (None, Some(_)) => "added",
                (Some(_), None) => "removed",
                (Some(x), Some(y)) if x == y => continue,
                (Some(_), Some(_)) => "modified",
            };
            changes.push(FileChange {
                path: format!("/{path}"),
                change,
                before,
                after,
            });
        }
        Ok(FilesDiff {
            changes,
            shared_layers: shared,
            layers_read,
        })
    }
}

fn layer_error(digest: &Digest, e: io::Error) -> StoreError {
    StoreError::Layer {
        digest: digest.to_string(),
        reason: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_cleaned_and_nested_lexically() {
        assert_eq!(clean(b"./usr//lib/"), "usr/lib");
        assert!(under("usr/lib/x", "usr/lib"));
        assert!(!under("usr/lib64", "usr/lib"));
        assert!(under("anything", ""));
    }
}
