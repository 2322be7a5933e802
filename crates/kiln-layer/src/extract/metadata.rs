//! Metadata of what extraction makes: owners, modes, xattrs and times, and the directories' modes and
//! mtimes set once the layer is complete.

use std::os::fd::BorrowedFd;

use rustix::fs::{Mode, OFlags, Timespec, Timestamps, XattrFlags};
use rustix::io::Errno;

use crate::error::{apply_err, show, LayerError, Result};
use crate::tarfmt::Meta;

use super::resolve::{nofollow, Dir};
use super::Extractor;

/// xattrs of this prefix steer overlayfs (opaque, redirect, metacopy...): never taken from a layer.
const OVERLAY_XATTRS: &[u8] = b"trusted.overlay.";

/// Best effort: an xattr the filesystem or our privileges refuse is dropped, as Docker does.
pub(super) fn set_xattrs(
    fd: BorrowedFd<'_>,
    entry: &[u8],
    xattrs: &[(Vec<u8>, Vec<u8>)],
) -> Result<()> {
    for (name, value) in xattrs {
        if name.starts_with(OVERLAY_XATTRS) {
            continue;
        }
        match rustix::fs::fsetxattr(fd, &name[..], value, XattrFlags::empty()) {
            Ok(()) => {}
            Err(e) if xattr_best_effort(e) => {}
            Err(e) => return Err(apply_err(entry, "set extended attribute", e)),
        }
    }
    Ok(())
}

pub(super) fn times(mtime: i64, nsec: u32) -> Timestamps {
    let t = Timespec {
        tv_sec: mtime,
        tv_nsec: nsec.into(),
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
    /// The group an entry created in the directory `st` gets.
    pub(super) fn new_gid(&self, st: &rustix::fs::Stat) -> u32 {
        if st.st_mode & 0o2000 != 0 {
            st.st_gid
        } else {
            self.egid
        }
    }

    /// The owner to set on an entry just created in `dir`, if creating it did not give it already.
    pub(super) fn owner_change(&self, m: &Meta, dir: &Dir) -> Result<Option<(u32, u32)>> {
        if !self.same_owner {
            return Ok(None);
        }
        let (uid, gid) = (owner_id(m, m.uid)?, owner_id(m, m.gid)?);
        Ok((uid != self.euid || gid != dir.gid).then_some((uid, gid)))
    }

    /// Whether a file created in `dir` with `mode` needs a chmod to have exactly `mode`.
    pub(super) fn needs_chmod(&self, mode: u32, dir: &Dir) -> bool {
        mode & 0o7000 != 0 || !dir.plain || self.umask.is_none_or(|u| mode & 0o777 & u != 0)
    }

    /// chown without following: `name` empty means `fd` itself.
    pub(super) fn chown(&self, fd: BorrowedFd<'_>, name: &[u8], m: &Meta) -> Result<()> {
        if !self.same_owner {
            return Ok(());
        }
        let (uid, gid) = (
            rustix::fs::Uid::from_raw(owner_id(m, m.uid)?),
            rustix::fs::Gid::from_raw(owner_id(m, m.gid)?),
        );
        let r = if name.is_empty() {
            rustix::fs::fchown(fd, Some(uid), Some(gid))
        } else {
            rustix::fs::chownat(fd, name, Some(uid), Some(gid), nofollow())
        };
        r.map_err(|e| apply_err(&m.path, "chown", e))
    }

    /// Best effort: an xattr the filesystem or our privileges refuse is dropped, as Docker does.
    pub(super) fn xattrs(&self, fd: BorrowedFd<'_>, m: &Meta) -> Result<()> {
        set_xattrs(fd, &m.path, &m.xattrs)
    }

    /// Sets directory modes and mtimes once the layer is complete. A directory that a later entry replaced
    /// or removed is skipped; `O_NOFOLLOW` keeps a symlink put in its place from redirecting the change.
    pub(super) fn finish_dirs(&mut self) {
        for (rel, mode, mtime, nsec) in std::mem::take(&mut self.dirs) {
            let Ok(fd) = self.resolve(&rel, OFlags::RDONLY | OFlags::NOFOLLOW) else {
                continue;
            };
            // Errors are ignored: the tree is complete, only its metadata would be off.
            let _ = rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode));
            let _ = rustix::fs::futimens(&fd, &times(mtime, nsec));
        }
    }
}

/// An owner id of an entry, which must fit in 32 bits.
fn owner_id(m: &Meta, v: u64) -> Result<u32> {
    u32::try_from(v).map_err(|_| LayerError::Unsupported {
        entry: show(&m.path),
        reason: format!("owner id {v} does not fit in 32 bits"),
    })
}
