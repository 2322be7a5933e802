//! A container's process in the foreground: created and started through libcontainer,
//! signals forwarded, its exit status reaped and returned, and the standard streams it
//! gets.

use super::confine::{prepare_config, Confined};
use super::{lib_error, ContainerDirs};
use crate::error::{Result, RuntimeError};
use libcontainer::container::builder::ContainerBuilder;
use libcontainer::syscall::syscall::SyscallType;
use nix::sys::signal::{SigSet, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use std::fs;

/// What a signal sent to kiln does to the container it waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnSignal {
    /// Passed on (`kiln run`: the application decides).
    Forward,
    /// SIGINT, SIGTERM, SIGHUP and SIGQUIT kill the container (a build step being
    /// cancelled: its PID 1 may ignore them); others are passed on.
    Kill,
}

/// How a container ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// It exited by itself with this status (0-255).
    Code(i32),
    /// It was killed by this signal number.
    Signal(i32),
}

impl Exit {
    /// The shell convention Docker follows: the code, or 128 + the signal.
    pub fn code(self) -> i32 {
        match self {
            Exit::Code(c) => c,
            Exit::Signal(s) => 128 + s,
        }
    }
}

/// Creates and starts the container of `dirs` (config.json already in the bundle) and
/// waits for it in the foreground, forwarding signals. The container is deleted
/// (cgroup, state) before returning.
/// `stdio` replaces the inherited standard input, output and error (a detached container
/// gets /dev/null and the pipes of its log).
/// `before_start` runs once the container is created and before
/// its process starts (what must be ready for the application, such as its network, is
/// waited for there, while the container was being made).
pub fn run_foreground(
    dirs: &ContainerDirs,
    id: &str,
    stdio: Option<[std::os::fd::OwnedFd; 3]>,
    terminal: bool,
    on_signal: OnSignal,
    before_start: impl FnOnce() -> Result<()>,
    on_start: impl FnOnce(i32),
) -> Result<Exit> {
    let lib = |e| lib_error(dirs, e);
    let filter = prepare_config(dirs)?;
    become_subreaper()?;
    let mut builder = ContainerBuilder::new(id.to_string(), SyscallType::default());
    let mut console_path = None;
    // With a terminal, the container's init sends us the master side of its pty over a
    // console socket while it is being created: accept it on a thread meanwhile.
    let console = if terminal {
        // Unix socket paths are limited to 108 bytes: a short one in the temp dir.
        let path =
            std::env::temp_dir().join(format!("kiln-console-{}.sock", &id[..id.len().min(16)]));
        let _ = fs::remove_file(&path);
        let listener =
            std::os::unix::net::UnixListener::bind(&path).map_err(RuntimeError::io(&path))?;
        builder = builder.with_console_socket(Some(&path));
        console_path = Some(path);
        Some(crate::tty::accept_master(listener)?)
    } else {
        if let Some([i, o, e]) = stdio {
            builder = builder.with_stdin(i).with_stdout(o).with_stderr(e);
        }
        None
    };
    let mut container = builder
        .with_executor(Confined {
            filter,
            rlimits: Vec::new(),
        })
        .with_root_path(dirs.state())
        .map_err(lib)?
        .as_init(dirs.bundle())
        .with_systemd(false)
        // libcontainer takes a console socket only from a "detached" caller; we are the
        // subreaper, so the container is still ours to wait for.
        .with_detach(terminal)
        .build()
        .map_err(lib)?;
    // Block the signals we forward before the container can run, so none is lost.
    let signals = SigSet::all();
    let started = before_start()
        .and_then(|_| block_signals(&signals))
        .and_then(|_| container.start().map_err(lib));
    let relay = match console {
        Some(c) if started.is_ok() => Some(
            c.join()
                .unwrap_or_else(|_| Err(std::io::Error::other("the console thread panicked")))
                .map_err(RuntimeError::io(console_path.clone().unwrap_or_default()))?,
        ),
        _ => None,
    };
    if let Some(p) = &console_path {
        let _ = fs::remove_file(p);
    }
    let result = started.and_then(|_| {
        let pid = container.pid().ok_or_else(|| RuntimeError::Io {
            path: dirs.bundle(),
            source: std::io::Error::other("the container has no process"),
        })?;
        on_start(pid.as_raw());
        wait_forwarding(pid, &signals, &mut container, relay.as_ref(), on_signal)
    });
    drop(relay);
    let _ = signals.thread_unblock();
    let _ = container.delete(true);
    result
}

fn wait_forwarding(
    pid: nix::unistd::Pid,
    signals: &SigSet,
    container: &mut libcontainer::container::Container,
    relay: Option<&crate::tty::Relay>,
    on_signal: OnSignal,
) -> Result<Exit> {
    loop {
        // The container may have exited before we started waiting.
        if let Some(exit) = reap(pid)? {
            return Ok(exit);
        }
        let sig = next_signal(signals)?;
        match sig {
            Signal::SIGCHLD | Signal::SIGURG => {}
            Signal::SIGWINCH => {
                if let Some(r) = relay {
                    r.resize();
                }
            }
            Signal::SIGINT | Signal::SIGTERM | Signal::SIGHUP | Signal::SIGQUIT
                if on_signal == OnSignal::Kill =>
            {
                let _ = container.kill(Signal::SIGKILL, true);
            }
            other => {
                let _ = container.kill(other, true);
            }
        }
    }
}

/// Blocks `signals` on this thread, so that they wait for [`next_signal`].
pub(super) fn block_signals(signals: &SigSet) -> Result<()> {
    signals
        .thread_block()
        .map_err(|e| RuntimeError::io("sigprocmask")(e.into()))
}

/// Waits for the next of the `signals` blocked on this thread.
pub(super) fn next_signal(signals: &SigSet) -> Result<Signal> {
    signals
        .wait()
        .map_err(|e| RuntimeError::io("sigwait")(e.into()))
}

/// Reaps every exited child; returns the container init's status once it has exited.
pub(super) fn reap(pid: nix::unistd::Pid) -> Result<Option<Exit>> {
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(p, code)) if p == pid => return Ok(Some(Exit::Code(code))),
            Ok(WaitStatus::Signaled(p, sig, _)) if p == pid => {
                return Ok(Some(Exit::Signal(sig as i32)))
            }
            Ok(WaitStatus::StillAlive) => return Ok(None),
            Ok(_) => continue,
            Err(nix::errno::Errno::ECHILD) => return Ok(None),
            Err(e) => {
                return Err(RuntimeError::Io {
                    path: "waitpid".into(),
                    source: e.into(),
                })
            }
        }
    }
}

/// Orphans of the container (its init is forked by an intermediate process) come to us,
/// so that we can reap them and read the container's exit status.
pub(super) fn become_subreaper() -> Result<()> {
    nix::sys::prctl::set_child_subreaper(true).map_err(|e| RuntimeError::Io {
        path: "prctl".into(),
        source: e.into(),
    })
}

/// /dev/null for a container's standard input, open for reading and writing: when
/// standard output is /dev/null too, libcontainer may set up the container's stdio from
/// the same file, and a read-only one makes every write fail with EBADF.
pub fn dev_null() -> std::io::Result<fs::File> {
    fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
}

/// `fd` itself, or, when it is /dev/null, the write end of a pipe whose output is
/// discarded. libcontainer 0.7 swaps a /dev/null standard stream for the container's own
/// /dev/null opened read-only (`reopen_dev_null`), so `kiln run ... >/dev/null` would make
/// every write of the application fail with EBADF; a pipe is left alone.
pub fn not_dev_null(fd: std::os::fd::OwnedFd) -> Result<std::os::fd::OwnedFd> {
    let st = nix::sys::stat::fstat(std::os::fd::AsRawFd::as_raw_fd(&fd)).map_err(|e| {
        RuntimeError::Io {
            path: "fstat".into(),
            source: e.into(),
        }
    })?;
    let is_null = (st.st_mode & libc::S_IFMT) == libc::S_IFCHR
        && nix::sys::stat::major(st.st_rdev) == 1
        && nix::sys::stat::minor(st.st_rdev) == 3;
    if !is_null {
        return Ok(fd);
    }
    let (r, w) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| RuntimeError::Io {
            path: "pipe".into(),
            source: e.into(),
        })?;
    // The drain runs with every signal blocked: the waiting loop must get them all.
    let all = SigSet::all();
    let mut old = SigSet::empty();
    let _ = nix::sys::signal::pthread_sigmask(
        nix::sys::signal::SigmaskHow::SIG_BLOCK,
        Some(&all),
        Some(&mut old),
    );
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut fs::File::from(r), &mut std::io::sink());
    });
    let _ = nix::sys::signal::pthread_sigmask(
        nix::sys::signal::SigmaskHow::SIG_SETMASK,
        Some(&old),
        None,
    );
    drop(fd);
    Ok(w)
}
