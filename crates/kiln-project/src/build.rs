//! The project build: kiln.lock made fresh (or checked with `--locked`), then the image's
//! layers, lowest first by how rarely they change:
//!
//! 1. weights: one uncompressed layer per file of 16 MiB or more, the rest of each entry
//!    in one layer; fixed paths, owner root, mode 0644, mtime the image time. The same
//!    bytes give the same layer in every version and every project;
//! 2. OS: the Debian base built from the archive (kiln-debian), or the base image's layers;
//! 3. env: the app user in /etc/passwd and /etc/group, its home, the venv skeleton
//!    (/opt/venv: pyvenv.cfg and `bin/python` -> the base's interpreter), the workdir;
//! 4. Python: each distribution whose wheel is 10 MB or more in a layer of its own, the
//!    rest in one layer, installed by uv straight into /opt/venv/lib/pythonX.Y/site-packages
//!    for the image's interpreter and platform. A layer of one distribution depends only
//!    on its wheel and the interpreter's X.Y, so projects that install the same wheel share
//!    it. No .pyc files are written (Python compiles in memory when site-packages is not
//!    writable, as for the non-root user): byte-code would need the image's interpreter;
//! 5. code: the application's files under the workdir, owned by root, mtime the image time.
//!
//! Then the config: user, workdir, command, ports, env, healthcheck, and labels with the
//! project's metadata (ports, resources, healthcheck, weights, the kiln.lock digest).
//! Every layer but the code is cached by its inputs; a build with nothing changed makes no
//! network request.

use crate::debian::{self, DebianImage};
use crate::lockfile::{self, BaseLock, HashCache, KilnLock, PythonLock};
use crate::manifest::{Base, Dependencies, Project};
use crate::pylock::{self, LockedDist};
use crate::uv::{self, Uv};
use crate::{Error, Progress, Result};
use kiln_build::exec::CacheEntry;
use kiln_layer::{Compression, EntryMeta, EntryWriter};
use kiln_oci::media;
use kiln_oci::types::{ContainerConfig, Descriptor, History, ImageConfig, Manifest, RootFs};
use kiln_oci::Digest;
use kiln_store::lease::Held;
use kiln_store::{snapshot, Store};
use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

/// Where the virtual environment lives in the image.
pub const VENV: &str = "/opt/venv";
/// A distribution whose wheel is at least this large gets a layer of its own.
pub const LARGE_WHEEL: u64 = 10_000_000;
/// A weights file at least this large gets a layer of its own.
pub const LARGE_WEIGHTS_FILE: u64 = 16 << 20;
/// Label holding the project metadata (JSON) that `kiln env` and `kiln deploy` read.
pub const PROJECT_LABEL: &str = kiln_oci::media::LABEL_KILN_PROJECT;

/// What to do.
#[derive(Clone, Debug, Default)]
pub struct BuildRequest {
    /// The project directory, where kiln.toml is.
    pub dir: PathBuf,
    /// Fail when kiln.lock is missing or stale instead of updating it.
    pub locked: bool,
    /// Update kiln.lock and stop (`kiln lock`).
    pub lock_only: bool,
    /// Resolve again even when kiln.lock is fresh (`kiln lock --upgrade`).
    pub refresh: bool,
    /// Build every layer again.
    pub no_cache: bool,
    /// Parallel downloads of Debian packages, and Python layers built at once (at most 4);
    /// 0 counts as 1.
    pub jobs: usize,
    /// The image time; default: the base's time (the Debian lock's newest InRelease date,
    /// or the base image's `created`), so the same kiln.lock gives the same digest any day.
    pub source_date_epoch: Option<i64>,
    /// Extra labels (the CLI adds git revision and source here).
    pub labels: BTreeMap<String, String>,
}

/// One layer of the result.
#[derive(Clone, Debug, serde::Serialize)]
pub struct LayerReport {
    /// weights | os | env | python | code
    pub kind: &'static str,
    /// What the layer holds, for people, e.g. `debian:bookworm layer 1`.
    pub name: String,
    /// The layer blob's digest (`sha256:...`).
    pub digest: String,
    /// The size in bytes of the layer's blob in the store.
    pub size: u64,
    /// The layer came from kiln's layer cache instead of being built.
    pub cached: bool,
}

/// What a build did.
pub struct BuildOutcome {
    /// The project as kiln.toml declared it.
    pub project: Project,
    /// kiln.lock as the image was built from it (written or read).
    pub lock: KilnLock,
    /// kiln.lock was written (created or updated), with what changed.
    pub lock_changes: Vec<String>,
    /// None for `lock_only`.
    pub descriptor: Option<Descriptor>,
    /// One report per layer of the image, in the order they were added; empty for
    /// `lock_only`.
    pub layers: Vec<LayerReport>,
}

use kiln_oci::types::rfc3339;

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |e| Error::new(format!("{}: {e}", path.display()))
}

/// What the base gives: its interpreter, platform and time.
struct Interp {
    /// MAJOR.MINOR
    version: String,
    /// Full version for pyvenv.cfg.
    full: String,
    /// Absolute path in the image.
    path: String,
    /// uv's --python-platform.
    platform: String,
}

fn arch_prefix(arch: &str) -> &'static str {
    if arch == "arm64" {
        "aarch64"
    } else {
        "x86_64"
    }
}

/// `manylinux_2_M` for a glibc version (uv knows up to 2.40).
fn platform_for(arch: &str, glibc: Option<(u32, u32)>) -> String {
    let minor = glibc.map_or(28, |(_, m)| m.clamp(17, 40));
    let minor = if (18..28).contains(&minor) { 17 } else { minor };
    format!("{}-manylinux_2_{minor}", arch_prefix(arch))
}

/// `3.11.2-6+deb12u1` -> (3, 11, "3.11.2").
fn upstream(v: &str) -> Option<(u32, u32, String)> {
    let v = v.split_once(':').map_or(v, |(_, r)| r);
    let up = v.split(['-', '+', '~']).next()?;
    let mut it = up.split('.');
    let a = it.next()?.parse().ok()?;
    let b = it.next()?.parse().ok()?;
    Some((a, b, up.to_string()))
}

fn interp_from_debian(lock: &kiln_debian::lock::Lock) -> Result<Interp> {
    let find = |n: &str| lock.packages.iter().find(|p| p.name == n);
    let py = lock
        .packages
        .iter()
        .filter(|p| {
            p.name.starts_with("python3.") && p.name[8..].chars().all(|c| c.is_ascii_digit())
        })
        .max_by_key(|p| p.name.len())
        .ok_or_else(|| Error::new("the Debian base has no python3.X package"))?;
    let (a, b, full) = upstream(&py.version).ok_or_else(|| {
        Error::new(format!(
            "cannot read the version of {} {}",
            py.name, py.version
        ))
    })?;
    let glibc = find("libc6")
        .and_then(|p| upstream(&p.version))
        .map(|(a, b, _)| (a, b));
    Ok(Interp {
        version: format!("{a}.{b}"),
        full,
        path: format!("/usr/bin/python{a}.{b}"),
        platform: platform_for(&lock.architecture, glibc),
    })
}

fn interp_from_image(store: &Store, info: &kiln_store::ImageInfo) -> Result<Interp> {
    let (env, _) = kiln_sbom::read_environment(store, info, None, kiln_sbom::Source::Auto)
        .map_err(|e| Error::new(format!("cannot read the base image: {e}")))?;
    let prefer = ["/usr/local/bin/python3", "/usr/bin/python3"];
    let py = env
        .python
        .iter()
        .min_by_key(|i| {
            prefer
                .iter()
                .position(|p| i.path.starts_with(p))
                .unwrap_or(prefer.len())
        })
        .ok_or_else(|| {
            Error::with_hint(
                "the base image has no Python 3 interpreter",
                "use a base with python3 (a python:3.X image), or debian:SUITE",
            )
        })?;
    let (a, b, full) = upstream(&py.version)
        .ok_or_else(|| Error::new(format!("cannot read the Python version `{}`", py.version)))?;
    let glibc = env
        .os_packages
        .iter()
        .find(|p| p.name == "libc6")
        .and_then(|p| upstream(&p.version))
        .map(|(a, b, _)| (a, b));
    if env.os_packages.iter().any(|p| p.manager == "apk") {
        return Err(Error::with_hint(
            "the base image is musl-based (Alpine); kiln installs manylinux wheels",
            "use a glibc base such as debian:bookworm or python:3.X-slim",
        ));
    }
    let arch = if info.config.architecture == "arm64" {
        "arm64"
    } else {
        "amd64"
    };
    Ok(Interp {
        version: format!("{a}.{b}"),
        full,
        path: py.path.clone(),
        platform: platform_for(arch, glibc),
    })
}

/// The base, resolved: the Debian lock or the image.
enum BaseNow {
    Debian(kiln_debian::lock::Lock),
    Image(Box<kiln_store::ImageInfo>),
}

fn debian_options(
    p: &Project,
    suite: &str,
    lock_file: Option<PathBuf>,
    epoch: Option<i64>,
    jobs: usize,
) -> kiln_debian::image::Options {
    let mut packages = vec!["python3".to_string()];
    packages.extend(p.packages.iter().cloned());
    kiln_debian::image::Options {
        suite: suite.to_string(),
        arch: debian::host_arch().to_string(),
        mirror: std::env::var("KILN_DEBIAN_MIRROR")
            .unwrap_or_else(|_| kiln_debian::image::DEFAULT_MIRROR.to_string()),
        security_mirror: match std::env::var("KILN_DEBIAN_SECURITY_MIRROR") {
            Ok(v) if v == "none" => None,
            Ok(v) => Some(v),
            Err(_) => Some(kiln_debian::image::DEFAULT_SECURITY_MIRROR.to_string()),
        },
        updates: true,
        components: vec!["main".into()],
        packages,
        keyrings: vec![],
        lock: lock_file,
        source_date_epoch: epoch,
        jobs: jobs.max(1),
    }
}

/// Index options for uv from `[python]` (and uv.lock's registries when it has them).
fn index_args(p: &Project, registries: &[String]) -> Vec<String> {
    let py = &p.manifest.python;
    let mut a = Vec::new();
    let mut extra = py.extra_index_url.clone();
    match (&py.index_url, registries.split_first()) {
        (Some(u), _) => {
            a.extend(["--index-url".into(), u.clone()]);
            extra.extend(registries.iter().filter(|r| *r != u).cloned());
        }
        (None, Some((first, rest))) => {
            a.extend(["--index-url".into(), first.clone()]);
            extra.extend(rest.iter().cloned());
        }
        (None, None) => {}
    }
    for e in extra {
        if !a.contains(&e) {
            a.extend(["--extra-index-url".into(), e]);
        }
    }
    for f in &py.find_links {
        let f = if f.contains("://") {
            f.clone()
        } else {
            p.dir.join(f).display().to_string()
        };
        a.extend(["--find-links".into(), f]);
    }
    a
}

/// The line of `file` that names requirement `name` (for error messages).
fn requirement_line(file: &Path, uv_message: &str) -> Option<String> {
    let text = fs::read_to_string(file).ok()?;
    let msg = uv_message.to_ascii_lowercase();
    for (i, line) in text.lines().enumerate() {
        let l = line.trim();
        if l.is_empty() || l.starts_with('#') || l.starts_with('-') {
            continue;
        }
        let name: String = l
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || "-_.".contains(*c))
            .collect();
        if !name.is_empty() && msg.contains(&pylock::normalize(&name)) {
            return Some(format!("{}:{}", file.display(), i + 1));
        }
    }
    None
}

/// Resolves the project's Python dependencies for `interp` with uv.
fn resolve_python(uv: &Uv, p: &Project, interp: &Interp, tmp: &Path) -> Result<Vec<LockedDist>> {
    let compile = |input: &Path, no_deps: bool, registries: &[String]| -> Result<Vec<LockedDist>> {
        let out = tmp.join("pylock.toml");
        let mut c = uv.command();
        c.current_dir(&p.dir)
            .args(["pip", "compile", "--quiet", "--format", "pylock.toml"])
            .args([
                "--python-platform",
                &interp.platform,
                "--python-version",
                &interp.version,
            ])
            .args(index_args(p, registries))
            .arg("-o")
            .arg(&out)
            .arg(input);
        if no_deps {
            c.arg("--no-deps");
        }
        uv.run(c, "cannot resolve the Python dependencies", "")
            .map_err(|e| {
                let msg = e.to_string();
                let at = match &p.deps {
                    Dependencies::Requirements(r) => requirement_line(r, &msg),
                    Dependencies::Inline(_) => p
                        .manifest
                        .python
                        .packages
                        .as_ref()
                        .map(|s| {
                            let text = fs::read_to_string(p.dir.join(crate::manifest::FILE)).unwrap_or_default();
                            let (l, _) = crate::manifest::line_col(&text, s.span().start);
                            format!("{}:{l}", p.dir.join(crate::manifest::FILE).display())
                        }),
                    _ => None,
                };
                let head = match at {
                    Some(at) => format!("{at}: {msg}"),
                    None => msg,
                };
                Error::with_hint(
                    head,
                    format!(
                        "check the requirement's name and version on PyPI (or [python] index-url); kiln needs a wheel (or a source distribution it builds) of each for Python {} on {}",
                        interp.version, interp.platform
                    ),
                )
            })?;
        let text = fs::read_to_string(&out).map_err(io(&out))?;
        pylock::read(&text, "uv pip compile")
    };
    match &p.deps {
        Dependencies::None => Ok(vec![]),
        Dependencies::Requirements(r) => compile(r, false, &[]),
        Dependencies::Inline(list) => {
            let f = tmp.join("requirements.in");
            fs::write(&f, list.join("\n") + "\n").map_err(io(&f))?;
            compile(&f, false, &[])
        }
        Dependencies::UvLock(lock_path) => {
            let project_dir = lock_path.parent().unwrap_or(&p.dir);
            let facts = pylock::read_uv_lock(lock_path)?;
            let reqs = tmp.join("requirements.txt");
            let mut c = uv.command();
            c.current_dir(project_dir)
                .args([
                    "export",
                    "--quiet",
                    "--locked",
                    "--format",
                    "requirements-txt",
                    "--no-dev",
                    "--no-emit-workspace",
                    "--no-hashes",
                    "--no-header",
                    "--no-annotate",
                    "--output-file",
                ])
                .arg(&reqs);
            uv.run(c, &format!("{}", lock_path.display()), "")
                .map_err(|e| {
                    let msg = e.to_string();
                    if msg.contains("needs to be updated") {
                        let pyproject = project_dir.join("pyproject.toml");
                        let line = fs::read_to_string(&pyproject)
                            .ok()
                            .and_then(|t| {
                                t.lines()
                                    .position(|l| l.trim_start().starts_with("dependencies"))
                            })
                            .map_or(1, |i| i + 1);
                        Error::with_hint(
                            format!(
                                "{}:{line}: uv.lock is out of date with pyproject.toml ({})",
                                pyproject.display(),
                                lock_path.display()
                            ),
                            "run `uv lock` in the project to update uv.lock, then build again",
                        )
                    } else {
                        Error::with_hint(msg, "check that `uv lock --check` passes in the project")
                    }
                })?;
            let dists = compile(&reqs, true, &facts.registries)?;
            for d in &dists {
                let allowed = facts.hashes.get(&(d.name.clone(), d.version.clone()));
                if !allowed.is_some_and(|h| h.contains(&d.sha256)) {
                    return Err(Error::with_hint(
                        format!(
                            "{}: the wheel {} (sha256 {}) is not one uv.lock allows for {} {}",
                            lock_path.display(),
                            d.filename(),
                            d.sha256,
                            d.name,
                            d.version
                        ),
                        "the index serves other files than when uv.lock was written: run `uv lock` again",
                    ));
                }
            }
            Ok(dists)
        }
    }
}

/// Makes kiln.lock fresh (or checks it with `locked`). Returns the lock, the base as
/// resolved now, the interpreter, and the lines that changed.
fn ensure_lock(
    store: &Store,
    p: &Project,
    req: &BuildRequest,
    progress: &dyn Progress,
    uv: &mut Option<Uv>,
) -> Result<(KilnLock, BaseNow, Interp, Vec<String>)> {
    let arch = debian::host_arch();
    let lock_path = p.dir.join(lockfile::FILE);
    let old = KilnLock::read(&lock_path)?;
    if req.locked && old.is_none() {
        return Err(Error::with_hint(
            format!(
                "{} does not exist, and --locked was given",
                lock_path.display()
            ),
            "run `kiln lock` to write it",
        ));
    }
    let mut hashes = HashCache::open(
        kiln_store::layout::cache_dir(store.root(), kiln_store::layout::Cache::Project)
            .join("hashes.json"),
    );
    let weights_now = lockfile::weights_now(p, &mut hashes)?;
    hashes.save();
    let base_inputs = lockfile::base_inputs(p, arch);
    let fresh_base = old
        .as_ref()
        .filter(|o| !req.refresh && o.base.inputs == base_inputs)
        .map(|o| o.base.clone());
    // The base: from the lock when fresh, else resolved now.
    let (base_lock, base_now) = match (&p.base, fresh_base) {
        (Base::Debian { .. }, Some(b)) if b.debian.is_some() => {
            let d = b.debian.clone().expect("checked");
            (b, BaseNow::Debian(d))
        }
        (Base::Image(r), Some(b)) if b.digest.is_some() => {
            let digest = b.digest.clone().expect("checked");
            let info = resolve_image(store, &format!("{}@{digest}", strip_digest(r)))
                .or_else(|_| resolve_image(store, r).and_then(|i| {
                    if i.descriptor.digest.to_string() == digest {
                        Ok(i)
                    } else {
                        Err(Error::with_hint(
                            format!("kiln.lock pins the base {r} at {digest}, and the store has {}", i.descriptor.digest),
                            format!("`kiln pull {}@{digest}`, or `kiln lock --upgrade` to move to the new base", strip_digest(r)),
                        ))
                    }
                }))?;
            (b, BaseNow::Image(Box::new(info)))
        }
        (Base::Debian { suite }, _) => {
            if req.locked {
                return Err(stale_error(&lock_path, &["[base] changed".to_string()]));
            }
            progress.note(&format!("resolving Debian {suite} packages"));
            let opts = debian_options(p, suite, None, req.source_date_epoch, req.jobs);
            let fetcher = kiln_debian::fetch::Fetcher::new();
            let (lock, _) = kiln_debian::image::plan(
                &opts,
                &fetcher,
                &kiln_store::layout::cache_dir(store.root(), kiln_store::layout::Cache::Debian),
                progress,
            )
            .map_err(crate::debian::debian_error)?;
            (
                BaseLock {
                    inputs: base_inputs.clone(),
                    image: p.manifest.base.image.get_ref().trim().to_string(),
                    digest: None,
                    debian: Some(lock.clone()),
                },
                BaseNow::Debian(lock),
            )
        }
        (Base::Image(r), _) => {
            if req.locked {
                return Err(stale_error(&lock_path, &["[base] changed".to_string()]));
            }
            let info = resolve_image(store, r)?;
            let digest = info.descriptor.digest.to_string();
            (
                BaseLock {
                    inputs: base_inputs.clone(),
                    image: r.clone(),
                    digest: Some(digest.clone()),
                    debian: None,
                },
                BaseNow::Image(Box::new(info)),
            )
        }
    };
    let interp = match &base_now {
        BaseNow::Debian(l) => interp_from_debian(l)?,
        BaseNow::Image(info) => interp_from_image(store, info)?,
    };
    if let Some(want) = &p.python_version {
        let ok = interp.version == *want
            || interp.full == *want
            || interp.full.starts_with(&format!("{want}."));
        if !ok {
            let span = p
                .manifest
                .python
                .version
                .as_ref()
                .map(|s| s.span())
                .unwrap_or(0..0);
            let text = fs::read_to_string(p.dir.join(crate::manifest::FILE)).unwrap_or_default();
            let (l, c) = crate::manifest::line_col(&text, span.start);
            return Err(Error::with_hint(
                format!(
                    "{}:{l}:{c}: Python {want} was asked for, and the base {} gives Python {}",
                    p.dir.join(crate::manifest::FILE).display(),
                    p.manifest.base.image.get_ref(),
                    interp.full
                ),
                match interp.version.as_str() {
                    "3.11" => "debian:bookworm gives 3.11 and debian:trixie 3.13: set [base] image, or [python] version = \"3.11\"".to_string(),
                    "3.13" => "debian:trixie gives 3.13 and debian:bookworm 3.11: set [base] image, or [python] version = \"3.13\"".to_string(),
                    v => format!("set [python] version = \"{v}\", or use a base with Python {want}"),
                },
            ));
        }
    }
    let interp_desc = format!("{} {}", interp.path, interp.version);
    let py_inputs = lockfile::python_inputs(p, &interp_desc, &interp.platform)?;
    let fresh_python = old
        .as_ref()
        .filter(|o| !req.refresh && o.python.inputs == py_inputs)
        .map(|o| o.python.clone());
    let mut changes = match &old {
        Some(o) => lockfile::staleness(o, p, arch, Some(&py_inputs), &weights_now),
        None => vec!["kiln.lock did not exist".to_string()],
    };
    if req.refresh && changes.is_empty() {
        changes.push("resolved again (--upgrade)".into());
    }
    if req.locked && !changes.is_empty() {
        return Err(stale_error(&lock_path, &changes));
    }
    let python = match fresh_python {
        Some(py) => py,
        None => {
            let u = get_uv(store, uv, progress)?;
            progress.note(&format!(
                "resolving Python dependencies for Python {} on {} with {}",
                interp.version,
                interp.platform,
                u.version().unwrap_or_else(|_| "uv".into())
            ));
            let tmp = tempdir(store, "resolve")?;
            let packages = resolve_python(u, p, &interp, tmp.path())?;
            PythonLock {
                inputs: py_inputs,
                source: match &p.deps {
                    Dependencies::UvLock(_) => "uv.lock".into(),
                    Dependencies::Requirements(r) => {
                        r.strip_prefix(&p.dir).unwrap_or(r).display().to_string()
                    }
                    Dependencies::Inline(_) => "inline".into(),
                    Dependencies::None => "none".into(),
                },
                version: interp.version.clone(),
                interpreter: interp.path.clone(),
                platform: interp.platform.clone(),
                packages,
            }
        }
    };
    let lock = KilnLock {
        version: lockfile::VERSION,
        base: base_lock,
        python,
        weights: weights_now,
    };
    if old.as_ref() != Some(&lock) {
        lock.write(&lock_path)?;
    } else {
        changes.clear();
    }
    Ok((lock, base_now, interp, changes))
}

fn stale_error(lock_path: &Path, changes: &[String]) -> Error {
    Error::with_hint(
        format!(
            "{} is out of date (--locked):\n  - {}",
            lock_path.display(),
            changes.join("\n  - ")
        ),
        "run `kiln lock` to update it, or build without --locked",
    )
}

fn strip_digest(r: &str) -> &str {
    r.split_once('@').map_or(r, |(n, _)| n)
}

fn resolve_image(store: &Store, r: &str) -> Result<kiln_store::ImageInfo> {
    let resolved = store.resolve(r).map_err(|e| {
        Error::with_hint(
            format!("the base image {r}: {e}"),
            format!("`kiln pull {r}` first, or use a debian:SUITE base that kiln builds"),
        )
    })?;
    store
        .image(&resolved.descriptor)
        .map_err(|e| Error::new(format!("the base image {r}: {e}")))
}

fn get_uv<'a>(store: &Store, uv: &'a mut Option<Uv>, progress: &dyn Progress) -> Result<&'a Uv> {
    if uv.is_none() {
        *uv = Some(uv::locate(
            &kiln_store::layout::caches(store.root()),
            &|m| progress.note(m),
        )?);
    }
    Ok(uv.as_ref().expect("set"))
}

fn tempdir(store: &Store, what: &str) -> Result<tempfile::TempDir> {
    let base = store.root().join("tmp");
    fs::create_dir_all(&base).map_err(io(&base))?;
    tempfile::Builder::new()
        .prefix(&format!("project-{what}-{}-", std::process::id()))
        .tempdir_in(&base)
        .map_err(io(&base))
}

/// The cached layer for `key`, held against prune; None when absent or pruned.
fn cache_get(store: &Store, key: &str, no_cache: bool) -> Option<CacheEntry> {
    if no_cache {
        return None;
    }
    let p = kiln_store::layout::cache_dir(store.root(), kiln_store::layout::Cache::Project)
        .join("layers")
        .join(format!("{key}.json"));
    let e: CacheEntry = serde_json::from_slice(&fs::read(p).ok()?).ok()?;
    let missing = store.hold(&[Held::Blob(e.layer.digest.clone())]).ok()?;
    missing.is_empty().then_some(e)
}

fn cache_put(store: &Store, key: &str, e: &CacheEntry) {
    let dir = kiln_store::layout::cache_dir(store.root(), kiln_store::layout::Cache::Project)
        .join("layers");
    let _ = fs::create_dir_all(&dir);
    let _ = store.write_atomic(
        &dir.join(format!("{key}.json")),
        &serde_json::to_vec(e).expect("serializes"),
    );
}

fn key_of(parts: &[&str]) -> String {
    let bytes: Vec<&[u8]> = parts.iter().map(|p| p.as_bytes()).collect();
    lockfile::hash_parts(&bytes)
}

/// Parent directories of `path` (absolute in the image), outermost first: `/a/b/c` ->
/// `a`, `a/b`.
fn parents(path: &str) -> Vec<String> {
    let parts: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    (1..parts.len()).map(|i| parts[..i].join("/")).collect()
}

/// Writes a layer of files placed at image paths: `(image path, source file, mode,
/// expected sha256)`; a file whose bytes are not the expected ones (it changed since it
/// was locked) fails the layer.
fn write_placed(
    store: &Store,
    files: &[(String, PathBuf, u32, Option<String>)],
    extra_dirs: &[String],
    epoch: i64,
    compression: Compression,
) -> Result<CacheEntry> {
    let mut dirs: std::collections::BTreeSet<String> = extra_dirs.iter().cloned().collect();
    for (target, _, _, _) in files {
        dirs.extend(parents(target));
    }
    // Sorted by path, parents before children (as write_dir does).
    type Entry<'a> = (String, Option<(&'a PathBuf, u32, &'a Option<String>)>);
    let mut entries: Vec<Entry> = dirs.into_iter().map(|d| (d, None)).collect();
    for (t, src, mode, sha) in files {
        entries.push((
            t.trim_start_matches('/').to_string(),
            Some((src, *mode, sha)),
        ));
    }
    entries.sort_by(|a, b| a.0.split('/').cmp(b.0.split('/')));
    let dir_meta = EntryMeta {
        mode: 0o755,
        uid: 0,
        gid: 0,
        mtime: epoch,
    };
    let _gc = store.gc_lock(false)?;
    let layer = store
        .write_layer(compression, |out| -> std::result::Result<(), Error> {
            let mut w = EntryWriter::new(out);
            for (path, src) in &entries {
                match src {
                    None => w
                        .dir(path, dir_meta)
                        .map_err(|e| Error::new(format!("{path}: {e}")))?,
                    Some((src, mode, sha)) => {
                        let f = fs::File::open(src).map_err(io(src))?;
                        let size = f.metadata().map_err(io(src))?.len();
                        let m = EntryMeta {
                            mode: *mode,
                            ..dir_meta
                        };
                        let mut r = kiln_oci::HashingReader::new(f);
                        w.file(path, m, size, &mut r)
                            .map_err(|e| Error::new(format!("{}: {e}", src.display())))?;
                        if let Some(want) = sha {
                            let (digest, _, _) = r.finish();
                            let got = digest.hex();
                            if got != want.as_str() {
                                return Err(Error::with_hint(
                                    format!("{}: changed while the image was built (sha256 {got}, kiln.lock has {want})", src.display()),
                                    "build again once the file is written",
                                ));
                            }
                        }
                    }
                }
            }
            w.finish().map_err(|e| Error::new(e.to_string()))?;
            Ok(())
        })
        .map_err(|e| match e {
            kiln_store::compose::LayerWriteError::Produce(e) => e,
            kiln_store::compose::LayerWriteError::Store(e) => Error::from(e),
        })?;
    Ok(CacheEntry {
        layer: layer.descriptor,
        diff_id: layer.diff_id,
    })
}

/// Every entry gets `epoch` as its mtime (directories' times depend on the order uv
/// wrote them in, files' on when it ran), so the layer is the same whatever the host did.
fn normalize_tree(dir: &Path, epoch: i64) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let md = fs::symlink_metadata(dir)?;
    if md.is_dir() {
        for e in fs::read_dir(dir)? {
            normalize_tree(&e?.path(), epoch)?;
        }
        kiln_debian::dpkg::set_mtime(dir, epoch)?;
    } else if md.mtime() != epoch {
        kiln_debian::dpkg::set_mtime(dir, epoch)?;
    }
    Ok(())
}

/// Writes the tree `dir` as a layer, mtimes normalized to `epoch`. The caller may keep
/// `dir` as the layer's snapshot: it is exactly the layer, unpacked.
fn write_tree(
    store: &Store,
    dir: &Path,
    epoch: i64,
    compression: Compression,
) -> Result<CacheEntry> {
    normalize_tree(dir, epoch).map_err(io(dir))?;
    let layer = store
        .write_tree_layer(dir, epoch, compression)
        .map_err(|e| Error::new(format!("cannot write the layer of {}: {e}", dir.display())))?;
    Ok(CacheEntry {
        layer: layer.descriptor,
        diff_id: layer.diff_id,
    })
}

/// URL-safe base64 without padding (the wheel RECORD's hash encoding). By hand: four
/// lines, not worth a crate.
fn b64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for ch in bytes.chunks(3) {
        let n = (u32::from(ch[0]) << 16)
            | (u32::from(*ch.get(1).unwrap_or(&0)) << 8)
            | u32::from(*ch.get(2).unwrap_or(&0));
        for i in 0..=ch.len() {
            out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// The image a build container starts from (the project's base).
struct BaseImage<'a> {
    store: &'a Store,
    descriptor: Descriptor,
}

impl kiln_build::exec::Images for BaseImage<'_> {
    fn resolve(&self, _name: &str) -> kiln_build::exec::Result<kiln_store::ImageInfo> {
        Ok(self.store.image(&self.descriptor)?)
    }
}

/// Downloads `url` to `dest`, at most `size` bytes (when known), checking its sha256.
fn download_verified(url: &str, sha256: &str, size: u64, dest: &Path) -> Result<()> {
    use crate::fetch::{fetch_verified, FetchError};
    let fail = |e: String| Error::new(format!("cannot download {url}: {e}"));
    let cap = if size > 0 { size } else { 1 << 30 };
    let bytes = fetch_verified(url, sha256, cap, std::time::Duration::from_secs(600)).map_err(
        |e| match e {
            FetchError::Transfer(e) => fail(e),
            FetchError::TooLarge => fail(format!("more than the {cap} bytes the index announced")),
            FetchError::Mismatch(got) => Error::with_hint(
                format!("{url}: sha256 {got}, kiln.lock has {sha256}"),
                "the index serves other bytes than when kiln.lock was written: `kiln lock --upgrade`",
            ),
        },
    )?;
    fs::write(dest, &bytes).map_err(io(dest))
}

/// Builds each source distribution into a wheel in a kiln build container from the base
/// (its interpreter, its libraries): `uv build --wheel`, with the network (the build
/// backend comes from the index) and the host's CA bundle offered, never in a layer.
/// Wheels are cached by the sdist's sha256 and the interpreter. Returns, by name, the
/// built wheel's path and sha256.
#[allow(clippy::too_many_arguments)]
fn build_sdists(
    store: &Store,
    uv: &Uv,
    sdists: &[&LockedDist],
    base: &kiln_store::ImageInfo,
    interp: &Interp,
    epoch: i64,
    p: &Project,
    progress: &dyn Progress,
) -> Result<BTreeMap<String, (String, String)>> {
    let mut out = BTreeMap::new();
    for d in sdists {
        let dir = kiln_store::layout::cache_dir(store.root(), kiln_store::layout::Cache::Project)
            .join("built")
            .join(format!(
                "{}-{}-{}",
                d.sha256,
                interp.version,
                base.manifest_descriptor.digest.hex()
            ));
        let memo = dir.join("wheel.json");
        if let Some((name, sha)) = fs::read(&memo)
            .ok()
            .and_then(|b| serde_json::from_slice::<(String, String)>(&b).ok())
            .filter(|(name, _)| dir.join(name).is_file())
        {
            out.insert(d.name.clone(), (dir.join(name).display().to_string(), sha));
            continue;
        }
        progress.note(&format!(
            "building {} {} from its source distribution in a kiln build container (uv build --wheel)",
            d.name, d.version
        ));
        let ctx = tempdir(store, "sdist")?;
        let file = d.filename().to_string();
        if file.is_empty() || file.contains(['/', '\\']) || file.starts_with('.') {
            return Err(Error::new(format!(
                "{}: not a file name in {}",
                file, d.url
            )));
        }
        download_verified(&d.url, &d.sha256, d.size, &ctx.path().join(&file))?;
        fs::copy(&uv.bin, ctx.path().join("uv")).map_err(io(&uv.bin))?;
        let mut index = String::new();
        for a in index_args(p, &[]).chunks(2) {
            if let [k, v] = a {
                index.push_str(&format!(" {k} {}", shell_quote(v)));
            }
        }
        let script = format!(
            "set -e; export UV_CACHE_DIR=/tmp/uv-cache UV_PYTHON_DOWNLOADS=never HOME=/tmp; /kiln-ctx/uv build --wheel --no-config --python {python}{index} --out-dir /kiln-out /kiln-ctx/{file}",
            python = interp.path,
            file = shell_quote(&file),
        );
        let dockerfile = format!(
            "FROM kiln-project-base\nRUN --mount=type=bind,target=/kiln-ctx {}\n",
            serde_json::to_string(&["/bin/sh", "-c", &script]).expect("serializes")
        );
        let df = kiln_build::dockerfile::parse(&dockerfile, "kiln project (sdist build)")
            .map_err(|e| Error::new(e.to_string()))?;
        let host_ca = std::env::var_os("SSL_CERT_FILE")
            .map(PathBuf::from)
            .filter(|p| p.is_file())
            .or_else(|| {
                Some(PathBuf::from("/etc/ssl/certs/ca-certificates.crt")).filter(|p| p.is_file())
            });
        let opts = kiln_build::exec::BuildOptions {
            context: ctx.path().to_path_buf(),
            dockerfile_name: "Dockerfile".into(),
            build_args: BTreeMap::new(),
            target: None,
            no_cache: false,
            network: kiln_build::exec::RunNetwork::Private,
            labels: BTreeMap::new(),
            secrets: BTreeMap::new(),
            source_date_epoch: epoch,
            platform: kiln_oci::Platform::host(),
            host_ca,
            stage_index: None,
            fresh_keys: Default::default(),
            compression: Compression::None,
        };
        let images = BaseImage {
            store,
            descriptor: base.descriptor.clone(),
        };
        let builder =
            kiln_build::exec::Builder::new(store, &images, progress, &opts, "kiln project".into())
                .map_err(|e| Error::new(e.to_string()))?;
        let result = builder.build(&df).map_err(|e| {
            Error::with_hint(
                format!("cannot build {} {} from its source distribution: {e}", d.name, d.version),
                "a source distribution that needs a compiler needs it in the base: add it to [base] packages (e.g. build-essential), or use a version with a wheel",
            )
        })?;
        let info = store.image(&result.descriptor)?;
        let dirs = snapshot::prepare(store, &info.manifest, &info.config)?;
        let out_dir = dirs.last().expect("a layer").join("kiln-out");
        let wheel = fs::read_dir(&out_dir)
            .map_err(io(&out_dir))?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .find(|n| n.ends_with(".whl"))
            .ok_or_else(|| {
                Error::new(format!(
                    "uv build left no wheel of {} in {}",
                    d.name,
                    out_dir.display()
                ))
            })?;
        fs::create_dir_all(&dir).map_err(io(&dir))?;
        let bytes = fs::read(out_dir.join(&wheel)).map_err(io(&out_dir))?;
        let sha = hex::encode(Sha256::digest(&bytes));
        fs::write(dir.join(&wheel), &bytes).map_err(io(&dir))?;
        store.write_atomic(
            &memo,
            &serde_json::to_vec(&(&wheel, &sha)).expect("serializes"),
        )?;
        out.insert(
            d.name.clone(),
            (dir.join(&wheel).display().to_string(), sha),
        );
    }
    Ok(out)
}

/// A word for /bin/sh, single-quoted.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// Installs `dists` with uv into `root`/opt/venv (site-packages and bin), for `interp`.
///
/// uv writes console scripts with the host interpreter in their `#!` line, since it runs
/// here and not in the image; kiln rewrites that line to the venv's interpreter and fixes
/// the script's RECORD entry (uv has no option for a foreign interpreter path).
fn install(
    uv: &Uv,
    dists: &[LockedDist],
    built: &BTreeMap<String, (String, String)>,
    interp: &Interp,
    root: &Path,
    scratch: &Path,
) -> Result<()> {
    let site = root.join(format!(
        "opt/venv/lib/python{}/site-packages",
        interp.version
    ));
    fs::create_dir_all(&site).map_err(io(&site))?;
    fs::create_dir_all(scratch).map_err(io(scratch))?;
    let lock = scratch.join("pylock.toml");
    fs::write(&lock, pylock::write(dists, built)).map_err(io(&lock))?;
    let mut c = uv.command();
    c.args([
        "pip",
        "install",
        "--quiet",
        "--no-deps",
        "--only-binary",
        ":all:",
    ])
    .args([
        "--python-platform",
        &interp.platform,
        "--python-version",
        &interp.version,
    ])
    .arg("--target")
    .arg(&site)
    .arg("-r")
    .arg(&lock);
    let names: Vec<String> = dists
        .iter()
        .map(|d| format!("{} {}", d.name, d.version))
        .collect();
    uv.run(
        c,
        &format!("cannot install {}", names.join(", ")),
        "uv needs a python3 on this host to run (the image gets the base's own interpreter)",
    )?;
    let _ = fs::remove_file(site.join(".lock"));
    // A wheel kiln built from an sdist is installed from a local path: uv records that
    // host path (direct_url.json) and the time it saw the file (uv_cache.json), neither
    // of which has a place in a layer.
    if !built.is_empty() {
        const HOST_FILES: [&str; 2] = ["direct_url.json", "uv_cache.json"];
        for e in fs::read_dir(&site).map_err(io(&site))? {
            let dir = e.map_err(io(&site))?.path();
            let mut removed = false;
            for name in HOST_FILES {
                let f = dir.join(name);
                if f.is_file() {
                    fs::remove_file(&f).map_err(io(&f))?;
                    removed = true;
                }
            }
            let rec = dir.join("RECORD");
            if removed {
                if let Ok(text) = fs::read_to_string(&rec) {
                    let kept: Vec<&str> = text
                        .lines()
                        .filter(|l| {
                            let path = l.split(',').next().unwrap_or("");
                            !HOST_FILES.iter().any(|h| path.ends_with(&format!("/{h}")))
                        })
                        .collect();
                    fs::write(&rec, kept.join("\n") + "\n").map_err(io(&rec))?;
                }
            }
        }
    }
    let bin_src = site.join("bin");
    if bin_src.is_dir() {
        let bin = root.join("opt/venv/bin");
        fs::create_dir_all(&bin).map_err(io(&bin))?;
        let mut renamed: BTreeMap<String, (String, usize)> = BTreeMap::new();
        for e in fs::read_dir(&bin_src).map_err(io(&bin_src))? {
            let e = e.map_err(io(&bin_src))?;
            let name = e.file_name().to_string_lossy().into_owned();
            let src = e.path();
            let mut bytes = fs::read(&src).map_err(io(&src))?;
            if bytes.starts_with(b"#!") {
                let end = bytes
                    .iter()
                    .position(|b| *b == b'\n')
                    .unwrap_or(bytes.len());
                let first = String::from_utf8_lossy(&bytes[..end]).to_string();
                if first.contains("python") {
                    let mut fixed = format!("#!{VENV}/bin/python").into_bytes();
                    fixed.extend_from_slice(&bytes[end..]);
                    bytes = fixed;
                }
            }
            let hash = b64(&Sha256::digest(&bytes));
            let dest = bin.join(&name);
            fs::write(&dest, &bytes).map_err(io(&dest))?;
            let mode = fs::metadata(&src).map_err(io(&src))?.permissions();
            fs::set_permissions(&dest, mode).map_err(io(&dest))?;
            fs::remove_file(&src).map_err(io(&src))?;
            renamed.insert(name, (hash, bytes.len()));
        }
        let _ = fs::remove_dir(&bin_src);
        // RECORD paths are relative to site-packages: bin/X becomes ../../../bin/X.
        for e in fs::read_dir(&site).map_err(io(&site))? {
            let rec = e.map_err(io(&site))?.path().join("RECORD");
            if !rec.is_file() {
                continue;
            }
            let text = fs::read_to_string(&rec).map_err(io(&rec))?;
            let mut changed = false;
            let lines: Vec<String> = text
                .lines()
                .map(|l| {
                    let path = l.split(',').next().unwrap_or("");
                    if let Some(name) = path.strip_prefix("bin/") {
                        if let Some((h, n)) = renamed.get(name) {
                            changed = true;
                            return format!("../../../bin/{name},sha256={h},{n}");
                        }
                    }
                    l.to_string()
                })
                .collect();
            if changed {
                fs::write(&rec, lines.join("\n") + "\n").map_err(io(&rec))?;
            }
        }
    }
    Ok(())
}

/// The base's /etc/passwd or /etc/group: the top layer's that has it, read inside that
/// layer (the image's links never reach the host's files) and bounded.
fn base_file(lowers: &[PathBuf], rel: &str) -> Option<String> {
    lowers
        .iter()
        .rev()
        .find_map(|d| kiln_runtime::container::read_in_root(d, rel))
}

/// Files of the code layer: (relative path, absolute path), sorted.
fn code_files(p: &Project) -> Result<Vec<(String, PathBuf)>> {
    let ignore_text = fs::read_to_string(p.dir.join(".kilnignore")).unwrap_or_default();
    let ignore = kiln_build::dockerignore::Ignore::parse(&gitignore_to_dockerignore(&ignore_text));
    let include = kiln_build::dockerignore::Ignore::parse(&p.files.join("\n"));
    let weights: Vec<&str> = p.weights.iter().map(|w| w.rel.as_str()).collect();
    let builtin = [
        "kiln.toml",
        "kiln.lock",
        ".kilnignore",
        ".git",
        ".venv",
        "__pycache__",
        ".pytest_cache",
        ".mypy_cache",
        ".ruff_cache",
    ];
    let root = fs::canonicalize(&p.dir).map_err(io(&p.dir))?;
    let mut out = Vec::new();
    let mut stack = vec![(String::new(), p.dir.clone())];
    let mut seen = 0usize;
    while let Some((rel, dir)) = stack.pop() {
        for e in fs::read_dir(&dir).map_err(io(&dir))? {
            let e = e.map_err(io(&dir))?;
            seen += 1;
            if seen > 200_000 {
                return Err(Error::with_hint(
                    format!("{}: more than 200,000 files", p.dir.display()),
                    "list the code in [app].files or exclude data directories in .kilnignore",
                ));
            }
            let name = e.file_name().to_string_lossy().into_owned();
            let r = if rel.is_empty() {
                name.clone()
            } else {
                format!("{rel}/{name}")
            };
            if builtin.contains(&name.as_str()) || name.ends_with(".pyc") {
                continue;
            }
            if weights
                .iter()
                .any(|w| r == *w || r.starts_with(&format!("{w}/")))
            {
                continue;
            }
            if ignore.is_excluded(&r) {
                continue;
            }
            let path = e.path();
            let ft = e.file_type().map_err(io(&path))?;
            let real = if ft.is_symlink() {
                match fs::canonicalize(&path) {
                    Ok(real) if real.starts_with(&root) => real,
                    _ => {
                        return Err(Error::with_hint(
                            format!("{}: a link that leaves the project", path.display()),
                            "the image gets files inside the project only: copy the target in, or add the link to .kilnignore",
                        ))
                    }
                }
            } else {
                path.clone()
            };
            if real.is_dir() {
                if !ft.is_symlink() && (include.may_include_under(&r) || include.is_excluded(&r)) {
                    stack.push((r, path));
                }
            } else if real.is_file() && include.is_excluded(&r) {
                out.push((r, real));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// .kilnignore is gitignore syntax; kiln's matcher speaks .dockerignore: a pattern without
/// an inner slash matches at any depth (`**/`), a leading slash anchors it, a trailing
/// slash (directory only) is dropped.
fn gitignore_to_dockerignore(text: &str) -> String {
    let mut out = String::new();
    for l in text.lines() {
        let t = l.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let (neg, pat) = match t.strip_prefix('!') {
            Some(p) => ("!", p),
            None => ("", t),
        };
        let pat = pat.trim_end_matches('/');
        let anchored = pat.starts_with('/') || pat.contains('/');
        let pat = pat.trim_start_matches('/');
        if anchored {
            out.push_str(&format!("{neg}{pat}\n{neg}{pat}/**\n"));
        } else {
            out.push_str(&format!("{neg}**/{pat}\n{neg}**/{pat}/**\n"));
        }
    }
    out
}

fn history(epoch: i64, by: String) -> History {
    History {
        created: Some(rfc3339(epoch)),
        created_by: Some(by),
        author: None,
        comment: Some("kiln project".into()),
        empty_layer: false,
    }
}

/// Builds the project in `req.dir` (or only updates kiln.lock with `lock_only`).
pub fn build(store: &Store, req: &BuildRequest, progress: &dyn Progress) -> Result<BuildOutcome> {
    let p = Project::load(&req.dir)?;
    let mut uv: Option<Uv> = None;
    let (lock, base_now, interp, lock_changes) = ensure_lock(store, &p, req, progress, &mut uv)?;
    if !lock_changes.is_empty() {
        progress.note(&format!("wrote kiln.lock ({})", lock_changes.join("; ")));
    }
    if req.lock_only {
        return Ok(BuildOutcome {
            project: p,
            lock,
            lock_changes,
            descriptor: None,
            layers: vec![],
        });
    }
    let mut reports: Vec<LayerReport> = Vec::new();
    let mut layers: Vec<CacheEntry> = Vec::new();
    let mut hist: Vec<History> = Vec::new();

    // The base first: its time is the image's time.
    let mut base_cached = matches!(base_now, BaseNow::Image(_));
    let (base_info, epoch) = match &base_now {
        BaseNow::Debian(dlock) => {
            // The image a Debian lock gives is remembered: a rebuild neither re-reads the
            // .debs nor assembles anything.
            let key = key_of(&[
                "debian base v1",
                &serde_json::to_string(dlock).expect("serializes"),
                &format!("{:?}", req.source_date_epoch),
            ]);
            let memo =
                kiln_store::layout::cache_dir(store.root(), kiln_store::layout::Cache::Project)
                    .join("bases")
                    .join(format!("{key}.json"));
            let remembered = (!req.no_cache)
                .then(|| fs::read(&memo).ok())
                .flatten()
                .and_then(|b| serde_json::from_slice::<(Descriptor, i64)>(&b).ok())
                .and_then(|(d, epoch)| {
                    let info = store.image(&d).ok()?;
                    store.hold_image(&info).ok()?;
                    let all = info
                        .manifest
                        .layers
                        .iter()
                        .all(|l| store.has_blob(&l.digest));
                    all.then_some((info, epoch))
                });
            match remembered {
                Some((info, epoch)) => {
                    base_cached = true;
                    (info, epoch)
                }
                None => {
                    let tmp = tempdir(store, "debian-lock")?;
                    let lf = tmp.path().join("debian.lock");
                    dlock.write(&lf).map_err(crate::debian::debian_error)?;
                    let suite = match &p.base {
                        Base::Debian { suite } => suite.clone(),
                        Base::Image(_) => unreachable!("a Debian lock for a Debian base"),
                    };
                    let opts =
                        debian_options(&p, &suite, Some(lf), req.source_date_epoch, req.jobs);
                    let img: DebianImage = debian::build(store, &opts, progress)?;
                    if let Some(d) = memo.parent() {
                        let _ = fs::create_dir_all(d);
                    }
                    let _ = store.write_atomic(
                        &memo,
                        &serde_json::to_vec(&(&img.descriptor, img.epoch)).expect("serializes"),
                    );
                    (store.image(&img.descriptor)?, img.epoch)
                }
            }
        }
        BaseNow::Image(info) => {
            let created = info
                .config
                .created
                .as_deref()
                .and_then(|c| chrono::DateTime::parse_from_rfc3339(c).ok())
                .map_or(0, |t| t.timestamp());
            ((**info).clone(), req.source_date_epoch.unwrap_or(created))
        }
    };
    store.hold_image(&base_info)?;

    // 1. Weights. (image path -> the digest of the layer holding it)
    let mut weights_layer: BTreeMap<String, String> = BTreeMap::new();
    for (w, wl) in p.weights.iter().zip(&lock.weights) {
        let files = lockfile::weights_files(&w.path)?;
        let (big, small): (Vec<_>, Vec<_>) = files
            .iter()
            .zip(&wl.files)
            .partition(|(_, f)| f.size >= LARGE_WEIGHTS_FILE);
        let target_of = |rel: &str| {
            if rel.is_empty() {
                w.target.clone()
            } else {
                crate::manifest::image_join(&w.target, rel)
            }
        };
        type Group<'a> = (
            String,
            Vec<(&'a (String, PathBuf), &'a lockfile::WeightsFile)>,
        );
        let mut groups: Vec<Group> = big
            .into_iter()
            .map(|f| {
                let shown = if f.0 .0.is_empty() {
                    w.rel.clone()
                } else {
                    format!("{}/{}", w.rel, f.0 .0)
                };
                (shown, vec![f])
            })
            .collect();
        if !small.is_empty() {
            let shown = if small.len() == 1 && small[0].0 .0.is_empty() {
                w.rel.clone()
            } else {
                format!("{} ({} files)", w.rel, small.len())
            };
            groups.push((shown, small));
        }
        for (shown, group) in groups {
            let key_parts: Vec<String> = std::iter::once("weights v2".to_string())
                .chain(
                    group
                        .iter()
                        .map(|((rel, _), f)| format!("{} {} {}", target_of(rel), f.size, f.sha256)),
                )
                .collect();
            let refs: Vec<&str> = key_parts.iter().map(String::as_str).collect();
            let key = key_of(&refs);
            let (entry, cached) = match cache_get(store, &key, req.no_cache) {
                Some(e) => (e, true),
                None => {
                    progress.note(&format!("weights `{}`: {shown}", w.name));
                    let placed: Vec<(String, PathBuf, u32, Option<String>)> = group
                        .iter()
                        .map(|((rel, abs), f)| {
                            (target_of(rel), abs.clone(), 0o644, Some(f.sha256.clone()))
                        })
                        .collect();
                    // Time 0, not the image's: the same weights give the same layer in
                    // every version and every project, whatever the base's date.
                    let e = write_placed(store, &placed, &[], 0, Compression::None)?;
                    cache_put(store, &key, &e);
                    (e, false)
                }
            };
            hist.push(history(
                epoch,
                format!("kiln weights {} {shown} -> {}", w.name, w.target),
            ));
            for ((rel, _), _) in &group {
                weights_layer.insert(target_of(rel), entry.layer.digest.to_string());
            }
            reports.push(LayerReport {
                kind: "weights",
                name: format!("{}: {shown}", w.name),
                digest: entry.layer.digest.to_string(),
                size: entry.layer.size,
                cached,
            });
            layers.push(entry);
        }
    }

    // 2. OS: the base's layers.
    let base_layers = base_info.manifest.layers.clone();
    let base_diffs = base_info.config.rootfs.diff_ids.clone();
    let base_hist = base_info.config.history.clone().unwrap_or_default();
    for (i, (l, d)) in base_layers.iter().zip(&base_diffs).enumerate() {
        reports.push(LayerReport {
            kind: "os",
            name: format!("{} layer {}", lock.base.image, i + 1),
            digest: l.digest.to_string(),
            size: l.size,
            cached: base_cached,
        });
        layers.push(CacheEntry {
            layer: l.clone(),
            diff_id: d.clone(),
        });
    }
    hist.extend(base_hist.into_iter().filter(|h| !h.empty_layer));
    while hist.len() < layers.len() {
        hist.push(history(epoch, "base layer".into()));
    }

    // Trees just written as layers (layer index, directory): kept as their snapshots.
    let mut fresh_trees: Vec<(usize, PathBuf)> = Vec::new();
    let mut keep: Vec<tempfile::TempDir> = Vec::new();
    // 3. env: user, venv skeleton, workdir. Keyed by the base image (which fixes its
    // /etc/passwd and /etc/group), so a hit reads nothing of the base.
    let (uid, gid, uname) = p.user.clone();
    let env_key = key_of(&[
        "env v2",
        &epoch.to_string(),
        &base_info.manifest_descriptor.digest.to_string(),
        &format!("{uid}:{gid}:{uname:?}"),
        &interp.path,
        &interp.full,
        &p.workdir,
        &p.manifest.app.writable.join("\n"),
    ]);
    let (env_entry, cached) = match cache_get(store, &env_key, req.no_cache) {
        Some(e) => (e, true),
        None => {
            let base_manifest = Manifest::oci(
                Descriptor::new(media::OCI_CONFIG, Digest::of_bytes(b""), 0),
                base_layers.clone(),
            );
            let lowers = snapshot::prepare(store, &base_manifest, &base_info.config)?;
            let passwd = base_file(&lowers, "etc/passwd").unwrap_or_default();
            let group = base_file(&lowers, "etc/group").unwrap_or_default();
            let tmp = tempdir(store, "env")?;
            let root = tmp.path().join("root");
            let e = env_layer(store, &root, &p, &interp, &passwd, &group, epoch)?;
            cache_put(store, &env_key, &e);
            fresh_trees.push((layers.len(), root));
            keep.push(tmp);
            (e, false)
        }
    };
    reports.push(LayerReport {
        kind: "env",
        name: format!(
            "user {}, {VENV} for Python {}",
            uname.as_deref().unwrap_or(&uid.to_string()),
            interp.full
        ),
        digest: env_entry.layer.digest.to_string(),
        size: env_entry.layer.size,
        cached,
    });
    hist.push(history(
        epoch,
        format!("kiln env: user {uid}:{gid}, {VENV} -> {}", interp.path),
    ));
    layers.push(env_entry);

    // 4. Python.
    let mut groups: Vec<(String, Vec<LockedDist>)> = Vec::new();
    let mut rest = Vec::new();
    for d in &lock.python.packages {
        if d.size >= LARGE_WHEEL {
            groups.push((format!("{} {}", d.name, d.version), vec![d.clone()]));
        } else {
            rest.push(d.clone());
        }
    }
    if !rest.is_empty() {
        groups.push((format!("{} packages", rest.len()), rest));
    }
    let mut todo = Vec::new();
    let mut py_entries: Vec<Option<(CacheEntry, bool)>> = Vec::new();
    for (i, (_, dists)) in groups.iter().enumerate() {
        let mut parts = vec![
            "python v2".to_string(),
            interp.version.clone(),
            interp.platform.clone(),
            VENV.to_string(),
        ];
        parts.extend(
            dists
                .iter()
                .map(|d| format!("{} {} {}", d.name, d.version, d.sha256)),
        );
        let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
        let key = key_of(&refs);
        match cache_get(store, &key, req.no_cache) {
            Some(e) => py_entries.push(Some((e, true))),
            None => {
                py_entries.push(None);
                todo.push((i, key));
            }
        }
    }
    if !todo.is_empty() {
        let u = get_uv(store, &mut uv, progress)?.clone();
        // Source distributions are built into wheels first, in build containers.
        let sdists: Vec<&LockedDist> = todo
            .iter()
            .flat_map(|(i, _)| groups[*i].1.iter())
            .filter(|d| d.sdist)
            .collect();
        let built = build_sdists(store, &u, &sdists, &base_info, &interp, epoch, &p, progress)?;
        let tmp = tempdir(store, "python")?;
        let jobs = req.jobs.clamp(1, 4);
        let results: std::sync::Mutex<Vec<(usize, Result<CacheEntry>)>> = Default::default();
        let queue = std::sync::Mutex::new(todo.clone());
        std::thread::scope(|s| {
            for _ in 0..jobs.min(todo.len()) {
                s.spawn(|| loop {
                    let Some((i, key)) = queue.lock().expect("queue").pop() else {
                        break;
                    };
                    let (label, dists) = &groups[i];
                    progress.note(&format!("installing {label} with uv"));
                    let root = tmp.path().join(format!("layer-{i}"));
                    let scratch = tmp.path().join(format!("scratch-{i}"));
                    let r = install(&u, dists, &built, &interp, &root, &scratch).and_then(|_| {
                        // Time 0 as for weights: a distribution's layer depends only on
                        // its wheel and the interpreter's X.Y, so every project shares it.
                        let e = write_tree(store, &root, 0, Compression::None)?;
                        cache_put(store, &key, &e);
                        Ok(e)
                    });
                    results.lock().expect("results").push((i, r));
                });
            }
        });
        let first = layers.len();
        for (i, r) in results.into_inner().expect("results") {
            py_entries[i] = Some((r?, false));
            fresh_trees.push((first + i, tmp.path().join(format!("layer-{i}"))));
        }
        keep.push(tmp);
    }
    for ((label, dists), e) in groups.iter().zip(py_entries) {
        let (entry, cached) = e.expect("every group built or cached");
        reports.push(LayerReport {
            kind: "python",
            name: label.clone(),
            digest: entry.layer.digest.to_string(),
            size: entry.layer.size,
            cached,
        });
        let names: Vec<String> = dists
            .iter()
            .map(|d| format!("{}=={}", d.name, d.version))
            .collect();
        let by = if names.len() <= 8 {
            names.join(" ")
        } else {
            format!(
                "{} ... ({} distributions)",
                names[..8].join(" "),
                names.len()
            )
        };
        hist.push(history(epoch, format!("kiln python: uv pip install {by}")));
        layers.push(entry);
    }

    // 5. Code.
    let files = code_files(&p)?;
    if files.is_empty() {
        progress.note("no code files matched [app].files: the image has no code layer");
    } else {
        let placed: Vec<(String, PathBuf, u32, Option<String>)> = files
            .iter()
            .map(|(rel, abs)| {
                use std::os::unix::fs::PermissionsExt;
                let exec = fs::metadata(abs)
                    .map(|m| m.permissions().mode() & 0o100 != 0)
                    .unwrap_or(false);
                (
                    crate::manifest::image_join(&p.workdir, rel),
                    abs.clone(),
                    if exec { 0o755 } else { 0o644 },
                    None,
                )
            })
            .collect();
        let mut workdir_dirs = parents(&format!("{}/x", p.workdir));
        workdir_dirs.retain(|d| !d.is_empty());
        let e = write_placed(store, &placed, &workdir_dirs, epoch, Compression::None)?;
        reports.push(LayerReport {
            kind: "code",
            name: format!("{} files -> {}", files.len(), p.workdir),
            digest: e.layer.digest.to_string(),
            size: e.layer.size,
            cached: false,
        });
        hist.push(history(
            epoch,
            format!("kiln code: {} files -> {}", files.len(), p.workdir),
        ));
        layers.push(e);
    }

    // Each tree just written is exactly its layer, unpacked: it becomes the layer's
    // snapshot, so the first `kiln run` unpacks nothing of it.
    let diffs: Vec<Digest> = layers.iter().map(|e| e.diff_id.clone()).collect();
    let chains = kiln_store::prune::chain_ids(&diffs);
    for (i, dir) in fresh_trees {
        store.hold(&[Held::Snapshot(chains[i].clone())])?;
        let snap = snapshot::path(store, &chains[i]);
        if !snap.exists() {
            if let Some(parent) = snap.parent() {
                let _ = fs::create_dir_all(parent);
            }
            // Another process may have made it meanwhile: theirs is as good.
            let _ = fs::rename(&dir, &snap);
        }
    }
    drop(keep);
    // Config.
    let config = image_config(
        &p,
        &lock,
        &base_info,
        &interp,
        epoch,
        &layers,
        hist,
        &req.labels,
        &weights_layer,
    );
    let layer_list: Vec<Descriptor> = layers.iter().map(|e| e.layer.clone()).collect();
    let (descriptor, _) = store.write_image(&config, layer_list.clone())?;
    // The layers not unpacked yet (weights, code) are unpacked now: the image is ready to
    // run, and reading its packages (SBOM, `kiln env`) walks snapshots, not blobs.
    let manifest = Manifest::oci(
        Descriptor::new(media::OCI_CONFIG, Digest::of_bytes(b""), 0),
        layer_list,
    );
    snapshot::prepare(store, &manifest, &config)?;
    Ok(BuildOutcome {
        project: p,
        lock,
        lock_changes,
        descriptor: Some(descriptor),
        layers: reports,
    })
}

fn env_layer(
    store: &Store,
    root: &Path,
    p: &Project,
    interp: &Interp,
    passwd: &str,
    group: &str,
    epoch: i64,
) -> Result<CacheEntry> {
    use std::os::unix::fs::{chown, symlink, PermissionsExt};
    let mk = |rel: &str, mode: u32, owner: Option<(u32, u32)>| -> Result<PathBuf> {
        let d = root.join(rel);
        fs::create_dir_all(&d).map_err(io(&d))?;
        fs::set_permissions(&d, fs::Permissions::from_mode(mode)).map_err(io(&d))?;
        if let Some((u, g)) = owner {
            chown(&d, Some(u), Some(g)).map_err(io(&d))?;
        }
        Ok(d)
    };
    let (uid, gid, uname) = p.user.clone();
    let etc = mk("etc", 0o755, None)?;
    if let Some(name) = uname.as_deref().filter(|n| *n != "root") {
        // A name the base already has keeps its entry, and must have the ids kiln runs as.
        if let Some(l) = passwd.lines().find(|l| l.split(':').next() == Some(name)) {
            let f: Vec<&str> = l.split(':').collect();
            let ids = (
                f.get(2).and_then(|u| u.parse::<u32>().ok()),
                f.get(3).and_then(|g| g.parse::<u32>().ok()),
            );
            if ids != (Some(uid), Some(gid)) {
                return Err(Error::with_hint(
                    format!(
                        "user `{name}` exists in the base with uid:gid {}:{}, not {uid}:{gid}",
                        f.get(2).unwrap_or(&"?"),
                        f.get(3).unwrap_or(&"?")
                    ),
                    format!(
                        "set [app] user = \"{}:{}\", or pick a name the base does not have",
                        f.get(2).unwrap_or(&"?"),
                        f.get(3).unwrap_or(&"?")
                    ),
                ));
            }
        }
        let has_user = passwd.lines().any(|l| l.split(':').next() == Some(name));
        let has_group = group.lines().any(|l| l.split(':').next() == Some(name));
        let home = format!("/home/{name}");
        // Writes `text` with `line` after it, on a line of its own, as etc/`file` (0644).
        let append = |file: &str, text: &str, line: String| -> Result<()> {
            let mut t = text.to_string();
            if !t.is_empty() && !t.ends_with('\n') {
                t.push('\n');
            }
            t.push_str(&line);
            fs::write(etc.join(file), t).map_err(io(&etc))?;
            fs::set_permissions(etc.join(file), fs::Permissions::from_mode(0o644)).map_err(io(&etc))
        };
        if !has_user {
            append(
                "passwd",
                passwd,
                format!("{name}:x:{uid}:{gid}::{home}:/bin/sh\n"),
            )?;
        }
        if !has_group {
            append("group", group, format!("{name}:x:{gid}:\n"))?;
        }
        mk("home", 0o755, None)?;
        mk(&format!("home/{name}"), 0o750, Some((uid, gid)))?;
    }
    let venv = mk("opt/venv", 0o755, None)?;
    mk("opt/venv/bin", 0o755, None)?;
    mk(
        &format!("opt/venv/lib/python{}/site-packages", interp.version),
        0o755,
        None,
    )?;
    let home = Path::new(&interp.path)
        .parent()
        .map_or("/usr/bin".into(), |d| d.display().to_string());
    fs::write(
        venv.join("pyvenv.cfg"),
        format!(
            "home = {home}\ninclude-system-site-packages = false\nversion = {}\nexecutable = {}\n",
            interp.full, interp.path
        ),
    )
    .map_err(io(&venv))?;
    fs::set_permissions(venv.join("pyvenv.cfg"), fs::Permissions::from_mode(0o644))
        .map_err(io(&venv))?;
    let bin = venv.join("bin");
    symlink(&interp.path, bin.join("python")).map_err(io(&bin))?;
    symlink("python", bin.join("python3")).map_err(io(&bin))?;
    symlink("python", bin.join(format!("python{}", interp.version))).map_err(io(&bin))?;
    mk(p.workdir.trim_start_matches('/'), 0o755, None)?;
    for w in &p.manifest.app.writable {
        let rel = crate::manifest::image_join("/", w);
        if rel != "/" {
            mk(rel.trim_start_matches('/'), 0o755, Some((uid, gid)))?;
        }
    }
    write_tree(store, root, epoch, Compression::None)
}

#[allow(clippy::too_many_arguments)]
fn image_config(
    p: &Project,
    lock: &KilnLock,
    base: &kiln_store::ImageInfo,
    interp: &Interp,
    epoch: i64,
    layers: &[CacheEntry],
    hist: Vec<History>,
    extra_labels: &BTreeMap<String, String>,
    weights_layer: &BTreeMap<String, String>,
) -> ImageConfig {
    let base_cfg = base.config.config.clone().unwrap_or_default();
    let base_env = base_cfg.env.clone().unwrap_or_default();
    let path = base_env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        .to_string();
    let mut env: Vec<(String, String)> = base_env
        .iter()
        .filter_map(|e| {
            e.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .filter(|(k, _)| k != "PATH")
        .collect();
    let mut set = |k: &str, v: String| {
        env.retain(|(e, _)| e != k);
        env.push((k.to_string(), v));
    };
    set("PATH", format!("{VENV}/bin:{path}"));
    set("VIRTUAL_ENV", VENV.to_string());
    set("PYTHONUNBUFFERED", "1".into());
    set("LANG", "C.UTF-8".into());
    if let Some(name) = p.user.2.as_deref().filter(|n| *n != "root") {
        set("HOME", format!("/home/{name}"));
    }
    for (k, v) in p.env() {
        set(&k, v);
    }
    let mut labels: BTreeMap<String, String> = base_cfg
        .labels
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    labels.insert("org.opencontainers.image.title".into(), p.name.clone());
    if let Some(v) = &p.version {
        labels.insert("org.opencontainers.image.version".into(), v.clone());
    }
    if let Some(d) = &p.manifest.project.description {
        labels.insert("org.opencontainers.image.description".into(), d.clone());
    }
    labels.insert("org.opencontainers.image.created".into(), rfc3339(epoch));
    labels.remove("org.opencontainers.image.base.name");
    labels.insert(
        "org.opencontainers.image.base.name".into(),
        lock.base.image.clone(),
    );
    labels.insert(
        "org.opencontainers.image.base.digest".into(),
        base.descriptor.digest.to_string(),
    );
    for (k, v) in extra_labels {
        labels.insert(k.clone(), v.clone());
    }
    let meta = serde_json::json!({
        "name": p.name,
        "version": p.version,
        "ports": p.ports,
        "resources": {
            "cpus": p.manifest.resources.cpus.map(crate::manifest::Cpus::value),
            "memory_bytes": p.memory_bytes,
            "gpus": p.manifest.resources.gpus,
        },
        "healthcheck": p.health.as_ref().map(|h| serde_json::json!({"path": h.http_path, "test": h.test})),
        "weights": lock.weights.iter().map(|w| serde_json::json!({
            "name": w.name,
            "target": w.target,
            "files": w.files.iter().map(|f| {
                let at = if f.path.is_empty() { w.target.clone() } else { crate::manifest::image_join(&w.target, &f.path) };
                serde_json::json!({"path": at, "size": f.size, "sha256": f.sha256, "layer": weights_layer.get(&at)})
            }).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "writable": p.manifest.app.writable,
        "python": {"version": interp.full, "interpreter": interp.path, "platform": interp.platform, "venv": VENV},
        "lock": lock.digest(),
    });
    labels.insert(
        PROJECT_LABEL.into(),
        serde_json::to_string(&meta).expect("serializes"),
    );
    let mut cfg = ContainerConfig {
        user: Some(format!("{}:{}", p.user.0, p.user.1)),
        env: Some(env.into_iter().map(|(k, v)| format!("{k}={v}")).collect()),
        working_dir: Some(p.workdir.clone()),
        labels: Some(labels.into_iter().collect()),
        ..Default::default()
    };
    if !p.ports.is_empty() {
        cfg.exposed_ports = Some(
            p.ports
                .iter()
                .map(|n| (format!("{n}/tcp"), serde_json::json!({})))
                .collect(),
        );
    }
    match (&p.entrypoint, &p.command) {
        (Some(e), c) => {
            cfg.entrypoint = Some(e.clone());
            cfg.cmd = c.clone();
        }
        (None, Some(c)) => cfg.cmd = Some(c.clone()),
        (None, None) => {
            cfg.entrypoint = base_cfg.entrypoint.clone();
            cfg.cmd = base_cfg
                .cmd
                .clone()
                .or_else(|| Some(vec!["python3".into()]));
        }
    }
    if let Some(h) = &p.health {
        let mut hc = serde_json::json!({ "Test": h.test });
        if let Some(v) = h.interval_ns {
            hc["Interval"] = v.into();
        }
        if let Some(v) = h.timeout_ns {
            hc["Timeout"] = v.into();
        }
        if let Some(v) = h.start_period_ns {
            hc["StartPeriod"] = v.into();
        }
        if let Some(v) = h.retries {
            hc["Retries"] = v.into();
        }
        cfg.extra.insert("Healthcheck".into(), hc);
    }
    ImageConfig {
        created: Some(rfc3339(epoch)),
        author: None,
        architecture: base.config.architecture.clone(),
        os: "linux".into(),
        variant: base.config.variant.clone(),
        config: Some(cfg),
        rootfs: RootFs {
            kind: "layers".into(),
            diff_ids: layers.iter().map(|e| e.diff_id.clone()).collect(),
        },
        history: Some(hist),
        extra: Default::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_hashes_are_urlsafe_base64_without_padding() {
        assert_eq!(b64(b""), "");
        assert_eq!(b64(b"f"), "Zg");
        assert_eq!(b64(b"fo"), "Zm8");
        assert_eq!(b64(b"foo"), "Zm9v");
        assert_eq!(b64(&[0xfb, 0xff]), "-_8");
    }

    #[test]
    fn versions_and_platforms() {
        assert_eq!(upstream("3.11.2-6+deb12u1").unwrap().2, "3.11.2");
        assert_eq!(
            upstream("2.36-9+deb12u13").map(|v| (v.0, v.1)),
            Some((2, 36))
        );
        assert_eq!(
            platform_for("amd64", Some((2, 36))),
            "x86_64-manylinux_2_36"
        );
        assert_eq!(
            platform_for("amd64", Some((2, 41))),
            "x86_64-manylinux_2_40"
        );
        assert_eq!(
            platform_for("arm64", Some((2, 24))),
            "aarch64-manylinux_2_17"
        );
        assert_eq!(parents("/app/models/x.bin"), ["app", "app/models"]);
    }

    #[test]
    fn kilnignore_is_gitignore_syntax() {
        let d = gitignore_to_dockerignore("# c\n__pycache__/\n/build\ndocs/*.md\n!keep.py\n");
        let i = kiln_build::dockerignore::Ignore::parse(&d);
        assert!(i.is_excluded("__pycache__"));
        assert!(i.is_excluded("a/b/__pycache__/x.pyc"));
        assert!(i.is_excluded("build/x"));
        assert!(!i.is_excluded("src/build"));
        assert!(i.is_excluded("docs/a.md"));
    }
}
