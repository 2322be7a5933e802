//! The project build: kiln.lock made fresh (or checked with `--locked`), then the image's
//! layers, lowest first by how rarely they change:
//!
//! 1. weights: one uncompressed layer per file of 16 MiB or more, the rest of each entry
//!    in one layer; fixed paths, owner root, mode 0644, mtime the image time. The same
//!    bytes give the same layer in every version and every project;
//! 2. OS: the Debian base built from the archive (kiln-debian), or the base image's layers;
//! 3. env: the app user in /etc/passwd and /etc/group, its home, the venv skeleton
//!    (/opt/venv: pyvenv.cfg and `bin/python` -> the base's interpreter), the workdir;
//! 4. Python: each distribution whose wheel is 10 MB or more in a layer of its own, the
//!    rest in one layer, installed by uv straight into /opt/venv/lib/pythonX.Y/site-packages
//!    for the image's interpreter and platform. A layer of one distribution depends only
//!    on its wheel and the interpreter's X.Y, so projects that install the same wheel share
//!    it. No .pyc files are written (Python compiles in memory when site-packages is not
//!    writable, as for the non-root user): byte-code would need the image's interpreter;
//! 5. code: the application's files under the workdir, owned by root, mtime the image time.
//!
//! Then the config: user, workdir, command, ports, env, healthcheck, and labels with the
//! project's metadata (ports, resources, healthcheck, weights, the kiln.lock digest).
//! Every layer but the code is cached by its inputs; a build with nothing changed makes no
//! network request.
//!
//! The modules: `driver` (`build`: the lock, then each layer in turn, the config, the
//! image), `lock` (kiln.lock fresh or checked), `base` (the base's interpreter and
//! platform), `resolve` (uv's resolution), `sdist` (wheels built from source
//! distributions), `install` (distributions installed into a layer's tree), `env` and
//! `code` (those layers), `layer` (writing layers, the layer cache), `config` (the image
//! config and its labels).

mod base;
mod code;
mod config;
mod driver;
mod env;
mod install;
mod layer;
mod lock;
mod resolve;
mod sdist;
#[cfg(test)]
mod tests;

pub use driver::build;

use crate::lockfile::KilnLock;
use crate::manifest::Project;
use crate::{Error, Result};
use kiln_oci::types::Descriptor;
use kiln_store::Store;
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

/// Where the virtual environment lives in the image.
pub const VENV: &str = "/opt/venv";
/// A distribution whose wheel is at least this large gets a layer of its own.
pub const LARGE_WHEEL: u64 = 10_000_000;
/// A weights file at least this large gets a layer of its own.
pub const LARGE_WEIGHTS_FILE: u64 = 16 << 20;
/// Label holding the project metadata (JSON) that `kiln env` and `kiln deploy` read.
pub const PROJECT_LABEL: &str = kiln_oci::media::LABEL_KILN_PROJECT;

/// What to do.
#[derive(Clone, Debug, Default)]
pub struct BuildRequest {
    /// The project directory, where kiln.toml is.
    pub dir: PathBuf,
    /// Fail when kiln.lock is missing or stale instead of updating it.
    pub locked: bool,
    /// Update kiln.lock and stop (`kiln lock`).
    pub lock_only: bool,
    /// Resolve again even when kiln.lock is fresh (`kiln lock --upgrade`).
    pub refresh: bool,
    /// Build every layer again.
    pub no_cache: bool,
    /// Parallel downloads of Debian packages, and Python layers built at once (at most 4);
    /// 0 counts as 1.
    pub jobs: usize,
    /// The image time; default: the base's time (the Debian lock's newest InRelease date,
    /// or the base image's `created`), so the same kiln.lock gives the same digest any day.
    pub source_date_epoch: Option<i64>,
    /// Extra labels (the CLI adds git revision and source here).
    pub labels: BTreeMap<String, String>,
}

/// One layer of the result.
#[derive(Clone, Debug, serde::Serialize)]
pub struct LayerReport {
    /// weights | os | env | python | code
    pub kind: &'static str,
    /// What the layer holds, for people, e.g. `debian:bookworm layer 1`.
    pub name: String,
    /// The layer blob's digest (`sha256:...`).
    pub digest: String,
    /// The size in bytes of the layer's blob in the store.
    pub size: u64,
    /// The layer came from kiln's layer cache instead of being built.
    pub cached: bool,
}

/// What a build did.
pub struct BuildOutcome {
    /// The project as kiln.toml declared it.
    pub project: Project,
    /// kiln.lock as the image was built from it (written or read).
    pub lock: KilnLock,
    /// kiln.lock was written (created or updated), with what changed.
    pub lock_changes: Vec<String>,
    /// None for `lock_only`.
    pub descriptor: Option<Descriptor>,
    /// One report per layer of the image, in the order they were added; empty for
    /// `lock_only`.
    pub layers: Vec<LayerReport>,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |e| Error::new(format!("{}: {e}", path.display()))
}

fn tempdir(store: &Store, what: &str) -> Result<tempfile::TempDir> {
    let base = store.root().join("tmp");
    fs::create_dir_all(&base).map_err(io(&base))?;
    tempfile::Builder::new()
        .prefix(&format!("project-{what}-{}-", std::process::id()))
        .tempdir_in(&base)
        .map_err(io(&base))
}
