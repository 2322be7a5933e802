//! Writing layers (files placed at image paths, or a tree) and kiln's project layer cache.

use super::io;
use crate::lockfile;
use crate::{Error, Result};
use kiln_build::exec::CacheEntry;
use kiln_layer::{Compression, EntryMeta, EntryWriter};
use kiln_store::lease::Held;
use kiln_store::Store;
use std::fs;
use std::path::{Path, PathBuf};

/// The cached layer for `key`, held against prune; None when absent or pruned.
pub(super) fn cache_get(store: &Store, key: &str, no_cache: bool) -> Option<CacheEntry> {
    if no_cache {
        return None;
    }
    let p = kiln_store::layout::cache_dir(store.root(), kiln_store::layout::Cache::Project)
        .join("layers")
        .join(format!("{key}.json"));
    let e: CacheEntry = serde_json::from_slice(&fs::read(p).ok()?).ok()?;
    let missing = store.hold(&[Held::Blob(e.layer.digest.clone())]).ok()?;
    missing.is_empty().then_some(e)
}

pub(super) fn cache_put(store: &Store, key: &str, e: &CacheEntry) {
    let dir = kiln_store::layout::cache_dir(store.root(), kiln_store::layout::Cache::Project)
        .join("layers");
    let _ = fs::create_dir_all(&dir);
    let _ = store.write_atomic(
        &dir.join(format!("{key}.json")),
        &serde_json::to_vec(e).expect("serializes"),
    );
}

pub(super) fn key_of(parts: &[&str]) -> String {
    let bytes: Vec<&[u8]> = parts.iter().map(|p| p.as_bytes()).collect();
    lockfile::hash_parts(&bytes)
}

/// Parent directories of `path` (absolute in the image), outermost first: `/a/b/c` ->
/// `a`, `a/b`.
pub(super) fn parents(path: &str) -> Vec<String> {
    let parts: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    (1..parts.len()).map(|i| parts[..i].join("/")).collect()
}

/// Writes a layer of files placed at image paths: `(image path, source file, mode,
/// expected sha256)`; a file whose bytes are not the expected ones (it changed since it
/// was locked) fails the layer.
pub(super) fn write_placed(
    store: &Store,
    files: &[(String, PathBuf, u32, Option<String>)],
    extra_dirs: &[String],
    epoch: i64,
    compression: Compression,
) -> Result<CacheEntry> {
    let mut dirs: std::collections::BTreeSet<String> = extra_dirs.iter().cloned().collect();
    for (target, _, _, _) in files {
        dirs.extend(parents(target));
    }
    // Sorted by path, parents before children (as write_dir does).
    type Entry<'a> = (String, Option<(&'a PathBuf, u32, &'a Option<String>)>);
    let mut entries: Vec<Entry> = dirs.into_iter().map(|d| (d, None)).collect();
    for (t, src, mode, sha) in files {
        entries.push((
            t.trim_start_matches('/').to_string(),
            Some((src, *mode, sha)),
        ));
    }
    entries.sort_by(|a, b| a.0.split('/').cmp(b.0.split('/')));
    let dir_meta = EntryMeta {
        mode: 0o755,
        uid: 0,
        gid: 0,
        mtime: epoch,
    };
    let _gc = store.gc_lock(false)?;
    let layer = store
        .write_layer(compression, |out| -> std::result::Result<(), Error> {
            let mut w = EntryWriter::new(out);
            for (path, src) in &entries {
                match src {
                    None => w
                        .dir(path, dir_meta)
                        .map_err(|e| Error::new(format!("{path}: {e}")))?,
                    Some((src, mode, sha)) => {
                        let f = fs::File::open(src).map_err(io(src))?;
                        let size = f.metadata().map_err(io(src))?.len();
                        let m = EntryMeta {
                            mode: *mode,
                            ..dir_meta
                        };
                        let mut r = kiln_oci::HashingReader::new(f);
                        w.file(path, m, size, &mut r)
                            .map_err(|e| Error::new(format!("{}: {e}", src.display())))?;
                        if let Some(want) = sha {
                            let (digest, _, _) = r.finish();
                            let got = digest.hex();
                            if got != want.as_str() {
                                return Err(Error::with_hint(
                                    format!("{}: changed while the image was built (sha256 {got}, kiln.lock has {want})", src.display()),
                                    "build again once the file is written",
                                ));
                            }
                        }
                    }
                }
            }
            w.finish().map_err(|e| Error::new(e.to_string()))?;
            Ok(())
        })
        .map_err(|e| match e {
            kiln_store::compose::LayerWriteError::Produce(e) => e,
            kiln_store::compose::LayerWriteError::Store(e) => Error::from(e),
        })?;
    Ok(CacheEntry {
        layer: layer.descriptor,
        diff_id: layer.diff_id,
    })
}

/// Every entry gets `epoch` as its mtime (directories' times depend on the order uv
/// wrote them in, files' on when it ran), so the layer is the same whatever the host did.
fn normalize_tree(dir: &Path, epoch: i64) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let md = fs::symlink_metadata(dir)?;
    if md.is_dir() {
        for e in fs::read_dir(dir)? {
            normalize_tree(&e?.path(), epoch)?;
        }
        kiln_debian::dpkg::set_mtime(dir, epoch)?;
    } else if md.mtime() != epoch {
        kiln_debian::dpkg::set_mtime(dir, epoch)?;
    }
    Ok(())
}

/// Writes the tree `dir` as a layer, mtimes normalized to `epoch`. The caller may keep
/// `dir` as the layer's snapshot: it is exactly the layer, unpacked.
pub(super) fn write_tree(
    store: &Store,
    dir: &Path,
    epoch: i64,
    compression: Compression,
) -> Result<CacheEntry> {
    normalize_tree(dir, epoch).map_err(io(dir))?;
    let layer = store
        .write_tree_layer(dir, epoch, compression)
        .map_err(|e| Error::new(format!("cannot write the layer of {}: {e}", dir.display())))?;
    Ok(CacheEntry {
        layer: layer.descriptor,
        diff_id: layer.diff_id,
    })
}
