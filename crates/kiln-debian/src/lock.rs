//! The lock file: the suites' snapshot and every package's exact version, architecture
//! and SHA256. Building from a lock fetches no index: the lock is the trust root (it was
//! written from signed indexes), and every .deb is checked against it.

use crate::{DebianError, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The lock format this kiln writes, and the only one it reads (`lock-version`).
pub const LOCK_VERSION: u32 = 1;

/// A lock file: the sources and exact packages of an image, enough to build it again
/// without reading an index.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Lock {
    /// Format of the file (`lock-version`); see [`LOCK_VERSION`].
    pub lock_version: u32,
    /// The distribution the packages come from (`debian`).
    pub distribution: String,
    /// The main suite asked for (`bookworm`); its `-updates` and `-security` suites are
    /// among `sources`.
    pub suite: String,
    /// Debian architecture of the image (`amd64`, `arm64`).
    pub architecture: String,
    /// The packages asked for (`--packages`), in the order given.
    pub requested: Vec<String>,
    /// The suites the packages were resolved from; [`LockedPackage::source`] indexes
    /// this list.
    pub sources: Vec<LockSource>,
    /// Every package of the image, base and extra.
    pub packages: Vec<LockedPackage>,
}

/// One suite of one mirror, as the lock records it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct LockSource {
    /// Base URL of the mirror (`http://deb.debian.org/debian`).
    pub mirror: String,
    /// Suite of that mirror (`bookworm`, `bookworm-security`).
    pub suite: String,
    /// Archive components whose indexes were read (`main`...).
    pub components: Vec<String>,
    /// The InRelease `Date` the packages were resolved against (for snapshot.debian.org).
    pub date: String,
    /// SHA256 (hex) of the InRelease file the packages were resolved from.
    pub inrelease_sha256: String,
}

/// One package pinned by the lock: which .deb, and the hash it must have.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct LockedPackage {
    /// Binary package name.
    pub name: String,
    /// Exact Debian version (`2.36-9+deb12u4`).
    pub version: String,
    /// The image's architecture or `all`.
    pub architecture: String,
    /// `base` (the Essential/required set) or `extra`.
    pub group: String,
    /// Index into `sources`.
    pub source: usize,
    /// Path of the .deb below the mirror root (`pool/main/...`).
    pub filename: String,
    /// Size of the .deb in bytes, checked on download.
    pub size: u64,
    /// SHA256 of the .deb (lowercase hex), checked on download and for cached files.
    pub sha256: String,
}

impl Lock {
    /// Reads a lock file and checks it: its format version, and that every package's
    /// name, version, architecture, hash, group and source index are valid (they
    /// become cache file names).
    pub fn read(path: &Path) -> Result<Lock> {
        let bad = |msg: String| DebianError::Lock {
            path: path.to_path_buf(),
            msg,
            hint: None,
        };
        let bytes = std::fs::read(path).map_err(DebianError::io(path))?;
        let lock: Lock =
            serde_json::from_slice(&bytes).map_err(|source| DebianError::LockFormat {
                path: path.to_path_buf(),
                source,
            })?;
        if lock.lock_version != LOCK_VERSION {
            return Err(bad(format!(
                "lock-version {} is not supported (this kiln reads {LOCK_VERSION})",
                lock.lock_version
            )));
        }
        for p in &lock.packages {
            // Names, versions and architectures become cache file names: Debian's
            // character sets only (no `/`, no `..`).
            if !crate::index::valid_name(&p.name)
                || !crate::index::valid_version(&p.version)
                || !crate::index::valid_name(&p.architecture)
                || p.source >= lock.sources.len()
                || p.sha256.len() != 64
                || !p.sha256.bytes().all(|c| c.is_ascii_hexdigit())
                || !matches!(p.group.as_str(), "base" | "extra")
                || p.filename.contains("..")
            {
                return Err(bad(format!("package {} has an invalid entry", p.name)));
            }
        }
        Ok(lock)
    }

    /// Writes the lock (pretty JSON, stable order) atomically.
    pub fn write(&self, path: &Path) -> Result<()> {
        let mut bytes = serde_json::to_vec_pretty(self).expect("a lock serializes");
        bytes.push(b'\n');
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let tmp = tempfile::NamedTempFile::new_in(dir).map_err(DebianError::io(dir))?;
        std::fs::write(tmp.path(), &bytes).map_err(DebianError::io(path))?;
        tmp.persist(path)
            .map_err(|e| DebianError::io(path)(e.error))?;
        Ok(())
    }

    /// The newest InRelease date: the image's timestamp when SOURCE_DATE_EPOCH is unset.
    pub fn timestamp(&self) -> i64 {
        self.sources
            .iter()
            .filter_map(|s| crate::archive::parse_rfc2822(&s.date))
            .max()
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lock_with(name: &str, version: &str) -> String {
        format!(
            r#"{{"lock-version":1,"distribution":"debian","suite":"bookworm","architecture":"amd64","requested":[],
            "sources":[{{"mirror":"http://deb.debian.org/debian","suite":"bookworm","components":["main"],"date":"Sat, 10 Jun 2023 08:53:51 UTC","inrelease-sha256":"00"}}],
            "packages":[{{"name":"{name}","version":"{version}","architecture":"amd64","group":"base","source":0,"filename":"pool/main/x.deb","size":1,"sha256":"{}"}}]}}"#,
            "a".repeat(64)
        )
    }

    #[test]
    fn lock_entries_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("l.json");
        std::fs::write(&p, lock_with("bash", "5.2.15-2+b2")).unwrap();
        let l = Lock::read(&p).unwrap();
        assert_eq!(l.timestamp(), 1686387231);
        // Names and versions become cache file names: no path tricks.
        for (n, v) in [("../../etc/x", "1"), ("bash", "1/../../x"), ("Bash", "1")] {
            std::fs::write(&p, lock_with(n, v)).unwrap();
            let e = Lock::read(&p).unwrap_err().to_string();
            assert!(e.contains("invalid entry"), "{n} {v}: {e}");
        }
        std::fs::write(&p, "{}").unwrap();
        assert!(Lock::read(&p)
            .unwrap_err()
            .to_string()
            .contains("not a kiln lock file"));
    }
}
