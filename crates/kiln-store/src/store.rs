//! The store's layout, blobs and index.json.

use crate::error::{Result, StoreError};
use crate::lock::Lock;
use kiln_oci::types::{to_canonical_json, Index};
use kiln_oci::{Digest, HashingWriter};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

const OCI_LAYOUT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;

/// A kiln store rooted at a directory.
#[derive(Clone, Debug)]
pub struct Store {
    root: PathBuf,
}

/// A blob being written: bytes go to a temp file while they are hashed; `commit`
/// verifies, fsyncs and renames it into `blobs/sha256/`.
/// Dropped without `commit`, it deletes its temp file: an error anywhere in the caller
/// leaves nothing behind.
pub struct BlobWriter {
    store: Store,
    tmp: PathBuf,
    inner: Option<HashingWriter<io::BufWriter<File>>>,
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.writer().write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.writer().flush()
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        // After a commit the temp file was renamed away; this only removes leftovers.
        let _ = fs::remove_file(&self.tmp);
    }
}

impl BlobWriter {
    fn writer(&mut self) -> &mut HashingWriter<io::BufWriter<File>> {
        self.inner
            .as_mut()
            .expect("only commit takes the writer, and it consumes self")
    }

    /// Bytes written so far.
    pub fn count(&self) -> u64 {
        self.inner.as_ref().map_or(0, |w| w.count())
    }

    /// Finishes the blob. With `expected`, a blob whose bytes hash otherwise is refused
    /// and never enters the store.
    pub fn commit(mut self, expected: Option<&Digest>) -> Result<(Digest, u64)> {
        let (digest, size, buf) = self
            .inner
            .take()
            .expect("only commit takes the writer")
            .finish();
        let file = buf
            .into_inner()
            .map_err(|e| StoreError::io(&self.tmp)(e.into_error()))?;
        (|| {
            if let Some(exp) = expected {
                if *exp != digest {
                    return Err(StoreError::DigestMismatch {
                        expected: exp.to_string(),
                        actual: digest.to_string(),
                    });
                }
            }
            file.sync_all().map_err(StoreError::io(&self.tmp))?;
            drop(file);
            self.store.install_tmp(&self.tmp, &digest)?;
            Ok((digest, size))
        })()
    }
}

impl Store {
    /// The default root: `$KILN_ROOT`, else `/var/lib/kiln` for root, else
    /// `$XDG_DATA_HOME/kiln` (`~/.local/share/kiln`).
    pub fn default_root() -> PathBuf {
        if let Some(r) = std::env::var_os("KILN_ROOT").filter(|r| !r.is_empty()) {
            return PathBuf::from(r);
        }
        if rustix::process::geteuid().is_root() {
            return PathBuf::from("/var/lib/kiln");
        }
        if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|x| !x.is_empty()) {
            return PathBuf::from(x).join("kiln");
        }
        let home = std::env::var_os("HOME").unwrap_or_else(|| "/".into());
        PathBuf::from(home).join(".local/share/kiln")
    }

    /// Opens the store at `root`, creating an empty layout if there is none.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self> {
        let store = Self { root: root.into() };
        for dir in ["blobs/sha256", "tmp", "locks", "history"] {
            let p = store.root.join(dir);
            fs::create_dir_all(&p).map_err(StoreError::io(&p))?;
        }
        let layout = store.root.join("oci-layout");
        if !layout.exists() {
            store.write_atomic(&layout, OCI_LAYOUT)?;
        }
        let index = store.index_path();
        if !index.exists() {
            let _lock = store.index_lock()?;
            if !index.exists() {
                store.write_atomic(&index, &to_canonical_json(&Index::default()))?;
            }
        }
        Ok(store)
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn index_path(&self) -> PathBuf {
        self.root.join("index.json")
    }

    /// Where a blob lives.
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root.join("blobs/sha256").join(digest.hex())
    }

    /// Whether the blob is present.
    pub fn has_blob(&self, digest: &Digest) -> bool {
        self.blob_path(digest).is_file()
    }

    /// Size of a present blob.
    pub fn blob_size(&self, digest: &Digest) -> Result<u64> {
        let p = self.blob_path(digest);
        match fs::metadata(&p) {
            Ok(m) => Ok(m.len()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(StoreError::BlobMissing {
                digest: digest.to_string(),
            }),
            Err(e) => Err(StoreError::io(p)(e)),
        }
    }

    /// Opens a blob for streaming. Callers that need trust hash what they read.
    pub fn open_blob(&self, digest: &Digest) -> Result<File> {
        let p = self.blob_path(digest);
        File::open(&p).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                StoreError::BlobMissing {
                    digest: digest.to_string(),
                }
            } else {
                StoreError::io(p)(e)
            }
        })
    }

    /// Reads a (small) blob and verifies it against its digest.
    pub fn read_blob(&self, digest: &Digest) -> Result<Vec<u8>> {
        let mut bytes = Vec::new();
        let p = self.blob_path(digest);
        self.open_blob(digest)?
            .read_to_end(&mut bytes)
            .map_err(StoreError::io(&p))?;
        let actual = Digest::of_bytes(&bytes);
        if actual != *digest {
            return Err(StoreError::DigestMismatch {
                expected: digest.to_string(),
                actual: actual.to_string(),
            });
        }
        Ok(bytes)
    }

    /// Reads a JSON blob into `T`.
    pub fn read_json<T: serde::de::DeserializeOwned>(&self, digest: &Digest) -> Result<T> {
        let bytes = self.read_blob(digest)?;
        serde_json::from_slice(&bytes).map_err(|source| StoreError::Json {
            what: format!("blob {digest}"),
            source,
        })
    }

    /// Starts writing a blob.
    pub fn blob_writer(&self) -> Result<BlobWriter> {
        let tmp = self.tmp_path("blob");
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(StoreError::io(&tmp))?;
        Ok(BlobWriter {
            store: self.clone(),
            tmp,
            inner: Some(HashingWriter::new(io::BufWriter::with_capacity(
                1 << 20,
                file,
            ))),
        })
    }

    /// Writes a blob from memory.
    pub fn write_blob(&self, bytes: &[u8]) -> Result<Digest> {
        let digest = Digest::of_bytes(bytes);
        if self.has_blob(&digest) {
            return Ok(digest);
        }
        let mut w = self.blob_writer()?;
        let tmp = w.tmp.clone();
        w.write_all(bytes).map_err(StoreError::io(tmp))?;
        w.commit(Some(&digest))?;
        Ok(digest)
    }

    /// Moves a finished, verified temp file (in this store's `tmp/`) into place. An
    /// existing blob with the same digest is kept: same digest, same bytes.
    pub fn install_tmp(&self, tmp: &Path, digest: &Digest) -> Result<()> {
        // Held before it appears: prune keeps it until this process is done with it.
        self.hold(&[crate::lease::Held::Blob(digest.clone())])?;
        let dest = self.blob_path(digest);
        if dest.exists() {
            let _ = fs::remove_file(tmp);
            return Ok(());
        }
        fs::rename(tmp, &dest).map_err(StoreError::io(&dest))?;
        sync_dir(dest.parent().expect("blob paths have a parent"))
    }

    /// A fresh path in `tmp/` (same filesystem as `blobs/`, so renames are atomic).
    pub fn tmp_path(&self, what: &str) -> PathBuf {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        self.root
            .join("tmp")
            .join(format!("{what}-{}-{n}-{nanos:x}", std::process::id()))
    }

    /// Writes a file atomically: temp file, fsync, rename, fsync of the directory.
    pub fn write_atomic(&self, dest: &Path, bytes: &[u8]) -> Result<()> {
        let tmp = self.tmp_path("atomic");
        let res = (|| {
            let mut f = File::create(&tmp).map_err(StoreError::io(&tmp))?;
            f.write_all(bytes).map_err(StoreError::io(&tmp))?;
            f.sync_all().map_err(StoreError::io(&tmp))?;
            fs::rename(&tmp, dest).map_err(StoreError::io(dest))?;
            sync_dir(dest.parent().unwrap_or(Path::new(".")))
        })();
        if res.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        res
    }

    /// Held while index.json is read-modified-written.
    pub fn index_lock(&self) -> Result<Lock> {
        Lock::acquire(&self.root.join("locks/index.lock"), true)
    }

    /// Held (shared) by every operation that adds blobs not yet referenced from the index,
    /// and (exclusive) by prune, so prune never deletes a blob that is about to be tagged.
    pub fn gc_lock(&self, exclusive: bool) -> Result<Lock> {
        Lock::acquire(&self.root.join("locks/gc.lock"), exclusive)
    }

    /// Reads index.json.
    pub fn index(&self) -> Result<Index> {
        let p = self.index_path();
        let bytes = fs::read(&p).map_err(StoreError::io(&p))?;
        serde_json::from_slice(&bytes).map_err(|source| StoreError::Json {
            what: p.display().to_string(),
            source,
        })
    }

    /// Read-modify-write of index.json under the exclusive lock. The closure's changes are
    /// written only if it succeeds.
    pub fn update_index<T>(&self, f: impl FnOnce(&mut Index) -> Result<T>) -> Result<T> {
        let _lock = self.index_lock()?;
        let mut index = self.index()?;
        let before = index.clone();
        let out = f(&mut index)?;
        if index != before {
            self.write_atomic(&self.index_path(), &to_canonical_json(&index))?;
        }
        Ok(out)
    }
}

/// fsync of a directory, so a rename in it survives a power cut.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(StoreError::io(dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blobs_are_verified() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let d = store.write_blob(b"hello").unwrap();
        assert_eq!(store.read_blob(&d).unwrap(), b"hello");
        let mut w = store.blob_writer().unwrap();
        w.write_all(b"other").unwrap();
        let err = w.commit(Some(&d)).unwrap_err();
        assert!(matches!(err, StoreError::DigestMismatch { .. }));
        assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
        // A corrupted blob on disk is noticed on read.
        fs::write(store.blob_path(&d), b"HELLO").unwrap();
        assert!(store.read_blob(&d).is_err());
    }

    #[test]
    fn layout_is_standard() {
        let dir = tempfile::tempdir().unwrap();
        Store::open(dir.path()).unwrap();
        let layout = fs::read_to_string(dir.path().join("oci-layout")).unwrap();
        assert!(layout.contains("1.0.0"));
        let index: Index =
            serde_json::from_slice(&fs::read(dir.path().join("index.json")).unwrap()).unwrap();
        assert_eq!(index.schema_version, 2);
    }
}
