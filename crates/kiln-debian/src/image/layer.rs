//! A layer's bytes and snapshot, and its memo: each layer is remembered under a key of
//! everything that went into it, so the same inputs find the layer already in the store.

use super::scripts::Configured;
use crate::dpkg;
use crate::{DebianError, Result};
use kiln_layer::Compression;
use kiln_oci::types::{Descriptor, ImageConfig, RootFs};
use kiln_oci::Digest;
use kiln_store::{snapshot, Store};
use std::fs;
use std::path::{Path, PathBuf};

/// Bumped whenever the layers kiln writes for the same packages change.
pub(super) const FORMAT: &str = "kiln-debian/2";

/// A layer and what configuring its packages left for later, as remembered.
#[derive(serde::Serialize, serde::Deserialize)]
pub(super) struct CachedLayer {
    pub descriptor: Descriptor,
    pub diff_id: Digest,
    #[serde(flatten)]
    pub configured: Configured,
}

/// The memo file of the layer made from `parts`.
pub(super) fn memo_path(cache: &Path, parts: &[String]) -> PathBuf {
    let key = crate::fetch::sha256_bytes(parts.join("\n").as_bytes());
    cache.join("layers").join(format!("{key}.json"))
}

/// A layer made earlier from the same inputs, if its blob is still in the store.
pub(super) fn read_memo(store: &Store, memo: &Path) -> Option<CachedLayer> {
    fs::read(memo)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .filter(|c: &CachedLayer| store.has_blob_held(&c.descriptor.digest))
}

/// Remembers a layer (best effort: a memo that cannot be written only costs a rebuild).
pub(super) fn write_memo(memo: &Path, c: &CachedLayer) {
    let _ = fs::create_dir_all(memo.parent().expect("a parent"));
    let _ = fs::write(memo, serde_json::to_vec(c).expect("serializes"));
}

/// Writes `dir` as a layer on top of `below`, then keeps `dir` as the layer's snapshot
/// (it is exactly the layer, unpacked): directory times set to the epoch, other times
/// clamped to it, so the same packages give the same bytes.
pub(super) fn write_snapshot_layer(
    store: &Store,
    dir: &Path,
    below: &[Digest],
    epoch: i64,
) -> Result<(Descriptor, Digest)> {
    normalize_times(dir, epoch).map_err(DebianError::io(dir))?;
    let layer = store
        .write_tree_layer(dir, epoch, Compression::None)
        .map_err(|e| DebianError::WriteLayer { source: e.into() })?;
    let mut chain = below.to_vec();
    chain.push(layer.diff_id.clone());
    let chain_id = kiln_store::prune::chain_ids(&chain)
        .pop()
        .expect("one layer at least");
    // Another process may have made it meanwhile: theirs is as good.
    snapshot::adopt_dir(store, dir, &chain_id)?;
    Ok((layer.descriptor, layer.diff_id))
}

/// Directories get the epoch as mtime (their times depend on unpacking order), other
/// entries keep theirs, clamped to the epoch.
fn normalize_times(dir: &Path, epoch: i64) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let md = fs::symlink_metadata(dir)?;
    if md.is_dir() {
        for e in fs::read_dir(dir)? {
            normalize_times(&e?.path(), epoch)?;
        }
        dpkg::set_mtime(dir, epoch)?;
    } else if md.mtime() > epoch {
        dpkg::set_mtime(dir, epoch)?;
    }
    Ok(())
}

/// The snapshot of the top layer of `layers`, unpacked from the store if missing.
pub(super) fn ensure_snapshot(
    store: &Store,
    layers: &[Descriptor],
    diff_ids: &[Digest],
) -> Result<PathBuf> {
    let manifest = kiln_oci::types::Manifest::oci(
        Descriptor::new(kiln_oci::media::OCI_CONFIG, Digest::of_bytes(b""), 0),
        layers.to_vec(),
    );
    let config = ImageConfig {
        created: None,
        author: None,
        architecture: String::new(),
        os: String::new(),
        variant: None,
        config: None,
        rootfs: RootFs {
            kind: "layers".into(),
            diff_ids: diff_ids.to_vec(),
        },
        history: None,
        extra: Default::default(),
    };
    let mut dirs = snapshot::prepare(store, &manifest, &config)?;
    Ok(dirs.pop().expect("one layer at least"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A memo keeps the fields of a layer's configuration beside its descriptor (the
    /// format memos had before `Configured` grouped them).
    #[test]
    fn memo_fields_are_flat() {
        let c = CachedLayer {
            descriptor: Descriptor::new("m", Digest::of_bytes(b"l"), 1),
            diff_id: Digest::of_bytes(b"d"),
            configured: Configured {
                ldconfig: true,
                ..Default::default()
            },
        };
        let v: serde_json::Value = serde_json::to_value(&c).unwrap();
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        for k in [
            "descriptor",
            "diff_id",
            "scripts",
            "ldconfig",
            "handling",
            "alternatives",
            "diversions",
            "shells",
        ] {
            assert!(keys.contains(&k), "{k} in {keys:?}");
        }
        assert_eq!(keys.len(), 8);
        let back: CachedLayer = serde_json::from_value(v).unwrap();
        assert!(back.configured.ldconfig && back.diff_id == c.diff_id);
    }
}
