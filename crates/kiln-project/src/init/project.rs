//! `pyproject.toml` (PEP 621 `[project]` or Poetry's `[tool.poetry]`) and the `[project]`
//! section: the image name, version and description.

use super::detector::Detector;
use super::names::{normalize_name, sanitize_name, sanitize_tag};
use super::util::one_line;
use super::MAX_TEXT_BYTES;
use crate::{Error, Result};

/// What `pyproject.toml` says.
#[derive(Default)]
pub(super) struct Pyproject {
    name: Option<String>,
    version: Option<String>,
    dynamic_version: bool,
    description: Option<String>,
    pub(super) requires_python: Option<String>,
    pub(super) dependencies: Vec<String>,
    /// Dependency names from `[tool.poetry.dependencies]`.
    pub(super) poetry_deps: Vec<String>,
    pub(super) poetry: bool,
    /// `[project.scripts]` (or `[tool.poetry.scripts]`): (name, "module:function").
    pub(super) scripts: Vec<(String, String)>,
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

impl Detector<'_> {
    pub(super) fn read_pyproject(&mut self) {
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

    pub(super) fn project(&mut self) {
        let py_name = self.pyproject.as_ref().and_then(|p| p.name.clone());
        let (raw, from) = if let Some(name) = &self.opts.name {
            (name.clone(), "the --name flag".to_string())
        } else if let Some(name) = py_name {
            (name, "pyproject.toml".to_string())
        } else if let Some(declared) = self.declared_name() {
            declared
        } else {
            let dir = self
                .root
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            (dir, "the directory name".to_string())
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
}
