//! The walk of the project: which directories are looked at (hidden ones, virtual
//! environments and `.gitignore`/`.kilnignore` entries are not), bounded in entries and depth,
//! never leaving the project through symlinks.

use super::util::{display_dir, join, parent, read_text};
use super::{MAX_DEPTH, MAX_TEXT_BYTES};
use crate::Result;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fs;
use std::path::Path;

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

/// One regular file of the project.
pub(super) struct FileEntry {
    /// Relative path, `/`-separated.
    pub(super) path: String,
    pub(super) size: u64,
}

/// Directory names to skip because `.kilnignore` or `.gitignore` lists them.
#[derive(Default)]
pub(super) struct IgnoreNames {
    /// Names that match at any depth.
    anywhere: BTreeSet<String>,
    /// Names that match at the top only (`/name`).
    top: BTreeSet<String>,
    /// Names from `.kilnignore` (kiln leaves them out of the image in any case).
    pub(super) kiln: BTreeSet<String>,
}

impl IgnoreNames {
    pub(super) fn read(root: &Path) -> Self {
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
pub(super) struct Tree {
    /// Regular files (and symlinks to files inside the project), breadth first.
    pub(super) files: Vec<FileEntry>,
    /// Index into `files` by path (sorted, for prefix ranges).
    by_path: BTreeMap<String, usize>,
    /// Indexes into `files` by parent directory (`""` for the root).
    by_dir: BTreeMap<String, Vec<usize>>,
    /// Walked directories (not the root), breadth first.
    pub(super) dirs: Vec<String>,
    dir_set: BTreeSet<String>,
    /// Directories with a `.py` file somewhere below them.
    pub(super) py_dirs: BTreeSet<String>,
    /// The walk stopped at the entry limit.
    pub(super) truncated: bool,
    /// The entry limit.
    pub(super) limit: usize,
    /// Directories named in `.gitignore` that were walked anyway because they may hold
    /// weights.
    pub(super) gitignored_weights: Vec<String>,
    /// Entries skipped: (path, why).
    pub(super) skipped: Vec<(String, String)>,
}

impl Tree {
    pub(super) fn walk(root: &Path, ignore: &IgnoreNames, limit: usize) -> Tree {
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

    pub(super) fn has_file(&self, path: &str) -> bool {
        self.by_path.contains_key(path)
    }

    pub(super) fn has_dir(&self, path: &str) -> bool {
        self.dir_set.contains(path)
    }

    /// Files directly in `dir` (`""`: the root).
    pub(super) fn files_in(&self, dir: &str) -> impl Iterator<Item = &FileEntry> + '_ {
        self.by_dir
            .get(dir)
            .into_iter()
            .flatten()
            .map(|i| &self.files[*i])
    }

    /// Files anywhere below `dir`, in path order.
    pub(super) fn files_under(&self, dir: &str) -> impl Iterator<Item = &FileEntry> + '_ {
        // Paths below `dir` sort between "dir/" and "dir0" ('0' follows '/').
        let range = (!dir.is_empty()).then(|| (format!("{dir}/"), format!("{dir}0")));
        range
            .into_iter()
            .flat_map(move |(from, to)| self.by_path.range(from..to))
            .map(|(_, i)| &self.files[*i])
    }
}

pub(super) fn skip_dir(name: &str) -> bool {
    name.starts_with('.') || name.ends_with(".egg-info") || SKIP_DIRS.contains(&name)
}
