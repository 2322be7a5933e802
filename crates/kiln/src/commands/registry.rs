//! `kiln pull`, `kiln push`, `kiln login`, `kiln logout`.

use crate::output::{with_hint, Reporter};
use anyhow::{anyhow, bail, Context, Result};
use kiln_layer::Compression;
use kiln_oci::{Platform, Reference};
use kiln_registry::auth::Credentials;
use kiln_registry::{Options, Repo};
use kiln_store::Store;
use std::io::{BufRead, IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

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
        return super::resolve(store, image);
    };
    let platform = platform.map(Platform::parse).transpose()?;
    let progress = Reporter::new(false);
    eprintln!("Pulling {reference}");
    pull_into(store, &reference, platform, flags, &progress).with_context(|| {
        format!("unable to find image `{image}` locally, and pulling it failed")
    })?;
    super::resolve(store, image)
}

/// The layers' compression on push.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum PushCompression {
    Gzip,
    Zstd,
}

#[derive(clap::Args)]
pub struct PullArgs {
    /// Image to pull: `name[:tag]`, `registry/name[:tag]`, `name@sha256:...`
    image: String,
    /// Platform to pick from a multi-platform image (`os/arch[/variant]`); default: this host's
    #[arg(long)]
    platform: Option<String>,
    /// Print only the image's name
    #[arg(short, long)]
    quiet: bool,
    /// Print a JSON report
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    registry: RegistryFlags,
}

#[derive(clap::Args)]
pub struct PushArgs {
    /// Image in the store (name, ID or digest)
    source: String,
    /// Where to push; default: the source's name
    destination: Option<String>,
    /// Compress every layer this way (default: keep compressed layers, gzip the others)
    #[arg(long, value_enum)]
    compression: Option<PushCompression>,
    /// Upload blobs in chunks of this size (`64m`), for registries or proxies that
    /// limit the size of a request; default: each blob in one request
    #[arg(long, value_name = "SIZE")]
    chunk_size: Option<String>,
    /// Print only the pushed digest
    #[arg(short, long)]
    quiet: bool,
    /// Print a JSON report
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    registry: RegistryFlags,
}

#[derive(clap::Args)]
pub struct LoginArgs {
    /// Registry (default: docker.io)
    server: Option<String>,
    #[arg(short, long)]
    username: Option<String>,
    /// Password (visible in the process list: prefer --password-stdin)
    #[arg(short, long)]
    password: Option<String>,
    /// Read the password from standard input
    #[arg(long)]
    password_stdin: bool,
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    tls_verify: Option<bool>,
    /// Credentials file to write (default: $REGISTRY_AUTH_FILE, else ~/.docker/config.json)
    #[arg(long, value_name = "FILE")]
    authfile: Option<PathBuf>,
}

#[derive(clap::Args)]
pub struct LogoutArgs {
    /// Registry (default: docker.io)
    server: Option<String>,
    #[arg(long, value_name = "FILE")]
    authfile: Option<PathBuf>,
}

/// A password given as an argument is visible to every user in the process list (and
/// lands in shell history): said once per command, on stderr, as Docker does for `-p`.
fn warn_password_on_command_line(flag: &str) {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        eprintln!(
            "WARNING! Using a password on the command line ({flag}) is insecure: other users see it in the process list. Use --password-stdin with `kiln login`, or `--creds USER` to be asked for it."
        );
    });
}

fn read_password(prompt: &str) -> Result<String> {
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

/// `registry.example.com`, from what users type: a URL, a host, `docker.io`.
fn server_name(s: Option<&str>) -> String {
    let s = s.unwrap_or("docker.io");
    let s = s
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap_or(s);
    match s {
        "index.docker.io" | "registry-1.docker.io" | "" => "docker.io".into(),
        s => s.to_string(),
    }
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

pub fn run_pull(root: &Path, args: PullArgs) -> Result<ExitCode> {
    let store = super::open_store(root)?;
    let reference = super::parse_reference(&args.image)?;
    let platform = args.platform.as_deref().map(Platform::parse).transpose()?;
    let progress = Reporter::new(args.quiet || args.json);
    let before = store
        .resolve(&reference.to_string())
        .ok()
        .map(|r| r.descriptor.digest);
    let report = pull_into(&store, &reference, platform, &args.registry, &progress)?;
    let name = if reference.tag().is_none() && reference.digest().is_none() {
        reference.with_tag("latest")
    } else {
        reference.clone()
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else if args.quiet {
        println!("{name}");
    } else {
        println!("Digest: {}", report.digest);
        if before.as_ref() == Some(&report.descriptor.digest) && report.downloaded_bytes == 0 {
            println!("Status: Image is up to date for {}", name.familiar());
        } else {
            println!("Status: Downloaded newer image for {}", name.familiar());
        }
        println!("{name}");
    }
    Ok(ExitCode::SUCCESS)
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

pub fn run_push(root: &Path, args: PushArgs) -> Result<ExitCode> {
    let store = super::open_store(root)?;
    let resolved = super::resolve(&store, &args.source)?;
    let dest = match (&args.destination, &resolved.name) {
        (Some(d), _) => super::parse_reference(d)?,
        (None, Some(n)) => super::parse_reference(n)?,
        (None, None) => bail!(with_hint(
            anyhow!("`{}` has no name to push to", args.source),
            "give a destination: `kiln push IMAGE registry.example.com/team/name:tag`",
        )),
    };
    let image = store.image(&resolved.descriptor)?;
    store.hold_image(&image)?;
    let progress = Reporter::new(args.quiet || args.json);
    let chunk_size = match &args.chunk_size {
        Some(c) => super::run::parse_size(c)
            .ok()
            .filter(|n| *n >= 1 << 20)
            .ok_or_else(|| {
                with_hint(
                    anyhow!("invalid --chunk-size `{c}`"),
                    "give a size of at least 1 MiB, such as `64m`",
                )
            })? as u64,
        None => u64::MAX,
    };
    let report = push_image(
        &store,
        &image,
        &dest,
        args.compression,
        chunk_size,
        &args.registry,
        &progress,
    )?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else if args.quiet {
        println!("{}", report.digest);
    } else {
        for b in &report.blobs {
            let what = match b.status {
                "exists" => "Layer already exists".to_string(),
                "mounted" => "Mounted".to_string(),
                _ => format!("Pushed ({})", crate::output::human_size(b.size)),
            };
            println!("{}: {what}", b.digest.short());
        }
        println!(
            "{}: digest: {} size: {}",
            dest.tag().unwrap_or("latest"),
            report.digest,
            report.size
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub fn run_login(args: LoginArgs) -> Result<ExitCode> {
    let server = server_name(args.server.as_deref());
    let username = match args.username {
        Some(u) => u,
        None => {
            if !std::io::stdin().is_terminal() || args.password_stdin {
                bail!(with_hint(
                    anyhow!("no user name given"),
                    "pass `-u USER` (and `--password-stdin` to read the password from a pipe)",
                ));
            }
            eprint!("Username: ");
            let mut l = String::new();
            std::io::stdin().lock().read_line(&mut l)?;
            l.trim().to_string()
        }
    };
    let password = if args.password_stdin {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s)?;
        s.trim_end_matches(['\r', '\n']).to_string()
    } else if let Some(p) = args.password {
        warn_password_on_command_line("-p/--password");
        p
    } else {
        read_password("Password: ")?
    };
    if username.is_empty() || password.is_empty() {
        bail!("the user name and password must not be empty");
    }
    let creds = Credentials::Basic { username, password };
    let mut opts = Options::load(args.tls_verify, args.authfile.clone())?;
    opts.credentials = Some(creds.clone());
    let probe = Reference::parse(&format!("{server}/library/kiln-login"))
        .with_context(|| format!("`{server}` is not a registry name"))?;
    let repo = Repo::new(&opts, &probe, false).map_err(registry_error)?;
    repo.ping().map_err(|e| match e {
        kiln_registry::RegistryError::Unauthorized { registry, .. } => with_hint(
            anyhow!(
                "login to {registry} failed: the user name or password is wrong (401 unauthorized)"
            ),
            "check the credentials; tokens usually go in the password",
        ),
        other => registry_error(other),
    })?;
    let wrote = opts.auth.store(&server, &creds)?;
    eprintln!("Credentials saved in {wrote}");
    println!("Login Succeeded");
    Ok(ExitCode::SUCCESS)
}

pub fn run_logout(args: LogoutArgs) -> Result<ExitCode> {
    let server = server_name(args.server.as_deref());
    let files = kiln_registry::auth::AuthFiles {
        explicit: args.authfile,
    };
    if files.remove(&server)? {
        println!("Removing login credentials for {server}");
    } else {
        println!("Not logged in to {server}");
    }
    Ok(ExitCode::SUCCESS)
}
