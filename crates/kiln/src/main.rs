//! `kiln`: the command-line interface. It parses flags, calls the library crates and
//! prints; the logic lives in the libraries.

mod build_cli;
mod commands;
mod containers;
mod image_env;
mod output;
mod project_cli;
mod registry_flags;
mod tables;
mod template;
mod versions;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// Build, run, version and ship ML applications as standard OCI images.
#[derive(Parser)]
#[command(name = "kiln", version, about, propagate_version = true)]
struct Cli {
    /// Store directory (an OCI image layout). Default: /var/lib/kiln for root,
    /// $XDG_DATA_HOME/kiln otherwise.
    #[arg(long, global = true, env = "KILN_ROOT", value_name = "DIR")]
    root: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List images in the store
    Images(commands::images::Args),
    /// Show an image's manifest and config
    Inspect(commands::inspect::Args),
    /// Give an image another name
    Tag(commands::tag::TagArgs),
    /// Remove names and images
    Rmi(commands::tag::RmiArgs),
    /// The versions of a tag (or with --layers, the steps that made an image)
    History(commands::history::HistoryArgs),
    /// Move a tag (in the store or on a registry) back to an earlier version
    Rollback(commands::history::RollbackArgs),
    /// What changed between two images: config, layers, size, files
    Diff(commands::diff::Args),
    /// Delete blobs and snapshots no image refers to
    Prune(commands::store::PruneArgs),
    /// Verify every blob against its digest and every reference in the store
    Check(commands::store::CheckArgs),
    /// Load images from a docker or OCI archive (file, directory or stdin)
    Load(commands::load::Args),
    /// Save images to a tar archive that Docker, Podman and OCI tools load
    Save(commands::save::Args),
    /// Make a one-layer image from a root filesystem (tar archive or directory)
    Import(commands::import::Args),
    /// Write an image's flattened file tree as a tar archive
    Export(commands::export::Args),
    /// Run a command in a new container
    Run(Box<commands::run::Args>),
    /// List containers
    Ps(commands::ps::PsArgs),
    /// Remove containers
    Rm(commands::ps::RmArgs),
    /// Show a container's output
    Logs(commands::lifecycle::LogsArgs),
    /// Stop containers: SIGTERM, then SIGKILL after a timeout
    Stop(commands::lifecycle::StopArgs),
    /// Send a signal to containers
    Kill(commands::lifecycle::KillArgs),
    /// Wait for containers to exit and print their exit codes
    Wait(commands::lifecycle::WaitArgs),
    /// Run a command in a running container
    Exec(commands::lifecycle::ExecArgs),
    /// Make an image of a container's changes
    Commit(commands::commit::Args),
    /// Build an image from a kiln project (kiln.toml) or a Dockerfile
    Build(Box<commands::build::Args>),
    /// Write kiln.lock: every input of a kiln project pinned (base, Python wheels, weights)
    Lock(commands::project::LockArgs),
    /// Write kiln.toml and .kilnignore for an existing Python project, from what it detects
    Init(commands::project::InitArgs),
    /// Download an image from a registry
    Pull(commands::registry::PullArgs),
    /// Upload an image to a registry
    Push(commands::registry::PushArgs),
    /// Store credentials for a registry
    Login(commands::registry::LoginArgs),
    /// Remove stored credentials for a registry
    Logout(commands::registry::LogoutArgs),
    /// Copy an image between registries, the store, OCI layouts and archives
    Copy(commands::copy::Args),
    /// Build a base image straight from a distribution's archive
    Base(commands::base::Args),
    /// Show an image's environment: distribution, packages, Python, CUDA, config
    Env(commands::env::Args),
    /// Write an image's software bill of materials (SPDX or CycloneDX)
    Sbom(commands::sbom::Args),
    /// Write Kubernetes objects (Deployment, Service, autoscaler, ...) for an image
    Deploy(Box<commands::deploy::Args>),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Output piped into `head` ends with EPIPE: exit quietly as other Unix tools do,
    // instead of panicking in `println!`. Not for commands that write to sockets (a
    // registry closing a connection must be an error kiln reports and retries, not a
    // silent death) or relay a container's streams.
    if !matches!(
        cli.command,
        Command::Run(_)
            | Command::Build(_)
            | Command::Exec(_)
            | Command::Pull(_)
            | Command::Push(_)
            | Command::Rollback(_)
            | Command::Login(_)
            | Command::Logout(_)
            | Command::Copy(_)
            | Command::Base(_)
            | Command::Lock(_)
            | Command::Deploy(_)
    ) {
        // SAFETY: setting a signal disposition before any thread starts.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    let root = cli.root.unwrap_or_else(kiln_store::Store::default_root);
    // Absolute: the runtime and overlay mounts resolve paths from other directories
    // (`--root ./store` failed to mount a container's root filesystem).
    let root = std::path::absolute(&root).unwrap_or(root);
    let result = match cli.command {
        Command::Images(a) => commands::images::run(&root, a),
        Command::Inspect(a) => commands::inspect::run(&root, a),
        Command::Tag(a) => commands::tag::run_tag(&root, a),
        Command::Rmi(a) => commands::tag::run_rmi(&root, a),
        Command::History(a) => commands::history::run_history(&root, a),
        Command::Rollback(a) => commands::history::run_rollback(&root, a),
        Command::Diff(a) => commands::diff::run(&root, a),
        Command::Prune(a) => commands::store::run_prune(&root, a),
        Command::Check(a) => commands::store::run_check(&root, a),
        Command::Load(a) => commands::load::run(&root, a),
        Command::Save(a) => commands::save::run(&root, a),
        Command::Import(a) => commands::import::run(&root, a),
        Command::Export(a) => commands::export::run(&root, a),
        Command::Run(a) => commands::run::run(&root, *a),
        Command::Ps(a) => commands::ps::run_ps(&root, a),
        Command::Rm(a) => commands::ps::run_rm(&root, a),
        Command::Logs(a) => commands::lifecycle::run_logs(&root, a),
        Command::Stop(a) => commands::lifecycle::run_stop(&root, a),
        Command::Kill(a) => commands::lifecycle::run_kill(&root, a),
        Command::Wait(a) => commands::lifecycle::run_wait(&root, a),
        Command::Exec(a) => commands::lifecycle::run_exec(&root, a),
        Command::Commit(a) => commands::commit::run(&root, a),
        Command::Build(a) => commands::build::run(&root, *a),
        Command::Lock(a) => commands::project::run_lock(&root, a),
        Command::Init(a) => commands::project::run_init(a),
        Command::Pull(a) => commands::registry::run_pull(&root, a),
        Command::Push(a) => commands::registry::run_push(&root, a),
        Command::Login(a) => commands::registry::run_login(a),
        Command::Logout(a) => commands::registry::run_logout(a),
        Command::Copy(a) => commands::copy::run(&root, a),
        Command::Base(a) => commands::base::run(&root, a),
        Command::Env(a) => commands::env::run(&root, a),
        Command::Sbom(a) => commands::sbom::run(&root, a),
        Command::Deploy(a) => commands::deploy::run(&root, *a),
    };
    // What this process held, it is done with.
    kiln_store::lease::release_all();
    match result {
        Ok(code) => code,
        Err(e) => {
            output::print_error(&e);
            ExitCode::FAILURE
        }
    }
}
