//! What goes into an image: the lock (read, or resolved from the signed indexes) and its
//! packages, downloaded and verified into the cache.

use super::{sources, Options, Progress};
use crate::archive::{fetch_release, load_packages};
use crate::fetch::Fetcher;
use crate::index::Index;
use crate::lock::{Lock, LockSource, LockedPackage, LOCK_VERSION};
use crate::resolve::{parse_request, resolve};
use crate::verify::Keyring;
use crate::{DebianError, Result};
use kiln_layer::pool::run_parallel;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

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

/// Where the repack of `p`'s .deb (data recompressed with zstd, see
/// [`crate::deb::read_deb_repacking`]) is kept: named by the .deb's sha256, so a package
/// of the same name and version from another archive never takes its place.
pub fn repack_path(cache: &Path, p: &LockedPackage) -> PathBuf {
    cache.join("repacked").join(format!("{}.deb", p.sha256))
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
