//! Tests of the whole detection: projects on disk, detected and rendered.

use super::*;

/// A project directory holding `files` (path, content).
fn project(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (path, content) in files {
        let path = dir.path().join(path);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, content).unwrap();
    }
    dir
}

fn detect_ok(dir: &tempfile::TempDir) -> Detection {
    detect_with(dir, &InitOptions::default())
}

/// Detects and checks that both rendered files are sound.
fn detect_with(dir: &tempfile::TempDir, opts: &InitOptions) -> Detection {
    let d = detect(dir.path(), opts).unwrap();
    parse_rendered(&d);
    assert!(render_ignore(&d).contains(".venv/"));
    d
}

fn parse_rendered(d: &Detection) -> toml::Table {
    let text = render_toml(d);
    toml::from_str::<toml::Table>(&text)
        .unwrap_or_else(|e| panic!("render_toml is not TOML: {e}\n{text}"))
}

fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn has_line(lines: &[String], needle: &str) -> bool {
    lines.iter().any(|l| l.contains(needle))
}

const FASTAPI_APP: &str = r#"
"""The service.

Example: app = FastAPI() in a docstring is no app.
"""
import os

import uvicorn
from fastapi import FastAPI

from utils import predict  # a local module
import helpers.text

app = FastAPI(title="iris")
MODEL = os.path.join("models", "iris.joblib")
LABELS = "labels.json"


@app.get("/health")
def health():
    return {"ok": True}


if __name__ == "__main__":
    uvicorn.run(
        app,
        host="0.0.0.0",
        port=8080,
    )
"#;

#[test]
fn fastapi_with_uv_lock_and_models_dir() {
    let dir = project(&[
        ("app.py", FASTAPI_APP),
        ("utils.py", "def predict(x):\n    return x\n"),
        ("helpers/__init__.py", ""),
        ("helpers/text.py", "X = 1\n"),
        ("labels.json", "[]"),
        (
            "pyproject.toml",
            "[project]\nname = \"Iris Service\"\nversion = \"0.2.0\"\ndescription = \"Iris \\\"classifier\\\"\"\nrequires-python = \">=3.11\"\ndependencies = [\"fastapi\", \"uvicorn\", \"scikit-learn>=1.5\"]\n",
        ),
        (
            "uv.lock",
            "version = 1\n\n[[package]]\nname = \"fastapi\"\nversion = \"0.115.0\"\n\n[[package]]\nname = \"scikit_learn\"\nversion = \"1.5.0\"\n\n[[package]]\nname = \"uvicorn\"\nversion = \"0.30.0\"\n",
        ),
        ("models/iris.joblib", "weights"),
        ("models/README.md", "how the model was trained"),
        ("data/train.csv", "a,b\n"),
        ("notebooks/explore.py", "print(1)\n"),
        ("tests/test_app.py", "from fastapi import FastAPI\napp = FastAPI()\n"),
        (".venv/lib/site.py", "app = FastAPI()\n"),
    ]);
    let d = detect_ok(&dir);
    assert_eq!(d.name, "iris-service");
    assert_eq!(d.version.as_deref(), Some("0.2.0"));
    assert_eq!(d.deps, PythonDeps::UvLock);
    assert_eq!(d.base, "debian:bookworm");
    assert_eq!(d.python, None);
    assert_eq!(
        d.command,
        Some(strs(&[
            "uvicorn", "app:app", "--host", "0.0.0.0", "--port", "8080"
        ]))
    );
    assert_eq!(d.port, Some(8080));
    assert_eq!(
        d.weights,
        vec![("models".to_string(), "models".to_string())]
    );
    assert_eq!(d.packages_needed, strs(&["libgomp1"]));
    assert_eq!(d.healthcheck.as_deref(), Some("/health"));
    assert_eq!(
        d.app_files,
        strs(&["app.py", "helpers/**", "labels.json", "utils.py"])
    );
    assert!(has_line(
        &d.detected,
        "app: FastAPI app `app` in app.py (uvicorn)"
    ));
    assert!(!has_line(&d.missing, "uvicorn is not among"));

    let t = parse_rendered(&d);
    assert_eq!(t["project"]["name"].as_str(), Some("iris-service"));
    assert_eq!(
        t["project"]["description"].as_str(),
        Some("Iris \"classifier\"")
    );
    assert_eq!(t["python"]["lock"].as_str(), Some("uv.lock"));
    assert_eq!(t["base"]["packages"][0].as_str(), Some("libgomp1"));
    assert_eq!(t["weights"]["models"]["path"].as_str(), Some("models"));
    assert!(t["weights"]["models"].get("target").is_none());
    assert_eq!(t["app"]["ports"][0].as_integer(), Some(8080));
    assert_eq!(t["app"]["healthcheck"]["path"].as_str(), Some("/health"));
    assert_eq!(t["app"]["command"][1].as_str(), Some("app:app"));
}

#[test]
fn flask_with_requirements_and_port() {
    let dir = project(&[
        (
            "app.py",
            "from flask import Flask, render_template\n\napp = Flask(__name__)\n\n@app.route(\"/\")\ndef index():\n    return render_template(\"index.html\")\n\nif __name__ == '__main__':\n    app.run(host='0.0.0.0', port=5001, debug=True)\n",
        ),
        ("templates/index.html", "<p>hi</p>"),
        ("static/style.css", "p {}"),
        ("requirements.txt", "flask==3.0.0  # web\nopencv-python\n-r requirements-common.txt\n--extra-index-url https://example.org\n"),
        ("requirements-common.txt", "numpy\n"),
        ("requirements-dev.txt", "pytest\n"),
        ("model.pkl", "pickle"),
    ]);
    let d = detect_ok(&dir);
    assert_eq!(d.deps, PythonDeps::Requirements("requirements.txt".into()));
    assert_eq!(
        d.command,
        Some(strs(&[
            "flask", "--app", "app:app", "run", "--host", "0.0.0.0", "--port", "5001"
        ]))
    );
    assert_eq!(d.port, Some(5001));
    assert_eq!(d.packages_needed, strs(&["libgl1", "libglib2.0-0"]));
    assert!(d.dependencies.contains(&"numpy".to_string()));
    assert_eq!(
        d.weights,
        vec![("model".to_string(), "model.pkl".to_string())]
    );
    assert_eq!(d.app_files, strs(&["app.py", "static/**", "templates/**"]));
    assert_eq!(d.healthcheck, None);
    assert!(has_line(&d.missing, "no /health or /healthz route"));
    let t = parse_rendered(&d);
    assert_eq!(
        t["python"]["requirements"].as_str(),
        Some("requirements.txt")
    );
    assert!(t["app"].get("healthcheck").is_none());
}

#[test]
fn flask_factory_with_gunicorn() {
    let dir = project(&[
        (
            "wsgi.py",
            "from flask import Flask\n\ndef create_app():\n    app = Flask(__name__)\n    return app\n",
        ),
        ("requirements/prod.txt", "flask\ngunicorn\n"),
        ("requirements/dev.txt", "pytest\n"),
    ]);
    let d = detect_ok(&dir);
    assert_eq!(
        d.deps,
        PythonDeps::Requirements("requirements/prod.txt".into())
    );
    assert_eq!(
        d.command,
        Some(strs(&[
            "gunicorn",
            "--bind",
            "0.0.0.0:8000",
            "wsgi:create_app()"
        ]))
    );
    assert_eq!(d.port, Some(8000));
    assert!(has_line(&d.missing, "assumed 8000"));
}

#[test]
fn src_layout_with_project_scripts() {
    let dir = project(&[
        (
            "pyproject.toml",
            "[project]\nname = \"mytool\"\nversion = \"1.0.0+cu124\"\ndependencies = [\"torch>=2\", \"click\"]\n\n[project.scripts]\nmytool-train = \"mytool.train:main\"\nmytool-serve = \"mytool.cli:main\"\n",
        ),
        ("src/mytool/__init__.py", ""),
        ("src/mytool/cli.py", "import click\n\ndef main():\n    pass\n"),
        ("src/mytool/train.py", "def main():\n    pass\n"),
        ("README.md", "Run `mytool-serve`.\n"),
    ]);
    let d = detect_ok(&dir);
    assert_eq!(
        d.command,
        Some(strs(&[
            "python",
            "-c",
            "import sys; from mytool.cli import main; sys.exit(main())"
        ]))
    );
    assert_eq!(d.env, vec![("PYTHONPATH".into(), "/app/src".into())]);
    assert_eq!(d.app_files, strs(&["src/**"]));
    assert_eq!(d.deps, PythonDeps::Pyproject);
    assert_eq!(d.pyproject_dependencies, strs(&["torch>=2", "click"]));
    assert_eq!(d.version.as_deref(), Some("1.0.0-cu124"));
    assert_eq!(d.port, None);
    assert_eq!(d.packages_needed, strs(&["libgomp1"]));
    assert!(has_line(
        &d.missing,
        "pyproject.toml has no uv.lock: run `uv lock`"
    ));
    assert!(has_line(
        &d.detected,
        "also found: [project.scripts] entry `mytool-train`"
    ));
    let t = parse_rendered(&d);
    assert_eq!(t["python"]["packages"][0].as_str(), Some("torch>=2"));
    assert!(render_toml(&d).contains("download.pytorch.org/whl/cpu"));
}

#[test]
fn src_layout_fastapi_uses_app_dir() {
    let dir = project(&[
        ("src/svc/__init__.py", ""),
        (
            "src/svc/main.py",
            "import fastapi\nfrom svc.routes import router\napi = fastapi.FastAPI()\napi.include_router(router)\n",
        ),
        (
            "src/svc/routes.py",
            "from fastapi import APIRouter\nrouter = APIRouter()\n@router.get(\"/healthz\")\ndef h():\n    return 'ok'\n",
        ),
        ("Dockerfile", "FROM python:3.11\nEXPOSE 9000\nCMD [\"uvicorn\", \"svc.main:api\"]\n"),
        ("requirements.txt", "fastapi[standard]\n"),
    ]);
    let d = detect_ok(&dir);
    assert_eq!(
        d.command,
        Some(strs(&[
            "uvicorn",
            "svc.main:api",
            "--app-dir",
            "src",
            "--host",
            "0.0.0.0",
            "--port",
            "9000"
        ]))
    );
    assert_eq!(d.port, Some(9000));
    assert_eq!(d.app_files, strs(&["src/**"]));
    assert_eq!(d.healthcheck, None);
    assert!(has_line(&d.missing, "/healthz on `router`"));
    assert!(!has_line(&d.missing, "uvicorn is not among"));
}

#[test]
fn main_script_without_dependencies() {
    let dir = project(&[
        (
            "main.py",
            "import sys\n\ndef run():\n    print('hi')\n\nif __name__ == \"__main__\":\n    run()\n",
        ),
        ("setup.py", "if __name__ == '__main__':\n    pass\n"),
    ]);
    let d = detect_ok(&dir);
    assert_eq!(d.command, Some(strs(&["python", "main.py"])));
    assert_eq!(d.deps, PythonDeps::None);
    assert_eq!(d.port, None);
    assert_eq!(d.app_files, strs(&["main.py"]));
    assert!(has_line(&d.missing, "no Python dependencies found"));
    assert!(has_line(&d.detected, "no port found"));
    let t = parse_rendered(&d);
    assert!(t["app"].get("ports").is_none());
    assert!(t.get("python").is_some());
}

#[test]
fn port_from_the_runner_script_and_procfile() {
    let dir = project(&[
        ("app.py", "from fastapi import FastAPI\napp = FastAPI()\n"),
        (
            "run.py",
            "import uvicorn\nif __name__ == '__main__':\n    uvicorn.run('app:app', port=8765)\n",
        ),
        ("Procfile", "web: uvicorn app:app --port 9999\n"),
        ("myenv/pyvenv.cfg", "home = /usr\n"),
        ("myenv/lib/x.py", "app = FastAPI()\n"),
    ]);
    let d = detect_ok(&dir);
    assert_eq!(d.port, Some(8765));
    assert!(has_line(
        &d.detected,
        "port: 8765 (run.py:3); also named: 9999 (Procfile:1)"
    ));
    assert!(has_line(
        &d.detected,
        "also found: __main__ block in run.py"
    ));
    assert!(!has_line(&d.detected, "myenv"));

    let dir = project(&[
        ("app.py", "from fastapi import FastAPI\napp = FastAPI()\n"),
        (
            "Procfile",
            "web: uvicorn app:app --host 0.0.0.0 --port 9999\n",
        ),
    ]);
    assert_eq!(detect_ok(&dir).port, Some(9999));
}

#[test]
fn starlette_poetry_project() {
    let dir = project(&[
        (
            "pyproject.toml",
            "[tool.poetry]\nname = \"svc\"\nversion = \"0.3.0\"\n\n[tool.poetry.dependencies]\npython = \"^3.11\"\nstarlette = \"*\"\nuvicorn = \"*\"\n",
        ),
        ("poetry.lock", ""),
        (
            "server.py",
            "from starlette.applications import Starlette\nfrom starlette.routing import Route\n\nasync def health(request):\n    ...\n\napp = Starlette(routes=[\n    Route(\"/health\", health),\n])\n",
        ),
    ]);
    let d = detect_ok(&dir);
    assert_eq!(d.name, "svc");
    assert_eq!(d.version.as_deref(), Some("0.3.0"));
    assert_eq!(d.deps, PythonDeps::Pyproject);
    assert!(d.pyproject_dependencies.is_empty());
    assert!(has_line(&d.missing, "poetry export"));
    assert_eq!(
        d.command,
        Some(strs(&[
            "uvicorn",
            "server:app",
            "--host",
            "0.0.0.0",
            "--port",
            "8000"
        ]))
    );
    assert_eq!(d.healthcheck.as_deref(), Some("/health"));
    assert_eq!(d.base, DEFAULT_BASE);
    let t = parse_rendered(&d);
    assert!(t["python"].get("packages").is_none());
}

#[test]
fn package_main_and_single_guess() {
    let dir = project(&[
        ("mypkg/__init__.py", ""),
        ("mypkg/__main__.py", "print(1)\n"),
    ]);
    let d = detect_ok(&dir);
    assert_eq!(d.command, Some(strs(&["python", "-m", "mypkg"])));
    assert_eq!(d.app_files, strs(&["mypkg/**"]));

    let dir = project(&[
        ("src/tool/__init__.py", ""),
        ("src/tool/__main__.py", "from tool import x\n"),
    ]);
    let d = detect_ok(&dir);
    assert_eq!(d.command, Some(strs(&["python", "-m", "tool"])));
    assert_eq!(d.env, vec![("PYTHONPATH".into(), "/app/src".into())]);

    let dir = project(&[("score.py", "if __name__ == '__main__':\n    print(1)\n")]);
    let d = detect_ok(&dir);
    assert_eq!(d.command, Some(strs(&["python", "score.py"])));
    assert!(has_line(&d.missing, "the app is a guess"));
}

#[test]
fn nothing_detectable() {
    let dir = project(&[("README.md", "# notes\n"), ("data/x.csv", "1\n")]);
    let d = detect_ok(&dir);
    assert_eq!(d.command, None);
    assert_eq!(d.port, None);
    assert_eq!(d.deps, PythonDeps::None);
    assert!(d.weights.is_empty());
    assert_eq!(d.app_files, strs(&["**"]));
    assert!(has_line(&d.missing, "no app found"));
    assert!(has_line(&d.missing, "no Python dependencies found"));
    assert!(has_line(&d.missing, "[app].files is everything"));
    let t = parse_rendered(&d);
    assert_eq!(t["app"]["files"][0].as_str(), Some("**"));
    assert!(t["app"].get("command").is_none());
    assert!(t.get("weights").is_none());
    assert!(render_ignore(&d).contains("list data and other large directories"));

    let empty = project(&[]);
    let d = detect_ok(&empty);
    assert!(!d.name.is_empty());
}

#[test]
fn flags_override() {
    let dir = project(&[
        ("app.py", "from fastapi import FastAPI\napp = FastAPI()\n"),
        ("requirements.txt", "fastapi\nuvicorn\n"),
        (".python-version", "3.11\n"),
    ]);
    let opts = InitOptions {
        name: Some("My App!".into()),
        base: Some("debian:trixie".into()),
        python: Some("3.13".into()),
        command: None,
        port: Some(9001),
    };
    let d = detect_with(&dir, &opts);
    assert_eq!(d.name, "my-app");
    assert_eq!(d.base, "debian:trixie");
    assert_eq!(d.python.as_deref(), Some("3.13"));
    assert_eq!(d.port, Some(9001));
    assert_eq!(
        d.command,
        Some(strs(&[
            "uvicorn", "app:app", "--host", "0.0.0.0", "--port", "9001"
        ]))
    );
    assert!(!has_line(&d.missing, "assumed"));

    let opts = InitOptions {
        command: Some(strs(&["python", "-m", "my.server"])),
        base: Some("python:3.12-slim".into()),
        ..InitOptions::default()
    };
    let d = detect_with(&dir, &opts);
    assert_eq!(d.command, opts.command);
    assert_eq!(d.base, "python:3.12-slim");
    assert_eq!(d.python.as_deref(), Some("3.11"));
    let t = parse_rendered(&d);
    assert_eq!(t["base"]["image"].as_str(), Some("python:3.12-slim"));
    assert_eq!(t["app"]["command"][2].as_str(), Some("my.server"));
}

#[test]
fn python_version_picks_the_base() {
    let dir = project(&[(".python-version", "3.13.1\n")]);
    let d = detect_ok(&dir);
    assert_eq!(d.base, "debian:trixie");
    assert_eq!(d.python.as_deref(), Some("3.13"));

    let dir = project(&[(
        "pyproject.toml",
        "[project]\nname = \"x\"\nrequires-python = \">=3.12\"\n",
    )]);
    let d = detect_ok(&dir);
    assert_eq!(d.base, "debian:trixie");
    assert_eq!(d.python, None);

    let dir = project(&[(".python-version", "3.12\n")]);
    let d = detect_ok(&dir);
    assert_eq!(d.base, "debian:bookworm");
    assert_eq!(d.python, None);
    assert!(has_line(&d.missing, "python 3.12 (from .python-version)"));

    let dir = project(&[(
        "pyproject.toml",
        "[project]\nname = \"x\"\nrequires-python = \"==3.11.*\"\n",
    )]);
    assert_eq!(detect_ok(&dir).python.as_deref(), Some("3.11"));
}

#[test]
fn gradio_and_streamlit() {
    let dir = project(&[
        (
            "app.py",
            "import gradio as gr\n\ndef f(x):\n    return x\n\ndemo = gr.Interface(fn=f, inputs='text', outputs='text')\ndemo.launch()\n",
        ),
        ("requirements.txt", "gradio\n"),
    ]);
    let d = detect_ok(&dir);
    assert_eq!(d.command, Some(strs(&["python", "app.py"])));
    assert_eq!(d.port, Some(7860));
    assert!(d
        .env
        .contains(&("GRADIO_SERVER_NAME".into(), "0.0.0.0".into())));
    let t = parse_rendered(&d);
    assert_eq!(t["app"]["env"]["GRADIO_SERVER_PORT"].as_str(), Some("7860"));

    let dir = project(&[
        (
            "streamlit_app.py",
            "import streamlit as st\nst.title('hi')\n",
        ),
        ("pages/1_more.py", "import streamlit as st\n"),
        ("requirements.txt", "streamlit\n"),
    ]);
    let d = detect_ok(&dir);
    assert_eq!(
        d.command.as_ref().unwrap()[..3],
        strs(&["streamlit", "run", "streamlit_app.py"])
    );
    assert_eq!(d.port, Some(8501));
    assert_eq!(d.app_files, strs(&["streamlit_app.py", "pages/**"]));
}

#[test]
fn models_dir_with_code_is_not_weights() {
    let dir = project(&[
        ("app/__init__.py", ""),
        (
            "app/main.py",
            "from fastapi import FastAPI\nfrom app.models import user\napp = FastAPI()\n",
        ),
        ("app/models/__init__.py", ""),
        ("app/models/user.py", "class User: pass\n"),
        ("hf/bert/config.json", "{}"),
        ("hf/bert/model.safetensors", "w"),
        ("hf/bert/tokenizer.json", "{}"),
        ("ckpt/a.pt", "w"),
        ("more/a.pt", "w"),
        ("weights/.gitkeep", ""),
        ("tests/a.pt", "fixture"),
        ("tests/b.pt", "fixture"),
    ]);
    let d = detect_ok(&dir);
    assert_eq!(
        d.command,
        Some(strs(&[
            "uvicorn",
            "app.main:app",
            "--host",
            "0.0.0.0",
            "--port",
            "8000"
        ]))
    );
    assert_eq!(d.app_files, strs(&["app/**"]));
    let names: Vec<&str> = d.weights.iter().map(|(n, _)| n.as_str()).collect();
    let paths: Vec<&str> = d.weights.iter().map(|(_, p)| p.as_str()).collect();
    assert_eq!(paths, ["hf/bert", "ckpt/a.pt", "more/a.pt"]);
    assert_eq!(names, ["bert", "a", "more-a"]);
    assert!(has_line(&d.missing, "weights/ holds no files"));
}

#[test]
fn sibling_imports_run_from_their_directory() {
    let dir = project(&[
        (
            "my-service/server.py",
            "from fastapi import FastAPI\nimport model\napp = FastAPI()\n",
        ),
        ("my-service/model.py", "X = 1\n"),
    ]);
    let d = detect_ok(&dir);
    assert_eq!(
        d.command,
        Some(strs(&[
            "uvicorn",
            "server:app",
            "--app-dir",
            "my-service",
            "--host",
            "0.0.0.0",
            "--port",
            "8000"
        ]))
    );
    assert_eq!(d.app_files, strs(&["my-service/**"]));
}

#[test]
fn odd_input_never_panics() {
    let dir = project(&[
        ("app.py", "from fastapi import FastAPI\napp = FastAPI()\n"),
        ("weird \"name\" [1].py", "x = 'unterminated\n"),
        ("pyproject.toml", "[project\nname = "),
        ("uv.lock", "not toml at all [[["),
    ]);
    fs::write(
        dir.path().join("latin1.py"),
        b"# caf\xe9\nport = 8123\n\xff\xfe",
    )
    .unwrap();
    let big = vec![b'#'; (MAX_SOURCE_BYTES + 10) as usize];
    fs::write(dir.path().join("big.py"), big).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        let odd = std::ffi::OsStr::from_bytes(b"bad\xffname.py");
        fs::write(dir.path().join(odd), "x").unwrap();
        std::os::unix::fs::symlink(dir.path(), dir.path().join("loop")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("outside.pt")).unwrap();
        std::os::unix::fs::symlink("nowhere", dir.path().join("dangling.py")).unwrap();
    }
    let d = detect_ok(&dir);
    assert!(has_line(&d.missing, "pyproject.toml is not valid TOML"));
    assert!(has_line(&d.detected, "not scanned"));
    assert_eq!(d.deps, PythonDeps::UvLock);
    assert!(d.dependencies.is_empty());
    assert!(d.weights.is_empty());
    #[cfg(unix)]
    assert!(has_line(&d.missing, "skipped:"));

    assert!(detect(&dir.path().join("app.py"), &InitOptions::default()).is_err());
    assert!(detect(&dir.path().join("nope"), &InitOptions::default()).is_err());
}

#[test]
fn walk_is_bounded_and_honours_ignore_files() {
    let mut files: Vec<(String, String)> = (0..50)
        .map(|i| (format!("many/f{i:02}.txt"), String::new()))
        .collect();
    files.push(("data/big.pt".into(), String::new()));
    files.push(("keep/w.onnx".into(), String::new()));
    files.push(("models/m.bin".into(), String::new()));
    files.push(("checkpoints/best.pt".into(), String::new()));
    files.push((
        ".gitignore".into(),
        "data/\nmodels/\n/checkpoints\n*.log\n".into(),
    ));
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let dir = project(&refs);
    let d = detect(dir.path(), &InitOptions::default()).unwrap();
    let paths: Vec<&str> = d.weights.iter().map(|(_, p)| p.as_str()).collect();
    assert_eq!(paths, ["models", "checkpoints/best.pt", "keep/w.onnx"]);
    assert!(has_line(&d.detected, "in .gitignore"));

    let d = detect_with_limit(dir.path(), &InitOptions::default(), 10).unwrap();
    assert!(has_line(&d.missing, "more than"));
}

#[test]
fn render_escapes_and_stays_toml() {
    let d = Detection {
        name: "x".into(),
        description: Some("line one\nline \"two\" \\ \u{7}".into()),
        base: String::new(),
        command: Some(strs(&["sh", "-c", "echo \"$PORT\""])),
        env: vec![("WEIRD KEY".into(), "v".into())],
        weights: vec![("m".into(), "dir with space/m.bin".into())],
        detected: vec!["a\nb".into()],
        missing: vec!["c\r\nd".into()],
        port: Some(1),
        healthcheck: Some("/health".into()),
        ..Detection::default()
    };
    let t = parse_rendered(&d);
    assert_eq!(
        t["project"]["description"].as_str(),
        d.description.as_deref()
    );
    assert_eq!(t["base"]["image"].as_str(), Some(DEFAULT_BASE));
    assert_eq!(t["app"]["env"]["WEIRD KEY"].as_str(), Some("v"));
    assert_eq!(t["app"]["command"][2].as_str(), Some("echo \"$PORT\""));
    // An empty detection too.
    parse_rendered(&Detection::default());
}
