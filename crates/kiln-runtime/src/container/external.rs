//! Containers run by an external OCI runtime binary (`--runtime runc`).

use super::process::{block_signals, next_signal, reap, Exit};
use super::ContainerDirs;
use crate::error::{Result, RuntimeError};
use nix::sys::signal::{SigSet, Signal};
use std::path::Path;

/// Runs the bundle with an external OCI runtime binary (`--runtime runc`) in the
/// foreground: `RUNTIME --root STATE run --bundle BUNDLE ID`, signals forwarded to it
/// (runc relays them to the container). The pid reported to `on_start` is the runtime's.
pub fn run_external(
    dirs: &ContainerDirs,
    id: &str,
    runtime: &Path,
    stdio: Option<[std::os::fd::OwnedFd; 3]>,
    on_start: impl FnOnce(i32),
) -> Result<Exit> {
    let mut cmd = std::process::Command::new(runtime);
    cmd.arg("--root")
        .arg(dirs.state())
        .args(["run", "--bundle"])
        .arg(dirs.bundle())
        .arg(id);
    if let Some([i, o, e]) = stdio {
        cmd.stdin(i).stdout(o).stderr(e);
    }
    let signals = SigSet::all();
    block_signals(&signals)?;
    let spawned = cmd.spawn().map_err(RuntimeError::io(runtime));
    let result = spawned.and_then(|child| {
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        on_start(pid.as_raw());
        loop {
            if let Some(exit) = reap(pid)? {
                return Ok(exit);
            }
            let sig = next_signal(&signals)?;
            if !matches!(sig, Signal::SIGCHLD | Signal::SIGWINCH | Signal::SIGURG) {
                let _ = nix::sys::signal::kill(pid, sig);
            }
        }
    });
    let _ = signals.thread_unblock();
    result
}
