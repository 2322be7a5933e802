//! `--cache-to type=local,dest=DIR` and `--cache-from type=local,src=DIR`: the layer
//! cache of a build carried between machines (a CI runner and the next) as a directory.
//!
//! The directory is an OCI image layout: `blobs/sha256/` holds the layers, and
//! `index.json` lists them, each annotated with the cache key that produced it and its
//! diff ID. Keys depend only on the build's inputs (base image, instructions, build
//! args, copied content), so a key computed elsewhere means the same step.

use crate::exec::{BuildError, CacheEntry, Result};
use kiln_oci::types::{to_canonical_json, Descriptor, Index};
use kiln_oci::Digest;
use kiln_store::Store;
use std::fs;
use std::io;
use std::path::Path;

const KEY: &str = "dev.kiln.build.cache-key";
const DIFF_ID: &str = "dev.kiln.build.diff-id";

fn io_err(path: &Path) -> impl Fn(io::Error) -> BuildError + '_ {
    move |source| BuildError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn index_err(path: &Path) -> impl Fn(serde_json::Error) -> BuildError + '_ {
    move |source| BuildError::CacheIndex {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes `entries` (key, layer) and their blobs to `dir` (an OCI layout), merging with
/// what is there already.
pub fn export_local(store: &Store, entries: &[(String, CacheEntry)], dir: &Path) -> Result<usize> {
    let blobs = dir.join("blobs/sha256");
    fs::create_dir_all(&blobs).map_err(io_err(&blobs))?;
    let index_path = dir.join("index.json");
    let mut index: Index = match fs::read(&index_path) {
        Ok(b) => serde_json::from_slice(&b).map_err(index_err(&index_path))?,
        Err(_) => Index::default(),
    };
    for (key, e) in entries {
        let dest = blobs.join(e.layer.digest.hex());
        if !dest.exists() {
            let tmp = blobs.join(format!(".{}.tmp", e.layer.digest.hex()));
            let mut src = store.open_blob(&e.layer.digest)?;
            let mut out = fs::File::create(&tmp).map_err(io_err(&tmp))?;
            io::copy(&mut src, &mut out).map_err(io_err(&tmp))?;
            out.sync_all().map_err(io_err(&tmp))?;
            fs::rename(&tmp, &dest).map_err(io_err(&dest))?;
        }
        index
            .manifests
            .retain(|d| d.annotation(KEY) != Some(key.as_str()));
        let mut d = e.layer.clone();
        let ann = d.annotations.get_or_insert_with(Default::default);
        ann.insert(KEY.into(), key.clone());
        ann.insert(DIFF_ID.into(), e.diff_id.to_string());
        index.manifests.push(d);
    }
    index
        .manifests
        .sort_by(|a, b| a.annotation(KEY).cmp(&b.annotation(KEY)));
    fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).map_err(io_err(dir))?;
    let tmp = dir.join(".index.json.tmp");
    fs::write(&tmp, to_canonical_json(&index)).map_err(io_err(&tmp))?;
    fs::rename(&tmp, &index_path).map_err(io_err(&index_path))?;
    Ok(entries.len())
}

/// Reads a cache exported by [`export_local`] into the store's build cache; every blob
/// is verified against its digest on the way in. Returns how many entries were added.
pub fn import_local(store: &Store, dir: &Path) -> Result<usize> {
    let index_path = dir.join("index.json");
    let bytes = fs::read(&index_path).map_err(io_err(&index_path))?;
    let index: Index = serde_json::from_slice(&bytes).map_err(index_err(&index_path))?;
    let mut n = 0;
    for d in &index.manifests {
        let (Some(key), Some(diff)) = (d.annotation(KEY), d.annotation(DIFF_ID)) else {
            continue;
        };
        if key.len() != 64 || !key.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(BuildError::CacheKey {
                path: index_path,
                key: key.to_string(),
            });
        }
        let diff_id = Digest::parse(diff).map_err(|source| BuildError::CacheDiffId {
            path: index_path.clone(),
            source,
        })?;
        if !store.has_blob(&d.digest) {
            let src = dir.join("blobs/sha256").join(d.digest.hex());
            let mut f = fs::File::open(&src).map_err(io_err(&src))?;
            let mut w = store.blob_writer()?;
            io::copy(&mut f, &mut w).map_err(io_err(&src))?;
            w.commit(Some(&d.digest))
                .map_err(|source| BuildError::CacheBlob {
                    path: src.clone(),
                    source,
                })?;
        }
        let mut layer: Descriptor = d.clone();
        layer.annotations = None;
        crate::exec::cache_put(store, key, &CacheEntry { layer, diff_id });
        n += 1;
    }
    Ok(n)
}
