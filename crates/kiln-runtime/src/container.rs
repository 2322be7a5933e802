//! A container's life in the foreground: a private mount namespace holding the overlay
//! root filesystem, youki's libcontainer creating and starting the process, signals
//! forwarded, the exit status returned, and everything removed afterwards.
//!
//! The overlay is mounted in a mount namespace private to this kiln process (and the
//! container, which inherits it): when both are gone the kernel drops the mount, so even a
//! SIGKILLed kiln leaves nothing mounted on the host.

use crate::error::{Result, RuntimeError};
use libcontainer::container::builder::ContainerBuilder;
use libcontainer::syscall::syscall::SyscallType;
use libcontainer::workload::default::DefaultExecutor;
use nix::mount::{mount, MsFlags};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use std::fs;
use std::path::{Path, PathBuf};

/// The directories of one container under `<store>/containers/<id>/`.
pub struct ContainerDirs {
    /// `<store>/containers/<id>`: holds the record, the bundle and the overlay's layers.
    pub dir: PathBuf,
}

impl ContainerDirs {
    /// The directories of container `id` in the store at `store_root` (nothing is created).
    pub fn new(store_root: &Path, id: &str) -> Self {
        Self {
            dir: kiln_store::layout::containers_dir(store_root).join(id),
        }
    }
    /// The OCI bundle libcontainer runs: `config.json` and the `rootfs` mount point.
    pub fn bundle(&self) -> PathBuf {
        self.dir.join("bundle")
    }
    /// Where the overlay root filesystem is mounted (`bundle/rootfs`).
    pub fn rootfs(&self) -> PathBuf {
        self.bundle().join("rootfs")
    }
    /// The overlay's writable upper layer: every change the container made (what
    /// `kiln commit` turns into a layer).
    pub fn upper(&self) -> PathBuf {
        self.dir.join("upper")
    }
    /// overlayfs's work directory, on the same filesystem as the upper layer.
    pub fn work(&self) -> PathBuf {
        self.dir.join("work")
    }
    /// libcontainer's state root (it adds `<id>/`).
    pub fn state(&self) -> PathBuf {
        self.dir.join("state")
    }
}

/// Moves this process into a mount namespace of its own whose mounts do not propagate
/// back to the host. Must run before any thread is started.
pub fn private_mount_namespace() -> Result<()> {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS).map_err(|e| RuntimeError::Io {
        path: "/".into(),
        source: std::io::Error::from(e),
    })?;
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_SLAVE,
        None::<&str>,
    )
    .map_err(|e| RuntimeError::Io {
        path: "/".into(),
        source: e.into(),
    })
}

/// Creates the container's directories and mounts its root filesystem: the snapshots
/// (bottom first) as read-only lower layers, a fresh upper layer on top.
pub fn mount_rootfs(dirs: &ContainerDirs, lowerdirs: &[PathBuf]) -> Result<()> {
    mount_rootfs_with(dirs, lowerdirs, false)
}

/// [`mount_rootfs`], optionally `volatile`: overlayfs then skips syncing the upper layer
/// (at every fsync and at unmount, where it syncs the whole filesystem holding it). For
/// build steps, whose upper layer is read once into a layer blob that is itself fsynced,
/// and `--rm` containers, whose upper layer is deleted: waiting for writeback (hundreds
/// of milliseconds after a `pip install` or a `kiln load`) buys nothing.
pub fn mount_rootfs_with(
    dirs: &ContainerDirs,
    lowerdirs: &[PathBuf],
    volatile: bool,
) -> Result<()> {
    for d in [
        dirs.upper(),
        dirs.work(),
        dirs.rootfs(),
        dirs.state(),
        dirs.dir.join("empty"),
    ] {
        fs::create_dir_all(&d).map_err(RuntimeError::io(&d))?;
    }
    let mut lowers: Vec<PathBuf> = lowerdirs.iter().rev().cloned().collect();
    if lowers.is_empty() {
        lowers.push(dirs.dir.join("empty"));
    }
    // Snapshot paths are long; the mount data is limited to one page. Naming them
    // relative to their common directory (via the working directory) fits ~60 layers.
    let common = lowers[0].parent().map(Path::to_path_buf);
    let relative = common
        .as_ref()
        .filter(|c| lowers.iter().all(|l| l.parent() == Some(c.as_path())));
    let previous_cwd = std::env::current_dir().ok();
    let lower_arg = match relative {
        Some(c) => {
            std::env::set_current_dir(c).map_err(RuntimeError::io(c))?;
            lowers
                .iter()
                .map(|l| l.file_name().unwrap().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join(":")
        }
        None => lowers
            .iter()
            .map(|l| l.display().to_string())
            .collect::<Vec<_>>()
            .join(":"),
    };
    let data = format!(
        "lowerdir={lower_arg},upperdir={},workdir={}{}",
        dirs.upper().display(),
        dirs.work().display(),
        if volatile { ",volatile" } else { "" }
    );
    let result = mount(
        Some("overlay"),
        &dirs.rootfs(),
        Some("overlay"),
        MsFlags::empty(),
        Some(data.as_str()),
    );
    if let Some(p) = previous_cwd {
        let _ = std::env::set_current_dir(p);
    }
    result.map_err(|e| RuntimeError::Io {
        path: dirs.rootfs(),
        source: std::io::Error::other(format!("cannot mount the overlay root filesystem: {e}")),
    })
}

fn lib_error(dirs: &ContainerDirs, e: libcontainer::error::LibcontainerError) -> RuntimeError {
    RuntimeError::Io {
        path: dirs.bundle(),
        source: std::io::Error::other(e.to_string()),
    }
}

/// Orphans of the container (its init is forked by an intermediate process) come to us,
/// so that we can reap them and read the container's exit status.
fn become_subreaper() -> Result<()> {
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

/// Writes the container's /etc/hostname, /etc/hosts and /etc/resolv.conf into `dir`, as
/// Docker provides them (the host's hosts file on the host network, loopback names
/// otherwise); returns (path in the container, file) pairs for the spec's bind mounts.
pub fn write_etc_files(
    dir: &Path,
    hostname: &str,
    host_network: bool,
) -> Result<Vec<(String, String)>> {
    let hosts = if host_network {
        fs::read_to_string("/etc/hosts").unwrap_or_default()
    } else {
        format!("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t{hostname}\n")
    };
    let mut out = Vec::new();
    for (file, content) in [
        ("hostname", format!("{hostname}\n")),
        ("hosts", hosts),
        (
            "resolv.conf",
            fs::read_to_string("/etc/resolv.conf").unwrap_or_default(),
        ),
    ] {
        let p = dir.join(file);
        fs::write(&p, content).map_err(RuntimeError::io(&p))?;
        out.push((format!("/etc/{file}"), p.display().to_string()));
    }
    Ok(out)
}

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
fn block_signals(signals: &SigSet) -> Result<()> {
    signals
        .thread_block()
        .map_err(|e| RuntimeError::io("sigprocmask")(e.into()))
}

/// Waits for the next of the `signals` blocked on this thread.
fn next_signal(signals: &SigSet) -> Result<Signal> {
    signals
        .wait()
        .map_err(|e| RuntimeError::io("sigwait")(e.into()))
}

/// Reaps every exited child; returns the container init's status once it has exited.
fn reap(pid: nix::unistd::Pid) -> Result<Option<Exit>> {
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

/// Removes a container's directory after its process is gone and its overlay unmounted.
pub fn remove_dirs(dirs: &ContainerDirs) -> Result<()> {
    for m in [dirs.rootfs(), dirs.dir.join("netns")] {
        let _ = nix::mount::umount2(&m, nix::mount::MntFlags::MNT_DETACH);
    }
    match fs::remove_dir_all(&dirs.dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(RuntimeError::io(&dirs.dir)(e)),
    }
}

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

/// The record of a container kept beside its directories (`container.json`).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Record {
    /// The container ID: 64 hex digits, also its directory's name.
    pub id: String,
    /// The container's name (`--name`); empty when none was given.
    pub name: String,
    /// The image reference as the user gave it.
    pub image: String,
    /// The image ID (its config digest, `sha256:<hex>`).
    pub image_id: String,
    /// The command as the user sees it: entrypoint and arguments, without an init process.
    pub command: Vec<String>,
    /// When the container was created, RFC 3339 in UTC.
    pub created: String,
    /// `running` from creation, `exited` once its process ended (a `running` record whose
    /// process is gone was left by a kiln that died).
    pub status: String,
    /// The exit code, Docker's way (128 + signal when killed); `None` while running.
    #[serde(default)]
    pub exit_code: Option<i32>,
    /// Host PID of the container's first process, once it started.
    #[serde(default)]
    pub pid: Option<i32>,
    /// An external OCI runtime that runs this container (`--runtime`), if not the built-in one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<String>,
    /// The image's manifest: what `commit` builds on even once the image is untagged
    /// (the container keeps its content, see kiln-store's GC roots).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest: Option<kiln_oci::types::Descriptor>,
}

impl Record {
    /// Where the record of the container in `dirs` is kept: `container.json` in its directory.
    pub fn path(dirs: &ContainerDirs) -> PathBuf {
        dirs.dir.join("container.json")
    }

    /// Saves the record atomically.
    pub fn save(&self, dirs: &ContainerDirs) -> Result<()> {
        let p = Self::path(dirs);
        let tmp = dirs.dir.join(".container.json.tmp");
        fs::write(
            &tmp,
            serde_json::to_vec_pretty(self).expect("records serialize"),
        )
        .and_then(|_| fs::rename(&tmp, &p))
        .map_err(RuntimeError::io(p))
    }

    /// Every container record in the store.
    pub fn list(store_root: &Path) -> Vec<Record> {
        let mut out: Vec<Record> = fs::read_dir(kiln_store::layout::containers_dir(store_root))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| fs::read(e.path().join("container.json")).ok())
            .filter_map(|b| serde_json::from_slice(&b).ok())
            .collect();
        out.sort_by(|a: &Record, b| b.created.cmp(&a.created));
        out
    }
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

/// The store a container directory (`<store>/containers/<id>`) belongs to.
fn store_root(dirs: &ContainerDirs) -> Option<&Path> {
    let containers = dirs.dir.parent()?;
    (containers.file_name()? == "containers")
        .then(|| containers.parent())
        .flatten()
}

/// Where the container's seccomp profile is kept (as the runtime spec wrote it) when
/// kiln, not libcontainer, loads it: `kiln exec` reads it there.
fn saved_seccomp(dirs: &ContainerDirs) -> PathBuf {
    dirs.dir.join("seccomp.json")
}

fn invalid_json(path: &Path, e: serde_json::Error) -> RuntimeError {
    RuntimeError::Io {
        path: path.to_path_buf(),
        source: std::io::Error::other(e.to_string()),
    }
}

/// Rewrites the bundle's config.json for the built-in runtime (an external one gets it as
/// written) and says which filter the container's process loads itself.
///
/// With no-new-privileges (the default) and a profile without `SCMP_ACT_NOTIFY`, the
/// filter is the program compiled once into the store's cache ([`crate::bpf`]), loaded
/// right before the command is executed; `linux.seccomp` leaves config.json (libcontainer
/// would build the same filter again, ~8 ms at every start) and is kept in
/// `seccomp.json` for `kiln exec`. Otherwise libcontainer loads it as before, given the
/// operands it expects ([`crate::seccomp::for_libcontainer`]).
fn prepare_config(dirs: &ContainerDirs) -> Result<Filter> {
    let path = dirs.bundle().join("config.json");
    let bytes = fs::read(&path).map_err(RuntimeError::io(&path))?;
    let mut config: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| invalid_json(&path, e))?;
    let no_new_privileges =
        config.pointer("/process/noNewPrivileges") == Some(&serde_json::Value::Bool(true));
    let profile = config
        .pointer("/linux/seccomp")
        .filter(|_| no_new_privileges)
        .and_then(|v| serde_json::from_value::<oci_spec::runtime::LinuxSeccomp>(v.clone()).ok())
        .filter(crate::bpf::cacheable);
    let filter = match profile {
        Some(profile) => {
            let program = crate::bpf::program(store_root(dirs), &profile)?;
            let saved = saved_seccomp(dirs);
            let tmp = dirs.dir.join(".seccomp.json.tmp");
            fs::write(
                &tmp,
                serde_json::to_vec(&profile).expect("seccomp profiles serialize"),
            )
            .and_then(|_| fs::rename(&tmp, &saved))
            .map_err(RuntimeError::io(&saved))?;
            if let Some(linux) = config.get_mut("linux").and_then(|l| l.as_object_mut()) {
                linux.remove("seccomp");
            }
            Filter::Program(program)
        }
        None => {
            crate::seccomp::for_libcontainer(&mut config);
            Filter::None
        }
    };
    fs::write(
        &path,
        serde_json::to_vec(&config).expect("JSON values serialize"),
    )
    .map_err(RuntimeError::io(&path))?;
    Ok(filter)
}

/// Runs a further process in a running container (`kiln exec`): it joins the container's
/// namespaces and cgroup with the same confinement as the container's first process.
pub fn exec(
    dirs: &ContainerDirs,
    id: &str,
    args: Vec<String>,
    env: std::collections::HashMap<String, String>,
    cwd: Option<String>,
    user: Option<(u32, u32)>,
) -> Result<Exit> {
    let lib = |e| lib_error(dirs, e);
    let config = dirs.bundle().join("config.json");
    let spec = oci_spec::runtime::Spec::load(&config).map_err(|e| RuntimeError::Io {
        path: config.clone(),
        source: std::io::Error::other(e.to_string()),
    })?;
    // The container's own filter: the compiled program when kiln loaded it into the
    // first process, else what libcontainer loaded (config.json, adapted for it).
    let saved = saved_seccomp(dirs);
    let filter = match fs::read(&saved) {
        Ok(bytes) => {
            let profile: oci_spec::runtime::LinuxSeccomp =
                serde_json::from_slice(&bytes).map_err(|e| invalid_json(&saved, e))?;
            Filter::Program(crate::bpf::program(store_root(dirs), &profile)?)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            match spec.linux().as_ref().and_then(|l| l.seccomp().clone()) {
                Some(s) => Filter::Libcontainer(s),
                None => Filter::None,
            }
        }
        Err(e) => return Err(RuntimeError::io(saved)(e)),
    };
    // As `docker exec`: the container's user unless one is given.
    let user = user.or_else(|| {
        spec.process()
            .as_ref()
            .map(|p| (p.user().uid(), p.user().gid()))
    });
    let confined = Confined {
        filter,
        rlimits: spec
            .process()
            .as_ref()
            .and_then(|p| p.rlimits().clone())
            .unwrap_or_default(),
    };
    become_subreaper()?;
    let pid = ContainerBuilder::new(id.to_string(), SyscallType::default())
        .with_executor(confined)
        .with_root_path(dirs.state())
        .map_err(lib)?
        .as_tenant()
        .with_container_args(args)
        .with_env(env)
        .with_cwd(cwd)
        .with_user(user.map(|u| u.0))
        .with_group(user.map(|u| u.1))
        .with_detach(false)
        .build()
        .map_err(lib)?;
    loop {
        match waitpid(pid, None) {
            Ok(WaitStatus::Exited(_, code)) => return Ok(Exit::Code(code)),
            Ok(WaitStatus::Signaled(_, sig, _)) => return Ok(Exit::Signal(sig as i32)),
            Ok(_) => continue,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => {
                return Err(RuntimeError::Io {
                    path: "waitpid".into(),
                    source: e.into(),
                })
            }
        }
    }
}

/// A seccomp filter the container's process loads itself, right before it executes its
/// command (after capabilities are dropped, which a filter allows under
/// no-new-privileges).
#[derive(Clone)]
enum Filter {
    /// None, or libcontainer loads it (`kiln run` without no-new-privileges or with
    /// `SCMP_ACT_NOTIFY`).
    None,
    /// The program compiled ahead ([`crate::bpf`]), read before the process was forked.
    Program(crate::bpf::Program),
    /// Built by libcontainer's own code in the process (`kiln exec` into a container
    /// whose filter libcontainer loaded: the profile as config.json holds it).
    Libcontainer(oci_spec::runtime::LinuxSeccomp),
}

/// libcontainer's executor with what kiln adds to the process before it executes the
/// command: the seccomp filter kiln loads itself (`kiln run`, build steps, `kiln exec`)
/// and rlimits (`kiln exec`). libcontainer 0.7 gives a tenant the container's namespaces,
/// cgroup, capabilities and no-new-privileges, but rebuilds the spec's `linux` section
/// without the seccomp filter and the process without its rlimits: this executor applies
/// both so that it is confined exactly as the container's first process.
#[derive(Clone)]
struct Confined {
    filter: Filter,
    rlimits: Vec<oci_spec::runtime::PosixRlimit>,
}

impl libcontainer::workload::Executor for Confined {
    fn exec(
        &self,
        spec: &oci_spec::runtime::Spec,
    ) -> std::result::Result<(), libcontainer::workload::ExecutorError> {
        use libcontainer::workload::ExecutorError;
        for r in &self.rlimits {
            let resource = rlimit_resource(r.typ());
            if let Some(resource) = resource {
                // Never above what this process holds (raising needs a capability the
                // process no longer has); the container's own values were clamped so.
                let (soft, hard) = crate::spec::clamp_rlimit(resource, r.soft(), r.hard());
                rustix::process::setrlimit(
                    resource,
                    rustix::process::Rlimit {
                        current: Some(soft),
                        maximum: Some(hard),
                    },
                )
                .map_err(|e| ExecutorError::Other(format!("setrlimit {:?}: {e}", r.typ())))?;
            }
        }
        if !matches!(self.filter, Filter::None) {
            // A process without no-new-privileges may not load a filter any more (its
            // capabilities are dropped): it gets no-new-privileges for itself. A first
            // process has it already (kiln loads its filter only then); an exec'd one
            // into a `no-new-privileges=false` container is stricter than the
            // container's first process, never looser.
            if !rustix::thread::no_new_privs().unwrap_or(false) {
                rustix::thread::set_no_new_privs(true).map_err(|e| {
                    ExecutorError::Other(format!("cannot set no-new-privileges: {e}"))
                })?;
            }
        }
        match &self.filter {
            Filter::None => {}
            Filter::Program(program) => program.load().map_err(|e| {
                ExecutorError::Other(format!("cannot load the seccomp filter: {e}"))
            })?,
            Filter::Libcontainer(filter) => {
                libcontainer::seccomp::initialize_seccomp(filter).map_err(|e| {
                    ExecutorError::Other(format!("cannot load the seccomp filter: {e}"))
                })?;
            }
        }
        DefaultExecutor {}.exec(spec)
    }

    fn validate(
        &self,
        spec: &oci_spec::runtime::Spec,
    ) -> std::result::Result<(), libcontainer::workload::ExecutorValidationError> {
        DefaultExecutor {}.validate(spec)
    }
}

/// The rustix resource of an OCI rlimit type.
fn rlimit_resource(t: oci_spec::runtime::PosixRlimitType) -> Option<rustix::process::Resource> {
    use oci_spec::runtime::PosixRlimitType as T;
    use rustix::process::Resource as R;
    Some(match t {
        T::RlimitCpu => R::Cpu,
        T::RlimitFsize => R::Fsize,
        T::RlimitData => R::Data,
        T::RlimitStack => R::Stack,
        T::RlimitCore => R::Core,
        T::RlimitRss => R::Rss,
        T::RlimitNproc => R::Nproc,
        T::RlimitNofile => R::Nofile,
        T::RlimitMemlock => R::Memlock,
        T::RlimitAs => R::As,
        T::RlimitLocks => R::Locks,
        T::RlimitSigpending => R::Sigpending,
        T::RlimitMsgqueue => R::Msgqueue,
        T::RlimitNice => R::Nice,
        T::RlimitRtprio => R::Rtprio,
        T::RlimitRttime => R::Rttime,
    })
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

/// What the runtime, not the container's process, put in the upper directory: the bind
/// targets of /etc/hostname, /etc/hosts and /etc/resolv.conf, and /dev, /proc, /sys (and
/// /dev's mount points) when the image lacked them and they hold nothing else. Docker
/// keeps these in an "init" layer that `docker commit` leaves out; kiln leaves them out
/// by name.
pub fn runtime_mount_points(upper: &Path) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = ["etc/hostname", "etc/hosts", "etc/resolv.conf"]
        .iter()
        .map(|p| p.as_bytes().to_vec())
        .collect();
    for dir in ["dev/pts", "dev/shm", "dev/mqueue", "dev", "proc", "sys"] {
        let path = upper.join(dir);
        let Ok(entries) = std::fs::read_dir(&path) else {
            continue;
        };
        let only_excluded = entries.flatten().all(|e| {
            let rel = format!("{dir}/{}", e.file_name().to_string_lossy());
            out.contains(&rel.into_bytes())
        });
        if only_excluded {
            out.push(dir.as_bytes().to_vec());
        }
    }
    out
}
