//! kiln.lock made fresh, or checked with `--locked`: the base and the Python
//! dependencies resolved again only when their inputs changed.

use super::base::{
    debian_options, interp_from_debian, interp_from_image, resolve_image, strip_digest, BaseNow,
    Interp,
};
use super::resolve::{get_uv, resolve_python};
use super::{tempdir, BuildRequest};
use crate::debian;
use crate::lockfile::{self, BaseLock, HashCache, KilnLock, PythonLock};
use crate::manifest::{Base, Dependencies, Project};
use crate::uv::Uv;
use crate::{Error, Progress, Result};
use kiln_store::Store;
use std::fs;
use std::path::Path;

/// Makes kiln.lock fresh (or checks it with `locked`). Returns the lock, the base as
/// resolved now, the interpreter, and the lines that changed.
pub(super) fn ensure_lock(
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
