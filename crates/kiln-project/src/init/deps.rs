//! Where the Python dependencies come from (`uv.lock`, a requirements file or
//! `pyproject.toml`'s dependencies) and the names of the packages they bring.

use super::detector::Detector;
use super::names::{normalize_name, requirement_name};
use super::util::{file_name, in_dirs, join, normalize_rel, parent};
use super::{PythonDeps, MAX_LOCK_BYTES, MAX_TEXT_BYTES, TEST_DIRS};
use std::collections::BTreeSet;

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

/// The packages a requirement brings that matter here (`fastapi[standard]` brings uvicorn).
fn implied(name: &str, extras: &[String]) -> Vec<String> {
    let mut out = vec![name.to_string()];
    if name == "fastapi" && extras.iter().any(|e| e == "standard" || e == "all") {
        out.push("uvicorn".to_string());
    }
    out
}

impl Detector<'_> {
    pub(super) fn dependencies(&mut self) {
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
                let from = self
                    .requirements_origin(req)
                    .map(|f| format!(" (named in {f})"))
                    .unwrap_or_default();
                self.detected(format!("{req}{from} is there too; uv.lock is used"));
            }
            return;
        }
        if has_lock {
            self.missing("uv.lock without pyproject.toml: not used");
        }
        if let Some(req) = requirements {
            let from = self
                .requirements_origin(&req)
                .map(|f| format!("from {f}; "))
                .unwrap_or_default();
            self.detected(format!(
                "python dependencies: {req} ({from}resolved by uv into kiln.lock)"
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
        if self.declared_packages() {
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

    /// `requirements.txt`, else the file cog.yaml or bentofile.yaml names, else the first
    /// `requirements*.txt` (or `requirements/*.txt`) that is not for development, else
    /// `requirements.in`, else a `requirements.txt` one level down.
    fn pick_requirements(&self) -> Option<String> {
        if self.tree.has_file("requirements.txt") {
            return Some("requirements.txt".into());
        }
        if let Some(req) = self.declared_requirements() {
            return Some(req);
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
}
