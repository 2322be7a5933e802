//! Unpacking .debs onto a merged-/usr tree, the way dpkg would, and recording what each
//! package installed for the dpkg database.

use crate::deb::{read_deb_repacking, ControlFiles};
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
    /// The package's control archive (control file, maintainer scripts, md5sums...).
    pub control: ControlFiles,
    /// Paths as the package names them (`/bin/bash`), in archive order, for `PKG.list`.
    pub paths: Vec<String>,
    /// Regular files and symlinks (not directories), merged form, for clash detection.
    pub files: Vec<String>,
}

/// A package to unpack.
#[derive(Clone, Debug)]
pub struct DebFile {
    /// The package's name.
    pub name: String,
    /// Its .deb, checked against the lock.
    pub deb: PathBuf,
    /// Where its repack (data compressed with zstd, see [`read_deb_repacking`]) is kept,
    /// named by the .deb's sha256; `None` to make none.
    pub repack: Option<PathBuf>,
}

/// Unpacks `deb` onto `root`: from its repack when there is one, else from the .deb,
/// writing the repack as it goes.
pub fn unpack(deb: &DebFile, root: &Path) -> Result<Unpacked> {
    match &deb.repack {
        Some(r) if r.exists() => unpack_from(r, None, root).map_err(|e| {
            // Damaged (the zstd checksum failed, or the file was cut): removed, so the
            // next build unpacks the .deb, which the lock vouches for. A sound repack
            // that failed for another reason (a full disk) is kept, and the error is
            // the extraction's.
            if repack_is_sound(r) {
                return e;
            }
            let _ = std::fs::remove_file(r);
            crate::DebianError::Repack {
                path: r.clone(),
                source: Box::new(e),
            }
        }),
        repack => unpack_from(&deb.deb, repack.as_deref(), root),
    }
}

/// Whether the repack at `path` reads to its end with its zstd checksum right.
fn repack_is_sound(path: &Path) -> bool {
    read_deb_repacking(path, None, |data| {
        std::io::copy(data, &mut std::io::sink()).map_err(|e| crate::DebianError::Deb {
            path: path.to_path_buf(),
            msg: e.to_string(),
        })
    })
    .is_ok()
}

/// Unpacks the .deb at `deb` onto `root`, repacking it at `repack`.
fn unpack_from(deb: &Path, repack: Option<&Path>, root: &Path) -> Result<Unpacked> {
    let opts = ExtractOptions::default();
    let mut paths = Vec::new();
    let mut files = Vec::new();
    let (control, ()) = read_deb_repacking(deb, repack, |data| {
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
    debs: &[DebFile],
    root: &Path,
    jobs: usize,
) -> Result<BTreeMap<String, Unpacked>> {
    let unpacked = run_parallel(debs, jobs, |d| unpack(d, root))?;
    let out: BTreeMap<String, Unpacked> =
        debs.iter().map(|d| d.name.clone()).zip(unpacked).collect();
    // Clashes: the same file from two packages (allowed with Replaces). Unpack those
    // packages again in order so the last one in `debs` order wins, whatever the threads did.
    let mut owner: BTreeMap<&str, usize> = BTreeMap::new();
    let mut again = std::collections::BTreeSet::new();
    for (i, d) in debs.iter().enumerate() {
        for f in &out[&d.name].files {
            if let Some(j) = owner.insert(f.as_str(), i) {
                again.insert(j);
                again.insert(i);
            }
        }
    }
    for i in again {
        unpack(&debs[i], root)?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A .deb of `files` (path, contents) with an xz data member, as the archive ships them.
    fn make_deb(path: &Path, files: &[(&str, &[u8])]) {
        let mut control = tar::Builder::new(Vec::new());
        let text = b"Package: demo\nVersion: 1.0\nArchitecture: amd64\n";
        let mut h = tar::Header::new_gnu();
        h.set_size(text.len() as u64);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        control.append_data(&mut h, "./control", &text[..]).unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&control.into_inner().unwrap()).unwrap();
        let control = gz.finish().unwrap();
        let mut data = tar::Builder::new(Vec::new());
        for (p, body) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(body.len() as u64);
            h.set_mode(0o755);
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(1_700_000_000);
            data.append_data(&mut h, p, *body).unwrap();
        }
        let mut xz = liblzma::write::XzEncoder::new(Vec::new(), 6);
        xz.write_all(&data.into_inner().unwrap()).unwrap();
        let data = xz.finish().unwrap();
        let mut ar = ar::Builder::new(std::fs::File::create(path).unwrap());
        for (name, body) in [
            ("debian-binary", &b"2.0\n"[..]),
            ("control.tar.gz", &control),
            ("data.tar.xz", &data),
        ] {
            ar.append(
                &ar::Header::new(name.as_bytes().to_vec(), body.len() as u64),
                body,
            )
            .unwrap();
        }
    }

    fn read_tree(root: &Path) -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        for e in walk(root) {
            let rel = e.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            let body = if e.is_file() {
                std::fs::read(&e).unwrap()
            } else {
                Vec::new()
            };
            out.push((rel, body));
        }
        out.sort();
        out
    }

    fn walk(dir: &Path) -> Vec<PathBuf> {
        let mut v = Vec::new();
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                v.extend(walk(&p));
            }
            v.push(p);
        }
        v
    }

    #[test]
    fn the_repack_unpacks_the_same_tree_and_a_damaged_one_is_removed() {
        let t = tempfile::tempdir().unwrap();
        let deb = t.path().join("demo.deb");
        let big: Vec<u8> = (0..200_000u32).flat_map(|i| i.to_le_bytes()).collect();
        make_deb(
            &deb,
            &[
                ("./usr/bin/demo", b"#!/bin/sh\n"),
                ("./usr/share/demo/big", &big),
            ],
        );
        let f = DebFile {
            name: "demo".into(),
            deb: deb.clone(),
            repack: Some(t.path().join("repacked/abc.deb")),
        };
        let repack = f.repack.clone().unwrap();

        // From the .deb: the repack is written as it goes.
        let first = t.path().join("a");
        std::fs::create_dir(&first).unwrap();
        let u1 = unpack(&f, &first).unwrap();
        assert!(repack.is_file());
        let members: Vec<String> = {
            let mut ar = ar::Archive::new(std::fs::File::open(&repack).unwrap());
            let mut v = Vec::new();
            while let Some(e) = ar.next_entry() {
                v.push(String::from_utf8_lossy(e.unwrap().header().identifier()).into_owned());
            }
            v
        };
        assert_eq!(members, ["debian-binary", "control.tar.gz", "data.tar.zst"]);

        // From the repack: the same tree, the same record.
        let second = t.path().join("b");
        std::fs::create_dir(&second).unwrap();
        let u2 = unpack(&f, &second).unwrap();
        assert_eq!(read_tree(&first), read_tree(&second));
        assert_eq!(u1.paths, u2.paths);
        assert_eq!(u1.files, u2.files);
        assert_eq!(u1.control.get("control"), u2.control.get("control"));

        // A sound repack that cannot be unpacked where asked (here the root is a file)
        // is kept, and the error is the extraction's.
        let not_a_dir = t.path().join("file");
        std::fs::write(&not_a_dir, b"").unwrap();
        let err = unpack(&f, &not_a_dir).unwrap_err();
        assert!(!matches!(err, crate::DebianError::Repack { .. }), "{err:?}");
        assert!(repack.is_file());

        // A flipped byte in the zstd data fails its checksum: an error naming the repack,
        // which is removed so the next unpack reads the .deb again.
        let mut bytes = std::fs::read(&repack).unwrap();
        let at = bytes.len() - 100;
        bytes[at] ^= 0x55;
        std::fs::write(&repack, &bytes).unwrap();
        let third = t.path().join("c");
        std::fs::create_dir(&third).unwrap();
        let err = unpack(&f, &third).unwrap_err();
        assert!(matches!(err, crate::DebianError::Repack { .. }), "{err:?}");
        assert!(err.to_string().contains("abc.deb"), "{err}");
        assert!(err.hint().is_some());
        assert!(!repack.exists());
        let fourth = t.path().join("d");
        std::fs::create_dir(&fourth).unwrap();
        unpack(&f, &fourth).unwrap();
        assert_eq!(read_tree(&first), read_tree(&fourth));
        assert!(repack.is_file());
    }
}
