//! `kiln base debian`: from suites (or a lock) to an image in the store.
//!
//! Layers follow change frequency: the Essential/required set and apt (`base`), then what
//! the requested packages add (`extra`), then the small layer of shared databases (dpkg
//! status, alternatives, /etc/shells, apt sources). Adding a package rebuilds neither the
//! base layer nor its snapshot. Each layer is cached by the exact packages in it, so a
//! rebuild from a lock with a warm cache writes nothing.

use crate::archive::{fetch_release, load_packages, Source};
use crate::deb::ControlFiles;
use crate::dpkg::{self, Alternative};
use crate::fetch::Fetcher;
use crate::index::Index;
use crate::lock::{Lock, LockSource, LockedPackage, LOCK_VERSION};
use crate::native::{self, Handling, Tree};
use crate::resolve::{parse_request, resolve, Group};
use crate::unpack::{merged_links, unpack_all, Unpacked};
use crate::verify::Keyring;
use crate::{DebianError, Result};
use kiln_layer::pool::run_parallel;
use kiln_layer::{Compression, WriteOptions};
use kiln_oci::types::{ContainerConfig, Descriptor, History, ImageConfig, RootFs};
use kiln_oci::Digest;
use kiln_store::{snapshot, Store};
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Bumped whenever the layers kiln writes for the same packages change.
const FORMAT: &str = "kiln-debian/2";

pub const DEFAULT_MIRROR: &str = "http://deb.debian.org/debian";
pub const DEFAULT_SECURITY_MIRROR: &str = "http://deb.debian.org/debian-security";
pub const PATH_ENV: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

#[derive(Clone, Debug)]
pub struct Options {
    pub suite: String,
    pub arch: String,
    pub mirror: String,
    /// `None`: no security suite.
    pub security_mirror: Option<String>,
    /// Include `SUITE-updates`.
    pub updates: bool,
    pub components: Vec<String>,
    pub packages: Vec<String>,
    /// Keyrings to trust; empty: the system's Debian archive keyring, else kiln's own.
    pub keyrings: Vec<PathBuf>,
    pub lock: Option<PathBuf>,
    pub source_date_epoch: Option<i64>,
    /// Parallel downloads.
    pub jobs: usize,
}

/// Progress reports (libraries never print).
pub trait Progress: Sync {
    fn note(&self, _msg: &str) {}
}

/// The sources of a build of `opts`.
pub fn sources(opts: &Options) -> Vec<Source> {
    let mut v = vec![Source {
        mirror: opts.mirror.clone(),
        suite: opts.suite.clone(),
        components: opts.components.clone(),
    }];
    let rolling = matches!(opts.suite.as_str(), "sid" | "unstable" | "experimental");
    if opts.updates && !rolling {
        v.push(Source {
            mirror: opts.mirror.clone(),
            suite: format!("{}-updates", opts.suite),
            components: opts.components.clone(),
        });
    }
    if let (Some(m), false) = (&opts.security_mirror, rolling) {
        v.push(Source {
            mirror: m.clone(),
            suite: format!("{}-security", opts.suite),
            components: opts.components.clone(),
        });
    }
    v
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The lock to build: read from `opts.lock` when it exists (checked against the
/// options), else resolved from the suites' signed indexes (and written to `opts.lock`
/// when given). Returns the lock and whether it was freshly resolved.
pub fn plan(
    opts: &Options,
    f: &Fetcher,
    cache: &Path,
    progress: &dyn Progress,
) -> Result<(Lock, bool)> {
    if let Some(path) = &opts.lock {
        if path.exists() {
            let lock = Lock::read(path)?;
            let mismatch = |what: &str, lock_v: &str, opt_v: &str| {
                Err(DebianError::Lock {
                    path: path.clone(),
                    msg: format!("the lock is for {what} `{lock_v}`, not `{opt_v}`"),
                    hint: Some("remove the lock file to resolve again".into()),
                })
            };
            if lock.suite != opts.suite {
                return mismatch("suite", &lock.suite, &opts.suite);
            }
            if lock.architecture != opts.arch {
                return mismatch("architecture", &lock.architecture, &opts.arch);
            }
            if !opts.packages.is_empty() && lock.requested != opts.packages {
                return mismatch(
                    "packages",
                    &lock.requested.join(","),
                    &opts.packages.join(","),
                );
            }
            return Ok((lock, false));
        }
    }
    let requests = opts
        .packages
        .iter()
        .map(|p| parse_request(p))
        .collect::<Result<Vec<_>, _>>()?;
    let keys = Keyring::load(&opts.keyrings)?;
    let srcs = sources(opts);
    progress.note(&format!(
        "verifying {} (keys: {})",
        srcs.iter()
            .map(|s| s.suite.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        keys.describe()
    ));
    let t = now();
    let releases: Vec<Result<_>> = std::thread::scope(|s| {
        let hs: Vec<_> = srcs
            .iter()
            .map(|src| {
                let keys = &keys;
                s.spawn(move || {
                    fetch_release(f, src, keys, t).map_err(|e| DebianError::Suite {
                        suite: src.suite.clone(),
                        mirror: src.mirror.clone(),
                        source: Box::new(e),
                    })
                })
            })
            .collect();
        hs.into_iter()
            .map(|h| h.join().expect("release thread"))
            .collect()
    });
    let releases = releases.into_iter().collect::<Result<Vec<_>, _>>()?;
    let idx_cache = cache.join("indexes");
    // Indexes are read in parallel, then merged in source order.
    let parts: Vec<Result<Index>> = std::thread::scope(|s| {
        let hs: Vec<_> = srcs
            .iter()
            .zip(&releases)
            .enumerate()
            .map(|(i, (src, rel))| {
                let idx_cache = &idx_cache;
                s.spawn(move || {
                    let mut idx = Index::default();
                    load_packages(f, src, i, rel, &opts.arch, idx_cache, &mut idx)?;
                    Ok(idx)
                })
            })
            .collect();
        hs.into_iter()
            .map(|h| h.join().expect("index thread"))
            .collect()
    });
    let mut index = Index::default();
    for part in parts {
        let part = part?;
        for (k, v) in part.packages {
            index.packages.entry(k).or_default().extend(v);
        }
        for (k, v) in part.providers {
            index.providers.entry(k).or_default().extend(v);
        }
    }
    index.finish();
    let res = resolve(&index, &requests)?;
    let lock = Lock {
        lock_version: LOCK_VERSION,
        distribution: "debian".into(),
        suite: opts.suite.clone(),
        architecture: opts.arch.clone(),
        requested: opts.packages.clone(),
        sources: srcs
            .iter()
            .zip(&releases)
            .map(|(s, r)| LockSource {
                mirror: s.mirror.clone(),
                suite: s.suite.clone(),
                components: s.components.clone(),
                date: r.date.clone(),
                inrelease_sha256: r.inrelease_sha256.clone(),
            })
            .collect(),
        packages: res
            .packages
            .iter()
            .map(|c| LockedPackage {
                name: c.pkg.name.clone(),
                version: c.pkg.version.to_string(),
                architecture: c.pkg.architecture.clone(),
                group: c.group.as_str().into(),
                source: c.pkg.source,
                filename: c.pkg.filename.clone(),
                size: c.pkg.size,
                sha256: c.pkg.sha256.clone(),
            })
            .collect(),
    };
    if let Some(path) = &opts.lock {
        lock.write(path)?;
    }
    Ok((lock, true))
}

/// The cache file of a package: `NAME_VERSION_ARCH.deb`, as apt names them.
pub fn deb_path(cache: &Path, p: &LockedPackage) -> PathBuf {
    cache.join("debs").join(format!(
        "{}_{}_{}.deb",
        p.name,
        p.version.replace(':', "%3a"),
        p.architecture
    ))
}

/// Downloads every package of `lock` not in the cache (`jobs` at a time) and verifies
/// every one, cached or not, against the lock. Returns (downloaded count, bytes).
pub fn download(
    lock: &Lock,
    f: &Fetcher,
    cache: &Path,
    jobs: usize,
    progress: &dyn Progress,
) -> Result<(usize, u64)> {
    let total = Mutex::new((0usize, 0u64));
    run_parallel(&lock.packages, jobs, |p| {
        let src = &lock.sources[p.source];
        let url = format!("{}/{}", src.mirror.trim_end_matches('/'), p.filename);
        let dest = deb_path(cache, p);
        let n = f.fetch_verified(&url, &dest, &p.sha256, Some(p.size)).map_err(|e| {
            let hint = if dest.exists() {
                Some(format!("the cached file was changed; delete {} and kiln downloads it again", dest.display()))
            } else if e.to_string().contains("404") {
                Some(format!("the mirror no longer has {} {}; resolve again (remove the lock), or use a snapshot mirror such as http://snapshot.debian.org/archive/debian/<date of {}>/", p.name, p.version, src.date))
            } else {
                None
            };
            DebianError::Download {
                name: p.name.clone(),
                version: p.version.clone(),
                source: Box::new(e),
                hint,
            }
        })?;
        if n > 0 {
            let mut t = total.lock().expect("lock");
            t.0 += 1;
            t.1 += n;
        }
        Ok::<_, DebianError>(())
    })?;
    let (n, bytes) = *total.lock().expect("lock");
    if n > 0 {
        progress.note(&format!(
            "downloaded {n} packages ({:.1} MB)",
            bytes as f64 / 1e6
        ));
    }
    Ok((n, bytes))
}

/// A package whose maintainer scripts run in the container step.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct ScriptPackage {
    pub name: String,
    /// `libc6:amd64` for Multi-Arch: same.
    pub info_name: String,
    pub preinst: bool,
    pub postinst: bool,
}

/// What [`assemble`] made: the image (not yet tagged) and what is left for a container.
pub struct Assembled {
    pub config: ImageConfig,
    pub layers: Vec<Descriptor>,
    pub scripts: Vec<ScriptPackage>,
    pub ldconfig: bool,
    pub epoch: i64,
    /// Layers found in the cache.
    pub cached_layers: usize,
    /// Each package with maintainer scripts: (name, `native`|`nothing`|`script`, what
    /// kiln did instead or why nothing was needed).
    pub handling: Vec<(String, String, String)>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct CachedLayer {
    descriptor: Descriptor,
    diff_id: Digest,
    /// Packages of the layer whose scripts run in the container step.
    scripts: Vec<ScriptPackage>,
    ldconfig: bool,
    handling: Vec<(String, String, String)>,
    alternatives: Vec<Alternative>,
    diversions: Vec<(String, String, String)>,
    shells: bool,
}

impl CachedLayer {
    fn new(descriptor: Descriptor, diff_id: Digest) -> CachedLayer {
        CachedLayer {
            descriptor,
            diff_id,
            scripts: vec![],
            ldconfig: false,
            handling: vec![],
            alternatives: vec![],
            diversions: vec![],
            shells: false,
        }
    }
}

/// A layer made earlier from the same inputs, if its blob is still in the store.
fn read_memo(store: &Store, memo: &Path) -> Option<CachedLayer> {
    fs::read(memo)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .filter(|c: &CachedLayer| store.has_blob_held(&c.descriptor.digest))
}

fn key_of(parts: &[&str]) -> String {
    crate::fetch::sha256_bytes(parts.join("\n").as_bytes())
}

/// Builds the layers of `lock` from the cached .debs into `store`.
pub fn assemble(
    store: &Store,
    lock: &Lock,
    cache: &Path,
    epoch: i64,
    jobs: usize,
    progress: &dyn Progress,
) -> Result<Assembled> {
    let arch = lock.architecture.as_str();
    let mut diff_ids: Vec<Digest> = Vec::new();
    let mut layers: Vec<Descriptor> = Vec::new();
    let mut history: Vec<History> = Vec::new();
    let mut lowers: Vec<PathBuf> = Vec::new();
    let mut scripts = Vec::new();
    let mut ldconfig = false;
    let mut handling_all = Vec::new();
    let mut alternatives: Vec<Alternative> = Vec::new();
    let mut diversions = Vec::new();
    let mut shells = false;
    let mut cached_layers = 0;
    let created = rfc3339(epoch);
    let mut controls: BTreeMap<String, (String, ControlFiles)> = BTreeMap::new();
    let mut status_of: BTreeMap<String, String> = BTreeMap::new();
    for group in [Group::Base, Group::Extra] {
        let pkgs: Vec<&LockedPackage> = lock
            .packages
            .iter()
            .filter(|p| p.group == group.as_str())
            .collect();
        if pkgs.is_empty() {
            continue;
        }
        let mut key_parts: Vec<String> = vec![
            FORMAT.into(),
            arch.into(),
            group.as_str().into(),
            epoch.to_string(),
        ];
        key_parts.extend(diff_ids.iter().map(|d| d.to_string()));
        let no_native = native::no_native();
        if !no_native.is_empty() {
            key_parts.push(format!("no native: {}", no_native.join(",")));
        }
        key_parts.extend(
            pkgs.iter()
                .map(|p| format!("{} {} {}", p.name, p.version, p.sha256)),
        );
        let key = key_of(&key_parts.iter().map(String::as_str).collect::<Vec<_>>());
        let memo = cache.join("layers").join(format!("{key}.json"));
        let cached = read_memo(store, &memo);
        // The dpkg database needs every package's control files, cached layer or not.
        // Largest first: the threads finish together instead of waiting on one big
        // package picked last.
        let mut by_size: Vec<&&LockedPackage> = pkgs.iter().collect();
        by_size.sort_by(|a, b| b.size.cmp(&a.size).then_with(|| a.name.cmp(&b.name)));
        let debs: Vec<(String, PathBuf)> = by_size
            .iter()
            .map(|p| (p.name.clone(), deb_path(cache, p)))
            .collect();
        let c = match cached {
            Some(c) => {
                cached_layers += 1;
                for (name, path) in &debs {
                    let control = crate::deb::read_control_only(path)?;
                    let (_, info) = dpkg::info_name(&control)?;
                    controls.insert(name.clone(), (info, control));
                }
                c
            }
            None => {
                let c = build_layer(
                    store,
                    group,
                    &pkgs,
                    &debs,
                    &lowers,
                    &diff_ids,
                    epoch,
                    jobs,
                    arch,
                    &mut controls,
                    progress,
                )?;
                let _ = fs::create_dir_all(memo.parent().expect("a parent"));
                let _ = fs::write(&memo, serde_json::to_vec(&c).expect("serializes"));
                c
            }
        };
        scripts.extend(c.scripts.iter().cloned());
        ldconfig |= c.ldconfig;
        shells |= c.shells;
        handling_all.extend(c.handling.iter().cloned());
        alternatives.extend(c.alternatives.iter().cloned());
        diversions.extend(c.diversions.iter().cloned());
        diff_ids.push(c.diff_id.clone());
        layers.push(c.descriptor.clone());
        lowers.push(ensure_snapshot(store, &layers, &diff_ids)?);
        history.push(History {
            created: Some(created.clone()),
            created_by: Some(format!(
                "kiln base debian: {} packages ({})",
                pkgs.len(),
                group.as_str()
            )),
            comment: Some(match group {
                Group::Base => "Essential and required packages, apt".into(),
                Group::Extra => format!("requested: {}", lock.requested.join(", ")),
            }),
            ..Default::default()
        });
    }
    for p in &lock.packages {
        let pending = scripts.iter().any(|s| s.name == p.name && s.postinst);
        status_of.insert(
            p.name.clone(),
            if pending {
                "install ok unpacked"
            } else {
                "install ok installed"
            }
            .into(),
        );
    }
    // The shared databases.
    let mut key_parts = vec![FORMAT.to_string(), "db".into(), epoch.to_string()];
    key_parts.extend(diff_ids.iter().map(|d| d.to_string()));
    key_parts.extend(
        lock.sources
            .iter()
            .map(|s| format!("{} {}", s.mirror, s.suite)),
    );
    key_parts.extend(status_of.iter().map(|(k, v)| format!("{k} {v}")));
    let key = key_of(&key_parts.iter().map(String::as_str).collect::<Vec<_>>());
    let memo = cache.join("layers").join(format!("{key}.json"));
    let cached = read_memo(store, &memo);
    let db = match cached {
        Some(c) => {
            cached_layers += 1;
            c
        }
        None => {
            let dir = store.tmp_path("debian-db");
            fs::create_dir_all(&dir).map_err(DebianError::io(&dir))?;
            let result = (|| {
                let tree = Tree {
                    lower: lowers.iter().map(PathBuf::as_path).collect(),
                    out: &dir,
                    mtime: epoch,
                };
                write_databases(
                    &tree,
                    lock,
                    &controls,
                    &status_of,
                    &alternatives,
                    &diversions,
                    shells,
                )?;
                let c = write_snapshot_layer(store, &dir, &diff_ids, epoch)?;
                Ok::<_, DebianError>(c)
            })();
            let _ = fs::remove_dir_all(&dir);
            let (descriptor, diff_id) = result?;
            let c = CachedLayer::new(descriptor, diff_id);
            let _ = fs::create_dir_all(memo.parent().expect("a parent"));
            let _ = fs::write(&memo, serde_json::to_vec(&c).expect("serializes"));
            c
        }
    };
    diff_ids.push(db.diff_id.clone());
    layers.push(db.descriptor.clone());
    history.push(History {
        created: Some(created.clone()),
        created_by: Some("kiln base debian: dpkg database, alternatives, apt sources".into()),
        ..Default::default()
    });
    let mut labels = BTreeMap::new();
    labels.insert(
        "org.opencontainers.image.created".to_string(),
        created.clone(),
    );
    labels.insert("dev.kiln.debian.suite".to_string(), lock.suite.clone());
    labels.insert(
        "dev.kiln.debian.snapshot".to_string(),
        lock.sources
            .iter()
            .map(|s| format!("{}@{}", s.suite, s.date))
            .collect::<Vec<_>>()
            .join("; "),
    );
    let config = ImageConfig {
        created: Some(created),
        author: None,
        architecture: arch.to_string(),
        os: "linux".into(),
        variant: (arch == "arm64").then(|| "v8".to_string()),
        config: Some(ContainerConfig {
            env: Some(vec![PATH_ENV.to_string()]),
            cmd: Some(vec!["bash".to_string()]),
            labels: Some(labels),
            ..Default::default()
        }),
        rootfs: RootFs {
            kind: "layers".into(),
            diff_ids,
        },
        history: Some(history),
        extra: Default::default(),
    };
    // Scripts run in dependency order (a package after what it depends on).
    let scripts = order_scripts(scripts, &controls);
    Ok(Assembled {
        config,
        layers,
        scripts,
        ldconfig,
        epoch,
        cached_layers,
        handling: handling_all,
    })
}

#[allow(clippy::too_many_arguments)]
fn build_layer(
    store: &Store,
    group: Group,
    pkgs: &[&LockedPackage],
    debs: &[(String, PathBuf)],
    lowers: &[PathBuf],
    diff_ids: &[Digest],
    epoch: i64,
    jobs: usize,
    arch: &str,
    controls: &mut BTreeMap<String, (String, ControlFiles)>,
    progress: &dyn Progress,
) -> Result<CachedLayer> {
    progress.note(&format!(
        "unpacking {} packages ({})",
        pkgs.len(),
        group.as_str()
    ));
    let dir = store.tmp_path(&format!("debian-{}", group.as_str()));
    fs::create_dir_all(&dir).map_err(DebianError::io(&dir))?;
    let result = (|| {
        if group == Group::Base {
            for l in merged_links(arch) {
                fs::create_dir_all(dir.join("usr").join(l)).map_err(DebianError::io(&dir))?;
                symlink(format!("usr/{l}"), dir.join(l)).map_err(DebianError::io(&dir))?;
            }
        }
        let unpacked = unpack_all(debs, &dir, jobs)?;
        progress.note(&format!(
            "unpacked {} packages ({})",
            pkgs.len(),
            group.as_str()
        ));
        let mut c = CachedLayer::new(
            Descriptor::new("", Digest::of_bytes(b""), 0),
            Digest::of_bytes(b""),
        );
        let tree = Tree {
            lower: lowers.iter().map(PathBuf::as_path).collect(),
            out: &dir,
            mtime: epoch,
        };
        let info_dir = dir.join("var/lib/dpkg/info");
        let mut info_names: BTreeMap<&String, String> = BTreeMap::new();
        for (name, u) in &unpacked {
            let (_, info) = dpkg::info_name(&u.control)?;
            info_names.insert(name, info.clone());
            dpkg::write_info(&info_dir, &info, &u.control, &u.paths, epoch)
                .map_err(DebianError::io(&info_dir))?;
            controls.insert(name.clone(), (info, u.control.clone()));
        }
        // Native configuration in a fixed order: users and groups first (others look
        // up ids in them), then the rest by name.
        let mut order: Vec<&String> = unpacked.keys().collect();
        order.sort_by_key(|n| {
            (
                !matches!(n.as_str(), "base-passwd" | "passwd"),
                n.as_str() != "base-passwd",
                n.to_string(),
            )
        });
        for name in order {
            let u: &Unpacked = &unpacked[name];
            let h = native::handling_in(name, &u.control, &tree);
            let (kind, why) = match &h {
                Handling::Native(w) => ("native", w.to_string()),
                Handling::Nothing(w) => ("nothing", w.to_string()),
                Handling::Script => ("script", String::new()),
            };
            if u.control.get("postinst").is_some() || u.control.get("preinst").is_some() {
                c.handling.push((name.clone(), kind.into(), why));
            }
            match h {
                Handling::Script => {
                    c.scripts.push(ScriptPackage {
                        name: name.clone(),
                        info_name: info_names[name].clone(),
                        preinst: u.control.get("preinst").is_some(),
                        postinst: u.control.get("postinst").is_some(),
                    });
                }
                _ => {
                    let fx = native::configure(name, &u.control, &tree)?;
                    c.ldconfig |= fx.ldconfig;
                    c.shells |= fx.shells;
                    c.diversions.extend(fx.diversions);
                    c.alternatives.extend(fx.alternatives);
                }
            }
        }
        progress.note(&format!(
            "configured {} packages ({})",
            pkgs.len(),
            group.as_str()
        ));
        let (descriptor, diff_id) = write_snapshot_layer(store, &dir, diff_ids, epoch)?;
        progress.note(&format!(
            "wrote the {} layer ({:.1} MB)",
            group.as_str(),
            descriptor.size as f64 / 1e6
        ));
        c.descriptor = descriptor;
        c.diff_id = diff_id;
        Ok(c)
    })();
    let _ = fs::remove_dir_all(&dir);
    result
}

/// Writes `dir` as a layer on top of `below`, then keeps `dir` as the layer's snapshot
/// (it is exactly the layer, unpacked): directory times set to the epoch, other times
/// clamped to it, so the same packages give the same bytes.
fn write_snapshot_layer(
    store: &Store,
    dir: &Path,
    below: &[Digest],
    epoch: i64,
) -> Result<(Descriptor, Digest)> {
    normalize_times(dir, epoch).map_err(DebianError::io(dir))?;
    let opts = WriteOptions {
        source_date_epoch: Some(epoch),
        overlay_whiteouts: false,
        exclude: vec![],
    };
    let _gc = store.gc_lock(false)?;
    let layer = store
        .write_layer(Compression::None, |out| {
            kiln_layer::write_dir(dir, out, &opts).map(|_| ())
        })
        .map_err(|e| DebianError::WriteLayer { source: e.into() })?;
    let mut chain = below.to_vec();
    chain.push(layer.diff_id.clone());
    let chain_id = kiln_store::prune::chain_ids(&chain)
        .pop()
        .expect("one layer at least");
    let snap = snapshot::path(store, &chain_id);
    if !snap.exists() {
        if let Some(parent) = snap.parent() {
            let _ = fs::create_dir_all(parent);
        }
        // Another process may have made it meanwhile: theirs is as good.
        let _ = fs::rename(dir, &snap);
    }
    Ok((layer.descriptor, layer.diff_id))
}

/// Directories get the epoch as mtime (their times depend on unpacking order), other
/// entries keep theirs, clamped to the epoch.
fn normalize_times(dir: &Path, epoch: i64) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let md = fs::symlink_metadata(dir)?;
    if md.is_dir() {
        for e in fs::read_dir(dir)? {
            normalize_times(&e?.path(), epoch)?;
        }
        dpkg::set_mtime(dir, epoch)?;
    } else if md.mtime() > epoch {
        dpkg::set_mtime(dir, epoch)?;
    }
    Ok(())
}

/// The snapshot of the top layer of `layers`, unpacked from the store if missing.
fn ensure_snapshot(store: &Store, layers: &[Descriptor], diff_ids: &[Digest]) -> Result<PathBuf> {
    let manifest = kiln_oci::types::Manifest::oci(
        Descriptor::new(kiln_oci::media::OCI_CONFIG, Digest::of_bytes(b""), 0),
        layers.to_vec(),
    );
    let config = ImageConfig {
        created: None,
        author: None,
        architecture: String::new(),
        os: String::new(),
        variant: None,
        config: None,
        rootfs: RootFs {
            kind: "layers".into(),
            diff_ids: diff_ids.to_vec(),
        },
        history: None,
        extra: Default::default(),
    };
    let mut dirs = snapshot::prepare(store, &manifest, &config)?;
    Ok(dirs.pop().expect("one layer at least"))
}

/// status, info/format, triggers, diversions, alternatives, /etc/shells and the apt
/// sources: everything that depends on the whole package set.
fn write_databases(
    tree: &Tree<'_>,
    lock: &Lock,
    controls: &BTreeMap<String, (String, ControlFiles)>,
    status_of: &BTreeMap<String, String>,
    alternatives: &[Alternative],
    diversions: &[(String, String, String)],
    shells: bool,
) -> Result<()> {
    let e = |what: &str| {
        let what = what.to_string();
        move |source: std::io::Error| DebianError::WriteDatabase { what, source }
    };
    let mtime = tree.mtime;
    let db = tree.out.join("var/lib/dpkg");
    // status: every package, sorted by name, with its conffiles' sums.
    let mut status = String::new();
    for (name, (_, control)) in controls {
        let conffiles = dpkg::conffile_sums(control, |p| {
            let rel = p.trim_start_matches('/');
            tree.find(&crate::unpack::merged_rel(rel))
                .unwrap_or_else(|| tree.out.join(rel))
        })
        .map_err(|m| DebianError::Package {
            name: name.clone(),
            source: Box::new(m),
        })?;
        status.push_str(&dpkg::status_entry(&dpkg::Record {
            control,
            status: &status_of[name],
            conffiles,
        })?);
        status.push('\n');
    }
    dpkg::write_file(&db.join("status"), status.as_bytes(), 0o644, mtime).map_err(e("status"))?;
    dpkg::write_file(&db.join("info/format"), b"1\n", 0o644, mtime).map_err(e("info/format"))?;
    for f in ["lock", "lock-frontend"] {
        dpkg::write_file(&db.join(f), b"", 0o640, mtime).map_err(e(f))?;
    }
    for d in ["updates", "parts", "alternatives"] {
        fs::create_dir_all(db.join(d)).map_err(e(d))?;
    }
    let keyed: Vec<(&str, &ControlFiles)> =
        controls.values().map(|(k, c)| (k.as_str(), c)).collect();
    for (name, text) in dpkg::trigger_files(&keyed) {
        dpkg::write_file(
            &db.join("triggers").join(&name),
            text.as_bytes(),
            0o644,
            mtime,
        )
        .map_err(e("triggers"))?;
    }
    dpkg::write_file(&db.join("triggers/Lock"), b"", 0o600, mtime).map_err(e("triggers"))?;
    let mut div = String::new();
    for (from, to, pkg) in diversions {
        div.push_str(&format!("{from}\n{to}\n{pkg}\n"));
    }
    dpkg::write_file(&db.join("diversions"), div.as_bytes(), 0o644, mtime)
        .map_err(e("diversions"))?;
    // Alternatives: grouped by name; auto mode picks the best; links only where the
    // target exists (update-alternatives skips missing slaves the same way).
    let mut by_name: BTreeMap<&str, Vec<Alternative>> = BTreeMap::new();
    for a in alternatives {
        by_name.entry(&a.name).or_default().push(a.clone());
    }
    for (name, alts) in &by_name {
        dpkg::write_file(
            &db.join("alternatives").join(name),
            dpkg::alternatives_admin(alts).as_bytes(),
            0o644,
            mtime,
        )
        .map_err(e("alternatives"))?;
        let best = dpkg::best_alternative(alts);
        let mut links = vec![(best.name.clone(), best.link.clone(), best.path.clone())];
        links.extend(best.slaves.iter().cloned());
        for (n, link, path) in links {
            let target_rel = crate::unpack::merged_rel(path.trim_start_matches('/'));
            if !tree.exists(&target_rel) {
                continue;
            }
            tree_link(tree, &format!("etc/alternatives/{n}"), &path)?;
            tree_link(
                tree,
                &crate::unpack::merged_rel(link.trim_start_matches('/')),
                &format!("/etc/alternatives/{n}"),
            )?;
        }
    }
    if shells {
        write_shells(tree)?;
    }
    // apt sources (deb822), so `apt-get update` works in the image.
    let mut src = String::new();
    let mut by_mirror: Vec<(String, Vec<String>, Vec<String>)> = Vec::new();
    for s in &lock.sources {
        if s.mirror.starts_with("file:") {
            continue;
        }
        match by_mirror
            .iter_mut()
            .find(|(m, _, c)| *m == s.mirror && *c == s.components)
        {
            Some((_, suites, _)) => suites.push(s.suite.clone()),
            None => by_mirror.push((
                s.mirror.clone(),
                vec![s.suite.clone()],
                s.components.clone(),
            )),
        }
    }
    for (m, suites, comps) in by_mirror {
        if !src.is_empty() {
            src.push('\n');
        }
        src.push_str(&format!(
            "Types: deb\nURIs: {m}\nSuites: {}\nComponents: {}\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n",
            suites.join(" "),
            comps.join(" ")
        ));
    }
    if !src.is_empty() {
        let rel = "etc/apt/sources.list.d/debian.sources";
        tree_write(tree, rel, src.as_bytes())?;
    }
    Ok(())
}

fn tree_link(tree: &Tree<'_>, rel: &str, target: &str) -> Result<()> {
    tree.link(rel, target)
        .map_err(DebianError::io(format!("/{rel}")))
}

fn tree_write(tree: &Tree<'_>, rel: &str, bytes: &[u8]) -> Result<()> {
    tree.write(rel, bytes, 0o644, (0, 0))
        .map_err(DebianError::io(format!("/{rel}")))
}

/// /etc/shells as debianutils' update-shells writes it on a merged /usr: the shells of
/// /usr/share/debianutils/shells and shells.d/*, each followed by its /usr twin.
fn write_shells(tree: &Tree<'_>) -> Result<()> {
    let base = tree
        .find("usr/share/debianutils/shells")
        .and_then(|p| fs::read_to_string(p).ok())
        .unwrap_or_default();
    let mut header = String::new();
    let mut list: Vec<String> = Vec::new();
    for l in base.lines() {
        if l.starts_with('#') || l.trim().is_empty() {
            header.push_str(l);
            header.push('\n');
        } else {
            list.push(l.trim().to_string());
        }
    }
    let mut names: BTreeSet<String> = BTreeSet::new();
    for d in std::iter::once(tree.out).chain(tree.lower.iter().copied()) {
        if let Ok(rd) = fs::read_dir(d.join("usr/share/debianutils/shells.d")) {
            for e in rd.flatten() {
                names.insert(e.file_name().to_string_lossy().into_owned());
            }
        }
    }
    for n in names {
        if let Some(p) = tree.find(&format!("usr/share/debianutils/shells.d/{n}")) {
            for l in fs::read_to_string(p).unwrap_or_default().lines() {
                let l = l.trim();
                if !l.is_empty() && !l.starts_with('#') {
                    list.push(l.to_string());
                }
            }
        }
    }
    let mut out: Vec<String> = Vec::new();
    for s in list {
        let twin = crate::unpack::MERGED_DIRS
            .iter()
            .any(|d| s.starts_with(&format!("/{d}/")))
            .then(|| format!("/usr{s}"));
        for x in std::iter::once(s).chain(twin) {
            if !out.contains(&x) {
                out.push(x);
            }
        }
    }
    let mut text = header;
    let mut state = String::new();
    for s in &out {
        text.push_str(s);
        text.push('\n');
        state.push_str(s);
        state.push('\n');
    }
    tree_write(tree, "etc/shells", text.as_bytes())?;
    tree_write(tree, "var/lib/shells.state", state.as_bytes())
}

/// Dependency order among the packages whose scripts run: a package's postinst after
/// those of the packages it (pre-)depends on; otherwise by name.
fn order_scripts(
    scripts: Vec<ScriptPackage>,
    controls: &BTreeMap<String, (String, ControlFiles)>,
) -> Vec<ScriptPackage> {
    let names: BTreeSet<String> = scripts.iter().map(|s| s.name.clone()).collect();
    let deps = |n: &str| -> BTreeSet<String> {
        let Some((_, c)) = controls.get(n) else {
            return BTreeSet::new();
        };
        let text = c.text("control").unwrap_or_default();
        let Ok(paras) = crate::control::paragraphs(&text) else {
            return BTreeSet::new();
        };
        let mut out = BTreeSet::new();
        for f in ["Depends", "Pre-Depends"] {
            if let Some(v) = paras.first().and_then(|p| p.get(f)) {
                for d in crate::control::parse_relation(v)
                    .unwrap_or_default()
                    .iter()
                    .flatten()
                {
                    if names.contains(&d.name) && d.name != n {
                        out.insert(d.name.clone());
                    }
                }
            }
        }
        out
    };
    // Each package's dependencies among `names`, parsed once.
    let deps: BTreeMap<String, BTreeSet<String>> =
        names.iter().map(|n| (n.clone(), deps(n))).collect();
    let mut left: BTreeMap<String, ScriptPackage> =
        scripts.into_iter().map(|s| (s.name.clone(), s)).collect();
    let mut done: BTreeSet<String> = BTreeSet::new();
    let mut out = Vec::new();
    while !left.is_empty() {
        let ready: Option<String> = left
            .keys()
            .find(|n| deps[*n].iter().all(|d| done.contains(d)))
            .cloned()
            // A cycle: take the first by name, as dpkg breaks cycles somewhere too.
            .or_else(|| left.keys().next().cloned());
        let n = ready.expect("non-empty");
        done.insert(n.clone());
        out.push(left.remove(&n).expect("present"));
    }
    out
}

/// The shell script the container step runs: the maintainer scripts kiln does not
/// replicate, then ldconfig; files whose content is the build's time or order removed.
pub fn configure_script(a: &Assembled) -> String {
    let mut s = String::from(
        "set -e\nexport DEBIAN_FRONTEND=noninteractive DEBCONF_NONINTERACTIVE_SEEN=true DPKG_ROOT= LC_ALL=C.UTF-8\n",
    );
    s.push_str(&format!("export SOURCE_DATE_EPOCH={}\n", a.epoch));
    let arch = a.config.architecture.as_str();
    for p in &a.scripts {
        let env = format!(
            "DPKG_MAINTSCRIPT_PACKAGE={} DPKG_MAINTSCRIPT_ARCH={arch} DPKG_MAINTSCRIPT_PACKAGE_REFCOUNT=1",
            p.name
        );
        if p.preinst {
            s.push_str(&format!(
                "DPKG_MAINTSCRIPT_NAME=preinst {env} /var/lib/dpkg/info/{}.preinst install\n",
                p.info_name
            ));
        }
        if p.postinst {
            s.push_str(&format!(
                "DPKG_MAINTSCRIPT_NAME=postinst {env} /var/lib/dpkg/info/{}.postinst configure\n",
                p.info_name
            ));
            // dpkg marks the package configured once its postinst succeeded.
            s.push_str(&format!(
                "sed -i '/^Package: {}$/,/^$/ s/^Status: install ok unpacked$/Status: install ok installed/' /var/lib/dpkg/status\n",
                p.name.replace('.', "\\.").replace('+', "\\+")
            ));
        }
    }
    if a.ldconfig {
        s.push_str("ldconfig\n");
    }
    let day = a.epoch.max(0) / 86400;
    s.push_str(&format!(
        "if [ -f /etc/shadow ]; then sed -i -E 's/^([^:]*:[^:]*:)[0-9]+:/\\1{day}:/' /etc/shadow; fi\n"
    ));
    s.push_str("rm -f /var/cache/ldconfig/aux-cache /var/log/dpkg.log /var/log/alternatives.log /var/cache/debconf/*-old /var/lib/dpkg/*-old /etc/passwd- /etc/group- /etc/shadow- /etc/gshadow-\n");
    s
}

fn rfc3339(epoch: i64) -> String {
    chrono::DateTime::from_timestamp(epoch, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1686387231), "2023-06-10T08:53:51Z");
    }
}
