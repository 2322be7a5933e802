//! Applying one entry by its kind: regular files, directories, symlinks, hardlinks and device nodes,
//! after making room for it.

use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::Arc;

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

use crate::error::{apply_err, show, unsafe_entry, Result};
use crate::tarfmt::{clean, split_last, Kind, Meta};

use super::files::{create_file, finish_file, read_data, FileJob, FileMeta, SMALL_FILE};
use super::metadata::times;
use super::resolve::{name_key, nofollow, remove_all, Dir, DIR_CACHE};
use super::whiteout::{is_whiteout, set_opaque, WHITEOUT};
use super::Extractor;

/// What [`Extractor::clear`] found at a name.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Cleared {
    Nothing,
    /// A directory, kept.
    KeptDir,
    /// Something (in overlay mode: of this layer, which hid the lower path) that was removed.
    Removed,
}

impl Extractor {
    pub(super) fn apply(&mut self, m: &Meta, data: &mut dyn Read) -> Result<()> {
        let (rel, _) = clean(&m.path);
        let entry = &m.path[..];
        if rel.is_empty() {
            // The root entry ("./") may only set the root's own metadata.
            if m.kind == Kind::Dir {
                let fd = self
                    .resolve(b"", OFlags::RDONLY)
                    .map_err(|e| apply_err(entry, "open the root", e))?;
                self.chown(fd.as_fd(), b"", m)?;
                self.dirs.push((rel, m.mode, m.mtime, m.mtime_nsec));
            }
            return Ok(());
        }
        let (parent, name) = split_last(&rel);
        if let Some(wh) = name.strip_prefix(WHITEOUT) {
            // Whiteouts remove and replace names anywhere below: everything before them is
            // finished first, and nothing cached about names is trusted after.
            self.flush()?;
            let r = self.whiteout(entry, parent, wh);
            self.dcache.clear();
            self.fresh.clear();
            return r;
        }
        let dir = self.parent_dir(parent, entry)?;
        let pfd = dir.fd.as_fd();
        let key = name_key(dir.ino, name);
        // A name in a directory this extraction made, that it has not made yet: nothing to replace.
        let known_new = dir.fresh && !self.names.contains(&key);
        if !known_new && self.inflight.contains(&key) {
            self.flush()?;
        }
        match m.kind {
            Kind::File => {
                if !known_new {
                    self.clear(pfd, name, false, entry)?;
                }
                let meta = FileMeta {
                    owner: self.owner_change(m, &dir)?,
                    mode: m.mode,
                    chmod: self.needs_chmod(m.mode, &dir),
                    mtime: (m.mtime, m.mtime_nsec),
                    xattrs: m.xattrs.clone(),
                };
                if m.size <= SMALL_FILE {
                    let data = read_data(entry, data, m.size)?;
                    self.pool.submit(FileJob {
                        dir: dir.fd.clone(),
                        name: name.to_vec(),
                        entry: entry.to_vec(),
                        data,
                        meta,
                    })?;
                    self.inflight.insert(key);
                    self.stats.bytes += m.size;
                } else {
                    let mut f = create_file(pfd, name, entry, m.mode)?;
                    self.copy(entry, data, &mut f, m.size)?;
                    finish_file(f.as_fd(), entry, &meta)?;
                }
            }
            Kind::Dir => {
                let cleared = if known_new {
                    Cleared::Nothing
                } else {
                    self.clear(pfd, name, true, entry)?
                };
                let mut made = false;
                if cleared != Cleared::KeptDir {
                    // EEXIST: made meanwhile by another extraction into the same tree
                    // (Debian packages are unpacked in parallel); the open below checks
                    // that it is a directory.
                    match rustix::fs::mkdirat(pfd, name, Mode::from_raw_mode(0o700)) {
                        Ok(()) => made = true,
                        Err(Errno::EXIST) => {}
                        Err(e) => return Err(apply_err(entry, "create directory", e)),
                    }
                }
                let d = rustix::fs::openat(
                    pfd,
                    name,
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| apply_err(entry, "open directory", e))?;
                if self.overlay && cleared == Cleared::Removed {
                    // What this layer put here (a whiteout, a file...) hid the lower path; the directory
                    // replacing it must too, or the lower directory's content would show through.
                    set_opaque(d.as_fd(), entry)?;
                }
                if made {
                    if let Some((uid, gid)) = self.owner_change(m, &dir)? {
                        rustix::fs::fchown(
                            &d,
                            Some(rustix::fs::Uid::from_raw(uid)),
                            Some(rustix::fs::Gid::from_raw(gid)),
                        )
                        .map_err(|e| apply_err(entry, "chown", e))?;
                    }
                } else {
                    self.chown(d.as_fd(), b"", m)?;
                }
                self.xattrs(d.as_fd(), m)?;
                self.dirs.push((rel.clone(), m.mode, m.mtime, m.mtime_nsec));
                if made {
                    let st =
                        rustix::fs::fstat(&d).map_err(|e| apply_err(entry, "open directory", e))?;
                    let acl = m
                        .xattrs
                        .iter()
                        .any(|(n, _)| n.starts_with(b"system.posix_acl"));
                    let plain = dir.plain && !acl;
                    self.fresh.insert(st.st_ino, plain);
                    let new = Dir {
                        fd: Arc::new(d),
                        ino: st.st_ino,
                        fresh: true,
                        plain,
                        gid: self.new_gid(&st),
                    };
                    if self.dcache.len() >= DIR_CACHE {
                        self.dcache.clear();
                    }
                    self.dcache.insert(rel.clone(), new);
                }
            }
            Kind::Symlink => {
                if !known_new {
                    self.clear(pfd, name, false, entry)?;
                }
                rustix::fs::symlinkat(&m.link[..], pfd, name)
                    .map_err(|e| apply_err(entry, "create symlink", e))?;
                if let Some((uid, gid)) = self.owner_change(m, &dir)? {
                    rustix::fs::chownat(
                        pfd,
                        name,
                        Some(rustix::fs::Uid::from_raw(uid)),
                        Some(rustix::fs::Gid::from_raw(gid)),
                        nofollow(),
                    )
                    .map_err(|e| apply_err(&m.path, "chown", e))?;
                }
                rustix::fs::utimensat(pfd, name, &times(m.mtime, m.mtime_nsec), nofollow())
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
                // Its target may be a file a writer has not made yet.
                self.flush()?;
                let (lparent, lname) = split_last(&lrel);
                let what = || format!("hardlink target `{}`", show(&m.link));
                let missing =
                    |e: Errno| unsafe_entry(entry, format!("{} is not in the tree: {e}", what()));
                let lfd = self.resolve(lparent, OFlags::PATH).map_err(missing)?;
                match rustix::fs::statat(&lfd, lname, nofollow()) {
                    Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {
                        return Err(unsafe_entry(entry, format!("{} is a directory", what())))
                    }
                    Ok(st) if self.overlay && is_whiteout(&st) => {
                        return Err(missing(Errno::NOENT));
                    }
                    Ok(_) => {}
                    Err(e) => return Err(missing(e)),
                }
                if !known_new {
                    self.clear(pfd, name, false, entry)?;
                }
                // Flags 0: a symlink target is linked itself, never followed out of the root.
                rustix::fs::linkat(&lfd, lname, pfd, name, AtFlags::empty())
                    .map_err(|e| apply_err(entry, "create hardlink", e))?;
            }
            Kind::Char | Kind::Block | Kind::Fifo => {
                if !known_new {
                    self.clear(pfd, name, false, entry)?;
                }
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
                rustix::fs::utimensat(pfd, name, &times(m.mtime, m.mtime_nsec), nofollow())
                    .map_err(|e| apply_err(entry, "set times", e))?;
            }
        }
        if dir.fresh {
            self.names.insert(key);
        }
        self.created.insert(rel);
        Ok(())
    }

    /// Makes room for a new entry at `name`: removes what is there (a directory recursively), except that an
    /// existing directory is kept when `keep_dir`.
    fn clear(
        &mut self,
        pfd: BorrowedFd<'_>,
        name: &[u8],
        keep_dir: bool,
        entry: &[u8],
    ) -> Result<Cleared> {
        match rustix::fs::statat(pfd, name, nofollow()) {
            Err(Errno::NOENT) => Ok(Cleared::Nothing),
            Err(e) => Err(apply_err(entry, "inspect the existing file", e)),
            Ok(st) if keep_dir && FileType::from_raw_mode(st.st_mode) == FileType::Directory => {
                Ok(Cleared::KeptDir)
            }
            Ok(_) => {
                // A writer may still be filling something below it; and a cached directory may be
                // the one removed.
                self.flush()?;
                self.dcache.clear();
                remove_all(pfd, name)
                    .map(|()| Cleared::Removed)
                    .map_err(|e| apply_err(entry, "replace the existing file", e))
            }
        }
    }
}
