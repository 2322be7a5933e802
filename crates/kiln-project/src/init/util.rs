//! Small helpers: bounded text reads, `/`-separated relative paths, and the wording of
//! the report lines.

use super::render::comment;
use super::MAX_NOTED;
use crate::{Error, Result};
use std::fmt::Write as _;
use std::fs;
use std::io::Read as _;
use std::path::Path;

pub(super) fn read_text(path: &Path, limit: u64) -> Result<String> {
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

pub(super) fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

pub(super) fn parent(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(p, _)| p)
}

pub(super) fn file_name(path: &str) -> &str {
    path.rsplit_once('/').map_or(path, |(_, n)| n)
}

pub(super) fn top(path: &str) -> &str {
    path.split('/').next().unwrap_or(path)
}

/// `path` is strictly below `dir`.
pub(super) fn is_under(path: &str, dir: &str) -> bool {
    !dir.is_empty()
        && path.len() > dir.len()
        && path.starts_with(dir)
        && path.as_bytes()[dir.len()] == b'/'
}

/// Some directory of `path` (not its last component) is named one of `names`.
pub(super) fn in_dirs(path: &str, names: &[&str]) -> bool {
    let mut parts: Vec<&str> = path.split('/').collect();
    parts.pop();
    parts.iter().any(|p| names.contains(p))
}

/// A relative path without `.` and `..` that stays in the project.
pub(super) fn normalize_rel(path: &str) -> Option<String> {
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

/// Whether the glob (`"dir/**"`, `"file"`, `"**"`) of [`Detection::app_files`](super::Detection::app_files) covers `path`.
pub(super) fn glob_covers(glob: &str, path: &str) -> bool {
    match glob.strip_suffix("/**") {
        _ if glob == "**" => true,
        Some(dir) => is_under(path, dir),
        None => glob == path,
    }
}

pub(super) fn is_placeholder(path: &str) -> bool {
    let name = file_name(path).to_ascii_lowercase();
    name == ".gitkeep" || name == ".keep" || name.starts_with("readme")
}

pub(super) fn display_dir(rel: &str) -> String {
    if rel.is_empty() {
        ".".to_string()
    } else {
        format!("{rel}/")
    }
}

pub(super) fn one_line(s: &str) -> String {
    let line = s.lines().next().unwrap_or("");
    comment(line)
}

pub(super) fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

pub(super) fn list_some(items: &[String]) -> String {
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

pub(super) fn human_size(bytes: u64) -> String {
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
