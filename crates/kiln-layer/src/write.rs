//! Deterministic layer writing: a directory tree ([`write_dir`]) or an existing tar stream ([`normalize`]).

use std::collections::HashMap;
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::error::{show, tar_err, unsafe_entry, LayerError, Result};
use crate::guard::TarGuard;
use crate::tarfmt::{clean, file_entries, Kind, Meta, TarOut};

/// How layers are written.
#[derive(Clone, Debug, Default)]
pub struct WriteOptions {
    /// Clamp every mtime to at most this (seconds since epoch); `None` keeps mtimes.  SOURCE_DATE_EPOCH semantics.
    pub source_date_epoch: Option<i64>,
    /// The tree is an overlayfs upper directory: its whiteouts (character devices 0/0) become
    /// OCI `.wh.NAME` entries and its opaque directories (`trusted.overlay.opaque=y`) get a
    /// `.wh..wh..opq` entry, so the layer records deletions (`kiln commit`, build steps).
    pub overlay_whiteouts: bool,
    /// Relative paths (`etc/hosts`) left out of the layer: mount points the runtime made.
    pub exclude: Vec<Vec<u8>>,
}

impl WriteOptions {
    fn clamp(&self, mtime: i64) -> i64 {
        self.source_date_epoch.map_or(mtime, |e| mtime.min(e))
    }
}

/// Extended attributes carried into layers. Like Docker, only file capabilities among `security.*`: SELinux
/// labels, ACLs (`system.*`) and `trusted.*` describe the build host, not the image. `user.*` is set on
/// purpose by whoever made the tree.
fn keep_xattr(name: &[u8]) -> bool {
    name == b"security.capability" || name.starts_with(b"user.")
}

fn io_err<'p>(path: &'p Path, action: &'static str) -> impl FnOnce(io::Error) -> LayerError + 'p {
    move |source| LayerError::Io {
        path: path.to_path_buf(),
        action,
        source,
    }
}

/// Where an entry of [`write_dir`] comes from: a file on disk (`None` is a synthetic
/// whiteout entry).
type Source = (PathBuf, fs::Metadata);

/// Deterministic tar of a directory tree: see the crate docs for the exact format.
/// Returns the writer after writing the end-of-archive blocks.
pub fn write_dir<W: Write>(dir: &Path, out: W, opts: &WriteOptions) -> Result<W> {
    let mut nodes = Vec::new();
    walk(dir, &[], &mut nodes)?;
    if !opts.exclude.is_empty() {
        nodes.retain(|(rel, _, _)| !opts.exclude.contains(rel));
    }
    // Overlay markers become OCI whiteout entries: a zero-sized file named `.wh.*` (`None`
    // metadata below marks one).
    let mut whiteouts: Vec<Vec<u8>> = Vec::new();
    if opts.overlay_whiteouts {
        nodes.retain(|(rel, full, md)| {
            let ft = md.file_type();
            if ft.is_char_device() && md.rdev() == 0 {
                let (parent, name) = match rel.iter().rposition(|b| *b == b'/') {
                    Some(i) => (&rel[..=i], &rel[i + 1..]),
                    None => (&rel[..0], &rel[..]),
                };
                whiteouts.push([parent, b".wh.", name].concat());
                return false;
            }
            let mut v = [0u8; 1];
            if ft.is_dir()
                && rustix::fs::lgetxattr(full, "trusted.overlay.opaque", &mut v[..])
                    .is_ok_and(|n| n == 1)
                && v[0] == b'y'
            {
                whiteouts.push([&rel[..], b"/.wh..wh..opq"].concat());
            }
            true
        });
    }
    let mut items: Vec<(Vec<u8>, Option<Source>)> = nodes
        .into_iter()
        .map(|(r, f, m)| (r, Some((f, m))))
        .collect();
    items.extend(whiteouts.into_iter().map(|w| (w, None)));
    // Bytewise order of whole paths puts every directory before its children (a prefix sorts first).
    items.sort_unstable_by(|a, b| a.0.cmp(&b.0));

    let mut t = TarOut::new(out);
    let mut first_path: HashMap<(u64, u64), Vec<u8>> = HashMap::new();
    for (rel, node) in items {
        let Some((full, md)) = node else {
            let m = Meta::file(rel, 0, 0, 0, opts.clamp(0));
            t.entry(&m, &mut io::empty())
                .map_err(io_err(dir, "write a whiteout entry in"))?;
            continue;
        };
        let ft = md.file_type();
        let mut m = Meta::file(
            rel,
            md.mode() & 0o7777,
            md.uid().into(),
            md.gid().into(),
            opts.clamp(md.mtime()),
        );
        if !ft.is_dir() && md.nlink() > 1 {
            // Later names of an inode become links to the first name in sorted order.
            if let Some(first) = first_path.get(&(md.dev(), md.ino())) {
                m.kind = Kind::Link;
                m.link = first.clone();
                t.entry(&m, &mut io::empty())
                    .map_err(io_err(&full, "write the tar entry of"))?;
                continue;
            }
            first_path.insert((md.dev(), md.ino()), m.path.clone());
        }
        if ft.is_file() {
            m.size = md.len();
        } else if ft.is_dir() {
            m.kind = Kind::Dir;
        } else if ft.is_symlink() {
            m.kind = Kind::Symlink;
            m.link = fs::read_link(&full)
                .map_err(io_err(&full, "read symlink"))?
                .as_os_str()
                .as_bytes()
                .to_vec();
        } else if ft.is_char_device() || ft.is_block_device() {
            m.kind = if ft.is_char_device() {
                Kind::Char
            } else {
                Kind::Block
            };
            m.dev_major = rustix::fs::major(md.rdev());
            m.dev_minor = rustix::fs::minor(md.rdev());
        } else if ft.is_fifo() {
            m.kind = Kind::Fifo;
        } else {
            continue; // sockets cannot be carried in a tar
        }
        m.xattrs = read_xattrs(&full)?;
        let res = if m.kind == Kind::File {
            let mut f = fs::File::open(&full).map_err(io_err(&full, "open"))?;
            t.entry(&m, &mut f)
        } else {
            t.entry(&m, &mut io::empty())
        };
        res.map_err(io_err(&full, "write the tar entry of"))?;
    }
    t.finish()
        .map_err(|s| tar_err(b"", "cannot finish the archive", s))
}

/// Collects `(relative path, full path, metadata)` of everything below `dir`, not following symlinks.
fn walk(dir: &Path, rel: &[u8], out: &mut Vec<(Vec<u8>, PathBuf, fs::Metadata)>) -> Result<()> {
    for de in fs::read_dir(dir).map_err(io_err(dir, "read directory"))? {
        let de = de.map_err(io_err(dir, "read directory"))?;
        let full = de.path();
        let md = fs::symlink_metadata(&full).map_err(io_err(&full, "stat"))?;
        let r = crate::tarfmt::join(rel, de.file_name().as_bytes());
        let is_dir = md.is_dir();
        out.push((r.clone(), full.clone(), md));
        if is_dir {
            walk(&full, &r, out)?;
        }
    }
    Ok(())
}

/// Reads the kept xattrs of a path (not following symlinks); unreadable ones are skipped, a filesystem
/// without xattrs yields none.
fn read_xattrs(path: &Path) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let Ok(len) = rustix::fs::llistxattr_query(path) else {
        return Ok(Vec::new());
    };
    if len == 0 {
        return Ok(Vec::new());
    }
    let mut names = vec![0u8; len];
    let Ok(n) = rustix::fs::llistxattr(path, &mut names[..]) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for name in names[..n]
        .split(|&b| b == 0)
        .filter(|n| !n.is_empty() && keep_xattr(n))
    {
        let Ok(vlen) = rustix::fs::lgetxattr_query(path, name) else {
            continue;
        };
        let mut v = vec![0u8; vlen];
        if let Ok(k) = rustix::fs::lgetxattr(path, name, &mut v[..]) {
            v.truncate(k);
            out.push((name.to_vec(), v));
        }
    }
    out.sort();
    Ok(out)
}

/// Re-writes an already decompressed tar stream as a clean layer: paths cleaned ("./a" -> "a", no leading
/// "/"), `..` climbing above the root or hardlinks pointing outside rejected, mtimes clamped, owner names and
/// atime/ctime dropped, input order kept. The root entry ("./") is dropped.
pub fn normalize<R: Read, W: Write>(input: R, out: W, opts: &WriteOptions) -> Result<W> {
    let mut ar = tar::Archive::new(TarGuard::new(input));
    let mut t = TarOut::new(out);
    for e in file_entries(&mut ar)? {
        let (mut e, mut m) = e?;
        let (path, escaped) = clean(&m.path);
        if escaped {
            return Err(unsafe_entry(&m.path, "path escapes the root"));
        }
        if path.is_empty() {
            if m.kind != Kind::Dir {
                return Err(unsafe_entry(&m.path, "only a directory can be the root"));
            }
            continue;
        }
        if m.kind == Kind::Link {
            let (link, escaped) = clean(&m.link);
            if escaped || link.is_empty() {
                return Err(unsafe_entry(
                    &m.path,
                    format!("hardlink target `{}` escapes the root", show(&m.link)),
                ));
            }
            m.link = link;
        }
        m.mtime = opts.clamp(m.mtime);
        let raw = std::mem::replace(&mut m.path, path);
        t.entry(&m, &mut e)
            .map_err(|s| tar_err(&raw, "cannot copy entry", s))?;
    }
    t.finish()
        .map_err(|s| tar_err(b"", "cannot finish the archive", s))
}
