//! `kiln run`: a container from an image, in the foreground or detached. The flags
//! become a [`RunConfig`]; `kiln_runtime::launch` does the rest.

use crate::output::with_hint;
use anyhow::{anyhow, bail, Result};
use kiln_runtime::launch::options::{self, NetworkMode};
use kiln_runtime::launch::{volumes, Attach, Forked, Pending, RunConfig, RunImage};
use kiln_runtime::RuntimeError;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

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
    pull: crate::registry_flags::PullPolicy,
    /// Platform of the image to pull
    #[arg(long)]
    platform: Option<String>,
    #[command(flatten)]
    registry: crate::registry_flags::RegistryFlags,
    /// Image, then the command and its arguments
    #[arg(required = true, allow_hyphen_values = true)]
    image_and_command: Vec<String>,
}

pub fn run(root: &Path, args: Args) -> Result<ExitCode> {
    match launch(root, args) {
        Ok(code) => Ok(code),
        Err(e) => {
            crate::output::print_error(&e);
            let code = e
                .chain()
                .find_map(|c| c.downcast_ref::<RuntimeError>())
                .map_or(kiln_runtime::launch::EXIT_KILN, RuntimeError::exit_code);
            Ok(ExitCode::from(code))
        }
    }
}

/// The flags as the launcher takes them, every value checked before anything is made.
fn config(root: &Path, args: &Args, cmd: &[String]) -> Result<RunConfig> {
    if args.privileged {
        bail!(with_hint(
            anyhow!("kiln does not run privileged containers"),
            "grant only what the container needs: `--cap-add CAP`, `--device /dev/X` or \
             `--gpus all`, `--security-opt seccomp=unconfined`"
        ));
    }
    let network = NetworkMode::parse(&args.network, &args.publish, kiln_runtime::pasta::binary())?;
    let parse_size = |s: &Option<String>| s.as_deref().map(options::parse_size).transpose();
    let mut mounts = (args.volume.iter().map(|v| volumes::parse_volume(root, v)))
        .chain(args.mount.iter().map(|m| volumes::parse_mount(root, m)))
        .collect::<Result<Vec<_>, _>>()?;
    mounts.extend(args.tmpfs.iter().map(|t| volumes::parse_tmpfs(t)));
    let env = options::env_entries(&args.env_file, &args.env)?;
    let cfg = RunConfig {
        name: args.name.clone().unwrap_or_default(),
        entrypoint: args.entrypoint.clone(),
        cmd: cmd.to_vec(),
        env: options::resolve_env(&env, |k| std::env::var(k).ok()),
        user: args.user.clone(),
        workdir: args.workdir.clone(),
        hostname: args.hostname.clone(),
        init: args.init.then(options::find_init).transpose()?,
        network,
        mounts,
        read_only: args.read_only,
        tty: args.tty,
        interactive: args.interactive,
        memory: parse_size(&args.memory)?,
        cpus: args.cpus,
        pids_limit: args.pids_limit,
        shm_size: parse_size(&args.shm_size)?.map(|s| s as u64),
        cap_add: args.cap_add.clone(),
        cap_drop: args.cap_drop.clone(),
        security: options::parse_security_opts(&args.security_opt)?,
        rlimits: options::rlimits(&args.ulimit)?,
        devices: kiln_runtime::launch::device_edits(
            &args.device,
            args.gpus.as_deref(),
            &args.cdi_spec_dir,
        )?,
        runtime: args
            .runtime
            .as_deref()
            .map(options::find_runtime)
            .transpose()?,
        remove: args.rm,
    };
    cfg.validate()?;
    Ok(cfg)
}

fn launch(root: &Path, mut args: Args) -> Result<ExitCode> {
    crate::project_cli::run_defaults(
        root,
        crate::project_cli::RunFlags {
            image: &mut args.image_and_command[0],
            network: &args.network,
            publish: &mut args.publish,
            cpus: &mut args.cpus,
            memory: &mut args.memory,
            gpus: &mut args.gpus,
        },
    )?;
    let (image_ref, user_cmd) = args
        .image_and_command
        .split_first()
        .expect("clap requires the image");
    let mut cfg = config(root, &args, user_cmd)?;
    let id = options::random_id();
    if cfg.name.is_empty() {
        cfg.name = id[..12].to_string();
    }
    if kiln_runtime::container::Record::list(root)
        .iter()
        .any(|r| r.name == cfg.name)
    {
        bail!(with_hint(
            anyhow!("the container name `{}` is already in use", cfg.name),
            "remove that container with `kiln rm`, or choose another `--name`",
        ));
    }
    // In the foreground the network comes up while the image is resolved and unpacked.
    let mut pending = match args.detach {
        false => Some(Pending::begin(root, &id, &cfg.network)?),
        true => None,
    };
    let store = super::open_store(root)?;
    let resolved = crate::registry_flags::resolve_or_pull(
        &store,
        image_ref,
        args.pull,
        args.platform.as_deref(),
        &args.registry,
    )?;
    let image = store.image(&resolved.descriptor)?;
    let dirs = kiln_runtime::container::ContainerDirs::new(root, &id);
    let prepared = (|| -> Result<Vec<PathBuf>> {
        // The container is a GC root from now on: prune keeps its image's blobs and
        // snapshots, even once the image is untagged, until the container is removed.
        let missing = store.add_root(
            &id,
            &format!("container {}", cfg.name),
            &kiln_store::Store::image_items(&image),
        )?;
        if missing
            .iter()
            .any(|h| matches!(h, kiln_store::lease::Held::Blob(_)))
        {
            bail!("image {image_ref} was removed while the container was created");
        }
        Ok(kiln_runtime::snapshot::prepare(
            &store,
            &image.manifest,
            &image.config,
        )?)
    })();
    let lowers = prepared.inspect_err(|_| {
        let _ = kiln_runtime::container::remove_dirs(&dirs);
    })?;
    let attach = if args.detach {
        match kiln_runtime::launch::fork_supervisor()? {
            Forked::Parent(started) => {
                started?;
                println!("{id}");
                return Ok(ExitCode::SUCCESS);
            }
            Forked::Supervisor(notify) => {
                match Pending::begin(root, &id, &cfg.network) {
                    Ok(p) => pending = Some(p),
                    Err(e) => {
                        use std::io::Write;
                        let _ = writeln!(&notify, "error {} {e}", e.exit_code());
                        let _ = kiln_runtime::container::remove_dirs(&dirs);
                        return Err(e.into());
                    }
                }
                Attach::Detached(notify)
            }
        }
    } else {
        Attach::Foreground
    };
    let pending = pending.expect("begun in the foreground or in the supervisor");
    let code = pending.run(
        root,
        &cfg,
        &RunImage {
            reference: image_ref,
            info: &image,
            lowers: &lowers,
        },
        attach,
    )?;
    Ok(ExitCode::from(code.clamp(0, 255) as u8))
}
