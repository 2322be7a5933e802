//! `kiln run`: a container from an image, in the foreground.

use crate::output::with_hint;
use anyhow::{anyhow, bail, Context, Result};
use kiln_runtime::container::{self, ContainerDirs, Lookup, Record};
use kiln_runtime::spec::{self, Network, Seccomp, SpecOptions, UserMount};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Docker's exit codes for failures before the command runs.
const EXIT_KILN: u8 = 125;
const EXIT_NOT_EXECUTABLE: u8 = 126;
const EXIT_NOT_FOUND: u8 = 127;

/// The PATH a container gets when its image sets none (Docker's).
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

#[derive(clap::Args)]
#[command(trailing_var_arg = true)]
pub struct Args {
    /// Remove the container when it exits
    #[arg(long)]
    rm: bool,
    /// Run in the background and print the container ID; a supervisor process keeps its
    /// logs and exit status
    #[arg(short, long)]
    detach: bool,
    /// Keep standard input open and connected to the container
    #[arg(short, long)]
    interactive: bool,
    /// Give the container a terminal (relayed to ours, raw mode while it runs)
    #[arg(short, long)]
    tty: bool,
    /// Run a small init (tini, as Docker's `docker-init`) as PID 1 that forwards signals
    /// and reaps zombies
    #[arg(long)]
    init: bool,
    /// Name of the container
    #[arg(long)]
    name: Option<String>,
    /// Set an environment variable (`KEY=VALUE`, or `KEY` to pass the host's value)
    #[arg(short, long = "env")]
    env: Vec<String>,
    /// Read environment variables from a file (`KEY=VALUE` lines)
    #[arg(long)]
    env_file: Vec<PathBuf>,
    /// Working directory inside the container
    #[arg(short, long)]
    workdir: Option<String>,
    /// User (name or uid, optionally `:group` or `:gid`)
    #[arg(short, long)]
    user: Option<String>,
    /// Override the image's entrypoint
    #[arg(long)]
    entrypoint: Option<String>,
    /// Bind mount `HOST:CONTAINER[:ro|rw]`, or a named volume `NAME:CONTAINER[:ro]`
    #[arg(short, long = "volume")]
    volume: Vec<String>,
    /// Mount `type=bind|volume|tmpfs,source=...,target=...[,readonly]`
    #[arg(long)]
    mount: Vec<String>,
    /// Mount a tmpfs at `PATH[:OPTIONS]`
    #[arg(long)]
    tmpfs: Vec<String>,
    /// Mount the root filesystem read-only
    #[arg(long)]
    read_only: bool,
    /// Network: `private` (own namespace, user-mode networking by pasta, the default),
    /// `none` (own namespace, loopback only) or `host`
    #[arg(long, default_value = "private")]
    network: String,
    /// Publish a container port on the host: `[IP:]HOST_PORT:CONTAINER_PORT[/tcp|udp]`
    #[arg(short, long)]
    publish: Vec<String>,
    /// Container host name
    #[arg(long)]
    hostname: Option<String>,
    /// Memory limit (e.g. `512m`, `2g`)
    #[arg(short, long)]
    memory: Option<String>,
    /// Number of CPUs (e.g. `1.5`)
    #[arg(long)]
    cpus: Option<f64>,
    /// Maximum number of processes
    #[arg(long)]
    pids_limit: Option<i64>,
    /// Size of /dev/shm (e.g. `1g`)
    #[arg(long)]
    shm_size: Option<String>,
    /// Resource limit `NAME=SOFT[:HARD]` (e.g. `nofile=1024:2048`)
    #[arg(long)]
    ulimit: Vec<String>,
    /// Add a Linux capability
    #[arg(long)]
    cap_add: Vec<String>,
    /// Drop a Linux capability
    #[arg(long)]
    cap_drop: Vec<String>,
    /// `no-new-privileges[=true|false]`, `seccomp=PROFILE.json|unconfined`
    #[arg(long)]
    security_opt: Vec<String>,
    /// Refused: kiln does not run privileged containers (every capability, every host
    /// device, no seccomp, a writable /sys). Grant what the container needs instead
    #[arg(long, hide = true)]
    privileged: bool,
    /// Add a device: a CDI name (`vendor.com/class=name`, e.g. `nvidia.com/gpu=0`) or a
    /// host node `HOST[:CONTAINER][:rwm]`
    #[arg(long)]
    device: Vec<String>,
    /// GPUs through CDI: `all`, a count, or `device=0,1` (NVIDIA's CDI spec must exist,
    /// e.g. from `nvidia-ctk cdi generate`)
    #[arg(long)]
    gpus: Option<String>,
    /// Directories of CDI specs (default: /etc/cdi and /var/run/cdi; also KILN_CDI_SPEC_DIRS)
    #[arg(long, env = "KILN_CDI_SPEC_DIRS", value_delimiter = ':')]
    cdi_spec_dir: Vec<PathBuf>,
    /// Run the bundle with this OCI runtime binary (e.g. `runc`) instead of the built-in
    /// one (youki's libcontainer)
    #[arg(long, value_name = "PATH")]
    runtime: Option<PathBuf>,
    /// Pull the image: `missing` (when it is not in the store), `always`, `never`
    #[arg(long, value_enum, default_value = "missing")]
    pull: super::registry::PullPolicy,
    /// Platform of the image to pull
    #[arg(long)]
    platform: Option<String>,
    #[command(flatten)]
    registry: super::registry::RegistryFlags,
    /// Image, then the command and its arguments
    #[arg(required = true, allow_hyphen_values = true)]
    image_and_command: Vec<String>,
}

/// Docker's size syntax: a number with an optional b/k/m/g/t suffix (binary units).
pub fn parse_size(s: &str) -> Result<i64> {
    let t = s.trim().to_ascii_lowercase();
    let t = t
        .strip_suffix('b')
        .filter(|x| !x.is_empty() && !x.ends_with(|c: char| c.is_ascii_digit()))
        .unwrap_or(&t);
    let (num, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1i64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        Some('t') => (&t[..t.len() - 1], 1 << 40),
        Some('b') => (&t[..t.len() - 1], 1),
        _ => (t, 1),
    };
    let n: f64 = num
        .parse()
        .ok()
        .filter(|n: &f64| n.is_finite() && *n >= 0.0)
        .ok_or_else(|| {
            with_hint(
                anyhow!("invalid size `{s}`"),
                "sizes look like `512m`, `2g`, `100000`",
            )
        })?;
    Ok((n * mult as f64) as i64)
}

/// A named volume used for the first time gets what the image has at its mount point
/// (files, owners, modes, links), as Docker does; later runs see the volume as they left
/// it. `volumes/NAME/.populated` marks a volume that was offered its content once.
fn populate_new_volumes(root: &Path, rootfs: &Path, mounts: &[UserMount]) -> Result<()> {
    let volumes = root.join("volumes");
    for m in mounts {
        let UserMount::Bind {
            source,
            destination,
            ..
        } = m
        else {
            continue;
        };
        let data = Path::new(source);
        let Some(vol) = data
            .parent()
            .filter(|v| v.parent() == Some(volumes.as_path()))
        else {
            continue;
        };
        if data.file_name() != Some(std::ffi::OsStr::new("_data")) {
            continue;
        }
        let marker = vol.join(".populated");
        if marker.exists() {
            continue;
        }
        let empty = std::fs::read_dir(data)
            .map(|mut d| d.next().is_none())
            .unwrap_or(false);
        if empty {
            copy_from_image(rootfs, destination, data).with_context(|| {
                format!(
                    "cannot fill volume {} from the image's {destination}",
                    vol.display()
                )
            })?;
        }
        std::fs::write(&marker, b"")
            .with_context(|| format!("cannot write {}", marker.display()))?;
    }
    Ok(())
}

/// Copies the directory `path` of the root filesystem (resolved inside it: links cannot
/// lead out) into `dest`, keeping owners, modes, times and symlinks; nothing when the
/// image has no directory there.
fn copy_from_image(rootfs: &Path, path: &str, dest: &Path) -> Result<()> {
    use rustix::fs::{openat2, Mode, OFlags, ResolveFlags};
    let root = rustix::fs::open(rootfs, OFlags::PATH | OFlags::DIRECTORY, Mode::empty())?;
    let Ok(fd) = openat2(
        &root,
        path.trim_start_matches('/'),
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    ) else {
        return Ok(());
    };
    use std::os::fd::AsRawFd;
    let src = PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()));
    copy_tree(&src, dest)?;
    let md = std::fs::metadata(&src)?;
    copy_meta(dest, &md)?;
    Ok(())
}

fn copy_meta(dest: &Path, md: &std::fs::Metadata) -> Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    std::os::unix::fs::lchown(dest, Some(md.uid()), Some(md.gid()))?;
    if !md.file_type().is_symlink() {
        std::fs::set_permissions(dest, std::fs::Permissions::from_mode(md.mode() & 0o7777))?;
    }
    Ok(())
}

/// Recursive copy that never follows symlinks (they are copied as links).
fn copy_tree(src: &Path, dest: &Path) -> Result<()> {
    for entry in std::fs::read_dir(src)? {
        let entry = entry?;
        let from = entry.path();
        let to = dest.join(entry.file_name());
        let md = std::fs::symlink_metadata(&from)?;
        let ft = md.file_type();
        if ft.is_dir() {
            std::fs::create_dir(&to)?;
            copy_tree(&from, &to)?;
        } else if ft.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&from)?, &to)?;
        } else if ft.is_file() {
            std::fs::copy(&from, &to)?;
        } else {
            // Devices, sockets and fifos have no place in a data volume.
            continue;
        }
        copy_meta(&to, &md)?;
    }
    Ok(())
}

/// Docker's rule for volume names.
fn is_volume_name(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 2
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

/// The directory of a named volume in the store (`volumes/NAME/_data`), created on first use.
fn volume_dir(root: &Path, name: &str) -> Result<PathBuf> {
    let dir = root.join("volumes").join(name).join("_data");
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("cannot create volume {name} at {}", dir.display()))?;
    Ok(dir)
}

fn parse_volume(root: &Path, v: &str) -> Result<UserMount> {
    let parts: Vec<&str> = v.split(':').collect();
    let bad = || {
        with_hint(
            anyhow!("invalid volume specification `{v}`"),
            "use `-v /host/path:/container/path[:ro]`",
        )
    };
    let (src, dst, mode) = match parts.as_slice() {
        [s, d] => (*s, *d, "rw"),
        [s, d, m] => (*s, *d, *m),
        _ => return Err(bad()),
    };
    if !dst.starts_with('/') || src.is_empty() {
        return Err(bad());
    }
    let src = if src.starts_with('/') {
        src.to_string()
    } else if is_volume_name(src) {
        volume_dir(root, src)?.display().to_string()
    } else {
        return Err(with_hint(
            anyhow!("invalid volume specification `{v}`: `{src}` is neither an absolute path nor a volume name"),
            "use `-v /host/path:/container/path` or `-v NAME:/container/path`",
        ));
    };
    let src = src.as_str();
    let readonly = match mode {
        "ro" => true,
        "rw" | "z" | "Z" => false,
        _ => return Err(bad()),
    };
    if !Path::new(src).exists() {
        bail!("invalid volume specification `{v}`: {src} does not exist");
    }
    Ok(UserMount::Bind {
        source: src.to_string(),
        destination: dst.to_string(),
        readonly,
    })
}

fn parse_mount(root: &Path, m: &str) -> Result<UserMount> {
    let mut kind = "volume";
    let (mut src, mut dst, mut ro) = (None, None, false);
    let mut opts = Vec::new();
    for kv in m.split(',') {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        match k {
            "type" => kind = v,
            "source" | "src" => src = Some(v.to_string()),
            "target" | "destination" | "dst" => dst = Some(v.to_string()),
            "readonly" | "ro" => ro = v.is_empty() || v == "true" || v == "1",
            "tmpfs-size" => opts.push(format!("size={}", parse_size(v)?)),
            "tmpfs-mode" => opts.push(format!("mode={v}")),
            _ => bail!("invalid mount `{m}`: unknown option `{k}`"),
        }
    }
    let dst = dst.ok_or_else(|| anyhow!("invalid mount `{m}`: no target"))?;
    match kind {
        "bind" => {
            let src = src.ok_or_else(|| anyhow!("invalid mount `{m}`: no source"))?;
            if !src.starts_with('/') {
                bail!("invalid mount `{m}`: a bind source is an absolute host path");
            }
            parse_volume(
                root,
                &format!("{src}:{dst}:{}", if ro { "ro" } else { "rw" }),
            )
        }
        "volume" => {
            // Without a source: an anonymous volume, named by a random ID as Docker does.
            let name = src.unwrap_or_else(random_id);
            if !is_volume_name(&name) {
                bail!("invalid mount `{m}`: `{name}` is not a volume name");
            }
            parse_volume(
                root,
                &format!("{name}:{dst}:{}", if ro { "ro" } else { "rw" }),
            )
        }
        "tmpfs" => Ok(UserMount::Tmpfs {
            destination: dst,
            options: opts,
        }),
        other => {
            bail!("invalid mount `{m}`: type `{other}` is not supported (bind, volume, tmpfs)")
        }
    }
}

fn random_id() -> String {
    let mut b = [0u8; 32];
    let _ = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut b));
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub fn run(root: &Path, args: Args) -> Result<ExitCode> {
    match prepare_and_run(root, args) {
        Ok(code) => Ok(code),
        Err(e) => {
            crate::output::print_error(&e);
            let code = e
                .downcast_ref::<ExecError>()
                .map(|x| x.code)
                .unwrap_or(EXIT_KILN);
            Ok(ExitCode::from(code))
        }
    }
}

/// A failure with the exit code Docker gives it.
#[derive(Debug)]
struct ExecError {
    code: u8,
    message: String,
}
impl std::fmt::Display for ExecError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}
impl std::error::Error for ExecError {}

fn prepare_and_run(root: &Path, mut args: Args) -> Result<ExitCode> {
    // `kiln run DIR` of a kiln project: built when stale, then run with its ports and
    // resources (flags given win).
    if let Some(dir) = args
        .image_and_command
        .first()
        .and_then(|a| super::project::project_dir(a))
    {
        let (image, project) = super::project::build_for_run(root, &dir)?;
        args.image_and_command[0] = image;
        if args.publish.is_empty() && !matches!(args.network.as_str(), "none" | "host") {
            args.publish = project.ports.iter().map(|p| format!("{p}:{p}")).collect();
        }
        if args.cpus.is_none() {
            args.cpus = project.manifest.resources.cpus.map(|c| c.value());
        }
        if args.memory.is_none() {
            args.memory = project.memory_bytes.map(|b| b.to_string());
        }
        if args.gpus.is_none() && project.manifest.resources.gpus > 0 {
            args.gpus = Some(project.manifest.resources.gpus.to_string());
        }
    }
    let (image_ref, user_cmd) = args
        .image_and_command
        .split_first()
        .expect("clap requires the image");
    // Validate every flag before anything is created.
    if args.privileged {
        bail!(with_hint(
            anyhow!("kiln does not run privileged containers"),
            "grant only what the container needs: `--cap-add CAP`, `--device /dev/X` or \
             `--gpus all`, `--security-opt seccomp=unconfined`"
        ));
    }
    let publish = args
        .publish
        .iter()
        .map(|p| kiln_runtime::pasta::Publish::parse(p))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let (network, pasta) = match args.network.as_str() {
        "private" | "default" | "bridge" => match kiln_runtime::pasta::binary() {
            Some(p) => (Network::None, Some(p)),
            None if publish.is_empty() => (Network::None, None),
            None => bail!(with_hint(
                anyhow!("publishing ports needs `pasta`, which is not installed"),
                "apt-get install passt"
            )),
        },
        "none" if !publish.is_empty() => bail!("ports cannot be published with `--network none`"),
        "none" => (Network::None, None),
        "host" => (Network::Host, None),
        other => bail!(with_hint(
            anyhow!("unknown network `{other}`"),
            "use `--network private`, `none` or `host`"
        )),
    };
    let memory = args.memory.as_deref().map(parse_size).transpose()?;
    if memory.is_some_and(|m| m < 6 << 20) {
        bail!("minimum memory limit allowed is 6MB");
    }
    let shm_size = args
        .shm_size
        .as_deref()
        .map(parse_size)
        .transpose()?
        .map(|s| s as u64);
    let mut mounts = Vec::new();
    for v in &args.volume {
        mounts.push(parse_volume(root, v)?);
    }
    for m in &args.mount {
        mounts.push(parse_mount(root, m)?);
    }
    for t in &args.tmpfs {
        let (dst, opts) = t.split_once(':').unwrap_or((t.as_str(), ""));
        mounts.push(UserMount::Tmpfs {
            destination: dst.to_string(),
            options: opts
                .split(',')
                .filter(|o| !o.is_empty())
                .map(str::to_string)
                .collect(),
        });
    }
    let mut no_new_privileges = true;
    let mut seccomp = Seccomp::Default;
    for opt in &args.security_opt {
        let (k, v) = opt.split_once(['=', ':']).unwrap_or((opt.as_str(), "true"));
        match k {
            "no-new-privileges" => no_new_privileges = v != "false",
            "seccomp" if v == "unconfined" => seccomp = Seccomp::Unconfined,
            "seccomp" => {
                let text = std::fs::read_to_string(v)
                    .with_context(|| format!("cannot read seccomp profile {v}"))?;
                seccomp = Seccomp::Profile(
                    serde_json::from_str(&text)
                        .with_context(|| format!("{v}: not a JSON seccomp profile"))?,
                );
            }
            _ => bail!("unknown --security-opt `{opt}` (no-new-privileges, seccomp)"),
        }
    }
    let mut rlimits = Vec::new();
    let (soft, hard) = spec::clamp_rlimit(rustix::process::Resource::Nofile, 1 << 20, 1 << 20);
    rlimits.push(("RLIMIT_NOFILE".to_string(), soft, hard));
    for u in &args.ulimit {
        let (name, vals) = u
            .split_once('=')
            .ok_or_else(|| anyhow!("invalid --ulimit `{u}`: use NAME=SOFT[:HARD]"))?;
        let (s, h) = vals.split_once(':').unwrap_or((vals, vals));
        let (s, h): (u64, u64) = (
            s.parse().map_err(|_| anyhow!("invalid --ulimit `{u}`"))?,
            h.parse().map_err(|_| anyhow!("invalid --ulimit `{u}`"))?,
        );
        let resource = match name {
            "nofile" => rustix::process::Resource::Nofile,
            "nproc" => rustix::process::Resource::Nproc,
            "core" => rustix::process::Resource::Core,
            "memlock" => rustix::process::Resource::Memlock,
            "stack" => rustix::process::Resource::Stack,
            _ => bail!("invalid --ulimit `{u}`: unknown resource `{name}`"),
        };
        let (s, h) = spec::clamp_rlimit(resource, s, h);
        let key = format!("RLIMIT_{}", name.to_ascii_uppercase());
        rlimits.retain(|(k, _, _)| *k != key);
        rlimits.push((key, s, h));
    }
    let runtime = match &args.runtime {
        None => None,
        Some(r) if r.components().count() > 1 => Some(r.clone()),
        Some(r) => Some(
            std::env::var_os("PATH")
                .map(|p| {
                    std::env::split_paths(&p)
                        .map(|d| d.join(r))
                        .find(|c| c.is_file())
                })
                .unwrap_or_default()
                .ok_or_else(|| {
                    with_hint(
                        anyhow!("OCI runtime `{}` not found in $PATH", r.display()),
                        "give its full path, e.g. `--runtime /usr/sbin/runc`",
                    )
                })?,
        ),
    };
    if let Some(r) = &runtime {
        if !r.is_file() {
            bail!("OCI runtime {} does not exist", r.display());
        }
    }
    let device_edits = device_edits(&args)?;
    let init = if args.init { Some(find_init()?) } else { None };
    if let Some(path) = &init {
        mounts.push(UserMount::Bind {
            source: path.display().to_string(),
            destination: INIT_PATH.to_string(),
            readonly: true,
        });
    }
    let mut env_args: Vec<String> = Vec::new();
    for f in &args.env_file {
        let text = std::fs::read_to_string(f)
            .with_context(|| format!("cannot read env file {}", f.display()))?;
        env_args.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_string),
        );
    }
    env_args.extend(args.env.iter().cloned());

    let store = super::open_store(root)?;
    let id = random_id();
    let name = args.name.clone().unwrap_or_else(|| id[..12].to_string());
    if Record::list(root).iter().any(|r| r.name == name) {
        bail!(with_hint(
            anyhow!("the container name `{name}` is already in use"),
            "remove that container with `kiln rm`, or choose another `--name`",
        ));
    }
    let resolved = super::registry::resolve_or_pull(
        &store,
        image_ref,
        args.pull,
        args.platform.as_deref(),
        &args.registry,
    )?;
    let image = store.image(&resolved.descriptor)?;
    // The container is a GC root from now on: prune keeps its image's blobs and
    // snapshots, even once the image is untagged, until the container is removed.
    let missing = store.add_root(
        &id,
        &format!("container {name}"),
        &kiln_store::Store::image_items(&image),
    )?;
    let blob_missing = missing
        .iter()
        .any(|h| matches!(h, kiln_store::lease::Held::Blob(_)));
    let lowers = match !blob_missing {
        true => kiln_runtime::snapshot::prepare(&store, &image.manifest, &image.config)
            .map_err(anyhow::Error::from),
        false => Err(anyhow!(
            "image {image_ref} was removed while the container was created"
        )),
    };
    let lowers = lowers.inspect_err(|_| {
        let _ = container::remove_dirs(&ContainerDirs::new(root, &id));
    })?;
    let cfg = image.config.config.clone().unwrap_or_default();

    // Detached: fork the supervisor, which owns the container from here on; this process
    // waits only until the container has started (or failed to) and prints its ID.
    let mut notify: Option<std::fs::File> = None;
    if args.detach {
        let (r, w) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).context("cannot create a pipe")?;
        // SAFETY: kiln is single-threaded here; the child only continues this function.
        match unsafe { nix::unistd::fork() }.context("cannot fork the container supervisor")? {
            nix::unistd::ForkResult::Parent { .. } => {
                drop(w);
                // One line: `started PID` or `error CODE MESSAGE` (the supervisor keeps
                // running, so this pipe is not closed when the container starts).
                let mut status = String::new();
                std::io::BufRead::read_line(
                    &mut std::io::BufReader::new(std::fs::File::from(r)),
                    &mut status,
                )?;
                if status.starts_with("started") {
                    println!("{id}");
                    return Ok(ExitCode::SUCCESS);
                }
                let (code, message) = status
                    .strip_prefix("error ")
                    .and_then(|e| e.split_once(' '))
                    .map(|(c, m)| (c.parse().unwrap_or(EXIT_KILN), m.trim().to_string()))
                    .unwrap_or((
                        EXIT_KILN,
                        "the container supervisor exited before the container started".into(),
                    ));
                return Err(ExecError { code, message }.into());
            }
            nix::unistd::ForkResult::Child => {
                drop(r);
                let _ = nix::unistd::setsid();
                // Away from the terminal: the supervisor outlives this command.
                if let Ok(null) = std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open("/dev/null")
                {
                    for fd in 0..3 {
                        let _ = nix::unistd::dup2(std::os::fd::AsRawFd::as_raw_fd(&null), fd);
                    }
                }
                notify = Some(std::fs::File::from(w));
            }
        }
    }
    let result = supervise(
        root,
        &args,
        &id,
        &name,
        image_ref,
        user_cmd,
        &image,
        &lowers,
        &cfg,
        Validated {
            init_path: init,
            pasta,
            publish,
            device_edits,
            runtime,
            network,
            memory,
            shm_size,
            mounts,
            no_new_privileges,
            seccomp,
            rlimits,
            env_args,
        },
        notify.as_mut(),
    );
    if let (Err(e), Some(n)) = (&result, notify.as_mut()) {
        // The parent is still waiting: tell it why.
        let code = e
            .downcast_ref::<ExecError>()
            .map(|x| x.code)
            .unwrap_or(EXIT_KILN);
        let _ = writeln!(n, "error {code} {}", format!("{e:#}").replace('\n', " "));
    }
    result
}

/// Where `--init` puts the init binary in the container (Docker's path).
const INIT_PATH: &str = "/sbin/docker-init";

/// A static init binary on the host: tini as Debian's docker.io ships it, or tini itself.
fn find_init() -> Result<PathBuf> {
    ["/usr/bin/docker-init", "/usr/bin/tini-static", "/usr/libexec/docker/docker-init", "/usr/local/bin/tini-static"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .ok_or_else(|| {
            with_hint(
                anyhow!("`--init` needs a static init binary (docker-init or tini-static) and none was found"),
                "apt-get install tini",
            )
        })
}

/// `--device` and `--gpus` as container edits: CDI devices from the spec directories,
/// host device nodes as Docker takes them.
fn device_edits(args: &Args) -> Result<kiln_runtime::cdi::Edits> {
    use kiln_runtime::cdi;
    let mut names: Vec<String> = Vec::new();
    let mut edits = cdi::Edits::default();
    for d in &args.device {
        if d.starts_with('/') {
            let e = cdi::host_device(d)?;
            edits.device_nodes.extend(e.device_nodes);
        } else {
            names.push(d.clone());
        }
    }
    if let Some(g) = &args.gpus {
        names.extend(cdi::gpus_to_devices(g)?);
    }
    if names.is_empty() {
        return Ok(edits);
    }
    let dirs: Vec<PathBuf> = if args.cdi_spec_dir.is_empty() {
        cdi::DEFAULT_DIRS.iter().map(PathBuf::from).collect()
    } else {
        args.cdi_spec_dir.clone()
    };
    let dir_refs: Vec<&Path> = dirs.iter().map(PathBuf::as_path).collect();
    let registry = cdi::Registry::load(&dir_refs)?;
    let resolved = registry.resolve(&names).map_err(|e| {
        with_hint(
            e,
            "CDI specs are read from /etc/cdi and /var/run/cdi; for NVIDIA GPUs generate one with `nvidia-ctk cdi generate --output=/etc/cdi/nvidia.yaml`",
        )
    })?;
    edits.env.extend(resolved.env);
    edits.device_nodes.extend(resolved.device_nodes);
    edits.mounts.extend(resolved.mounts);
    edits.hooks.extend(resolved.hooks);
    edits.additional_gids.extend(resolved.additional_gids);
    Ok(edits)
}

/// Flags checked before anything was created.
struct Validated {
    init_path: Option<PathBuf>,
    pasta: Option<PathBuf>,
    publish: Vec<kiln_runtime::pasta::Publish>,
    device_edits: kiln_runtime::cdi::Edits,
    runtime: Option<PathBuf>,
    network: Network,
    memory: Option<i64>,
    shm_size: Option<u64>,
    mounts: Vec<UserMount>,
    no_new_privileges: bool,
    seccomp: Seccomp,
    rlimits: Vec<(String, u64, u64)>,
    env_args: Vec<String>,
}

/// Looks the command up as the container will see it, after every mount (as runc does
/// inside the container): a candidate path under a bind mount's destination is looked up
/// in its source, one under a tmpfs is not there; the rest in the root filesystem.
fn find_after_mounts(
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

/// Mounts the root filesystem, builds the spec and runs the container to its end, then
/// records its exit (and removes it with `--rm`).
#[allow(clippy::too_many_arguments)]
fn supervise(
    root: &Path,
    args: &Args,
    id: &str,
    name: &str,
    image_ref: &str,
    user_cmd: &[String],
    image: &kiln_store::ImageInfo,
    lowers: &[PathBuf],
    cfg: &kiln_oci::ContainerConfig,
    v: Validated,
    mut notify: Option<&mut std::fs::File>,
) -> Result<ExitCode> {
    let Validated {
        init_path,
        pasta,
        publish,
        device_edits,
        runtime,
        network,
        memory,
        shm_size,
        mounts,
        no_new_privileges,
        seccomp,
        rlimits,
        env_args,
    } = v;
    container::private_mount_namespace()?;
    let dirs = ContainerDirs::new(root, id);
    let result = (|| -> Result<ExitCode> {
        // The network first: pasta sets the namespace up while the root filesystem is
        // mounted and the container created, and is waited for right before the
        // application starts, so published ports answer as soon as it listens. Dropped,
        // it stops pasta.
        let netns_path = match network {
            Network::None => {
                let p = dirs.dir.join("netns");
                kiln_runtime::netns::create(&p)?;
                Some(p)
            }
            Network::Host => None,
        };
        let mut pasta_net = match (&pasta, &netns_path) {
            (Some(bin), Some(ns)) => Some(kiln_runtime::pasta::Pasta::start(
                bin,
                ns,
                &publish,
                &dirs.dir.join("pasta.pid"),
            )?),
            _ => None,
        };
        container::mount_rootfs(&dirs, lowers)?;
        let rootfs = dirs.rootfs();
        populate_new_volumes(root, &rootfs, &mounts)?;
        let user_spec = args.user.clone().or(cfg.user.clone()).unwrap_or_default();
        let user = kiln_runtime::user::resolve(
            &user_spec,
            container::read_in_root(&rootfs, "/etc/passwd").as_deref(),
            container::read_in_root(&rootfs, "/etc/group").as_deref(),
        )?;
        let entrypoint: Vec<String> = match &args.entrypoint {
            Some(e) if e.is_empty() => vec![],
            Some(e) => vec![e.clone()],
            None => cfg.entrypoint.clone().unwrap_or_default(),
        };
        let cmd: Vec<String> = if !user_cmd.is_empty() {
            user_cmd.to_vec()
        } else if args.entrypoint.is_some() {
            vec![]
        } else {
            cfg.cmd.clone().unwrap_or_default()
        };
        let argv: Vec<String> = entrypoint.into_iter().chain(cmd).collect();
        if argv.is_empty() {
            bail!(with_hint(
                anyhow!("no command specified"),
                "give a command after the image, or set CMD in the image"
            ));
        }
        let with_init = |argv: Vec<String>| -> Vec<String> {
            if init_path.is_some() {
                [INIT_PATH.to_string(), "--".to_string()]
                    .into_iter()
                    .chain(argv)
                    .collect()
            } else {
                argv
            }
        };
        let hostname = args
            .hostname
            .clone()
            .unwrap_or_else(|| id[..12].to_string());
        let mut env: Vec<String> = cfg.env.clone().unwrap_or_default();
        let mut set = |kv: String| {
            let key = kv.split('=').next().unwrap_or("").to_string();
            env.retain(|e| e.split('=').next() != Some(key.as_str()));
            env.push(kv);
        };
        if !cfg.env.iter().flatten().any(|e| e.starts_with("PATH=")) {
            set(format!("PATH={DEFAULT_PATH}"));
        }
        set(format!("HOSTNAME={hostname}"));
        if !cfg.env.iter().flatten().any(|e| e.starts_with("HOME=")) {
            set(format!("HOME={}", user.home));
        }
        for e in &env_args {
            match e.split_once('=') {
                Some(_) => set(e.clone()),
                None => {
                    if let Ok(v) = std::env::var(e) {
                        set(format!("{e}={v}"));
                    }
                }
            }
        }
        let cwd = args
            .workdir
            .clone()
            .or(cfg.working_dir.clone())
            .filter(|w| !w.is_empty())
            .unwrap_or_else(|| "/".into());
        let path_env = env
            .iter()
            .find_map(|e| e.strip_prefix("PATH="))
            .unwrap_or(DEFAULT_PATH)
            .to_string();
        match find_after_mounts(&rootfs, &mounts, &argv[0], &path_env, &cwd) {
            Lookup::Found => {}
            Lookup::NotFound => {
                return Err(ExecError {
                    code: EXIT_NOT_FOUND,
                    message: format!("exec: \"{}\": executable file not found in $PATH", argv[0]),
                }
                .into())
            }
            Lookup::NotExecutable => {
                return Err(ExecError {
                    code: EXIT_NOT_EXECUTABLE,
                    message: format!("exec: \"{}\": permission denied", argv[0]),
                }
                .into())
            }
        }
        let etc_files = container::write_etc_files(&dirs.dir, &hostname, network == Network::Host)?;
        let netns_path = netns_path.map(|p| p.display().to_string());
        let opts = SpecOptions {
            args: with_init(argv.clone()),
            env,
            cwd,
            uid: user.uid,
            gid: user.gid,
            additional_gids: user.additional_gids,
            hostname,
            terminal: args.tty,
            read_only: args.read_only,
            network,
            mounts: mounts.clone(),
            etc_files,
            memory,
            pids_limit: args.pids_limit,
            cpus: args.cpus,
            shm_size,
            cap_add: args.cap_add.clone(),
            cap_drop: args.cap_drop.clone(),
            no_new_privileges,
            seccomp: seccomp.clone(),
            rlimits: rlimits.clone(),
            cgroup_view: kiln_runtime::cgroupfs::prepare(&dirs.dir, &format!("/kiln/{id}"))
                .with_context(|| {
                    format!("cannot prepare the cgroup view in {}", dirs.dir.display())
                })?,
            cgroups_path: format!("/kiln/{id}"),
            privileged_devices: vec![],
            netns_path,
        };
        let mut config = spec::build(&opts);
        device_edits.apply(&mut config)?;
        let config_path = dirs.bundle().join("config.json");
        std::fs::write(&config_path, serde_json::to_vec_pretty(&config)?)
            .with_context(|| format!("cannot write {}", config_path.display()))?;
        let mut record = Record {
            id: id.to_string(),
            name: name.to_string(),
            image: image_ref.to_string(),
            image_id: image.id.to_string(),
            command: argv,
            created: chrono::Utc::now().to_rfc3339(),
            status: "running".into(),
            exit_code: None,
            pid: None,
            runtime: runtime.as_ref().map(|r| r.display().to_string()),
            manifest: Some(image.manifest_descriptor.clone()),
        };
        record.save(&dirs)?;
        // Detached: the container writes into pipes whose lines become the log.
        let mut pumps = Vec::new();
        let stdio = if notify.is_some() {
            // The log threads are started with every signal blocked, so that only the
            // waiting loop receives them (a thread with SIGCHLD unblocked would swallow
            // it); this thread unblocks them again, or the container would inherit the mask.
            let all = nix::sys::signal::SigSet::all();
            all.thread_block().context("cannot block signals")?;
            let log = std::sync::Arc::new(std::sync::Mutex::new(
                kiln_runtime::logs::LogWriter::open(&dirs.dir, 10 << 20)
                    .context("cannot open the container log")?,
            ));
            let (out_r, out_w) =
                nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).context("cannot create a pipe")?;
            let (err_r, err_w) =
                nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).context("cannot create a pipe")?;
            for (r, stream) in [(out_r, "stdout"), (err_r, "stderr")] {
                let log = log.clone();
                pumps.push(std::thread::spawn(move || {
                    kiln_runtime::logs::pump(std::fs::File::from(r), stream, log)
                }));
            }
            all.thread_unblock().context("cannot unblock signals")?;
            let null = kiln_runtime::container::dev_null().context("cannot open /dev/null")?;
            Some([null.into(), out_w, err_w])
        } else if !args.interactive {
            // As Docker: standard input only with `-i`; output goes straight to ours.
            use std::os::fd::AsFd;
            let null = kiln_runtime::container::dev_null().context("cannot open /dev/null")?;
            let out = kiln_runtime::container::not_dev_null(
                std::io::stdout().as_fd().try_clone_to_owned()?,
            )?;
            let err = kiln_runtime::container::not_dev_null(
                std::io::stderr().as_fd().try_clone_to_owned()?,
            )?;
            Some([null.into(), out, err])
        } else {
            None
        };
        let on_start = |pid: i32| {
            record.pid = Some(pid);
            let _ = record.save(&dirs);
            if let Some(n) = notify.take() {
                let _ = writeln!(n, "started {pid}");
            }
        };
        let exit = match &runtime {
            Some(rt) => {
                // An external runtime creates and starts in one command: the network first.
                if let Some(p) = pasta_net.as_mut() {
                    p.ready()?;
                }
                container::run_external(&dirs, id, rt, stdio, on_start)?
            }
            None => container::run_foreground_after(
                &dirs,
                id,
                stdio,
                args.tty,
                container::OnSignal::Forward,
                || pasta_net.as_mut().map_or(Ok(()), |p| p.ready().map(|_| ())),
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
        record.save(&dirs)?;
        Ok(ExitCode::from(exit.code().clamp(0, 255) as u8))
    })();
    let _ = nix::mount::umount2(&dirs.rootfs(), nix::mount::MntFlags::MNT_DETACH);
    if args.rm || result.is_err() {
        container::remove_dirs(&dirs)?;
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("32m").unwrap(), 32 << 20);
        assert_eq!(parse_size("1G").unwrap(), 1 << 30);
        assert_eq!(parse_size("512kb").unwrap(), 512 << 10);
        assert_eq!(parse_size("1000").unwrap(), 1000);
        assert_eq!(parse_size("100b").unwrap(), 100);
        assert!(parse_size("lots").is_err());
        assert!(parse_size("-1m").is_err());
    }
}
