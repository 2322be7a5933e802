//! `--cache-to type=local,dest=DIR` and `--cache-from type=local,src=DIR`: the layer
//! cache of a build carried between machines (a CI runner and the next) as a directory.
//!
//! The directory is an OCI image layout: `blobs/sha256/` holds the layers, and
//! `index.json` lists them, each annotated with the cache key that produced it and its
//! diff ID. Keys depend only on the build's inputs (base image, instructions, build
//! args, copied content), so a key computed elsewhere means the same step.

use crate::exec::CacheEntry;
use kiln_oci::types::{to_canonical_json, Descriptor, Index};
use kiln_oci::Digest;
use kiln_store::Store;
use std::fs;
use std::io;
use std::path::Path;

const KEY: &str = "dev.kiln.build.cache-key";
const DIFF_ID: &str = "dev.kiln.build.diff-id";

fn err(path: &Path, e: impl std::fmt::Display) -> String {
    format!("{}: {e}", path.display())
}

/// Writes `entries` (key, layer) and their blobs to `dir` (an OCI layout), merging with
/// what is there already.
pub fn export_local(
    store: &Store,
    entries: &[(String, CacheEntry)],
    dir: &Path,
) -> Result<usize, String> {
    let blobs = dir.join("blobs/sha256");
    fs::create_dir_all(&blobs).map_err(|e| err(&blobs, e))?;
    let index_path = dir.join("index.json");
    let mut index: Index = match fs::read(&index_path) {
        Ok(b) => serde_json::from_slice(&b).map_err(|e| err(&index_path, e))?,
        Err(_) => Index::default(),
    };
    for (key, e) in entries {
        let dest = blobs.join(e.layer.digest.hex());
        if !dest.exists() {
            let tmp = blobs.join(format!(".{}.tmp", e.layer.digest.hex()));
            let mut src = store
                .open_blob(&e.layer.digest)
                .map_err(|x| x.to_string())?;
            let mut out = fs::File::create(&tmp).map_err(|x| err(&tmp, x))?;
            io::copy(&mut src, &mut out).map_err(|x| err(&tmp, x))?;
            out.sync_all().map_err(|x| err(&tmp, x))?;
            fs::rename(&tmp, &dest).map_err(|x| err(&dest, x))?;
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
    fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)
        .map_err(|e| err(dir, e))?;
    let tmp = dir.join(".index.json.tmp");
    fs::write(&tmp, to_canonical_json(&index)).map_err(|e| err(&tmp, e))?;
    fs::rename(&tmp, &index_path).map_err(|e| err(&index_path, e))?;
    Ok(entries.len())
}

/// Reads a cache exported by [`export_local`] into the store's build cache; every blob
/// is verified against its digest on the way in. Returns how many entries were added.
pub fn import_local(store: &Store, dir: &Path) -> Result<usize, String> {
    let index_path = dir.join("index.json");
    let bytes = fs::read(&index_path).map_err(|e| err(&index_path, e))?;
    let index: Index = serde_json::from_slice(&bytes).map_err(|e| err(&index_path, e))?;
    let mut n = 0;
    for d in &index.manifests {
        let (Some(key), Some(diff)) = (d.annotation(KEY), d.annotation(DIFF_ID)) else {
            continue;
        };
        if key.len() != 64 || !key.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(err(&index_path, format!("`{key}` is not a cache key")));
        }
        let diff_id = Digest::parse(diff).map_err(|e| err(&index_path, e))?;
        if !store.has_blob(&d.digest) {
            let src = dir.join("blobs/sha256").join(d.digest.hex());
            let mut f = fs::File::open(&src).map_err(|e| err(&src, e))?;
            let mut w = store.blob_writer().map_err(|e| e.to_string())?;
            io::copy(&mut f, &mut w).map_err(|e| err(&src, e))?;
            w.commit(Some(&d.digest)).map_err(|e| err(&src, e))?;
        }
        let mut layer: Descriptor = d.clone();
        layer.annotations = None;
        crate::exec::cache_put(store, key, &CacheEntry { layer, diff_id });
        n += 1;
    }
    Ok(n)
}
