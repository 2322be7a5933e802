//! The base: the interpreter and platform that a Debian lock or a base image gives, the
//! options of the Debian image, and the base image looked up in the store.

use crate::debian;
use crate::manifest::Project;
use crate::{Error, Result};
use kiln_store::Store;
use std::path::PathBuf;

/// What the base gives: its interpreter, platform and time.
pub(super) struct Interp {
    /// MAJOR.MINOR
    pub(super) version: String,
    /// Full version for pyvenv.cfg.
    pub(super) full: String,
    /// Absolute path in the image.
    pub(super) path: String,
    /// uv's --python-platform.
    pub(super) platform: String,
}

fn arch_prefix(arch: &str) -> &'static str {
    if arch == "arm64" {
        "aarch64"
    } else {
        "x86_64"
    }
}

/// `manylinux_2_M` for a glibc version (uv knows up to 2.40).
pub(super) fn platform_for(arch: &str, glibc: Option<(u32, u32)>) -> String {
    let minor = glibc.map_or(28, |(_, m)| m.clamp(17, 40));
    let minor = if (18..28).contains(&minor) { 17 } else { minor };
    format!("{}-manylinux_2_{minor}", arch_prefix(arch))
}

/// `3.11.2-6+deb12u1` -> (3, 11, "3.11.2").
pub(super) fn upstream(v: &str) -> Option<(u32, u32, String)> {
    let v = v.split_once(':').map_or(v, |(_, r)| r);
    let up = v.split(['-', '+', '~']).next()?;
    let mut it = up.split('.');
    let a = it.next()?.parse().ok()?;
    let b = it.next()?.parse().ok()?;
    Some((a, b, up.to_string()))
}

pub(super) fn interp_from_debian(lock: &kiln_debian::lock::Lock) -> Result<Interp> {
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

pub(super) fn interp_from_image(store: &Store, info: &kiln_store::ImageInfo) -> Result<Interp> {
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
pub(super) enum BaseNow {
    Debian(kiln_debian::lock::Lock),
    Image(Box<kiln_store::ImageInfo>),
}

pub(super) fn debian_options(
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

pub(super) fn strip_digest(r: &str) -> &str {
    r.split_once('@').map_or(r, |(n, _)| n)
}

pub(super) fn resolve_image(store: &Store, r: &str) -> Result<kiln_store::ImageInfo> {
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
