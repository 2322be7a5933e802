//! `kiln init`: look at an existing Python project and write a first `kiln.toml` and
//! `.kilnignore` for it.
//!
//! [`detect`] walks the project (bounded, never leaving it through symlinks), reads
//! `pyproject.toml`, `uv.lock`, requirements files and `.python-version`, a Cog `cog.yaml`
//! or a BentoML `bentofile.yaml`, scans the Python sources for the app (a FastAPI,
//! Starlette, Flask, Gradio or Streamlit app, a BentoML service, a `[project.scripts]`
//! entry, a `__main__` block), for the port the code names and for a health route, and
//! finds model weights. It asks nothing: [`InitOptions`] override what
//! it finds. Odd input (unreadable or non-UTF-8 files, huge files, odd names, symlink
//! loops) is skipped, with a note, never a panic.
//!
//! [`render_toml`] and [`render_ignore`] turn the [`Detection`] into the two files; what
//! was found and what is left to the user are in [`Detection::detected`] and
//! [`Detection::missing`], for the command to print.

mod bento;
mod candidates;
mod cog;
mod command;
mod declared;
mod deps;
mod detector;
mod files;
mod names;
mod packages;
mod ports;
mod project;
mod python;
mod render;
mod scan;
mod util;
mod walk;
mod weights;

pub use render::{render_ignore, render_toml};

use crate::{Error, Result};
use detector::Detector;
use std::fs;
use std::path::Path;

/// Flags of `kiln init` that override what [`detect`] finds.
#[derive(Default, Clone, Debug)]
pub struct InitOptions {
    /// `[project].name` (sanitized to an image name).
    pub name: Option<String>,
    /// `[base].image`, e.g. `"debian:trixie"`.
    pub base: Option<String>,
    /// `[python].version`, e.g. `"3.11"`.
    pub python: Option<String>,
    /// `[app].command`.
    pub command: Option<Vec<String>>,
    /// `[app].ports` (one port); a detected command is written for it.
    pub port: Option<u16>,
}

/// Where the Python dependencies come from (the `[python]` section).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum PythonDeps {
    /// `uv.lock` next to `pyproject.toml`: `lock = "uv.lock"`.
    UvLock,
    /// A requirements file, relative to the project: `requirements = "..."`.
    Requirements(String),
    /// `pyproject.toml` without `uv.lock`: its `[project].dependencies`
    /// ([`Detection::pyproject_dependencies`]) are written as `packages`.
    Pyproject,
    /// Requirement strings a config lists (cog.yaml's `build.python_packages`,
    /// bentofile.yaml's `python.packages`), written as `packages`.
    Inline {
        /// Where they come from, e.g. "bentofile.yaml's python.packages".
        from: String,
        /// The requirement strings.
        packages: Vec<String>,
    },
    /// No dependencies found: nothing is installed.
    #[default]
    None,
}

/// What [`detect`] found in a project, with the flags applied: the content of `kiln.toml`.
#[derive(Clone, Debug, Default)]
pub struct Detection {
    /// `[project].name`: `pyproject.toml`'s `[project].name`, else the directory name,
    /// sanitized to `[a-z0-9][a-z0-9._-]*`.
    pub name: String,
    /// `[project].version`, from `pyproject.toml` (made a valid image tag).
    pub version: Option<String>,
    /// `[project].description`, from `pyproject.toml`.
    pub description: Option<String>,
    /// `[base].image`: `debian:bookworm` unless the Python version the project asks for
    /// is trixie's (3.13), or the flag.
    pub base: String,
    /// `[python].version`: set only when the project names one minor version
    /// (`.python-version`, or a `requires-python` that allows one minor) that the base
    /// provides, or by the flag. Otherwise the base's interpreter is used.
    pub python: Option<String>,
    /// Where the dependencies come from.
    pub deps: PythonDeps,
    /// Requirement strings of `pyproject.toml`'s `[project].dependencies`, written as
    /// `[python].packages` when [`Detection::deps`] is [`PythonDeps::Pyproject`].
    pub pyproject_dependencies: Vec<String>,
    /// Normalized names (PEP 503) of the dependencies found in `pyproject.toml`, the chosen
    /// requirements file, `uv.lock` or the inline packages, sorted.
    pub dependencies: Vec<String>,
    /// `[app].files`: the app's file and the local modules and paths it uses, as globs
    /// (`"app.py"`, `"src/**"`); `["**"]` when no app was found.
    pub app_files: Vec<String>,
    /// `[python].index-url` (bentofile.yaml's `python.index_url`).
    pub index_url: Option<String>,
    /// `[python].extra-index-url` (bentofile.yaml's `python.extra_index_url`).
    pub extra_index_urls: Vec<String>,
    /// `[app].command`.
    pub command: Option<Vec<String>>,
    /// `[app].env` entries the command needs (e.g. `GRADIO_SERVER_NAME`, `PYTHONPATH`).
    pub env: Vec<(String, String)>,
    /// `[app].ports` (one port).
    pub port: Option<u16>,
    /// `[app.healthcheck].path`: set only when the code defines a `/health` or `/healthz`
    /// route on the app, or the app's server has one of its own (Cog's `/health-check`,
    /// BentoML's `/readyz`).
    pub healthcheck: Option<String>,
    /// `[resources].gpus`: 1 when cog.yaml's `build.gpu` is true, else 0 (not written).
    pub gpus: u32,
    /// `[weights.NAME]` tables: (name, path relative to the project); `target` is left to
    /// its default.
    pub weights: Vec<(String, String)>,
    /// Debian packages for `[base].packages`: those the dependencies need (e.g. `libgomp1`),
    /// then those cog.yaml or bentofile.yaml list.
    pub packages_needed: Vec<String>,
    /// What was found, one human line each, e.g. "app: FastAPI app `app` in app.py (uvicorn)".
    pub detected: Vec<String>,
    /// What could not be found or needs a look, with what to edit, e.g.
    /// "no port found in the code: assumed 8000 (uvicorn's default); check \[app\].ports".
    pub missing: Vec<String>,
}
/// The base image used when nothing asks for another one.
const DEFAULT_BASE: &str = "debian:bookworm";

/// At most this many directory entries are looked at.
const MAX_ENTRIES: usize = 20_000;
/// Directories deeper than this are not walked.
const MAX_DEPTH: usize = 24;
/// Python sources larger than this are not scanned.
const MAX_SOURCE_BYTES: u64 = 1 << 20;
/// At most this much Python source is scanned in all.
const MAX_SOURCE_TOTAL: u64 = 32 << 20;
/// Bound for `pyproject.toml`, requirements files, `.python-version`, README, Dockerfile.
const MAX_TEXT_BYTES: u64 = 4 << 20;
/// Bound for `uv.lock`.
const MAX_LOCK_BYTES: u64 = 64 << 20;
/// Notes about skipped entries name at most this many paths.
const MAX_NOTED: usize = 5;

/// Directories of tests: no app candidates, no weights.
const TEST_DIRS: &[&str] = &["tests", "test", "testing"];

/// Looks at the project in `dir` and works out its `kiln.toml`, with `opts` applied.
///
/// Fails only when `dir` is not a readable directory; anything inside it that cannot be
/// read is skipped and noted in [`Detection::missing`].
pub fn detect(dir: &Path, opts: &InitOptions) -> Result<Detection> {
    detect_with_limit(dir, opts, MAX_ENTRIES)
}

fn detect_with_limit(dir: &Path, opts: &InitOptions, limit: usize) -> Result<Detection> {
    let io = |e: std::io::Error| Error::new(format!("{}: {e}", dir.display()));
    let meta = fs::metadata(dir).map_err(io)?;
    if !meta.is_dir() {
        return Err(Error::new(format!("{}: not a directory", dir.display())));
    }
    let root = dir.canonicalize().map_err(io)?;
    fs::read_dir(&root).map_err(io)?;
    let mut det = Detector::new(root, opts, limit);
    Ok(det.run())
}

#[cfg(test)]
mod tests;
