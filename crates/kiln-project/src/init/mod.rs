//! `kiln init`: look at an existing Python project and write a first `kiln.toml` and
//! `.kilnignore` for it.
//!
//! [`detect`] walks the project (bounded, never leaving it through symlinks), reads
//! `pyproject.toml`, `uv.lock`, requirements files and `.python-version`, scans the Python
//! sources for the app (a FastAPI, Starlette, Flask, Gradio or Streamlit app, a
//! `[project.scripts]` entry, a `__main__` block), for the port the code names and for a
//! health route, and finds model weights. It asks nothing: [`InitOptions`] override what
//! it finds. Odd input (unreadable or non-UTF-8 files, huge files, odd names, symlink
//! loops) is skipped, with a note, never a panic.
//!
//! [`render_toml`] and [`render_ignore`] turn the [`Detection`] into the two files; what
//! was found and what is left to the user are in [`Detection::detected`] and
//! [`Detection::missing`], for the command to print.

use crate::{Error, Result};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Write as _;
use std::fs;
use std::io::Read as _;
use std::path::{Path, PathBuf};

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
    /// requirements file and `uv.lock`, sorted.
    pub dependencies: Vec<String>,
    /// `[app].files`: the app's file and the local modules and paths it uses, as globs
    /// (`"app.py"`, `"src/**"`); `["**"]` when no app was found.
    pub app_files: Vec<String>,
    /// `[app].command`.
    pub command: Option<Vec<String>>,
    /// `[app].env` entries the command needs (e.g. `GRADIO_SERVER_NAME`, `PYTHONPATH`).
    pub env: Vec<(String, String)>,
    /// `[app].ports` (one port).
    pub port: Option<u16>,
    /// `[app.healthcheck].path`: set only when the code defines a `/health` or `/healthz`
    /// route on the app.
    pub healthcheck: Option<String>,
    /// `[weights.NAME]` tables: (name, path relative to the project); `target` is left to
    /// its default.
    pub weights: Vec<(String, String)>,
    /// Debian packages for `[base].packages` that the dependencies need (e.g. `libgomp1`).
    pub packages_needed: Vec<String>,
    /// What was found, one human line each, e.g. "app: FastAPI app `app` in app.py (uvicorn)".
    pub detected: Vec<String>,
    /// What could not be found or needs a look, with what to edit, e.g.
    /// "no port found in the code: assumed 8000 (uvicorn's default); check [app].ports".
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

/// File suffixes (lowercase, without the dot) of model weights.
const WEIGHT_SUFFIXES: &[&str] = &[
    "safetensors",
    "bin",
    "pt",
    "pth",
    "onnx",
    "gguf",
    "joblib",
    "pkl",
    "h5",
    "keras",
    "tflite",
];
/// Directories that hold weights (when they hold no Python code).
const WEIGHT_DIRS: &[&str] = &["models", "weights"];
/// Directories walked even when `.gitignore` lists them, since weights are often kept out
/// of git but belong in the image.
const GITIGNORED_WEIGHT_DIRS: &[&str] = &[
    "models",
    "weights",
    "model",
    "checkpoints",
    "ckpt",
    "artifacts",
];
/// Directories never walked (besides hidden ones, `*.egg-info` and virtual environments).
const SKIP_DIRS: &[&str] = &[
    "venv",
    "env",
    "node_modules",
    "__pycache__",
    "site-packages",
    "dist-packages",
    "build",
    "dist",
    "htmlcov",
    "wandb",
    "mlruns",
    "lightning_logs",
];
/// Directories of tests: no app candidates, no weights.
const TEST_DIRS: &[&str] = &["tests", "test", "testing"];
/// Directories whose apps are ranked below the others' and whose `__main__` blocks are
/// only reported.
const SIDE_DIRS: &[&str] = &[
    "examples",
    "example",
    "docs",
    "doc",
    "scripts",
    "notebooks",
    "benchmarks",
    "tutorials",
    "tools",
];
/// File names that mark the app, best first.
const APP_FILE_NAMES: &[&str] = &[
    "app.py",
    "main.py",
    "server.py",
    "api.py",
    "serve.py",
    "asgi.py",
    "wsgi.py",
    "streamlit_app.py",
    "run.py",
    "predict.py",
    "inference.py",
];
/// Python files that are never the app.
const NOT_APP_FILES: &[&str] = &[
    "setup.py",
    "conftest.py",
    "noxfile.py",
    "manage.py",
    "fabfile.py",
];

/// Debian releases kiln builds, with the Python they ship.
const SUITES: &[(&str, &str, [u32; 3])] = &[
    ("debian:bookworm", "3.11", [3, 11, 2]),
    ("debian:trixie", "3.13", [3, 13, 5]),
];

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

// ---------------------------------------------------------------------------------------
// The walk

/// One regular file of the project.
struct FileEntry {
    /// Relative path, `/`-separated.
    path: String,
    size: u64,
}

/// Directory names to skip because `.kilnignore` or `.gitignore` lists them.
#[derive(Default)]
struct IgnoreNames {
    /// Names that match at any depth.
    anywhere: BTreeSet<String>,
    /// Names that match at the top only (`/name`).
    top: BTreeSet<String>,
    /// Names from `.kilnignore` (kiln leaves them out of the image in any case).
    kiln: BTreeSet<String>,
}

impl IgnoreNames {
    fn read(root: &Path) -> Self {
        let mut names = IgnoreNames::default();
        for file in [".kilnignore", ".gitignore"] {
            let Ok(text) = read_text(&root.join(file), MAX_TEXT_BYTES) else {
                continue;
            };
            for line in text.lines() {
                let Some((name, anchored)) = simple_ignore_name(line) else {
                    continue;
                };
                if file == ".kilnignore" {
                    names.kiln.insert(name.clone());
                }
                if anchored {
                    names.top.insert(name);
                } else {
                    names.anywhere.insert(name);
                }
            }
        }
        names
    }

    fn matches(&self, name: &str, top: bool) -> bool {
        self.anywhere.contains(name) || (top && self.top.contains(name))
    }
}

/// The directory name an ignore-file line names, if it is a plain name (`data/`, `/out`,
/// `**/logs`): with whether it is anchored at the top.
fn simple_ignore_name(line: &str) -> Option<(String, bool)> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
        return None;
    }
    let line = line.strip_prefix("**/").unwrap_or(line);
    let anchored = line.starts_with('/');
    let name = line.trim_start_matches('/').trim_end_matches('/');
    let plain = !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains(['/', '*', '?', '[', '\\']);
    plain.then(|| (name.to_string(), anchored))
}

/// The files and directories of the project that the detection looks at.
#[derive(Default)]
struct Tree {
    /// Regular files (and symlinks to files inside the project), breadth first.
    files: Vec<FileEntry>,
    /// Index into `files` by path (sorted, for prefix ranges).
    by_path: BTreeMap<String, usize>,
    /// Indexes into `files` by parent directory (`""` for the root).
    by_dir: BTreeMap<String, Vec<usize>>,
    /// Walked directories (not the root), breadth first.
    dirs: Vec<String>,
    dir_set: BTreeSet<String>,
    /// Directories with a `.py` file somewhere below them.
    py_dirs: BTreeSet<String>,
    /// The walk stopped at the entry limit.
    truncated: bool,
    /// The entry limit.
    limit: usize,
    /// Directories named in `.gitignore` that were walked anyway because they may hold
    /// weights.
    gitignored_weights: Vec<String>,
    /// Entries skipped: (path, why).
    skipped: Vec<(String, String)>,
}

impl Tree {
    fn walk(root: &Path, ignore: &IgnoreNames, limit: usize) -> Tree {
        let mut tree = Tree {
            limit,
            ..Tree::default()
        };
        let mut queue = VecDeque::from([(root.to_path_buf(), String::new(), 0usize)]);
        let mut seen = 0usize;
        'walk: while let Some((abs, rel, depth)) = queue.pop_front() {
            let entries = match fs::read_dir(&abs) {
                Ok(rd) => rd,
                Err(e) => {
                    tree.skipped.push((display_dir(&rel), e.to_string()));
                    continue;
                }
            };
            let mut entries: Vec<fs::DirEntry> = entries.filter_map(Result::ok).collect();
            entries.sort_by_key(fs::DirEntry::file_name);
            for entry in entries {
                if seen >= limit {
                    tree.truncated = true;
                    break 'walk;
                }
                seen += 1;
                let name = match entry.file_name().into_string() {
                    Ok(name) => name,
                    Err(raw) => {
                        let shown = raw.to_string_lossy().into_owned();
                        tree.skipped
                            .push((join(&rel, &shown), "name is not UTF-8".to_string()));
                        continue;
                    }
                };
                if name.chars().any(char::is_control) {
                    tree.skipped.push((
                        join(&rel, &name.escape_debug().to_string()),
                        "odd name".into(),
                    ));
                    continue;
                }
                let path = join(&rel, &name);
                let Ok(kind) = entry.file_type() else {
                    tree.skipped.push((path, "unreadable".into()));
                    continue;
                };
                if kind.is_symlink() {
                    tree.symlink(root, &entry.path(), path);
                } else if kind.is_dir() {
                    let environment = ["pyvenv.cfg", "conda-meta"]
                        .iter()
                        .any(|m| entry.path().join(m).exists());
                    if skip_dir(&name) || environment {
                        continue;
                    }
                    if ignore.matches(&name, depth == 0) {
                        let weights = GITIGNORED_WEIGHT_DIRS.contains(&name.as_str());
                        if !weights || ignore.kiln.contains(&name) {
                            continue;
                        }
                        tree.gitignored_weights.push(path.clone());
                    }
                    if depth + 1 > MAX_DEPTH {
                        tree.skipped.push((display_dir(&path), "too deep".into()));
                        continue;
                    }
                    tree.dirs.push(path.clone());
                    queue.push_back((entry.path(), path, depth + 1));
                } else if kind.is_file() {
                    let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
                    tree.files.push(FileEntry { path, size });
                }
            }
        }
        for (i, f) in tree.files.iter().enumerate() {
            tree.by_path.insert(f.path.clone(), i);
            tree.by_dir
                .entry(parent(&f.path).to_string())
                .or_default()
                .push(i);
        }
        tree.dir_set = tree.dirs.iter().cloned().collect();
        for f in tree.files.iter().filter(|f| f.path.ends_with(".py")) {
            let mut dir = parent(&f.path);
            while !dir.is_empty() && tree.py_dirs.insert(dir.to_string()) {
                dir = parent(dir);
            }
        }
        tree
    }

    /// A symlink is kept only when it is a file inside the project.
    fn symlink(&mut self, root: &Path, abs: &Path, path: String) {
        let inside = abs
            .canonicalize()
            .is_ok_and(|target| target.starts_with(root));
        match fs::metadata(abs) {
            Ok(m) if m.is_file() && inside => self.files.push(FileEntry {
                path,
                size: m.len(),
            }),
            Ok(m) if m.is_dir() => self.skipped.push((
                display_dir(&path),
                "symlink to a directory, not followed".into(),
            )),
            Ok(m) if m.is_file() => self
                .skipped
                .push((path, "symlink to a file outside the project".into())),
            Ok(_) => {}
            Err(_) => self.skipped.push((path, "dangling symlink".into())),
        }
    }

    fn has_file(&self, path: &str) -> bool {
        self.by_path.contains_key(path)
    }

    fn has_dir(&self, path: &str) -> bool {
        self.dir_set.contains(path)
    }

    /// Files directly in `dir` (`""`: the root).
    fn files_in(&self, dir: &str) -> impl Iterator<Item = &FileEntry> + '_ {
        self.by_dir
            .get(dir)
            .into_iter()
            .flatten()
            .map(|i| &self.files[*i])
    }

    /// Files anywhere below `dir`, in path order.
    fn files_under(&self, dir: &str) -> impl Iterator<Item = &FileEntry> + '_ {
        // Paths below `dir` sort between "dir/" and "dir0" ('0' follows '/').
        let range = (!dir.is_empty()).then(|| (format!("{dir}/"), format!("{dir}0")));
        range
            .into_iter()
            .flat_map(move |(from, to)| self.by_path.range(from..to))
            .map(|(_, i)| &self.files[*i])
    }
}

fn skip_dir(name: &str) -> bool {
    name.starts_with('.') || name.ends_with(".egg-info") || SKIP_DIRS.contains(&name)
}

// ---------------------------------------------------------------------------------------
// Project metadata

/// What `pyproject.toml` says.
#[derive(Default)]
struct Pyproject {
    name: Option<String>,
    version: Option<String>,
    dynamic_version: bool,
    description: Option<String>,
    requires_python: Option<String>,
    dependencies: Vec<String>,
    /// Dependency names from `[tool.poetry.dependencies]`.
    poetry_deps: Vec<String>,
    poetry: bool,
    /// `[project.scripts]` (or `[tool.poetry.scripts]`): (name, "module:function").
    scripts: Vec<(String, String)>,
}

impl Pyproject {
    fn parse(text: &str) -> Result<Pyproject> {
        let doc: toml::Table = toml::from_str(text).map_err(|e| Error::new(e.message()))?;
        let mut py = Pyproject::default();
        let str_of = |t: &toml::Table, key: &str| {
            t.get(key).and_then(toml::Value::as_str).map(str::to_string)
        };
        let poetry = doc
            .get("tool")
            .and_then(|t| t.get("poetry"))
            .and_then(toml::Value::as_table);
        if let Some(project) = doc.get("project").and_then(toml::Value::as_table) {
            py.name = str_of(project, "name");
            py.version = str_of(project, "version");
            py.description = str_of(project, "description");
            py.requires_python = str_of(project, "requires-python");
            py.dynamic_version = project
                .get("dynamic")
                .and_then(toml::Value::as_array)
                .is_some_and(|a| a.iter().any(|v| v.as_str() == Some("version")));
            py.dependencies = strings(project.get("dependencies"));
            py.scripts = string_table(project.get("scripts"));
        }
        if let Some(poetry) = poetry {
            py.poetry = true;
            py.name = py.name.take().or_else(|| str_of(poetry, "name"));
            py.version = py.version.take().or_else(|| str_of(poetry, "version"));
            py.description = py
                .description
                .take()
                .or_else(|| str_of(poetry, "description"));
            if py.scripts.is_empty() {
                py.scripts = string_table(poetry.get("scripts"));
            }
            if let Some(deps) = poetry.get("dependencies").and_then(toml::Value::as_table) {
                for (name, spec) in deps {
                    if name == "python" {
                        if py.requires_python.is_none() {
                            py.requires_python = spec.as_str().map(str::to_string);
                        }
                    } else {
                        py.poetry_deps.push(normalize_name(name));
                    }
                }
            }
        }
        Ok(py)
    }
}

fn strings(v: Option<&toml::Value>) -> Vec<String> {
    v.and_then(toml::Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(toml::Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn string_table(v: Option<&toml::Value>) -> Vec<(String, String)> {
    v.and_then(toml::Value::as_table)
        .map(|t| {
            t.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// Package names in `uv.lock`.
fn uv_lock_names(text: &str) -> Vec<String> {
    if let Ok(doc) = toml::from_str::<toml::Table>(text) {
        if let Some(packages) = doc.get("package").and_then(toml::Value::as_array) {
            return packages
                .iter()
                .filter_map(|p| p.get("name")?.as_str())
                .map(normalize_name)
                .collect();
        }
    }
    // Not TOML we understand: the `name = "..."` lines after `[[package]]`.
    let mut names = Vec::new();
    let mut in_package = false;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_package = line == "[[package]]";
        } else if let (true, Some(rest)) = (in_package, line.strip_prefix("name = \"")) {
            if let Some(name) = rest.strip_suffix('"') {
                names.push(normalize_name(name));
            }
            in_package = false;
        }
    }
    names
}

/// The name of a requirement line (`torch>=2; python_version>"3"`, `fastapi[standard]`,
/// `pkg @ https://...`), with its extras.
fn requirement_name(line: &str) -> Option<(String, Vec<String>)> {
    let line = line.trim();
    if let Some(egg) = line.split("#egg=").nth(1) {
        let name: String = egg.chars().take_while(|c| is_name_char(*c)).collect();
        return (!name.is_empty()).then(|| (normalize_name(&name), Vec::new()));
    }
    let name: String = line.chars().take_while(|c| is_name_char(*c)).collect();
    if name.is_empty() || !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return None;
    }
    let rest = line[name.len()..].trim_start();
    let extras = rest
        .strip_prefix('[')
        .and_then(|r| r.split_once(']'))
        .map(|(e, _)| e.split(',').map(|x| x.trim().to_lowercase()).collect())
        .unwrap_or_default();
    Some((normalize_name(&name), extras))
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')
}

/// PEP 503 normalization: lowercase, runs of `-_.` become `-`.
fn normalize_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.trim().chars() {
        if matches!(c, '-' | '_' | '.') {
            if !out.ends_with('-') {
                out.push('-');
            }
        } else {
            out.push(c.to_ascii_lowercase());
        }
    }
    out
}

/// A name for `[project].name`: lowercase, `[a-z0-9]` runs joined by single `.`, `_` or
/// `-`; `"app"` when nothing is left.
fn sanitize_name(raw: &str) -> String {
    let mut out = String::new();
    let mut sep: Option<char> = None;
    for c in raw.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            if let Some(s) = sep.take() {
                if !out.is_empty() {
                    out.push(s);
                }
            }
            out.push(c);
        } else {
            let s = if matches!(c, '.' | '_' | '-') { c } else { '-' };
            sep = Some(match sep {
                Some(prev) if prev != s => '-',
                _ => s,
            });
        }
    }
    out.truncate(128);
    let out = out.trim_end_matches(['.', '_', '-']);
    if out.is_empty() {
        "app".to_string()
    } else {
        out.to_string()
    }
}

/// A name for a `[weights.NAME]` table: `[a-z0-9_-]`, never empty.
fn sanitize_key(raw: &str) -> String {
    let mut out = String::new();
    for c in raw.chars().flat_map(char::to_lowercase) {
        let c = if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' {
            c
        } else {
            '-'
        };
        if !(c == '-' && (out.is_empty() || out.ends_with('-'))) {
            out.push(c);
        }
    }
    let out = out.trim_end_matches('-').to_string();
    if out.is_empty() {
        "weights".to_string()
    } else {
        out
    }
}

/// `version` made a valid image tag (`[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`).
fn sanitize_tag(version: &str) -> String {
    let mut tag: String = version
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '-'
            }
        })
        .take(128)
        .collect();
    while tag.starts_with(['.', '-']) {
        tag.remove(0);
    }
    tag
}

// ---------------------------------------------------------------------------------------
// Python versions

/// A PEP 440 (or Poetry `^`/`~`) version specifier, evaluated on a release version.
/// `None` when the specifier is not understood.
fn spec_allows(spec: &str, version: [u32; 3]) -> Option<bool> {
    let mut any = false;
    for clause in spec.split(',') {
        let clause = clause.trim();
        if clause.is_empty() {
            continue;
        }
        any = true;
        if !clause_allows(clause, version)? {
            return Some(false);
        }
    }
    any.then_some(true)
}

fn clause_allows(clause: &str, v: [u32; 3]) -> Option<bool> {
    let ops = ["===", "~=", "==", "!=", "<=", ">=", "<", ">", "^", "~", "="];
    let (op, rest) = match ops.iter().find(|op| clause.starts_with(**op)) {
        Some(op) => (*op, clause[op.len()..].trim()),
        None => ("==", clause),
    };
    let (rest, wildcard) = match rest.strip_suffix(".*") {
        Some(r) => (r, true),
        None => (rest, false),
    };
    let parts: Vec<u32> = rest
        .split('.')
        .map(|p| p.trim().parse().ok())
        .collect::<Option<Vec<u32>>>()?;
    if parts.is_empty() || parts.len() > 4 {
        return None;
    }
    let padded = [
        parts[0],
        parts.get(1).copied().unwrap_or(0),
        parts.get(2).copied().unwrap_or(0),
    ];
    let prefix = |n: usize| v.iter().zip(&parts).take(n).all(|(a, b)| a == b);
    Some(match op {
        "==" | "===" | "=" if wildcard => prefix(parts.len()),
        "==" | "===" | "=" => v == padded,
        "!=" if wildcard => !prefix(parts.len()),
        "!=" => v != padded,
        "<=" => v <= padded,
        ">=" => v >= padded,
        "<" => v < padded,
        ">" => v > padded,
        "~=" if parts.len() >= 2 => v >= padded && prefix(parts.len() - 1),
        "^" => {
            let first_nonzero = parts
                .iter()
                .position(|p| *p != 0)
                .unwrap_or(parts.len() - 1);
            v >= padded && prefix(first_nonzero + 1)
        }
        "~" => v >= padded && prefix(parts.len().clamp(1, 2)),
        _ => return None,
    })
}

/// The one `3.X` minor version a specifier allows, if it allows exactly one.
fn spec_single_minor(spec: &str) -> Option<String> {
    let mut allowed = (6..=30).filter(|m| {
        [0, 50]
            .iter()
            .any(|patch| spec_allows(spec, [3, *m, *patch]) == Some(true))
    });
    let first = allowed.next()?;
    allowed.next().is_none().then(|| format!("3.{first}"))
}

/// `3.X` from a `.python-version` line (`3.11`, `3.11.4`, `cpython-3.11.4-linux`).
fn minor_of(raw: &str) -> Option<String> {
    let raw = raw.trim();
    let start = raw.find("3.")?;
    let mut parts = raw[start..].split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?;
    let minor = parts.next()?;
    (major == "3" && !minor.is_empty() && minor.len() <= 3).then(|| format!("3.{minor}"))
}

/// The Python of a `debian:SUITE` base kiln builds.
fn suite_python(base: &str) -> Option<(&'static str, [u32; 3])> {
    SUITES
        .iter()
        .find(|(image, _, _)| *image == base)
        .map(|(_, minor, full)| (*minor, *full))
}

/// The `debian:SUITE` base that ships Python `minor`.
fn suite_for(minor: &str) -> Option<&'static str> {
    SUITES
        .iter()
        .find(|(_, m, _)| *m == minor)
        .map(|(image, _, _)| *image)
}

// ---------------------------------------------------------------------------------------
// Python sources

/// A web framework app object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Framework {
    FastApi,
    Starlette,
    Flask,
}

impl Framework {
    fn label(self) -> &'static str {
        match self {
            Framework::FastApi => "FastAPI",
            Framework::Starlette => "Starlette",
            Framework::Flask => "Flask",
        }
    }

    fn rank(self) -> u8 {
        match self {
            Framework::FastApi | Framework::Starlette => 0,
            Framework::Flask => 1,
        }
    }
}

/// `app = FastAPI(...)`, or a factory function that makes one.
#[derive(Clone, Debug)]
struct AppDef {
    framework: Framework,
    var: String,
    /// The top-level function the assignment is in.
    factory: Option<String>,
}

/// A string literal that may name a path.
#[derive(Debug)]
struct Literal {
    text: String,
    /// The line is about paths (`Path(`, `open(`, `join(`, ...).
    pathy: bool,
    /// The line builds on `__file__`: the path is relative to the file's directory.
    file_relative: bool,
}

/// What a Python file shows.
#[derive(Default, Debug)]
struct PyScan {
    apps: Vec<AppDef>,
    gradio: bool,
    streamlit: bool,
    main_block: bool,
    /// (port, line)
    ports: Vec<(u16, usize)>,
    /// (decorated object or `None` for `Route(...)`, path)
    health: Vec<(Option<String>, String)>,
    /// Dotted module names of absolute imports.
    imports: Vec<String>,
    /// String literals that look like paths.
    literals: Vec<Literal>,
    /// The code downloads models at run time.
    downloads: bool,
}

/// Each physical line with comments and the insides of triple-quoted strings removed
/// (one-line strings are kept).
fn code_lines(src: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut triple: Option<char> = None;
    for line in src.lines() {
        let chars: Vec<char> = line.chars().collect();
        let mut code = String::with_capacity(line.len());
        let mut single: Option<char> = None;
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            let tripled = |q: char| chars.get(i + 1) == Some(&q) && chars.get(i + 2) == Some(&q);
            if let Some(q) = triple {
                if c == '\\' {
                    i += 2;
                } else if c == q && tripled(q) {
                    triple = None;
                    code.push_str("\"\"");
                    i += 3;
                } else {
                    i += 1;
                }
                continue;
            }
            if let Some(q) = single {
                code.push(c);
                if c == '\\' {
                    if let Some(&next) = chars.get(i + 1) {
                        code.push(next);
                    }
                    i += 2;
                    continue;
                }
                if c == q {
                    single = None;
                }
                i += 1;
                continue;
            }
            match c {
                '#' => break,
                '"' | '\'' if tripled(c) => {
                    triple = Some(c);
                    i += 3;
                }
                '"' | '\'' => {
                    single = Some(c);
                    code.push(c);
                    i += 1;
                }
                _ => {
                    code.push(c);
                    i += 1;
                }
            }
        }
        out.push(code);
    }
    out
}

/// The contents of the one-line string literals on a code line.
fn string_literals(line: &str) -> Vec<&str> {
    let bytes = line.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let q = bytes[i];
        if q != b'"' && q != b'\'' {
            i += 1;
            continue;
        }
        let start = i + 1;
        let mut j = start;
        while j < bytes.len() && bytes[j] != q {
            j += if bytes[j] == b'\\' { 2 } else { 1 };
        }
        if j >= bytes.len() {
            break;
        }
        out.push(&line[start..j]);
        i = j + 1;
    }
    out
}

fn is_ident_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

fn is_ident_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80
}

/// Where `needle` (ASCII) first occurs in `hay`, ignoring ASCII case.
fn find_ci(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len())
        .position(|w| w.eq_ignore_ascii_case(needle))
}

fn is_identifier(s: &str) -> bool {
    s.chars()
        .next()
        .is_some_and(|c| c.is_alphabetic() || c == '_')
        && s.chars().all(is_ident_char)
}

/// `name` of a top-level `def name(` / `async def name(`.
fn def_name(line: &str) -> Option<String> {
    let rest = line
        .strip_prefix("async ")
        .unwrap_or(line)
        .trim_start()
        .strip_prefix("def ")?;
    let name: String = rest
        .trim_start()
        .chars()
        .take_while(|c| is_ident_char(*c))
        .collect();
    (!name.is_empty()).then_some(name)
}

/// `(lhs, rhs)` of a plain assignment statement.
fn split_assignment(line: &str) -> Option<(&str, &str)> {
    let bytes = line.as_bytes();
    let i = (0..bytes.len()).find(|&i| {
        bytes[i] == b'='
            && bytes.get(i + 1) != Some(&b'=')
            && !(i > 0 && b"=!<>:+-*/%&|^@".contains(&bytes[i - 1]))
    })?;
    Some((&line[..i], &line[i + 1..]))
}

/// `app = FastAPI(`, `api: FastAPI = fastapi.FastAPI(`, `server = Flask(`.
fn app_assignment(line: &str) -> Option<(Framework, String)> {
    let (lhs, rhs) = split_assignment(line)?;
    let var = lhs.split(':').next()?.trim();
    if !is_identifier(var) {
        return None;
    }
    let rhs = rhs.trim_start();
    let callee = rhs[..rhs.find('(')?].trim();
    if !callee.split('.').all(is_identifier) {
        return None;
    }
    let framework = match callee.rsplit('.').next()? {
        "FastAPI" => Framework::FastApi,
        "Starlette" => Framework::Starlette,
        "Flask" => Framework::Flask,
        _ => return None,
    };
    Some((framework, var.to_string()))
}

/// Dotted module names a line imports (absolute imports only).
fn imports_of(line: &str) -> Vec<String> {
    if let Some(rest) = line.strip_prefix("import ") {
        return rest
            .split(',')
            .filter_map(|part| part.split_whitespace().next())
            .filter(|m| m.split('.').all(is_identifier))
            .map(str::to_string)
            .collect();
    }
    if let Some(rest) = line.strip_prefix("from ") {
        if let Some(m) = rest.split_whitespace().next() {
            if m != "__future__" && m.split('.').all(is_identifier) {
                return vec![m.to_string()];
            }
        }
    }
    Vec::new()
}

fn is_health(path: &str) -> bool {
    matches!(path.trim_end_matches('/'), "/health" | "/healthz")
}

/// A `/health` or `/healthz` route: `@app.get("/health")`, `app.add_api_route("/healthz",`,
/// `Route("/health", ...)`.
fn health_route(line: &str) -> Option<(Option<String>, String)> {
    let first = |s: &str| string_literals(s).first().map(|l| l.to_string());
    if let Some(rest) = line.strip_prefix('@') {
        let (obj, call) = rest.split_once('.')?;
        if !is_identifier(obj.trim()) || !call.contains('(') {
            return None;
        }
        let path = first(call)?;
        return is_health(&path).then(|| (Some(obj.trim().to_string()), path));
    }
    for marker in [".add_api_route(", ".add_url_rule(", ".add_route("] {
        if let Some(i) = line.find(marker) {
            let obj: String = line[..i]
                .chars()
                .rev()
                .take_while(|c| is_ident_char(*c))
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            let path = first(&line[i..])?;
            return (is_health(&path) && !obj.is_empty()).then_some((Some(obj), path));
        }
    }
    let i = line.find("Route(")?;
    if line[..i].ends_with(|c: char| is_ident_char(c) || c == '.') {
        return None;
    }
    let path = first(&line[i..])?;
    is_health(&path).then_some((None, path))
}

/// Names whose assignment (or keyword argument in a server call) gives the port.
const PORT_NAMES: &[&str] = &[
    "port",
    "PORT",
    "server_port",
    "SERVER_PORT",
    "app_port",
    "APP_PORT",
    "http_port",
    "HTTP_PORT",
    "listen_port",
    "LISTEN_PORT",
];
/// Environment variables whose default in the code gives the port.
const PORT_ENV: &[&str] = &[
    "PORT",
    "APP_PORT",
    "SERVER_PORT",
    "HTTP_PORT",
    "GRADIO_SERVER_PORT",
    "STREAMLIT_SERVER_PORT",
];
/// Calls whose `port=` keyword is the server's.
const SERVER_CALLS: &[&str] = &[
    "run",
    "launch",
    "serve",
    "run_app",
    "run_simple",
    "run_server",
    "start_server",
    "Config",
    "listen",
];

/// Where the `(` of a server call (`uvicorn.run(`, `demo.launch(`) on the line is.
fn server_call_start(line: &str) -> Option<usize> {
    if !line.contains('(') {
        return None;
    }
    SERVER_CALLS.iter().find_map(|name| {
        let mut from = 0;
        while let Some(pos) = line[from..].find(name) {
            let i = from + pos;
            from = i + name.len();
            if line[from..].starts_with('(') && !line[..i].ends_with(is_ident_char) {
                return Some(from);
            }
        }
        None
    })
}

fn paren_balance(s: &str) -> i32 {
    s.chars().fold(0, |n, c| match c {
        '(' => n + 1,
        ')' => n - 1,
        _ => n,
    })
}

/// A port number at the start of `s` (digits not followed by more of a word).
fn leading_port(s: &str) -> Option<u16> {
    let digits: &str = &s[..s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len())];
    if digits.is_empty() || digits.len() > 5 {
        return None;
    }
    if s[digits.len()..].starts_with(|c: char| c.is_ascii_alphanumeric() || c == '.' || c == '_') {
        return None;
    }
    digits.parse::<u16>().ok().filter(|p| *p > 0)
}

/// The port in `= 8000`, `: int = 8000`, `=int("8000")` after a port name.
fn assigned_port(after: &str) -> Option<u16> {
    let mut s = after.trim_start();
    if let Some(rest) = s.strip_prefix(':') {
        s = &rest[rest.find('=')?..];
    }
    let rest = s.strip_prefix('=')?;
    if rest.starts_with('=') {
        return None;
    }
    let rest = rest.trim_start();
    let rest = rest.strip_prefix("int(").unwrap_or(rest).trim_start();
    leading_port(rest.trim_start_matches(['"', '\'']))
}

/// Ports a Python code line names.
fn python_line_ports(line: &str, in_server_call: bool) -> Vec<u16> {
    let mut out = Vec::new();
    if find_ci(line.as_bytes(), b"port").is_none() && !line.contains("0.0.0.0:") {
        return out;
    }
    let statement = |prefix: &str| {
        let p = prefix.trim();
        p.is_empty() || p == "self."
    };
    // Identifiers containing "port": the names of PORT_NAMES, and PORT_ENV in quotes.
    let bytes = line.as_bytes();
    let mut at = 0;
    while let Some(pos) = find_ci(&bytes[at..], b"port") {
        let hit = at + pos;
        let mut start = hit;
        while start > 0 && is_ident_byte(bytes[start - 1]) {
            start -= 1;
        }
        let mut end = hit + 4;
        while end < bytes.len() && is_ident_byte(bytes[end]) {
            end += 1;
        }
        at = end;
        if !line.is_char_boundary(start) || !line.is_char_boundary(end) {
            continue;
        }
        let (before, name, after) = (&line[..start], &line[start..end], &line[end..]);
        if PORT_NAMES.contains(&name) && (in_server_call || statement(before)) {
            out.extend(assigned_port(after));
        }
        if PORT_ENV.contains(&name) {
            let quote = before
                .chars()
                .next_back()
                .filter(|c| matches!(c, '"' | '\''));
            let rest = quote.and_then(|q| after.strip_prefix(q));
            if let Some(rest) = rest.and_then(|r| r.trim_start().strip_prefix(',')) {
                out.extend(leading_port(
                    rest.trim_start().trim_start_matches(['"', '\'']),
                ));
            }
        }
    }
    if line.contains("\"--port\"") || line.contains("'--port'") {
        if let Some(i) = line.find("default=") {
            out.extend(leading_port(line[i + 8..].trim_start_matches(['"', '\''])));
        }
    }
    if let Some(i) = line.find("0.0.0.0:") {
        out.extend(leading_port(&line[i + 8..]));
    }
    out
}

/// Ports a command line or config line names (Procfile, Dockerfile, README, scripts):
/// `--port 8000`, `--server.port=8501`, `EXPOSE 8000`, `-p 8080:8000`, `--bind 0.0.0.0:8000`,
/// `PORT=8000`, `${PORT:-8000}`, `internal_port = 8080`.
fn text_line_ports(line: &str) -> Vec<u16> {
    let tokens: Vec<&str> = line
        .split(|c: char| c.is_whitespace() || matches!(c, ',' | '[' | ']' | '"' | '\'' | '`'))
        .filter(|t| !t.is_empty())
        .collect();
    let mut out = Vec::new();
    let after_colon = |t: &str| t.rsplit(':').next().and_then(leading_port);
    for (i, t) in tokens.iter().enumerate() {
        let next = tokens.get(i + 1).copied().unwrap_or("");
        let flag_value = |flag: &str| t.strip_prefix(flag).and_then(|r| r.strip_prefix('='));
        for flag in ["--port", "--server.port", "--server_port"] {
            if *t == flag {
                out.extend(leading_port(next));
            } else if let Some(v) = flag_value(flag) {
                out.extend(leading_port(v));
            }
        }
        match *t {
            "EXPOSE" | "expose" => out.extend(leading_port(next.split('/').next().unwrap_or(""))),
            "-p" | "--publish" => out.extend(after_colon(next.split('/').next().unwrap_or(""))),
            "-b" | "--bind" => out.extend(after_colon(next)),
            "internal_port" | "internal_port=" => {
                out.extend(
                    leading_port(next.trim_start_matches('='))
                        .or_else(|| tokens.get(i + 2).and_then(|n| leading_port(n))),
                );
            }
            "PORT" if i > 0 && tokens[i - 1] == "ENV" => out.extend(leading_port(next)),
            _ => {}
        }
        if let Some(v) = t
            .strip_prefix("PORT=")
            .or_else(|| t.strip_prefix("ENV PORT="))
        {
            out.extend(leading_port(v));
        }
        if let Some(i) = t.find(":-") {
            if t[..i].ends_with("PORT") {
                out.extend(leading_port(&t[i + 2..]));
            }
        }
        if let Some(i) = t.find("0.0.0.0:") {
            out.extend(leading_port(&t[i + 8..]));
        }
    }
    out
}

/// Markers of Gradio UIs.
const GRADIO_UI: &[&str] = &[
    "gr.Interface(",
    "gr.Blocks(",
    "gr.ChatInterface(",
    "gradio.Interface(",
    "gradio.Blocks(",
    "gradio.ChatInterface(",
];
/// Calls that download models at run time.
const DOWNLOADS: &[&str] = &[
    "from_pretrained(",
    "hf_hub_download(",
    "snapshot_download(",
    "SentenceTransformer(",
    "torch.hub.load(",
];
/// Words that make a line about paths (for directory literals).
const PATH_WORDS: &[&str] = &[
    "Path",
    "path",
    "open(",
    "join(",
    "dir",
    "folder",
    "Templates(",
    "StaticFiles(",
    "glob",
    "load",
    "read_",
];

fn scan_python(src: &str) -> PyScan {
    let mut scan = PyScan::default();
    let mut def: Option<String> = None;
    let mut call_depth = 0i32;
    let (mut gradio_ui, mut gradio_launch) = (false, false);
    for (index, line) in code_lines(src).iter().enumerate() {
        let t = line.trim();
        if t.is_empty() {
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        if indent == 0 {
            def = def_name(t);
        }
        scan.imports.extend(imports_of(t));
        if t.starts_with("import streamlit") || t.starts_with("from streamlit") {
            scan.streamlit = true;
        }
        if let Some((framework, var)) = app_assignment(t) {
            let factory = if indent > 0 { def.clone() } else { None };
            scan.apps.push(AppDef {
                framework,
                var,
                factory,
            });
        }
        if t.starts_with("if") && t.contains("__name__") && t.contains("__main__") {
            scan.main_block = true;
        }
        let call = t.contains('(');
        gradio_ui |= call && GRADIO_UI.iter().any(|m| t.contains(m));
        gradio_launch |= call && t.contains(".launch(");
        if call {
            scan.health.extend(health_route(t));
        }
        let start = server_call_start(t);
        let in_call = call_depth > 0 || start.is_some();
        if call_depth > 0 {
            call_depth = (call_depth + paren_balance(t)).max(0);
        } else if let Some(i) = start {
            call_depth = paren_balance(&t[i..]).max(0);
        }
        scan.ports.extend(
            python_line_ports(t, in_call)
                .into_iter()
                .map(|p| (p, index + 1)),
        );
        let literals: Vec<&str> = string_literals(t)
            .into_iter()
            .filter(|l| looks_like_path(l))
            .collect();
        if !literals.is_empty() {
            let pathy = PATH_WORDS.iter().any(|w| t.contains(w));
            let file_relative = t.contains("__file__");
            scan.literals.extend(literals.into_iter().map(|l| Literal {
                text: l.to_string(),
                pathy,
                file_relative,
            }));
        }
        scan.downloads |= call && DOWNLOADS.iter().any(|m| t.contains(m));
    }
    scan.gradio = gradio_ui && gradio_launch;
    scan
}

fn looks_like_path(lit: &str) -> bool {
    (1..=200).contains(&lit.len())
        && lit.chars().any(|c| c.is_alphanumeric())
        && !lit.chars().any(|c| c.is_whitespace() || c.is_control())
        && !lit.contains("://")
        && !lit.contains(['*', '{', '%', '\\'])
        && !lit.starts_with('/')
}

// ---------------------------------------------------------------------------------------
// The app

/// What runs in the container.
#[derive(Clone, Debug)]
enum AppKind {
    Web(AppDef),
    Gradio,
    Streamlit,
    /// `[project.scripts]`: name, `module:function`.
    Script(String, String),
    /// `if __name__ == "__main__":` (or `pkg/__main__.py`).
    Main,
}

#[derive(Clone, Debug)]
struct Candidate {
    kind: AppKind,
    /// The Python file (empty for a script entry not found in the project).
    file: String,
    /// Lower is better.
    key: (u8, u8, usize, usize, String),
    guessed: bool,
}

impl Candidate {
    fn describe(&self) -> String {
        match &self.kind {
            AppKind::Web(app) => match &app.factory {
                Some(f) => format!(
                    "{} app factory `{f}()` in {}",
                    app.framework.label(),
                    self.file
                ),
                None => format!(
                    "{} app `{}` in {}",
                    app.framework.label(),
                    app.var,
                    self.file
                ),
            },
            AppKind::Gradio => format!("Gradio app in {}", self.file),
            AppKind::Streamlit => format!("Streamlit app {}", self.file),
            AppKind::Script(name, target) => {
                format!("[project.scripts] entry `{name}` ({target})")
            }
            AppKind::Main if self.file.ends_with("__main__.py") => {
                format!("package __main__ {}", self.file)
            }
            AppKind::Main => format!("__main__ block in {}", self.file),
        }
    }

    fn is_web(&self) -> bool {
        matches!(
            self.kind,
            AppKind::Web(_) | AppKind::Gradio | AppKind::Streamlit
        )
    }
}

/// How the chosen app's module is imported.
#[derive(Clone, Debug, Default)]
struct ModulePath {
    /// Directory to put on `sys.path`, when not the project root.
    app_dir: Option<String>,
    /// Dotted module name.
    module: String,
}

// ---------------------------------------------------------------------------------------
// The detector

struct Detector<'a> {
    root: PathBuf,
    opts: &'a InitOptions,
    ignore: IgnoreNames,
    tree: Tree,
    pyproject: Option<Pyproject>,
    sources: BTreeMap<String, PyScan>,
    dep_names: BTreeSet<String>,
    deps_known: bool,
    weights: Vec<(String, String)>,
    /// The Python files of the app (the app file and what it imports), in visit order.
    closure: Vec<String>,
    skipped: Vec<(String, String)>,
    d: Detection,
}

impl<'a> Detector<'a> {
    fn new(root: PathBuf, opts: &'a InitOptions, limit: usize) -> Self {
        let ignore = IgnoreNames::read(&root);
        let mut tree = Tree::walk(&root, &ignore, limit);
        let skipped = std::mem::take(&mut tree.skipped);
        Detector {
            root,
            opts,
            ignore,
            tree,
            pyproject: None,
            sources: BTreeMap::new(),
            dep_names: BTreeSet::new(),
            deps_known: false,
            weights: Vec::new(),
            closure: Vec::new(),
            skipped,
            d: Detection::default(),
        }
    }

    fn run(&mut self) -> Detection {
        if self.tree.truncated {
            self.d.missing.push(format!(
                "the project has more than {} entries: stopped looking after them; check the detections",
                self.tree.limit
            ));
        }
        self.read_pyproject();
        self.project();
        self.dependencies();
        self.python_and_base();
        self.find_weights();
        self.scan_sources();
        self.app();
        self.packages();
        self.note_skipped();
        let mut d = std::mem::take(&mut self.d);
        d.dependencies = self.dep_names.iter().cloned().collect();
        d.weights = self.weights.clone();
        d
    }

    fn detected(&mut self, line: impl Into<String>) {
        self.d.detected.push(line.into());
    }

    fn missing(&mut self, line: impl Into<String>) {
        self.d.missing.push(line.into());
    }

    /// A text file of the project (a regular file, within `limit`).
    fn text(&mut self, rel: &str, limit: u64) -> Option<String> {
        match read_text(&self.root.join(rel), limit) {
            Ok(text) => Some(text),
            Err(e) => {
                self.skipped.push((rel.to_string(), e.to_string()));
                None
            }
        }
    }

    fn read_pyproject(&mut self) {
        if !self.tree.has_file("pyproject.toml") {
            return;
        }
        let Some(text) = self.text("pyproject.toml", MAX_TEXT_BYTES) else {
            return;
        };
        match Pyproject::parse(&text) {
            Ok(py) => self.pyproject = Some(py),
            Err(e) => self.missing(format!(
                "pyproject.toml is not valid TOML ({}): ignored",
                one_line(&e.to_string())
            )),
        }
    }

    // --- [project] -------------------------------------------------------------------

    fn project(&mut self) {
        let py_name = self.pyproject.as_ref().and_then(|p| p.name.clone());
        let (raw, from) = if let Some(name) = &self.opts.name {
            (name.clone(), "the --name flag")
        } else if let Some(name) = py_name {
            (name, "pyproject.toml")
        } else {
            let dir = self
                .root
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            (dir, "the directory name")
        };
        self.d.name = sanitize_name(&raw);
        if self.d.name == raw {
            self.detected(format!("name: {} (from {from})", self.d.name));
        } else {
            self.detected(format!(
                "name: {} (from {from}: {:?}, made an image name)",
                self.d.name,
                one_line(&raw)
            ));
        }
        let Some(py) = &self.pyproject else {
            return;
        };
        let (version, dynamic) = (py.version.clone(), py.dynamic_version);
        self.d.description = py.description.clone().filter(|s| !s.trim().is_empty());
        match version {
            Some(v) => {
                let tag = sanitize_tag(&v);
                if tag.is_empty() {
                    self.missing(format!(
                        "pyproject.toml's version {:?} is no image tag: set [project].version",
                        one_line(&v)
                    ));
                } else {
                    if tag != v {
                        self.detected(format!(
                            "version: {tag} (pyproject.toml's {:?} made an image tag)",
                            one_line(&v)
                        ));
                    } else {
                        self.detected(format!("version: {tag} (from pyproject.toml)"));
                    }
                    self.d.version = Some(tag);
                }
            }
            None if dynamic => self.missing(
                "pyproject.toml's version is dynamic: set [project].version for the image tag",
            ),
            None => {}
        }
    }

    // --- [python] dependencies ---------------------------------------------------------

    fn dependencies(&mut self) {
        let has_pyproject = self.tree.has_file("pyproject.toml");
        let has_lock = self.tree.has_file("uv.lock");
        let requirements = self.pick_requirements();
        if let Some(py) = &self.pyproject {
            let mut names: Vec<String> = py
                .dependencies
                .iter()
                .filter_map(|r| requirement_name(r))
                .flat_map(|(name, extras)| implied(&name, &extras))
                .collect();
            names.extend(py.poetry_deps.iter().cloned());
            self.deps_known |= !py.dependencies.is_empty() || !py.poetry_deps.is_empty();
            self.dep_names.extend(names);
        }
        if has_lock && has_pyproject {
            self.d.deps = PythonDeps::UvLock;
            self.detected(
                "python dependencies: uv.lock (installed exactly, without the dev group)",
            );
            if let Some(text) = self.text("uv.lock", MAX_LOCK_BYTES) {
                let names = uv_lock_names(&text);
                self.deps_known |= !names.is_empty();
                self.dep_names.extend(names);
            }
            if let Some(req) = &requirements {
                self.detected(format!("{req} is there too; uv.lock is used"));
            }
            return;
        }
        if has_lock {
            self.missing("uv.lock without pyproject.toml: not used");
        }
        if let Some(req) = requirements {
            self.detected(format!(
                "python dependencies: {req} (resolved by uv into kiln.lock)"
            ));
            let mut names = BTreeSet::new();
            self.requirement_names(&req, 0, &mut names);
            self.deps_known = true;
            self.dep_names.extend(names);
            if has_pyproject {
                self.detected(format!(
                    "pyproject.toml has no uv.lock; {req} is used for the dependencies"
                ));
            }
            self.d.deps = PythonDeps::Requirements(req);
            return;
        }
        if let Some(py) = &self.pyproject {
            self.d.deps = PythonDeps::Pyproject;
            self.d.pyproject_dependencies = py.dependencies.clone();
            let poetry = py.poetry && py.dependencies.is_empty();
            let count = py.dependencies.len();
            if poetry {
                self.missing(
                    "a Poetry project without [project].dependencies: export them (`poetry export -f requirements.txt --output requirements.txt`) and set [python].requirements, or move to uv (`uv lock`)",
                );
            } else {
                self.detected(format!(
                    "python dependencies: pyproject.toml's {count} dependencies, as [python].packages"
                ));
                self.missing(
                    "pyproject.toml has no uv.lock: run `uv lock` and set [python].lock = \"uv.lock\" (until then [python].packages lists its dependencies)",
                );
            }
            return;
        }
        self.d.deps = PythonDeps::None;
        let mut hint = String::from(
            "no Python dependencies found (no uv.lock, requirements.txt or pyproject.toml): add requirements.txt or set [python].packages",
        );
        if self.tree.has_file("Pipfile") {
            hint.push_str("; for the Pipfile: `pipenv requirements > requirements.txt`");
        }
        if ["environment.yml", "environment.yaml"]
            .iter()
            .any(|f| self.tree.has_file(f))
        {
            hint.push_str(
                "; environment.yml (conda) is not read: list its pip packages in requirements.txt",
            );
        }
        self.missing(hint);
    }

    /// `requirements.txt`, else the first `requirements*.txt` (or `requirements/*.txt`)
    /// that is not for development, else `requirements.in`, else a `requirements.txt` one
    /// level down.
    fn pick_requirements(&self) -> Option<String> {
        if self.tree.has_file("requirements.txt") {
            return Some("requirements.txt".into());
        }
        let dev = [
            "dev",
            "develop",
            "development",
            "test",
            "tests",
            "testing",
            "lint",
            "linting",
            "doc",
            "docs",
            "ci",
            "typing",
            "mypy",
            "format",
            "style",
            "bench",
            "benchmark",
            "benchmarks",
            "notebook",
            "notebooks",
            "jupyter",
            "local",
        ];
        let preferred = [
            "prod",
            "production",
            "deploy",
            "serve",
            "serving",
            "inference",
            "runtime",
            "app",
            "base",
            "main",
            "common",
            "core",
        ];
        let mut found: Vec<(usize, usize, String)> = Vec::new();
        for f in &self.tree.files {
            let name = file_name(&f.path);
            let dir = parent(&f.path);
            let stem = name.trim_end_matches(".txt").trim_end_matches(".in");
            let listed = (dir.is_empty() && name.starts_with("requirements"))
                || (dir == "requirements" && stem != name);
            if !listed || !(name.ends_with(".txt") || name.ends_with(".in")) {
                continue;
            }
            let words: Vec<&str> = stem
                .split(|c: char| !c.is_ascii_alphanumeric())
                .filter(|w| !w.is_empty())
                .collect();
            if words
                .iter()
                .any(|w| dev.contains(&w.to_ascii_lowercase().as_str()))
            {
                continue;
            }
            let rank = words
                .iter()
                .filter_map(|w| preferred.iter().position(|p| p == w))
                .min()
                .unwrap_or(preferred.len());
            let ext = usize::from(name.ends_with(".in"));
            found.push((ext, rank, f.path.clone()));
        }
        found.sort();
        if let Some((_, _, path)) = found.into_iter().next() {
            return Some(path);
        }
        self.tree
            .files
            .iter()
            .map(|f| f.path.as_str())
            .find(|p| {
                file_name(p) == "requirements.txt"
                    && p.matches('/').count() == 1
                    && !in_dirs(p, TEST_DIRS)
            })
            .map(str::to_string)
    }

    /// Names of a requirements file, following `-r` includes inside the project.
    fn requirement_names(&mut self, rel: &str, depth: usize, names: &mut BTreeSet<String>) {
        if depth > 4 {
            return;
        }
        let Some(text) = self.text(rel, MAX_TEXT_BYTES) else {
            return;
        };
        for line in text.lines() {
            let line = line.split(" #").next().unwrap_or("").trim();
            if line.starts_with('#') || line.is_empty() {
                continue;
            }
            let include = ["-r ", "--requirement ", "--requirement="]
                .iter()
                .find_map(|p| line.strip_prefix(p));
            if let Some(inc) = include {
                if let Some(path) = normalize_rel(&join(parent(rel), inc.trim())) {
                    if self.root.join(&path).is_file() {
                        self.requirement_names(&path, depth + 1, names);
                    }
                }
                continue;
            }
            if line.starts_with('-') {
                continue;
            }
            if let Some((name, extras)) = requirement_name(line) {
                names.extend(implied(&name, &extras));
            }
        }
    }

    // --- [python].version and [base] -----------------------------------------------------

    fn python_and_base(&mut self) {
        let requires = self
            .pyproject
            .as_ref()
            .and_then(|p| p.requires_python.clone());
        let version_file = if self.tree.has_file(".python-version") {
            self.text(".python-version", MAX_TEXT_BYTES).and_then(|t| {
                t.lines()
                    .map(str::trim)
                    .find(|l| !l.is_empty() && !l.starts_with('#'))
                    .map(str::to_string)
            })
        } else {
            None
        };
        let wanted: Option<(String, String)> = version_file
            .as_deref()
            .and_then(|raw| Some((minor_of(raw)?, ".python-version".to_string())))
            .or_else(|| {
                let r = requires.as_deref()?;
                Some((spec_single_minor(r)?, format!("requires-python {r:?}")))
            });
        if let (Some(raw), None) = (&version_file, &wanted) {
            let line = format!(
                ".python-version says {:?}: not a CPython 3 version, ignored",
                one_line(raw)
            );
            self.detected(line);
        }
        let allows = |base: &str| -> Option<bool> {
            let (_, full) = suite_python(base)?;
            spec_allows(requires.as_deref()?, full)
        };
        let base_flag = self
            .opts
            .base
            .as_deref()
            .map(str::trim)
            .filter(|b| !b.is_empty());
        let python_flag = self
            .opts
            .python
            .as_deref()
            .map(str::trim)
            .filter(|p| !p.is_empty());

        // The base.
        let base = if let Some(b) = base_flag {
            self.detected(format!("base: {b} (from the --base flag)"));
            b.to_string()
        } else if let Some(p) = python_flag {
            match minor_of(p).and_then(|m| suite_for(&m)) {
                Some(b) => b.to_string(),
                None => {
                    self.missing(format!(
                        "python {p} (the --python flag) is neither debian:bookworm's (3.11) nor debian:trixie's (3.13): set [base].image to an image with python {p}"
                    ));
                    DEFAULT_BASE.to_string()
                }
            }
        } else if let Some(b) = wanted.as_ref().and_then(|(m, _)| suite_for(m)) {
            b.to_string()
        } else if allows(DEFAULT_BASE) == Some(false) && allows("debian:trixie") == Some(true) {
            let r = requires.clone().unwrap_or_default();
            self.detected(format!(
                "base: debian:trixie (python 3.13; requires-python {r:?} excludes bookworm's 3.11)"
            ));
            "debian:trixie".to_string()
        } else {
            DEFAULT_BASE.to_string()
        };
        let suite = base_flag.and_then(|b| b.strip_prefix("debian:"));
        if suite.is_some_and(|s| !["bookworm", "trixie", "forky", "sid"].contains(&s)) {
            self.missing(format!(
                "{base}: kiln builds debian:bookworm, trixie, forky and sid; another Debian needs an image reference"
            ));
        }
        let base_python = suite_python(&base).map(|(m, _)| m);

        // The version.
        let python = if let Some(p) = python_flag {
            self.detected(format!("python: {p} (from the --python flag)"));
            if let Some(bp) = base_python.filter(|bp| minor_of(p).as_deref() != Some(*bp)) {
                self.missing(format!(
                    "python {p} (the --python flag) but {base} gives {bp}: change [base].image or [python].version"
                ));
            }
            Some(p.to_string())
        } else if let Some((minor, from)) = wanted {
            match base_python {
                Some(bp) if bp == minor => {
                    self.detected(format!("python: {minor} (from {from}), {base}'s"));
                    Some(minor)
                }
                Some(bp) => {
                    self.missing(format!(
                        "python {minor} (from {from}) is not what {base} gives ({bp}); [python].version is left unset, so {bp} is used: set [base].image to an image with python {minor} if the app needs it"
                    ));
                    None
                }
                None => {
                    self.detected(format!("python: {minor} (from {from})"));
                    Some(minor)
                }
            }
        } else {
            match (&requires, base_python) {
                (Some(r), Some(bp)) => self.detected(format!(
                    "python: not pinned (requires-python {r:?}); {base}'s {bp} is used"
                )),
                (None, Some(bp)) => {
                    self.detected(format!("python: not pinned; {base}'s {bp} is used"));
                }
                _ => {}
            }
            None
        };
        if allows(&base) == Some(false) {
            let r = requires.clone().unwrap_or_default();
            self.missing(format!(
                "requires-python {r:?} excludes {base}'s python {}: set [base].image to an image whose python it allows",
                base_python.unwrap_or("?")
            ));
        }
        self.d.base = base;
        self.d.python = python;
    }

    // --- [weights] -----------------------------------------------------------------------

    fn find_weights(&mut self) {
        let is_weight_file = |path: &str| {
            let name = file_name(path);
            name.rsplit_once('.').is_some_and(|(stem, ext)| {
                !stem.is_empty() && WEIGHT_SUFFIXES.contains(&ext.to_ascii_lowercase().as_str())
            })
        };
        let mut dirs: Vec<String> = Vec::new();
        let (mut found, mut empty) = (Vec::new(), Vec::new());
        for dir in &self.tree.dirs {
            if dirs.iter().any(|d| is_under(dir, d))
                || self.tree.py_dirs.contains(dir)
                || dir.split('/').any(|p| TEST_DIRS.contains(&p))
            {
                continue;
            }
            let named = WEIGHT_DIRS.contains(&file_name(dir));
            let direct: Vec<&FileEntry> = self.tree.files_in(dir).collect();
            let weight_files = direct.iter().filter(|f| is_weight_file(&f.path)).count();
            let model_dir = weight_files > 0
                && (weight_files >= 2
                    || direct.iter().any(|f| file_name(&f.path) == "config.json"));
            if !named && !model_dir {
                continue;
            }
            let (count, bytes) = self
                .tree
                .files_under(dir)
                .filter(|f| !is_placeholder(&f.path))
                .fold((0usize, 0u64), |(n, b), f| (n + 1, b + f.size));
            if count == 0 {
                if named {
                    empty.push(format!(
                        "{dir}/ holds no files: no [weights] entry for it (add one when the weights are there)"
                    ));
                }
                continue;
            }
            dirs.push(dir.clone());
            let mut line = format!(
                "weights: {dir}/ ({count} file{}, {})",
                plural(count),
                human_size(bytes)
            );
            if self.tree.gitignored_weights.contains(dir) {
                line.push_str("; it is in .gitignore, kiln takes it from this checkout");
            }
            found.push((dir.clone(), line));
        }
        for (dir, line) in found {
            self.weights.push((String::new(), dir));
            self.detected(line);
        }
        for line in empty {
            self.missing(line);
        }
        let files: Vec<(String, u64)> = self
            .tree
            .files
            .iter()
            .filter(|f| {
                is_weight_file(&f.path)
                    && !dirs.iter().any(|d| is_under(&f.path, d))
                    && !in_dirs(&f.path, TEST_DIRS)
            })
            .map(|f| (f.path.clone(), f.size))
            .collect();
        for (path, size) in files {
            self.weights.push((String::new(), path.clone()));
            self.detected(format!("weights: {path} ({})", human_size(size)));
        }
        // Names: the directory name or the file stem; the parent's name on a clash.
        let mut taken = BTreeSet::new();
        for (name, path) in &mut self.weights {
            let base = file_name(path);
            let stem = if self.tree.has_dir(path) {
                base
            } else {
                base.rsplit_once('.').map_or(base, |(s, _)| s)
            };
            let mut candidate = sanitize_key(stem);
            if taken.contains(&candidate) && !parent(path).is_empty() {
                candidate = sanitize_key(&format!("{}-{stem}", file_name(parent(path))));
            }
            let mut n = 2;
            let first = candidate.clone();
            while taken.contains(&candidate) {
                candidate = format!("{first}-{n}");
                n += 1;
            }
            taken.insert(candidate.clone());
            *name = candidate;
        }
        for line in self.d.detected.iter_mut() {
            if let Some(rest) = line.strip_prefix("weights: ") {
                let path = rest.split(' ').next().unwrap_or("").trim_end_matches('/');
                if let Some((name, _)) = self.weights.iter().find(|(_, p)| p == path) {
                    *line = format!("{line} as [weights.{name}]");
                }
            }
        }
    }

    fn is_weight_path(&self, path: &str) -> bool {
        self.weights
            .iter()
            .any(|(_, w)| path == w || is_under(path, w) || is_under(w, path))
    }

    // --- Python sources ------------------------------------------------------------------

    fn scan_sources(&mut self) {
        let mut total = 0u64;
        let mut large = Vec::new();
        let files: Vec<(String, u64)> = self
            .tree
            .files
            .iter()
            .filter(|f| f.path.ends_with(".py"))
            .map(|f| (f.path.clone(), f.size))
            .collect();
        for (path, size) in files {
            if size > MAX_SOURCE_BYTES {
                large.push(path);
                continue;
            }
            if total + size > MAX_SOURCE_TOTAL {
                self.missing(format!(
                    "stopped reading Python files after {}: the app may be among the rest",
                    human_size(total)
                ));
                break;
            }
            total += size;
            if let Some(src) = self.text(&path, MAX_SOURCE_BYTES) {
                self.sources.insert(path, scan_python(&src));
            }
        }
        if !large.is_empty() {
            let line = format!(
                "not scanned (over {}): {}",
                human_size(MAX_SOURCE_BYTES),
                list_some(&large)
            );
            self.detected(line);
        }
    }

    // --- [app] ---------------------------------------------------------------------------

    /// The app candidates, best first. Tiers: 0 a web app in a file named like an app
    /// (`app.py`, `main.py`, ...), 1 any other web app, 2 a `[project.scripts]` entry,
    /// 3 a `__main__` block in a file named like an app or a package's `__main__.py`;
    /// then, only taken when nothing above is there: 4 a web app under `examples/`,
    /// `docs/`, `scripts/`..., 5 a `__main__` block in another top-level file (only when it
    /// is the only one); 6 other `__main__` blocks, never taken.
    fn candidates(&self) -> Vec<Candidate> {
        let mut out = Vec::new();
        for (file, scan) in &self.sources {
            let name = file_name(file);
            if in_dirs(file, TEST_DIRS)
                || name.starts_with("test_")
                || name.ends_with("_test.py")
                || NOT_APP_FILES.contains(&name)
            {
                continue;
            }
            let side = in_dirs(file, SIDE_DIRS);
            let depth = file.matches('/').count();
            let rank = APP_FILE_NAMES
                .iter()
                .position(|n| *n == name)
                .unwrap_or(APP_FILE_NAMES.len());
            let named = rank < APP_FILE_NAMES.len();
            let mut apps: Vec<&AppDef> = scan.apps.iter().collect();
            // One per file: a module-level `app` first.
            apps.sort_by_key(|a| (a.factory.is_some(), a.var != "app"));
            let web = apps
                .first()
                .map(|a| (AppKind::Web((*a).clone()), a.framework.rank()))
                .or_else(|| scan.gradio.then_some((AppKind::Gradio, 2)))
                .or_else(|| scan.streamlit.then_some((AppKind::Streamlit, 3)));
            if let Some((kind, framework)) = web {
                let tier = match (side, named) {
                    (true, _) => 4,
                    (false, true) => 0,
                    (false, false) => 1,
                };
                out.push(Candidate {
                    kind,
                    file: file.clone(),
                    key: (tier, framework, rank, depth, file.clone()),
                    guessed: tier == 4,
                });
            }
            let package_main = name == "__main__.py";
            if scan.main_block || package_main {
                let tier = match (side, named || package_main, depth) {
                    (false, true, _) => 3,
                    (false, false, 0) => 5,
                    _ => 6,
                };
                out.push(Candidate {
                    kind: AppKind::Main,
                    file: file.clone(),
                    key: (tier, 0, rank, depth, file.clone()),
                    guessed: tier == 5,
                });
            }
        }
        if let Some(py) = &self.pyproject {
            let words = ["serve", "server", "api", "app", "web", "run", "start"];
            for (i, (name, target)) in py.scripts.iter().enumerate() {
                let rank = words
                    .iter()
                    .position(|w| name.contains(w))
                    .unwrap_or(words.len());
                let module = target.split(':').next().unwrap_or("").trim();
                out.push(Candidate {
                    kind: AppKind::Script(name.clone(), target.clone()),
                    file: self.module_file(module).unwrap_or_default(),
                    key: (2, 0, rank, i, name.clone()),
                    guessed: false,
                });
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        out
    }

    /// The candidate to take: the first of tiers 0-3, else the first of tier 4, else the
    /// only one of tier 5.
    fn choose(candidates: &[Candidate]) -> Option<Candidate> {
        let tier = |t: u8| candidates.iter().filter(move |c| c.key.0 == t);
        candidates
            .iter()
            .find(|c| c.key.0 <= 3)
            .or_else(|| tier(4).next())
            .or_else(|| {
                let mut mains = tier(5);
                let only = mains.next()?;
                mains.next().is_none().then_some(only)
            })
            .cloned()
    }

    /// The file of a dotted module (`pkg.cli`), in the project or under `src/`.
    fn module_file(&self, module: &str) -> Option<String> {
        if !module.split('.').all(is_identifier) {
            return None;
        }
        let rel = module.replace('.', "/");
        ["", "src"].iter().find_map(|base| {
            let p = join(base, &rel);
            [format!("{p}.py"), format!("{p}/__init__.py")]
                .into_iter()
                .find(|f| self.tree.has_file(f))
        })
    }

    /// How `file` is imported: from the directory (the file's own or an ancestor) where
    /// most of its imports of local modules resolve; on a tie `src/`, else the project
    /// root, else the shallowest. `app.py` → `app`; `src/pkg/main.py` → `pkg.main` from
    /// `src`; `backend/app/main.py` importing `app.core` → `app.main` from `backend`.
    fn module_path(&self, file: &str) -> ModulePath {
        let dir = parent(file);
        let stem = file_name(file).trim_end_matches(".py");
        let imports: &[String] = self.sources.get(file).map_or(&[], |s| &s.imports);
        let local = |base: &str, module: &str| {
            let first = module.split('.').next().unwrap_or(module);
            let p = join(base, first);
            self.tree.has_file(&format!("{p}.py")) || self.tree.py_dirs.contains(&p)
        };
        let mut bases = vec![dir];
        let mut b = dir;
        while !b.is_empty() {
            b = parent(b);
            bases.push(b);
        }
        let best = bases
            .into_iter()
            .filter_map(|base| {
                let rel = if base.is_empty() {
                    dir
                } else {
                    dir.strip_prefix(base)
                        .map_or("", |r| r.trim_start_matches('/'))
                };
                let parts: Vec<&str> = rel.split('/').filter(|p| !p.is_empty()).collect();
                if !parts.iter().all(|p| is_identifier(p)) {
                    return None;
                }
                let score = imports.iter().filter(|m| local(base, m)).count();
                let kind = match base {
                    "src" => 0u8,
                    "" => 1,
                    _ => 2,
                };
                let key = (std::cmp::Reverse(score), kind, base.matches('/').count());
                Some((key, base, parts))
            })
            .min_by(|a, b| a.0.cmp(&b.0));
        let (base, mut parts) = best.map_or((dir, Vec::new()), |(_, b, p)| (b, p));
        if stem != "__init__" || parts.is_empty() {
            parts.push(stem);
        }
        ModulePath {
            app_dir: (!base.is_empty()).then(|| base.to_string()),
            module: parts.join("."),
        }
    }

    fn app(&mut self) {
        let candidates = self.candidates();
        let chosen = Self::choose(&candidates);
        // The "app:" line goes before the alternatives and the command's notes.
        let app_line_at = self.d.detected.len();
        for alt in candidates
            .iter()
            .filter(|c| chosen.as_ref().is_none_or(|ch| ch.key != c.key))
            .take(MAX_NOTED)
        {
            let line = format!("also found: {}", alt.describe());
            self.detected(line);
        }
        if self.tree.has_file("manage.py") && chosen.as_ref().is_none_or(|c| !c.is_web()) {
            self.missing(
                "a Django project (manage.py): set [app].command, e.g. [\"gunicorn\", \"--bind\", \"0.0.0.0:8000\", \"PROJECT.wsgi\"], and [app].ports",
            );
        }
        let Some(chosen) = chosen else {
            self.no_app();
            return;
        };
        if chosen.guessed {
            self.missing(format!(
                "the app is a guess ({}): check [app].command",
                chosen.describe()
            ));
        }
        let module = self.module_path(&chosen.file);
        self.files(&chosen, &module);
        let port = self.port(&chosen);
        let (command, env, how) = self.command(&chosen, &module, port);
        self.d
            .detected
            .insert(app_line_at, format!("app: {} ({how})", chosen.describe()));
        match &self.opts.command {
            Some(cmd) if !cmd.is_empty() => {
                self.detected("command: from the --command flag");
                self.d.command = Some(cmd.clone());
            }
            _ => {
                self.d.command = Some(command);
                self.d.env = env;
            }
        }
        self.d.port = port;
        self.healthcheck(&chosen);
        let downloads: Vec<String> = self
            .sources
            .iter()
            .filter(|(f, s)| s.downloads && self.d.app_files.iter().any(|g| glob_covers(g, f)))
            .map(|(f, _)| f.clone())
            .collect();
        if !downloads.is_empty() {
            self.detected(format!(
                "the code downloads models at run time ({}): the image does not hold them; add them as [weights] to bake them in",
                list_some(&downloads)
            ));
        }
    }

    fn no_app(&mut self) {
        self.d.app_files = vec!["**".to_string()];
        match &self.opts.command {
            Some(cmd) if !cmd.is_empty() => {
                self.detected("command: from the --command flag");
                self.d.command = Some(cmd.clone());
            }
            _ => self.missing(
                "no app found (no FastAPI/Starlette/Flask/Gradio/Streamlit app, [project.scripts] entry or __main__ block): set [app].command",
            ),
        }
        self.missing("[app].files is everything (\"**\"): narrow it to the app's code");
        self.d.port = self.opts.port.or_else(|| {
            let (port, _) = self.other_ports().into_iter().next()?;
            Some(port)
        });
        if let Some(port) = self.d.port {
            if self.opts.port.is_none() {
                self.detected(format!("port: {port} (named in the project's files)"));
            }
        }
    }

    /// Ports named outside the Python code: Procfile, Dockerfile, compose files, scripts
    /// (rank 2), README (rank 3). Each with where it was found.
    fn other_ports(&mut self) -> Vec<(u16, String)> {
        let mut found: Vec<(u8, u16, String)> = Vec::new();
        let files: Vec<String> = self
            .tree
            .files_in("")
            .map(|f| f.path.clone())
            .filter(|p| port_file_rank(p).is_some())
            .collect();
        for path in files {
            let Some(rank) = port_file_rank(&path) else {
                continue;
            };
            let Some(text) = self.text(&path, MAX_TEXT_BYTES) else {
                continue;
            };
            for (i, line) in text.lines().enumerate() {
                for port in text_line_ports(line) {
                    found.push((rank, port, format!("{path}:{}", i + 1)));
                }
            }
        }
        found.sort_by_key(|(rank, _, _)| *rank);
        found.into_iter().map(|(_, p, w)| (p, w)).collect()
    }

    /// The port: the flag, else the app file's, else the other Python files of the app,
    /// else the Procfile/Dockerfile/README; for web apps the framework's default.
    fn port(&mut self, chosen: &Candidate) -> Option<u16> {
        if let Some(port) = self.opts.port {
            self.detected(format!("port: {port} (from the --port flag)"));
            return Some(port);
        }
        let mut found: Vec<(u16, String)> = Vec::new();
        if let Some(scan) = self.sources.get(&chosen.file) {
            found.extend(
                scan.ports
                    .iter()
                    .map(|(p, line)| (*p, format!("{}:{line}", chosen.file))),
            );
        }
        // Then the app's other files, then the other top-level files.
        let top_level = self.sources.keys().filter(|f| {
            !f.contains('/') && !f.starts_with("test_") && !NOT_APP_FILES.contains(&f.as_str())
        });
        let mut seen_files = BTreeSet::from([chosen.file.as_str()]);
        for file in self.closure.iter().chain(top_level) {
            let name = file_name(file);
            let test = in_dirs(file, TEST_DIRS) || name.starts_with("test_");
            if test || !seen_files.insert(file.as_str()) {
                continue;
            }
            if let Some(scan) = self.sources.get(file) {
                found.extend(
                    scan.ports
                        .iter()
                        .map(|(p, line)| (*p, format!("{file}:{line}"))),
                );
            }
        }
        found.extend(self.other_ports());
        if let Some((port, at)) = found.first().cloned() {
            let mut others: Vec<String> = Vec::new();
            let mut seen = BTreeSet::from([port]);
            for (p, at) in &found {
                if seen.insert(*p) {
                    others.push(format!("{p} ({at})"));
                }
            }
            let mut line = format!("port: {port} ({at})");
            if !others.is_empty() {
                line.push_str(&format!("; also named: {}", list_some(&others)));
            }
            self.detected(line);
            return Some(port);
        }
        let default = match &chosen.kind {
            AppKind::Web(app) if app.framework == Framework::Flask && !self.has_dep("gunicorn") => {
                Some((5000, "flask run's default"))
            }
            AppKind::Web(_) => Some((8000, "the server's default")),
            AppKind::Gradio => Some((7860, "Gradio's default")),
            AppKind::Streamlit => Some((8501, "Streamlit's default")),
            _ => None,
        };
        match default {
            Some((port, why)) => {
                self.missing(format!(
                    "no port found in the code: assumed {port} ({why}); check [app].ports"
                ));
                Some(port)
            }
            None => {
                self.detected("no port found: the app serves none, or set [app].ports");
                None
            }
        }
    }

    fn has_dep(&self, name: &str) -> bool {
        self.dep_names.contains(name)
    }

    /// The command for the chosen app, the env it needs, and how it runs (for the report).
    fn command(
        &mut self,
        chosen: &Candidate,
        module: &ModulePath,
        port: Option<u16>,
    ) -> (Vec<String>, Vec<(String, String)>, String) {
        let port_s = port.unwrap_or(8000).to_string();
        let mut env = Vec::new();
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let need = |this: &mut Self, dep: &str, what: &str| {
            if this.deps_known && !this.has_dep(dep) {
                this.missing(format!(
                    "{dep} is not among the dependencies but {what} needs it: add it"
                ));
            }
        };
        match &chosen.kind {
            AppKind::Web(app) if app.framework != Framework::Flask => {
                need(self, "uvicorn", "the command");
                let target = match &app.factory {
                    Some(f) => format!("{}:{f}", module.module),
                    None => format!("{}:{}", module.module, app.var),
                };
                let mut cmd = s(&["uvicorn", &target]);
                if app.factory.is_some() {
                    cmd.push("--factory".into());
                }
                if let Some(dir) = &module.app_dir {
                    cmd.extend(s(&["--app-dir", dir]));
                }
                cmd.extend(s(&["--host", "0.0.0.0", "--port", &port_s]));
                (cmd, env, "uvicorn".into())
            }
            AppKind::Web(app) => {
                let call = match &app.factory {
                    Some(f) => format!("{f}()"),
                    None => app.var.clone(),
                };
                if self.has_dep("gunicorn") {
                    let mut cmd = s(&["gunicorn", "--bind", &format!("0.0.0.0:{port_s}")]);
                    if let Some(dir) = &module.app_dir {
                        cmd.extend(s(&["--pythonpath", dir]));
                    }
                    cmd.push(format!("{}:{call}", module.module));
                    (cmd, env, "gunicorn".into())
                } else {
                    need(self, "flask", "the command");
                    let target = match &module.app_dir {
                        Some(_) => format!("{}:{call}", chosen.file),
                        None => format!("{}:{call}", module.module),
                    };
                    let cmd = s(&[
                        "flask", "--app", &target, "run", "--host", "0.0.0.0", "--port", &port_s,
                    ]);
                    self.detected(
                        "flask run is Flask's development server: add gunicorn to the dependencies for a production one",
                    );
                    (cmd, env, "flask run".into())
                }
            }
            AppKind::Gradio => {
                env.push(("GRADIO_SERVER_NAME".to_string(), "0.0.0.0".to_string()));
                env.push(("GRADIO_SERVER_PORT".to_string(), port_s));
                (s(&["python", &chosen.file]), env, "python".into())
            }
            AppKind::Streamlit => {
                need(self, "streamlit", "the app");
                let cmd = s(&[
                    "streamlit",
                    "run",
                    &chosen.file,
                    "--server.address",
                    "0.0.0.0",
                    "--server.port",
                    &port_s,
                    "--server.headless",
                    "true",
                ]);
                (cmd, env, "streamlit run".into())
            }
            AppKind::Script(name, target) => {
                // kiln installs the dependencies, not the project itself: the entry point
                // is called from the code layer, as its console script would.
                let (module_name, func) = target.split_once(':').unwrap_or((target, "main"));
                let (module_name, func) = (module_name.trim(), func.trim());
                let top = module_name.split('.').next().unwrap_or(module_name);
                let app_dir = module.app_dir.clone().or_else(|| {
                    self.root
                        .join("src")
                        .join(top)
                        .is_dir()
                        .then(|| "src".to_string())
                });
                if let Some(dir) = &app_dir {
                    env.push(("PYTHONPATH".to_string(), format!("/app/{dir}")));
                }
                let (first, rest) = func.split_once('.').unwrap_or((func, ""));
                let call = if rest.is_empty() {
                    format!("{first}()")
                } else {
                    format!("{first}.{rest}()")
                };
                self.detected(format!(
                    "`{name}` ({target}) is called with python, as its console script would be{}",
                    app_dir
                        .as_ref()
                        .map(|d| format!(" (PYTHONPATH=/app/{d})"))
                        .unwrap_or_default()
                ));
                (
                    vec![
                        "python".to_string(),
                        "-c".to_string(),
                        format!("import sys; from {module_name} import {first}; sys.exit({call})"),
                    ],
                    env,
                    "python -c (the [project.scripts] entry)".into(),
                )
            }
            AppKind::Main if chosen.file.ends_with("/__main__.py") => {
                let package = module
                    .module
                    .strip_suffix(".__main__")
                    .unwrap_or(&module.module);
                if let Some(dir) = &module.app_dir {
                    env.push(("PYTHONPATH".to_string(), format!("/app/{dir}")));
                    self.detected(format!(
                        "PYTHONPATH=/app/{dir} puts the package on the path with the default [app].workdir"
                    ));
                }
                (s(&["python", "-m", package]), env, "python -m".into())
            }
            AppKind::Main => (s(&["python", &chosen.file]), env, "python".into()),
        }
    }

    /// `[app].files`: the units (top-level files and directories) of the app file, of the
    /// local modules it imports (transitively) and of the paths its code names.
    fn files(&mut self, chosen: &Candidate, module: &ModulePath) {
        if chosen.file.is_empty() {
            self.d.app_files = vec!["**".to_string()];
            self.missing(format!(
                "{} is not in the project's files: [app].files is everything (\"**\"); narrow it",
                chosen.describe()
            ));
            return;
        }
        let mut units: Vec<String> = Vec::new();
        let add = |units: &mut Vec<String>, unit: &str| {
            if !unit.is_empty() && !units.iter().any(|u| u == unit) {
                units.push(unit.to_string());
            }
        };
        let mut queue = VecDeque::from([chosen.file.clone()]);
        let mut seen = BTreeSet::new();
        let mut named = Vec::new();
        while let Some(file) = queue.pop_front() {
            if !seen.insert(file.clone()) {
                continue;
            }
            if self.sources.contains_key(&file) {
                self.closure.push(file.clone());
            }
            let unit = top(&file).to_string();
            if !units.contains(&unit) {
                add(&mut units, &unit);
                if self.tree.has_dir(&unit) {
                    for f in self.tree.files_under(&unit) {
                        if f.path.ends_with(".py") {
                            queue.push_back(f.path.clone());
                        }
                    }
                }
            }
            let Some(scan) = self.sources.get(&file) else {
                continue;
            };
            let dir = parent(&file);
            for import in &scan.imports {
                let first = import.split('.').next().unwrap_or(import);
                if let Some(found) = self.resolve_import(first, dir, module.app_dir.as_deref()) {
                    queue.push_back(found);
                }
            }
            for lit in &scan.literals {
                if let Some(path) = self.resolve_literal(lit, dir) {
                    let unit = top(&path);
                    if !units.iter().any(|u| u == unit) {
                        named.push(path.clone());
                        add(&mut units, unit);
                        if self.tree.has_dir(unit) {
                            for f in self.tree.files_under(unit) {
                                if f.path.ends_with(".py") {
                                    queue.push_back(f.path.clone());
                                }
                            }
                        } else if path.ends_with(".py") {
                            queue.push_back(path);
                        }
                    }
                }
            }
        }
        // Directories frameworks read by convention.
        let app_dir = parent(&chosen.file);
        let conventional: &[&str] = match &chosen.kind {
            AppKind::Web(app) if app.framework == Framework::Flask => &["templates", "static"],
            AppKind::Streamlit => &["pages", ".streamlit"],
            _ => &[],
        };
        for name in conventional {
            let path = join(app_dir, name);
            let exists = self.tree.has_dir(&path) || self.root.join(&path).is_dir();
            if exists && !self.is_weight_path(&path) {
                add(&mut units, top(&path));
            }
        }
        // The app's own unit first, the rest in order.
        if units.len() > 1 {
            units[1..].sort();
        }
        let globs: Vec<String> = units
            .iter()
            .map(|u| {
                if self.tree.has_dir(u) || self.root.join(u).is_dir() {
                    format!("{u}/**")
                } else {
                    u.clone()
                }
            })
            .collect();
        let mut line = format!("app files: {}", list_some(&globs));
        if !named.is_empty() {
            line.push_str(&format!(
                " (the app, its local imports and the paths it names: {})",
                list_some(&named)
            ));
        } else {
            line.push_str(" (the app and its local imports)");
        }
        self.detected(line);
        self.missing(
            "[app].files holds the app and what it imports or names: add files it reads otherwise, or use [\"**\"]",
        );
        self.d.app_files = globs;
    }

    /// The local file or package directory a top-level import name refers to.
    fn resolve_import(&self, name: &str, from_dir: &str, app_dir: Option<&str>) -> Option<String> {
        let mut bases = vec![from_dir];
        bases.extend(app_dir);
        bases.extend(["", "src"]);
        for base in bases {
            let p = join(base, name);
            let file = format!("{p}.py");
            if self.tree.has_file(&file) {
                return Some(file);
            }
            if self.tree.py_dirs.contains(&p) {
                let init = format!("{p}/__init__.py");
                return Some(if self.tree.has_file(&init) {
                    init
                } else {
                    self.tree
                        .files_under(&p)
                        .find(|f| f.path.ends_with(".py"))
                        .map(|f| f.path.clone())?
                });
            }
        }
        None
    }

    /// The project path a string literal names, when it exists, is not weights and is
    /// code-side: relative to the file's directory when the line builds on `__file__`,
    /// else relative to the working directory (the project root), else to the file's
    /// directory.
    fn resolve_literal(&self, lit: &Literal, from_dir: &str) -> Option<String> {
        let text = lit.text.strip_prefix("./").unwrap_or(&lit.text);
        let pathy = lit.pathy;
        let beside = normalize_rel(&join(from_dir, text));
        let options: Vec<String> = if lit.file_relative {
            beside.into_iter().collect()
        } else {
            normalize_rel(text).into_iter().chain(beside).collect()
        };
        for path in options {
            let unit = top(&path);
            if path.is_empty()
                || self.is_weight_path(&path)
                || skip_dir(unit) && unit != ".streamlit"
                || self.ignore.kiln.contains(unit)
                || matches!(path.as_str(), "kiln.toml" | "kiln.lock" | ".kilnignore")
            {
                continue;
            }
            let is_file = self.tree.has_file(&path);
            let is_dir = self.tree.has_dir(&path);
            let (is_file, is_dir) = if is_file || is_dir {
                (is_file, is_dir)
            } else {
                match fs::symlink_metadata(self.root.join(&path)) {
                    Ok(m) => (m.is_file(), m.is_dir()),
                    Err(_) => (false, false),
                }
            };
            if is_file || (is_dir && (pathy || path.contains('/'))) {
                return Some(path);
            }
        }
        None
    }

    fn healthcheck(&mut self, chosen: &Candidate) {
        if self.d.port.is_none() || !chosen.is_web() {
            return;
        }
        let var = match &chosen.kind {
            AppKind::Web(app) => Some(app.var.as_str()),
            _ => None,
        };
        let mut elsewhere = Vec::new();
        let mut found = None;
        for (file, scan) in &self.sources {
            for (obj, path) in &scan.health {
                let on_app = *file == chosen.file && obj.as_deref().is_none_or(|o| Some(o) == var);
                if on_app && found.is_none() {
                    found = Some(path.clone());
                } else if !in_dirs(file, TEST_DIRS) {
                    let obj = obj.as_deref().unwrap_or("a route list");
                    elsewhere.push(format!("{path} on `{obj}` in {file}"));
                }
            }
        }
        if let Some(path) = found {
            self.detected(format!(
                "healthcheck: GET {path} (a route in {})",
                chosen.file
            ));
            self.d.healthcheck = Some(path);
        } else if !elsewhere.is_empty() {
            self.missing(format!(
                "health routes not on the app itself ({}): if one is served as is, set [app.healthcheck].path",
                list_some(&elsewhere)
            ));
        } else if matches!(chosen.kind, AppKind::Streamlit) {
            self.detected(
                "healthcheck: Streamlit answers on /_stcore/health; set [app.healthcheck].path to it to use it",
            );
        } else {
            self.missing(
                "no /health or /healthz route in the code: add one and set [app.healthcheck].path",
            );
        }
    }

    // --- [base].packages -----------------------------------------------------------------

    fn packages(&mut self) {
        let rules: &[(&[&str], &[&str], &str)] = &[
            (
                &[
                    "scikit-learn",
                    "sklearn",
                    "lightgbm",
                    "xgboost",
                    "torch",
                    "catboost",
                ],
                &["libgomp1"],
                "the OpenMP runtime",
            ),
            (
                &["opencv-python", "opencv-contrib-python"],
                &["libgl1", "libglib2.0-0"],
                "OpenGL and GLib",
            ),
        ];
        let mut needed: Vec<String> = Vec::new();
        for (deps, packages, what) in rules {
            let users: Vec<&str> = deps.iter().copied().filter(|d| self.has_dep(d)).collect();
            if users.is_empty() {
                continue;
            }
            needed.extend(packages.iter().map(|p| p.to_string()));
            let line = format!(
                "base packages: {} ({what}, for {})",
                packages.join(", "),
                users.join(", ")
            );
            self.detected(line);
        }
        needed.dedup();
        if !needed.is_empty() && !self.d.base.starts_with("debian:") {
            self.missing(format!(
                "{} must already be in {} ([base].packages only works with debian:SUITE)",
                needed.join(", "),
                self.d.base
            ));
        }
        if self.has_dep("torch") && !matches!(self.d.deps, PythonDeps::UvLock) {
            self.detected(
                "torch from PyPI brings CUDA libraries: for a CPU-only image set [python].extra-index-url to https://download.pytorch.org/whl/cpu",
            );
        }
        self.d.packages_needed = needed;
    }

    fn note_skipped(&mut self) {
        if self.skipped.is_empty() {
            return;
        }
        let shown: Vec<String> = self
            .skipped
            .iter()
            .take(MAX_NOTED)
            .map(|(path, why)| format!("{path} ({})", one_line(why)))
            .collect();
        let more = self.skipped.len().saturating_sub(MAX_NOTED);
        let mut line = format!("skipped: {}", shown.join(", "));
        if more > 0 {
            line.push_str(&format!(" and {more} more"));
        }
        self.missing(line);
    }
}

/// The packages a requirement brings that matter here (`fastapi[standard]` brings uvicorn).
fn implied(name: &str, extras: &[String]) -> Vec<String> {
    let mut out = vec![name.to_string()];
    if name == "fastapi" && extras.iter().any(|e| e == "standard" || e == "all") {
        out.push("uvicorn".to_string());
    }
    out
}

/// Rank of a top-level file as a place where ports are named (lower is stronger).
fn port_file_rank(path: &str) -> Option<u8> {
    let name = file_name(path).to_ascii_lowercase();
    let strong = name == "procfile"
        || name.starts_with("dockerfile")
        || name.starts_with("containerfile")
        || name.ends_with(".dockerfile")
        || name.starts_with("docker-compose")
        || name.starts_with("compose.")
        || name == "fly.toml"
        || name == "makefile"
        || name.ends_with(".sh")
        || name == ".env.example";
    if strong {
        Some(2)
    } else if name.starts_with("readme") {
        Some(3)
    } else {
        None
    }
}

// ---------------------------------------------------------------------------------------
// Rendering

/// The commented `kiln.toml` for a detection. Every section of the format is there; keys
/// that could not be filled are comments with a hint. Always valid TOML.
pub fn render_toml(d: &Detection) -> String {
    let mut o = String::new();
    o.push_str("# kiln.toml, written by `kiln init`. Edit freely: `kiln build` reads this file.\n");
    o.push_str("# Paths are relative to this directory.\n");
    if !d.detected.is_empty() {
        o.push_str("#\n# Detected:\n");
        for line in &d.detected {
            let _ = writeln!(o, "#   - {}", comment(line));
        }
    }
    if !d.missing.is_empty() {
        o.push_str("#\n# To check:\n");
        for line in &d.missing {
            let _ = writeln!(o, "#   - {}", comment(line));
        }
    }

    o.push_str("\n[project]\n");
    entry(&mut o, "name", &toml_str(&d.name), "the image name");
    opt_entry(
        &mut o,
        "version",
        d.version.as_deref(),
        "0.1.0",
        "the image tag",
    );
    opt_entry(
        &mut o,
        "description",
        d.description.as_deref(),
        "...",
        "optional",
    );

    o.push_str("\n[base]\n");
    let base = if d.base.trim().is_empty() {
        DEFAULT_BASE
    } else {
        d.base.as_str()
    };
    entry(
        &mut o,
        "image",
        &toml_str(base),
        "debian:bookworm (python 3.11) or debian:trixie (3.13), built from the Debian archive; or an image reference",
    );
    if d.packages_needed.is_empty() {
        o.push_str(
            "# packages = [\"libgomp1\"]   # extra Debian packages (debian:SUITE bases only)\n",
        );
    } else if base.starts_with("debian:") {
        entry(
            &mut o,
            "packages",
            &toml_array(&d.packages_needed),
            "extra Debian packages the dependencies need",
        );
    } else {
        let _ = writeln!(
            o,
            "# packages = {}   # only with debian:SUITE; this base must provide them",
            toml_array(&d.packages_needed)
        );
    }

    o.push_str("\n[python]\n");
    opt_entry(
        &mut o,
        "version",
        d.python.as_deref(),
        "3.11",
        "checked against the base's interpreter",
    );
    match &d.deps {
        PythonDeps::UvLock => entry(
            &mut o,
            "lock",
            &toml_str("uv.lock"),
            "installed exactly, without the dev group",
        ),
        PythonDeps::Requirements(path) => entry(
            &mut o,
            "requirements",
            &toml_str(path),
            "resolved by uv into kiln.lock",
        ),
        PythonDeps::Pyproject if !d.pyproject_dependencies.is_empty() => {
            o.push_str(
                "# From pyproject.toml's [project].dependencies, resolved by uv into kiln.lock.\n",
            );
            o.push_str("# Or run `uv lock` and replace this with: lock = \"uv.lock\"\n");
            o.push_str("packages = [\n");
            for dep in &d.pyproject_dependencies {
                let _ = writeln!(o, "    {},", toml_str(dep));
            }
            o.push_str("]\n");
        }
        PythonDeps::Pyproject => {
            o.push_str("# pyproject.toml lists no [project].dependencies; run `uv lock`, then:\n");
            o.push_str("# lock = \"uv.lock\"\n");
        }
        PythonDeps::None => {
            o.push_str("# No dependencies found; one of:\n");
            o.push_str("# requirements = \"requirements.txt\"   # resolved by uv into kiln.lock\n");
            o.push_str("# packages = [\"numpy==2.2.6\"]\n");
        }
    }
    if d.dependencies.iter().any(|n| n == "torch") && d.deps != PythonDeps::UvLock {
        o.push_str("# extra-index-url = [\"https://download.pytorch.org/whl/cpu\"]   # CPU-only torch (PyPI's brings CUDA)\n");
    } else {
        o.push_str("# index-url = \"https://pypi.org/simple\"\n");
    }

    if d.weights.is_empty() {
        o.push_str("\n# No weights found. One table per file or directory of weights:\n");
        o.push_str("# [weights.model]\n");
        o.push_str("# path = \"models/model.safetensors\"\n");
    }
    for (name, path) in &d.weights {
        let _ = writeln!(o, "\n[weights.{}]", toml_key(name));
        entry(&mut o, "path", &toml_str(path), "");
        let _ = writeln!(
            o,
            "# target = {}   # default: [app].workdir + \"/\" + path",
            toml_str(&format!("/app/{path}"))
        );
    }

    o.push_str("\n[app]\n");
    let files = if d.app_files.is_empty() {
        vec!["**".to_string()]
    } else {
        d.app_files.clone()
    };
    entry(
        &mut o,
        "files",
        &toml_array(&files),
        "globs of the code files; weights and .kilnignore matches are always left out",
    );
    match &d.command {
        Some(cmd) if !cmd.is_empty() => entry(&mut o, "command", &toml_array(cmd), ""),
        _ => o.push_str(
            "# command = [\"python\", \"main.py\"]   # no app found: what the container runs\n",
        ),
    }
    if !d.env.is_empty() {
        let pairs: Vec<String> = d
            .env
            .iter()
            .map(|(k, v)| format!("{} = {}", toml_key(k), toml_str(v)))
            .collect();
        entry(&mut o, "env", &format!("{{ {} }}", pairs.join(", ")), "");
    } else {
        o.push_str("# env = { LOG_LEVEL = \"info\" }\n");
    }
    match d.port {
        Some(port) => entry(&mut o, "ports", &format!("[{port}]"), ""),
        None => o.push_str("# ports = [8000]   # the ports the app listens on\n"),
    }
    o.push_str("# workdir = \"/app\"   # default\n");
    o.push_str("# user = \"app\"       # default (uid/gid 1000); \"root\" or \"UID[:GID]\"\n");
    o.push_str("# writable = [\"/app/cache\"]   # paths the app writes\n");

    o.push('\n');
    match (&d.healthcheck, d.port) {
        (Some(path), Some(_)) => {
            o.push_str("[app.healthcheck]   # the app defines this route\n");
            entry(
                &mut o,
                "path",
                &toml_str(path),
                "HTTP GET on the first port must answer 2xx",
            );
            o.push_str("# interval = \"30s\"\n# timeout = \"5s\"\n# start-period = \"60s\"\n# retries = 3\n");
        }
        _ => {
            o.push_str("# [app.healthcheck]   # no /health or /healthz route found in the code\n");
            o.push_str("# path = \"/health\"   # HTTP GET on the first port must answer 2xx\n");
            o.push_str("# interval = \"30s\"\n");
        }
    }

    o.push_str("\n# [resources]   # applied by `kiln run`, read by `kiln deploy`\n");
    o.push_str("# cpus = 2.0\n# memory = \"2g\"\n# gpus = 0\n");
    o
}

/// The `.kilnignore` for a detection (gitignore syntax): version control, virtual
/// environments, caches, build output, editor files and secrets.
pub fn render_ignore(d: &Detection) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "# .kilnignore for {}, written by `kiln init` (gitignore syntax).",
        comment(&d.name)
    );
    o.push_str("# Matching paths stay out of the image's code layer.\n");
    let groups: &[(&str, &[&str])] = &[
        ("Version control", &[".git/", ".hg/", ".svn/"]),
        ("Virtual environments", &[".venv/", "venv/", "env/"]),
        (
            "Python caches and build output",
            &[
                "__pycache__/",
                "*.pyc",
                "*.pyo",
                ".pytest_cache/",
                ".mypy_cache/",
                ".ruff_cache/",
                ".tox/",
                ".nox/",
                ".coverage",
                "htmlcov/",
                "build/",
                "dist/",
                "*.egg-info/",
            ],
        ),
        (
            "Notebooks and experiment tracking",
            &[
                ".ipynb_checkpoints/",
                "wandb/",
                "mlruns/",
                "lightning_logs/",
            ],
        ),
        (
            "Editors, OS and other tools",
            &[
                ".idea/",
                ".vscode/",
                ".DS_Store",
                "node_modules/",
                ".github/",
            ],
        ),
        (
            "Secrets: pass them with [app].env or at run time",
            &[".env"],
        ),
    ];
    for (title, lines) in groups {
        let _ = writeln!(o, "\n# {title}");
        for line in *lines {
            o.push_str(line);
            o.push('\n');
        }
    }
    if d.app_files.iter().any(|g| g == "**") {
        o.push_str("\n# [app].files is everything: list data and other large directories here.\n");
    }
    o
}

fn entry(o: &mut String, key: &str, value: &str, note: &str) {
    if note.is_empty() {
        let _ = writeln!(o, "{key} = {value}");
    } else {
        let _ = writeln!(o, "{key} = {value}   # {}", comment(note));
    }
}

fn opt_entry(o: &mut String, key: &str, value: Option<&str>, example: &str, note: &str) {
    match value {
        Some(v) => entry(o, key, &toml_str(v), note),
        None => {
            let _ = writeln!(o, "# {key} = {}   # {}", toml_str(example), comment(note));
        }
    }
}

/// A TOML basic string.
fn toml_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn toml_array(items: &[String]) -> String {
    let items: Vec<String> = items.iter().map(|i| toml_str(i)).collect();
    format!("[{}]", items.join(", "))
}

/// A TOML key: bare when it can be.
fn toml_key(k: &str) -> String {
    let bare = !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if bare {
        k.to_string()
    } else {
        toml_str(k)
    }
}

/// Text made safe for a TOML comment (one line, no control characters).
fn comment(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

// ---------------------------------------------------------------------------------------
// Small helpers

fn read_text(path: &Path, limit: u64) -> Result<String> {
    let too_large = || Error::new(format!("larger than {}", human_size(limit)));
    let meta = fs::metadata(path).map_err(|e| Error::new(e.to_string()))?;
    if !meta.is_file() {
        return Err(Error::new("not a regular file"));
    }
    if meta.len() > limit {
        return Err(too_large());
    }
    let mut buf = Vec::new();
    fs::File::open(path)
        .and_then(|f| f.take(limit + 1).read_to_end(&mut buf))
        .map_err(|e| Error::new(e.to_string()))?;
    if buf.len() as u64 > limit {
        return Err(too_large());
    }
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

fn parent(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(p, _)| p)
}

fn file_name(path: &str) -> &str {
    path.rsplit_once('/').map_or(path, |(_, n)| n)
}

fn top(path: &str) -> &str {
    path.split('/').next().unwrap_or(path)
}

/// `path` is strictly below `dir`.
fn is_under(path: &str, dir: &str) -> bool {
    !dir.is_empty()
        && path.len() > dir.len()
        && path.starts_with(dir)
        && path.as_bytes()[dir.len()] == b'/'
}

/// Some directory of `path` (not its last component) is named one of `names`.
fn in_dirs(path: &str, names: &[&str]) -> bool {
    let mut parts: Vec<&str> = path.split('/').collect();
    parts.pop();
    parts.iter().any(|p| names.contains(p))
}

/// A relative path without `.` and `..` that stays in the project.
fn normalize_rel(path: &str) -> Option<String> {
    if path.starts_with('/') {
        return None;
    }
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            p => parts.push(p),
        }
    }
    Some(parts.join("/"))
}

/// Whether the glob (`"dir/**"`, `"file"`, `"**"`) of [`Detection::app_files`] covers `path`.
fn glob_covers(glob: &str, path: &str) -> bool {
    match glob.strip_suffix("/**") {
        _ if glob == "**" => true,
        Some(dir) => is_under(path, dir),
        None => glob == path,
    }
}

fn is_placeholder(path: &str) -> bool {
    let name = file_name(path).to_ascii_lowercase();
    name == ".gitkeep" || name == ".keep" || name.starts_with("readme")
}

fn display_dir(rel: &str) -> String {
    if rel.is_empty() {
        ".".to_string()
    } else {
        format!("{rel}/")
    }
}

fn one_line(s: &str) -> String {
    let line = s.lines().next().unwrap_or("");
    comment(line)
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

fn list_some(items: &[String]) -> String {
    let mut out = items
        .iter()
        .take(MAX_NOTED)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if items.len() > MAX_NOTED {
        let _ = write!(out, " and {} more", items.len() - MAX_NOTED);
    }
    out
}

fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A project directory holding `files` (path, content).
    fn project(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (path, content) in files {
            let path = dir.path().join(path);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, content).unwrap();
        }
        dir
    }

    fn detect_ok(dir: &tempfile::TempDir) -> Detection {
        detect_with(dir, &InitOptions::default())
    }

    /// Detects and checks that both rendered files are sound.
    fn detect_with(dir: &tempfile::TempDir, opts: &InitOptions) -> Detection {
        let d = detect(dir.path(), opts).unwrap();
        parse_rendered(&d);
        assert!(render_ignore(&d).contains(".venv/"));
        d
    }

    fn parse_rendered(d: &Detection) -> toml::Table {
        let text = render_toml(d);
        toml::from_str::<toml::Table>(&text)
            .unwrap_or_else(|e| panic!("render_toml is not TOML: {e}\n{text}"))
    }

    fn strs(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn has_line(lines: &[String], needle: &str) -> bool {
        lines.iter().any(|l| l.contains(needle))
    }

    const FASTAPI_APP: &str = r#"
"""The service.

Example: app = FastAPI() in a docstring is no app.
"""
import os

import uvicorn
from fastapi import FastAPI

from utils import predict  # a local module
import helpers.text

app = FastAPI(title="iris")
MODEL = os.path.join("models", "iris.joblib")
LABELS = "labels.json"


@app.get("/health")
def health():
    return {"ok": True}


if __name__ == "__main__":
    uvicorn.run(
        app,
        host="0.0.0.0",
        port=8080,
    )
"#;

    #[test]
    fn fastapi_with_uv_lock_and_models_dir() {
        let dir = project(&[
            ("app.py", FASTAPI_APP),
            ("utils.py", "def predict(x):\n    return x\n"),
            ("helpers/__init__.py", ""),
            ("helpers/text.py", "X = 1\n"),
            ("labels.json", "[]"),
            (
                "pyproject.toml",
                "[project]\nname = \"Iris Service\"\nversion = \"0.2.0\"\ndescription = \"Iris \\\"classifier\\\"\"\nrequires-python = \">=3.11\"\ndependencies = [\"fastapi\", \"uvicorn\", \"scikit-learn>=1.5\"]\n",
            ),
            (
                "uv.lock",
                "version = 1\n\n[[package]]\nname = \"fastapi\"\nversion = \"0.115.0\"\n\n[[package]]\nname = \"scikit_learn\"\nversion = \"1.5.0\"\n\n[[package]]\nname = \"uvicorn\"\nversion = \"0.30.0\"\n",
            ),
            ("models/iris.joblib", "weights"),
            ("models/README.md", "how the model was trained"),
            ("data/train.csv", "a,b\n"),
            ("notebooks/explore.py", "print(1)\n"),
            ("tests/test_app.py", "from fastapi import FastAPI\napp = FastAPI()\n"),
            (".venv/lib/site.py", "app = FastAPI()\n"),
        ]);
        let d = detect_ok(&dir);
        assert_eq!(d.name, "iris-service");
        assert_eq!(d.version.as_deref(), Some("0.2.0"));
        assert_eq!(d.deps, PythonDeps::UvLock);
        assert_eq!(d.base, "debian:bookworm");
        assert_eq!(d.python, None);
        assert_eq!(
            d.command,
            Some(strs(&[
                "uvicorn", "app:app", "--host", "0.0.0.0", "--port", "8080"
            ]))
        );
        assert_eq!(d.port, Some(8080));
        assert_eq!(
            d.weights,
            vec![("models".to_string(), "models".to_string())]
        );
        assert_eq!(d.packages_needed, strs(&["libgomp1"]));
        assert_eq!(d.healthcheck.as_deref(), Some("/health"));
        assert_eq!(
            d.app_files,
            strs(&["app.py", "helpers/**", "labels.json", "utils.py"])
        );
        assert!(has_line(
            &d.detected,
            "app: FastAPI app `app` in app.py (uvicorn)"
        ));
        assert!(!has_line(&d.missing, "uvicorn is not among"));

        let t = parse_rendered(&d);
        assert_eq!(t["project"]["name"].as_str(), Some("iris-service"));
        assert_eq!(
            t["project"]["description"].as_str(),
            Some("Iris \"classifier\"")
        );
        assert_eq!(t["python"]["lock"].as_str(), Some("uv.lock"));
        assert_eq!(t["base"]["packages"][0].as_str(), Some("libgomp1"));
        assert_eq!(t["weights"]["models"]["path"].as_str(), Some("models"));
        assert!(t["weights"]["models"].get("target").is_none());
        assert_eq!(t["app"]["ports"][0].as_integer(), Some(8080));
        assert_eq!(t["app"]["healthcheck"]["path"].as_str(), Some("/health"));
        assert_eq!(t["app"]["command"][1].as_str(), Some("app:app"));
    }

    #[test]
    fn flask_with_requirements_and_port() {
        let dir = project(&[
            (
                "app.py",
                "from flask import Flask, render_template\n\napp = Flask(__name__)\n\n@app.route(\"/\")\ndef index():\n    return render_template(\"index.html\")\n\nif __name__ == '__main__':\n    app.run(host='0.0.0.0', port=5001, debug=True)\n",
            ),
            ("templates/index.html", "<p>hi</p>"),
            ("static/style.css", "p {}"),
            ("requirements.txt", "flask==3.0.0  # web\nopencv-python\n-r requirements-common.txt\n--extra-index-url https://example.org\n"),
            ("requirements-common.txt", "numpy\n"),
            ("requirements-dev.txt", "pytest\n"),
            ("model.pkl", "pickle"),
        ]);
        let d = detect_ok(&dir);
        assert_eq!(d.deps, PythonDeps::Requirements("requirements.txt".into()));
        assert_eq!(
            d.command,
            Some(strs(&[
                "flask", "--app", "app:app", "run", "--host", "0.0.0.0", "--port", "5001"
            ]))
        );
        assert_eq!(d.port, Some(5001));
        assert_eq!(d.packages_needed, strs(&["libgl1", "libglib2.0-0"]));
        assert!(d.dependencies.contains(&"numpy".to_string()));
        assert_eq!(
            d.weights,
            vec![("model".to_string(), "model.pkl".to_string())]
        );
        assert_eq!(d.app_files, strs(&["app.py", "static/**", "templates/**"]));
        assert_eq!(d.healthcheck, None);
        assert!(has_line(&d.missing, "no /health or /healthz route"));
        let t = parse_rendered(&d);
        assert_eq!(
            t["python"]["requirements"].as_str(),
            Some("requirements.txt")
        );
        assert!(t["app"].get("healthcheck").is_none());
    }

    #[test]
    fn flask_factory_with_gunicorn() {
        let dir = project(&[
            (
                "wsgi.py",
                "from flask import Flask\n\ndef create_app():\n    app = Flask(__name__)\n    return app\n",
            ),
            ("requirements/prod.txt", "flask\ngunicorn\n"),
            ("requirements/dev.txt", "pytest\n"),
        ]);
        let d = detect_ok(&dir);
        assert_eq!(
            d.deps,
            PythonDeps::Requirements("requirements/prod.txt".into())
        );
        assert_eq!(
            d.command,
            Some(strs(&[
                "gunicorn",
                "--bind",
                "0.0.0.0:8000",
                "wsgi:create_app()"
            ]))
        );
        assert_eq!(d.port, Some(8000));
        assert!(has_line(&d.missing, "assumed 8000"));
    }

    #[test]
    fn src_layout_with_project_scripts() {
        let dir = project(&[
            (
                "pyproject.toml",
                "[project]\nname = \"mytool\"\nversion = \"1.0.0+cu124\"\ndependencies = [\"torch>=2\", \"click\"]\n\n[project.scripts]\nmytool-train = \"mytool.train:main\"\nmytool-serve = \"mytool.cli:main\"\n",
            ),
            ("src/mytool/__init__.py", ""),
            ("src/mytool/cli.py", "import click\n\ndef main():\n    pass\n"),
            ("src/mytool/train.py", "def main():\n    pass\n"),
            ("README.md", "Run `mytool-serve`.\n"),
        ]);
        let d = detect_ok(&dir);
        assert_eq!(
            d.command,
            Some(strs(&[
                "python",
                "-c",
                "import sys; from mytool.cli import main; sys.exit(main())"
            ]))
        );
        assert_eq!(d.env, vec![("PYTHONPATH".into(), "/app/src".into())]);
        assert_eq!(d.app_files, strs(&["src/**"]));
        assert_eq!(d.deps, PythonDeps::Pyproject);
        assert_eq!(d.pyproject_dependencies, strs(&["torch>=2", "click"]));
        assert_eq!(d.version.as_deref(), Some("1.0.0-cu124"));
        assert_eq!(d.port, None);
        assert_eq!(d.packages_needed, strs(&["libgomp1"]));
        assert!(has_line(
            &d.missing,
            "pyproject.toml has no uv.lock: run `uv lock`"
        ));
        assert!(has_line(
            &d.detected,
            "also found: [project.scripts] entry `mytool-train`"
        ));
        let t = parse_rendered(&d);
        assert_eq!(t["python"]["packages"][0].as_str(), Some("torch>=2"));
        assert!(render_toml(&d).contains("download.pytorch.org/whl/cpu"));
    }

    #[test]
    fn src_layout_fastapi_uses_app_dir() {
        let dir = project(&[
            ("src/svc/__init__.py", ""),
            (
                "src/svc/main.py",
                "import fastapi\nfrom svc.routes import router\napi = fastapi.FastAPI()\napi.include_router(router)\n",
            ),
            (
                "src/svc/routes.py",
                "from fastapi import APIRouter\nrouter = APIRouter()\n@router.get(\"/healthz\")\ndef h():\n    return 'ok'\n",
            ),
            ("Dockerfile", "FROM python:3.11\nEXPOSE 9000\nCMD [\"uvicorn\", \"svc.main:api\"]\n"),
            ("requirements.txt", "fastapi[standard]\n"),
        ]);
        let d = detect_ok(&dir);
        assert_eq!(
            d.command,
            Some(strs(&[
                "uvicorn",
                "svc.main:api",
                "--app-dir",
                "src",
                "--host",
                "0.0.0.0",
                "--port",
                "9000"
            ]))
        );
        assert_eq!(d.port, Some(9000));
        assert_eq!(d.app_files, strs(&["src/**"]));
        assert_eq!(d.healthcheck, None);
        assert!(has_line(&d.missing, "/healthz on `router`"));
        assert!(!has_line(&d.missing, "uvicorn is not among"));
    }

    #[test]
    fn main_script_without_dependencies() {
        let dir = project(&[
            (
                "main.py",
                "import sys\n\ndef run():\n    print('hi')\n\nif __name__ == \"__main__\":\n    run()\n",
            ),
            ("setup.py", "if __name__ == '__main__':\n    pass\n"),
        ]);
        let d = detect_ok(&dir);
        assert_eq!(d.command, Some(strs(&["python", "main.py"])));
        assert_eq!(d.deps, PythonDeps::None);
        assert_eq!(d.port, None);
        assert_eq!(d.app_files, strs(&["main.py"]));
        assert!(has_line(&d.missing, "no Python dependencies found"));
        assert!(has_line(&d.detected, "no port found"));
        let t = parse_rendered(&d);
        assert!(t["app"].get("ports").is_none());
        assert!(t.get("python").is_some());
    }

    #[test]
    fn port_from_the_runner_script_and_procfile() {
        let dir = project(&[
            ("app.py", "from fastapi import FastAPI\napp = FastAPI()\n"),
            (
                "run.py",
                "import uvicorn\nif __name__ == '__main__':\n    uvicorn.run('app:app', port=8765)\n",
            ),
            ("Procfile", "web: uvicorn app:app --port 9999\n"),
            ("myenv/pyvenv.cfg", "home = /usr\n"),
            ("myenv/lib/x.py", "app = FastAPI()\n"),
        ]);
        let d = detect_ok(&dir);
        assert_eq!(d.port, Some(8765));
        assert!(has_line(
            &d.detected,
            "port: 8765 (run.py:3); also named: 9999 (Procfile:1)"
        ));
        assert!(has_line(
            &d.detected,
            "also found: __main__ block in run.py"
        ));
        assert!(!has_line(&d.detected, "myenv"));

        let dir = project(&[
            ("app.py", "from fastapi import FastAPI\napp = FastAPI()\n"),
            (
                "Procfile",
                "web: uvicorn app:app --host 0.0.0.0 --port 9999\n",
            ),
        ]);
        assert_eq!(detect_ok(&dir).port, Some(9999));
    }

    #[test]
    fn starlette_poetry_project() {
        let dir = project(&[
            (
                "pyproject.toml",
                "[tool.poetry]\nname = \"svc\"\nversion = \"0.3.0\"\n\n[tool.poetry.dependencies]\npython = \"^3.11\"\nstarlette = \"*\"\nuvicorn = \"*\"\n",
            ),
            ("poetry.lock", ""),
            (
                "server.py",
                "from starlette.applications import Starlette\nfrom starlette.routing import Route\n\nasync def health(request):\n    ...\n\napp = Starlette(routes=[\n    Route(\"/health\", health),\n])\n",
            ),
        ]);
        let d = detect_ok(&dir);
        assert_eq!(d.name, "svc");
        assert_eq!(d.version.as_deref(), Some("0.3.0"));
        assert_eq!(d.deps, PythonDeps::Pyproject);
        assert!(d.pyproject_dependencies.is_empty());
        assert!(has_line(&d.missing, "poetry export"));
        assert_eq!(
            d.command,
            Some(strs(&[
                "uvicorn",
                "server:app",
                "--host",
                "0.0.0.0",
                "--port",
                "8000"
            ]))
        );
        assert_eq!(d.healthcheck.as_deref(), Some("/health"));
        assert_eq!(d.base, DEFAULT_BASE);
        let t = parse_rendered(&d);
        assert!(t["python"].get("packages").is_none());
    }

    #[test]
    fn package_main_and_single_guess() {
        let dir = project(&[
            ("mypkg/__init__.py", ""),
            ("mypkg/__main__.py", "print(1)\n"),
        ]);
        let d = detect_ok(&dir);
        assert_eq!(d.command, Some(strs(&["python", "-m", "mypkg"])));
        assert_eq!(d.app_files, strs(&["mypkg/**"]));

        let dir = project(&[
            ("src/tool/__init__.py", ""),
            ("src/tool/__main__.py", "from tool import x\n"),
        ]);
        let d = detect_ok(&dir);
        assert_eq!(d.command, Some(strs(&["python", "-m", "tool"])));
        assert_eq!(d.env, vec![("PYTHONPATH".into(), "/app/src".into())]);

        let dir = project(&[("score.py", "if __name__ == '__main__':\n    print(1)\n")]);
        let d = detect_ok(&dir);
        assert_eq!(d.command, Some(strs(&["python", "score.py"])));
        assert!(has_line(&d.missing, "the app is a guess"));
    }

    #[test]
    fn nothing_detectable() {
        let dir = project(&[("README.md", "# notes\n"), ("data/x.csv", "1\n")]);
        let d = detect_ok(&dir);
        assert_eq!(d.command, None);
        assert_eq!(d.port, None);
        assert_eq!(d.deps, PythonDeps::None);
        assert!(d.weights.is_empty());
        assert_eq!(d.app_files, strs(&["**"]));
        assert!(has_line(&d.missing, "no app found"));
        assert!(has_line(&d.missing, "no Python dependencies found"));
        assert!(has_line(&d.missing, "[app].files is everything"));
        let t = parse_rendered(&d);
        assert_eq!(t["app"]["files"][0].as_str(), Some("**"));
        assert!(t["app"].get("command").is_none());
        assert!(t.get("weights").is_none());
        assert!(render_ignore(&d).contains("list data and other large directories"));

        let empty = project(&[]);
        let d = detect_ok(&empty);
        assert!(!d.name.is_empty());
    }

    #[test]
    fn flags_override() {
        let dir = project(&[
            ("app.py", "from fastapi import FastAPI\napp = FastAPI()\n"),
            ("requirements.txt", "fastapi\nuvicorn\n"),
            (".python-version", "3.11\n"),
        ]);
        let opts = InitOptions {
            name: Some("My App!".into()),
            base: Some("debian:trixie".into()),
            python: Some("3.13".into()),
            command: None,
            port: Some(9001),
        };
        let d = detect_with(&dir, &opts);
        assert_eq!(d.name, "my-app");
        assert_eq!(d.base, "debian:trixie");
        assert_eq!(d.python.as_deref(), Some("3.13"));
        assert_eq!(d.port, Some(9001));
        assert_eq!(
            d.command,
            Some(strs(&[
                "uvicorn", "app:app", "--host", "0.0.0.0", "--port", "9001"
            ]))
        );
        assert!(!has_line(&d.missing, "assumed"));

        let opts = InitOptions {
            command: Some(strs(&["python", "-m", "my.server"])),
            base: Some("python:3.12-slim".into()),
            ..InitOptions::default()
        };
        let d = detect_with(&dir, &opts);
        assert_eq!(d.command, opts.command);
        assert_eq!(d.base, "python:3.12-slim");
        assert_eq!(d.python.as_deref(), Some("3.11"));
        let t = parse_rendered(&d);
        assert_eq!(t["base"]["image"].as_str(), Some("python:3.12-slim"));
        assert_eq!(t["app"]["command"][2].as_str(), Some("my.server"));
    }

    #[test]
    fn python_version_picks_the_base() {
        let dir = project(&[(".python-version", "3.13.1\n")]);
        let d = detect_ok(&dir);
        assert_eq!(d.base, "debian:trixie");
        assert_eq!(d.python.as_deref(), Some("3.13"));

        let dir = project(&[(
            "pyproject.toml",
            "[project]\nname = \"x\"\nrequires-python = \">=3.12\"\n",
        )]);
        let d = detect_ok(&dir);
        assert_eq!(d.base, "debian:trixie");
        assert_eq!(d.python, None);

        let dir = project(&[(".python-version", "3.12\n")]);
        let d = detect_ok(&dir);
        assert_eq!(d.base, "debian:bookworm");
        assert_eq!(d.python, None);
        assert!(has_line(&d.missing, "python 3.12 (from .python-version)"));

        let dir = project(&[(
            "pyproject.toml",
            "[project]\nname = \"x\"\nrequires-python = \"==3.11.*\"\n",
        )]);
        assert_eq!(detect_ok(&dir).python.as_deref(), Some("3.11"));
    }

    #[test]
    fn gradio_and_streamlit() {
        let dir = project(&[
            (
                "app.py",
                "import gradio as gr\n\ndef f(x):\n    return x\n\ndemo = gr.Interface(fn=f, inputs='text', outputs='text')\ndemo.launch()\n",
            ),
            ("requirements.txt", "gradio\n"),
        ]);
        let d = detect_ok(&dir);
        assert_eq!(d.command, Some(strs(&["python", "app.py"])));
        assert_eq!(d.port, Some(7860));
        assert!(d
            .env
            .contains(&("GRADIO_SERVER_NAME".into(), "0.0.0.0".into())));
        let t = parse_rendered(&d);
        assert_eq!(t["app"]["env"]["GRADIO_SERVER_PORT"].as_str(), Some("7860"));

        let dir = project(&[
            (
                "streamlit_app.py",
                "import streamlit as st\nst.title('hi')\n",
            ),
            ("pages/1_more.py", "import streamlit as st\n"),
            ("requirements.txt", "streamlit\n"),
        ]);
        let d = detect_ok(&dir);
        assert_eq!(
            d.command.as_ref().unwrap()[..3],
            strs(&["streamlit", "run", "streamlit_app.py"])
        );
        assert_eq!(d.port, Some(8501));
        assert_eq!(d.app_files, strs(&["streamlit_app.py", "pages/**"]));
    }

    #[test]
    fn models_dir_with_code_is_not_weights() {
        let dir = project(&[
            ("app/__init__.py", ""),
            (
                "app/main.py",
                "from fastapi import FastAPI\nfrom app.models import user\napp = FastAPI()\n",
            ),
            ("app/models/__init__.py", ""),
            ("app/models/user.py", "class User: pass\n"),
            ("hf/bert/config.json", "{}"),
            ("hf/bert/model.safetensors", "w"),
            ("hf/bert/tokenizer.json", "{}"),
            ("ckpt/a.pt", "w"),
            ("more/a.pt", "w"),
            ("weights/.gitkeep", ""),
            ("tests/a.pt", "fixture"),
            ("tests/b.pt", "fixture"),
        ]);
        let d = detect_ok(&dir);
        assert_eq!(
            d.command,
            Some(strs(&[
                "uvicorn",
                "app.main:app",
                "--host",
                "0.0.0.0",
                "--port",
                "8000"
            ]))
        );
        assert_eq!(d.app_files, strs(&["app/**"]));
        let names: Vec<&str> = d.weights.iter().map(|(n, _)| n.as_str()).collect();
        let paths: Vec<&str> = d.weights.iter().map(|(_, p)| p.as_str()).collect();
        assert_eq!(paths, ["hf/bert", "ckpt/a.pt", "more/a.pt"]);
        assert_eq!(names, ["bert", "a", "more-a"]);
        assert!(has_line(&d.missing, "weights/ holds no files"));
    }

    #[test]
    fn sibling_imports_run_from_their_directory() {
        let dir = project(&[
            (
                "my-service/server.py",
                "from fastapi import FastAPI\nimport model\napp = FastAPI()\n",
            ),
            ("my-service/model.py", "X = 1\n"),
        ]);
        let d = detect_ok(&dir);
        assert_eq!(
            d.command,
            Some(strs(&[
                "uvicorn",
                "server:app",
                "--app-dir",
                "my-service",
                "--host",
                "0.0.0.0",
                "--port",
                "8000"
            ]))
        );
        assert_eq!(d.app_files, strs(&["my-service/**"]));
    }

    #[test]
    fn odd_input_never_panics() {
        let dir = project(&[
            ("app.py", "from fastapi import FastAPI\napp = FastAPI()\n"),
            ("weird \"name\" [1].py", "x = 'unterminated\n"),
            ("pyproject.toml", "[project\nname = "),
            ("uv.lock", "not toml at all [[["),
        ]);
        fs::write(
            dir.path().join("latin1.py"),
            b"# caf\xe9\nport = 8123\n\xff\xfe",
        )
        .unwrap();
        let big = vec![b'#'; (MAX_SOURCE_BYTES + 10) as usize];
        fs::write(dir.path().join("big.py"), big).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::ffi::OsStrExt;
            let odd = std::ffi::OsStr::from_bytes(b"bad\xffname.py");
            fs::write(dir.path().join(odd), "x").unwrap();
            std::os::unix::fs::symlink(dir.path(), dir.path().join("loop")).unwrap();
            std::os::unix::fs::symlink("/etc/passwd", dir.path().join("outside.pt")).unwrap();
            std::os::unix::fs::symlink("nowhere", dir.path().join("dangling.py")).unwrap();
        }
        let d = detect_ok(&dir);
        assert!(has_line(&d.missing, "pyproject.toml is not valid TOML"));
        assert!(has_line(&d.detected, "not scanned"));
        assert_eq!(d.deps, PythonDeps::UvLock);
        assert!(d.dependencies.is_empty());
        assert!(d.weights.is_empty());
        #[cfg(unix)]
        assert!(has_line(&d.missing, "skipped:"));

        assert!(detect(&dir.path().join("app.py"), &InitOptions::default()).is_err());
        assert!(detect(&dir.path().join("nope"), &InitOptions::default()).is_err());
    }

    #[test]
    fn walk_is_bounded_and_honours_ignore_files() {
        let mut files: Vec<(String, String)> = (0..50)
            .map(|i| (format!("many/f{i:02}.txt"), String::new()))
            .collect();
        files.push(("data/big.pt".into(), String::new()));
        files.push(("keep/w.onnx".into(), String::new()));
        files.push(("models/m.bin".into(), String::new()));
        files.push(("checkpoints/best.pt".into(), String::new()));
        files.push((
            ".gitignore".into(),
            "data/\nmodels/\n/checkpoints\n*.log\n".into(),
        ));
        let refs: Vec<(&str, &str)> = files
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        let dir = project(&refs);
        let d = detect(dir.path(), &InitOptions::default()).unwrap();
        let paths: Vec<&str> = d.weights.iter().map(|(_, p)| p.as_str()).collect();
        assert_eq!(paths, ["models", "checkpoints/best.pt", "keep/w.onnx"]);
        assert!(has_line(&d.detected, "in .gitignore"));

        let d = detect_with_limit(dir.path(), &InitOptions::default(), 10).unwrap();
        assert!(has_line(&d.missing, "more than"));
    }

    #[test]
    fn render_escapes_and_stays_toml() {
        let d = Detection {
            name: "x".into(),
            description: Some("line one\nline \"two\" \\ \u{7}".into()),
            base: String::new(),
            command: Some(strs(&["sh", "-c", "echo \"$PORT\""])),
            env: vec![("WEIRD KEY".into(), "v".into())],
            weights: vec![("m".into(), "dir with space/m.bin".into())],
            detected: vec!["a\nb".into()],
            missing: vec!["c\r\nd".into()],
            port: Some(1),
            healthcheck: Some("/health".into()),
            ..Detection::default()
        };
        let t = parse_rendered(&d);
        assert_eq!(
            t["project"]["description"].as_str(),
            d.description.as_deref()
        );
        assert_eq!(t["base"]["image"].as_str(), Some(DEFAULT_BASE));
        assert_eq!(t["app"]["env"]["WEIRD KEY"].as_str(), Some("v"));
        assert_eq!(t["app"]["command"][2].as_str(), Some("echo \"$PORT\""));
        // An empty detection too.
        parse_rendered(&Detection::default());
    }

    #[test]
    fn specifiers() {
        assert_eq!(spec_allows(">=3.11", [3, 11, 2]), Some(true));
        assert_eq!(spec_allows(">=3.12", [3, 11, 2]), Some(false));
        assert_eq!(spec_allows(">=3.9,<3.12", [3, 13, 5]), Some(false));
        assert_eq!(spec_allows("~=3.10", [3, 13, 5]), Some(true));
        assert_eq!(spec_allows("~=3.11.0", [3, 13, 5]), Some(false));
        assert_eq!(spec_allows("^3.10", [3, 13, 5]), Some(true));
        assert_eq!(spec_allows("!=3.11.*", [3, 11, 2]), Some(false));
        assert_eq!(spec_allows("nonsense", [3, 11, 2]), None);
        assert_eq!(spec_single_minor("==3.11.*").as_deref(), Some("3.11"));
        assert_eq!(spec_single_minor(">=3.11,<3.12").as_deref(), Some("3.11"));
        assert_eq!(spec_single_minor(">=3.11"), None);
        assert_eq!(minor_of("cpython-3.12.1-linux").as_deref(), Some("3.12"));
        assert_eq!(minor_of("pypy2.7"), None);
    }

    #[test]
    fn names() {
        assert_eq!(sanitize_name("My_Cool..App--"), "my_cool.app");
        assert_eq!(sanitize_name("__init__"), "init");
        assert_eq!(sanitize_name("Ünïcode"), "n-code");
        assert_eq!(sanitize_name("!!!"), "app");
        assert_eq!(sanitize_name(&"a-".repeat(100)).len(), 127);
        assert_eq!(sanitize_key("ResNet50.v2"), "resnet50-v2");
        assert_eq!(normalize_name("Scikit_Learn"), "scikit-learn");
        assert_eq!(
            requirement_name("fastapi[standard]>=0.1 ; python_version > '3'"),
            Some(("fastapi".into(), vec!["standard".into()]))
        );
        assert_eq!(
            requirement_name("git+https://x/y.git#egg=my_pkg").map(|r| r.0),
            Some("my-pkg".into())
        );
    }

    #[test]
    fn python_scanning() {
        let scan = scan_python(
            "'''\napp = FastAPI()\n'''\nx = 1  # app = Flask(__name__)\nPORT = int(os.getenv('PORT', '7000'))\ndb = connect(port=5432)\nparser.add_argument('--port', type=int, default=8888)\n",
        );
        assert!(scan.apps.is_empty());
        let ports: Vec<u16> = scan.ports.iter().map(|(p, _)| *p).collect();
        assert_eq!(ports, [7000, 8888]);
        assert_eq!(
            text_line_ports("web: gunicorn -b 0.0.0.0:${PORT:-8050} app:server"),
            [8050]
        );
        assert_eq!(text_line_ports("docker run -p 8080:8000 img"), [8000]);
        assert_eq!(text_line_ports("EXPOSE 7000/tcp"), [7000]);
        assert_eq!(
            text_line_ports("uvicorn app:app --port=8123 --port $PORT"),
            [8123]
        );
    }
}
