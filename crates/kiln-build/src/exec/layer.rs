//! Layer steps: a cache hit, or work done on an overlay of the stage whose upper
//! directory is written as a layer and adopted as that layer's snapshot; the build
//! cache's entries.

use super::stage::StageState;
use super::{hash, random_id, rfc3339, BuildError, Builder, Result};
use crate::fsutil;
use kiln_layer::WriteOptions;
use kiln_oci::media;
use kiln_oci::types::{Descriptor, History, Manifest};
use kiln_oci::Digest;
use kiln_runtime::container::{self, ContainerDirs};
use kiln_store::lease::Held;
use kiln_store::{snapshot, Store};
use std::path::{Path, PathBuf};

/// A cached layer step.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct CacheEntry {
    /// The layer blob in the store (media type, digest and size as stored, maybe
    /// compressed).
    pub layer: Descriptor,
    /// Digest of the uncompressed layer tar, as the image config's `rootfs` lists it.
    pub diff_id: Digest,
}

/// Records a cached layer step under its key.
pub fn cache_put(store: &Store, key: &str, e: &CacheEntry) {
    let dir = kiln_store::layout::cache_dir(store.root(), kiln_store::layout::Cache::Build);
    let _ = std::fs::create_dir_all(&dir);
    let _ = store.write_atomic(&dir.join(key), &serde_json::to_vec(e).expect("serializes"));
}

impl Builder<'_> {
    /// The snapshot directories of a stage's layers, bottom first (unpacked on demand).
    pub(super) fn lowers(&self, st: &StageState) -> Result<Vec<PathBuf>> {
        let manifest = Manifest::oci(
            Descriptor::new(media::OCI_CONFIG, Digest::of_bytes(b""), 0),
            st.layers.clone(),
        );
        Ok(snapshot::prepare(self.store, &manifest, &st.config)?)
    }

    /// Looks up a cached layer.
    pub(super) fn cache_get(&self, key: &str) -> Option<CacheEntry> {
        if self.opts.no_cache && !self.opts.fresh_keys.contains(key) {
            return None;
        }
        let p = kiln_store::layout::cache_dir(self.store.root(), kiln_store::layout::Cache::Build)
            .join(key);
        let e: CacheEntry = serde_json::from_slice(&std::fs::read(p).ok()?).ok()?;
        // Held before it is used; gone (pruned) means a miss.
        let missing = self
            .store
            .hold(&[Held::Blob(e.layer.digest.clone())])
            .ok()?;
        missing.is_empty().then_some(e)
    }

    fn cache_put(&self, key: &str, e: &CacheEntry) {
        cache_put(self.store, key, e);
    }

    pub(super) fn add_layer(
        &self,
        st: &mut StageState,
        key: String,
        e: CacheEntry,
        created_by: String,
    ) {
        self.used
            .lock()
            .expect("used lock")
            .push((key.clone(), e.clone()));
        st.layers.push(e.layer);
        st.config.rootfs.diff_ids.push(e.diff_id);
        st.key = key;
        st.config
            .history
            .get_or_insert_with(Vec::new)
            .push(History {
                created: Some(rfc3339(self.opts.source_date_epoch)),
                created_by: Some(created_by),
                author: None,
                comment: Some("kiln build".into()),
                empty_layer: false,
            });
    }

    /// A step that changes the root filesystem: a cache hit, or `work` run on an overlay
    /// of the stage whose upper directory becomes the layer.
    pub(super) fn layer_step(
        &self,
        st: &mut StageState,
        key_text: &str,
        n: Option<usize>,
        work: impl FnOnce(&Path) -> Result<Option<Vec<String>>>,
    ) -> Result<()> {
        let key = hash(&[&st.key, key_text]);
        if let Some(e) = self.cache_get(&key) {
            if let Some(n) = n {
                self.progress.cached(n);
                self.steps.lock().expect("steps lock").1 += 1;
            }
            st.pending_dirs.clear();
            self.add_layer(st, key, e, key_text.to_string());
            return Ok(());
        }
        let lowers = self.lowers(st)?;
        let id = random_id();
        let dirs = ContainerDirs::new(self.store.root(), &id);
        let result = (|| -> Result<CacheEntry> {
            container::mount_rootfs_with(&dirs, &lowers, true)?;
            let rootfs = dirs.rootfs();
            make_pending_dirs(&rootfs, &st.pending_dirs)?;
            let exclude = work(&rootfs)?;
            let _ = nix::mount::umount2(&rootfs, nix::mount::MntFlags::MNT_DETACH);
            let mut exclude: Vec<Vec<u8>> = exclude
                .unwrap_or_default()
                .into_iter()
                .map(String::into_bytes)
                .collect();
            exclude.extend(container::runtime_mount_points(&dirs.upper()));
            let opts = WriteOptions {
                source_date_epoch: Some(self.opts.source_date_epoch),
                overlay_whiteouts: true,
                exclude,
            };
            let _gc = self.store.gc_lock(false)?;
            let layer = self
                .store
                .write_layer(self.opts.compression, |out| {
                    kiln_layer::write_dir(&dirs.upper(), out, &opts).map(|_| ())
                })
                .map_err(BuildError::WriteLayer)?;
            self.adopt_snapshot(
                &st.config.rootfs.diff_ids,
                &layer.diff_id,
                &dirs.upper(),
                &opts.exclude,
            )?;
            Ok(CacheEntry {
                layer: layer.descriptor,
                diff_id: layer.diff_id,
            })
        })();
        let _ = container::remove_dirs(&dirs);
        let e = result?;
        self.cache_put(&key, &e);
        st.pending_dirs.clear();
        self.add_layer(st, key, e, key_text.to_string());
        Ok(())
    }

    /// Makes the upper directory of a new layer the snapshot of the layer's chain
    /// (unless one is there already).
    fn adopt_snapshot(
        &self,
        parent_diff_ids: &[Digest],
        diff_id: &Digest,
        upper: &Path,
        exclude: &[Vec<u8>],
    ) -> Result<()> {
        // The upper directory is already the layer unpacked in overlay form: made
        // exactly like the layer (excluded paths gone, times clamped), it becomes the
        // layer's snapshot, and the next step need not unpack what this one wrote.
        let mut chain: Vec<Digest> = parent_diff_ids.to_vec();
        chain.push(diff_id.clone());
        let chain_id = kiln_store::prune::chain_ids(&chain)
            .pop()
            .expect("one layer at least");
        // Held before it is looked at, so one that exists stays.
        self.store.hold(&[Held::Snapshot(chain_id.clone())])?;
        if snapshot::path(self.store, &chain_id).exists() {
            return Ok(());
        }
        for x in exclude {
            let p = upper.join(String::from_utf8_lossy(x).as_ref());
            match std::fs::symlink_metadata(&p) {
                Ok(m) if m.is_dir() => {
                    let _ = std::fs::remove_dir_all(&p);
                }
                Ok(_) => {
                    let _ = std::fs::remove_file(&p);
                }
                Err(_) => {}
            }
        }
        if fsutil::clamp_times(upper, self.opts.source_date_epoch).is_ok() {
            // Another build may have made it meanwhile: theirs is kept.
            snapshot::adopt_dir(self.store, upper, &chain_id)?;
        }
        Ok(())
    }
}

/// Makes the WORKDIRs not yet in a layer, owned by the USER of that moment (BuildKit's
/// mkdir with parents; an existing directory is left as it is).
fn make_pending_dirs(rootfs: &Path, pending: &[(String, String)]) -> Result<()> {
    for (dir, user) in pending {
        let owner = if user.is_empty() {
            None
        } else {
            Some(owner_in_root(rootfs, user)?)
        };
        fsutil::mkdir_all(rootfs, dir, owner).map_err(|source| BuildError::Workdir {
            dir: dir.clone(),
            source,
        })?;
    }
    Ok(())
}

/// The owner BuildKit's file operations give for `user[:group]` (`--chown`, the
/// directory WORKDIR makes), looked up in the root's /etc/passwd and /etc/group: a user
/// alone gets the group of its passwd entry when named; a bare uid gets gid = uid.
pub(super) fn owner_in_root(rootfs: &Path, spec: &str) -> Result<(u32, u32)> {
    let u = kiln_runtime::user::resolve(
        spec,
        container::read_in_root(rootfs, "/etc/passwd").as_deref(),
        container::read_in_root(rootfs, "/etc/group").as_deref(),
    )?;
    let gid = if spec.contains(':') {
        u.gid
    } else if spec.parse::<u32>().is_ok() {
        u.uid
    } else {
        u.gid
    };
    Ok((u.uid, gid))
}
