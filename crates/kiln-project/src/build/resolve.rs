//! Resolving the project's Python dependencies with uv (`uv pip compile`, or `uv export`
//! of a uv.lock), and finding uv.

use super::base::Interp;
use super::io;
use crate::manifest::{Dependencies, Project};
use crate::pylock::{self, LockedDist};
use crate::uv::{self, Uv};
use crate::{Error, Progress, Result};
use kiln_store::Store;
use std::fs;
use std::path::Path;

/// Index options for uv from `[python]` (and uv.lock's registries when it has them).
pub(super) fn index_args(p: &Project, registries: &[String]) -> Vec<String> {
    let py = &p.manifest.python;
    let mut a = Vec::new();
    let mut extra = py.extra_index_url.clone();
    match (&py.index_url, registries.split_first()) {
        (Some(u), _) => {
            a.extend(["--index-url".into(), u.clone()]);
            extra.extend(registries.iter().filter(|r| *r != u).cloned());
        }
        (None, Some((first, rest))) => {
            a.extend(["--index-url".into(), first.clone()]);
            extra.extend(rest.iter().cloned());
        }
        (None, None) => {}
    }
    for e in extra {
        if !a.contains(&e) {
            a.extend(["--extra-index-url".into(), e]);
        }
    }
    for f in &py.find_links {
        let f = if f.contains("://") {
            f.clone()
        } else {
            p.dir.join(f).display().to_string()
        };
        a.extend(["--find-links".into(), f]);
    }
    a
}

/// The line of `file` that names requirement `name` (for error messages).
fn requirement_line(file: &Path, uv_message: &str) -> Option<String> {
    let text = fs::read_to_string(file).ok()?;
    let msg = uv_message.to_ascii_lowercase();
    for (i, line) in text.lines().enumerate() {
        let l = line.trim();
        if l.is_empty() || l.starts_with('#') || l.starts_with('-') {
            continue;
        }
        let name: String = l
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || "-_.".contains(*c))
            .collect();
        if !name.is_empty() && msg.contains(&pylock::normalize(&name)) {
            return Some(format!("{}:{}", file.display(), i + 1));
        }
    }
    None
}

/// Resolves the project's Python dependencies for `interp` with uv.
pub(super) fn resolve_python(
    uv: &Uv,
    p: &Project,
    interp: &Interp,
    tmp: &Path,
) -> Result<Vec<LockedDist>> {
    let compile = |input: &Path, no_deps: bool, registries: &[String]| -> Result<Vec<LockedDist>> {
        let out = tmp.join("pylock.toml");
        let mut c = uv.command();
        c.current_dir(&p.dir)
            .args(["pip", "compile", "--quiet", "--format", "pylock.toml"])
            .args([
                "--python-platform",
                &interp.platform,
                "--python-version",
                &interp.version,
            ])
            .args(index_args(p, registries))
            .arg("-o")
            .arg(&out)
            .arg(input);
        if no_deps {
            c.arg("--no-deps");
        }
        uv.run(c, "cannot resolve the Python dependencies", "")
            .map_err(|e| {
                let msg = e.to_string();
                let at = match &p.deps {
                    Dependencies::Requirements(r) => requirement_line(r, &msg),
                    Dependencies::Inline(_) => p
                        .manifest
                        .python
                        .packages
                        .as_ref()
                        .map(|s| {
                            let text = fs::read_to_string(p.dir.join(crate::manifest::FILE)).unwrap_or_default();
                            let (l, _) = crate::manifest::line_col(&text, s.span().start);
                            format!("{}:{l}", p.dir.join(crate::manifest::FILE).display())
                        }),
                    _ => None,
                };
                let head = match at {
                    Some(at) => format!("{at}: {msg}"),
                    None => msg,
                };
                Error::with_hint(
                    head,
                    format!(
                        "check the requirement's name and version on PyPI (or [python] index-url); kiln needs a wheel (or a source distribution it builds) of each for Python {} on {}",
                        interp.version, interp.platform
                    ),
                )
            })?;
        let text = fs::read_to_string(&out).map_err(io(&out))?;
        pylock::read(&text, "uv pip compile")
    };
    match &p.deps {
        Dependencies::None => Ok(vec![]),
        Dependencies::Requirements(r) => compile(r, false, &[]),
        Dependencies::Inline(list) => {
            let f = tmp.join("requirements.in");
            fs::write(&f, list.join("\n") + "\n").map_err(io(&f))?;
            compile(&f, false, &[])
        }
        Dependencies::UvLock(lock_path) => {
            let project_dir = lock_path.parent().unwrap_or(&p.dir);
            let facts = pylock::read_uv_lock(lock_path)?;
            let reqs = tmp.join("requirements.txt");
            let mut c = uv.command();
            c.current_dir(project_dir)
                .args([
                    "export",
                    "--quiet",
                    "--locked",
                    "--format",
                    "requirements-txt",
                    "--no-dev",
                    "--no-emit-workspace",
                    "--no-hashes",
                    "--no-header",
                    "--no-annotate",
                    "--output-file",
                ])
                .arg(&reqs);
            uv.run(c, &format!("{}", lock_path.display()), "")
                .map_err(|e| {
                    let msg = e.to_string();
                    if msg.contains("needs to be updated") {
                        let pyproject = project_dir.join("pyproject.toml");
                        let line = fs::read_to_string(&pyproject)
                            .ok()
                            .and_then(|t| {
                                t.lines()
                                    .position(|l| l.trim_start().starts_with("dependencies"))
                            })
                            .map_or(1, |i| i + 1);
                        Error::with_hint(
                            format!(
                                "{}:{line}: uv.lock is out of date with pyproject.toml ({})",
                                pyproject.display(),
                                lock_path.display()
                            ),
                            "run `uv lock` in the project to update uv.lock, then build again",
                        )
                    } else {
                        Error::with_hint(msg, "check that `uv lock --check` passes in the project")
                    }
                })?;
            let dists = compile(&reqs, true, &facts.registries)?;
            for d in &dists {
                let allowed = facts.hashes.get(&(d.name.clone(), d.version.clone()));
                if !allowed.is_some_and(|h| h.contains(&d.sha256)) {
                    return Err(Error::with_hint(
                        format!(
                            "{}: the wheel {} (sha256 {}) is not one uv.lock allows for {} {}",
                            lock_path.display(),
                            d.filename(),
                            d.sha256,
                            d.name,
                            d.version
                        ),
                        "the index serves other files than when uv.lock was written: run `uv lock` again",
                    ));
                }
            }
            Ok(dists)
        }
    }
}

pub(super) fn get_uv<'a>(
    store: &Store,
    uv: &'a mut Option<Uv>,
    progress: &dyn Progress,
) -> Result<&'a Uv> {
    if uv.is_none() {
        *uv = Some(uv::locate(
            &kiln_store::layout::caches(store.root()),
            &|m| progress.note(m),
        )?);
    }
    Ok(uv.as_ref().expect("set"))
}
