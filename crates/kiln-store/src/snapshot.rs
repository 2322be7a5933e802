//! Snapshots: each layer unpacked once into `snapshots/<chain-id>/`, in overlayfs's
//! whiteout format, so containers stack them as lowerdirs and share them.
//!
//! A snapshot is unpacked into a temp directory and renamed into place only after both
//! the compressed digest and the diff ID matched, so a snapshot that exists is complete
//! and verified; two kiln processes racing for the same one keep whichever came first.
//! [`unpack_stream`] takes any reader of the compressed bytes, so a pull unpacks a layer
//! while it downloads it.

use crate::error::{Result, StoreError};
use crate::lease::Held;
use crate::prune::chain_ids;
use crate::Store;
use kiln_layer::{ExtractOptions, Whiteouts};
use kiln_oci::types::{ImageConfig, Manifest};
use kiln_oci::{Digest, HashingReader};
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// The directory of a snapshot.
pub fn path(store: &Store, chain_id: &Digest) -> PathBuf {
    store.root().join("snapshots").join(chain_id.hex())
}

/// Makes sure every layer of an image is unpacked; returns the snapshot dirs, bottom
/// layer first.
pub fn prepare(store: &Store, manifest: &Manifest, config: &ImageConfig) -> Result<Vec<PathBuf>> {
    let diff_ids = &config.rootfs.diff_ids;
    if diff_ids.len() != manifest.layers.len() {
        return Err(StoreError::Layer {
            digest: manifest.config.digest.to_string(),
            reason: format!(
                "the config lists {} layers but the manifest has {}",
                diff_ids.len(),
                manifest.layers.len()
            ),
        });
    }
    let chains = chain_ids(diff_ids);
    // Held from prune before they are looked at: what this process stacks stays.
    let mut held: Vec<Held> = chains.iter().cloned().map(Held::Snapshot).collect();
    held.extend(manifest.layers.iter().map(|l| Held::Blob(l.digest.clone())));
    store.hold(&held)?;
    let mut out = Vec::with_capacity(chains.len());
    for ((layer, diff_id), chain) in manifest.layers.iter().zip(diff_ids).zip(&chains) {
        let dest = path(store, chain);
        if !dest.is_dir() {
            let file = store.open_blob(&layer.digest)?;
            unpack_stream(
                store,
                io::BufReader::with_capacity(1 << 20, file),
                &layer.digest,
                diff_id,
                chain,
                Verify::Both,
            )?;
        }
        out.push(dest);
    }
    Ok(out)
}

/// How much of a layer stream [`unpack_stream`] verifies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verify {
    /// The compressed bytes against the blob digest, and the content against the diff ID.
    Both,
    /// The content against the diff ID only: the caller hashes the compressed bytes
    /// itself (a pull writing them to the store at the same time). The snapshot is
    /// still exactly what the image config names.
    DiffId,
}

/// Unpacks the compressed layer `blob` read from `compressed` into the snapshot
/// `chain_id`, verifying its content against `diff_id` (and its bytes against `blob`
/// with [`Verify::Both`]). Nothing is left behind on error; a snapshot another process
/// finished first is kept.
pub fn unpack_stream(
    store: &Store,
    compressed: impl Read,
    blob: &Digest,
    diff_id: &Digest,
    chain_id: &Digest,
    verify: Verify,
) -> Result<()> {
    let dest = path(store, chain_id);
    let parent = store.root().join("snapshots");
    fs::create_dir_all(&parent).map_err(StoreError::io(&parent))?;
    store.hold(&[Held::Snapshot(chain_id.clone())])?;
    let tmp = store.tmp_path("snapshot");
    fs::create_dir(&tmp).map_err(StoreError::io(&tmp))?;
    let result = unpack_into(compressed, blob, diff_id, &tmp, verify).and_then(|()| {
        match fs::rename(&tmp, &dest) {
            Ok(()) => Ok(()),
            // Another process finished the same snapshot first: keep theirs.
            Err(_) if dest.is_dir() => {
                let _ = fs::remove_dir_all(&tmp);
                Ok(())
            }
            Err(e) => Err(StoreError::io(&dest)(e)),
        }
    });
    if result.is_err() {
        let _ = fs::remove_dir_all(&tmp);
    }
    result
}

fn layer_error(blob: &Digest, reason: impl ToString) -> StoreError {
    StoreError::Layer {
        digest: blob.to_string(),
        reason: reason.to_string(),
    }
}

/// [`layer_error`] of an error with its causes spelled out (a full disk shows as the
/// cause of a failed extraction).
fn layer_failure(blob: &Digest, e: &dyn std::error::Error) -> StoreError {
    let mut reason = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !reason.ends_with(&text) {
            reason = format!("{reason}: {text}");
        }
        cause = c.source();
    }
    layer_error(blob, reason)
}

fn unpack_into(
    compressed: impl Read,
    blob: &Digest,
    diff_id: &Digest,
    tmp: &Path,
    verify: Verify,
) -> Result<()> {
    // An uncompressed layer's blob digest is its diff ID: checking the content checks
    // the bytes, and hashing them twice costs a second pass over the whole layer.
    if verify == Verify::DiffId || blob == diff_id {
        return unpack_content(compressed, blob, diff_id, tmp);
    }
    let mut compressed = HashingReader::new(compressed);
    unpack_content(&mut compressed, blob, diff_id, tmp)?;
    let (actual_blob, _, _) = compressed.finish();
    if actual_blob != *blob {
        return Err(StoreError::DigestMismatch {
            expected: blob.to_string(),
            actual: actual_blob.to_string(),
        });
    }
    Ok(())
}

/// Decompresses and extracts, checking the content against `diff_id`; reads the
/// compressed stream to its end.
fn unpack_content(
    compressed: impl Read,
    blob: &Digest,
    diff_id: &Digest,
    tmp: &Path,
) -> Result<()> {
    let actual_diff = extract_layer(compressed, tmp).map_err(|e| layer_failure(blob, &*e))?;
    if actual_diff != *diff_id {
        return Err(layer_error(
            blob,
            format!("its content is {actual_diff}, the image config says {diff_id}"),
        ));
    }
    Ok(())
}

type AnyError = Box<dyn std::error::Error + Send + Sync>;

/// Decompresses and extracts a layer into `tmp` in overlayfs's whiteout format; returns
/// the digest of its content (what an image config lists as its diff ID). Reads the
/// compressed stream to its end.
fn extract_layer(mut compressed: impl Read, tmp: &Path) -> std::result::Result<Digest, AnyError> {
    let (_, decoded) = kiln_layer::decompress(&mut compressed)?;
    let mut plain = HashingReader::new(decoded);
    let opts = ExtractOptions {
        whiteouts: Whiteouts::Overlay,
        ..Default::default()
    };
    kiln_layer::extract(&mut plain, tmp, &opts)?;
    // The tar may end before the stream does (padding): hash to the end.
    io::copy(&mut plain, &mut io::sink())?;
    let (content, _, decoded) = plain.finish();
    drop(decoded);
    io::copy(&mut compressed, &mut io::sink())?;
    Ok(content)
}

/// A layer unpacked before the caller knows where it sits in an image (a load reads an
/// archive's layers before the manifest that orders them): [`adopt`] makes it the
/// snapshot of a chain ID; dropped, it is removed.
pub struct Detached {
    dir: PathBuf,
    content: Digest,
}

impl Detached {
    /// The digest of the layer's content (its diff ID).
    pub fn content(&self) -> &Digest {
        &self.content
    }
}

impl Drop for Detached {
    fn drop(&mut self) {
        if !self.dir.as_os_str().is_empty() {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// Unpacks a layer stream (compressed or not) into a directory of the store's `tmp/`,
/// to be adopted as a snapshot once its chain ID is known.
pub fn unpack_detached(store: &Store, compressed: impl Read) -> Result<Detached> {
    let dir = store.tmp_path("snapshot");
    fs::create_dir(&dir).map_err(StoreError::io(&dir))?;
    match extract_layer(compressed, &dir) {
        Ok(content) => Ok(Detached { dir, content }),
        Err(e) => {
            let _ = fs::remove_dir_all(&dir);
            Err(StoreError::Layer {
                digest: "(not yet known)".into(),
                reason: e.to_string(),
            })
        }
    }
}

/// Makes `d` the snapshot `chain_id` (kept as it is when another process made it first).
pub fn adopt(store: &Store, mut d: Detached, chain_id: &Digest) -> Result<PathBuf> {
    let (dest, moved) = rename_into(store, &d.dir, chain_id)?;
    if moved {
        d.dir = PathBuf::new();
    }
    Ok(dest)
}

/// Makes `dir`, which holds exactly the unpacked content of the layer whose chain ID is
/// `chain_id` (in overlayfs's whiteout format, as a layer just written from it), that
/// snapshot: renamed into place, or left where it is when the snapshot exists already
/// (another process made it first; theirs is as good). `dir` must be on the store's
/// filesystem (its `tmp/`, a container's directory). Returns the snapshot's directory,
/// held from prune.
pub fn adopt_dir(store: &Store, dir: &Path, chain_id: &Digest) -> Result<PathBuf> {
    rename_into(store, dir, chain_id).map(|(dest, _)| dest)
}

/// Holds the snapshot `chain_id`, then renames `dir` to it unless it exists; returns its
/// directory and whether `dir` was moved there.
fn rename_into(store: &Store, dir: &Path, chain_id: &Digest) -> Result<(PathBuf, bool)> {
    let dest = path(store, chain_id);
    let parent = store.root().join("snapshots");
    fs::create_dir_all(&parent).map_err(StoreError::io(&parent))?;
    store.hold(&[Held::Snapshot(chain_id.clone())])?;
    if dest.is_dir() {
        return Ok((dest, false));
    }
    match fs::rename(dir, &dest) {
        Ok(()) => Ok((dest, true)),
        Err(_) if dest.is_dir() => Ok((dest, false)),
        Err(e) => Err(StoreError::io(&dest)(e)),
    }
}

/// Adopts the layers of an image unpacked ahead (`unpacked`, by blob digest) as its
/// snapshots where they are missing and their content is what the config says; what is
/// not adopted stays in `unpacked`. Returns how many were adopted.
pub fn adopt_image(
    store: &Store,
    manifest: &Manifest,
    config: &ImageConfig,
    unpacked: &mut std::collections::HashMap<Digest, Detached>,
) -> Result<usize> {
    let diff_ids = &config.rootfs.diff_ids;
    if diff_ids.len() != manifest.layers.len() {
        return Ok(0);
    }
    let mut n = 0;
    for ((layer, diff_id), chain) in manifest
        .layers
        .iter()
        .zip(diff_ids)
        .zip(chain_ids(diff_ids))
    {
        if path(store, &chain).is_dir() {
            continue;
        }
        let fits = unpacked
            .get(&layer.digest)
            .is_some_and(|d| d.content() == diff_id);
        if let (true, Some(d)) = (fits, unpacked.remove(&layer.digest)) {
            adopt(store, d, &chain)?;
            n += 1;
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(dir: &Path, file: &str, text: &str) {
        fs::create_dir_all(dir).unwrap();
        fs::write(dir.join(file), text).unwrap();
    }

    #[test]
    fn adopt_dir_moves_once_and_keeps_the_first() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path()).unwrap();
        let chain = Digest::of_bytes(b"a layer");
        let first = store.tmp_path("snapshot");
        tree(&first, "f", "first");
        let snap = adopt_dir(&store, &first, &chain).unwrap();
        assert_eq!(snap, path(&store, &chain));
        assert!(!first.exists());
        assert_eq!(fs::read_to_string(snap.join("f")).unwrap(), "first");
        // A second copy of the same layer: the existing snapshot stays, the copy is
        // left for its caller to remove.
        let second = store.tmp_path("snapshot");
        tree(&second, "f", "second");
        assert_eq!(adopt_dir(&store, &second, &chain).unwrap(), snap);
        assert_eq!(fs::read_to_string(snap.join("f")).unwrap(), "first");
        assert!(second.join("f").exists());
        // An empty existing snapshot (an empty layer) is kept too, not replaced.
        let empty = Digest::of_bytes(b"an empty layer");
        let e1 = store.tmp_path("snapshot");
        fs::create_dir_all(&e1).unwrap();
        adopt_dir(&store, &e1, &empty).unwrap();
        let e2 = store.tmp_path("snapshot");
        tree(&e2, "g", "x");
        let kept = adopt_dir(&store, &e2, &empty).unwrap();
        assert!(fs::read_dir(kept).unwrap().next().is_none());
        // Held from prune.
        assert!(store.in_use().unwrap().snapshots.contains_key(&chain));
    }

    #[test]
    fn adopt_dir_fails_for_a_missing_dir() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path()).unwrap();
        let missing = root.path().join("nowhere");
        assert!(adopt_dir(&store, &missing, &Digest::of_bytes(b"x")).is_err());
    }
}
