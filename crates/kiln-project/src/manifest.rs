//! `kiln.toml`: the project description (every key is documented in docs/kiln-toml.md and
//! in the JSON Schema docs/kiln.schema.json). Parsed strictly: an unknown key, a wrong type
//! or a bad value is an error naming `kiln.toml:LINE:COLUMN`, with a hint.

use crate::{Error, Result};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// The project file's name; [`Project::load`] reads it from the project directory.
pub const FILE: &str = "kiln.toml";
/// The default base: Debian stable, built from the archive.
pub const DEFAULT_BASE: &str = "debian:bookworm";
/// `[app].workdir` when unset: the working directory in the image, where the code files
/// land, and the base of weights targets.
pub const DEFAULT_WORKDIR: &str = "/app";
/// `[app].user` when unset: the user the app runs as (uid and gid [`APP_UID`]), added to
/// the image's `/etc/passwd` when the base has none.
pub const DEFAULT_USER: &str = "app";
/// The uid and gid of the default user.
pub const APP_UID: u32 = 1000;

/// kiln.toml as written, before validation. Values an error may point at are
/// [`toml::Spanned`], so that [`Project::parse`] can name their line and column; it checks
/// this and derives a [`Project`] from it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// `[project]` (required): the image name, tag and description.
    pub project: ProjectSection,
    /// `[base]`: what the image starts from; [`DEFAULT_BASE`] when the section is absent.
    #[serde(default)]
    pub base: BaseSection,
    /// `[python]`: the interpreter version and where the dependencies come from.
    #[serde(default)]
    pub python: PythonSection,
    /// `[weights.NAME]` tables, by NAME: model files or directories that go into layers of
    /// their own.
    #[serde(default)]
    pub weights: BTreeMap<String, toml::Spanned<WeightsEntry>>,
    /// `[app]`: the code files, command, environment, ports, user and healthcheck.
    #[serde(default)]
    pub app: AppSection,
    /// `[resources]`: what the app needs to run; applied by `kiln run` and recorded in the
    /// image's [`PROJECT_LABEL`](crate::build::PROJECT_LABEL).
    #[serde(default)]
    pub resources: Resources,
}

/// `[project]` of kiln.toml.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectSection {
    /// The image name: `[a-z0-9][a-z0-9._-]*`, at most 128 bytes; the image is tagged
    /// `NAME:VERSION` and `NAME:latest`.
    pub name: toml::Spanned<String>,
    /// The image tag: letters, digits, `.`, `_` and `-`, at most 128 bytes.
    pub version: Option<toml::Spanned<String>>,
    /// The image's `org.opencontainers.image.description` label.
    pub description: Option<String>,
}

/// `[base]` of kiln.toml.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaseSection {
    /// `debian:SUITE` (bookworm, trixie, forky or sid: built from the Debian archive) or any
    /// other image reference (an image already in the store); [`DEFAULT_BASE`] when absent.
    #[serde(default = "default_base")]
    pub image: toml::Spanned<String>,
    /// Extra Debian packages (`name` or `name=version`), allowed only with a `debian:SUITE`
    /// base.
    pub packages: Option<toml::Spanned<Vec<String>>>,
}

impl Default for BaseSection {
    fn default() -> Self {
        BaseSection {
            image: default_base(),
            packages: None,
        }
    }
}

fn default_base() -> toml::Spanned<String> {
    toml::Spanned::new(0..0, DEFAULT_BASE.to_string())
}

/// `[python]` of kiln.toml. At most one of `lock`, `requirements` and `packages` may be
/// set; with none, the project's files decide (see [`Dependencies`]).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PythonSection {
    /// `MAJOR.MINOR` (e.g. `"3.11"`) that the base's interpreter must have.
    pub version: Option<toml::Spanned<String>>,
    /// A `uv.lock`, relative to the project, installed exactly; a `pyproject.toml` must sit
    /// next to it.
    pub lock: Option<toml::Spanned<String>>,
    /// A requirements file, relative to the project, resolved by uv into kiln.lock.
    pub requirements: Option<toml::Spanned<String>>,
    /// Requirements written inline (`"numpy"`, `"torch==2.5.1"`), resolved by uv into
    /// kiln.lock.
    pub packages: Option<toml::Spanned<Vec<String>>>,
    /// `index-url`: the package index to use instead of PyPI (uv's `--index-url`).
    pub index_url: Option<String>,
    /// `extra-index-url`: more indexes (uv's `--extra-index-url`).
    #[serde(default)]
    pub extra_index_url: Vec<String>,
    /// `find-links`: URLs, or directories inside the project, holding wheels (uv's
    /// `--find-links`).
    #[serde(default)]
    pub find_links: Vec<String>,
}

/// One `[weights.NAME]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeightsEntry {
    /// A file or directory of the project, relative to it.
    pub path: toml::Spanned<String>,
    /// Where it goes in the image (absolute, not `/`); default `[app].workdir` + `/` + `path`.
    pub target: Option<toml::Spanned<String>>,
}

/// A command as a list (exec form) or a string (run by `/bin/sh -c`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Command {
    /// A list: the program and its arguments (exec form).
    Exec(Vec<String>),
    /// A string, run as `/bin/sh -c STRING` (variables expanded).
    Shell(String),
}

impl Command {
    /// The argument vector the container runs: the list as it is, or
    /// `["/bin/sh", "-c", STRING]`.
    pub fn argv(&self) -> Vec<String> {
        match self {
            Command::Exec(v) => v.clone(),
            Command::Shell(s) => vec!["/bin/sh".into(), "-c".into(), s.clone()],
        }
    }
}

/// `[app]` of kiln.toml.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct AppSection {
    /// Patterns of the code layer's files (`.dockerignore` syntax, relative to the project);
    /// `["**"]` when absent.
    pub files: Option<toml::Spanned<Vec<String>>>,
    /// The working directory in the image (absolute), where the code files land;
    /// [`DEFAULT_WORKDIR`] when absent.
    pub workdir: Option<toml::Spanned<String>>,
    /// The image's `Cmd`; the base's when absent, else `python3`.
    pub command: Option<toml::Spanned<Command>>,
    /// The image's `Entrypoint`.
    pub entrypoint: Option<Vec<String>>,
    /// Environment variables of the image.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Ports the app listens on, from 1 to 65535 (read as `i64` so that an out-of-range one
    /// is reported, not a parse error).
    #[serde(default)]
    pub ports: Vec<toml::Spanned<i64>>,
    /// Who the app runs as: a user name (default [`DEFAULT_USER`]), `root`, `UID` or
    /// `UID:GID`.
    pub user: Option<toml::Spanned<String>>,
    /// Absolute paths in the image the app writes to (caches, uploads): each is made a
    /// directory owned by the app's user and listed in the image's project label.
    #[serde(default)]
    pub writable: Vec<String>,
    /// `[app.healthcheck]`.
    pub healthcheck: Option<toml::Spanned<Healthcheck>>,
}

/// `[app.healthcheck]` of kiln.toml: exactly one of `path` and `command`, and the timing.
/// Durations are strings such as `"30s"`, `"1m30s"` or `"500ms"` ([`parse_duration`]).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Healthcheck {
    /// An HTTP GET of `http://localhost:PORT/PATH`, PORT the first of `[app].ports` (which
    /// must not be empty).
    pub path: Option<String>,
    /// A program that exits 0 when the app is healthy.
    pub command: Option<Command>,
    /// Time between checks; the runtime's default when absent.
    pub interval: Option<toml::Spanned<String>>,
    /// How long one check may take; the runtime's default when absent.
    pub timeout: Option<toml::Spanned<String>>,
    /// `start-period`: start-up time in which failures do not count (a model loading).
    pub start_period: Option<toml::Spanned<String>>,
    /// Consecutive failures before the container counts as unhealthy.
    pub retries: Option<u32>,
}

/// `[resources]` of kiln.toml: what the app needs to run. `kiln run` applies it and the
/// image records it in its project label; only `gpus` changes the image itself.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    /// CPUs, whole or fractional; must be above 0.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpus: Option<Cpus>,
    /// The memory limit, a size or a number of bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemoryValue>,
    /// NVIDIA GPUs. Above 0, the image's environment asks NVIDIA's container runtime for
    /// them (see [`Project::env`]).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub gpus: u32,
}

/// `cpus = 2` or `cpus = 0.5`.
#[derive(Debug, Clone, Copy, Deserialize, serde::Serialize, PartialEq)]
#[serde(untagged)]
pub enum Cpus {
    /// A TOML integer: `cpus = 2`.
    Whole(i64),
    /// A TOML float: `cpus = 0.5`.
    Fraction(f64),
}

impl Cpus {
    /// The number of CPUs.
    pub fn value(self) -> f64 {
        match self {
            Cpus::Whole(n) => n as f64,
            Cpus::Fraction(f) => f,
        }
    }
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// `memory = "2g"` or a number of bytes.
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq)]
#[serde(untagged)]
pub enum MemoryValue {
    /// A TOML integer: a number of bytes (0 is refused).
    Bytes(u64),
    /// A size such as `"512m"`, `"2g"` or `"16Gi"`, read by [`parse_memory`].
    Text(String),
}

/// Where the Python dependencies come from.
#[derive(Debug, Clone, PartialEq)]
pub enum Dependencies {
    /// pyproject.toml + uv.lock (the path of uv.lock).
    UvLock(PathBuf),
    /// A requirements file (the project directory joined with its path), resolved by uv.
    Requirements(PathBuf),
    /// `[python].packages`: requirement strings, resolved by uv.
    Inline(Vec<String>),
    /// No Python packages: the base's interpreter and an empty virtual environment.
    None,
}

/// The base: a Debian suite kiln builds, or an image reference.
#[derive(Debug, Clone, PartialEq)]
pub enum Base {
    /// `debian:SUITE`: built by kiln from the Debian archive, pinned in kiln.lock.
    Debian {
        /// `bookworm`, `trixie`, `forky` or `sid`.
        suite: String,
    },
    /// Any other image reference; the image must already be in the store.
    Image(String),
}

/// One weights entry, resolved.
#[derive(Debug, Clone)]
pub struct Weights {
    /// The NAME of its `[weights.NAME]` table.
    pub name: String,
    /// In the project.
    pub path: PathBuf,
    /// Relative to the project (as written).
    pub rel: String,
    /// Absolute path in the image.
    pub target: String,
}

/// The healthcheck as Docker's config writes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Health {
    /// Docker's `Test`: `["CMD", PROGRAM, ARGS...]`. An HTTP check runs `python3 -c` with
    /// a GET (slim images have no curl); it fails on a status of 400 or above.
    pub test: Vec<String>,
    /// The URL path of an HTTP check; None for a command check.
    pub http_path: Option<String>,
    /// Time between checks, in nanoseconds; None: the runtime's default.
    pub interval_ns: Option<u64>,
    /// How long one check may take, in nanoseconds; None: the runtime's default.
    pub timeout_ns: Option<u64>,
    /// Start-up time in which failures do not count, in nanoseconds; None: the runtime's
    /// default.
    pub start_period_ns: Option<u64>,
    /// Consecutive failures before the container is unhealthy; None: the runtime's default.
    pub retries: Option<u32>,
}

/// A loaded, validated project.
#[derive(Debug, Clone)]
pub struct Project {
    /// The project directory, where kiln.toml is; relative paths are resolved against it.
    pub dir: PathBuf,
    /// kiln.toml as parsed, for what the fields below leave out (`[app].env`, `[python]`'s
    /// index options, `[resources]`).
    pub manifest: Manifest,
    /// The image name (`[project].name`, checked).
    pub name: String,
    /// The image tag (`[project].version`, checked).
    pub version: Option<String>,
    /// What the image starts from.
    pub base: Base,
    /// Extra Debian packages (`[base].packages`); empty unless the base is `debian:SUITE`.
    pub packages: Vec<String>,
    /// `[python].version`: the `MAJOR.MINOR` the base's interpreter must have.
    pub python_version: Option<String>,
    /// Where the Python dependencies come from, the files found by default included.
    pub deps: Dependencies,
    /// The `[weights.NAME]` entries, by name; each path exists and stays inside the project.
    pub weights: Vec<Weights>,
    /// The working directory in the image, normalized; [`DEFAULT_WORKDIR`] when unset.
    pub workdir: String,
    /// `[app].files` patterns; `["**"]` when unset.
    pub files: Vec<String>,
    /// `[app].command` as an argument vector ([`Command::argv`]); None: the base's.
    pub command: Option<Vec<String>>,
    /// `[app].entrypoint`; None: the base's.
    pub entrypoint: Option<Vec<String>>,
    /// `[app].ports`.
    pub ports: Vec<u16>,
    /// `uid:gid` and the user name (None for numeric users).
    pub user: (u32, u32, Option<String>),
    /// `[app.healthcheck]` in the form the image config takes.
    pub health: Option<Health>,
    /// `[resources].memory` in bytes.
    pub memory_bytes: Option<u64>,
}

/// Line and column (1-based) of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// Parses a TOML file kiln reads (`text`, read from `path`); where it does not parse, the
/// error is `path:line:col: message`, with `hint`.
pub(crate) fn parse_toml<T: serde::de::DeserializeOwned>(
    path: &Path,
    text: &str,
    hint: &str,
) -> Result<T> {
    toml::from_str(text).map_err(|e| {
        let (l, c) = line_col(text, e.span().map_or(0, |s| s.start));
        Error::with_hint(format!("{}:{l}:{c}: {}", path.display(), e.message()), hint)
    })
}

struct Ctx<'a> {
    file: &'a Path,
    text: &'a str,
}

impl Ctx<'_> {
    fn at(&self, span: &Range<usize>, msg: impl std::fmt::Display, hint: &str) -> Error {
        let (l, c) = line_col(self.text, span.start);
        let where_ = if span.is_empty() && span.start == 0 {
            self.file.display().to_string()
        } else {
            format!("{}:{l}:{c}", self.file.display())
        };
        Error::with_hint(format!("{where_}: {msg}"), hint)
    }
}

/// Parses a duration such as `30s`, `1m30s`, `500ms`, `2h`.
pub fn parse_duration(s: &str) -> Option<u64> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    let mut total: u64 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return None;
        }
        let n: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let (unit, len) = if rest.starts_with("ms") {
            (1_000_000u64, 2)
        } else if rest.starts_with('s') {
            (1_000_000_000, 1)
        } else if rest.starts_with('m') {
            (60_000_000_000, 1)
        } else if rest.starts_with('h') {
            (3_600_000_000_000, 1)
        } else {
            return None;
        };
        total = total.checked_add(n.checked_mul(unit)?)?;
        rest = &rest[len..];
    }
    Some(total)
}

/// Parses `512m`, `2g`, `1.5g`, `1024` (bytes), `2Gi`.
pub fn parse_memory(s: &str) -> Option<u64> {
    let t = s.trim().to_ascii_lowercase();
    let t = t.strip_suffix('b').unwrap_or(&t);
    let t = t.strip_suffix('i').unwrap_or(t);
    let (num, mult) = match t.char_indices().last()? {
        (i, 'k') => (&t[..i], 1u64 << 10),
        (i, 'm') => (&t[..i], 1 << 20),
        (i, 'g') => (&t[..i], 1 << 30),
        (i, 't') => (&t[..i], 1 << 40),
        _ => (t, 1),
    };
    let v: f64 = num.trim().parse().ok()?;
    (v.is_finite() && v > 0.0).then_some((v * mult as f64) as u64)
}

/// A relative path inside the project: no `..` that leaves it, not absolute.
fn inside(rel: &str) -> bool {
    let p = Path::new(rel);
    if p.is_absolute() {
        return false;
    }
    let mut depth: i32 = 0;
    for c in p.components() {
        match c {
            std::path::Component::ParentDir => depth -= 1,
            std::path::Component::Normal(_) => depth += 1,
            _ => {}
        }
        if depth < 0 {
            return false;
        }
    }
    true
}

/// Whether `path` (in the project) leads outside `dir` once links are followed: what
/// kiln reads from a project must be the project's (a link to ~/.ssh must not reach an
/// image). A path that does not exist does not leave.
fn leaves(dir: &Path, path: &Path) -> bool {
    match (std::fs::canonicalize(dir), std::fs::canonicalize(path)) {
        (Ok(root), Ok(real)) => !real.starts_with(root),
        _ => false,
    }
}

fn valid_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"._-".contains(c))
}

/// Joins an absolute image directory and a relative path (`/app` + `models/x` ->
/// `/app/models/x`), lexically.
pub fn image_join(dir: &str, rel: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in dir.split('/').chain(rel.split('/')) {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    format!("/{}", parts.join("/"))
}

impl Project {
    /// Reads and validates `DIR/kiln.toml`.
    pub fn load(dir: &Path) -> Result<Project> {
        let file = dir.join(FILE);
        let text = std::fs::read_to_string(&file).map_err(|e| {
            Error::with_hint(
                format!("{}: {e}", file.display()),
                "`kiln init` writes a kiln.toml for an existing Python project",
            )
        })?;
        Self::parse(dir, &file, &text)
    }

    /// Validates the text of a kiln.toml that lives in `dir`.
    pub fn parse(dir: &Path, file: &Path, text: &str) -> Result<Project> {
        let cx = Ctx { file, text };
        let manifest: Manifest = toml::from_str(text).map_err(|e| {
            let span = e.span().unwrap_or(0..0);
            let msg = e.message().trim().to_string();
            let hint = if msg.contains("unknown field") {
                "see docs/kiln-toml.md for every key kiln.toml may have"
            } else if msg.contains("missing field `project`") {
                "a kiln.toml starts with [project] and its name: `[project]\\nname = \"app\"`"
            } else if msg.contains("invalid type") {
                "see docs/kiln-toml.md for the type of each key"
            } else {
                "kiln.toml is TOML (https://toml.io); see docs/kiln-toml.md"
            };
            let span = if span.is_empty() && span.start == 0 {
                0..1
            } else {
                span
            };
            cx.at(&span, msg, hint)
        })?;
        let name = manifest.project.name.get_ref().clone();
        if !valid_name(&name) {
            return Err(cx.at(
                &manifest.project.name.span(),
                format!("project name `{name}` is not a valid image name"),
                "use lowercase letters, digits and `.`, `_`, `-`, starting with a letter or digit",
            ));
        }
        let version = manifest
            .project
            .version
            .as_ref()
            .map(|v| v.get_ref().clone());
        if let Some(v) = &manifest.project.version {
            let ok = !v.get_ref().is_empty()
                && v.get_ref().len() <= 128
                && v.get_ref()
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
            if !ok {
                return Err(cx.at(
                    &v.span(),
                    format!("version `{}` cannot be an image tag", v.get_ref()),
                    "use letters, digits, `.`, `_` and `-` (e.g. 1.2.0)",
                ));
            }
        }
        let image = manifest.base.image.get_ref().trim().to_string();
        let base = match image.strip_prefix("debian:") {
            Some(suite) if !suite.is_empty() && !suite.contains(['/', '@', ':']) => {
                if !matches!(suite, "bookworm" | "trixie" | "forky" | "sid") {
                    return Err(cx.at(
                        &manifest.base.image.span(),
                        format!("kiln does not build Debian `{suite}`"),
                        "use debian:bookworm or debian:trixie, or name any image",
                    ));
                }
                Base::Debian {
                    suite: suite.to_string(),
                }
            }
            _ => {
                if image.is_empty() {
                    return Err(cx.at(
                        &manifest.base.image.span(),
                        "the base image is empty",
                        "use debian:bookworm, debian:trixie, or an image reference",
                    ));
                }
                Base::Image(image)
            }
        };
        let packages_span = manifest.base.packages.as_ref().map_or(0..0, |p| p.span());
        let packages = manifest
            .base
            .packages
            .as_ref()
            .map(|p| p.get_ref().clone())
            .unwrap_or_default();
        if !packages.is_empty() && matches!(base, Base::Image(_)) {
            return Err(cx.at(
                &packages_span,
                "[base].packages needs a Debian base that kiln builds (debian:SUITE)",
                "install system packages in the base image itself, or use a debian:SUITE base",
            ));
        }
        for p in &packages {
            let n = p.split('=').next().unwrap_or("");
            if n.is_empty()
                || !n
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+-.".contains(c))
            {
                return Err(cx.at(
                    &packages_span,
                    format!("`{p}` is not a Debian package name"),
                    "Debian packages are lowercase names such as libgomp1, optionally `name=version`",
                ));
            }
        }
        let py = &manifest.python;
        let python_version = match &py.version {
            Some(v) => {
                let s = v.get_ref().trim();
                let ok = s.split('.').count() >= 2
                    && s.split('.')
                        .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
                    && s.starts_with("3.");
                if !ok {
                    return Err(cx.at(
                        &v.span(),
                        format!("python version `{s}` is not a Python 3 version"),
                        "write MAJOR.MINOR, e.g. \"3.11\"",
                    ));
                }
                Some(s.to_string())
            }
            None => None,
        };
        let sources = [
            py.lock.is_some(),
            py.requirements.is_some(),
            py.packages.is_some(),
        ];
        if sources.iter().filter(|s| **s).count() > 1 {
            let span = py
                .requirements
                .as_ref()
                .map(|s| s.span())
                .or(py.packages.as_ref().map(|s| s.span()))
                .unwrap_or(0..0);
            return Err(cx.at(
                &span,
                "[python] names more than one source of dependencies",
                "keep one of `lock`, `requirements` and `packages`",
            ));
        }
        let check_file = |s: &toml::Spanned<String>, what: &str| -> Result<PathBuf> {
            let rel = s.get_ref();
            if !inside(rel) {
                return Err(cx.at(
                    &s.span(),
                    format!("`{rel}` is outside the project"),
                    "paths in kiln.toml are relative to the project directory and stay inside it",
                ));
            }
            let p = dir.join(rel);
            if !p.is_file() {
                return Err(cx.at(
                    &s.span(),
                    format!("{what} `{rel}` does not exist ({})", p.display()),
                    "fix the path, or remove the key to let kiln look for uv.lock or requirements.txt",
                ));
            }
            if leaves(dir, &p) {
                return Err(cx.at(
                    &s.span(),
                    format!("{what} `{rel}` is a link that leads outside the project"),
                    "kiln reads only the project's files: copy the file into the project",
                ));
            }
            Ok(p)
        };
        for f in &py.find_links {
            if !f.contains("://") && !inside(f) {
                return Err(Error::with_hint(
                    format!(
                        "{}: [python] find-links `{f}` is outside the project",
                        file.display()
                    ),
                    "find-links are URLs or directories inside the project",
                ));
            }
        }
        let deps = if let Some(l) = &py.lock {
            let p = check_file(l, "the lock file")?;
            if !p.with_file_name("pyproject.toml").is_file() {
                return Err(cx.at(
                    &l.span(),
                    format!("`{}` has no pyproject.toml next to it", l.get_ref()),
                    "uv.lock belongs to a pyproject.toml: keep them in the same directory",
                ));
            }
            Dependencies::UvLock(p)
        } else if let Some(r) = &py.requirements {
            Dependencies::Requirements(check_file(r, "the requirements file")?)
        } else if let Some(list) = &py.packages {
            for r in list.get_ref() {
                if r.trim().is_empty() || r.trim_start().starts_with('-') {
                    return Err(cx.at(
                        &list.span(),
                        format!("`{r}` is not a requirement"),
                        "write requirements as `name`, `name==1.2` or `name>=1,<2`; index options go in index-url / extra-index-url / find-links",
                    ));
                }
            }
            Dependencies::Inline(list.get_ref().clone())
        } else if dir.join("uv.lock").is_file() && dir.join("pyproject.toml").is_file() {
            Dependencies::UvLock(dir.join("uv.lock"))
        } else if dir.join("requirements.txt").is_file() {
            Dependencies::Requirements(dir.join("requirements.txt"))
        } else if dir.join("pyproject.toml").is_file() {
            return Err(Error::with_hint(
                format!(
                    "{}: the project has pyproject.toml but no uv.lock",
                    file.display()
                ),
                "run `uv lock` in the project (kiln installs exactly what uv.lock says), or set [python] requirements",
            ));
        } else {
            Dependencies::None
        };
        // The dependency files, found by default or next to uv.lock, are the project's too.
        let dep_files: Vec<PathBuf> = match &deps {
            Dependencies::UvLock(l) => vec![l.clone(), l.with_file_name("pyproject.toml")],
            Dependencies::Requirements(r) => vec![r.clone()],
            _ => vec![],
        };
        if let Some(f) = dep_files.iter().find(|f| leaves(dir, f)) {
            return Err(Error::with_hint(
                format!("{}: a link that leads outside the project", f.display()),
                "kiln reads only the project's files: copy the file into the project",
            ));
        }
        let workdir = match &manifest.app.workdir {
            Some(w) => {
                let s = w.get_ref();
                if !s.starts_with('/') || s.split('/').any(|c| c == "..") {
                    return Err(cx.at(
                        &w.span(),
                        format!("workdir `{s}` is not an absolute path in the image"),
                        "write an absolute path such as /app",
                    ));
                }
                image_join("/", s)
            }
            None => DEFAULT_WORKDIR.to_string(),
        };
        let mut weights = Vec::new();
        for (name, entry) in &manifest.weights {
            let e = entry.get_ref();
            let rel = e.path.get_ref().trim_end_matches('/').to_string();
            if !inside(&rel) || rel.is_empty() {
                return Err(cx.at(
                    &e.path.span(),
                    format!("weights `{name}`: `{rel}` is outside the project"),
                    "weights paths are relative to the project directory",
                ));
            }
            let path = dir.join(&rel);
            if leaves(dir, &path) {
                return Err(cx.at(
                    &e.path.span(),
                    format!("weights `{name}`: `{rel}` is a link that leads outside the project"),
                    "kiln puts only the project's files in the image: copy the weights into the project",
                ));
            }
            if !path.exists() {
                return Err(cx.at(
                    &e.path.span(),
                    format!(
                        "weights `{name}`: `{rel}` does not exist ({})",
                        path.display()
                    ),
                    "fix the path, or produce the weights first (e.g. run your training script)",
                ));
            }
            let target = match &e.target {
                Some(t) => {
                    let s = t.get_ref();
                    if !s.starts_with('/') || s.split('/').any(|c| c == "..") || s == "/" {
                        return Err(cx.at(
                            &t.span(),
                            format!("weights `{name}`: target `{s}` is not an absolute path in the image"),
                            "write an absolute path such as /models/NAME",
                        ));
                    }
                    let span = t.span();
                    let t = image_join("/", s);
                    if t == "/" {
                        return Err(cx.at(
                            &span,
                            format!("weights `{name}`: target `{s}` is the image's root"),
                            "write a directory such as /models/NAME",
                        ));
                    }
                    t
                }
                None => image_join(&workdir, &rel),
            };
            weights.push(Weights {
                name: name.clone(),
                path,
                rel,
                target,
            });
        }
        let files = match &manifest.app.files {
            Some(f) => {
                for g in f.get_ref() {
                    if !inside(g.trim_start_matches('!')) {
                        return Err(cx.at(
                            &f.span(),
                            format!("`{g}` is outside the project"),
                            "[app].files are globs relative to the project directory",
                        ));
                    }
                }
                f.get_ref().clone()
            }
            None => vec!["**".to_string()],
        };
        let mut ports = Vec::new();
        for p in &manifest.app.ports {
            let n = *p.get_ref();
            if !(1..=65535).contains(&n) {
                return Err(cx.at(
                    &p.span(),
                    format!("port {n} is out of range"),
                    "ports are numbers from 1 to 65535",
                ));
            }
            ports.push(n as u16);
        }
        let user = match &manifest.app.user {
            None => (APP_UID, APP_UID, Some(DEFAULT_USER.to_string())),
            Some(u) => {
                let s = u.get_ref().trim();
                if s == "root" || s == "0" {
                    (0, 0, Some("root".into()))
                } else if let Some((a, b)) = s.split_once(':') {
                    match (a.parse(), b.parse()) {
                        (Ok(a), Ok(b)) => (a, b, None),
                        _ => {
                            return Err(cx.at(
                                &u.span(),
                                format!("user `{s}` is not UID:GID"),
                                "write a name (app), `root`, a UID or UID:GID",
                            ))
                        }
                    }
                } else if let Ok(n) = s.parse::<u32>() {
                    (n, n, None)
                } else if valid_user_name(s) {
                    (APP_UID, APP_UID, Some(s.to_string()))
                } else {
                    return Err(cx.at(
                        &u.span(),
                        format!("user `{s}` is not a valid user name"),
                        "user names are lowercase letters, digits, `_` and `-`, starting with a letter",
                    ));
                }
            }
        };
        for w in &manifest.app.writable {
            if !w.starts_with('/') || w.split('/').any(|c| c == "..") || image_join("/", w) == "/" {
                return Err(Error::with_hint(
                    format!(
                        "{}: [app] writable `{w}` is not an absolute path in the image",
                        file.display()
                    ),
                    "write absolute paths below /, such as \"/app/cache\"",
                ));
            }
        }
        let health = match &manifest.app.healthcheck {
            None => None,
            Some(h) => Some(health(&cx, h, ports.first().copied())?),
        };
        let memory_bytes = match &manifest.resources.memory {
            None => None,
            Some(MemoryValue::Bytes(0)) => {
                return Err(Error::with_hint(
                    format!("{}: [resources] memory = 0 is not a size", file.display()),
                    "write a size such as \"512m\" or \"2g\"",
                ))
            }
            Some(MemoryValue::Bytes(b)) => Some(*b),
            Some(MemoryValue::Text(t)) => Some(parse_memory(t).ok_or_else(|| {
                Error::with_hint(
                    format!("{}: [resources] memory `{t}` is not a size", file.display()),
                    "write a size such as \"512m\" or \"2g\"",
                )
            })?),
        };
        if let Some(c) = manifest.resources.cpus.map(Cpus::value) {
            if !(c.is_finite() && c > 0.0) {
                return Err(Error::with_hint(
                    format!(
                        "{}: [resources] cpus = {c} is not a positive number",
                        file.display()
                    ),
                    "write a number of CPUs such as 2 or 0.5",
                ));
            }
        }
        let command = manifest.app.command.as_ref().map(|c| c.get_ref().argv());
        if let Some(c) = &manifest.app.command {
            let empty = match c.get_ref() {
                Command::Exec(v) => v.first().is_none_or(|s| s.trim().is_empty()),
                Command::Shell(t) => t.trim().is_empty(),
            };
            if empty {
                return Err(cx.at(
                    &c.span(),
                    "the command is empty",
                    "write the program and its arguments, e.g. [\"python\", \"main.py\"]",
                ));
            }
        }
        Ok(Project {
            dir: dir.to_path_buf(),
            name,
            version,
            base,
            packages,
            python_version,
            deps,
            weights,
            workdir,
            files,
            command,
            entrypoint: manifest.app.entrypoint.clone(),
            ports,
            user,
            health,
            memory_bytes,
            manifest,
        })
    }

    /// The `KEY=VALUE` environment the image gets from `[app] env` and `[resources] gpus`.
    pub fn env(&self) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = self
            .manifest
            .app
            .env
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if self.manifest.resources.gpus > 0 {
            for (k, v) in [
                ("NVIDIA_VISIBLE_DEVICES", "all"),
                ("NVIDIA_DRIVER_CAPABILITIES", "compute,utility"),
            ] {
                if !env.iter().any(|(e, _)| e == k) {
                    env.push((k.into(), v.into()));
                }
            }
        }
        env
    }
}

fn valid_user_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 32
        && (b[0].is_ascii_lowercase() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"_-".contains(c))
}

fn health(cx: &Ctx<'_>, h: &toml::Spanned<Healthcheck>, port: Option<u16>) -> Result<Health> {
    let span = h.span();
    let h = h.get_ref();
    let dur = |d: &Option<toml::Spanned<String>>, what: &str| -> Result<Option<u64>> {
        match d {
            None => Ok(None),
            Some(s) => parse_duration(s.get_ref()).map(Some).ok_or_else(|| {
                cx.at(
                    &s.span(),
                    format!("healthcheck {what} `{}` is not a duration", s.get_ref()),
                    "write durations such as \"30s\", \"1m30s\" or \"500ms\"",
                )
            }),
        }
    };
    let (test, http_path) = match (&h.path, &h.command) {
        (Some(_), Some(_)) | (None, None) => return Err(cx.at(
            &span,
            "[app.healthcheck] needs exactly one of `path` and `command`",
            "`path = \"/health\"` checks HTTP on the first port; `command = [...]` runs a program",
        )),
        (Some(p), None) => {
            let Some(port) = port else {
                return Err(cx.at(
                    &span,
                    "an HTTP healthcheck needs a port, and [app].ports is empty",
                    "add `ports = [8000]` (the port the app listens on) to [app]",
                ));
            };
            if !p.starts_with('/') || p.contains(['\'', '"', '\\', '\n', ' ']) {
                return Err(cx.at(
                    &span,
                    format!("healthcheck path `{p}` is not an absolute URL path"),
                    "write a path such as \"/health\"",
                ));
            }
            let url = format!("http://localhost:{port}{p}");
            // No curl in a slim image: the interpreter the image has anyway does the GET.
            let script = format!(
                "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('{url}', timeout=10).status < 400 else 1)"
            );
            (
                vec!["CMD".into(), "python3".into(), "-c".into(), script],
                Some(p.clone()),
            )
        }
        (None, Some(c)) => {
            if c.argv().first().is_none_or(|s| s.trim().is_empty())
                || matches!(c, Command::Shell(t) if t.trim().is_empty())
            {
                return Err(cx.at(
                    &span,
                    "the healthcheck command is empty",
                    "write the program and its arguments, e.g. [\"python3\", \"check.py\"]",
                ));
            }
            let mut t = vec!["CMD".to_string()];
            t.extend(c.argv());
            (t, None)
        }
    };
    Ok(Health {
        test,
        http_path,
        interval_ns: dur(&h.interval, "interval")?,
        timeout_ns: dur(&h.timeout, "timeout")?,
        start_period_ns: dur(&h.start_period, "start-period")?,
        retries: h.retries,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Project> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("model.bin"), b"w").unwrap();
        std::fs::write(dir.path().join("requirements.txt"), b"numpy\n").unwrap();
        Project::parse(dir.path(), Path::new("kiln.toml"), text)
    }

    fn err(text: &str) -> String {
        let e = parse(text).unwrap_err();
        format!("{e}\nhint: {}", e.hint().unwrap_or_default())
    }

    #[test]
    fn a_full_manifest_parses() {
        let p = parse(
            r#"
[project]
name = "iris"
version = "0.1.0"
[base]
image = "debian:trixie"
packages = ["libgomp1"]
[python]
version = "3.13"
requirements = "requirements.txt"
extra-index-url = ["https://download.pytorch.org/whl/cu124"]
[weights.model]
path = "model.bin"
[app]
files = ["app.py"]
command = "uvicorn app:app"
ports = [8000]
env = { A = "b" }
[app.healthcheck]
path = "/health"
interval = "1m30s"
[resources]
cpus = 2
memory = "2g"
gpus = 1
"#,
        )
        .unwrap();
        assert_eq!(
            p.base,
            Base::Debian {
                suite: "trixie".into()
            }
        );
        assert_eq!(p.weights[0].target, "/app/model.bin");
        assert_eq!(p.ports, [8000]);
        assert_eq!(p.user, (1000, 1000, Some("app".into())));
        assert_eq!(p.command.as_ref().unwrap()[0], "/bin/sh");
        let h = p.health.clone().unwrap();
        assert_eq!(h.interval_ns, Some(90_000_000_000));
        assert!(h.test[3].contains("http://localhost:8000/health"));
        assert_eq!(p.memory_bytes, Some(2 << 30));
        assert!(p
            .env()
            .contains(&("NVIDIA_VISIBLE_DEVICES".into(), "all".into())));
    }

    #[test]
    fn errors_name_line_and_column_with_a_hint() {
        let e = err("[project]\nname = \"x\"\nnmae = 1\n");
        assert!(
            e.contains("kiln.toml:3:1") && e.contains("unknown field `nmae`"),
            "{e}"
        );
        assert!(e.contains("hint: see docs/kiln-toml.md"), "{e}");
        let e = err("[project]\nname = \"x\"\n[app]\nports = [\"http\"]\n");
        assert!(
            e.contains("kiln.toml:4:") && e.contains("invalid type"),
            "{e}"
        );
        let e = err("[project]\nname = \"x\"\n[app]\nports = [70000]\n");
        assert!(
            e.contains("kiln.toml:4:10") && e.contains("out of range"),
            "{e}"
        );
        let e = err("[project]\nname = \"x\"\n[weights.w]\npath = \"nope.bin\"\n");
        assert!(
            e.contains("kiln.toml:4:8") && e.contains("does not exist"),
            "{e}"
        );
        let e = err("[project]\nname = \"x\"\n[python]\nrequirements = \"../etc/passwd\"\n");
        assert!(e.contains("outside the project"), "{e}");
        let e = err("[project]\nname = \"X Y\"\n");
        assert!(
            e.contains("kiln.toml:2:8") && e.contains("not a valid image name"),
            "{e}"
        );
        let e = links_out();
        assert!(
            e.contains("kiln.toml:4:8") && e.contains("leads outside the project"),
            "{e}"
        );
        let e = err("[project]\nname = \"x\"\n[python]\nversion = \"three\"\n");
        assert!(e.contains("not a Python 3 version"), "{e}");
        let e = err("[project]\nname = \"x\"\n[app.healthcheck]\npath = \"/h\"\n");
        assert!(e.contains("needs a port"), "{e}");
        let e = err("name = \"x\"\n");
        assert!(e.contains("kiln.toml:1:1"), "{e}");
    }

    /// A weights entry that is a link to a host directory.
    fn links_out() -> String {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("models")).unwrap();
        let e = Project::parse(
            dir.path(),
            Path::new("kiln.toml"),
            "[project]\nname = \"x\"\n[weights.w]\npath = \"models\"\n",
        )
        .unwrap_err();
        format!("{e}\nhint: {}", e.hint().unwrap_or_default())
    }

    #[test]
    fn durations_and_sizes() {
        assert_eq!(parse_duration("500ms"), Some(500_000_000));
        assert_eq!(parse_duration("1h2m"), Some(3_720_000_000_000));
        assert_eq!(parse_duration("10"), None);
        assert_eq!(parse_memory("512m"), Some(512 << 20));
        assert_eq!(parse_memory("2Gi"), Some(2 << 30));
        assert_eq!(parse_memory("lots"), None);
        assert_eq!(image_join("/app", "models/../x"), "/app/x");
    }
}
