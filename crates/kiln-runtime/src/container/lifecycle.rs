//! Containers seen from any later process (`kiln stop`, `kill`, `wait`, `rm`): whether
//! one runs, signalling it, waiting for its exit, stopping and removing it.

use super::rootfs::remove_dirs;
use super::{ContainerDirs, Record};
use crate::error::{Result, RuntimeError};
use nix::sys::signal::Signal;
use std::fs;
use std::path::Path;
use std::str::FromStr;
use std::time::{Duration, Instant};

/// Whether a process exists and is not a zombie (a dead process whose parent has not
/// reaped it yet still has a /proc entry).
pub fn process_alive(pid: i32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .is_some_and(|zombie| !zombie)
}

/// Whether the container of `record` runs: its record says so and its first process is
/// alive (a `running` record whose process is gone was left by a kiln that died).
pub fn is_running(record: &Record) -> bool {
    record.status == "running" && record.pid.is_some_and(process_alive)
}

/// Parses a signal as `kill` takes it: `TERM`, `SIGTERM` (in any case) or `15`.
pub fn parse_signal(s: &str) -> Result<Signal> {
    let invalid = || RuntimeError::InvalidSignal { value: s.into() };
    if let Ok(n) = s.parse::<i32>() {
        return Signal::try_from(n).map_err(|_| invalid());
    }
    let up = s.to_ascii_uppercase();
    let name = if up.starts_with("SIG") {
        up
    } else {
        format!("SIG{up}")
    };
    Signal::from_str(&name).map_err(|_| invalid())
}

/// How [`wait_exit`] ended.
#[derive(Debug)]
pub enum Waited {
    /// The container's process ended: its record, with the exit code once the supervisor
    /// wrote it.
    Exited(Box<Record>),
    /// The container's record is gone (a `--rm` container removed after its exit, or
    /// `kiln rm`).
    Gone,
    /// The timeout passed and the container still runs.
    TimedOut,
}

/// Waits until the supervisor of container `id` in the store at `store_root` recorded its
/// exit, or its process is gone; `None` waits for as long as it takes.
pub fn wait_exit(store_root: &Path, id: &str, timeout: Option<Duration>) -> Waited {
    let find = || Record::list(store_root).into_iter().find(|r| r.id == id);
    let start = Instant::now();
    loop {
        let Some(r) = find() else {
            return Waited::Gone;
        };
        if !is_running(&r) {
            // Give the supervisor a moment to write the exit code.
            if r.exit_code.is_none() && start.elapsed() < timeout.unwrap_or(Duration::MAX) {
                std::thread::sleep(Duration::from_millis(20));
                if let Some(again) = find() {
                    if again.exit_code.is_some() {
                        return Waited::Exited(Box::new(again));
                    }
                }
            }
            return Waited::Exited(Box::new(r));
        }
        if timeout.is_some_and(|t| start.elapsed() >= t) {
            return Waited::TimedOut;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Stops a running container as `docker stop` does: SIGTERM, up to `timeout` for it to
/// exit, then SIGKILL and up to 10 seconds more ([`RuntimeError::NotStopped`] after
/// that). A container that does not run is left as it is.
pub fn stop(store_root: &Path, record: &Record, timeout: Duration) -> Result<()> {
    if !is_running(record) {
        return Ok(());
    }
    signal(record, Signal::SIGTERM)?;
    if let Waited::TimedOut = wait_exit(store_root, &record.id, Some(timeout)) {
        signal(record, Signal::SIGKILL)?;
        if let Waited::TimedOut = wait_exit(store_root, &record.id, Some(Duration::from_secs(10))) {
            return Err(RuntimeError::NotStopped {
                container: record.name.clone(),
            });
        }
    }
    Ok(())
}

/// Sends a signal to a container's first process.
pub fn signal(record: &Record, sig: Signal) -> Result<()> {
    let pid = record
        .pid
        .filter(|p| process_alive(*p))
        .ok_or_else(|| RuntimeError::Invalid {
            what: "container state",
            value: record.name.clone(),
            reason: "the container is not running".into(),
        })?;
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig).map_err(|e| RuntimeError::Io {
        path: format!("/proc/{pid}").into(),
        source: e.into(),
    })
}

/// Removes a container: kills its process if `force` (refusing a running one otherwise),
/// deletes its cgroup and runtime state through libcontainer, unmounts and removes its
/// directories. Works after kiln itself was killed mid-run.
pub fn remove(dirs: &ContainerDirs, record: &Record, force: bool) -> Result<()> {
    let alive = record.pid.is_some_and(process_alive);
    if alive && !force {
        return Err(RuntimeError::Invalid {
            what: "container state",
            value: record.name.clone(),
            reason: "the container is running; stop it first or use `--force`".into(),
        });
    }
    // The user-mode network stack of a container whose kiln was killed.
    if let Some(pid) = fs::read_to_string(dirs.dir.join("pasta.pid"))
        .ok()
        .and_then(|p| p.trim().parse().ok())
    {
        if crate::pasta::is_ours(pid, &dirs.dir.join("netns")) {
            crate::pasta::stop(pid);
        }
    }
    let state = dirs.state().join(&record.id);
    if let Some(rt) = &record.runtime {
        // The external runtime owns the container's state: let it kill and delete.
        let _ = std::process::Command::new(rt)
            .arg("--root")
            .arg(dirs.state())
            .args(["delete", "--force", &record.id])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    } else if state.exists() {
        if let Ok(mut c) = libcontainer::container::Container::load(state.clone()) {
            // SIGKILL first: a process that ignores SIGTERM must not keep its cgroup alive.
            let _ = c.kill(Signal::SIGKILL, true);
            let _ = c.delete(true);
        }
    } else if let (true, Some(pid)) = (alive, record.pid) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGKILL);
    }
    remove_dirs(dirs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_parse_by_name_in_any_case_or_number() {
        for s in ["TERM", "SIGTERM", "sigterm", "term", "15"] {
            assert_eq!(parse_signal(s).unwrap(), Signal::SIGTERM, "{s}");
        }
        assert_eq!(parse_signal("KILL").unwrap(), Signal::SIGKILL);
        assert_eq!(parse_signal("9").unwrap(), Signal::SIGKILL);
    }

    #[test]
    fn bad_signals_are_refused_with_the_value() {
        for s in ["bad", "SIGBAD", "0", "999", "-1", ""] {
            let e = parse_signal(s).unwrap_err();
            assert_eq!(e.to_string(), format!("invalid signal `{s}`"));
        }
    }
}
