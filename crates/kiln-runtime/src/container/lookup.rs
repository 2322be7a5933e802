//! Finding files inside a container's root filesystem without leaving it: the command
//! execvp will run, and account databases such as /etc/passwd.

use std::fs;
use std::path::Path;

/// The paths execvp tries for `cmd`, in order: the path itself (relative to `cwd`), or
/// each directory of `PATH`.
pub fn exec_candidates(cmd: &str, path_env: &str, cwd: &str) -> Vec<String> {
    if cmd.contains('/') {
        vec![if cmd.starts_with('/') {
            cmd.to_string()
        } else {
            format!("{}/{cmd}", cwd.trim_end_matches('/'))
        }]
    } else {
        path_env
            .split(':')
            .filter(|d| !d.is_empty())
            .map(|d| format!("{}/{cmd}", d.trim_end_matches('/')))
            .collect()
    }
}

/// Finds `cmd` the way execvp will inside the container: as a path, or in `PATH`.
/// Resolution stays inside `rootfs` (symlinks resolved as if it were `/`).
pub fn find_executable(rootfs: &Path, cmd: &str, path_env: &str, cwd: &str) -> Lookup {
    let candidates = exec_candidates(cmd, path_env, cwd);
    let Ok(root) = rustix::fs::open(
        rootfs,
        rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY,
        rustix::fs::Mode::empty(),
    ) else {
        return Lookup::NotFound;
    };
    let mut found_not_executable = false;
    for c in candidates {
        let rel = c.trim_start_matches('/');
        let how = rustix::fs::ResolveFlags::IN_ROOT | rustix::fs::ResolveFlags::NO_MAGICLINKS;
        let Ok(fd) = rustix::fs::openat2(
            &root,
            rel,
            rustix::fs::OFlags::PATH,
            rustix::fs::Mode::empty(),
            how,
        ) else {
            continue;
        };
        match rustix::fs::fstat(&fd) {
            Ok(st) if (st.st_mode & libc::S_IFMT) == libc::S_IFREG && st.st_mode & 0o111 != 0 => {
                return Lookup::Found
            }
            Ok(_) => found_not_executable = true,
            Err(_) => {}
        }
    }
    if found_not_executable {
        Lookup::NotExecutable
    } else {
        Lookup::NotFound
    }
}

/// What [`find_executable`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// A regular file with an execute bit is there.
    Found,
    /// No candidate path exists (Docker's exit code 127).
    NotFound,
    /// A candidate exists but is no executable regular file (Docker's exit code 126).
    NotExecutable,
}

/// The most [`read_in_root`] reads: account databases are kilobytes.
pub const READ_IN_ROOT_CAP: u64 = 16 << 20;

/// Reads a regular file of a root filesystem (at most [`READ_IN_ROOT_CAP`] bytes),
/// resolving symlinks inside it (an image's /etc/passwd may be a symlink; it must never
/// reach the host's files). A FIFO or device there is not opened for reading.
pub fn read_in_root(rootfs: &Path, path: &str) -> Option<String> {
    use rustix::fs::{openat2, Mode, OFlags, ResolveFlags};
    let root = rustix::fs::open(rootfs, OFlags::PATH | OFlags::DIRECTORY, Mode::empty()).ok()?;
    let fd = openat2(
        &root,
        path.trim_start_matches('/'),
        OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NONBLOCK | OFlags::NOCTTY,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    )
    .ok()?;
    let file = fs::File::from(fd);
    if !file.metadata().ok()?.is_file() {
        return None;
    }
    let mut s = String::new();
    std::io::Read::read_to_string(&mut std::io::Read::take(file, READ_IN_ROOT_CAP), &mut s).ok()?;
    Some(s)
}
