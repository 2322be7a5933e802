//! Unpacking .debs onto a merged-/usr tree, the way dpkg would, and recording what each
//! package installed for the dpkg database.

use crate::deb::{read_deb, ControlFiles};
use crate::Result;
use kiln_layer::pool::run_parallel;
use kiln_layer::{extract_mapped, ExtractOptions, PathRole};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The top-level directories that merged /usr turns into symlinks into /usr.
pub const MERGED_DIRS: &[&str] = &["bin", "sbin", "lib", "lib32", "lib64", "libx32"];

/// The merged-/usr symlinks to create for `arch` (only those the architecture uses).
pub fn merged_links(arch: &str) -> Vec<&'static str> {
    let mut v = vec!["bin", "lib", "sbin"];
    if arch == "amd64" {
        v.push("lib64");
    }
    v.sort_unstable();
    v
}

/// Where a package path lands on a merged-/usr system: `bin/sh` -> `usr/bin/sh`.
/// `None` (skip) for the aliasing symlinks themselves (`bin -> usr/bin`, shipped by
/// base-files from trixie on), which the tree already has.
pub fn merged_path(rel: &[u8], role: PathRole) -> Option<Option<Vec<u8>>> {
    let first = rel.split(|&b| b == b'/').next().unwrap_or(b"");
    if !MERGED_DIRS.iter().any(|d| d.as_bytes() == first) {
        return Some(None);
    }
    if rel.len() == first.len() && role == PathRole::Entry {
        return None;
    }
    let mut p = b"usr/".to_vec();
    p.extend_from_slice(rel);
    Some(Some(p))
}

/// What unpacking one package produced.
#[derive(Debug)]
pub struct Unpacked {
    pub control: ControlFiles,
    /// Paths as the package names them (`/bin/bash`), in archive order, for `PKG.list`.
    pub paths: Vec<String>,
    /// Regular files and symlinks (not directories), merged form, for clash detection.
    pub files: Vec<String>,
}

/// Unpacks the .deb at `deb` onto `root`.
pub fn unpack(deb: &Path, root: &Path) -> Result<Unpacked> {
    let opts = ExtractOptions::default();
    let mut paths = Vec::new();
    let mut files = Vec::new();
    let (control, ()) = read_deb(deb, |data| {
        let mut map = |rel: &[u8], role: PathRole| -> Option<Option<Vec<u8>>> {
            let mapped = merged_path(rel, role);
            if role != PathRole::HardlinkTarget {
                let p = String::from_utf8_lossy(rel);
                paths.push(if p.is_empty() {
                    "/.".to_string()
                } else {
                    format!("/{p}")
                });
                if role == PathRole::Entry {
                    files.push(match &mapped {
                        Some(Some(p)) => String::from_utf8_lossy(p).into_owned(),
                        _ => p.into_owned(),
                    });
                }
            }
            mapped
        };
        extract_mapped(data, root, &opts, &mut map)?;
        Ok(())
    })?;
    Ok(Unpacked {
        control,
        paths,
        files,
    })
}

/// Unpacks `debs` (name, path) onto `root` on `jobs` threads. Returns each package's
/// result by name. Two packages shipping the same non-directory path are unpacked again
/// one after the other in `debs` order (dpkg's: the later one wins), so the result does
/// not depend on thread timing.
pub fn unpack_all(
    debs: &[(String, PathBuf)],
    root: &Path,
    jobs: usize,
) -> Result<BTreeMap<String, Unpacked>> {
    let unpacked = run_parallel(debs, jobs, |(_, path)| unpack(path, root))?;
    let out: BTreeMap<String, Unpacked> = debs
        .iter()
        .map(|(name, _)| name.clone())
        .zip(unpacked)
        .collect();
    // Clashes: the same file from two packages (allowed with Replaces). Unpack those
    // packages again in order so the last one in `debs` order wins, whatever the threads did.
    let mut owner: BTreeMap<&str, usize> = BTreeMap::new();
    let mut again = std::collections::BTreeSet::new();
    for (i, (name, _)) in debs.iter().enumerate() {
        for f in &out[name].files {
            if let Some(j) = owner.insert(f.as_str(), i) {
                again.insert(j);
                again.insert(i);
            }
        }
    }
    for i in again {
        unpack(&debs[i].1, root)?;
    }
    Ok(out)
}

/// [`merged_path`] for a relative path as text: `bin/sh` -> `usr/bin/sh`.
pub fn merged_rel(rel: &str) -> String {
    match merged_path(rel.as_bytes(), PathRole::Entry) {
        Some(Some(p)) => String::from_utf8_lossy(&p).into_owned(),
        _ => rel.to_string(),
    }
}
