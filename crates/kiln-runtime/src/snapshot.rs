//! Snapshots: each layer unpacked once into `snapshots/<chain-id>/`, in overlayfs's
//! whiteout format, so containers stack them as lowerdirs and share them.
//!
//! A snapshot is unpacked into a temp directory and renamed into place only after both
//! the compressed digest and the diff ID matched, so a snapshot that exists is complete
//! and verified; two kiln processes racing for the same one keep whichever came first.

use crate::error::{Result, RuntimeError};
use kiln_layer::{ExtractOptions, Whiteouts};
use kiln_oci::types::{ImageConfig, Manifest};
use kiln_oci::{Digest, HashingReader};
use kiln_store::prune::chain_ids;
use kiln_store::Store;
use std::fs;
use std::io::{self, Read};
use std::path::PathBuf;

/// The directory of a snapshot.
pub fn path(store: &Store, chain_id: &Digest) -> PathBuf {
    store.root().join("snapshots").join(chain_id.hex())
}

/// Makes sure every layer of an image is unpacked; returns the snapshot dirs, bottom
/// layer first.
pub fn prepare(store: &Store, manifest: &Manifest, config: &ImageConfig) -> Result<Vec<PathBuf>> {
    let diff_ids = &config.rootfs.diff_ids;
    if diff_ids.len() != manifest.layers.len() {
        return Err(RuntimeError::Layer {
            digest: manifest.config.digest.to_string(),
            reason: format!(
                "the config lists {} layers but the manifest has {}",
                diff_ids.len(),
                manifest.layers.len()
            ),
        });
    }
    let dir = store.root().join("snapshots");
    fs::create_dir_all(&dir).map_err(RuntimeError::io(&dir))?;
    let chains = chain_ids(diff_ids);
    let mut out = Vec::with_capacity(chains.len());
    for ((layer, diff_id), chain) in manifest.layers.iter().zip(diff_ids).zip(&chains) {
        let dest = path(store, chain);
        if !dest.is_dir() {
            unpack(store, &layer.digest, diff_id, &dest)?;
        }
        out.push(dest);
    }
    Ok(out)
}

fn unpack(store: &Store, blob: &Digest, diff_id: &Digest, dest: &PathBuf) -> Result<()> {
    let tmp = store.tmp_path("snapshot");
    fs::create_dir(&tmp).map_err(RuntimeError::io(&tmp))?;
    let result = (|| {
        let file = store.open_blob(blob)?;
        let mut compressed = HashingReader::new(io::BufReader::with_capacity(1 << 20, file));
        let (_, decoded) =
            kiln_layer::decompress(&mut compressed).map_err(|e| RuntimeError::Layer {
                digest: blob.to_string(),
                reason: e.to_string(),
            })?;
        let mut plain = HashingReader::new(decoded);
        let opts = ExtractOptions {
            whiteouts: Whiteouts::Overlay,
            ..Default::default()
        };
        kiln_layer::extract(&mut plain, &tmp, &opts)?;
        // The tar may end before the stream does (padding): hash to the end.
        io::copy(&mut plain, &mut io::sink()).map_err(RuntimeError::io(store.blob_path(blob)))?;
        let (actual_diff, _, decoded) = plain.finish();
        drop(decoded);
        let mut rest = Vec::new();
        compressed
            .read_to_end(&mut rest)
            .map_err(RuntimeError::io(store.blob_path(blob)))?;
        let (actual_blob, _, _) = compressed.finish();
        if actual_blob != *blob {
            return Err(RuntimeError::Layer {
                digest: blob.to_string(),
                reason: format!("the stored blob hashes to {actual_blob}; run `kiln check`"),
            });
        }
        if actual_diff != *diff_id {
            return Err(RuntimeError::Layer {
                digest: blob.to_string(),
                reason: format!("its content is {actual_diff}, the image config says {diff_id}"),
            });
        }
        match fs::rename(&tmp, dest) {
            Ok(()) => Ok(()),
            // Another process finished the same snapshot first: keep theirs.
            Err(_) if dest.is_dir() => Err(RuntimeError::Io {
                path: tmp.clone(),
                source: io::ErrorKind::AlreadyExists.into(),
            }),
            Err(e) => Err(RuntimeError::io(dest)(e)),
        }
    })();
    match result {
        Ok(()) => Ok(()),
        Err(RuntimeError::Io { source, .. })
            if source.kind() == io::ErrorKind::AlreadyExists && dest.is_dir() =>
        {
            let _ = fs::remove_dir_all(&tmp);
            Ok(())
        }
        Err(e) => {
            let _ = fs::remove_dir_all(&tmp);
            Err(e)
        }
    }
}
