//! The Python side of a lock: one wheel per distribution, for one interpreter and platform.
//!
//! uv resolves (`uv pip compile --format pylock.toml`, PEP 751) and installs (`uv pip
//! install -r pylock.toml`); kiln only reads and writes the pylock.toml subset it needs,
//! and reads uv.lock's hashes to check that what it installs is what uv.lock allows.

use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// One distribution pinned to one file: a wheel, or (`sdist`) a source distribution kiln
/// builds into a wheel in a build container from the base.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, PartialOrd, Ord)]
pub struct LockedDist {
    /// The distribution's name, normalized (PEP 503: lowercase, runs of `-_.` as `-`).
    pub name: String,
    /// The version the resolver picked.
    pub version: String,
    /// Where the file is downloaded from; a local path for a wheel from a find-links
    /// directory.
    pub url: String,
    /// sha256 of the file, hex; the download is checked against it.
    pub sha256: String,
    /// Size of the file in bytes; 0 when the index did not say.
    pub size: u64,
    /// The file is a source distribution, built into a wheel before it is installed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sdist: bool,
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
    sdist: Option<PyLockWheel>,
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
        let (wheel, sdist) = match (p.wheels.as_slice(), &p.sdist) {
            ([w], _) => (w, false),
            ([], Some(sd)) => (sd, true),
            ([], None) => {
                return Err(Error::with_hint(
                    format!(
                        "{} {version} has no wheel and no source distribution for this platform",
                        p.name
                    ),
                    "pick a version published for the image's Python and platform",
                ));
            }
            (many, _) => (
                many.iter()
                    .max_by_key(|w| {
                        let name = w.url.as_deref().or(w.path.as_deref()).unwrap_or("");
                        wheel_rank(name.rsplit('/').next().unwrap_or(name))
                    })
                    .expect("not empty"),
                false,
            ),
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
            Error::with_hint(
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
            sdist,
        });
    }
    out.sort();
    Ok(out)
}

/// How well a wheel fits, when uv lists several that are compatible with the platform
/// (e.g. `cp39-abi3-manylinux2014` and `py3-none-any`): a platform wheel over a pure one,
/// an interpreter-specific ABI over abi3 over none, the newer manylinux, the newer
/// Python tag. This is the order of uv's and pip's tag priorities for the cases a
/// platform-restricted lock can leave; kiln picks one so the lock names exactly one file.
fn wheel_rank(filename: &str) -> (bool, u8, u32, u32) {
    let stem = filename.strip_suffix(".whl").unwrap_or(filename);
    let parts: Vec<&str> = stem.split('-').collect();
    if parts.len() < 5 {
        return (false, 0, 0, 0);
    }
    let (py, abi, plat) = (
        parts[parts.len() - 3],
        parts[parts.len() - 2],
        parts[parts.len() - 1],
    );
    let platform_specific = plat != "any";
    let abi_rank = if abi == "none" {
        0
    } else if abi == "abi3" {
        1
    } else {
        2
    };
    let glibc = plat
        .split('.')
        .filter_map(|t| {
            if let Some(rest) = t.strip_prefix("manylinux_2_") {
                rest.split('_').next()?.parse().ok()
            } else if t.starts_with("manylinux2014") {
                Some(17)
            } else if t.starts_with("manylinux2010") {
                Some(12)
            } else if t.starts_with("manylinux1") {
                Some(5)
            } else {
                None
            }
        })
        .max()
        .unwrap_or(0);
    let pyver = py
        .split('.')
        .filter_map(|t| {
            t.trim_start_matches(|c: char| c.is_ascii_alphabetic())
                .parse::<u32>()
                .ok()
        })
        .max()
        .unwrap_or(0);
    (platform_specific, abi_rank, glibc, pyver)
}

fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// A pylock.toml of `dists` for `uv pip install -r`. A distribution in `built` (by name)
/// is installed from that local wheel (path, sha256) instead of its URL.
pub fn write(dists: &[LockedDist], built: &BTreeMap<String, (String, String)>) -> String {
    let mut s = String::from("lock-version = \"1.0\"\ncreated-by = \"kiln\"\n");
    for d in dists {
        let file = match built.get(&d.name) {
            Some((path, sha)) => format!(
                "path = {}, hashes = {{ sha256 = {} }}",
                toml_str(path),
                toml_str(sha)
            ),
            None => format!(
                "url = {}, size = {}, hashes = {{ sha256 = {} }}",
                toml_str(&d.url),
                d.size,
                toml_str(&d.sha256)
            ),
        };
        s.push_str(&format!(
            "\n[[packages]]\nname = {}\nversion = {}\nwheels = [{{ {file} }}]\n",
            toml_str(&d.name),
            toml_str(&d.version),
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
    /// The sha256s (hex) uv.lock allows for each (normalized name, version), its wheels'
    /// and its sdist's.
    pub hashes: BTreeMap<(String, String), BTreeSet<String>>,
    /// The index URLs its packages come from, the most used first.
    pub registries: Vec<String>,
}

/// Reads uv.lock.
pub fn read_uv_lock(path: &Path) -> Result<UvLockFacts> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::new(format!("{}: {e}", path.display())))?;
    let lock: UvLock =
        crate::manifest::parse_toml(path, &text, "uv.lock is written by `uv lock`; run it again")?;
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
            sdist: false,
        }];
        assert_eq!(read(&write(&d, &BTreeMap::new()), "x").unwrap(), d);
        assert_eq!(
            d[0].filename(),
            "numpy-2.2.6-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
        );
        assert_eq!(normalize("Scikit_Learn"), "scikit-learn");
        assert_eq!(normalize("zope.interface"), "zope-interface");
    }

    #[test]
    fn the_best_of_several_compatible_wheels_is_chosen() {
        let mut v = [
            "protobuf-7.36.2-py3-none-any.whl",
            "protobuf-7.36.2-cp39-abi3-manylinux2014_x86_64.whl",
        ];
        v.sort_by_key(|f| wheel_rank(f));
        assert_eq!(v[1], "protobuf-7.36.2-cp39-abi3-manylinux2014_x86_64.whl");
        assert!(
            wheel_rank("x-1-cp311-cp311-manylinux_2_28_x86_64.whl")
                > wheel_rank("x-1-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl")
        );
        assert!(
            wheel_rank("x-1-cp311-cp311-manylinux_2_17_x86_64.whl")
                > wheel_rank("x-1-cp39-abi3-manylinux_2_28_x86_64.whl")
        );
    }

    #[test]
    fn an_sdist_only_package_is_locked_as_its_sdist() {
        let d = read(
            "lock-version = \"1.0\"\n[[packages]]\nname = \"Doc_Opt\"\nversion = \"1\"\nsdist = { url = \"https://e/x-1.tar.gz\", size = 5, hashes = { sha256 = \"ab\" } }\n",
            "pylock.toml",
        )
        .unwrap();
        assert!(d[0].sdist && d[0].url.ends_with(".tar.gz") && d[0].name == "doc-opt");
        let e = read(
            "lock-version = \"1.0\"\n[[packages]]\nname = \"x\"\nversion = \"1\"\n",
            "pylock.toml",
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("no wheel and no source distribution"),
            "{e}"
        );
    }
}
