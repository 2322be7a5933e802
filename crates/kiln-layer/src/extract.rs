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

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::fs::File;
use std::hash::{Hash, Hasher};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::sync::{mpsc, Arc, Condvar, Mutex, MutexGuard};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags, Timespec, Timestamps, XattrFlags};
use rustix::io::Errno;

use crate::error::{apply_err, show, tar_err, unsafe_entry, LayerError, Result};
use crate::guard::TarGuard;
use crate::tarfmt::{clean, file_entries, join, split_last, Kind, Meta};

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

const WHITEOUT: &[u8] = b".wh.";
const OPAQUE: &[u8] = b".wh..wh..opq";
/// The xattr overlayfs reads to stop looking into lower layers below a directory.
const OPAQUE_XATTR: &str = "trusted.overlay.opaque";
/// xattrs of this prefix steer overlayfs (opaque, redirect, metacopy...): never taken from a layer.
const OVERLAY_XATTRS: &[u8] = b"trusted.overlay.";

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

/// What [`extract_mapped`] does with one path of the archive.
pub type PathMap<'a> = dyn FnMut(&[u8], PathRole) -> Option<Option<Vec<u8>>> + 'a;

/// Where a path handed to a [`PathMap`] comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PathRole {
    /// The name of a directory entry about to be applied.
    Dir,
    /// The name of any other entry about to be applied.
    Entry,
    /// The target of a hardlink entry.
    HardlinkTarget,
}

/// [`extract`], with every path first shown to `map` in clean form (`usr/bin/sh`, no `./`):
/// `None` skips the entry, `Some(None)` keeps the path, `Some(Some(p))` applies the entry
/// at `p` instead (confinement applies to `p` as to any path). Used to unpack Debian
/// packages onto a merged-/usr tree (`bin/sh` lands at `usr/bin/sh`) and to list what each
/// package installed.
pub fn extract_mapped<R: Read>(
    tar: R,
    target: &Path,
    opts: &ExtractOptions,
    map: &mut PathMap<'_>,
) -> Result<ExtractStats> {
    extract_with(tar, target, opts, Some(map))
}

/// Threads writing regular files: creating files is bound by the filesystem's latency (journal,
/// block allocation), so a few writers gain even on two cores.
const WORKERS: usize = 4;
/// Files up to this size go to the writers with their data in memory; larger ones are written by the
/// parsing thread itself, streamed.
const SMALL_FILE: u64 = 1 << 20;
/// Bounds on what waits for the writers: jobs (each may hold a directory descriptor) and bytes.
const QUEUE_JOBS: usize = 512;
const QUEUE_BYTES: usize = 32 << 20;
/// Parent directories kept open between entries.
const DIR_CACHE: usize = 128;
/// The reading thread hands the stream to the parser in chunks of this size, at most this many ahead.
const CHUNK: usize = 1 << 20;
const CHUNKS_AHEAD: usize = 8;

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

/// Reads `r` in chunks for [`ChanReader`] until its end, an error (passed on) or the parser is done.
fn pump<R: Read>(
    mut r: R,
    tx: &mpsc::SyncSender<io::Result<(Vec<u8>, usize)>>,
    back: &mpsc::Receiver<Vec<u8>>,
) {
    loop {
        let mut buf = back.try_recv().unwrap_or_else(|_| vec![0; CHUNK]);
        let mut n = 0;
        let mut end = false;
        while n < CHUNK {
            match r.read(&mut buf[n..]) {
                Ok(0) => {
                    end = true;
                    break;
                }
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            }
        }
        if n > 0 && tx.send(Ok((buf, n))).is_err() {
            return; // the parser is done (or failed)
        }
        if end {
            return;
        }
    }
}

/// The parser's side of [`pump`].
struct ChanReader {
    rx: mpsc::Receiver<io::Result<(Vec<u8>, usize)>>,
    back: mpsc::Sender<Vec<u8>>,
    cur: Option<Vec<u8>>,
    len: usize,
    pos: usize,
}

impl Read for ChanReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos == self.len {
            if let Some(b) = self.cur.take() {
                let _ = self.back.send(b);
            }
            match self.rx.recv() {
                Ok(Ok((b, n))) => {
                    self.cur = Some(b);
                    self.len = n;
                    self.pos = 0;
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => return Ok(0),
            }
        }
        let cur = self.cur.as_deref().unwrap_or_default();
        let n = buf.len().min(self.len - self.pos);
        buf[..n].copy_from_slice(&cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
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

/// A key for a name in a directory (by inode). Collisions only make extraction more careful: the
/// sets keyed by it answer "maybe" for names they do not hold.
fn name_key(ino: u64, name: &[u8]) -> u64 {
    let mut h = DefaultHasher::new();
    ino.hash(&mut h);
    name.hash(&mut h);
    h.finish()
}

/// A parent directory held open between entries.
#[derive(Clone)]
struct Dir {
    fd: Arc<OwnedFd>,
    ino: u64,
    /// Made by this extraction: every name in it was made by this extraction too, and is in `names`.
    fresh: bool,
    /// No default ACL (known for fresh directories under a root without one): a new file's mode is the
    /// mode given to `openat` less the umask.
    plain: bool,
    /// The group a new entry in it gets (its own with setgid, else ours).
    gid: u32,
}

/// What a writer sets on a new regular file after its data.
struct FileMeta {
    owner: Option<(u32, u32)>,
    mode: u32,
    chmod: bool,
    mtime: (i64, u32),
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

/// A regular file for the writers.
struct FileJob {
    dir: Arc<OwnedFd>,
    name: Vec<u8>,
    entry: Vec<u8>,
    data: Vec<u8>,
    meta: FileMeta,
}

#[derive(Default)]
struct Queue {
    jobs: VecDeque<FileJob>,
    bytes: usize,
    active: usize,
    closed: bool,
    error: Option<LayerError>,
    /// Writers waiting for a job, and whether the parser waits for room or for the end: wake-ups
    /// (futex calls) only when someone sleeps.
    idle: usize,
    waiting: bool,
}

/// The writers' queue: bounded, and flushed wherever order matters.
#[derive(Default)]
struct Pool {
    q: Mutex<Queue>,
    ready: Condvar,
    done: Condvar,
}

impl Pool {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.q.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn submit(&self, job: FileJob) -> Result<()> {
        let mut q = self.lock();
        loop {
            if let Some(e) = q.error.take() {
                return Err(e);
            }
            if q.jobs.len() < QUEUE_JOBS && q.bytes < QUEUE_BYTES {
                break;
            }
            q.waiting = true;
            q = self.done.wait(q).unwrap_or_else(|p| p.into_inner());
        }
        q.waiting = false;
        q.bytes += job.data.len();
        q.jobs.push_back(job);
        let wake = q.idle > 0;
        drop(q);
        if wake {
            self.ready.notify_one();
        }
        Ok(())
    }

    /// Waits until every submitted file is written; the first writer error, if any.
    fn flush(&self) -> Result<()> {
        let mut q = self.lock();
        while (!q.jobs.is_empty() || q.active > 0) && q.error.is_none() {
            q.waiting = true;
            q = self.done.wait(q).unwrap_or_else(|p| p.into_inner());
        }
        q.waiting = false;
        match q.error.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Writers finish what is queued, then stop.
    fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_all();
    }

    /// Writers drop what is queued and stop.
    fn abort(&self) {
        let mut q = self.lock();
        q.jobs.clear();
        q.bytes = 0;
        q.closed = true;
        drop(q);
        self.ready.notify_all();
    }

    fn work(&self) {
        loop {
            let job = {
                let mut q = self.lock();
                loop {
                    if let Some(j) = q.jobs.pop_front() {
                        q.bytes -= j.data.len();
                        q.active += 1;
                        break j;
                    }
                    if q.closed {
                        return;
                    }
                    q.idle += 1;
                    q = self.ready.wait(q).unwrap_or_else(|p| p.into_inner());
                    q.idle -= 1;
                }
            };
            let r = write_job(job);
            let mut q = self.lock();
            q.active -= 1;
            if let Err(e) = r {
                if q.error.is_none() {
                    q.error = Some(e);
                }
                q.jobs.clear();
                q.bytes = 0;
            }
            let wake = q.waiting;
            drop(q);
            if wake {
                self.done.notify_one();
            }
        }
    }
}

fn write_job(j: FileJob) -> Result<()> {
    let mut f = create_file(j.dir.as_fd(), &j.name, &j.entry, j.meta.mode)?;
    f.write_all(&j.data)
        .map_err(|e| apply_err(&j.entry, "write file", e))?;
    finish_file(f.as_fd(), &j.entry, &j.meta)
}

/// Creates a new regular file (mode without the special bits, less the umask). Something already
/// there (another extraction into the same tree got there first) is replaced.
fn create_file(dir: BorrowedFd<'_>, name: &[u8], entry: &[u8], mode: u32) -> Result<File> {
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let m = Mode::from_raw_mode(mode & 0o777);
    let fd = match rustix::fs::openat(dir, name, flags, m) {
        Err(Errno::EXIST) => {
            remove_all(dir, name).map_err(|e| apply_err(entry, "replace the existing file", e))?;
            rustix::fs::openat(dir, name, flags, m)
        }
        r => r,
    }
    .map_err(|e| apply_err(entry, "create file", e))?;
    Ok(File::from(fd))
}

/// Owner, mode, xattrs and times of a new regular file, each only where it differs from what creating
/// it gave.
fn finish_file(fd: BorrowedFd<'_>, entry: &[u8], m: &FileMeta) -> Result<()> {
    if let Some((uid, gid)) = m.owner {
        rustix::fs::fchown(
            fd,
            Some(rustix::fs::Uid::from_raw(uid)),
            Some(rustix::fs::Gid::from_raw(gid)),
        )
        .map_err(|e| apply_err(entry, "chown", e))?;
    }
    // After chown, which clears setuid/setgid.
    if m.chmod {
        rustix::fs::fchmod(fd, Mode::from_raw_mode(m.mode))
            .map_err(|e| apply_err(entry, "chmod", e))?;
    }
    set_xattrs(fd, entry, &m.xattrs)?;
    rustix::fs::futimens(fd, &times(m.mtime.0, m.mtime.1))
        .map_err(|e| apply_err(entry, "set times", e))
}

/// Best effort: an xattr the filesystem or our privileges refuse is dropped, as Docker does.
fn set_xattrs(fd: BorrowedFd<'_>, entry: &[u8], xattrs: &[(Vec<u8>, Vec<u8>)]) -> Result<()> {
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

/// Reads exactly `size` bytes of entry data into memory; a short stream is a truncated archive.
fn read_data(entry: &[u8], data: &mut dyn Read, size: u64) -> Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(size as usize);
    data.take(size)
        .read_to_end(&mut buf)
        .map_err(|e| tar_err(entry, "cannot read data of entry", e))?;
    if (buf.len() as u64) < size {
        let e = io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("{} of {size} bytes missing", size - buf.len() as u64),
        );
        return Err(tar_err(entry, "truncated data of entry", e));
    }
    Ok(buf)
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
    names: HashSet<u64>,
    /// [`name_key`]s of the files handed to the writers since they last finished everything.
    inflight: HashSet<u64>,
    euid: u32,
    egid: u32,
    umask: Option<u32>,
}

fn nofollow() -> AtFlags {
    AtFlags::SYMLINK_NOFOLLOW
}

fn times(mtime: i64, nsec: u32) -> Timestamps {
    let t = Timespec {
        tv_sec: mtime,
        tv_nsec: nsec.into(),
    };
    Timestamps {
        last_access: t,
        last_modification: t,
    }
}

/// What [`Extractor::clear`] found at a name.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Cleared {
    Nothing,
    /// A directory, kept.
    KeptDir,
    /// Something (in overlay mode: of this layer, which hid the lower path) that was removed.
    Removed,
}

/// Whether `st` is an overlayfs whiteout: a character device 0/0.
fn is_whiteout(st: &rustix::fs::Stat) -> bool {
    FileType::from_raw_mode(st.st_mode) == FileType::CharacterDevice && st.st_rdev == 0
}

/// Marks a directory (a real, not `O_PATH`, descriptor) opaque for overlayfs.
fn set_opaque(dir: BorrowedFd<'_>, entry: &[u8]) -> Result<()> {
    rustix::fs::fsetxattr(dir, OPAQUE_XATTR, b"y", XattrFlags::empty()).map_err(|e| {
        apply_err(
            entry,
            "set xattr trusted.overlay.opaque on its directory (overlay snapshots need root: \
             CAP_SYS_ADMIN, on a filesystem with trusted xattrs)",
            e,
        )
    })
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
    fn note_empty_root(&mut self) {
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

    /// Waits for the writers.
    fn flush(&mut self) -> Result<()> {
        self.pool.flush()?;
        self.inflight.clear();
        Ok(())
    }

    /// The parent directory of an entry, from the cache or resolved (and made) in the root.
    fn parent_dir(&mut self, rel: &[u8], entry: &[u8]) -> Result<Dir> {
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

    /// The group an entry created in the directory `st` gets.
    fn new_gid(&self, st: &rustix::fs::Stat) -> u32 {
        if st.st_mode & 0o2000 != 0 {
            st.st_gid
        } else {
            self.egid
        }
    }

    /// The owner to set on an entry just created in `dir`, if creating it did not give it already.
    fn owner_change(&self, m: &Meta, dir: &Dir) -> Result<Option<(u32, u32)>> {
        if !self.same_owner {
            return Ok(None);
        }
        let (uid, gid) = (owner_id(m, m.uid)?, owner_id(m, m.gid)?);
        Ok((uid != self.euid || gid != dir.gid).then_some((uid, gid)))
    }

    /// Whether a file created in `dir` with `mode` needs a chmod to have exactly `mode`.
    fn needs_chmod(&self, mode: u32, dir: &Dir) -> bool {
        mode & 0o7000 != 0 || !dir.plain || self.umask.is_none_or(|u| mode & 0o777 & u != 0)
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
    fn xattrs(&self, fd: BorrowedFd<'_>, m: &Meta) -> Result<()> {
        set_xattrs(fd, &m.path, &m.xattrs)
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

    fn whiteout(&mut self, entry: &[u8], parent: &[u8], wh: &[u8]) -> Result<()> {
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

    /// Sets directory modes and mtimes once the layer is complete. A directory that a later entry replaced
    /// or removed is skipped; `O_NOFOLLOW` keeps a symlink put in its place from redirecting the change.
    fn finish_dirs(&mut self) {
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

/// Whether snapshots extracted with [`Whiteouts::Overlay`] into directories under `dir` can be stacked with
/// overlayfs here: the kernel has overlayfs (listed in `/proc/filesystems`, or available as a module), and
/// this process can record whiteouts on `dir`'s filesystem (a 0/0 character device: CAP_MKNOD; the
/// `trusted.overlay.opaque` xattr: CAP_SYS_ADMIN and a filesystem with trusted xattrs). It probes in a
/// temporary directory under `dir`, removed after; the error names the requirement that failed. It does
/// not mount anything.
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
