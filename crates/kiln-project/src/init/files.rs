//! `[app].files`: the app file, the local modules it imports (transitively) and the project
//! paths its code names.

use super::candidates::{AppKind, Candidate, ModulePath};
use super::detector::Detector;
use super::scan::{Framework, Literal};
use super::util::{join, list_some, normalize_rel, parent, top};
use super::walk::skip_dir;
use std::collections::{BTreeSet, VecDeque};
use std::fs;

impl Detector<'_> {
    /// `[app].files`: the units (top-level files and directories) of the app file, of the
    /// local modules it imports (transitively) and of the paths its code names.
    pub(super) fn files(&mut self, chosen: &Candidate, module: &ModulePath) {
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
}
