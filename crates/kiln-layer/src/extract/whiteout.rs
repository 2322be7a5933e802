//! Whiteouts: applied onto the lower layers ([`Whiteouts::Apply`]) or recorded for overlayfs
//! ([`Whiteouts::Overlay`]), and the check that overlay snapshots can be made here.
//!
//! [`Whiteouts::Apply`]: super::Whiteouts::Apply
//! [`Whiteouts::Overlay`]: super::Whiteouts::Overlay

use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;

use rustix::fs::{FileType, Mode, OFlags, XattrFlags};
use rustix::io::Errno;

use crate::error::{apply_err, show, unsafe_entry, LayerError, Result};
use crate::tarfmt::join;

use super::resolve::{list, nofollow, remove_all};
use super::Extractor;

pub(super) const WHITEOUT: &[u8] = b".wh.";
const OPAQUE: &[u8] = b".wh..wh..opq";
/// The xattr overlayfs reads to stop looking into lower layers below a directory.
const OPAQUE_XATTR: &str = "trusted.overlay.opaque";

/// Whether `st` is an overlayfs whiteout: a character device 0/0.
pub(super) fn is_whiteout(st: &rustix::fs::Stat) -> bool {
    FileType::from_raw_mode(st.st_mode) == FileType::CharacterDevice && st.st_rdev == 0
}

/// Marks a directory (a real, not `O_PATH`, descriptor) opaque for overlayfs.
pub(super) fn set_opaque(dir: BorrowedFd<'_>, entry: &[u8]) -> Result<()> {
    rustix::fs::fsetxattr(dir, OPAQUE_XATTR, b"y", XattrFlags::empty()).map_err(|e| {
        apply_err(
            entry,
            "set xattr trusted.overlay.opaque on its directory (overlay snapshots need root: \
             CAP_SYS_ADMIN, on a filesystem with trusted xattrs)",
            e,
        )
    })
}

impl Extractor {
    pub(super) fn whiteout(&mut self, entry: &[u8], parent: &[u8], wh: &[u8]) -> Result<()> {
        if self.overlay {
            return self.overlay_whiteout(entry, parent, wh);
        }
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

    /// Records a whiteout for overlayfs in this layer's own snapshot: a 0/0 character device, or the opaque
    /// xattr on the directory. Missing directories on the way are created, as the marker must sit at the
    /// path the lower layers use.
    fn overlay_whiteout(&mut self, entry: &[u8], parent: &[u8], wh: &[u8]) -> Result<()> {
        let opaque = wh == &OPAQUE[WHITEOUT.len()..];
        if !opaque && wh.starts_with(WHITEOUT) {
            return Ok(()); // aufs bookkeeping, not whiteouts
        }
        if wh.is_empty() || wh == b"." || wh == b".." {
            return Err(unsafe_entry(
                entry,
                "whiteout names no file in its directory",
            ));
        }
        let root_opaque = || {
            Err(LayerError::Unsupported {
                entry: show(entry),
                reason:
                    "an opaque marker on the layer root cannot be recorded for overlayfs, which \
                         ignores it on a lower layer's root; flatten this layer (Whiteouts::Apply)"
                        .to_string(),
            })
        };
        if opaque && parent.is_empty() {
            return root_opaque();
        }
        let pfd = match self.resolve(parent, OFlags::PATH) {
            Ok(fd) => fd,
            // A non-directory of this layer (a whiteout included) on the way already hides all below it.
            Err(Errno::NOTDIR) => return Ok(()),
            Err(Errno::NOENT) => self.parent(parent, entry)?,
            Err(e) => return Err(apply_err(entry, "open the whiteout's directory", e)),
        };
        let dir_flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        if opaque {
            let d = rustix::fs::openat(&pfd, ".", dir_flags, Mode::empty())
                .map_err(|e| apply_err(entry, "open the whiteout's directory", e))?;
            // A symlink of this layer may have led back to the root.
            let (st, rst) = (rustix::fs::fstat(&d), rustix::fs::fstat(&self.root));
            if let (Ok(st), Ok(rst)) = (st, rst) {
                if (st.st_dev, st.st_ino) == (rst.st_dev, rst.st_ino) {
                    return root_opaque();
                }
            }
            return set_opaque(d.as_fd(), entry);
        }
        match rustix::fs::statat(&pfd, wh, nofollow()) {
            Err(Errno::NOENT) => {}
            // This layer's directory stays (a whiteout only hides lower layers), but not the lower
            // directory it would merge with.
            Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {
                let d = rustix::fs::openat(&pfd, wh, dir_flags | OFlags::NOFOLLOW, Mode::empty())
                    .map_err(|e| apply_err(entry, "open the whited-out directory", e))?;
                return set_opaque(d.as_fd(), entry);
            }
            // Something of this layer is there already, and it hides the lower path by itself.
            Ok(_) => return Ok(()),
            Err(e) => return Err(apply_err(entry, "inspect the existing file", e)),
        }
        rustix::fs::mknodat(
            &pfd,
            wh,
            FileType::CharacterDevice,
            Mode::empty(),
            rustix::fs::makedev(0, 0),
        )
        .map_err(|e| {
            apply_err(
                entry,
                "create the overlay whiteout, a 0/0 character device (needs root: CAP_MKNOD)",
                e,
            )
        })
    }

    /// Removes `name` (clean path `rel`) and everything below it, sparing what this layer created: a
    /// directory this layer made or wrote into stays, with only its lower children pruned (OCI: a whiteout
    /// hides lower layers only; overlayfs gives the same view with the directory opaque).
    fn remove_lower(&self, dfd: BorrowedFd<'_>, name: &[u8], rel: &[u8]) -> io::Result<()> {
        let prefix = join(rel, b"");
        let below = self
            .created
            .range(prefix.clone()..)
            .next()
            .is_some_and(|p| p.starts_with(&prefix));
        if !below && !self.created.contains(rel) {
            return remove_all(dfd, name);
        }
        // This layer made it or wrote below: keep it; a directory loses only its lower children.
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
}

/// Whether snapshots extracted with [`Whiteouts::Overlay`] into directories under `dir` can be stacked with
/// overlayfs here: the kernel has overlayfs (listed in `/proc/filesystems`, or available as a module), and
/// this process can record whiteouts on `dir`'s filesystem (a 0/0 character device: CAP_MKNOD; the
/// `trusted.overlay.opaque` xattr: CAP_SYS_ADMIN and a filesystem with trusted xattrs). It probes in a
/// temporary directory under `dir`, removed after; the error names the requirement that failed. It does
/// not mount anything.
///
/// [`Whiteouts::Overlay`]: super::Whiteouts::Overlay
pub fn overlay_supported(dir: &Path) -> Result<()> {
    let io_err = |path: &Path, action: &'static str, source: io::Error| LayerError::Io {
        path: path.to_path_buf(),
        action,
        source,
    };
    let fs_list = Path::new("/proc/filesystems");
    let listed = std::fs::read_to_string(fs_list)
        .map_err(|e| io_err(fs_list, "read", e))?
        .lines()
        .any(|l| l.split_whitespace().last() == Some("overlay"));
    if !listed {
        // Not loaded yet: a mount would load the module, if the kernel has it.
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        let module = Path::new("/lib/modules")
            .join(release.trim())
            .join("kernel/fs/overlayfs");
        if release.trim().is_empty() || !module.is_dir() {
            return Err(io_err(
                fs_list,
                "find overlayfs (not built in, no `overlay` module) in",
                io::Error::new(io::ErrorKind::NotFound, "no overlay filesystem"),
            ));
        }
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let probe = dir.join(format!(
        ".kiln-overlay-probe-{}-{nanos}",
        std::process::id()
    ));
    rustix::fs::mkdir(&probe, Mode::from_raw_mode(0o700))
        .map_err(|e| io_err(dir, "create a probe directory in", e.into()))?;
    let result = (|| {
        let d = rustix::fs::open(
            &probe,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| io_err(&probe, "open", e.into()))?;
        rustix::fs::mknodat(
            &d,
            "wh",
            FileType::CharacterDevice,
            Mode::empty(),
            rustix::fs::makedev(0, 0),
        )
        .map_err(|e| {
            io_err(
                dir,
                "create an overlay whiteout (a 0/0 character device: needs CAP_MKNOD) in",
                e.into(),
            )
        })?;
        rustix::fs::fsetxattr(&d, OPAQUE_XATTR, b"y", XattrFlags::empty()).map_err(|e| {
            io_err(
                dir,
                "set xattr trusted.overlay.opaque (needs CAP_SYS_ADMIN and trusted xattrs) in",
                e.into(),
            )
        })
    })();
    let _ = remove_all(rustix::fs::CWD, probe.as_os_str().as_encoded_bytes());
    result
}
