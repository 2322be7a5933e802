//! `[app].command` and `[app].env`: how the chosen app is run (uvicorn, gunicorn,
//! `flask run`, `streamlit run`, `python`).

use super::candidates::{AppKind, Candidate, ModulePath};
use super::detector::Detector;
use super::scan::Framework;

impl Detector<'_> {
    /// The command for the chosen app, the env it needs, and how it runs (for the report).
    pub(super) fn command(
        &mut self,
        chosen: &Candidate,
        module: &ModulePath,
        port: Option<u16>,
    ) -> (Vec<String>, Vec<(String, String)>, String) {
        let port_s = port.unwrap_or(8000).to_string();
        let mut env = Vec::new();
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let need = |this: &mut Self, dep: &str, what: &str| {
            if this.deps_known && !this.has_dep(dep) {
                this.missing(format!(
                    "{dep} is not among the dependencies but {what} needs it: add it"
                ));
            }
        };
        match &chosen.kind {
            AppKind::Web(app) if app.framework != Framework::Flask => {
                need(self, "uvicorn", "the command");
                let target = match &app.factory {
                    Some(f) => format!("{}:{f}", module.module),
                    None => format!("{}:{}", module.module, app.var),
                };
                let mut cmd = s(&["uvicorn", &target]);
                if app.factory.is_some() {
                    cmd.push("--factory".into());
                }
                if let Some(dir) = &module.app_dir {
                    cmd.extend(s(&["--app-dir", dir]));
                }
                cmd.extend(s(&["--host", "0.0.0.0", "--port", &port_s]));
                (cmd, env, "uvicorn".into())
            }
            AppKind::Web(app) => {
                let call = match &app.factory {
                    Some(f) => format!("{f}()"),
                    None => app.var.clone(),
                };
                if self.has_dep("gunicorn") {
                    let mut cmd = s(&["gunicorn", "--bind", &format!("0.0.0.0:{port_s}")]);
                    if let Some(dir) = &module.app_dir {
                        cmd.extend(s(&["--pythonpath", dir]));
                    }
                    cmd.push(format!("{}:{call}", module.module));
                    (cmd, env, "gunicorn".into())
                } else {
                    need(self, "flask", "the command");
                    let target = match &module.app_dir {
                        Some(_) => format!("{}:{call}", chosen.file),
                        None => format!("{}:{call}", module.module),
                    };
                    let cmd = s(&[
                        "flask", "--app", &target, "run", "--host", "0.0.0.0", "--port", &port_s,
                    ]);
                    self.detected(
                        "flask run is Flask's development server: add gunicorn to the dependencies for a production one",
                    );
                    (cmd, env, "flask run".into())
                }
            }
            AppKind::Gradio => {
                env.push(("GRADIO_SERVER_NAME".to_string(), "0.0.0.0".to_string()));
                env.push(("GRADIO_SERVER_PORT".to_string(), port_s));
                (s(&["python", &chosen.file]), env, "python".into())
            }
            AppKind::Streamlit => {
                need(self, "streamlit", "the app");
                let cmd = s(&[
                    "streamlit",
                    "run",
                    &chosen.file,
                    "--server.address",
                    "0.0.0.0",
                    "--server.port",
                    &port_s,
                    "--server.headless",
                    "true",
                ]);
                (cmd, env, "streamlit run".into())
            }
            AppKind::Script(name, target) => {
                // kiln installs the dependencies, not the project itself: the entry point
                // is called from the code layer, as its console script would.
                let (module_name, func) = target.split_once(':').unwrap_or((target, "main"));
                let (module_name, func) = (module_name.trim(), func.trim());
                let top = module_name.split('.').next().unwrap_or(module_name);
                let app_dir = module.app_dir.clone().or_else(|| {
                    self.root
                        .join("src")
                        .join(top)
                        .is_dir()
                        .then(|| "src".to_string())
                });
                if let Some(dir) = &app_dir {
                    env.push(("PYTHONPATH".to_string(), format!("/app/{dir}")));
                }
                let (first, rest) = func.split_once('.').unwrap_or((func, ""));
                let call = if rest.is_empty() {
                    format!("{first}()")
                } else {
                    format!("{first}.{rest}()")
                };
                self.detected(format!(
                    "`{name}` ({target}) is called with python, as its console script would be{}",
                    app_dir
                        .as_ref()
                        .map(|d| format!(" (PYTHONPATH=/app/{d})"))
                        .unwrap_or_default()
                ));
                (
                    vec![
                        "python".to_string(),
                        "-c".to_string(),
                        format!("import sys; from {module_name} import {first}; sys.exit({call})"),
                    ],
                    env,
                    "python -c (the [project.scripts] entry)".into(),
                )
            }
            AppKind::Main if chosen.file.ends_with("/__main__.py") => {
                let package = module
                    .module
                    .strip_suffix(".__main__")
                    .unwrap_or(&module.module);
                if let Some(dir) = &module.app_dir {
                    env.push(("PYTHONPATH".to_string(), format!("/app/{dir}")));
                    self.detected(format!(
                        "PYTHONPATH=/app/{dir} puts the package on the path with the default [app].workdir"
                    ));
                }
                (s(&["python", "-m", package]), env, "python -m".into())
            }
            AppKind::Main => (s(&["python", &chosen.file]), env, "python".into()),
            AppKind::Cog(app) => self.cog_command(app, module, port),
            AppKind::Bento(app) => self.bento_command(app, module, port),
        }
    }
}
