//! A container's life in the foreground: a private mount namespace holding the overlay
//! root filesystem, youki's libcontainer creating and starting the process, signals
//! forwarded, the exit status returned, and everything removed afterwards.
//!
//! The overlay is mounted in a mount namespace private to this kiln process (and the
//! container, which inherits it): when both are gone the kernel drops the mount, so even a
//! SIGKILLed kiln leaves nothing mounted on the host.
//!
//! - `rootfs`: the private mount namespace, the overlay, the files the runtime adds
//!   (`/etc/hosts` ...) and removing a container's directories;
//! - `process`: creating, starting and waiting for the container's process in the
//!   foreground, signals forwarded, and its standard streams;
//! - `confine`: the seccomp filter and rlimits kiln applies to the process itself;
//! - `exec`: a further process in a running container (`kiln exec`);
//! - `external`: the same run through an external OCI runtime (`--runtime runc`);
//! - `lookup`: finding files (the command, /etc/passwd) inside the root filesystem;
//! - `record`: the record kept beside a container (`container.json`);
//! - `lifecycle`: a container from any later process: running or not, signals, waiting
//!   for its exit, stopping and removing it.

mod confine;
mod exec;
mod external;
mod lifecycle;
mod lookup;
mod process;
mod record;
mod rootfs;

pub use exec::exec;
pub use external::run_external;
pub use lifecycle::{
    is_running, parse_signal, process_alive, remove, signal, stop, wait_exit, Waited,
};
pub use lookup::{exec_candidates, find_executable, read_in_root, Lookup, READ_IN_ROOT_CAP};
pub use process::{dev_null, not_dev_null, run_foreground, Exit, OnSignal};
pub use record::Record;
pub use rootfs::{
    mount_rootfs, mount_rootfs_with, private_mount_namespace, remove_dirs, runtime_mount_points,
    write_etc_files,
};

use crate::error::RuntimeError;
use std::path::{Path, PathBuf};

/// The directories of one container under `<store>/containers/<id>/`.
pub struct ContainerDirs {
    /// `<store>/containers/<id>`: holds the record, the bundle and the overlay's layers.
    pub dir: PathBuf,
}

impl ContainerDirs {
    /// The directories of container `id` in the store at `store_root` (nothing is created).
    pub fn new(store_root: &Path, id: &str) -> Self {
        Self {
            dir: kiln_store::layout::containers_dir(store_root).join(id),
        }
    }
    /// The OCI bundle libcontainer runs: `config.json` and the `rootfs` mount point.
    pub fn bundle(&self) -> PathBuf {
        self.dir.join("bundle")
    }
    /// Where the overlay root filesystem is mounted (`bundle/rootfs`).
    pub fn rootfs(&self) -> PathBuf {
        self.bundle().join("rootfs")
    }
    /// The overlay's writable upper layer: every change the container made (what
    /// `kiln commit` turns into a layer).
    pub fn upper(&self) -> PathBuf {
        self.dir.join("upper")
    }
    /// overlayfs's work directory, on the same filesystem as the upper layer.
    pub fn work(&self) -> PathBuf {
        self.dir.join("work")
    }
    /// libcontainer's state root (it adds `<id>/`).
    pub fn state(&self) -> PathBuf {
        self.dir.join("state")
    }
}

/// A libcontainer error about the container of `dirs`, named by its bundle.
fn lib_error(dirs: &ContainerDirs, e: libcontainer::error::LibcontainerError) -> RuntimeError {
    RuntimeError::Io {
        path: dirs.bundle(),
        source: std::io::Error::other(e.to_string()),
    }
}
