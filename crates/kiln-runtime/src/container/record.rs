//! The record of a container kept beside its directories (`container.json`): what
//! `kiln ps` lists and every later command finds a container by.

use super::ContainerDirs;
use crate::error::{Result, RuntimeError};
use std::fs;
use std::path::{Path, PathBuf};

/// The record of a container kept beside its directories (`container.json`).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Record {
    /// The container ID: 64 hex digits, also its directory's name.
    pub id: String,
    /// The container's name (`--name`); empty when none was given.
    pub name: String,
    /// The image reference as the user gave it.
    pub image: String,
    /// The image ID (its config digest, `sha256:<hex>`).
    pub image_id: String,
    /// The command as the user sees it: entrypoint and arguments, without an init process.
    pub command: Vec<String>,
    /// When the container was created, RFC 3339 in UTC.
    pub created: String,
    /// `running` from creation, `exited` once its process ended (a `running` record whose
    /// process is gone was left by a kiln that died).
    pub status: String,
    /// The exit code, Docker's way (128 + signal when killed); `None` while running.
    #[serde(default)]
    pub exit_code: Option<i32>,
    /// Host PID of the container's first process, once it started.
    #[serde(default)]
    pub pid: Option<i32>,
    /// An external OCI runtime that runs this container (`--runtime`), if not the built-in one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<String>,
    /// The image's manifest: what `commit` builds on even once the image is untagged
    /// (the container keeps its content, see kiln-store's GC roots).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest: Option<kiln_oci::types::Descriptor>,
}

impl Record {
    /// Where the record of the container in `dirs` is kept: `container.json` in its directory.
    pub fn path(dirs: &ContainerDirs) -> PathBuf {
        dirs.dir.join("container.json")
    }

    /// Saves the record atomically.
    pub fn save(&self, dirs: &ContainerDirs) -> Result<()> {
        let p = Self::path(dirs);
        let tmp = dirs.dir.join(".container.json.tmp");
        fs::write(
            &tmp,
            serde_json::to_vec_pretty(self).expect("records serialize"),
        )
        .and_then(|_| fs::rename(&tmp, &p))
        .map_err(RuntimeError::io(p))
    }

    /// Every container record in the store.
    pub fn list(store_root: &Path) -> Vec<Record> {
        let mut out: Vec<Record> = fs::read_dir(kiln_store::layout::containers_dir(store_root))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| fs::read(e.path().join("container.json")).ok())
            .filter_map(|b| serde_json::from_slice(&b).ok())
            .collect();
        out.sort_by(|a: &Record, b| b.created.cmp(&a.created));
        out
    }
}
