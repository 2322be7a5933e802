//! Network namespaces made by kiln before the container starts, so that loopback is up
//! (as in Docker's `none` network) and user-mode networking can attach before the
//! application runs.

use crate::error::{Result, RuntimeError};
use nix::mount::{mount, MsFlags};
use std::fs;
use std::path::Path;

fn err(what: &str, e: impl std::fmt::Display) -> RuntimeError {
    RuntimeError::Io {
        path: what.into(),
        source: std::io::Error::other(e.to_string()),
    }
}

/// Brings `lo` up in the calling thread's network namespace.
fn loopback_up() -> std::io::Result<()> {
    // SAFETY: plain socket/ioctl calls on a zeroed ifreq whose name is set below.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let mut req: libc::ifreq = std::mem::zeroed();
        for (i, b) in b"lo\0".iter().enumerate() {
            req.ifr_name[i] = *b as libc::c_char;
        }
        let mut res = libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut req);
        if res == 0 {
            req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
            res = libc::ioctl(fd, libc::SIOCSIFFLAGS, &req);
        }
        let e = std::io::Error::last_os_error();
        libc::close(fd);
        if res != 0 {
            return Err(e);
        }
    }
    Ok(())
}

/// Creates a network namespace with loopback up and pins it at `path` (a bind mount in
/// the caller's mount namespace). Done in a short-lived child so the caller's own
/// namespace never changes.
pub fn create(path: &Path) -> Result<()> {
    fs::write(path, b"").map_err(RuntimeError::io(path))?;
    let (ready_r, ready_w) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| err("pipe", e))?;
    let (done_r, done_w) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| err("pipe", e))?;
    // SAFETY: the child only makes syscalls and exits; the caller is single-threaded here.
    match unsafe { nix::unistd::fork() }.map_err(|e| err("fork", e))? {
        nix::unistd::ForkResult::Child => {
            drop(ready_r);
            drop(done_w);
            let ok = nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).is_ok()
                && loopback_up().is_ok();
            let _ = nix::unistd::write(&ready_w, if ok { b"1" } else { b"0" });
            // Stay until the parent has pinned the namespace.
            let mut b = [0u8; 1];
            let _ = nix::unistd::read(std::os::fd::AsRawFd::as_raw_fd(&done_r), &mut b);
            // SAFETY: leaving the forked child without running the parent's destructors.
            unsafe { libc::_exit(0) };
        }
        nix::unistd::ForkResult::Parent { child } => {
            drop(ready_w);
            drop(done_r);
            let mut b = [0u8; 1];
            let n =
                nix::unistd::read(std::os::fd::AsRawFd::as_raw_fd(&ready_r), &mut b).unwrap_or(0);
            let result = if n == 1 && b[0] == b'1' {
                mount(
                    Some(format!("/proc/{child}/ns/net").as_str()),
                    path,
                    None::<&str>,
                    MsFlags::MS_BIND,
                    None::<&str>,
                )
                .map_err(|e| err("bind mount of the network namespace", e))
            } else {
                Err(err(
                    "network namespace",
                    "cannot create it or bring loopback up",
                ))
            };
            drop(done_w);
            let _ = nix::sys::wait::waitpid(child, None);
            result
        }
    }
}
