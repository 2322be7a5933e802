//! Writing the detection out: the commented `kiln.toml` and the `.kilnignore`.

use super::{Detection, PythonDeps, DEFAULT_BASE};
use std::fmt::Write as _;

/// The commented `kiln.toml` for a detection. Every section of the format is there; keys
/// that could not be filled are comments with a hint. Always valid TOML.
pub fn render_toml(d: &Detection) -> String {
    let mut o = String::new();
    o.push_str("# kiln.toml, written by `kiln init`. Edit freely: `kiln build` reads this file.\n");
    o.push_str("# Paths are relative to this directory.\n");
    if !d.detected.is_empty() {
        o.push_str("#\n# Detected:\n");
        for line in &d.detected {
            let _ = writeln!(o, "#   - {}", comment(line));
        }
    }
    if !d.missing.is_empty() {
        o.push_str("#\n# To check:\n");
        for line in &d.missing {
            let _ = writeln!(o, "#   - {}", comment(line));
        }
    }

    o.push_str("\n[project]\n");
    entry(&mut o, "name", &toml_str(&d.name), "the image name");
    opt_entry(
        &mut o,
        "version",
        d.version.as_deref(),
        "0.1.0",
        "the image tag",
    );
    opt_entry(
        &mut o,
        "description",
        d.description.as_deref(),
        "...",
        "optional",
    );

    o.push_str("\n[base]\n");
    let base = if d.base.trim().is_empty() {
        DEFAULT_BASE
    } else {
        d.base.as_str()
    };
    entry(
        &mut o,
        "image",
        &toml_str(base),
        "debian:bookworm (python 3.11) or debian:trixie (3.13), built from the Debian archive; or an image reference",
    );
    if d.packages_needed.is_empty() {
        o.push_str(
            "# packages = [\"libgomp1\"]   # extra Debian packages (debian:SUITE bases only)\n",
        );
    } else if base.starts_with("debian:") {
        entry(
            &mut o,
            "packages",
            &toml_array(&d.packages_needed),
            "extra Debian packages (see Detected above)",
        );
    } else {
        let _ = writeln!(
            o,
            "# packages = {}   # only with debian:SUITE; this base must provide them",
            toml_array(&d.packages_needed)
        );
    }

    o.push_str("\n[python]\n");
    opt_entry(
        &mut o,
        "version",
        d.python.as_deref(),
        "3.11",
        "checked against the base's interpreter",
    );
    match &d.deps {
        PythonDeps::UvLock => entry(
            &mut o,
            "lock",
            &toml_str("uv.lock"),
            "installed exactly, without the dev group",
        ),
        PythonDeps::Requirements(path) => entry(
            &mut o,
            "requirements",
            &toml_str(path),
            "resolved by uv into kiln.lock",
        ),
        PythonDeps::Pyproject if !d.pyproject_dependencies.is_empty() => {
            o.push_str(
                "# From pyproject.toml's [project].dependencies, resolved by uv into kiln.lock.\n",
            );
            o.push_str("# Or run `uv lock` and replace this with: lock = \"uv.lock\"\n");
            o.push_str("packages = [\n");
            for dep in &d.pyproject_dependencies {
                let _ = writeln!(o, "    {},", toml_str(dep));
            }
            o.push_str("]\n");
        }
        PythonDeps::Inline { from, packages } => {
            let _ = writeln!(
                o,
                "# From {}, resolved by uv into kiln.lock.",
                comment(from)
            );
            o.push_str("packages = [\n");
            for dep in packages {
                let _ = writeln!(o, "    {},", toml_str(dep));
            }
            o.push_str("]\n");
        }
        PythonDeps::Pyproject => {
            o.push_str("# pyproject.toml lists no [project].dependencies; run `uv lock`, then:\n");
            o.push_str("# lock = \"uv.lock\"\n");
        }
        PythonDeps::None => {
            o.push_str("# No dependencies found; one of:\n");
            o.push_str("# requirements = \"requirements.txt\"   # resolved by uv into kiln.lock\n");
            o.push_str("# packages = [\"numpy==2.2.6\"]\n");
        }
    }
    if let Some(url) = &d.index_url {
        entry(&mut o, "index-url", &toml_str(url), "");
    }
    if !d.extra_index_urls.is_empty() {
        entry(
            &mut o,
            "extra-index-url",
            &toml_array(&d.extra_index_urls),
            "",
        );
    } else if d.dependencies.iter().any(|n| n == "torch") && d.deps != PythonDeps::UvLock {
        o.push_str("# extra-index-url = [\"https://download.pytorch.org/whl/cpu\"]   # CPU-only torch (PyPI's brings CUDA)\n");
    } else if d.index_url.is_none() {
        o.push_str("# index-url = \"https://pypi.org/simple\"\n");
    }

    if d.weights.is_empty() {
        o.push_str("\n# No weights found. One table per file or directory of weights:\n");
        o.push_str("# [weights.model]\n");
        o.push_str("# path = \"models/model.safetensors\"\n");
    }
    for (name, path) in &d.weights {
        let _ = writeln!(o, "\n[weights.{}]", toml_key(name));
        entry(&mut o, "path", &toml_str(path), "");
        let _ = writeln!(
            o,
            "# target = {}   # default: [app].workdir + \"/\" + path",
            toml_str(&format!("/app/{path}"))
        );
    }

    o.push_str("\n[app]\n");
    let files = if d.app_files.is_empty() {
        vec!["**".to_string()]
    } else {
        d.app_files.clone()
    };
    entry(
        &mut o,
        "files",
        &toml_array(&files),
        "globs of the code files; weights and .kilnignore matches are always left out",
    );
    match &d.command {
        Some(cmd) if !cmd.is_empty() => entry(&mut o, "command", &toml_array(cmd), ""),
        _ => o.push_str(
            "# command = [\"python\", \"main.py\"]   # no app found: what the container runs\n",
        ),
    }
    if !d.env.is_empty() {
        let pairs: Vec<String> = d
            .env
            .iter()
            .map(|(k, v)| format!("{} = {}", toml_key(k), toml_str(v)))
            .collect();
        entry(&mut o, "env", &format!("{{ {} }}", pairs.join(", ")), "");
    } else {
        o.push_str("# env = { LOG_LEVEL = \"info\" }\n");
    }
    match d.port {
        Some(port) => entry(&mut o, "ports", &format!("[{port}]"), ""),
        None => o.push_str("# ports = [8000]   # the ports the app listens on\n"),
    }
    o.push_str("# workdir = \"/app\"   # default\n");
    o.push_str("# user = \"app\"       # default (uid/gid 1000); \"root\" or \"UID[:GID]\"\n");
    o.push_str("# writable = [\"/app/cache\"]   # paths the app writes\n");

    o.push('\n');
    match (&d.healthcheck, d.port) {
        (Some(path), Some(_)) => {
            o.push_str("[app.healthcheck]   # the app (or its server) answers this route\n");
            entry(
                &mut o,
                "path",
                &toml_str(path),
                "HTTP GET on the first port must answer 2xx",
            );
            o.push_str("# interval = \"30s\"\n# timeout = \"5s\"\n# start-period = \"60s\"\n# retries = 3\n");
        }
        _ => {
            o.push_str("# [app.healthcheck]   # no /health or /healthz route found\n");
            o.push_str("# path = \"/health\"   # HTTP GET on the first port must answer 2xx\n");
            o.push_str("# interval = \"30s\"\n");
        }
    }

    if d.gpus > 0 {
        o.push_str("\n[resources]   # applied by `kiln run`, read by `kiln deploy`\n");
        o.push_str("# cpus = 2.0\n# memory = \"2g\"\n");
        entry(&mut o, "gpus", &d.gpus.to_string(), "NVIDIA GPUs");
    } else {
        o.push_str("\n# [resources]   # applied by `kiln run`, read by `kiln deploy`\n");
        o.push_str("# cpus = 2.0\n# memory = \"2g\"\n# gpus = 0\n");
    }
    o
}

/// The `.kilnignore` for a detection (gitignore syntax): version control, virtual
/// environments, caches, build output, editor files and secrets.
pub fn render_ignore(d: &Detection) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "# .kilnignore for {}, written by `kiln init` (gitignore syntax).",
        comment(&d.name)
    );
    o.push_str("# Matching paths stay out of the image's code layer.\n");
    let groups: &[(&str, &[&str])] = &[
        ("Version control", &[".git/", ".hg/", ".svn/"]),
        ("Virtual environments", &[".venv/", "venv/", "env/"]),
        (
            "Python caches and build output",
            &[
                "__pycache__/",
                "*.pyc",
                "*.pyo",
                ".pytest_cache/",
                ".mypy_cache/",
                ".ruff_cache/",
                ".tox/",
                ".nox/",
                ".coverage",
                "htmlcov/",
                "build/",
                "dist/",
                "*.egg-info/",
            ],
        ),
        (
            "Notebooks and experiment tracking",
            &[
                ".ipynb_checkpoints/",
                "wandb/",
                "mlruns/",
                "lightning_logs/",
            ],
        ),
        (
            "Editors, OS and other tools",
            &[
                ".idea/",
                ".vscode/",
                ".DS_Store",
                "node_modules/",
                ".github/",
            ],
        ),
        (
            "Secrets: pass them with [app].env or at run time",
            &[".env"],
        ),
    ];
    for (title, lines) in groups {
        let _ = writeln!(o, "\n# {title}");
        for line in *lines {
            o.push_str(line);
            o.push('\n');
        }
    }
    if d.app_files.iter().any(|g| g == "**") {
        o.push_str("\n# [app].files is everything: list data and other large directories here.\n");
    }
    o
}

fn entry(o: &mut String, key: &str, value: &str, note: &str) {
    if note.is_empty() {
        let _ = writeln!(o, "{key} = {value}");
    } else {
        let _ = writeln!(o, "{key} = {value}   # {}", comment(note));
    }
}

fn opt_entry(o: &mut String, key: &str, value: Option<&str>, example: &str, note: &str) {
    match value {
        Some(v) => entry(o, key, &toml_str(v), note),
        None => {
            let _ = writeln!(o, "# {key} = {}   # {}", toml_str(example), comment(note));
        }
    }
}

/// A TOML basic string.
fn toml_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn toml_array(items: &[String]) -> String {
    let items: Vec<String> = items.iter().map(|i| toml_str(i)).collect();
    format!("[{}]", items.join(", "))
}

/// A TOML key: bare when it can be.
fn toml_key(k: &str) -> String {
    let bare = !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if bare {
        k.to_string()
    } else {
        toml_str(k)
    }
}

/// Text made safe for a TOML comment (one line, no control characters).
pub(super) fn comment(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}
