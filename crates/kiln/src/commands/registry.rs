//! `kiln pull`, `kiln push`, `kiln login`, `kiln logout`.

use crate::output::{with_hint, Reporter};
use crate::registry_flags::{
    pull_into, push_image, read_password, registry_error, warn_password_on_command_line,
    PushCompression, RegistryFlags,
};
use anyhow::{anyhow, bail, Context, Result};
use kiln_oci::{Platform, Reference};
use kiln_registry::auth::Credentials;
use kiln_registry::{Options, Repo};
use std::io::{BufRead, IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

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
        Some(c) => kiln_runtime::launch::options::parse_size(c)
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
