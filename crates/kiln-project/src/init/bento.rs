//! `bentofile.yaml` (BentoML's build file) and BentoML services found in the code, served
//! by `bentoml serve`.
//!
//! What BentoML does, from its source (bentoml/BentoML): `bentoml serve TARGET` takes
//! `--host` and `--port` (`src/bentoml_cli/serve.py`), defaults 0.0.0.0 and 3000
//! (`configuration/v2/default_configuration.yaml`), and imports TARGET (`module:Service`,
//! `file.py:Service` or `module`) with the working directory on `sys.path`
//! (`_internal/service/loader.py`). The server answers `/livez` and `/healthz` (alive) and
//! `/readyz` (200 once the service and its dependencies are ready, else an error)
//! (`_internal/server/base_app.py`, `_bentoml_impl/server/app.py`). bentofile.yaml's keys
//! are those of `BentoBuildConfig` (`_internal/bento/build_config.py`): `include`/`exclude`
//! are gitignore patterns (`include` defaults to everything), `envs` are
//! `{name, value, stage}` (`stage: build` is for the build only).

use super::candidates::ModulePath;
use super::declared::{scalar, Declared, DeclaredApp, Item, Yaml};
use super::detector::Detector;
use super::util::{list_some, one_line};
use serde_yaml::Value;

/// `bentoml serve`'s default port.
pub(super) const BENTO_PORT: u16 = 3000;
/// BentoML's readiness route.
pub(super) const BENTO_HEALTH: &str = "/readyz";

/// A BentoML service.
#[derive(Clone, Debug)]
pub(super) enum BentoApp {
    /// bentofile.yaml's `service`, as written (`service:Summarization`).
    Declared(String),
    /// A `@bentoml.service` class (or a `bentoml.Service(...)` object) found in a file.
    Found(String),
}

impl BentoApp {
    /// The module part of a declared target: (`service`, false) of `service:Svc`, or
    /// (`src/service.py`, true) of `src/service.py:Svc`.
    pub(super) fn declared_module(target: &str) -> (&str, bool) {
        let module = target.split(':').next().unwrap_or("").trim();
        let module = module.strip_prefix("./").unwrap_or(module);
        (module, module.ends_with(".py"))
    }
}

/// A gitignore pattern as an `[app].files` pattern (.dockerignore syntax): a pattern
/// without an inner `/` matches at any depth, a leading `/` anchors it, a trailing `/` is
/// dropped (`./` anchors too). `None` for one that leaves the project.
fn files_pattern(raw: &str) -> Option<String> {
    let p = raw.trim();
    let dotted = p.starts_with("./");
    let p = p.strip_prefix("./").unwrap_or(p);
    if p.is_empty() || p.starts_with('#') || p.split('/').any(|c| c == "..") {
        return None;
    }
    let p = p.trim_end_matches('/');
    if matches!(p, "*" | "**" | "**/*" | "/*" | "/**" | "") {
        return Some("**".to_string());
    }
    Some(if dotted || p.starts_with('/') || p.contains('/') {
        p.trim_start_matches('/').to_string()
    } else {
        format!("**/{p}")
    })
}

/// Reads bentofile.yaml into `d`.
pub(super) fn parse(y: &mut Yaml, d: &mut Declared) {
    if let Some(service) = y.string("service").filter(|s| !s.trim().is_empty()) {
        d.app = Some(Item {
            value: DeclaredApp::Bento(BentoApp::Declared(service.trim().to_string())),
            key: "service",
        });
    } else {
        d.notes.push(
            "bentofile.yaml names no service (service: \"service:MyService\"): the app is looked for in the code".into(),
        );
    }
    if let Some(name) = y.string("name").filter(|s| !s.trim().is_empty()) {
        d.name = Some(Item {
            value: name,
            key: "name",
        });
    }
    if let Some(v) = y.python_version("docker.python_version") {
        d.python = Some(Item {
            value: v,
            key: "docker.python_version",
        });
    }
    if let Some(r) = y.string("python.requirements_txt") {
        d.requirements = Some(Item {
            value: r,
            key: "python.requirements_txt",
        });
    }
    if let Some(p) = y.strings("python.packages").filter(|p| !p.is_empty()) {
        d.packages = Some(Item {
            value: p,
            key: "python.packages",
        });
    }
    d.index_url = y.string("python.index_url");
    d.extra_index_urls = y.strings("python.extra_index_url").unwrap_or_default();
    if y.get("python.wheels").is_some() || y.get("python.find_links").is_some() {
        d.notes.push(
            "bentofile.yaml's python.wheels / python.find_links are not read: set [python].find-links to a directory of wheels".into(),
        );
    }
    if let Some(p) = y
        .strings("docker.system_packages")
        .filter(|p| !p.is_empty())
    {
        d.system_packages = Some(Item {
            value: p,
            key: "docker.system_packages",
        });
    }
    if let Some(distro) = y.string("docker.distro") {
        if distro != "debian" {
            d.notes.push(format!(
                "bentofile.yaml's docker.distro is {:?}: kiln's base is Debian; check docker.system_packages' names",
                one_line(&distro)
            ));
        }
    }
    if let Some(v) = y.string("docker.cuda_version") {
        d.notes.push(format!(
            "bentofile.yaml's docker.cuda_version is {:?}: kiln's Debian base has no CUDA toolkit; CUDA libraries come with the Python wheels (torch from PyPI brings them); set [resources].gpus for a GPU",
            one_line(&v)
        ));
    }
    for (key, what) in [
        ("docker.base_image", "a base image of its own"),
        ("docker.dockerfile_template", "a Dockerfile template"),
        ("docker.setup_script", "a setup script run at build time"),
    ] {
        if let Some(v) = y.string(key) {
            d.notes.push(format!(
                "bentofile.yaml's {key} ({}) is {what}; kiln has no build-time shell commands: do it another way ([base].image, [base].packages, the requirements, files in the project)",
                one_line(&v)
            ));
        }
    }
    if y.get("conda").is_some() {
        d.notes.push(
            "bentofile.yaml's conda options are not read: list the pip packages in the requirements".into(),
        );
    }
    if let Some(models) = y.get("models") {
        let tags: Vec<String> = models
            .as_sequence()
            .map(|seq| {
                seq.iter()
                    .filter_map(|m| match m {
                        Value::String(s) => Some(s.clone()),
                        Value::Mapping(_) => m.get("tag")?.as_str().map(str::to_string),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        d.notes.push(format!(
            "bentofile.yaml's models ({}) live in the BentoML model store, not in the project: copy them into the project and add them as [weights] with target under $BENTOML_HOME/models, or load them at run time",
            if tags.is_empty() { "?".to_string() } else { list_some(&tags) }
        ));
    }
    let mut env = docker_env(y);
    env.extend(envs(y, d));
    if !env.is_empty() {
        d.env = Some(Item {
            value: env,
            key: "envs",
        });
    }
    let include = y.strings("include");
    let exclude = y.strings("exclude").unwrap_or_default();
    if include.is_some() || !exclude.is_empty() {
        let include = include.unwrap_or_else(|| vec!["*".to_string()]);
        let mut files: Vec<String> = Vec::new();
        let mut dropped = Vec::new();
        for (raw, negate) in include
            .iter()
            .map(|p| (p, false))
            .chain(exclude.iter().map(|p| (p, true)))
        {
            let raw = raw.trim();
            let (raw, negate) = match raw.strip_prefix('!') {
                Some(r) => (r, !negate),
                None => (raw, negate),
            };
            match files_pattern(raw) {
                Some(p) => {
                    // An exclusion only unmatches what a pattern matched: a directory's
                    // files need `dir/**` too (BuildKit's rule, as .kilnignore's).
                    let last = p.rsplit('/').next().unwrap_or(&p);
                    let tree = negate && !p.ends_with("**") && !last.starts_with("*.");
                    let mut add = vec![p.clone()];
                    if tree {
                        add.push(format!("{p}/**"));
                    }
                    for p in add {
                        let p = if negate { format!("!{p}") } else { p };
                        if !files.contains(&p) {
                            files.push(p);
                        }
                    }
                }
                None if !raw.is_empty() && !raw.starts_with('#') => dropped.push(raw.to_string()),
                None => {}
            }
        }
        if !dropped.is_empty() {
            d.notes.push(format!(
                "bentofile.yaml's include/exclude patterns that leave the project are left out: {}",
                list_some(&dropped)
            ));
        }
        if files.iter().any(|f| !f.starts_with('!')) {
            d.files = Some(Item {
                value: files,
                key: "include/exclude",
            });
        }
    }
}

/// `docker.env`: a mapping, or a list of `KEY=VALUE` (a .env file path is noted).
fn docker_env(y: &mut Yaml) -> Vec<(String, String)> {
    let mut out = Vec::new();
    match y.get("docker.env") {
        Some(Value::Mapping(m)) => {
            for (k, v) in m {
                if let (Some(k), Some(v)) = (k.as_str(), scalar(v)) {
                    out.push((k.to_string(), v));
                }
            }
        }
        Some(Value::Sequence(seq)) => {
            for item in seq {
                if let Some((k, v)) = item.as_str().and_then(|s| s.split_once('=')) {
                    out.push((k.trim().to_string(), v.to_string()));
                }
            }
        }
        Some(Value::String(path)) => y.notes.push(format!(
            "bentofile.yaml's docker.env names a .env file ({}): not read; set [app].env",
            one_line(path)
        )),
        _ => {}
    }
    out
}

/// `envs`: `{name, value, stage}`; build-stage ones are left out, ones without a value
/// are noted (they are given at run time).
fn envs(y: &mut Yaml, d: &mut Declared) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let Some(list) = y.get("envs") else {
        return out;
    };
    let Some(seq) = list.as_sequence() else {
        d.notes
            .push("bentofile.yaml: envs is not a list of {name, value}: ignored".into());
        return out;
    };
    let mut unset = Vec::new();
    for item in seq {
        let Some(name) = item.get("name").and_then(Value::as_str) else {
            continue;
        };
        if item.get("stage").and_then(Value::as_str) == Some("build") {
            continue;
        }
        match item.get("value").and_then(scalar) {
            Some(v) if !v.is_empty() => out.push((name.to_string(), v)),
            _ => unset.push(name.to_string()),
        }
    }
    if !unset.is_empty() {
        d.notes.push(format!(
            "bentofile.yaml's envs without a value ({}): give them at run time (`kiln run -e NAME=VALUE`)",
            list_some(&unset)
        ));
    }
    out
}

impl Detector<'_> {
    /// The command for `bentoml serve`, its environment, and how it runs.
    pub(super) fn bento_command(
        &mut self,
        app: &BentoApp,
        module: &ModulePath,
        port: Option<u16>,
    ) -> (Vec<String>, Vec<(String, String)>, String) {
        let mut env = Vec::new();
        let target = match app {
            BentoApp::Declared(t) => t.clone(),
            BentoApp::Found(class) => {
                if let Some(dir) = &module.app_dir {
                    env.push(("PYTHONPATH".to_string(), format!("/app/{dir}")));
                }
                format!("{}:{class}", module.module)
            }
        };
        let port = port.unwrap_or(BENTO_PORT).to_string();
        let cmd: Vec<String> = [
            "bentoml", "serve", &target, "--host", "0.0.0.0", "--port", &port,
        ]
        .map(String::from)
        .to_vec();
        if !self.has_dep("bentoml") {
            let hint = self.add_dependency_hint("bentoml");
            self.missing(format!(
                "bentoml is not among the dependencies, but `bentoml serve` is in it: add {hint}; kiln does not install it by itself"
            ));
        }
        (cmd, env, "bentoml serve".into())
    }

    /// After the app: bentofile.yaml's `include`/`exclude` are `[app].files`.
    pub(super) fn declared_files(&mut self) {
        let Some((files, from)) = self.declared.iter().find_map(|d| {
            let f = d.files.as_ref()?;
            Some((f.value.clone(), d.from(f.key)))
        }) else {
            return;
        };
        self.d.detected.retain(|l| !l.starts_with("app files: "));
        self.d.missing.retain(|l| {
            !l.starts_with("[app].files holds the app")
                && !l.starts_with("[app].files is everything")
        });
        self.detected(format!("app files: {} (from {from})", list_some(&files)));
        let matcher = kiln_build::dockerignore::Ignore::parse(&files.join("\n"));
        let left_out = self
            .closure
            .first()
            .filter(|f| !matcher.is_excluded(f))
            .cloned();
        if let Some(file) = left_out {
            self.missing(format!(
                "{from} leaves out {file}, the app's own file: check [app].files"
            ));
        }
        self.d.app_files = files;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gitignore_patterns_as_files() {
        assert_eq!(files_pattern("*.py").as_deref(), Some("**/*.py"));
        assert_eq!(files_pattern("*").as_deref(), Some("**"));
        assert_eq!(files_pattern("/src/").as_deref(), Some("src"));
        assert_eq!(files_pattern("src/**/*.py").as_deref(), Some("src/**/*.py"));
        assert_eq!(files_pattern("./data/").as_deref(), Some("data"));
        assert_eq!(files_pattern("../secrets"), None);
        let i = kiln_build::dockerignore::Ignore::parse("**/*.py\n!**/test_*.py\nconfigs");
        assert!(i.is_excluded("service.py"));
        assert!(i.is_excluded("pkg/a.py"));
        assert!(!i.is_excluded("pkg/test_a.py"));
        assert!(i.is_excluded("configs/x.json"));
        assert!(!i.is_excluded("README.md"));
    }
}
