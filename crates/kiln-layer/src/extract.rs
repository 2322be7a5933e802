//! Safe extraction of one layer onto a directory that may hold lower layers.
//!
//! Confinement works like Docker's: entry paths are cleaned lexically as if rooted at `/` (a `..` above the
//! root stays at the root), the parent directory is opened with `openat2(RESOLVE_IN_ROOT)` so that every
//! symlink on the way, absolute or relative, resolves as if `target` were `/`, and the last component is
//! handled with `*at` calls that never follow it. Nothing outside `target` can be created, changed or
//! removed, whatever earlier entries or lower layers planted there.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags, Timespec, Timestamps, XattrFlags};
use rustix::io::Errno;

use crate::error::{apply_err, show, tar_err, unsafe_entry, LayerError, Result};
use crate::tarfmt::{clean, join, read_meta, split_last, Kind, Meta};

/// How layers are extracted.
#[derive(Clone, Debug)]
pub struct ExtractOptions {
    /// chown entries to their uid/gid (true when running as root; when false ownership is left as the caller's)
    pub same_owner: bool,
}

impl Default for ExtractOptions {
    fn default() -> Self {
        ExtractOptions {
            same_owner: rustix::process::geteuid().is_root(),
        }
    }
}

/// What one extraction did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExtractStats {
    /// Tar entries applied, whiteouts included.
    pub entries: u64,
    /// Bytes of regular file data written.
    pub bytes: u64,
}

const WHITEOUT: &[u8] = b".wh.";
const OPAQUE: &[u8] = b".wh..wh..opq";

/// Applies one layer (an uncompressed tar stream) onto `target`, which may already hold lower layers.
///
/// The stream must be well formed up to its end: a cut inside a header or inside file data is an error.
/// Like Go's `archive/tar` (and so Docker), a stream that ends exactly between two entries without the
/// zero blocks is accepted; the digest of the blob is what proves it complete.
///
/// Privileges: ownership needs root (or `same_owner: false`); device nodes need CAP_MKNOD and are skipped
/// without it; `security.capability` and other privileged xattrs are dropped when refused. Without root, a
/// lower layer's read-only directory cannot receive new entries. Sub-second mtimes are not kept.
pub fn extract<R: Read>(tar: R, target: &Path, opts: &ExtractOptions) -> Result<ExtractStats> {
    let root = rustix::fs::open(
        target,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| LayerError::Io {
        path: target.to_path_buf(),
        action: "open",
        source: e.into(),
    })?;
    let mut x = Extractor {
        root,
        same_owner: opts.same_owner,
        created: BTreeSet::new(),
        dirs: Vec::new(),
        stats: ExtractStats::default(),
        buf: vec![0; 256 * 1024],
    };
    let mut ar = tar::Archive::new(tar);
    let entries = ar
        .entries()
        .map_err(|s| tar_err(b"", "cannot read archive", s))?;
    for e in entries {
        let mut e = e.map_err(|s| tar_err(b"", "cannot read entry header", s))?;
        let Some(m) = read_meta(&mut e)? else {
            continue;
        };
        x.stats.entries += 1;
        x.apply(&m, &mut e)?;
    }
    x.finish_dirs();
    Ok(x.stats)
}

struct Extractor {
    /// `O_PATH` descriptor of the target: the root every resolution is confined to.
    root: OwnedFd,
    same_owner: bool,
    /// Clean paths this layer created, which its own whiteouts must spare (OCI: a whiteout only hides lower
    /// layers).
    created: BTreeSet<Vec<u8>>,
    /// Directories whose mode and mtime are set after the layer: their children change the mtime, and a
    /// read-only mode would stop a non-root caller from filling them.
    dirs: Vec<(Vec<u8>, u32, i64)>,
    stats: ExtractStats,
    buf: Vec<u8>,
}

fn nofollow() -> AtFlags {
    AtFlags::SYMLINK_NOFOLLOW
}

fn times(mtime: i64) -> Timestamps {
    let t = Timespec {
        tv_sec: mtime,
        tv_nsec: 0,
    };
    Timestamps {
        last_access: t,
        last_modification: t,
    }
}

/// Whether an `fsetxattr` failure means "not allowed or not supported here" rather than a broken layer.
fn xattr_best_effort(e: Errno) -> bool {
    matches!(
        e,
        Errno::PERM | Errno::OPNOTSUPP | Errno::ACCESS | Errno::NOSPC | Errno::RANGE
    )
}

impl Extractor {
    /// Opens a clean relative directory path confined to the root (symlinks resolve as if it were `/`).
    fn resolve(&self, rel: &[u8], flags: OFlags) -> rustix::io::Result<OwnedFd> {
        let p: &[u8] = if rel.is_empty() { b"." } else { rel };
        rustix::fs::openat2(
            &self.root,
            p,
            flags | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
        )
    }

    /// The parent directory of an entry, creating missing directories (0755) inside the root. A dangling
    /// symlink on the way is followed (as if the root were `/`) and the directories are made where it
    /// points, as Docker does; the path is then re-resolved by `openat2`, so the symlink can never lead out.
    fn parent(&mut self, rel: &[u8], entry: &[u8]) -> Result<OwnedFd> {
        let err = |e: Errno| apply_err(entry, "open its parent directory", e);
        let mut path = rel.to_vec();
        let mut hops = 0;
        'retry: loop {
            match self.resolve(&path, OFlags::PATH) {
                Ok(fd) => return Ok(fd),
                Err(Errno::NOENT) => {}
                Err(e) => return Err(err(e)),
            }
            let mut fd = self.resolve(b"", OFlags::PATH).map_err(err)?;
            let mut end = 0;
            for comp in path.clone().split(|&b| b == b'/') {
                let start = end + usize::from(end > 0);
                end = start + comp.len();
                let prefix = &path[..end];
                fd = match self.resolve(prefix, OFlags::PATH) {
                    Ok(next) => next,
                    Err(Errno::NOENT) => {
                        match rustix::fs::mkdirat(&fd, comp, Mode::from_raw_mode(0o755)) {
                            // Just made by us, so no symlink: chmod may follow the name; it undoes the umask.
                            Ok(()) => rustix::fs::chmodat(
                                &fd,
                                comp,
                                Mode::from_raw_mode(0o755),
                                AtFlags::empty(),
                            )
                            .map_err(err)?,
                            Err(Errno::EXIST) => {
                                // A dangling symlink: continue from its target, lexically, in the root.
                                let target =
                                    rustix::fs::readlinkat(&fd, comp, Vec::new()).map_err(err)?;
                                hops += 1;
                                if hops > 40 {
                                    return Err(err(Errno::LOOP));
                                }
                                let target = target.as_bytes();
                                let base = if target.starts_with(b"/") {
                                    &b""[..]
                                } else {
                                    &path[..start]
                                };
                                let mut next = join(base, target);
                                next.extend_from_slice(&path[end..]);
                                path = clean(&next).0;
                                continue 'retry;
                            }
                            Err(e) => return Err(err(e)),
                        }
                        self.created.insert(prefix.to_vec());
                        self.resolve(prefix, OFlags::PATH).map_err(err)?
                    }
                    Err(e) => return Err(err(e)),
                };
            }
            return Ok(fd);
        }
    }

    fn apply(&mut self, m: &Meta, data: &mut dyn Read) -> Result<()> {
        let (rel, _) = clean(&m.path);
        let entry = &m.path[..];
        if rel.is_empty() {
            // The root entry ("./") may only set the root's own metadata.
            if m.kind == Kind::Dir {
                let fd = self
                    .resolve(b"", OFlags::RDONLY)
                    .map_err(|e| apply_err(entry, "open the root", e))?;
                self.chown(fd.as_fd(), b"", m)?;
                self.dirs.push((rel, m.mode, m.mtime));
            }
            return Ok(());
        }
        let (parent, name) = split_last(&rel);
        if let Some(wh) = name.strip_prefix(WHITEOUT) {
            return self.whiteout(entry, parent, wh);
        }
        let pfd = self.parent(parent, entry)?;
        let pfd = pfd.as_fd();
        match m.kind {
            Kind::File => {
                self.clear(pfd, name, false, entry)?;
                let fd = rustix::fs::openat(
                    pfd,
                    name,
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )
                .map_err(|e| apply_err(entry, "create file", e))?;
                let mut f = File::from(fd);
                self.copy(entry, data, &mut f, m.size)?;
                self.chown(f.as_fd(), b"", m)?;
                rustix::fs::fchmod(&f, Mode::from_raw_mode(m.mode))
                    .map_err(|e| apply_err(entry, "chmod", e))?;
                self.xattrs(f.as_fd(), m)?;
                rustix::fs::futimens(&f, &times(m.mtime))
                    .map_err(|e| apply_err(entry, "set times", e))?;
            }
            Kind::Dir => {
                if !self.clear(pfd, name, true, entry)? {
                    rustix::fs::mkdirat(pfd, name, Mode::from_raw_mode(0o700))
                        .map_err(|e| apply_err(entry, "create directory", e))?;
                }
                let d = rustix::fs::openat(
                    pfd,
                    name,
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| apply_err(entry, "open directory", e))?;
                self.chown(d.as_fd(), b"", m)?;
                self.xattrs(d.as_fd(), m)?;
                self.dirs.push((rel.clone(), m.mode, m.mtime));
            }
            Kind::Symlink => {
                self.clear(pfd, name, false, entry)?;
                rustix::fs::symlinkat(&m.link[..], pfd, name)
                    .map_err(|e| apply_err(entry, "create symlink", e))?;
                self.chown(pfd, name, m)?;
                rustix::fs::utimensat(pfd, name, &times(m.mtime), nofollow())
                    .map_err(|e| apply_err(entry, "set times", e))?;
            }
            Kind::Link => {
                let (lrel, _) = clean(&m.link);
                if lrel.is_empty() {
                    return Err(unsafe_entry(entry, "hardlink to the root"));
                }
                if lrel == rel {
                    return Ok(()); // a link to itself changes nothing
                }
                let (lparent, lname) = split_last(&lrel);
                let what = || format!("hardlink target `{}`", show(&m.link));
                let missing =
                    |e: Errno| unsafe_entry(entry, format!("{} is not in the tree: {e}", what()));
                let lfd = self.resolve(lparent, OFlags::PATH).map_err(missing)?;
                match rustix::fs::statat(&lfd, lname, nofollow()) {
                    Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {
                        return Err(unsafe_entry(entry, format!("{} is a directory", what())))
                    }
                    Ok(_) => {}
                    Err(e) => return Err(missing(e)),
                }
                self.clear(pfd, name, false, entry)?;
                // Flags 0: a symlink target is linked itself, never followed out of the root.
                rustix::fs::linkat(&lfd, lname, pfd, name, AtFlags::empty())
                    .map_err(|e| apply_err(entry, "create hardlink", e))?;
            }
            Kind::Char | Kind::Block | Kind::Fifo => {
                self.clear(pfd, name, false, entry)?;
                let (ft, dev) = match m.kind {
                    Kind::Char => (
                        FileType::CharacterDevice,
                        rustix::fs::makedev(m.dev_major, m.dev_minor),
                    ),
                    Kind::Block => (
                        FileType::BlockDevice,
                        rustix::fs::makedev(m.dev_major, m.dev_minor),
                    ),
                    _ => (FileType::Fifo, 0),
                };
                match rustix::fs::mknodat(pfd, name, ft, Mode::from_raw_mode(m.mode & 0o777), dev) {
                    Ok(()) => {}
                    // Without CAP_MKNOD (rootless, user namespaces) device nodes are skipped, as Docker does.
                    Err(Errno::PERM) if ft != FileType::Fifo => return Ok(()),
                    Err(e) => return Err(apply_err(entry, "create device node", e)),
                }
                self.chown(pfd, name, m)?;
                // The name was just made by mknod, so it is no symlink and chmod may follow it.
                rustix::fs::chmodat(pfd, name, Mode::from_raw_mode(m.mode), AtFlags::empty())
                    .map_err(|e| apply_err(entry, "chmod", e))?;
                rustix::fs::utimensat(pfd, name, &times(m.mtime), nofollow())
                    .map_err(|e| apply_err(entry, "set times", e))?;
            }
        }
        self.created.insert(rel);
        Ok(())
    }

    /// Copies exactly `size` bytes of entry data; a short stream is a truncated archive.
    fn copy(&mut self, entry: &[u8], data: &mut dyn Read, f: &mut File, size: u64) -> Result<()> {
        let mut left = size;
        while left > 0 {
            let want = left.min(self.buf.len() as u64) as usize;
            let n = match data.read(&mut self.buf[..want]) {
                Ok(0) => {
                    let e = io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("{left} of {size} bytes missing"),
                    );
                    return Err(tar_err(entry, "truncated data of entry", e));
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(tar_err(entry, "cannot read data of entry", e)),
            };
            f.write_all(&self.buf[..n])
                .map_err(|e| apply_err(entry, "write file", e))?;
            left -= n as u64;
        }
        self.stats.bytes += size;
        Ok(())
    }

    /// chown without following: `name` empty means `fd` itself.
    fn chown(&self, fd: BorrowedFd<'_>, name: &[u8], m: &Meta) -> Result<()> {
        if !self.same_owner {
            return Ok(());
        }
        let id = |v: u64| {
            u32::try_from(v).map_err(|_| LayerError::Unsupported {
                entry: show(&m.path),
                reason: format!("owner id {v} does not fit in 32 bits"),
            })
        };
        let (uid, gid) = (
            rustix::fs::Uid::from_raw(id(m.uid)?),
            rustix::fs::Gid::from_raw(id(m.gid)?),
        );
        let r = if name.is_empty() {
            rustix::fs::fchown(fd, Some(uid), Some(gid))
        } else {
            rustix::fs::chownat(fd, name, Some(uid), Some(gid), nofollow())
        };
        r.map_err(|e| apply_err(&m.path, "chown", e))
    }

    /// Best effort: an xattr the filesystem or our privileges refuse is dropped, as Docker does.
    fn xattrs(&self, fd: BorrowedFd<'_>, m: &Meta) -> Result<()> {
        for (name, value) in &m.xattrs {
            match rustix::fs::fsetxattr(fd, &name[..], value, XattrFlags::empty()) {
                Ok(()) => {}
                Err(e) if xattr_best_effort(e) => {}
                Err(e) => return Err(apply_err(&m.path, "set extended attribute", e)),
            }
        }
        Ok(())
    }

    /// Makes room for a new entry at `name`: removes what is there (a directory recursively), except that an
    /// existing directory is kept when `keep_dir`. Returns whether a directory was kept.
    fn clear(
        &self,
        pfd: BorrowedFd<'_>,
        name: &[u8],
        keep_dir: bool,
        entry: &[u8],
    ) -> Result<bool> {
        match rustix::fs::statat(pfd, name, nofollow()) {
            Err(Errno::NOENT) => Ok(false),
            Err(e) => Err(apply_err(entry, "inspect the existing file", e)),
            Ok(st) if keep_dir && FileType::from_raw_mode(st.st_mode) == FileType::Directory => {
                Ok(true)
            }
            Ok(_) => remove_all(pfd, name)
                .map(|()| false)
                .map_err(|e| apply_err(entry, "replace the existing file", e)),
        }
    }

    fn whiteout(&mut self, entry: &[u8], parent: &[u8], wh: &[u8]) -> Result<()> {
        // Whiteouts never create anything: a missing parent means there is nothing to hide.
        let pfd = match self.resolve(parent, OFlags::RDONLY) {
            Ok(fd) => fd,
            Err(Errno::NOENT | Errno::NOTDIR) => return Ok(()),
            Err(e) => return Err(apply_err(entry, "open the whiteout's directory", e)),
        };
        let err = |e: io::Error| apply_err(entry, "apply whiteout", e);
        if wh == &OPAQUE[WHITEOUT.len()..] {
            for child in list(pfd.as_fd()).map_err(err)? {
                self.remove_lower(pfd.as_fd(), &child, &join(parent, &child))
                    .map_err(err)?;
            }
            return Ok(());
        }
        if wh.starts_with(WHITEOUT) {
            return Ok(()); // other `.wh..wh.*` names are aufs bookkeeping, not whiteouts
        }
        if wh.is_empty() || wh == b"." || wh == b".." {
            return Err(unsafe_entry(
                entry,
                "whiteout names no file in its directory",
            ));
        }
        self.remove_lower(pfd.as_fd(), wh, &join(parent, wh))
            .map_err(err)
    }

    /// Removes `name` (clean path `rel`) and everything below it, sparing what this layer created.
    fn remove_lower(&self, dfd: BorrowedFd<'_>, name: &[u8], rel: &[u8]) -> io::Result<()> {
        let prefix = join(rel, b"");
        let below = self
            .created
            .range(prefix.clone()..)
            .next()
            .is_some_and(|p| p.starts_with(&prefix));
        if !below {
            return if self.created.contains(rel) {
                Ok(())
            } else {
                remove_all(dfd, name)
            };
        }
        // This layer wrote below: keep the directory, prune only its lower children.
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let d = match rustix::fs::openat(dfd, name, flags, Mode::empty()) {
            Ok(d) => d,
            Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        for child in list(d.as_fd())? {
            self.remove_lower(d.as_fd(), &child, &join(rel, &child))?;
        }
        Ok(())
    }

    /// Sets directory modes and mtimes once the layer is complete. A directory that a later entry replaced
    /// or removed is skipped; `O_NOFOLLOW` keeps a symlink put in its place from redirecting the change.
    fn finish_dirs(&mut self) {
        for (rel, mode, mtime) in std::mem::take(&mut self.dirs) {
            let Ok(fd) = self.resolve(&rel, OFlags::RDONLY | OFlags::NOFOLLOW) else {
                continue;
            };
            // Errors are ignored: the tree is complete, only its metadata would be off.
            let _ = rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode));
            let _ = rustix::fs::futimens(&fd, &times(mtime));
        }
    }
}

/// Names in a directory, without `.` and `..`.
fn list(d: BorrowedFd<'_>) -> io::Result<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    for de in rustix::fs::Dir::read_from(d)? {
        let name = de?.file_name().to_bytes().to_vec();
        if name != b"." && name != b".." {
            out.push(name);
        }
    }
    Ok(out)
}

/// Removes `name` in `dfd` and, for a directory, everything below it, never following symlinks.
fn remove_all(dfd: BorrowedFd<'_>, name: &[u8]) -> io::Result<()> {
    match rustix::fs::unlinkat(dfd, name, AtFlags::empty()) {
        Ok(()) | Err(Errno::NOENT) => Ok(()),
        Err(Errno::ISDIR) => {
            let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
            let d = rustix::fs::openat(dfd, name, flags, Mode::empty())?;
            for child in list(d.as_fd())? {
                remove_all(d.as_fd(), &child)?;
            }
            rustix::fs::unlinkat(dfd, name, AtFlags::REMOVEDIR).map_err(Into::into)
        }
        Err(e) => Err(e.into()),
    }
}
