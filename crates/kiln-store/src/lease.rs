//! What is in use: leases of running kiln processes and GC roots of containers, so that
//! prune never deletes content something still needs (containerd's leases and its
//! container references, in files).
//!
//! - A **lease** belongs to one process: `leases/<pid>-<start time>`, the blobs and
//!   snapshots the process is about to write or read, one per line. It dies with its
//!   process: prune finds the process gone (or the PID reused, by its start time) and
//!   removes the file, so a SIGKILLed kiln never pins content for ever.
//! - A **root** belongs to a container: `containers/<id>/gc-root`, the same lines,
//!   written before the container's snapshots are prepared and removed with the
//!   container's directory.
//!
//! Lines are added under the shared GC lock and prune reads them under the exclusive
//! one: an entry is either seen by prune, or added after prune finished (then the caller
//! checks that what it holds still exists).

use crate::error::{Result, StoreError};
use crate::images::ImageInfo;
use crate::prune::chain_ids;
use crate::store::Store;
use kiln_oci::Digest;
use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The file of a container's directory that makes it a GC root.
const ROOT_FILE: &str = "gc-root";

/// Something a lease or a root keeps.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Held {
    /// A blob in `blobs/sha256/`.
    Blob(Digest),
    /// A snapshot, by chain ID.
    Snapshot(Digest),
}

impl Held {
    fn line(&self) -> String {
        match self {
            Held::Blob(d) => format!("blob {d}\n"),
            Held::Snapshot(d) => format!("snapshot {d}\n"),
        }
    }

    fn parse(line: &str) -> Option<Held> {
        let (kind, digest) = line.split_once(' ')?;
        let d = Digest::parse(digest.trim()).ok()?;
        match kind {
            "blob" => Some(Held::Blob(d)),
            "snapshot" => Some(Held::Snapshot(d)),
            _ => None,
        }
    }
}

/// What keeps content alive, by owner (`container NAME`, `kiln PID (COMMAND)`).
#[derive(Debug, Default)]
pub struct InUse {
    /// Blob digest -> who holds it.
    pub blobs: BTreeMap<Digest, BTreeSet<String>>,
    /// Snapshot chain ID -> who holds it.
    pub snapshots: BTreeMap<Digest, BTreeSet<String>>,
    /// Leases of processes that are gone, removed.
    pub expired_leases: u64,
}

/// The start time of a process (field 22 of /proc/PID/stat), which tells a PID reused by
/// another process from the one that took the lease.
fn start_time(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: fields after its last `)`.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Whether the process that named a file `<pid>-<start>` (or `<what>-<pid>-...`) lives.
pub(crate) fn process_alive(pid: u32, start: Option<u64>) -> bool {
    match (start_time(pid), start) {
        (Some(now), Some(then)) => now == then,
        (Some(_), None) => true,
        (None, _) => false,
    }
}

/// This process's lease file in each store it opened (one per store root).
static LEASES: Mutex<BTreeMap<PathBuf, PathBuf>> = Mutex::new(BTreeMap::new());

/// Ends this process's leases (at exit: what it wrote is tagged by now, or is garbage).
/// A lease a forked child inherited names its parent, and stays for the parent to end.
pub fn release_all() {
    let leases = std::mem::take(&mut *LEASES.lock().expect("lease map lock"));
    let mine = format!("{}-", std::process::id());
    for path in leases.into_values() {
        if path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with(&mine))
        {
            let _ = fs::remove_file(path);
        }
    }
}

fn write_lines(path: &Path, header: Option<&str>, items: &[Held]) -> Result<()> {
    let mut text = String::new();
    if let Some(h) = header {
        text.push_str(h);
    }
    for i in items {
        text.push_str(&i.line());
    }
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(StoreError::io(path))?;
    // One write: lines of concurrent writers never interleave (O_APPEND).
    f.write_all(text.as_bytes()).map_err(StoreError::io(path))
}

fn read_lines(path: &Path) -> (String, Vec<Held>) {
    let text = fs::read_to_string(path).unwrap_or_default();
    let mut owner = String::new();
    let mut items = Vec::new();
    for line in text.lines() {
        if let Some(o) = line.strip_prefix("# ") {
            owner = o.to_string();
        } else if let Some(h) = Held::parse(line) {
            items.push(h);
        }
    }
    (owner, items)
}

impl Store {
    /// Keeps `items` from prune until this process exits. Call it before writing or
    /// reading them; it returns the items that are missing from the store (a prune
    /// that ran just before may have removed them), for the caller to fetch or refuse.
    pub fn hold(&self, items: &[Held]) -> Result<Vec<Held>> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        let _gc = self.gc_lock(false)?;
        let mut leases = LEASES.lock().expect("lease map lock");
        let (path, header) = match leases.get(self.root()) {
            Some(p) => (p.clone(), None),
            None => {
                let dir = self.root().join("leases");
                fs::create_dir_all(&dir).map_err(StoreError::io(&dir))?;
                let pid = std::process::id();
                let start = start_time(pid).unwrap_or(0);
                let path = dir.join(format!("{pid}-{start}"));
                let cmd: Vec<String> = std::env::args().take(4).collect();
                leases.insert(self.root().to_path_buf(), path.clone());
                (path, Some(format!("# kiln {pid} ({})\n", cmd.join(" "))))
            }
        };
        write_lines(&path, header.as_deref(), items)?;
        Ok(self.missing(items))
    }

    /// Whether the blob is in the store, holding it first: an operation that skips
    /// writing a blob because it is here already asks this, so the blob is still here when
    /// the operation tags its image.
    pub fn has_blob_held(&self, digest: &Digest) -> bool {
        self.hold(&[Held::Blob(digest.clone())])
            .is_ok_and(|missing| missing.is_empty())
    }

    /// Makes the container `id` a GC root holding `items` (named `owner` in reports)
    /// until its directory is removed. Returns the items missing from the store, as
    /// [`Store::hold`] does.
    pub fn add_root(&self, id: &str, owner: &str, items: &[Held]) -> Result<Vec<Held>> {
        let dir = self.root().join("containers").join(id);
        fs::create_dir_all(&dir).map_err(StoreError::io(&dir))?;
        let _gc = self.gc_lock(false)?;
        write_lines(&dir.join(ROOT_FILE), Some(&format!("# {owner}\n")), items)?;
        Ok(self.missing(items))
    }

    fn missing(&self, items: &[Held]) -> Vec<Held> {
        items
            .iter()
            .filter(|i| match i {
                Held::Blob(d) => !self.has_blob(d),
                Held::Snapshot(c) => !crate::snapshot::path(self, c).is_dir(),
            })
            .cloned()
            .collect()
    }

    /// Every GC root: (owner, what it holds).
    fn roots(&self) -> Vec<(String, Vec<Held>)> {
        let Ok(rd) = fs::read_dir(self.root().join("containers")) else {
            return Vec::new();
        };
        rd.flatten()
            .map(|e| e.path().join(ROOT_FILE))
            .filter(|p| p.is_file())
            .map(|p| read_lines(&p))
            .collect()
    }

    /// The owners of the roots holding `digest` (a blob), e.g. the containers using an
    /// image, sorted.
    pub fn roots_holding(&self, digest: &Digest) -> Vec<String> {
        let held = Held::Blob(digest.clone());
        let mut out: Vec<String> = self
            .roots()
            .into_iter()
            .filter(|(_, items)| items.contains(&held))
            .map(|(owner, _)| owner)
            .collect();
        out.sort();
        out
    }

    /// What an image needs: its blobs (index, manifest, config, layers) and snapshots.
    pub fn image_items(image: &ImageInfo) -> Vec<Held> {
        let mut items = vec![
            Held::Blob(image.descriptor.digest.clone()),
            Held::Blob(image.manifest_descriptor.digest.clone()),
            Held::Blob(image.manifest.config.digest.clone()),
        ];
        items.extend(
            image
                .manifest
                .layers
                .iter()
                .map(|l| Held::Blob(l.digest.clone())),
        );
        items.extend(
            chain_ids(&image.config.rootfs.diff_ids)
                .into_iter()
                .map(Held::Snapshot),
        );
        items.dedup();
        items
    }

    /// Holds everything `image` needs in this process's lease; fails naming a blob that
    /// a prune removed before the hold (the image was deleted meanwhile).
    pub fn hold_image(&self, image: &ImageInfo) -> Result<()> {
        match self
            .hold(&Self::image_items(image))?
            .into_iter()
            .find_map(|h| match h {
                Held::Blob(d) => Some(d),
                Held::Snapshot(_) => None,
            }) {
            Some(d) => Err(StoreError::BlobMissing {
                digest: d.to_string(),
            }),
            None => Ok(()),
        }
    }

    /// Everything roots and live leases hold; leases of dead processes are removed.
    /// Called by prune under the exclusive GC lock.
    pub(crate) fn in_use(&self) -> Result<InUse> {
        let mut out = InUse::default();
        let mut add = |owner: &str, items: Vec<Held>| {
            for i in items {
                let (map, d) = match i {
                    Held::Blob(d) => (&mut out.blobs, d),
                    Held::Snapshot(d) => (&mut out.snapshots, d),
                };
                map.entry(d).or_default().insert(owner.to_string());
            }
        };
        for (owner, items) in self.roots() {
            add(&owner, items);
        }
        let mut expired = 0;
        if let Ok(rd) = fs::read_dir(self.root().join("leases")) {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let (pid, start) = match name.split_once('-') {
                    Some((p, s)) => (p.parse().ok(), s.parse().ok()),
                    None => (None, None),
                };
                let alive = pid.is_some_and(|p| process_alive(p, start));
                if alive {
                    let (owner, items) = read_lines(&e.path());
                    add(&owner, items);
                } else {
                    let _ = fs::remove_file(e.path());
                    expired += 1;
                }
            }
        }
        out.expired_leases = expired;
        Ok(out)
    }
}

/// Whether a `tmp/` entry named `<what>-<pid>-...` ([`Store::tmp_path`]) belongs to a
/// process that still runs.
pub(crate) fn tmp_entry_live(name: &str) -> bool {
    name.split('-')
        .find_map(|part| part.parse::<u32>().ok())
        .is_some_and(|pid| process_alive(pid, None))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lease map is the process's: tests that look at leases take turns.
    static LEASE_TESTS: Mutex<()> = Mutex::new(());

    #[test]
    fn leases_die_with_their_process() {
        let _turn = LEASE_TESTS.lock().unwrap_or_else(|e| e.into_inner());
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let d = store.write_blob(b"held").unwrap();
        assert!(store.hold(&[Held::Blob(d.clone())]).unwrap().is_empty());
        let gone = Digest::of_bytes(b"not there");
        assert_eq!(
            store.hold(&[Held::Blob(gone.clone())]).unwrap(),
            [Held::Blob(gone)]
        );
        // A lease of a process that is gone (PID 1 with another start time).
        fs::write(
            dir.path().join("leases/1-999999999999"),
            format!("# kiln 1 (dead)\nblob {}\n", Digest::of_bytes(b"x")),
        )
        .unwrap();
        let used = store.in_use().unwrap();
        assert!(used.blobs.contains_key(&d));
        assert!(!used.blobs.contains_key(&Digest::of_bytes(b"x")));
        assert_eq!(used.expired_leases, 1);
        assert!(!dir.path().join("leases/1-999999999999").exists());
    }

    #[test]
    fn a_process_ends_its_own_leases() {
        let _turn = LEASE_TESTS.lock().unwrap_or_else(|e| e.into_inner());
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let d = store.write_blob(b"mine").unwrap();
        assert!(store.in_use().unwrap().blobs.contains_key(&d));
        release_all();
        assert!(fs::read_dir(dir.path().join("leases"))
            .unwrap()
            .next()
            .is_none());
        assert!(!store.in_use().unwrap().blobs.contains_key(&d));
    }

    #[test]
    fn roots_name_their_owner() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let d = store.write_blob(b"image").unwrap();
        let missing = store
            .add_root("c1", "container c1", &[Held::Blob(d.clone())])
            .unwrap();
        assert!(missing.is_empty());
        assert_eq!(store.roots_holding(&d), ["container c1"]);
        assert!(store.in_use().unwrap().blobs.contains_key(&d));
        fs::remove_dir_all(dir.path().join("containers/c1")).unwrap();
        assert!(store.roots_holding(&d).is_empty());
    }

    #[test]
    fn tmp_names_carry_their_pid() {
        assert!(tmp_entry_live(&format!("blob-{}-3-ff", std::process::id())));
        assert!(!tmp_entry_live("blob-4194999-3-ff"));
        assert!(!tmp_entry_live(".tmpabc"));
    }
}
