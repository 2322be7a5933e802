//! COPY's source patterns: globs resolved inside their root, as if it were `/`, with
//! `.dockerignore` applied to what they match.

use super::{clean_path, BuildError, Result};
use crate::dockerignore::Ignore;
use crate::fsutil::{self, Keep};
use std::path::{Path, PathBuf};

/// Expands a COPY source (with `*`, `?`, `[...]` in any component) under `root`, as if
/// `root` were the root file system (BuildKit's rule): every symlink on the way, the
/// last one included, is resolved inside the root, so a link to `/etc` means
/// `<root>/etc` and never the host's. Returns each match as (the path as named,
/// relative to the root; where it leads on the host). `ignore` is checked on both, so
/// a link cannot reach an excluded file under another name.
pub(super) fn glob(
    root: &Path,
    pattern: &str,
    ignore: Option<&Ignore>,
) -> Result<Vec<(String, PathBuf)>> {
    let clean = clean_path(&format!("/{pattern}"));
    let parts: Vec<&str> = clean.split('/').filter(|p| !p.is_empty()).collect();
    if parts.is_empty() {
        return Ok(vec![(String::new(), root.to_path_buf())]);
    }
    let mut current = vec![(String::new(), root.to_path_buf())];
    for part in &parts {
        let mut next = Vec::new();
        for (rel, dir) in &current {
            let names: Vec<String> = if part.contains(['*', '?', '[']) {
                let Ok(rd) = std::fs::read_dir(dir) else {
                    continue;
                };
                let mut names: Vec<String> = rd
                    .flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|name| wildcard(part, name))
                    .collect();
                names.sort();
                names
            } else {
                vec![part.to_string()]
            };
            let dir_in_root = dir.strip_prefix(root).unwrap_or(Path::new(""));
            for name in names {
                let named = if rel.is_empty() {
                    name.clone()
                } else {
                    format!("{rel}/{name}")
                };
                let inside = format!("/{}/{name}", dir_in_root.to_string_lossy());
                let resolved =
                    fsutil::secure_join(root, &inside).map_err(|source| BuildError::Named {
                        name: named.clone(),
                        source,
                    })?;
                if std::fs::symlink_metadata(&resolved).is_ok() {
                    next.push((named, resolved));
                }
            }
        }
        current = next;
    }
    if let Some(ig) = ignore {
        // An excluded directory stays when an exception may re-include something
        // below it; the copy then takes only what is re-included.
        current.retain(|(named, p)| {
            ignore_keep(ig, named, p) != Keep::No
                && p.strip_prefix(root)
                    .is_ok_and(|r| ignore_keep(ig, &r.to_string_lossy(), p) != Keep::No)
        });
    }
    Ok(current)
}

/// What `.dockerignore` says of the context path `rel` (on the host at `p`).
pub(super) fn ignore_keep(ig: &Ignore, rel: &str, p: &Path) -> Keep {
    if !ig.is_excluded(rel) {
        Keep::Yes
    } else if ig.may_include_under(rel) && std::fs::symlink_metadata(p).is_ok_and(|m| m.is_dir()) {
        Keep::Below
    } else {
        Keep::No
    }
}

/// Shell-style wildcard match of one path component.
pub(super) fn wildcard(pattern: &str, name: &str) -> bool {
    fn go(p: &[char], n: &[char]) -> bool {
        match (p.first(), n.first()) {
            (None, None) => true,
            (Some('*'), _) => go(&p[1..], n) || (!n.is_empty() && go(p, &n[1..])),
            (Some('?'), Some(_)) => go(&p[1..], &n[1..]),
            (Some('['), Some(c)) => {
                let Some(end) = p.iter().position(|x| *x == ']') else {
                    return false;
                };
                let class = &p[1..end];
                let (neg, class) = match class.first() {
                    Some('!') | Some('^') => (true, &class[1..]),
                    _ => (false, class),
                };
                let mut hit = false;
                let mut i = 0;
                while i < class.len() {
                    if i + 2 < class.len() && class[i + 1] == '-' {
                        hit |= class[i] <= *c && *c <= class[i + 2];
                        i += 3;
                    } else {
                        hit |= class[i] == *c;
                        i += 1;
                    }
                }
                hit != neg && go(&p[end + 1..], &n[1..])
            }
            (Some('\\'), Some(c)) if p.len() > 1 => p[1] == *c && go(&p[2..], &n[1..]),
            (Some(a), Some(b)) => a == b && go(&p[1..], &n[1..]),
            _ => false,
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    go(&p, &n)
}
