//! Regular files: the writer threads that create small files in parallel, with their bounded queue, and
//! the creation, streaming and finishing of one file.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;

use crate::error::{apply_err, tar_err, LayerError, Result};

use super::metadata::{set_xattrs, times};
use super::resolve::remove_all;
use super::Extractor;

/// Threads writing regular files: creating files is bound by the filesystem's latency (journal,
/// block allocation), so a few writers gain even on two cores.
pub(super) const WORKERS: usize = 4;
/// Files up to this size go to the writers with their data in memory; larger ones are written by the
/// parsing thread itself, streamed.
pub(super) const SMALL_FILE: u64 = 1 << 20;
/// Bounds on what waits for the writers: jobs (each may hold a directory descriptor) and bytes.
const QUEUE_JOBS: usize = 512;
const QUEUE_BYTES: usize = 32 << 20;

/// What a writer sets on a new regular file after its data.
pub(super) struct FileMeta {
    pub(super) owner: Option<(u32, u32)>,
    pub(super) mode: u32,
    pub(super) chmod: bool,
    pub(super) mtime: (i64, u32),
    pub(super) xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

/// A regular file for the writers.
pub(super) struct FileJob {
    pub(super) dir: Arc<OwnedFd>,
    pub(super) name: Vec<u8>,
    pub(super) entry: Vec<u8>,
    pub(super) data: Vec<u8>,
    pub(super) meta: FileMeta,
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
pub(super) struct Pool {
    q: Mutex<Queue>,
    ready: Condvar,
    done: Condvar,
}

impl Pool {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.q.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn submit(&self, job: FileJob) -> Result<()> {
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
    pub(super) fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_all();
    }

    /// Writers drop what is queued and stop.
    pub(super) fn abort(&self) {
        let mut q = self.lock();
        q.jobs.clear();
        q.bytes = 0;
        q.closed = true;
        drop(q);
        self.ready.notify_all();
    }

    pub(super) fn work(&self) {
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
pub(super) fn create_file(
    dir: BorrowedFd<'_>,
    name: &[u8],
    entry: &[u8],
    mode: u32,
) -> Result<File> {
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
pub(super) fn finish_file(fd: BorrowedFd<'_>, entry: &[u8], m: &FileMeta) -> Result<()> {
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

/// Reads exactly `size` bytes of entry data into memory; a short stream is a truncated archive.
pub(super) fn read_data(entry: &[u8], data: &mut dyn Read, size: u64) -> Result<Vec<u8>> {
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

impl Extractor {
    /// Waits for the writers.
    pub(super) fn flush(&mut self) -> Result<()> {
        self.pool.flush()?;
        self.inflight.clear();
        Ok(())
    }

    /// Copies exactly `size` bytes of entry data; a short stream is a truncated archive.
    pub(super) fn copy(
        &mut self,
        entry: &[u8],
        data: &mut dyn Read,
        f: &mut File,
        size: u64,
    ) -> Result<()> {
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
}
