//! The Python side of a lock: one wheel per distribution, for one interpreter and platform.
//!
//! uv resolves (`uv pip compile --format pylock.toml`, PEP 751) and installs (`uv pip
//! install -r pylock.toml`); kiln only reads and writes the pylock.toml subset it needs,
//! and reads uv.lock's hashes to check that what it installs is what uv.lock allows.

use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// One distribution pinned to one wheel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, PartialOrd, Ord)]
pub struct LockedDist {
    pub name: String,
    pub version: String,
    pub url: String,
    pub sha256: String,
    pub size: u64,
}

impl LockedDist {
    /// The wheel's file name, from its URL.
    pub fn filename(&self) -> &str {
        let path = self.url.split(['?', '#']).next().unwrap_or("");
        path.rsplit('/').next().unwrap_or(path)
    }
}

#[derive(Deserialize)]
struct PyLock {
    #[serde(default)]
    packages: Vec<PyLockPackage>,
}

#[derive(Deserialize)]
struct PyLockPackage {
    name: String,
    version: Option<String>,
    #[serde(default)]
    wheels: Vec<PyLockWheel>,
    sdist: Option<toml::Value>,
}

#[derive(Deserialize)]
struct PyLockWheel {
    url: Option<String>,
    path: Option<String>,
    size: Option<u64>,
    #[serde(default)]
    hashes: BTreeMap<String, String>,
}

/// PEP 503 normalized name (`Scikit_Learn` -> `scikit-learn`).
pub fn normalize(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut dash = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            dash = true;
        } else {
            if dash && !out.is_empty() {
                out.push('-');
            }
            dash = false;
            out.push(c.to_ascii_lowercase());
        }
    }
    out
}

/// Reads the pylock.toml uv wrote for one platform: exactly one wheel per package.
pub fn read(text: &str, origin: &str) -> Result<Vec<LockedDist>> {
    let lock: PyLock =
        toml::from_str(text).map_err(|e| Error::new(format!("{origin}: {}", e.message())))?;
    let mut out = Vec::new();
    for p in lock.packages {
        let version = p.version.unwrap_or_default();
        let wheel = match p.wheels.as_slice() {
            [w] => w,
            [] => {
                let what = if p.sdist.is_some() {
                    "has only a source distribution"
                } else {
                    "has no wheel"
                };
                return Err(Error::hint(
                    format!("{} {version} {what} for this platform", p.name),
                    "kiln installs wheels only (no compiler in the build): pick a version with a wheel for the image's Python and platform, or build a wheel and list its directory in [python] find-links",
                ));
            }
            _ => {
                return Err(Error::new(format!(
                    "{origin}: {} {version} has {} wheels; expected one for the platform",
                    p.name,
                    p.wheels.len()
                )))
            }
        };
        let url = match (&wheel.url, &wheel.path) {
            (Some(u), _) => u.clone(),
            (None, Some(p)) => p.clone(),
            _ => {
                return Err(Error::new(format!(
                    "{origin}: {} has a wheel without a url",
                    p.name
                )))
            }
        };
        let sha256 = wheel.hashes.get("sha256").cloned().ok_or_else(|| {
            Error::hint(
                format!("{origin}: the wheel of {} {version} has no sha256", p.name),
                "kiln pins every wheel by sha256; use an index that publishes hashes",
            )
        })?;
        out.push(LockedDist {
            name: normalize(&p.name),
            version,
            url,
            sha256,
            size: wheel.size.unwrap_or(0),
        });
    }
    out.sort();
    Ok(out)
}

fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// A pylock.toml of `dists` for `uv pip install -r`.
pub fn write(dists: &[LockedDist]) -> String {
    let mut s = String::from("lock-version = \"1.0\"\ncreated-by = \"kiln\"\n");
    for d in dists {
        s.push_str(&format!(
            "\n[[packages]]\nname = {}\nversion = {}\nwheels = [{{ url = {}, size = {}, hashes = {{ sha256 = {} }} }}]\n",
            toml_str(&d.name),
            toml_str(&d.version),
            toml_str(&d.url),
            d.size,
            toml_str(&d.sha256)
        ));
    }
    s
}

#[derive(Deserialize)]
struct UvLock {
    #[serde(default)]
    package: Vec<UvPackage>,
}

#[derive(Deserialize)]
struct UvPackage {
    name: String,
    version: Option<String>,
    source: Option<toml::Value>,
    #[serde(default)]
    wheels: Vec<UvFile>,
    sdist: Option<UvFile>,
}

#[derive(Deserialize)]
struct UvFile {
    hash: Option<String>,
}

/// What kiln checks against uv.lock: every (name, version) with its allowed sha256s, and
/// the registries its packages come from (first = most used).
pub struct UvLockFacts {
    pub hashes: BTreeMap<(String, String), BTreeSet<String>>,
    pub registries: Vec<String>,
}

/// Reads uv.lock.
pub fn read_uv_lock(path: &Path) -> Result<UvLockFacts> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::new(format!("{}: {e}", path.display())))?;
    let lock: UvLock = toml::from_str(&text).map_err(|e| {
        let (l, c) = crate::manifest::line_col(&text, e.span().map_or(0, |s| s.start));
        Error::hint(
            format!("{}:{l}:{c}: {}", path.display(), e.message()),
            "uv.lock is written by `uv lock`; run it again",
        )
    })?;
    let mut hashes = BTreeMap::new();
    let mut registries: BTreeMap<String, usize> = BTreeMap::new();
    for p in lock.package {
        let Some(version) = p.version else { continue };
        let set: BTreeSet<String> = p
            .wheels
            .iter()
            .chain(p.sdist.iter())
            .filter_map(|f| {
                f.hash
                    .as_deref()?
                    .strip_prefix("sha256:")
                    .map(str::to_string)
            })
            .collect();
        if let Some(r) = p
            .source
            .as_ref()
            .and_then(|s| s.get("registry"))
            .and_then(|r| r.as_str())
        {
            *registries.entry(r.to_string()).or_default() += 1;
        }
        hashes.insert((normalize(&p.name), version), set);
    }
    let mut regs: Vec<(String, usize)> = registries.into_iter().collect();
    regs.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    Ok(UvLockFacts {
        hashes,
        registries: regs.into_iter().map(|(r, _)| r).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_it_writes() {
        let d = vec![LockedDist {
            name: "numpy".into(),
            version: "2.2.6".into(),
            url: "https://files.pythonhosted.org/packages/b3/dd/numpy-2.2.6-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl".into(),
            sha256: "ba10".into(),
            size: 16821570,
        }];
        assert_eq!(read(&write(&d), "x").unwrap(), d);
        assert_eq!(
            d[0].filename(),
            "numpy-2.2.6-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
        );
        assert_eq!(normalize("Scikit_Learn"), "scikit-learn");
        assert_eq!(normalize("zope.interface"), "zope-interface");
    }

    #[test]
    fn an_sdist_only_package_is_refused_with_a_hint() {
        let e = read(
            "lock-version = \"1.0\"\n[[packages]]\nname = \"x\"\nversion = \"1\"\nsdist = { url = \"https://e/x-1.tar.gz\" }\n",
            "pylock.toml",
        )
        .unwrap_err();
        assert!(e.to_string().contains("only a source distribution"), "{e}");
        assert!(e.hint_text().unwrap().contains("wheels only"));
    }
}
