//! `kiln logs`, `stop`, `kill`, `wait` and `exec`: containers from any later process.

use crate::containers::find;
use anyhow::{anyhow, bail, Context, Result};
use kiln_runtime::container::{self, ContainerDirs, Record, Waited};
use kiln_runtime::{logs, RuntimeError};
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

#[derive(clap::Args)]
pub struct LogsArgs {
    /// Container (name or ID)
    container: String,
    /// Follow the log until the container exits
    #[arg(short, long)]
    follow: bool,
    /// Prefix each line with its timestamp
    #[arg(short, long)]
    timestamps: bool,
}

#[derive(clap::Args)]
pub struct StopArgs {
    /// Containers (names or IDs)
    #[arg(required = true)]
    containers: Vec<String>,
    /// Seconds to wait after SIGTERM before SIGKILL
    #[arg(short, long, default_value_t = 10)]
    time: u64,
}

#[derive(clap::Args)]
pub struct KillArgs {
    /// Containers (names or IDs)
    #[arg(required = true)]
    containers: Vec<String>,
    /// Signal to send (name or number)
    #[arg(short, long, default_value = "KILL")]
    signal: String,
}

#[derive(clap::Args)]
pub struct WaitArgs {
    /// Containers (names or IDs)
    #[arg(required = true)]
    containers: Vec<String>,
}

#[derive(clap::Args)]
#[command(trailing_var_arg = true)]
pub struct ExecArgs {
    /// Set an environment variable
    #[arg(short, long = "env")]
    env: Vec<String>,
    /// Working directory
    #[arg(short, long)]
    workdir: Option<String>,
    /// User as `uid[:gid]`
    #[arg(short, long)]
    user: Option<String>,
    /// Keep standard input open (the default: it is inherited)
    #[arg(short, long)]
    interactive: bool,
    /// Container, then the command and its arguments
    #[arg(required = true, num_args = 2.., allow_hyphen_values = true)]
    container_and_command: Vec<String>,
}

pub fn run_logs(root: &Path, args: LogsArgs) -> Result<ExitCode> {
    let r = find(root, &args.container)?;
    let dir = ContainerDirs::new(root, &r.id).dir;
    let mut offset = 0;
    loop {
        let (entries, next) = logs::read_from(&dir, offset)
            .with_context(|| format!("cannot read the log of {}", r.name))?;
        offset = next;
        for e in entries {
            let text = if args.timestamps {
                format!("{} {}", e.time, e.log)
            } else {
                e.log
            };
            if e.stream == "stderr" {
                let _ = std::io::stderr().write_all(text.as_bytes());
            } else {
                let _ = std::io::stdout().write_all(text.as_bytes());
            }
        }
        let _ = std::io::stdout().flush();
        if !args.follow {
            break;
        }
        let alive = Record::list(root)
            .into_iter()
            .find(|x| x.id == r.id)
            .is_some_and(|x| container::is_running(&x));
        if !alive {
            // One last read for lines written just before the exit.
            let (entries, _) = logs::read_from(&dir, offset).unwrap_or_default();
            for e in entries {
                let _ = std::io::stdout().write_all(e.log.as_bytes());
            }
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(ExitCode::SUCCESS)
}

pub fn run_stop(root: &Path, args: StopArgs) -> Result<ExitCode> {
    Ok(super::each(&args.containers, |key| {
        let r = find(root, key)?;
        container::stop(root, &r, Duration::from_secs(args.time)).map_err(|e| match e {
            // Named as the user named it.
            RuntimeError::NotStopped { .. } => RuntimeError::NotStopped {
                container: key.to_string(),
            },
            e => e,
        })?;
        println!("{key}");
        Ok(())
    }))
}

pub fn run_kill(root: &Path, args: KillArgs) -> Result<ExitCode> {
    let sig = container::parse_signal(&args.signal)?;
    for key in &args.containers {
        let r = find(root, key)?;
        container::signal(&r, sig)?;
        println!("{key}");
    }
    Ok(ExitCode::SUCCESS)
}

pub fn run_wait(root: &Path, args: WaitArgs) -> Result<ExitCode> {
    for key in &args.containers {
        let r = find(root, key)?;
        let Waited::Exited(done) = container::wait_exit(root, &r.id, None) else {
            bail!("container {key} disappeared");
        };
        println!(
            "{}",
            done.exit_code.map_or("-1".to_string(), |c| c.to_string())
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub fn run_exec(root: &Path, args: ExecArgs) -> Result<ExitCode> {
    let (key, cmd) = args
        .container_and_command
        .split_first()
        .expect("clap requires two values");
    let r = find(root, key)?;
    if !container::is_running(&r) {
        bail!(crate::output::with_hint(
            anyhow!("container {key} is not running"),
            "`kiln ps -a` shows its state; `kiln logs` its output",
        ));
    }
    if let Some(rt) = &r.runtime {
        bail!("container {key} runs under the external runtime {rt}; `kiln exec` needs the built-in one");
    }
    // `-e KEY` passes the host's value, and nothing when it is unset, as in `kiln run`.
    let env = kiln_runtime::launch::options::resolve_env(&args.env, |k| std::env::var(k).ok())
        .into_iter()
        .collect();
    // Names resolve in the container's own /etc/passwd and /etc/group, read through its
    // root (/proc/PID/root) with every path confined to it.
    let user = match &args.user {
        None => None,
        Some(u) => {
            let rootfs = std::path::PathBuf::from(format!("/proc/{}/root", r.pid.unwrap_or(0)));
            let eu = kiln_runtime::user::resolve(
                u,
                container::read_in_root(&rootfs, "/etc/passwd").as_deref(),
                container::read_in_root(&rootfs, "/etc/group").as_deref(),
            )?;
            Some((eu.uid, eu.gid))
        }
    };
    let _ = args.interactive;
    let exit = container::exec(
        &ContainerDirs::new(root, &r.id),
        &r.id,
        cmd.to_vec(),
        env,
        args.workdir.clone(),
        user,
    )?;
    Ok(ExitCode::from(exit.code().clamp(0, 255) as u8))
}
