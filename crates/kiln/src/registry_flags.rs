//! What every command that talks to a registry shares: the flags, the pull policy of
//! `run` and `build`, pulling and pushing with hints and history records.

use crate::output::{with_hint, Reporter};
use anyhow::{anyhow, bail, Context, Result};
use kiln_layer::Compression;
use kiln_oci::{Platform, Reference};
use kiln_registry::auth::Credentials;
use kiln_registry::{Options, Repo};
use kiln_store::Store;
use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;

/// Flags every command that talks to a registry takes.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct RegistryFlags {
    /// Require HTTPS with a verified certificate; `--tls-verify=false` allows unverified
    /// TLS and plain HTTP. Default: true, except for loopback registries and those in
    /// the config's insecure-registries
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub tls_verify: Option<bool>,
    /// Credentials file (Docker's config.json or Podman's auth.json format)
    #[arg(long, value_name = "FILE")]
    pub authfile: Option<PathBuf>,
    /// Credentials for this command only: `USER[:PASSWORD]`
    #[arg(long, value_name = "USER[:PASSWORD]")]
    pub creds: Option<String>,
}

impl RegistryFlags {
    pub fn options(&self) -> Result<Options> {
        let mut o = Options::load(self.tls_verify, self.authfile.clone())?;
        if let Some(c) = &self.creds {
            let (u, p) = match c.split_once(':') {
                Some((u, p)) => {
                    warn_password_on_command_line("--creds USER:PASSWORD");
                    (u.to_string(), p.to_string())
                }
                None => (c.clone(), read_password(&format!("Password for {c}: "))?),
            };
            o.credentials = Some(Credentials::Basic {
                username: u,
                password: p,
            });
        }
        Ok(o)
    }
}

/// When `run` (and `build`'s FROM) pull an image.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum PullPolicy {
    /// Pull when the image is not in the store
    Missing,
    /// Pull every time (cheap when nothing changed: only the manifest is fetched)
    Always,
    /// Never pull; fail when the image is not in the store
    Never,
}

/// Finds `image` in the store, pulling it as `policy` says (progress on stderr).
pub fn resolve_or_pull(
    store: &Store,
    image: &str,
    policy: PullPolicy,
    platform: Option<&str>,
    flags: &RegistryFlags,
) -> Result<kiln_store::Resolved> {
    let local = store.resolve(image);
    let pull = match (&local, policy) {
        (_, PullPolicy::Never) => false,
        (_, PullPolicy::Always) => true,
        (Err(kiln_store::StoreError::ImageNotFound { .. }), PullPolicy::Missing) => true,
        _ => false,
    };
    // An ID or digest prefix is not something a registry can serve.
    let reference = Reference::parse(image).ok().filter(|_| pull);
    let Some(reference) = reference else {
        return crate::commands::resolve(store, image);
    };
    let platform = platform.map(Platform::parse).transpose()?;
    let progress = Reporter::new(false);
    eprintln!("Pulling {reference}");
    pull_into(store, &reference, platform, flags, &progress).with_context(|| {
        format!("unable to find image `{image}` locally, and pulling it failed")
    })?;
    crate::commands::resolve(store, image)
}

/// The layers' compression on push.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum PushCompression {
    Gzip,
    Zstd,
}

/// Pulls `reference` into `store`, tagging and unpacking it (also used by `kiln run`).
pub fn pull_into(
    store: &Store,
    reference: &Reference,
    platform: Option<Platform>,
    flags: &RegistryFlags,
    progress: &dyn kiln_store::Progress,
) -> Result<kiln_registry::PullReport> {
    let opts = flags.options()?;
    let repos = Repo::for_pull(&opts, reference)?;
    kiln_registry::pull(
        store,
        &repos,
        reference,
        &kiln_registry::PullOptions {
            platform,
            unpack: true,
            tag: true,
            jobs: kiln_registry::pull::DEFAULT_JOBS,
            progress,
        },
    )
    .map_err(registry_error)
}

/// Adds the registry error's hint.
pub fn registry_error(e: kiln_registry::RegistryError) -> anyhow::Error {
    match e.hint() {
        Some(h) => with_hint(e, &h),
        None => e.into(),
    }
}

/// Pushes the image `image` of `store` to `dest`.
pub fn push_image(
    store: &Store,
    image: &kiln_store::ImageInfo,
    dest: &Reference,
    compression: Option<PushCompression>,
    chunk_size: u64,
    flags: &RegistryFlags,
    progress: &dyn kiln_store::Progress,
) -> Result<kiln_registry::PushReport> {
    let opts = flags.options()?;
    let repo = Repo::new(&opts, dest, true).map_err(registry_error)?;
    kiln_registry::push(
        store,
        &repo,
        image,
        dest,
        &kiln_registry::PushOptions {
            compression: compression.map(|c| match c {
                PushCompression::Gzip => Compression::Gzip,
                PushCompression::Zstd => Compression::Zstd,
            }),
            jobs: kiln_registry::pull::DEFAULT_JOBS,
            chunk_size,
            progress,
        },
    )
    .map_err(registry_error)
    .and_then(|report| {
        // The registry's tag moved: recorded for `kiln history` and `kiln rollback`.
        store.record_move(kiln_store::history::Move {
            action: "push".into(),
            name: kiln_store::history::remote_name(dest),
            digest: Some(report.digest.to_string()),
            // The image in the store it was pushed from (the registry's manifest differs
            // when layers were compressed on the way): what `kiln deploy --rollback` reads.
            inputs: Some(serde_json::json!({"local": image.descriptor.digest.to_string()})),
            ..Default::default()
        })?;
        Ok(report)
    })
}

/// A password given as an argument is visible to every user in the process list (and
/// lands in shell history): said once per command, on stderr, as Docker does for `-p`.
pub fn warn_password_on_command_line(flag: &str) {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        eprintln!(
            "WARNING! Using a password on the command line ({flag}) is insecure: other users see it in the process list. Use --password-stdin with `kiln login`, or `--creds USER` to be asked for it."
        );
    });
}

pub fn read_password(prompt: &str) -> Result<String> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        bail!(with_hint(
            anyhow!("a password is needed and standard input is not a terminal"),
            "use --password-stdin, or `--creds USER:PASSWORD`",
        ));
    }
    eprint!("{prompt}");
    let fd = std::io::stdin();
    let old = nix::sys::termios::tcgetattr(&fd).ok();
    if let Some(t) = &old {
        let mut quiet = t.clone();
        quiet
            .local_flags
            .remove(nix::sys::termios::LocalFlags::ECHO);
        let _ = nix::sys::termios::tcsetattr(&fd, nix::sys::termios::SetArg::TCSANOW, &quiet);
    }
    let mut line = String::new();
    let r = stdin.lock().read_line(&mut line);
    if let Some(t) = &old {
        let _ = nix::sys::termios::tcsetattr(&fd, nix::sys::termios::SetArg::TCSANOW, t);
    }
    eprintln!();
    r?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}
