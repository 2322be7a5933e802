//! `kiln build` of a Dockerfile: its flags parsed into what kiln-build takes (secrets,
//! build arguments, cache and output specs), BuildKit-style progress, and base images
//! from the store or a registry.

use crate::output::with_hint;
use crate::registry_flags::{resolve_or_pull, PullPolicy, RegistryFlags};
use anyhow::{anyhow, bail, Result};
use kiln_build::exec::{BuildProgress, Images, RunNetwork, SecretSource};
use kiln_oci::Platform;
use kiln_store::{ImageInfo, Store};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum ProgressMode {
    Auto,
    Plain,
    Json,
    Quiet,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum LayerCompression {
    None,
    Gzip,
    Zstd,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum NetworkMode {
    /// A private network namespace with outbound access through pasta (the default)
    Default,
    Host,
    None,
}

/// FROM images: the store, then a registry as `--pull` says.
pub struct StoreImages<'a> {
    pub store: &'a Store,
    pub policy: PullPolicy,
    pub flags: RegistryFlags,
}

impl Images for StoreImages<'_> {
    fn resolve(&self, name: &str) -> kiln_build::exec::Result<ImageInfo> {
        let r = resolve_or_pull(self.store, name, self.policy, None, &self.flags)
            .map_err(|e| kiln_build::exec::BuildError::Image(format!("{e:#}").into()))?;
        let image = self.store.image(&r.descriptor)?;
        // Held for the whole build: a base image untagged and pruned meanwhile stays.
        self.store.hold_image(&image)?;
        Ok(image)
    }
}

/// BuildKit-style plain progress (`#n [stage i/n] ...`), or JSON lines.
pub struct Printer {
    pub mode: ProgressMode,
    pub out: Mutex<std::io::Stderr>,
}

impl Printer {
    pub fn line(&self, s: &str) {
        let mut o = self.out.lock().expect("stderr lock");
        let _ = writeln!(o, "{s}");
    }
}

impl BuildProgress for Printer {
    fn step(&self, n: usize, stage: &str, i: usize, total: usize, text: &str) {
        match self.mode {
            ProgressMode::Json => self.line(
                &serde_json::json!({"step": n, "stage": stage, "index": i, "total": total, "instruction": text}).to_string(),
            ),
            ProgressMode::Quiet => {}
            _ => self.line(&format!("#{n} [{stage} {i}/{total}] {text}")),
        }
    }
    fn cached(&self, n: usize) {
        match self.mode {
            ProgressMode::Json => {
                self.line(&serde_json::json!({"step": n, "cached": true}).to_string())
            }
            ProgressMode::Quiet => {}
            _ => self.line(&format!("#{n} CACHED")),
        }
    }
    fn output(&self, n: usize, line: &str) {
        match self.mode {
            ProgressMode::Json => {
                self.line(&serde_json::json!({"step": n, "output": line}).to_string())
            }
            ProgressMode::Quiet => {}
            _ => self.line(&format!("#{n} {line}")),
        }
    }
    fn done(&self, n: usize, secs: f64) {
        match self.mode {
            ProgressMode::Json => {
                self.line(&serde_json::json!({"step": n, "seconds": secs}).to_string())
            }
            ProgressMode::Quiet => {}
            _ => self.line(&format!("#{n} DONE {secs:.1}s")),
        }
    }
}

pub fn key_value(s: &str, what: &str) -> Result<(String, String)> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => bail!(with_hint(
            anyhow!("invalid {what} `{s}`"),
            &format!("use `--{what} KEY=VALUE`")
        )),
    }
}

/// The directory of `type=local,src=DIR` (or `dest=`).
pub fn local_cache_dir(spec: &str, key: &str) -> Result<PathBuf> {
    let mut kind = "local";
    let mut dir = None;
    for kv in spec.split(',') {
        match kv.split_once('=') {
            Some(("type", v)) => kind = v,
            Some((k, v)) if k == key => dir = Some(PathBuf::from(v)),
            _ => {}
        }
    }
    if kind != "local" {
        bail!(with_hint(
            anyhow!("cache type `{kind}` is not supported"),
            "use `type=local,src=DIR` / `type=local,dest=DIR`"
        ));
    }
    dir.ok_or_else(|| {
        with_hint(
            anyhow!("`{spec}` names no directory"),
            &format!("use `type=local,{key}=DIR`"),
        )
    })
}

/// SOURCE_DATE_EPOCH: the variable, else the last commit's time when the context is a
/// git checkout, else 0 (the epoch).
/// SOURCE_DATE_EPOCH, else the time of the context's git commit, else 0.
pub fn epoch(git: Option<&kiln_build::git::GitInfo>) -> Result<i64> {
    if let Some(e) = crate::commands::source_date_epoch()? {
        return Ok(e);
    }
    Ok(git.and_then(|g| g.time).unwrap_or(0))
}

/// `--build-arg KEY=VALUE`, or `KEY` taken from the environment (left out when unset).
pub fn build_args(flags: &[String]) -> BTreeMap<String, String> {
    let mut build_args = BTreeMap::new();
    for a in flags {
        match a.split_once('=') {
            Some((k, v)) => build_args.insert(k.to_string(), v.to_string()),
            None => match std::env::var(a) {
                Ok(v) => build_args.insert(a.clone(), v),
                Err(_) => None,
            },
        };
    }
    build_args
}

/// The `--secret` flags: `id=ID,src=PATH` or `id=ID,env=VAR`.
pub fn secrets(flags: &[String]) -> Result<BTreeMap<String, SecretSource>> {
    let mut secrets = BTreeMap::new();
    for s in flags {
        let mut id = None;
        let mut src = None;
        for kv in s.split(',') {
            match kv.split_once('=') {
                Some(("id", v)) => id = Some(v.to_string()),
                Some(("src" | "source", v)) => src = Some(SecretSource::File(PathBuf::from(v))),
                Some(("env", v)) => src = Some(SecretSource::Env(v.to_string())),
                Some(("type", _)) => {}
                _ => bail!(with_hint(
                    anyhow!("invalid --secret `{s}`"),
                    "use `id=ID,src=PATH` or `id=ID,env=VAR`"
                )),
            }
        }
        let id = id.ok_or_else(|| anyhow!("--secret `{s}` has no id"))?;
        let src = src.unwrap_or_else(|| SecretSource::Env(id.clone()));
        if let SecretSource::File(p) = &src {
            if !p.is_file() {
                bail!("--secret {id}: {} is not a file", p.display());
            }
        }
        secrets.insert(id, src);
    }
    Ok(secrets)
}

/// `--host-ca`: the host's CA bundle, offered as the secret `ca-certificates` too.
pub fn host_ca(
    wanted: bool,
    secrets: &mut BTreeMap<String, SecretSource>,
) -> Result<Option<PathBuf>> {
    let mut host_ca = None;
    if wanted {
        let ca = std::env::var_os("SSL_CERT_FILE")
            .map(PathBuf::from)
            .filter(|p| p.is_file())
            .unwrap_or_else(|| PathBuf::from("/etc/ssl/certs/ca-certificates.crt"));
        if !ca.is_file() {
            bail!("--host-ca: no CA bundle at {}", ca.display());
        }
        secrets.insert("ca-certificates".into(), SecretSource::File(ca.clone()));
        host_ca = Some(ca);
    }
    Ok(host_ca)
}

/// `--platform`: only the host's can be built here.
pub fn platform(flag: Option<&str>) -> Result<Platform> {
    Ok(match flag {
        Some(p) => {
            let p = Platform::parse(p)?;
            let host = Platform::host();
            if p.os != host.os || p.architecture != host.architecture {
                bail!("--platform {p}: only the host's platform ({host}) can be built here");
            }
            p
        }
        None => Platform::host(),
    })
}

/// `--output type=oci|docker,dest=FILE`.
pub fn output(o: &str) -> Result<(kiln_archive::SaveFormat, PathBuf)> {
    let mut kind = None;
    let mut dest = None;
    for kv in o.split(',') {
        match kv.split_once('=') {
            Some(("type", v)) => kind = Some(v.to_string()),
            Some(("dest", v)) => dest = Some(PathBuf::from(v)),
            _ => bail!("invalid --output `{o}`: use type=oci|docker,dest=FILE"),
        }
    }
    let format = match kind.as_deref() {
        Some("oci") => kiln_archive::SaveFormat::Oci,
        Some("docker") => kiln_archive::SaveFormat::Docker,
        _ => bail!("invalid --output `{o}`: type must be oci or docker"),
    };
    let dest = dest.ok_or_else(|| anyhow!("--output `{o}` has no dest"))?;
    Ok((format, dest))
}

impl NetworkMode {
    /// The network of RUN steps; the private one needs pasta.
    pub fn run_network(self) -> Result<RunNetwork> {
        Ok(match self {
            NetworkMode::None => RunNetwork::None,
            NetworkMode::Host => RunNetwork::Host,
            NetworkMode::Default => {
                if kiln_runtime::pasta::binary().is_none() {
                    bail!(with_hint(
                        anyhow!("RUN steps get a private network through `pasta`, which is not installed"),
                        "apt-get install passt, or pass --network host (or none)",
                    ));
                }
                RunNetwork::Private
            }
        })
    }
}

impl From<LayerCompression> for kiln_layer::Compression {
    fn from(c: LayerCompression) -> Self {
        match c {
            LayerCompression::None => kiln_layer::Compression::None,
            LayerCompression::Gzip => kiln_layer::Compression::Gzip,
            LayerCompression::Zstd => kiln_layer::Compression::Zstd,
        }
    }
}

/// `--cache-from type=local,src=DIR`: the caches imported into the store (a directory
/// without one yet is noted and skipped).
pub fn import_caches(store: &Store, specs: &[String], quiet: bool) -> Result<()> {
    for c in specs {
        let dir = local_cache_dir(c, "src")?;
        if dir.join("index.json").exists() {
            let n = kiln_build::cache::import_local(store, &dir)
                .map_err(|e| anyhow!("--cache-from: {e}"))?;
            if !quiet {
                eprintln!("imported {n} cached layers from {}", dir.display());
            }
        } else if !quiet {
            // BuildKit ignores a missing cache too: the first CI run has none.
            eprintln!("--cache-from {}: no cache there yet", dir.display());
        }
    }
    Ok(())
}

/// `--output type=oci|docker,dest=FILE`: the image also written as an archive.
pub fn write_output(
    store: &Store,
    descriptor: &kiln_oci::types::Descriptor,
    name: Option<&kiln_oci::Reference>,
    spec: &str,
) -> Result<()> {
    let (format, dest) = output(spec)?;
    let images = [kiln_archive::SaveImage {
        descriptor: descriptor.clone(),
        name: name.cloned(),
    }];
    let progress = crate::output::Reporter::new(true);
    crate::commands::write_archive(Some(&dest), |out| {
        kiln_archive::save(store, &images, out, format, &progress)?;
        Ok(())
    })?;
    Ok(())
}

/// The arguments of a helper process that builds stage `i` ahead of the main build.
pub fn helper_args(
    args: &crate::commands::build::Args,
    context: &Path,
    file: &Path,
    i: usize,
    keys: &Path,
) -> Vec<std::ffi::OsString> {
    let mut v: Vec<std::ffi::OsString> = vec!["build".into(), "-q".into()];
    let mut push = |k: &str, val: &dyn AsRef<std::ffi::OsStr>| {
        v.push(k.into());
        v.push(val.as_ref().to_os_string());
    };
    push("-f", &file);
    for a in &args.build_args {
        push("--build-arg", a);
    }
    for s in &args.secret {
        push("--secret", s);
    }
    for l in &args.label {
        push("--label", l);
    }
    push(
        "--network",
        &format!("{:?}", args.network).to_ascii_lowercase(),
    );
    push(
        "--compression",
        &format!("{:?}", args.compression).to_ascii_lowercase(),
    );
    push("--pull", &format!("{:?}", args.pull).to_ascii_lowercase());
    if let Some(p) = &args.platform {
        push("--platform", p);
    }
    if let Some(t) = args.registry.tls_verify {
        push("--tls-verify", &t.to_string());
    }
    if let Some(a) = &args.registry.authfile {
        push("--authfile", a);
    }
    push("--stage-index", &i.to_string());
    push("--record-keys", &keys);
    if args.host_ca {
        v.push("--host-ca".into());
    }
    if args.no_cache {
        v.push("--no-cache".into());
    }
    v.push(context.as_os_str().to_os_string());
    v
}
