//! The app: the candidates the sources show, ranked, the one chosen, how its module is
//! imported, and its healthcheck.

use super::bento::{BentoApp, BENTO_HEALTH, BENTO_PORT};
use super::cog::{CogApp, COG_HEALTH, COG_PORT};
use super::declared::DeclaredApp;
use super::detector::Detector;
use super::scan::{is_identifier, AppDef};
use super::util::{file_name, glob_covers, in_dirs, join, list_some, parent};
use super::{MAX_NOTED, TEST_DIRS};

/// Directories whose apps are ranked below the others' and whose `__main__` blocks are
/// only reported.
const SIDE_DIRS: &[&str] = &[
    "examples",
    "example",
    "docs",
    "doc",
    "scripts",
    "notebooks",
    "benchmarks",
    "tutorials",
    "tools",
];

/// File names that mark the app, best first.
const APP_FILE_NAMES: &[&str] = &[
    "app.py",
    "main.py",
    "server.py",
    "api.py",
    "serve.py",
    "asgi.py",
    "wsgi.py",
    "streamlit_app.py",
    "run.py",
    "predict.py",
    "inference.py",
];

/// Python files that are never the app.
pub(super) const NOT_APP_FILES: &[&str] = &[
    "setup.py",
    "conftest.py",
    "noxfile.py",
    "manage.py",
    "fabfile.py",
];

/// What runs in the container.
#[derive(Clone, Debug)]
pub(super) enum AppKind {
    Web(AppDef),
    Gradio,
    Streamlit,
    /// `[project.scripts]`: name, `module:function`.
    Script(String, String),
    /// `if __name__ == "__main__":` (or `pkg/__main__.py`).
    Main,
    /// cog.yaml's predictor, served by Cog's HTTP server.
    Cog(CogApp),
    /// A BentoML service, served by `bentoml serve`.
    Bento(BentoApp),
}

impl AppKind {
    /// The port and health route of a server that has its own: (port, path, whose).
    pub(super) fn server(&self) -> Option<(u16, &'static str, &'static str)> {
        match self {
            AppKind::Cog(_) => Some((COG_PORT, COG_HEALTH, "Cog's server")),
            AppKind::Bento(_) => Some((BENTO_PORT, BENTO_HEALTH, "bentoml serve")),
            _ => None,
        }
    }
}

#[derive(Clone, Debug)]
pub(super) struct Candidate {
    pub(super) kind: AppKind,
    /// The Python file (empty for a script entry not found in the project).
    pub(super) file: String,
    /// Lower is better.
    key: (u8, u8, usize, usize, String),
    guessed: bool,
}

impl Candidate {
    pub(super) fn describe(&self) -> String {
        match &self.kind {
            AppKind::Web(app) => match &app.factory {
                Some(f) => format!(
                    "{} app factory `{f}()` in {}",
                    app.framework.label(),
                    self.file
                ),
                None => format!(
                    "{} app `{}` in {}",
                    app.framework.label(),
                    app.var,
                    self.file
                ),
            },
            AppKind::Gradio => format!("Gradio app in {}", self.file),
            AppKind::Streamlit => format!("Streamlit app {}", self.file),
            AppKind::Script(name, target) => {
                format!("[project.scripts] entry `{name}` ({target})")
            }
            AppKind::Main if self.file.ends_with("__main__.py") => {
                format!("package __main__ {}", self.file)
            }
            AppKind::Main => format!("__main__ block in {}", self.file),
            AppKind::Cog(app) => format!(
                "Cog {} `{}`, from cog.yaml's {}",
                if app.train { "trainer" } else { "predictor" },
                app.reference,
                app.key
            ),
            AppKind::Bento(BentoApp::Declared(target)) => {
                format!("BentoML service `{target}`, from bentofile.yaml's service")
            }
            AppKind::Bento(BentoApp::Found(class)) => {
                format!("BentoML service `{class}` in {}", self.file)
            }
        }
    }

    fn is_web(&self) -> bool {
        matches!(
            self.kind,
            AppKind::Web(_)
                | AppKind::Gradio
                | AppKind::Streamlit
                | AppKind::Cog(_)
                | AppKind::Bento(_)
        )
    }
}

/// How the chosen app's module is imported.
#[derive(Clone, Debug, Default)]
pub(super) struct ModulePath {
    /// Directory to put on `sys.path`, when not the project root.
    pub(super) app_dir: Option<String>,
    /// Dotted module name.
    pub(super) module: String,
}

impl Detector<'_> {
    /// The app candidates, best first. Tiers: 0 a web app in a file named like an app
    /// (`app.py`, `main.py`, ...), 1 any other web app, 2 a `[project.scripts]` entry,
    /// 3 a `__main__` block in a file named like an app or a package's `__main__.py`;
    /// then, only taken when nothing above is there: 4 a web app under `examples/`,
    /// `docs/`, `scripts/`..., 5 a `__main__` block in another top-level file (only when it
    /// is the only one); 6 other `__main__` blocks, never taken. The apps cog.yaml and
    /// bentofile.yaml declare come before all of them.
    fn candidates(&self) -> Vec<Candidate> {
        let declared = self.declared_candidates();
        let mut out = Vec::new();
        for (file, scan) in &self.sources {
            let name = file_name(file);
            if in_dirs(file, TEST_DIRS)
                || name.starts_with("test_")
                || name.ends_with("_test.py")
                || NOT_APP_FILES.contains(&name)
            {
                continue;
            }
            let side = in_dirs(file, SIDE_DIRS);
            let depth = file.matches('/').count();
            let rank = APP_FILE_NAMES
                .iter()
                .position(|n| *n == name)
                .unwrap_or(APP_FILE_NAMES.len());
            let named = rank < APP_FILE_NAMES.len();
            let mut apps: Vec<&AppDef> = scan.apps.iter().collect();
            // One per file: a module-level `app` first.
            apps.sort_by_key(|a| (a.factory.is_some(), a.var != "app"));
            let declared_here = declared.iter().any(|c| c.file == *file);
            let bento = scan
                .bento
                .first()
                .map(|class| (class, 0))
                .or_else(|| scan.bento_legacy.first().map(|var| (var, 1)))
                .filter(|_| !declared_here)
                .map(|(name, rank)| (AppKind::Bento(BentoApp::Found(name.clone())), rank));
            let web = bento
                .or_else(|| {
                    apps.first()
                        .map(|a| (AppKind::Web((*a).clone()), a.framework.rank()))
                })
                .or_else(|| scan.gradio.then_some((AppKind::Gradio, 2)))
                .or_else(|| scan.streamlit.then_some((AppKind::Streamlit, 3)));
            if let Some((kind, framework)) = web {
                let tier = match (side, named) {
                    (true, _) => 4,
                    (false, true) => 0,
                    (false, false) => 1,
                };
                out.push(Candidate {
                    kind,
                    file: file.clone(),
                    key: (tier, framework, rank, depth, file.clone()),
                    guessed: tier == 4,
                });
            }
            let package_main = name == "__main__.py";
            if scan.main_block || package_main {
                let tier = match (side, named || package_main, depth) {
                    (false, true, _) => 3,
                    (false, false, 0) => 5,
                    _ => 6,
                };
                out.push(Candidate {
                    kind: AppKind::Main,
                    file: file.clone(),
                    key: (tier, 0, rank, depth, file.clone()),
                    guessed: tier == 5,
                });
            }
        }
        if let Some(py) = &self.pyproject {
            let words = ["serve", "server", "api", "app", "web", "run", "start"];
            for (i, (name, target)) in py.scripts.iter().enumerate() {
                let rank = words
                    .iter()
                    .position(|w| name.contains(w))
                    .unwrap_or(words.len());
                let module = target.split(':').next().unwrap_or("").trim();
                out.push(Candidate {
                    kind: AppKind::Script(name.clone(), target.clone()),
                    file: self.module_file(module).unwrap_or_default(),
                    key: (2, 0, rank, i, name.clone()),
                    guessed: false,
                });
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        out.splice(0..0, declared);
        out
    }

    /// The apps cog.yaml and bentofile.yaml declare, in tier 0, with the file of their
    /// module (empty when it is not in the project).
    fn declared_candidates(&self) -> Vec<Candidate> {
        let mut out = Vec::new();
        for (i, d) in self.declared.iter().enumerate() {
            let Some(app) = &d.app else {
                continue;
            };
            let (kind, file) = match &app.value {
                DeclaredApp::Cog(cog) => {
                    let file = Some(cog.file()).filter(|f| self.tree.has_file(f));
                    (AppKind::Cog(cog.clone()), file.map(str::to_string))
                }
                DeclaredApp::Bento(bento) => {
                    let file = match bento {
                        BentoApp::Declared(target) => match BentoApp::declared_module(target) {
                            (path, true) => {
                                Some(path.to_string()).filter(|p| self.tree.has_file(p))
                            }
                            (module, false) => self.module_file(module),
                        },
                        BentoApp::Found(_) => None,
                    };
                    (AppKind::Bento(bento.clone()), file)
                }
            };
            out.push(Candidate {
                kind,
                file: file.unwrap_or_default(),
                key: (0, 0, 0, i, String::new()),
                guessed: false,
            });
        }
        out
    }

    /// The candidate to take: the first of tiers 0-3, else the first of tier 4, else the
    /// only one of tier 5.
    fn choose(candidates: &[Candidate]) -> Option<Candidate> {
        let tier = |t: u8| candidates.iter().filter(move |c| c.key.0 == t);
        candidates
            .iter()
            .find(|c| c.key.0 <= 3)
            .or_else(|| tier(4).next())
            .or_else(|| {
                let mut mains = tier(5);
                let only = mains.next()?;
                mains.next().is_none().then_some(only)
            })
            .cloned()
    }

    /// The file of a dotted module (`pkg.cli`), in the project or under `src/`.
    pub(super) fn module_file(&self, module: &str) -> Option<String> {
        if !module.split('.').all(is_identifier) {
            return None;
        }
        let rel = module.replace('.', "/");
        ["", "src"].iter().find_map(|base| {
            let p = join(base, &rel);
            [format!("{p}.py"), format!("{p}/__init__.py")]
                .into_iter()
                .find(|f| self.tree.has_file(f))
        })
    }

    /// How `file` is imported: from the directory (the file's own or an ancestor) where
    /// most of its imports of local modules resolve; on a tie `src/`, else the project
    /// root, else the shallowest. `app.py` → `app`; `src/pkg/main.py` → `pkg.main` from
    /// `src`; `backend/app/main.py` importing `app.core` → `app.main` from `backend`.
    fn module_path(&self, file: &str) -> ModulePath {
        let dir = parent(file);
        let stem = file_name(file).trim_end_matches(".py");
        let imports: &[String] = self.sources.get(file).map_or(&[], |s| &s.imports);
        let local = |base: &str, module: &str| {
            let first = module.split('.').next().unwrap_or(module);
            let p = join(base, first);
            self.tree.has_file(&format!("{p}.py")) || self.tree.py_dirs.contains(&p)
        };
        let mut bases = vec![dir];
        let mut b = dir;
        while !b.is_empty() {
            b = parent(b);
            bases.push(b);
        }
        let best = bases
            .into_iter()
            .filter_map(|base| {
                let rel = if base.is_empty() {
                    dir
                } else {
                    dir.strip_prefix(base)
                        .map_or("", |r| r.trim_start_matches('/'))
                };
                let parts: Vec<&str> = rel.split('/').filter(|p| !p.is_empty()).collect();
                if !parts.iter().all(|p| is_identifier(p)) {
                    return None;
                }
                let score = imports.iter().filter(|m| local(base, m)).count();
                let kind = match base {
                    "src" => 0u8,
                    "" => 1,
                    _ => 2,
                };
                let key = (std::cmp::Reverse(score), kind, base.matches('/').count());
                Some((key, base, parts))
            })
            .min_by(|a, b| a.0.cmp(&b.0));
        let (base, mut parts) = best.map_or((dir, Vec::new()), |(_, b, p)| (b, p));
        if stem != "__init__" || parts.is_empty() {
            parts.push(stem);
        }
        ModulePath {
            app_dir: (!base.is_empty()).then(|| base.to_string()),
            module: parts.join("."),
        }
    }

    pub(super) fn app(&mut self) {
        let candidates = self.candidates();
        let chosen = Self::choose(&candidates);
        // The "app:" line goes before the alternatives and the command's notes.
        let app_line_at = self.d.detected.len();
        for alt in candidates
            .iter()
            .filter(|c| chosen.as_ref().is_none_or(|ch| ch.key != c.key))
            .take(MAX_NOTED)
        {
            let line = format!("also found: {}", alt.describe());
            self.detected(line);
        }
        if self.tree.has_file("manage.py") && chosen.as_ref().is_none_or(|c| !c.is_web()) {
            self.missing(
                "a Django project (manage.py): set [app].command, e.g. [\"gunicorn\", \"--bind\", \"0.0.0.0:8000\", \"PROJECT.wsgi\"], and [app].ports",
            );
        }
        let Some(chosen) = chosen else {
            self.no_app();
            return;
        };
        if chosen.guessed {
            self.missing(format!(
                "the app is a guess ({}): check [app].command",
                chosen.describe()
            ));
        }
        let module = self.module_path(&chosen.file);
        self.files(&chosen, &module);
        let port = self.port(&chosen);
        let (command, env, how) = self.command(&chosen, &module, port);
        self.d
            .detected
            .insert(app_line_at, format!("app: {} ({how})", chosen.describe()));
        match &self.opts.command {
            Some(cmd) if !cmd.is_empty() => {
                self.detected("command: from the --command flag");
                self.d.command = Some(cmd.clone());
            }
            _ => {
                self.d.command = Some(command);
                self.d.env = env;
            }
        }
        self.d.port = port;
        self.healthcheck(&chosen);
        let downloads: Vec<String> = self
            .sources
            .iter()
            .filter(|(f, s)| s.downloads && self.d.app_files.iter().any(|g| glob_covers(g, f)))
            .map(|(f, _)| f.clone())
            .collect();
        if !downloads.is_empty() {
            self.detected(format!(
                "the code downloads models at run time ({}): the image does not hold them; add them as [weights] to bake them in",
                list_some(&downloads)
            ));
        }
    }

    fn no_app(&mut self) {
        self.d.app_files = vec!["**".to_string()];
        match &self.opts.command {
            Some(cmd) if !cmd.is_empty() => {
                self.detected("command: from the --command flag");
                self.d.command = Some(cmd.clone());
            }
            _ => self.missing(
                "no app found (no FastAPI/Starlette/Flask/Gradio/Streamlit app, [project.scripts] entry or __main__ block): set [app].command",
            ),
        }
        self.missing("[app].files is everything (\"**\"): narrow it to the app's code");
        self.d.port = self.opts.port.or_else(|| {
            let (port, _) = self.other_ports().into_iter().next()?;
            Some(port)
        });
        if let Some(port) = self.d.port {
            if self.opts.port.is_none() {
                self.detected(format!("port: {port} (named in the project's files)"));
            }
        }
    }

    fn healthcheck(&mut self, chosen: &Candidate) {
        if self.d.port.is_none() || !chosen.is_web() {
            return;
        }
        if let Some((_, path, whose)) = chosen.kind.server() {
            let line = match chosen.kind {
                AppKind::Cog(_) => format!(
                    "healthcheck: GET {path} ({whose}; it answers 200 in every state, with the state in its body, so a failed setup() does not show as unhealthy)"
                ),
                _ => format!("healthcheck: GET {path} ({whose}; 200 once the service is ready)"),
            };
            self.detected(line);
            self.d.healthcheck = Some(path.to_string());
            return;
        }
        let var = match &chosen.kind {
            AppKind::Web(app) => Some(app.var.as_str()),
            _ => None,
        };
        let mut elsewhere = Vec::new();
        let mut found = None;
        for (file, scan) in &self.sources {
            for (obj, path) in &scan.health {
                let on_app = *file == chosen.file && obj.as_deref().is_none_or(|o| Some(o) == var);
                if on_app && found.is_none() {
                    found = Some(path.clone());
                } else if !in_dirs(file, TEST_DIRS) {
                    let obj = obj.as_deref().unwrap_or("a route list");
                    elsewhere.push(format!("{path} on `{obj}` in {file}"));
                }
            }
        }
        if let Some(path) = found {
            self.detected(format!(
                "healthcheck: GET {path} (a route in {})",
                chosen.file
            ));
            self.d.healthcheck = Some(path);
        } else if !elsewhere.is_empty() {
            self.missing(format!(
                "health routes not on the app itself ({}): if one is served as is, set [app.healthcheck].path",
                list_some(&elsewhere)
            ));
        } else if matches!(chosen.kind, AppKind::Streamlit) {
            self.detected(
                "healthcheck: Streamlit answers on /_stcore/health; set [app.healthcheck].path to it to use it",
            );
        } else {
            self.missing(
                "no /health or /healthz route in the code: add one and set [app.healthcheck].path",
            );
        }
    }
}
