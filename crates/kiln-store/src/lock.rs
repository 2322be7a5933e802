//! Advisory file locks (flock) between kiln processes sharing a store.

use crate::error::{Result, StoreError};
use rustix::fs::{flock, FlockOperation};
use std::fs::{File, OpenOptions};
use std::path::Path;

/// A held lock; released when dropped (or when the process dies, which is what makes it
/// safe against SIGKILL).
pub struct Lock {
    _file: File,
}

impl Lock {
    /// Takes the lock at `path`, shared or exclusive, waiting for it.
    pub fn acquire(path: &Path, exclusive: bool) -> Result<Self> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(path)
            .map_err(StoreError::io(path))?;
        let op = if exclusive {
            FlockOperation::LockExclusive
        } else {
            FlockOperation::LockShared
        };
        flock(&file, op).map_err(|e| StoreError::Io {
            path: path.to_path_buf(),
            source: e.into(),
        })?;
        Ok(Self { _file: file })
    }
}
