//! Launching containers: one path for `kiln run` (foreground or detached), and the
//! pieces build steps share with it (the network, the process plan, the spec).
//!
//! The order is chosen for start latency: [`Pending::begin`] makes the container's
//! directory and network namespace and starts pasta first, so that user-mode networking
//! comes up while the image is resolved, the root filesystem mounted and the container
//! created; pasta is waited for only right before the application starts.

pub mod options;
pub mod plan;
pub mod volumes;

use crate::cdi::Edits;
use crate::container::{self, ContainerDirs, Lookup, Record};
use crate::error::{Result, RuntimeError};
use crate::spec::{self, Network, Rlimit, SpecOptions, UserMount};
use options::{NetworkMode, Security};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Docker's exit code for a failure before the command runs.
pub const EXIT_KILN: u8 = 125;
/// The command exists but cannot be run.
pub const EXIT_NOT_EXECUTABLE: u8 = 126;
/// The command was not found.
pub const EXIT_NOT_FOUND: u8 = 127;

/// Everything a container run is given besides its image: what `kiln run`'s flags
/// become once parsed.
#[derive(Clone, Debug)]
pub struct RunConfig {
    /// The container's name.
    pub name: String,
    /// `--entrypoint` (`Some("")` clears the image's).
    pub entrypoint: Option<String>,
    /// The command after the image (empty: the image's CMD).
    pub cmd: Vec<String>,
    /// Environment entries over the image's, resolved ([`options::resolve_env`]).
    pub env: Vec<(String, String)>,
    /// `--user`.
    pub user: Option<String>,
    /// `--workdir`.
    pub workdir: Option<String>,
    /// `--hostname` (default: the first 12 digits of the ID).
    pub hostname: Option<String>,
    /// The host's init binary with `--init` ([`options::find_init`]).
    pub init: Option<PathBuf>,
    /// The network.
    pub network: NetworkMode,
    /// Bind mounts, volumes and tmpfs, in order.
    pub mounts: Vec<UserMount>,
    /// `--read-only`.
    pub read_only: bool,
    /// `--tty`.
    pub tty: bool,
    /// `--interactive`: the container reads our standard input.
    pub interactive: bool,
    /// `--memory` in bytes.
    pub memory: Option<i64>,
    /// `--cpus`.
    pub cpus: Option<f64>,
    /// `--pids-limit`.
    pub pids_limit: Option<i64>,
    /// `--shm-size` in bytes.
    pub shm_size: Option<u64>,
    /// `--cap-add`.
    pub cap_add: Vec<String>,
    /// `--cap-drop`.
    pub cap_drop: Vec<String>,
    /// `--security-opt`.
    pub security: Security,
    /// Docker's default rlimits with `--ulimit` over them.
    pub rlimits: Vec<Rlimit>,
    /// Devices: CDI edits and host nodes.
    pub devices: Edits,
    /// An external OCI runtime binary instead of the built-in one.
    pub runtime: Option<PathBuf>,
    /// `--rm`.
    pub remove: bool,
}

impl RunConfig {
    /// Checks what does not depend on the image, before anything is created.
    pub fn validate(&self) -> Result<()> {
        if self.memory.is_some_and(|m| m < 6 << 20) {
            return Err(RuntimeError::refused(
                "minimum memory limit allowed is 6MB",
                "give at least `--memory 6m`",
            ));
        }
        Ok(())
    }

    /// The mounts the container gets: the user's, and the init binary with `--init`.
    fn all_mounts(&self) -> Vec<UserMount> {
        let mut m = self.mounts.clone();
        if let Some(init) = &self.init {
            m.push(UserMount::Bind {
                source: init.display().to_string(),
                destination: options::INIT_PATH.to_string(),
                readonly: true,
            });
        }
        m
    }
}

/// The image a container runs, resolved and unpacked.
pub struct RunImage<'a> {
    /// The reference the user gave.
    pub reference: &'a str,
    /// The image in the store.
    pub info: &'a kiln_store::ImageInfo,
    /// Its snapshots, bottom layer first.
    pub lowers: &'a [PathBuf],
}

/// The network namespace of a container (or a build step) and the pasta connecting it.
pub struct NetworkSetup {
    netns: Option<PathBuf>,
    pasta: Option<crate::pasta::Pasta>,
}

impl NetworkSetup {
    /// Makes the namespace in `dir` (none for the host network) and starts pasta on it
    /// for a private network, without waiting for it.
    pub fn start(dir: &Path, mode: &NetworkMode) -> Result<NetworkSetup> {
        let netns = match mode {
            NetworkMode::Host => None,
            NetworkMode::None | NetworkMode::Private { .. } => {
                let p = dir.join("netns");
                crate::netns::create(&p)?;
                Some(p)
            }
        };
        let pasta = match (mode, &netns) {
            (NetworkMode::Private { pasta, publish }, Some(ns)) => Some(
                crate::pasta::Pasta::start(pasta, ns, publish, &dir.join("pasta.pid"))?,
            ),
            _ => None,
        };
        Ok(NetworkSetup { netns, pasta })
    }

    /// The namespace the container joins (`None`: the host's).
    pub fn netns(&self) -> Option<&Path> {
        self.netns.as_deref()
    }

    /// The spec's network: the host's, or the prepared namespace.
    pub fn spec_network(&self) -> Network {
        match self.netns {
            None => Network::Host,
            Some(_) => Network::None,
        }
    }

    /// Waits until the network is up (pasta configured the namespace).
    pub fn ready(&mut self) -> Result<()> {
        match self.pasta.as_mut() {
            Some(p) => p.ready(),
            None => Ok(()),
        }
    }
}

/// How the caller follows the container.
pub enum Attach {
    /// In the foreground: standard streams connected, the exit code returned.
    Foreground,
    /// Detached ([`fork_supervisor`]): this process is the supervisor; the container's
    /// output goes to its log and `notify` gets `started PID` or `error CODE MESSAGE`.
    Detached(std::fs::File),
}

/// A container whose directory, network namespace and network exist, waiting for its
/// image ([`Pending::run`]). Dropped unused, it is removed and its pasta stopped.
pub struct Pending {
    id: String,
    dirs: ContainerDirs,
    network: Option<NetworkSetup>,
}

impl Pending {
    /// Moves this process into a mount namespace of its own (its mounts die with it),
    /// makes `containers/ID` in the store at `root` and sets the network up.
    pub fn begin(root: &Path, id: &str, network: &NetworkMode) -> Result<Pending> {
        container::private_mount_namespace()?;
        let dirs = ContainerDirs::new(root, id);
        std::fs::create_dir_all(&dirs.dir).map_err(RuntimeError::io(&dirs.dir))?;
        let mut p = Pending {
            id: id.to_string(),
            dirs,
            network: None,
        };
        p.network = Some(NetworkSetup::start(&p.dirs.dir, network)?);
        Ok(p)
    }

    /// The container's directories.
    pub fn dirs(&self) -> &ContainerDirs {
        &self.dirs
    }

    /// Runs the container to its end: mounts the root filesystem, plans the process,
    /// writes the spec and the record, runs it and records its exit. Returns the exit
    /// code. The container is removed afterwards with `--rm` or on failure.
    pub fn run(
        mut self,
        root: &Path,
        cfg: &RunConfig,
        image: &RunImage,
        attach: Attach,
    ) -> Result<i32> {
        let mut network = self
            .network
            .take()
            .expect("a pending container has its network");
        let dirs = ContainerDirs {
            dir: self.dirs.dir.clone(),
        };
        let mut notify = match attach {
            Attach::Foreground => None,
            Attach::Detached(f) => Some(f),
        };
        let result = supervise(root, &self.id, &dirs, cfg, image, &mut network, &mut notify);
        drop(network);
        let _ = nix::mount::umount2(&dirs.rootfs(), nix::mount::MntFlags::MNT_DETACH);
        let removed = match cfg.remove || result.is_err() {
            true => container::remove_dirs(&dirs),
            false => Ok(()),
        };
        if let (Err(e), Some(n)) = (&result, notify.as_mut()) {
            // The parent is still waiting (for a container it finds removed): tell it why.
            let _ = writeln!(
                n,
                "error {} {}",
                e.exit_code(),
                e.to_string().replace('\n', " ")
            );
        }
        removed?;
        // Removed above when it had to be: not again on drop.
        self.dirs.dir = PathBuf::new();
        result
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        // Stop pasta before the namespace goes.
        self.network.take();
        if !self.dirs.dir.as_os_str().is_empty() {
            let _ = container::remove_dirs(&self.dirs);
        }
    }
}

/// Looks the command up as the container will see it, after every mount (as runc does
/// inside the container): a candidate path under a bind mount's destination is looked up
/// in its source, one under a tmpfs is not there; the rest in the root filesystem.
pub fn find_after_mounts(
    rootfs: &Path,
    mounts: &[UserMount],
    cmd: &str,
    path_env: &str,
    cwd: &str,
) -> Lookup {
    let candidates = container::exec_candidates(cmd, path_env, cwd);
    let under = |path: &str, dest: &str| -> Option<String> {
        let dest = dest.trim_end_matches('/');
        if path == dest {
            Some(String::new())
        } else {
            path.strip_prefix(dest)
                .and_then(|r| r.strip_prefix('/'))
                .map(str::to_string)
        }
    };
    let mut not_executable = false;
    for c in candidates {
        // The last mount over the path wins, as in the container.
        let over = mounts.iter().rev().find_map(|m| match m {
            UserMount::Bind {
                source,
                destination,
                ..
            } => under(&c, destination).map(|rest| Some((source.clone(), rest))),
            UserMount::Tmpfs { destination, .. } => under(&c, destination).map(|_| None),
        });
        let found = match over {
            None => container::find_executable(rootfs, &c, "", "/"),
            Some(None) => Lookup::NotFound,
            Some(Some((source, rest))) if rest.is_empty() => {
                // A file mounted on the path itself.
                let src = Path::new(&source);
                match (src.parent(), src.file_name()) {
                    (Some(dir), Some(name)) => container::find_executable(
                        dir,
                        &format!("/{}", name.to_string_lossy()),
                        "",
                        "/",
                    ),
                    _ => Lookup::NotFound,
                }
            }
            Some(Some((source, rest))) => {
                container::find_executable(Path::new(&source), &format!("/{rest}"), "", "/")
            }
        };
        match found {
            Lookup::Found => return Lookup::Found,
            Lookup::NotExecutable => not_executable = true,
            Lookup::NotFound => {}
        }
    }
    if not_executable {
        Lookup::NotExecutable
    } else {
        Lookup::NotFound
    }
}

fn supervise(
    root: &Path,
    id: &str,
    dirs: &ContainerDirs,
    cfg: &RunConfig,
    image: &RunImage,
    network: &mut NetworkSetup,
    notify: &mut Option<std::fs::File>,
) -> Result<i32> {
    // With `--rm` the upper layer is deleted at the end: volatile, its unmount does not
    // sync the store's whole filesystem (after a `kiln load` that is hundreds of MB of
    // writeback, ~0.3 s, on the first container's path).
    container::mount_rootfs_with(dirs, image.lowers, cfg.remove)?;
    let rootfs = dirs.rootfs();
    let mounts = cfg.all_mounts();
    volumes::populate_new_volumes(root, &rootfs, &mounts)?;
    let hostname = cfg
        .hostname
        .clone()
        .unwrap_or_else(|| id[..12.min(id.len())].to_string());
    let image_cfg = image.info.config.config.clone().unwrap_or_default();
    let process = plan::plan(
        &image_cfg,
        &plan::ProcessRequest {
            entrypoint: cfg.entrypoint.as_deref(),
            cmd: &cfg.cmd,
            env: &cfg.env,
            user: cfg.user.as_deref(),
            workdir: cfg.workdir.as_deref(),
            hostname: &hostname,
            init: cfg.init.is_some(),
        },
        container::read_in_root(&rootfs, "/etc/passwd").as_deref(),
        container::read_in_root(&rootfs, "/etc/group").as_deref(),
    )?;
    let argv0 = &process.command[0];
    match find_after_mounts(&rootfs, &mounts, argv0, process.path_env(), &process.cwd) {
        Lookup::Found => {}
        Lookup::NotFound => {
            return Err(RuntimeError::Exec {
                code: EXIT_NOT_FOUND,
                message: format!("exec: \"{argv0}\": executable file not found in $PATH"),
            })
        }
        Lookup::NotExecutable => {
            return Err(RuntimeError::Exec {
                code: EXIT_NOT_EXECUTABLE,
                message: format!("exec: \"{argv0}\": permission denied"),
            })
        }
    }
    let etc_files = container::write_etc_files(
        &dirs.dir,
        &hostname,
        network.spec_network() == Network::Host,
    )?;
    let cgroups_path = format!("/kiln/{id}");
    let opts = SpecOptions {
        args: process.args.clone(),
        env: process.env.clone(),
        cwd: process.cwd.clone(),
        uid: process.user.uid,
        gid: process.user.gid,
        additional_gids: process.user.additional_gids.clone(),
        hostname,
        terminal: cfg.tty,
        read_only: cfg.read_only,
        network: network.spec_network(),
        mounts,
        etc_files,
        memory: cfg.memory,
        pids_limit: cfg.pids_limit,
        cpus: cfg.cpus,
        shm_size: cfg.shm_size,
        cap_add: cfg.cap_add.clone(),
        cap_drop: cfg.cap_drop.clone(),
        no_new_privileges: cfg.security.no_new_privileges,
        seccomp: cfg.security.seccomp.clone(),
        rlimits: cfg.rlimits.clone(),
        cgroup_view: crate::cgroupfs::prepare(&dirs.dir, &cgroups_path)
            .map_err(RuntimeError::io(&dirs.dir))?,
        cgroups_path,
        privileged_devices: vec![],
        netns_path: network.netns().map(|p| p.display().to_string()),
    };
    let mut config = spec::build(&opts)?;
    cfg.devices.apply(&mut config)?;
    let config_path = dirs.bundle().join("config.json");
    std::fs::write(
        &config_path,
        serde_json::to_vec_pretty(&config).expect("a spec serializes"),
    )
    .map_err(RuntimeError::io(&config_path))?;
    let mut record = Record {
        id: id.to_string(),
        name: cfg.name.clone(),
        image: image.reference.to_string(),
        image_id: image.info.id.to_string(),
        command: process.command.clone(),
        created: chrono::Utc::now().to_rfc3339(),
        status: "running".into(),
        exit_code: None,
        pid: None,
        runtime: cfg.runtime.as_ref().map(|r| r.display().to_string()),
        manifest: Some(image.info.manifest_descriptor.clone()),
    };
    record.save(dirs)?;
    let (stdio, pumps) = streams(dirs, cfg, notify.is_some())?;
    let on_start = |pid: i32| {
        record.pid = Some(pid);
        let _ = record.save(dirs);
        if let Some(n) = notify.take() {
            let _ = writeln!(&n, "started {pid}");
        }
    };
    let exit = match &cfg.runtime {
        Some(rt) => {
            // An external runtime creates and starts in one command: the network first.
            network.ready()?;
            container::run_external(dirs, id, rt, stdio, on_start)?
        }
        None => container::run_foreground(
            dirs,
            id,
            stdio,
            cfg.tty,
            container::OnSignal::Forward,
            || network.ready(),
            on_start,
        )?,
    };
    // Let the log catch the last lines (the pipes close when the container is gone).
    for _ in 0..100 {
        if pumps.iter().all(|p| p.is_finished()) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    record.status = "exited".into();
    record.exit_code = Some(exit.code());
    record.save(dirs)?;
    Ok(exit.code())
}

type Pumps = Vec<std::thread::JoinHandle<()>>;

/// The container's standard streams: for a detached container, /dev/null in and pipes
/// into its log out; in the foreground, ours (standard input only with `-i`).
fn streams(
    dirs: &ContainerDirs,
    cfg: &RunConfig,
    detached: bool,
) -> Result<(Option<[std::os::fd::OwnedFd; 3]>, Pumps)> {
    use std::os::fd::AsFd;
    let io = |what: &str| {
        let what = what.to_string();
        move |e: std::io::Error| RuntimeError::io(what)(e)
    };
    let mut pumps = Vec::new();
    if detached {
        // The log threads are started with every signal blocked, so that only the
        // waiting loop receives them (a thread with SIGCHLD unblocked would swallow
        // it); this thread unblocks them again, or the container would inherit the mask.
        let all = nix::sys::signal::SigSet::all();
        all.thread_block()
            .map_err(|e| io("sigprocmask")(e.into()))?;
        let log = std::sync::Arc::new(std::sync::Mutex::new(
            crate::logs::LogWriter::open(&dirs.dir, 10 << 20).map_err(io("container log"))?,
        ));
        let pipe =
            || nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| io("pipe")(e.into()));
        let ((out_r, out_w), (err_r, err_w)) = (pipe()?, pipe()?);
        for (r, stream) in [(out_r, "stdout"), (err_r, "stderr")] {
            let log = log.clone();
            pumps.push(std::thread::spawn(move || {
                crate::logs::pump(std::fs::File::from(r), stream, log)
            }));
        }
        all.thread_unblock()
            .map_err(|e| io("sigprocmask")(e.into()))?;
        let null = container::dev_null().map_err(io("/dev/null"))?;
        return Ok((Some([null.into(), out_w, err_w]), pumps));
    }
    if cfg.interactive {
        return Ok((None, pumps));
    }
    // As Docker: standard input only with `-i`; output goes straight to ours.
    let null = container::dev_null().map_err(io("/dev/null"))?;
    let out = container::not_dev_null(
        std::io::stdout()
            .as_fd()
            .try_clone_to_owned()
            .map_err(io("stdout"))?,
    )?;
    let err = container::not_dev_null(
        std::io::stderr()
            .as_fd()
            .try_clone_to_owned()
            .map_err(io("stderr"))?,
    )?;
    Ok((Some([null.into(), out, err]), pumps))
}

/// The two sides of [`fork_supervisor`].
pub enum Forked {
    /// The command the user ran: the container started (its supervisor's answer is the
    /// container's PID) or failed to.
    Parent(Result<i32>),
    /// The supervisor, away from the terminal: run the container with
    /// [`Attach::Detached`] and this pipe.
    Supervisor(std::fs::File),
}

/// Forks the supervisor of a detached container (`kiln run -d`). The parent waits only
/// until the container has started or failed: one line on a pipe, `started PID` or
/// `error CODE MESSAGE` (the supervisor keeps running, so the pipe is not closed).
/// Call it while this process is single-threaded.
pub fn fork_supervisor() -> Result<Forked> {
    let io = |what: &'static str| move |e: nix::Error| RuntimeError::io(what)(e.into());
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(io("pipe"))?;
    // SAFETY: the caller is single-threaded; the child only continues the launch.
    match unsafe { nix::unistd::fork() }.map_err(io("fork"))? {
        nix::unistd::ForkResult::Parent { .. } => {
            drop(w);
            let mut status = String::new();
            std::io::BufRead::read_line(
                &mut std::io::BufReader::new(std::fs::File::from(r)),
                &mut status,
            )
            .map_err(RuntimeError::io("the supervisor's pipe"))?;
            Ok(Forked::Parent(parse_status(&status)))
        }
        nix::unistd::ForkResult::Child => {
            drop(r);
            let _ = nix::unistd::setsid();
            // Away from the terminal: the supervisor outlives the command.
            if let Ok(null) = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open("/dev/null")
            {
                for fd in 0..3 {
                    let _ = nix::unistd::dup2(std::os::fd::AsRawFd::as_raw_fd(&null), fd);
                }
            }
            Ok(Forked::Supervisor(std::fs::File::from(w)))
        }
    }
}

/// The supervisor's line: `started PID` or `error CODE MESSAGE`.
fn parse_status(status: &str) -> Result<i32> {
    if let Some(pid) = status.strip_prefix("started ") {
        return Ok(pid.trim().parse().unwrap_or(0));
    }
    let (code, message) = status
        .strip_prefix("error ")
        .and_then(|e| e.split_once(' '))
        .map(|(c, m)| (c.parse().unwrap_or(EXIT_KILN), m.trim().to_string()))
        .unwrap_or((
            EXIT_KILN,
            "the container supervisor exited before the container started".into(),
        ));
    Err(RuntimeError::Exec { code, message })
}

/// `--device` and `--gpus` as container edits: CDI devices from the spec directories
/// (`spec_dirs`, or CDI's defaults when empty), host device nodes as Docker takes them.
pub fn device_edits(
    devices: &[String],
    gpus: Option<&str>,
    spec_dirs: &[PathBuf],
) -> Result<Edits> {
    use crate::cdi;
    let mut names: Vec<String> = Vec::new();
    let mut edits = Edits::default();
    for d in devices {
        if d.starts_with('/') {
            let e = cdi::host_device(d)?;
            edits.device_nodes.extend(e.device_nodes);
        } else {
            names.push(d.clone());
        }
    }
    if let Some(g) = gpus {
        names.extend(cdi::gpus_to_devices(g)?);
    }
    if names.is_empty() {
        return Ok(edits);
    }
    let dirs: Vec<PathBuf> = if spec_dirs.is_empty() {
        cdi::DEFAULT_DIRS.iter().map(PathBuf::from).collect()
    } else {
        spec_dirs.to_vec()
    };
    let dir_refs: Vec<&Path> = dirs.iter().map(PathBuf::as_path).collect();
    let registry = cdi::Registry::load(&dir_refs)?;
    let resolved = registry.resolve(&names).map_err(|e| RuntimeError::Refused {
        message: e.to_string(),
        hint: Some("CDI specs are read from /etc/cdi and /var/run/cdi; for NVIDIA GPUs generate one with `nvidia-ctk cdi generate --output=/etc/cdi/nvidia.yaml`".into()),
    })?;
    edits.env.extend(resolved.env);
    edits.device_nodes.extend(resolved.device_nodes);
    edits.mounts.extend(resolved.mounts);
    edits.hooks.extend(resolved.hooks);
    edits.additional_gids.extend(resolved.additional_gids);
    Ok(edits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn supervisor_status_lines() {
        assert_eq!(parse_status("started 42\n").unwrap(), 42);
        match parse_status("error 127 exec: \"x\": executable file not found in $PATH\n") {
            Err(RuntimeError::Exec { code, message }) => {
                assert_eq!(code, 127);
                assert!(message.starts_with("exec: \"x\""));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse_status(""),
            Err(RuntimeError::Exec {
                code: EXIT_KILN,
                ..
            })
        ));
    }

    #[test]
    fn lookup_sees_mounts() {
        let rootfs = tempfile::tempdir().unwrap();
        let host = tempfile::tempdir().unwrap();
        let script = host.path().join("run.sh");
        std::fs::write(&script, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let bind = UserMount::Bind {
            source: host.path().display().to_string(),
            destination: "/app".into(),
            readonly: true,
        };
        assert_eq!(
            find_after_mounts(rootfs.path(), &[], "/app/run.sh", "", "/"),
            Lookup::NotFound
        );
        assert_eq!(
            find_after_mounts(
                rootfs.path(),
                std::slice::from_ref(&bind),
                "/app/run.sh",
                "",
                "/"
            ),
            Lookup::Found
        );
        assert_eq!(
            find_after_mounts(
                rootfs.path(),
                std::slice::from_ref(&bind),
                "run.sh",
                "/app",
                "/"
            ),
            Lookup::Found
        );
        let tmpfs = UserMount::Tmpfs {
            destination: "/app".into(),
            options: vec![],
        };
        assert_eq!(
            find_after_mounts(rootfs.path(), &[bind, tmpfs], "/app/run.sh", "", "/"),
            Lookup::NotFound
        );
    }
}
