//! What a Cog (`cog.yaml`, [`super::cog`]) or BentoML (`bentofile.yaml`, [`super::bento`])
//! project declares, read into one shape, [`Declared`], that the other concerns ask: the
//! name, the Python version, the dependencies, the system packages, the app, GPUs, the
//! environment and the files. cog.yaml is asked first. The project's own files (uv.lock,
//! requirements.txt, pyproject.toml's dependencies, .python-version) keep precedence
//! where both say something; each report line says where a value came from.
//!
//! The YAML is read leniently: a key of the wrong type is noted and skipped, YAML that does
//! not parse is noted with its line and column and the file is ignored.

use super::bento::BentoApp;
use super::cog::CogApp;
use super::detector::Detector;
use super::names::requirement_name;
use super::util::{list_some, normalize_rel, one_line};
use super::{PythonDeps, MAX_TEXT_BYTES};
use serde_yaml::Value;

/// A value a config declares, with its key (e.g. `build.python_requirements`).
pub(super) struct Item<T> {
    pub(super) value: T,
    pub(super) key: &'static str,
}

/// The app a config declares.
pub(super) enum DeclaredApp {
    Cog(CogApp),
    Bento(BentoApp),
}

/// What one config file declares.
#[derive(Default)]
pub(super) struct Declared {
    /// `cog.yaml` or `bentofile.yaml`.
    pub(super) file: &'static str,
    /// For `[project].name` (raw, sanitized later).
    pub(super) name: Option<Item<String>>,
    /// `3.X`.
    pub(super) python: Option<Item<String>>,
    /// A requirements file, relative to the project.
    pub(super) requirements: Option<Item<String>>,
    /// Requirement strings.
    pub(super) packages: Option<Item<Vec<String>>>,
    pub(super) index_url: Option<String>,
    pub(super) extra_index_urls: Vec<String>,
    /// Debian (or Ubuntu) package names.
    pub(super) system_packages: Option<Item<Vec<String>>>,
    /// The key that asks for a GPU.
    pub(super) gpu: Option<&'static str>,
    /// `[app].env` entries.
    pub(super) env: Option<Item<Vec<(String, String)>>>,
    pub(super) app: Option<Item<DeclaredApp>>,
    /// `[app].files` patterns.
    pub(super) files: Option<Item<Vec<String>>>,
    /// Lines for [`super::Detection::detected`], written after the detection.
    pub(super) facts: Vec<String>,
    /// Lines for [`super::Detection::missing`], written after the detection.
    pub(super) notes: Vec<String>,
}

impl Declared {
    /// `cog.yaml's build.gpu`.
    pub(super) fn from(&self, key: &str) -> String {
        format!("{}'s {key}", self.file)
    }

    /// The entries of `item` (trimmed; empty ones dropped with `skip_empty`) that `ok`
    /// accepts; the others are named in a note as `what`. `None` when none is left.
    fn keep_valid(
        &mut self,
        item: Option<Item<Vec<String>>>,
        skip_empty: bool,
        ok: impl Fn(&str) -> bool,
        what: &str,
    ) -> Option<Item<Vec<String>>> {
        let mut item = item?;
        let (good, bad): (Vec<String>, Vec<String>) = item
            .value
            .into_iter()
            .map(|s| s.trim().to_string())
            .filter(|s| !(skip_empty && s.is_empty()))
            .partition(|s| ok(s));
        if !bad.is_empty() {
            self.notes.push(format!(
                "{} has {what}, left out: {}",
                self.from(item.key),
                list_some(&bad)
            ));
        }
        if good.is_empty() {
            return None;
        }
        item.value = good;
        Some(item)
    }
}

/// A parsed config being read: typed getters that note what they cannot use.
pub(super) struct Yaml<'a> {
    doc: &'a Value,
    text: &'a str,
    pub(super) file: &'static str,
    pub(super) notes: Vec<String>,
}

impl<'a> Yaml<'a> {
    /// The value at a dotted path (`build.python_version`); `null` counts as absent.
    pub(super) fn get(&self, path: &str) -> Option<&'a Value> {
        let mut v = self.doc;
        for key in path.split('.') {
            v = v.as_mapping()?.get(key)?;
        }
        (!v.is_null()).then_some(v)
    }

    fn wrong(&mut self, path: &str, what: &str) {
        let line = format!("{}: {path} is not {what}: ignored", self.file);
        self.notes.push(line);
    }

    /// A string (a number or a boolean is taken as written).
    pub(super) fn string(&mut self, path: &str) -> Option<String> {
        let v = self.get(path)?;
        match scalar(v) {
            Some(s) => Some(s),
            None => {
                self.wrong(path, "a string");
                None
            }
        }
    }

    /// A list of strings (one string is a list of one).
    pub(super) fn strings(&mut self, path: &str) -> Option<Vec<String>> {
        let v = self.get(path)?;
        if let Some(s) = scalar(v) {
            return Some(vec![s]);
        }
        let list = v
            .as_sequence()
            .and_then(|seq| seq.iter().map(scalar).collect::<Option<Vec<String>>>());
        if list.is_none() {
            self.wrong(path, "a list of strings");
        }
        list
    }

    pub(super) fn boolean(&mut self, path: &str) -> Option<bool> {
        let v = self.get(path)?;
        match v {
            Value::Bool(b) => Some(*b),
            Value::String(s) if matches!(s.as_str(), "true" | "false") => Some(s == "true"),
            _ => {
                self.wrong(path, "true or false");
                None
            }
        }
    }

    /// A Python version as `3.X`. An unquoted `3.10` is the YAML number 3.1: the text of
    /// the file is read for it.
    pub(super) fn python_version(&mut self, path: &str) -> Option<String> {
        let v = self.get(path)?;
        let raw = match v {
            Value::Number(_) => {
                let key = path.rsplit('.').next().unwrap_or(path);
                literal(self.text, key).or_else(|| scalar(v))
            }
            _ => scalar(v),
        };
        let Some(raw) = raw else {
            self.wrong(path, "a version");
            return None;
        };
        let minor = python_minor(&raw);
        if minor.is_none() {
            let line = format!(
                "{}'s {path} {:?} is not a Python 3 version: ignored",
                self.file,
                one_line(&raw)
            );
            self.notes.push(line);
        }
        minor
    }
}

/// A scalar as text.
pub(super) fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The text after `key:` on the first line that starts with it, unquoted.
fn literal(text: &str, key: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let rest = line.trim_start().strip_prefix(key)?.strip_prefix(':')?;
        let value = rest.split(" #").next()?.trim().trim_matches(['"', '\'']);
        (!value.is_empty()).then(|| value.to_string())
    })
}

/// `3.X` from `3.X` or `3.X.Y`.
fn python_minor(raw: &str) -> Option<String> {
    let parts: Vec<&str> = raw.trim().split('.').collect();
    let digits = |p: &str| !p.is_empty() && p.len() <= 3 && p.chars().all(|c| c.is_ascii_digit());
    let ok = (2..=3).contains(&parts.len()) && parts[0] == "3" && parts.iter().all(|p| digits(p));
    ok.then(|| format!("3.{}", parts[1]))
}

/// A Debian package name (`name` or `name=version`), as `[base].packages` takes it.
pub(super) fn debian_name(p: &str) -> bool {
    let name = p.split('=').next().unwrap_or("");
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+-.".contains(c))
}

/// Parses YAML text; the error is a report line naming the file, line and column.
fn parse_yaml(file: &str, text: &str) -> Result<Value, String> {
    serde_yaml::from_str::<Value>(text).map_err(|e| {
        let msg = one_line(&e.to_string());
        let msg = msg.split(" at line ").next().unwrap_or(&msg).to_string();
        let at = match e.location() {
            Some(l) => format!("{file}:{}:{}", l.line(), l.column()),
            None => file.to_string(),
        };
        format!("{at}: not valid YAML ({msg}): the file is ignored; fill in kiln.toml by hand")
    })
}

/// How a config file is read into a [`Declared`].
type Parse = fn(&mut Yaml, &mut Declared);

impl Detector<'_> {
    /// Reads `cog.yaml` and `bentofile.yaml` at the top of the project.
    pub(super) fn read_declared(&mut self) {
        let parsers: [(&'static str, Parse); 2] = [
            ("cog.yaml", super::cog::parse),
            ("bentofile.yaml", super::bento::parse),
        ];
        for (file, parse) in parsers {
            if !self.tree.has_file(file) {
                continue;
            }
            let Some(text) = self.text(file, MAX_TEXT_BYTES) else {
                continue;
            };
            let doc = match parse_yaml(file, &text) {
                Ok(doc) => doc,
                Err(line) => {
                    self.missing(line);
                    continue;
                }
            };
            if !doc.is_mapping() && !doc.is_null() {
                self.missing(format!("{file} is not a YAML mapping: ignored"));
                continue;
            }
            let mut d = Declared {
                file,
                ..Declared::default()
            };
            let mut yaml = Yaml {
                doc: &doc,
                text: &text,
                file,
                notes: Vec::new(),
            };
            parse(&mut yaml, &mut d);
            d.notes.splice(0..0, yaml.notes);
            self.check_declared(&mut d);
            if d.gpu.is_some() {
                self.d.gpus = 1;
            }
            let what = if file == "cog.yaml" { "Cog" } else { "BentoML" };
            self.detected(format!(
                "{file}: a {what} project; its settings are read (the lines below say where each value comes from)"
            ));
            self.declared.push(d);
        }
    }

    /// Drops what kiln.toml could not take: a requirements file that is not there, invalid
    /// requirement strings and package names.
    fn check_declared(&self, d: &mut Declared) {
        if let Some(req) = d.requirements.take() {
            let path = normalize_rel(req.value.trim().trim_start_matches("./"));
            match path.filter(|p| self.tree.has_file(p)) {
                Some(path) => {
                    d.requirements = Some(Item {
                        value: path,
                        key: req.key,
                    })
                }
                None => d.notes.push(format!(
                    "{} names {}, which is not in the project: not used",
                    d.from(req.key),
                    one_line(&req.value)
                )),
            }
        }
        if let Some(app) = &d.app {
            let missing = match &app.value {
                DeclaredApp::Cog(cog) => (!self.tree.has_file(cog.file()))
                    .then(|| format!("{}, which is not in the project", cog.file())),
                DeclaredApp::Bento(BentoApp::Declared(target)) => {
                    match BentoApp::declared_module(target) {
                        (path, true) => (!self.tree.has_file(path))
                            .then(|| format!("{path}, which is not in the project")),
                        (module, false) => self.module_file(module).is_none().then(|| {
                            let rel = module.replace('.', "/");
                            format!(
                                "module `{module}`, but the project has no {rel}.py or {rel}/__init__.py"
                            )
                        }),
                    }
                }
                DeclaredApp::Bento(BentoApp::Found(_)) => None,
            };
            if let Some(what) = missing {
                d.notes.push(format!(
                    "{} names {what}: check [app].command and [app].files",
                    d.from(app.key)
                ));
            }
        }
        let requirement = |s: &str| !s.is_empty() && !s.starts_with('-');
        let packages = d.packages.take();
        d.packages = d.keep_valid(
            packages,
            false,
            requirement,
            "entries that are not requirements",
        );
        let system = d.system_packages.take();
        d.system_packages = d.keep_valid(
            system,
            true,
            debian_name,
            "names that are not Debian package names",
        );
    }

    /// A name for `[project].name`, and where it comes from.
    pub(super) fn declared_name(&self) -> Option<(String, String)> {
        self.declared.iter().find_map(|d| {
            let n = d.name.as_ref()?;
            Some((n.value.clone(), d.from(n.key)))
        })
    }

    /// The Python version (`3.X`) a config asks for, and where it comes from.
    pub(super) fn declared_python(&self) -> Option<(String, String)> {
        self.declared.iter().find_map(|d| {
            let p = d.python.as_ref()?;
            Some((p.value.clone(), d.from(p.key)))
        })
    }

    /// The requirements file a config names (one that is in the project).
    pub(super) fn declared_requirements(&self) -> Option<String> {
        self.declared
            .iter()
            .find_map(|d| d.requirements.as_ref().map(|r| r.value.clone()))
    }

    /// `"cog.yaml's build.python_requirements"` when a config names `req`.
    pub(super) fn requirements_origin(&self, req: &str) -> Option<String> {
        self.declared.iter().find_map(|d| {
            let r = d.requirements.as_ref().filter(|r| r.value == req)?;
            Some(d.from(r.key))
        })
    }

    /// Takes a config's inline packages as the dependencies when pyproject.toml lists none;
    /// `false` when there are none to take.
    pub(super) fn declared_packages(&mut self) -> bool {
        let pyproject_lists = self
            .pyproject
            .as_ref()
            .is_some_and(|p| !p.dependencies.is_empty() || !p.poetry_deps.is_empty());
        if pyproject_lists {
            return false;
        }
        let Some((packages, from)) = self.declared.iter().find_map(|d| {
            let p = d.packages.as_ref()?;
            Some((p.value.clone(), d.from(p.key)))
        }) else {
            return false;
        };
        let names: Vec<String> = packages
            .iter()
            .filter_map(|r| requirement_name(r))
            .map(|(name, _)| name)
            .collect();
        self.deps_known = true;
        self.dep_names.extend(names);
        self.detected(format!(
            "python dependencies: {} from {from}, as [python].packages (resolved by uv into kiln.lock)",
            match packages.len() {
                1 => "1 package".to_string(),
                n => format!("{n} packages"),
            }
        ));
        self.d.deps = PythonDeps::Inline { from, packages };
        true
    }

    /// What the dependencies are, in words ("requirements.txt", "uv.lock").
    pub(super) fn deps_label(&self) -> String {
        match &self.d.deps {
            PythonDeps::UvLock => "uv.lock".into(),
            PythonDeps::Requirements(r) => r.clone(),
            PythonDeps::Pyproject => "pyproject.toml's dependencies".into(),
            PythonDeps::Inline { from, .. } => from.clone(),
            PythonDeps::None => "nothing".into(),
        }
    }

    /// Where to add a package the app needs.
    pub(super) fn add_dependency_hint(&self, package: &str) -> String {
        match &self.d.deps {
            PythonDeps::UvLock => format!("`uv add {package}` (pyproject.toml and uv.lock)"),
            PythonDeps::Requirements(r) => format!("`{package}` to {r}"),
            PythonDeps::Pyproject => {
                format!("`{package}` to pyproject.toml's dependencies, then `uv lock`")
            }
            PythonDeps::Inline { .. } => format!("`{package}` to [python].packages"),
            PythonDeps::None => format!(
                "`{package}` to a requirements.txt and set [python].requirements = \"requirements.txt\""
            ),
        }
    }

    /// After the dependencies: a config's dependencies that are not the ones used.
    pub(super) fn declared_dependency_notes(&mut self) {
        let used = self.deps_label();
        let mut lines = Vec::new();
        for d in &self.declared {
            if let Some(r) = &d.requirements {
                if !matches!(&self.d.deps, PythonDeps::Requirements(p) if *p == r.value) {
                    lines.push(format!(
                        "{} names {}, but {used} is used: set [python].requirements = {:?} if the image needs it",
                        d.from(r.key),
                        r.value,
                        r.value
                    ));
                }
            }
            if let Some(p) = &d.packages {
                let from = d.from(p.key);
                if !matches!(&self.d.deps, PythonDeps::Inline { from: f, .. } if *f == from) {
                    lines.push(format!(
                        "{from} lists {} packages, not used: {used} is; add them there if the image needs them ({})",
                        p.value.len(),
                        list_some(&p.value)
                    ));
                }
            }
        }
        for line in lines {
            self.missing(line);
        }
    }

    /// After the app and the packages: system packages, GPUs, index URLs, the environment
    /// and the configs' own notes.
    pub(super) fn declared_extras(&mut self) {
        let declared = std::mem::take(&mut self.declared);
        for d in &declared {
            if let Some(p) = &d.system_packages {
                let new: Vec<String> = p
                    .value
                    .iter()
                    .filter(|n| !self.d.packages_needed.contains(n))
                    .cloned()
                    .collect();
                self.d.packages_needed.extend(new);
                self.detected(format!(
                    "base packages: {} (from {})",
                    p.value.join(", "),
                    d.from(p.key)
                ));
                if !self.d.base.starts_with("debian:") {
                    self.missing(format!(
                        "{} must already be in {} ([base].packages only works with debian:SUITE)",
                        p.value.join(", "),
                        self.d.base
                    ));
                }
            }
            if let Some(key) = d.gpu {
                self.detected(format!(
                    "resources: gpus = 1 (from {}); `kiln run` asks NVIDIA's container runtime for it",
                    d.from(key)
                ));
            }
            if !matches!(self.d.deps, PythonDeps::UvLock) {
                if self.d.index_url.is_none() {
                    self.d.index_url = d.index_url.clone();
                }
                for url in &d.extra_index_urls {
                    if !self.d.extra_index_urls.contains(url) {
                        self.d.extra_index_urls.push(url.clone());
                    }
                }
            }
            if let Some(env) = &d.env {
                let mut added = Vec::new();
                let mut clashes = Vec::new();
                for (k, v) in &env.value {
                    if self.d.env.iter().any(|(e, _)| e == k) {
                        clashes.push(k.clone());
                    } else {
                        self.d.env.push((k.clone(), v.clone()));
                        added.push(k.clone());
                    }
                }
                if !added.is_empty() {
                    self.detected(format!(
                        "env: {} (from {})",
                        list_some(&added),
                        d.from(env.key)
                    ));
                }
                if !clashes.is_empty() {
                    self.missing(format!(
                        "{} sets {}, which the command sets already: not used",
                        d.from(env.key),
                        list_some(&clashes)
                    ));
                }
            }
            for line in &d.facts {
                self.detected(line.clone());
            }
            for line in &d.notes {
                self.missing(line.clone());
            }
        }
        self.declared = declared;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_and_literals() {
        assert_eq!(python_minor("3.10").as_deref(), Some("3.10"));
        assert_eq!(python_minor("3.11.4").as_deref(), Some("3.11"));
        assert_eq!(python_minor("3"), None);
        assert_eq!(python_minor("2.7"), None);
        assert_eq!(python_minor("3.x"), None);
        assert_eq!(
            literal("build:\n  python_version: 3.10  # old\n", "python_version").as_deref(),
            Some("3.10")
        );
        assert!(debian_name("libgl1-mesa-glx"));
        assert!(debian_name("ffmpeg=7:5.1"));
        assert!(!debian_name("FFmpeg"));
        assert!(!debian_name("pkg:amd64"));
        let e = parse_yaml("cog.yaml", "build:\n  gpu: true\n   bad: [\n").unwrap_err();
        assert!(e.starts_with("cog.yaml:"), "{e}");
        // Aliases that expand a billion times are refused, not expanded.
        let mut laughs = String::from(
            "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
        );
        for i in 0..8u8 {
            let (prev, next) = ((b'a' + i) as char, (b'b' + i) as char);
            let refs = vec![format!("*{prev}"); 9].join(",");
            laughs.push_str(&format!("{next}: &{next} [{refs}]\n"));
        }
        let start = std::time::Instant::now();
        let _ = parse_yaml("bentofile.yaml", &laughs);
        assert!(start.elapsed() < std::time::Duration::from_secs(5));
    }
}
