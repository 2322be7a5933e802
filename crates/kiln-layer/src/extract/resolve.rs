//! Confinement: entry paths resolved inside the root (`openat2(RESOLVE_IN_ROOT)`), missing parent
//! directories made there, the parent directories kept open between entries, and removal that never
//! follows a symlink.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;

use rustix::fs::{AtFlags, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use crate::error::{apply_err, Result};
use crate::tarfmt::{clean, join};

use super::whiteout::{is_whiteout, set_opaque};
use super::Extractor;

/// Parent directories kept open between entries.
pub(super) const DIR_CACHE: usize = 128;

/// A key for a name in a directory (by inode). Collisions only make extraction more careful: the
/// sets keyed by it answer "maybe" for names they do not hold.
pub(super) fn name_key(ino: u64, name: &[u8]) -> u64 {
    let mut h = DefaultHasher::new();
    ino.hash(&mut h);
    name.hash(&mut h);
    h.finish()
}

/// A parent directory held open between entries.
#[derive(Clone)]
pub(super) struct Dir {
    pub(super) fd: Arc<OwnedFd>,
    pub(super) ino: u64,
    /// Made by this extraction: every name in it was made by this extraction too, and is in `names`.
    pub(super) fresh: bool,
    /// No default ACL (known for fresh directories under a root without one): a new file's mode is the
    /// mode given to `openat` less the umask.
    pub(super) plain: bool,
    /// The group a new entry in it gets (its own with setgid, else ours).
    pub(super) gid: u32,
}

pub(super) fn nofollow() -> AtFlags {
    AtFlags::SYMLINK_NOFOLLOW
}

impl Extractor {
    /// Opens a clean relative directory path confined to the root (symlinks resolve as if it were `/`).
    pub(super) fn resolve(&self, rel: &[u8], flags: OFlags) -> rustix::io::Result<OwnedFd> {
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
    pub(super) fn parent(&mut self, rel: &[u8], entry: &[u8]) -> Result<OwnedFd> {
        let err = |e: Errno| apply_err(entry, "open its parent directory", e);
        let mut path = rel.to_vec();
        let mut hops = 0;
        'retry: loop {
            match self.resolve(&path, OFlags::PATH) {
                Ok(fd) => return Ok(fd),
                Err(Errno::NOENT) => {}
                // Overlay mode: maybe a whiteout of this layer on the way, which the walk below replaces.
                Err(Errno::NOTDIR) if self.overlay => {}
                Err(e) => return Err(err(e)),
            }
            // The walk creates and replaces names: the writers finish first, and the cached
            // directories are forgotten.
            self.flush()?;
            self.dcache.clear();
            let mut fd = self.resolve(b"", OFlags::PATH).map_err(err)?;
            let mut end = 0;
            for comp in path.clone().split(|&b| b == b'/') {
                let start = end + usize::from(end > 0);
                end = start + comp.len();
                let prefix = &path[..end];
                fd = match self.resolve(prefix, OFlags::PATH) {
                    Ok(next) => next,
                    // Overlay mode: this layer's own whiteout is in the way; like a deleted then recreated
                    // directory, it becomes an opaque one.
                    Err(Errno::NOTDIR)
                        if self.overlay
                            && rustix::fs::statat(&fd, comp, nofollow())
                                .is_ok_and(|st| is_whiteout(&st)) =>
                    {
                        rustix::fs::unlinkat(&fd, comp, AtFlags::empty()).map_err(err)?;
                        rustix::fs::mkdirat(&fd, comp, Mode::from_raw_mode(0o755)).map_err(err)?;
                        let d = rustix::fs::openat(
                            &fd,
                            comp,
                            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                            Mode::empty(),
                        )
                        .map_err(err)?;
                        rustix::fs::fchmod(&d, Mode::from_raw_mode(0o755)).map_err(err)?;
                        set_opaque(d.as_fd(), entry)?;
                        self.created.insert(prefix.to_vec());
                        self.resolve(prefix, OFlags::PATH).map_err(err)?
                    }
                    Err(Errno::NOENT) => {
                        match rustix::fs::mkdirat(&fd, comp, Mode::from_raw_mode(0o755)) {
                            // Just made by us, so no symlink: chmod may follow the name; it undoes the umask.
                            Ok(()) => {
                                rustix::fs::chmodat(
                                    &fd,
                                    comp,
                                    Mode::from_raw_mode(0o755),
                                    AtFlags::empty(),
                                )
                                .map_err(err)?;
                                let parent = rustix::fs::fstat(&fd).map_err(err)?;
                                let plain = self.fresh.get(&parent.st_ino).copied();
                                if plain.is_some() {
                                    self.names.insert(name_key(parent.st_ino, comp));
                                }
                                let made = self.resolve(prefix, OFlags::PATH).map_err(err)?;
                                let st = rustix::fs::fstat(&made).map_err(err)?;
                                self.fresh.insert(st.st_ino, plain.unwrap_or(false));
                                self.created.insert(prefix.to_vec());
                                fd = made;
                                continue;
                            }
                            Err(Errno::EXIST) => {
                                // A dangling symlink: continue from its target, lexically, in the root.
                                let target = match rustix::fs::readlinkat(&fd, comp, Vec::new()) {
                                    Ok(t) => t,
                                    // Not a symlink: a directory another extraction into the
                                    // same tree made meanwhile; resolve the path again.
                                    Err(Errno::INVAL) => continue 'retry,
                                    Err(e) => return Err(err(e)),
                                };
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
                    }
                    Err(e) => return Err(err(e)),
                };
            }
            return Ok(fd);
        }
    }

    /// Notes a target that is empty (a new snapshot) as made by this extraction: names in it need no
    /// check before they are created.
    pub(super) fn note_empty_root(&mut self) {
        let Ok(d) = self.resolve(b"", OFlags::RDONLY) else {
            return;
        };
        let empty = list(d.as_fd()).is_ok_and(|l| l.is_empty());
        if let (true, Ok(st)) = (empty, rustix::fs::fstat(&d)) {
            let acl = rustix::fs::fgetxattr(&d, "system.posix_acl_default", &mut [0u8; 0]);
            // ENODATA: no default ACL; anything else (one is there, or no xattrs) is not "plain".
            let plain = matches!(acl, Err(Errno::NODATA | Errno::OPNOTSUPP));
            self.fresh.insert(st.st_ino, plain);
        }
    }

    /// The parent directory of an entry, from the cache or resolved (and made) in the root.
    pub(super) fn parent_dir(&mut self, rel: &[u8], entry: &[u8]) -> Result<Dir> {
        if let Some(d) = self.dcache.get(rel) {
            return Ok(d.clone());
        }
        let fd = self.parent(rel, entry)?;
        let st =
            rustix::fs::fstat(&fd).map_err(|e| apply_err(entry, "open its parent directory", e))?;
        let fresh = self.fresh.get(&st.st_ino).copied();
        let d = Dir {
            fd: Arc::new(fd),
            ino: st.st_ino,
            fresh: fresh.is_some(),
            plain: fresh.unwrap_or(false),
            gid: self.new_gid(&st),
        };
        if self.dcache.len() >= DIR_CACHE {
            self.dcache.clear();
        }
        self.dcache.insert(rel.to_vec(), d.clone());
        Ok(d)
    }
}

/// Names in a directory, without `.` and `..`.
pub(super) fn list(d: BorrowedFd<'_>) -> io::Result<Vec<Vec<u8>>> {
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
pub(super) fn remove_all(dfd: BorrowedFd<'_>, name: &[u8]) -> io::Result<()> {
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
