//! Safe extraction of one layer onto a directory that may hold lower layers.
//!
//! Confinement works like Docker's: entry paths are cleaned lexically as if rooted at `/` (a `..` above the
//! root stays at the root), the parent directory is opened with `openat2(RESOLVE_IN_ROOT)` so that every
//! symlink on the way, absolute or relative, resolves as if `target` were `/`, and the last component is
//! handled with `*at` calls that never follow it. Nothing outside `target` can be created, changed or
//! removed, whatever earlier entries or lower layers planted there.
//!
//! Whiteouts are either applied ([`Whiteouts::Apply`]: the target holds the lower layers and loses what the
//! layer deletes) or recorded the way overlayfs reads them ([`Whiteouts::Overlay`]: the target is the
//! layer's own empty snapshot directory, later stacked as an overlayfs `lowerdir`, as containerd's overlay
//! snapshotter does).

mod files;
mod kinds;
mod mapped;
mod metadata;
mod resolve;
mod stream;
mod whiteout;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::{mpsc, Arc};

use rustix::fs::{Mode, OFlags};

use crate::error::{LayerError, Result};
use crate::guard::TarGuard;
use crate::tarfmt::{clean, file_entries, Kind};

use files::{Pool, WORKERS};
use resolve::Dir;
use stream::{pump, ChanReader, CHUNKS_AHEAD};

pub use mapped::{extract_mapped, PathMap, PathRole};
pub use whiteout::overlay_supported;

/// What extraction does with the whiteouts (`.wh.NAME`, `.wh..wh..opq`) of a layer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Whiteouts {
    /// Delete what lower layers put there (target holds the lower layers): flattening.
    #[default]
    Apply,
    /// Record them as overlayfs does (target is an empty per-layer directory): `.wh.NAME` becomes a
    /// character device 0/0 named NAME; `.wh..wh..opq` sets xattr `trusted.overlay.opaque` = `y` on
    /// its directory (creating the directory if the layer has no entry for it).
    ///
    /// Needs root (CAP_MKNOD for whiteouts, CAP_SYS_ADMIN for `trusted.*` xattrs) and a filesystem with
    /// trusted xattrs; see [`overlay_supported`]. A missing marker would show deleted files, so failing
    /// to record one is an error, never skipped. Within one layer, an entry replacing a non-directory (a
    /// whiteout included) with a directory, or a directory that the layer's own whiteout names, is marked
    /// opaque too, so the stacked view equals [`Whiteouts::Apply`] of the same layers.
    Overlay,
}

/// How layers are extracted.
#[derive(Clone, Debug)]
pub struct ExtractOptions {
    /// chown entries to their uid/gid (true when running as root; when false ownership is left as the caller's)
    pub same_owner: bool,
    /// Apply whiteouts onto lower layers (the default), or record them for overlayfs.
    pub whiteouts: Whiteouts,
}

impl Default for ExtractOptions {
    fn default() -> Self {
        ExtractOptions {
            same_owner: rustix::process::geteuid().is_root(),
            whiteouts: Whiteouts::Apply,
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

/// Applies one layer (an uncompressed tar stream) onto `target`, which may already hold lower layers.
///
/// The stream must be well formed up to its end: a cut inside a header or inside file data is an error.
/// Like Go's `archive/tar` (and so Docker), a stream that ends exactly between two entries without the
/// zero blocks is accepted; the digest of the blob is what proves it complete.
///
/// Privileges: ownership needs root (or `same_owner: false`); device nodes need CAP_MKNOD and are skipped
/// without it; `security.capability` and other privileged xattrs are dropped when refused. Without root, a
/// lower layer's read-only directory cannot receive new entries. Sub-second PAX mtimes are kept.
///
/// Speed: the stream is read (and so decompressed) on the calling thread while another thread parses the
/// tar and creates directories, links and the like in archive order, and a few writer threads create
/// the regular files (directories first, file data in parallel, directory metadata after). Whatever
/// a later entry could conflict with (a path a writer has not finished, a replacement, a hardlink,
/// a whiteout) waits for the writers first, so the tree is the one a serial extraction makes. The
/// reading thread may read a little past the end of the archive (at most a few MiB): callers that
/// need the rest of the stream hash it as it is read, as snapshots do.
///
/// xattrs named `trusted.overlay.*` in the layer are dropped: they would steer overlayfs.
///
/// With [`Whiteouts::Overlay`], `target` should be an empty directory (mode 0755: overlayfs shows the
/// topmost snapshot root's own metadata when the layer has no `./` entry). Differences with flattening
/// that come from overlayfs itself (containerd and Docker have them too): a directory the layer creates
/// implicitly (a parent with no entry of its own) is 0755, owned by the caller, and shadows the lower
/// directory's metadata; a path written through a lower layer's symlink becomes a directory that shadows
/// the symlink; a hardlink to a lower layer's file is refused (its target is not in the snapshot); an
/// opaque marker at the layer root is refused, as overlayfs ignores it on a lower root.
pub fn extract<R: Read>(tar: R, target: &Path, opts: &ExtractOptions) -> Result<ExtractStats> {
    extract_with(tar, target, opts, None)
}

/// The extraction loop; without a map, paths are taken as they are (no extra cleaning on
/// the pull and load path).
fn extract_with<R: Read>(
    tar: R,
    target: &Path,
    opts: &ExtractOptions,
    map: Option<&mut PathMap<'_>>,
) -> Result<ExtractStats> {
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
        overlay: opts.whiteouts == Whiteouts::Overlay,
        created: BTreeSet::new(),
        dirs: Vec::new(),
        stats: ExtractStats::default(),
        buf: vec![0; 256 * 1024],
        pool: Arc::new(Pool::default()),
        dcache: HashMap::new(),
        fresh: HashMap::new(),
        names: HashSet::new(),
        inflight: HashSet::new(),
        euid: rustix::process::geteuid().as_raw(),
        egid: rustix::process::getegid().as_raw(),
        umask: umask(),
    };
    x.note_empty_root();
    match map {
        Some(map) => run(tar, &mut x, Some(map))?,
        None => {
            // Reading (decompressing, hashing) here, parsing and applying on a thread of its own.
            let (tx, rx) = mpsc::sync_channel(CHUNKS_AHEAD);
            let (back_tx, back_rx) = mpsc::channel();
            let xr = &mut x;
            std::thread::scope(|s| {
                let parser = s.spawn(move || {
                    let r = ChanReader {
                        rx,
                        back: back_tx,
                        cur: None,
                        len: 0,
                        pos: 0,
                    };
                    run(r, xr, None)
                });
                pump(tar, &tx, &back_rx);
                drop(tx);
                parser
                    .join()
                    .unwrap_or_else(|p| std::panic::resume_unwind(p))
            })?;
        }
    }
    Ok(x.stats)
}

/// Parses the tar and applies its entries, with the writers running; then the directories' metadata.
fn run<R: Read>(tar: R, x: &mut Extractor, mut map: Option<&mut PathMap<'_>>) -> Result<()> {
    let pool = x.pool.clone();
    std::thread::scope(|s| {
        for _ in 0..WORKERS {
            let p = &*pool;
            s.spawn(move || p.work());
        }
        let r = (|| {
            let mut ar = tar::Archive::new(TarGuard::new(tar));
            for e in file_entries(&mut ar)? {
                let (mut e, mut m) = e?;
                if let Some(map) = map.as_deref_mut() {
                    let role = if m.kind == Kind::Dir {
                        PathRole::Dir
                    } else {
                        PathRole::Entry
                    };
                    match map(&clean(&m.path).0, role) {
                        None => continue,
                        Some(None) => {}
                        Some(Some(p)) => m.path = p,
                    }
                    if m.kind == Kind::Link {
                        match map(&clean(&m.link).0, PathRole::HardlinkTarget) {
                            None => continue,
                            Some(None) => {}
                            Some(Some(p)) => m.link = p,
                        }
                    }
                }
                x.stats.entries += 1;
                x.apply(&m, &mut e)?;
            }
            x.flush()
        })();
        if r.is_err() {
            pool.abort();
        } else {
            pool.close();
        }
        r
    })?;
    x.finish_dirs();
    Ok(())
}

/// The process umask, read without changing it (`umask(2)` would race with other threads).
fn umask() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let v = status.lines().find_map(|l| l.strip_prefix("Umask:"))?;
    u32::from_str_radix(v.trim(), 8).ok()
}

struct Extractor {
    /// `O_PATH` descriptor of the target: the root every resolution is confined to.
    root: OwnedFd,
    same_owner: bool,
    /// Record whiteouts for overlayfs instead of applying them.
    overlay: bool,
    /// Clean paths this layer created, which its own whiteouts must spare (OCI: a whiteout only hides lower
    /// layers).
    created: BTreeSet<Vec<u8>>,
    /// Directories whose mode and mtime are set after the layer: their children change the mtime, and a
    /// read-only mode would stop a non-root caller from filling them.
    dirs: Vec<(Vec<u8>, u32, i64, u32)>,
    stats: ExtractStats,
    buf: Vec<u8>,
    /// The writers of regular files.
    pool: Arc<Pool>,
    /// Parent directories by clean path, resolved in the root. Emptied whenever something is removed
    /// or replaced (a path could then lead elsewhere).
    dcache: HashMap<Vec<u8>, Dir>,
    /// Directories this extraction made (by inode), and whether they are `plain` (see [`Dir`]).
    fresh: HashMap<u64, bool>,
    /// [`name_key`]s of the names made in fresh directories.
    ///
    /// [`name_key`]: resolve::name_key
    names: HashSet<u64>,
    /// [`name_key`]s of the files handed to the writers since they last finished everything.
    ///
    /// [`name_key`]: resolve::name_key
    inflight: HashSet<u64>,
    euid: u32,
    egid: u32,
    umask: Option<u32>,
}
