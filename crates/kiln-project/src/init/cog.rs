//! `cog.yaml` (Cog, <https://cog.run/yaml>): its build settings and the predictor, served
//! by Cog's own HTTP server.
//!
//! What Cog does, from its source (replicate/cog): images run `python -m cog.server.http`
//! (`pkg/dockerfile/standard_generator.go`) with `WORKDIR /src` and the project copied
//! there; the server listens on `$PORT`, default 5000, on 0.0.0.0, and answers
//! `GET /health-check` (`python/cog/server/http.py`, `crates/coglet`). The predictor comes
//! from `COG_PREDICT_TYPE_STUB` (`COG_TRAIN_TYPE_STUB` with `--x-mode train`), which
//! `cog build` sets from cog.yaml; Cog before 0.17 read cog.yaml from the working
//! directory instead when those are unset. kiln sets the variable and ships cog.yaml, so
//! both work. The top-level `run:` (newer) and `predict:` (older) name the predictor;
//! `build.run` is a list of shell commands run at build time.

use super::candidates::ModulePath;
use super::declared::{Declared, DeclaredApp, Item, Yaml};
use super::detector::Detector;
use super::util::{list_some, one_line};
use serde_yaml::Value;

/// Cog's default port (`PORT`).
pub(super) const COG_PORT: u16 = 5000;
/// Cog's health route.
pub(super) const COG_HEALTH: &str = "/health-check";

/// The predictor (or trainer) cog.yaml names.
#[derive(Clone, Debug)]
pub(super) struct CogApp {
    /// `predict.py:Predictor`.
    pub(super) reference: String,
    /// `run`, `predict` or `train`.
    pub(super) key: &'static str,
    /// Served in train mode (`train:` without a predictor).
    pub(super) train: bool,
    /// `concurrency.max`.
    pub(super) concurrency: Option<u64>,
}

impl CogApp {
    /// The Python file of the reference (`predict.py` of `predict.py:Predictor`).
    pub(super) fn file(&self) -> &str {
        let path = self.reference.split(':').next().unwrap_or("").trim();
        path.strip_prefix("./").unwrap_or(path)
    }
}

/// Reads cog.yaml into `d`.
pub(super) fn parse(y: &mut Yaml, d: &mut Declared) {
    let from = |key: &str| format!("cog.yaml's {key}");
    if let Some(v) = y.python_version("build.python_version") {
        d.python = Some(Item {
            value: v,
            key: "build.python_version",
        });
    }
    let requirements = y.string("build.python_requirements");
    let packages = y.strings("build.python_packages").filter(|p| !p.is_empty());
    match (requirements, packages) {
        (Some(r), packages) => {
            if packages.is_some() {
                d.notes.push(
                    "cog.yaml sets both build.python_requirements and build.python_packages (Cog refuses that): the requirements file is used".into(),
                );
            }
            d.requirements = Some(Item {
                value: r,
                key: "build.python_requirements",
            });
        }
        (None, Some(p)) => {
            d.packages = Some(Item {
                value: p,
                key: "build.python_packages",
            });
        }
        (None, None) => {}
    }
    if let Some(p) = y.strings("build.system_packages").filter(|p| !p.is_empty()) {
        d.notes.push(
            "cog.yaml's build.system_packages are Ubuntu package names (Cog's base is Ubuntu); nearly all are the same in Debian, kiln's base: `kiln build` names any that Debian lacks".into(),
        );
        d.system_packages = Some(Item {
            value: p,
            key: "build.system_packages",
        });
    }
    if y.boolean("build.gpu") == Some(true) {
        d.gpu = Some("build.gpu");
    }
    let mut commands = run_commands(y, "build.run");
    commands.extend(run_commands(y, "build.pre_install"));
    if !commands.is_empty() {
        d.notes.push(format!(
            "cog.yaml's build.run runs shell commands at build time; kiln has none: do them another way (Debian packages in [base].packages, Python packages in the requirements, files in the project or as [weights]): {}",
            list_some(&commands)
        ));
    }
    for key in ["build.cuda", "build.cudnn"] {
        if let Some(v) = y.string(key) {
            d.notes.push(format!(
                "{} is {:?}: kiln's Debian base has no CUDA toolkit; CUDA libraries come with the Python wheels (torch from PyPI brings them) and the driver from the host's NVIDIA container runtime",
                from(key),
                one_line(&v)
            ));
        }
    }
    if let Some(v) = y.string("build.sdk_version") {
        d.notes.push(format!(
            "cog.yaml's build.sdk_version is {:?}: pin that cog version in the requirements (`cog=={}`)",
            one_line(&v),
            one_line(&v)
        ));
    }
    if let Some(image) = y.string("image") {
        let last = image.rsplit('/').next().unwrap_or(&image);
        let name = last.split([':', '@']).next().unwrap_or(last).trim();
        if !name.is_empty() {
            d.name = Some(Item {
                value: name.to_string(),
                key: "image",
            });
        }
    }
    if let Some(env) = y.strings("environment") {
        let mut pairs = Vec::new();
        for entry in env {
            match entry.split_once('=') {
                Some((k, v)) if !k.trim().is_empty() => {
                    pairs.push((k.trim().to_string(), v.to_string()))
                }
                _ => d.notes.push(format!(
                    "cog.yaml's environment entry {:?} is not KEY=VALUE: left out",
                    one_line(&entry)
                )),
            }
        }
        if !pairs.is_empty() {
            d.env = Some(Item {
                value: pairs,
                key: "environment",
            });
        }
    }
    if y.get("weights").is_some() {
        d.notes.push(
            "cog.yaml's weights are not read: kiln's [weights] tables take files of the project (see above for the ones found)".into(),
        );
    }
    let concurrency = match y.get("concurrency.max") {
        Some(Value::Number(n)) => n.as_u64().filter(|n| *n > 0),
        _ => None,
    };
    let run = y.string("run");
    let predict = y.string("predict");
    let train = y.string("train");
    if run.is_some() && predict.is_some() {
        d.notes
            .push("cog.yaml sets both run and predict (Cog refuses that): run is used".into());
    }
    let predictor = run
        .map(|r| (r, "run"))
        .or_else(|| predict.map(|p| (p, "predict")));
    let app = match (predictor, train) {
        (Some((reference, key)), train) => {
            if let Some(t) = train {
                d.facts.push(format!(
                    "cog.yaml's train ({}) is not served: the predictor is; for training run `python -m cog.server.http --x-mode train` with COG_TRAIN_TYPE_STUB={}",
                    one_line(&t),
                    one_line(&t)
                ));
            }
            Some(CogApp {
                reference,
                key,
                train: false,
                concurrency,
            })
        }
        (None, Some(reference)) => Some(CogApp {
            reference,
            key: "train",
            train: true,
            concurrency,
        }),
        (None, None) => {
            d.notes.push(
                "cog.yaml names no predictor (run: or predict: \"predict.py:Predictor\"): no Cog server command".into(),
            );
            None
        }
    };
    d.app = app.map(|a| Item {
        key: a.key,
        value: DeclaredApp::Cog(a),
    });
}

/// The shell commands of `build.run` (strings, or `{command: ...}` mappings).
fn run_commands(y: &mut Yaml, path: &str) -> Vec<String> {
    let Some(v) = y.get(path) else {
        return Vec::new();
    };
    let items: Vec<&Value> = match v {
        Value::Sequence(seq) => seq.iter().collect(),
        other => vec![other],
    };
    items
        .into_iter()
        .filter_map(|item| match item {
            Value::String(s) => Some(s.clone()),
            Value::Mapping(_) => item.get("command")?.as_str().map(str::to_string),
            _ => None,
        })
        .map(|c| format!("`{}`", one_line(c.trim())))
        .collect()
}

impl Detector<'_> {
    /// The command for Cog's server, its environment, and how it runs.
    pub(super) fn cog_command(
        &mut self,
        app: &CogApp,
        module: &ModulePath,
        port: Option<u16>,
    ) -> (Vec<String>, Vec<(String, String)>, String) {
        let mut cmd: Vec<String> = ["python", "-m", "cog.server.http"]
            .map(String::from)
            .to_vec();
        let mut env = Vec::new();
        let stub = if app.train {
            cmd.extend(["--x-mode".to_string(), "train".to_string()]);
            "COG_TRAIN_TYPE_STUB"
        } else {
            "COG_PREDICT_TYPE_STUB"
        };
        env.push((stub.to_string(), app.reference.trim().to_string()));
        let port = port.unwrap_or(COG_PORT);
        if port != COG_PORT {
            env.push(("PORT".to_string(), port.to_string()));
        }
        if let Some(n) = app.concurrency {
            env.push(("COG_MAX_CONCURRENCY".to_string(), n.to_string()));
        }
        if let Some(dir) = &module.app_dir {
            env.push(("PYTHONPATH".to_string(), format!("/app/{dir}")));
        }
        if !self.has_dep("cog") {
            let hint = self.add_dependency_hint("cog");
            self.missing(format!(
                "cog is not among the dependencies, but Cog's server (python -m cog.server.http) is in it: add {hint}; kiln does not install it by itself"
            ));
        }
        // Cog's server reads cog.yaml from the working directory ([app].workdir, where the
        // files land) when COG_PREDICT_TYPE_STUB is unset (Cog before 0.17).
        if self.tree.has_file("cog.yaml")
            && !self
                .d
                .app_files
                .iter()
                .any(|f| f == "**" || f == "cog.yaml")
        {
            self.d.app_files.push("cog.yaml".to_string());
            if let Some(line) = self
                .d
                .detected
                .iter_mut()
                .find(|l| l.starts_with("app files: "))
            {
                line.push_str("; and cog.yaml, which Cog's server reads");
            }
        }
        (
            cmd,
            env,
            "Cog's HTTP server, python -m cog.server.http".into(),
        )
    }
}
