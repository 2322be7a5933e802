//! The code layer's files: the project directory less kiln's own files, weights,
//! .kilnignore and what `[app].files` leaves out.

use super::io;
use crate::manifest::Project;
use crate::{Error, Result};
use std::fs;
use std::path::PathBuf;

/// Files of the code layer: (relative path, absolute path), sorted.
pub(super) fn code_files(p: &Project) -> Result<Vec<(String, PathBuf)>> {
    let ignore_text = fs::read_to_string(p.dir.join(".kilnignore")).unwrap_or_default();
    let ignore = kiln_build::dockerignore::Ignore::parse(&gitignore_to_dockerignore(&ignore_text));
    let include = kiln_build::dockerignore::Ignore::parse(&p.files.join("\n"));
    let weights: Vec<&str> = p.weights.iter().map(|w| w.rel.as_str()).collect();
    let builtin = [
        "kiln.toml",
        "kiln.lock",
        ".kilnignore",
        ".git",
        ".venv",
        "__pycache__",
        ".pytest_cache",
        ".mypy_cache",
        ".ruff_cache",
    ];
    let root = fs::canonicalize(&p.dir).map_err(io(&p.dir))?;
    let mut out = Vec::new();
    let mut stack = vec![(String::new(), p.dir.clone())];
    let mut seen = 0usize;
    while let Some((rel, dir)) = stack.pop() {
        for e in fs::read_dir(&dir).map_err(io(&dir))? {
            let e = e.map_err(io(&dir))?;
            seen += 1;
            if seen > 200_000 {
                return Err(Error::with_hint(
                    format!("{}: more than 200,000 files", p.dir.display()),
                    "list the code in [app].files or exclude data directories in .kilnignore",
                ));
            }
            let name = e.file_name().to_string_lossy().into_owned();
            let r = if rel.is_empty() {
                name.clone()
            } else {
                format!("{rel}/{name}")
            };
            if builtin.contains(&name.as_str()) || name.ends_with(".pyc") {
                continue;
            }
            if weights
                .iter()
                .any(|w| r == *w || r.starts_with(&format!("{w}/")))
            {
                continue;
            }
            if ignore.is_excluded(&r) {
                continue;
            }
            let path = e.path();
            let ft = e.file_type().map_err(io(&path))?;
            let real = if ft.is_symlink() {
                match fs::canonicalize(&path) {
                    Ok(real) if real.starts_with(&root) => real,
                    _ => {
                        return Err(Error::with_hint(
                            format!("{}: a link that leaves the project", path.display()),
                            "the image gets files inside the project only: copy the target in, or add the link to .kilnignore",
                        ))
                    }
                }
            } else {
                path.clone()
            };
            if real.is_dir() {
                if !ft.is_symlink() && (include.may_include_under(&r) || include.is_excluded(&r)) {
                    stack.push((r, path));
                }
            } else if real.is_file() && include.is_excluded(&r) {
                out.push((r, real));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// .kilnignore is gitignore syntax; kiln's matcher speaks .dockerignore: a pattern without
/// an inner slash matches at any depth (`**/`), a leading slash anchors it, a trailing
/// slash (directory only) is dropped.
pub(super) fn gitignore_to_dockerignore(text: &str) -> String {
    let mut out = String::new();
    for l in text.lines() {
        let t = l.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let (neg, pat) = match t.strip_prefix('!') {
            Some(p) => ("!", p),
            None => ("", t),
        };
        let pat = pat.trim_end_matches('/');
        let anchored = pat.starts_with('/') || pat.contains('/');
        let pat = pat.trim_start_matches('/');
        if anchored {
            out.push_str(&format!("{neg}{pat}\n{neg}{pat}/**\n"));
        } else {
            out.push_str(&format!("{neg}**/{pat}\n{neg}**/{pat}/**\n"));
        }
    }
    out
}
