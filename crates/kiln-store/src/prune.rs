//! `kiln prune`: unreferenced blobs, snapshots and leftovers of interrupted operations.

use crate::error::{Result, StoreError};
use crate::store::Store;
use kiln_oci::media::{self, Kind};
use kiln_oci::types::{ImageConfig, Index, Manifest};
use kiln_oci::Digest;
use sha2::{Digest as _, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

/// What prune removed, and what it kept although no image refers to it.
#[derive(Debug, Default, serde::Serialize)]
pub struct PruneReport {
    /// Number of unreferenced blobs removed.
    pub blobs: u64,
    /// Number of unpacked layer snapshots removed.
    pub snapshots: u64,
    /// Disk space freed in bytes: blobs, snapshots and leftovers in `tmp/` and of killed
    /// builds.
    pub bytes: u64,
    /// Leases of kiln processes that are gone, removed.
    pub expired_leases: u64,
    /// Unreferenced content kept because something uses it.
    pub kept: Vec<Kept>,
    /// Old versions of tags (beyond `--keep-history`) whose index entries were dropped.
    pub old_versions: u64,
}

/// How much of the tag history prune keeps.
#[derive(Clone, Copy, Debug)]
pub struct PruneOptions {
    /// The most recent versions of each tag kept (their images stay, untagged, for
    /// `kiln rollback`); older ones go.
    pub keep_history: usize,
}

impl Default for PruneOptions {
    fn default() -> Self {
        Self { keep_history: 10 }
    }
}

/// One blob or snapshot prune kept, and who uses it.
#[derive(Debug, serde::Serialize)]
pub struct Kept {
    /// `blob` or `snapshot`.
    pub kind: &'static str,
    /// Digest of the blob, or chain ID of the snapshot.
    pub digest: String,
    /// `container NAME`, or `kiln PID (COMMAND)` for a running operation.
    pub users: Vec<String>,
}

/// The chain IDs of a layer stack (the OCI image spec's ChainID), the keys of snapshots.
pub fn chain_ids(diff_ids: &[Digest]) -> Vec<Digest> {
    let mut out: Vec<Digest> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let next = match out.last() {
            None => d.clone(),
            Some(parent) => {
                let h = Sha256::new_with_prefix(format!("{parent} {d}"));
                Digest::from_hex(&hex::encode(h.finalize())).expect("sha256 hex is valid")
            }
        };
        out.push(next);
    }
    out
}

fn disk_usage(path: &Path) -> u64 {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return 0;
    };
    if !meta.is_dir() {
        return meta.len();
    }
    fs::read_dir(path)
        .map(|rd| rd.flatten().map(|e| disk_usage(&e.path())).sum::<u64>())
        .unwrap_or(0)
        + meta.len()
}

impl Store {
    /// Drops the untagged index entries of versions that every tag's history has moved
    /// more than `keep` versions past. Images that were never tagged (loaded or pulled
    /// without a name) stay, as before.
    fn drop_old_versions(&self, keep: usize) -> Result<u64> {
        let (moves, _) = self.history()?;
        let mut names: Vec<&str> = moves.iter().map(|m| m.name.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        let mut seen = BTreeSet::new();
        let mut recent = BTreeSet::new();
        for name in names {
            let mut versions = crate::history::versions(&moves, name);
            // Most recently pointed to first (a version rolled back to is recent).
            versions.sort_by_key(|v| std::cmp::Reverse(v.last.line));
            for (i, v) in versions.into_iter().enumerate() {
                if i < keep {
                    recent.insert(v.digest.clone());
                }
                seen.insert(v.digest);
            }
        }
        self.update_index(|index| {
            let before = index.manifests.len();
            index.manifests.retain(|d| {
                let digest = d.digest.to_string();
                let named = d.annotation(kiln_oci::media::ANNOTATION_REF_NAME).is_some();
                named || !seen.contains(&digest) || recent.contains(&digest)
            });
            Ok((before - index.manifests.len()) as u64)
        })
    }

    /// Every blob reachable from index.json, the chain IDs of every image, and the
    /// index.json entries of artifacts whose subject is not reachable (see
    /// [`crate::referrers`]: an artifact is reachable while its subject is).
    fn reachable(&self) -> Result<(BTreeSet<Digest>, BTreeSet<Digest>, Vec<Digest>)> {
        let mut blobs = BTreeSet::new();
        let mut chains = BTreeSet::new();
        let (mut stack, mut artifacts) = (Vec::new(), Vec::new());
        for d in self.index()?.manifests {
            let subject = (media::kind(&d.media_type) == Some(Kind::Manifest))
                .then(|| self.read_json::<Manifest>(&d.digest).ok()?.subject)
                .flatten();
            match subject {
                Some(s) => artifacts.push((d, s.digest)),
                None => stack.push(d),
            }
        }
        loop {
            self.walk(stack, &mut blobs, &mut chains)?;
            let (ready, rest): (Vec<_>, Vec<_>) =
                artifacts.into_iter().partition(|(_, s)| blobs.contains(s));
            artifacts = rest;
            if ready.is_empty() {
                break;
            }
            stack = ready.into_iter().map(|(d, _)| d).collect();
        }
        let orphans = artifacts.into_iter().map(|(d, _)| d.digest).collect();
        Ok((blobs, chains, orphans))
    }

    /// Adds what `stack` reaches to `blobs` and `chains`.
    fn walk(
        &self,
        mut stack: Vec<kiln_oci::types::Descriptor>,
        blobs: &mut BTreeSet<Digest>,
        chains: &mut BTreeSet<Digest>,
    ) -> Result<()> {
        while let Some(d) = stack.pop() {
            if !blobs.insert(d.digest.clone()) || !self.has_blob(&d.digest) {
                continue;
            }
            match media::kind(&d.media_type) {
                Some(Kind::Index) => stack.extend(self.read_json::<Index>(&d.digest)?.manifests),
                Some(Kind::Manifest) => {
                    let m: Manifest = self.read_json(&d.digest)?;
                    if let Ok(c) = self.read_json::<ImageConfig>(&m.config.digest) {
                        chains.extend(chain_ids(&c.rootfs.diff_ids));
                    }
                    stack.push(m.config);
                    stack.extend(m.layers);
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Removes what no image, container or running kiln process uses. Running loads,
    /// builds and pulls hold the GC lock shared while they add content and register what
    /// they use in their lease ([`Store::hold`]); containers are GC roots.
    pub fn prune(&self) -> Result<PruneReport> {
        self.prune_with(PruneOptions::default())
    }

    /// [`Store::prune`] keeping `opts.keep_history` versions of each tag.
    pub fn prune_with(&self, opts: PruneOptions) -> Result<PruneReport> {
        let _gc = self.gc_lock(true)?;
        let old_versions = self.drop_old_versions(opts.keep_history)?;
        let (blobs, chains, orphans) = self.reachable()?;
        if !orphans.is_empty() {
            // Artifacts of images that are gone: their entries go, then their blobs.
            self.update_index(|index| {
                index.manifests.retain(|d| !orphans.contains(&d.digest));
                Ok(())
            })?;
        }
        let used = self.in_use()?;
        let mut report = PruneReport {
            expired_leases: used.expired_leases,
            old_versions,
            ..Default::default()
        };
        let dir = self.root().join("blobs/sha256");
        let rd = fs::read_dir(&dir).map_err(StoreError::io(&dir))?;
        let removed = sweep(rd.flatten(), "blob", &blobs, &used.blobs, &mut report)?;
        report.blobs = removed;
        let snaps = self.root().join("snapshots");
        if let Ok(rd) = fs::read_dir(&snaps) {
            let removed = sweep(
                rd.flatten(),
                "snapshot",
                &chains,
                &used.snapshots,
                &mut report,
            )?;
            report.snapshots = removed;
        }
        // Temporary files of processes that are gone (their names carry the PID), and the
        // step containers of builds that were killed (`containers/build-PID-...`).
        let tmp = self.root().join("tmp");
        for entry in fs::read_dir(&tmp).map_err(StoreError::io(&tmp))?.flatten() {
            if crate::lease::tmp_entry_live(&entry.file_name().to_string_lossy()) {
                continue;
            }
            report.bytes += disk_usage(&entry.path());
            remove_any(&entry.path())?;
        }
        if let Ok(rd) = fs::read_dir(self.root().join("containers")) {
            for entry in rd.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.starts_with("build-") && !crate::lease::tmp_entry_live(&name) {
                    report.bytes += disk_usage(&entry.path());
                    remove_any(&entry.path())?;
                }
            }
        }
        Ok(report)
    }
}

/// Removes each entry (named by a digest's hex) that is not in `keep`, unless `held` names
/// who uses it: that one is reported as kept, as a `kind`. Adds the space freed to
/// `report.bytes`; returns how many entries it removed.
fn sweep(
    entries: impl Iterator<Item = fs::DirEntry>,
    kind: &'static str,
    keep: &BTreeSet<Digest>,
    held: &BTreeMap<Digest, BTreeSet<String>>,
    report: &mut PruneReport,
) -> Result<u64> {
    let mut removed = 0;
    for entry in entries {
        let name = entry.file_name().to_string_lossy().into_owned();
        let digest = Digest::from_hex(&name).ok();
        if digest.as_ref().is_some_and(|d| keep.contains(d)) {
            continue;
        }
        if let Some(users) = digest.as_ref().and_then(|d| held.get(d)) {
            report.kept.push(Kept {
                kind,
                digest: format!("sha256:{name}"),
                users: users.iter().cloned().collect(),
            });
            continue;
        }
        report.bytes += disk_usage(&entry.path());
        removed += 1;
        remove_any(&entry.path())?;
    }
    Ok(removed)
}

fn remove_any(p: &Path) -> Result<()> {
    let res = if fs::symlink_metadata(p).is_ok_and(|m| m.is_dir()) {
        fs::remove_dir_all(p)
    } else {
        fs::remove_file(p)
    };
    res.map_err(StoreError::io(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_ids_follow_the_spec() {
        let a = Digest::of_bytes(b"a");
        let b = Digest::of_bytes(b"b");
        let ids = chain_ids(&[a.clone(), b.clone()]);
        assert_eq!(ids[0], a);
        assert_eq!(ids[1], Digest::of_bytes(format!("{a} {b}").as_bytes()));
    }
}
