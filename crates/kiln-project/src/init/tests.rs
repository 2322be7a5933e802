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

/// Parses the rendered kiln.toml with kiln's own manifest parser, in the project.
fn parse_project(dir: &tempfile::TempDir, d: &Detection) -> crate::manifest::Project {
    let text = render_toml(d);
    let file = dir.path().join(crate::manifest::FILE);
    crate::manifest::Project::parse(dir.path(), &file, &text)
        .unwrap_or_else(|e| panic!("kiln.toml does not parse: {e}\n{text}"))
}

fn env_of(d: &Detection, key: &str) -> Option<String> {
    d.env.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
}

const COG_PREDICTOR: &str = r#"
from cog import BasePredictor, Input

from helpers import load_model


class Predictor(BasePredictor):
    def setup(self):
        self.model = load_model()

    def predict(self, prompt: str = Input(description="text")) -> str:
        return self.model(prompt)
"#;

#[test]
fn cog_project_with_requirements() {
    let dir = project(&[
        (
            "cog.yaml",
            r#"# Configuration for Cog
build:
  gpu: true
  cuda: "12.1"
  python_version: "3.11"
  python_requirements: requirements.txt
  system_packages:
    - "ffmpeg"
    - "libgl1"
    - "Not A Package"
  run:
    - "curl -L -o /tmp/x.tar https://example.org/x.tar"
    - command: pip install private-thing
      mounts:
        - type: secret
          id: pip
          target: /etc/pip.conf
image: "r8.im/someone/Text-Model"
predict: "predict.py:Predictor"
concurrency:
  max: 4
environment:
  - HF_HOME=/app/hf
"#,
        ),
        ("predict.py", COG_PREDICTOR),
        ("helpers.py", "def load_model():\n    return str\n"),
        ("requirements.txt", "torch==2.3.1\ntransformers\n"),
    ]);
    let d = detect_ok(&dir);
    assert_eq!(d.name, "text-model");
    assert_eq!(d.command, Some(strs(&["python", "-m", "cog.server.http"])));
    assert_eq!(d.port, Some(5000));
    assert_eq!(d.healthcheck.as_deref(), Some("/health-check"));
    assert_eq!(
        env_of(&d, "COG_PREDICT_TYPE_STUB").as_deref(),
        Some("predict.py:Predictor")
    );
    assert_eq!(env_of(&d, "COG_MAX_CONCURRENCY").as_deref(), Some("4"));
    assert_eq!(env_of(&d, "HF_HOME").as_deref(), Some("/app/hf"));
    assert_eq!(env_of(&d, "PORT"), None);
    assert_eq!(d.app_files, strs(&["predict.py", "helpers.py", "cog.yaml"]));
    assert_eq!(d.deps, PythonDeps::Requirements("requirements.txt".into()));
    assert_eq!(d.python.as_deref(), Some("3.11"));
    assert_eq!(d.base, "debian:bookworm");
    assert_eq!(d.gpus, 1);
    assert_eq!(d.packages_needed, strs(&["libgomp1", "ffmpeg", "libgl1"]));

    assert!(has_line(&d.detected, "cog.yaml: a Cog project"));
    assert!(has_line(
        &d.detected,
        "app: Cog predictor `predict.py:Predictor`, from cog.yaml's predict (Cog's HTTP server, python -m cog.server.http)"
    ));
    assert!(has_line(
        &d.detected,
        "python dependencies: requirements.txt (from cog.yaml's build.python_requirements; resolved by uv into kiln.lock)"
    ));
    assert!(has_line(
        &d.detected,
        "python: 3.11 (from cog.yaml's build.python_version), debian:bookworm's"
    ));
    assert!(has_line(
        &d.detected,
        "base packages: ffmpeg, libgl1 (from cog.yaml's build.system_packages)"
    ));
    assert!(has_line(
        &d.detected,
        "resources: gpus = 1 (from cog.yaml's build.gpu)"
    ));
    assert!(has_line(&d.detected, "port: 5000 (Cog's server's default)"));
    assert!(has_line(&d.detected, "healthcheck: GET /health-check"));
    assert!(has_line(
        &d.detected,
        "name: text-model (from cog.yaml's image"
    ));
    assert!(has_line(
        &d.detected,
        "and cog.yaml, which Cog's server reads"
    ));
    assert!(has_line(&d.missing, "cog is not among the dependencies"));
    assert!(has_line(&d.missing, "add `cog` to requirements.txt"));
    assert!(has_line(&d.missing, "Ubuntu package names"));
    assert!(has_line(
        &d.missing,
        "not Debian package names, left out: Not A Package"
    ));
    assert!(has_line(
        &d.missing,
        "build.run runs shell commands at build time"
    ));
    assert!(has_line(
        &d.missing,
        "`curl -L -o /tmp/x.tar https://example.org/x.tar`"
    ));
    assert!(has_line(&d.missing, "`pip install private-thing`"));
    assert!(has_line(&d.missing, "cog.yaml's build.cuda is \"12.1\""));
    assert!(!has_line(&d.missing, "no app found"));
    assert!(!has_line(&d.missing, "no /health or /healthz route"));
    assert!(!has_line(&d.detected, "for a CPU-only image"));

    let p = parse_project(&dir, &d);
    assert_eq!(p.name, "text-model");
    assert_eq!(p.python_version.as_deref(), Some("3.11"));
    assert_eq!(p.packages, strs(&["libgomp1", "ffmpeg", "libgl1"]));
    assert_eq!(
        p.deps,
        crate::manifest::Dependencies::Requirements(dir.path().join("requirements.txt"))
    );
    assert_eq!(p.command, d.command);
    assert_eq!(p.ports, [5000]);
    assert_eq!(
        p.health.as_ref().and_then(|h| h.http_path.as_deref()),
        Some("/health-check")
    );
    assert_eq!(p.files, strs(&["predict.py", "helpers.py", "cog.yaml"]));
    assert_eq!(p.manifest.resources.gpus, 1);
    assert_eq!(
        p.manifest
            .app
            .env
            .get("COG_PREDICT_TYPE_STUB")
            .map(String::as_str),
        Some("predict.py:Predictor")
    );
    assert!(p
        .env()
        .contains(&("NVIDIA_VISIBLE_DEVICES".to_string(), "all".to_string())));
}

#[test]
fn cog_python_versions() {
    let cog = |version: &str| {
        format!(
            "build:\n  python_version: {version}\n  python_requirements: requirements.txt\npredict: \"predict.py:Predictor\"\n"
        )
    };
    let files = |yaml: &str| {
        project(&[
            ("cog.yaml", yaml),
            ("predict.py", COG_PREDICTOR),
            ("helpers.py", "def load_model():\n    return str\n"),
            ("requirements.txt", "cog\n"),
        ])
    };

    // 3.12: not bookworm's; the version is left unset, with a check line.
    let dir = files(&cog("\"3.12\""));
    let d = detect_ok(&dir);
    assert_eq!(d.base, "debian:bookworm");
    assert_eq!(d.python, None);
    assert!(has_line(
        &d.missing,
        "python 3.12 (from cog.yaml's build.python_version) is not what debian:bookworm gives (3.11)"
    ));
    assert!(!has_line(&d.missing, "cog is not among"));
    parse_project(&dir, &d);

    // 3.13: trixie's.
    let d = detect_ok(&files(&cog("\"3.13.1\"")));
    assert_eq!(d.base, "debian:trixie");
    assert_eq!(d.python.as_deref(), Some("3.13"));

    // An unquoted 3.10 is the YAML number 3.1: read as written.
    let d = detect_ok(&files(&cog("3.10")));
    assert!(has_line(
        &d.missing,
        "python 3.10 (from cog.yaml's build.python_version)"
    ));

    // .python-version comes first.
    let dir = files(&cog("\"3.12\""));
    fs::write(dir.path().join(".python-version"), "3.11\n").unwrap();
    let d = detect_ok(&dir);
    assert_eq!(d.python.as_deref(), Some("3.11"));
    assert!(has_line(
        &d.detected,
        "cog.yaml's build.python_version says 3.12; .python-version's 3.11 is used"
    ));

    // Nonsense is noted and ignored.
    let d = detect_ok(&files(&cog("\"latest\"")));
    assert!(has_line(&d.missing, "is not a Python 3 version: ignored"));
    assert_eq!(d.python, None);
}

#[test]
fn older_cog_yaml_with_python_packages() {
    let dir = project(&[
        (
            "cog.yaml",
            "build:\n  python_version: \"3.8\"\n  python_packages:\n    - \"pillow==8.3.1\"\n    - \"tensorflow==2.5.0\"\n    - \"--extra-index-url x\"\n  system_packages:\n    - \"libgl1-mesa-glx\"\n  pre_install:\n    - \"pip install -U pip\"\ntrain: \"train.py:train\"\n",
        ),
        (
            "train.py",
            "from cog import BaseModel, Input, Path\n\ndef train(steps: int = Input(default=10)) -> Path:\n    ...\n",
        ),
    ]);
    let d = detect_ok(&dir);
    assert_eq!(
        d.deps,
        PythonDeps::Inline {
            from: "cog.yaml's build.python_packages".into(),
            packages: strs(&["pillow==8.3.1", "tensorflow==2.5.0"]),
        }
    );
    assert!(d.dependencies.contains(&"tensorflow".to_string()));
    assert_eq!(
        d.command,
        Some(strs(&[
            "python",
            "-m",
            "cog.server.http",
            "--x-mode",
            "train"
        ]))
    );
    assert_eq!(
        env_of(&d, "COG_TRAIN_TYPE_STUB").as_deref(),
        Some("train.py:train")
    );
    assert_eq!(d.app_files, strs(&["train.py", "cog.yaml"]));
    assert_eq!(d.python, None);
    assert!(has_line(
        &d.detected,
        "python dependencies: 2 packages from cog.yaml's build.python_packages, as [python].packages"
    ));
    assert!(has_line(
        &d.missing,
        "python 3.8 (from cog.yaml's build.python_version) is not what debian:bookworm gives"
    ));
    assert!(has_line(&d.missing, "add `cog` to [python].packages"));
    assert!(has_line(&d.missing, "left out: --extra-index-url x"));
    assert!(has_line(&d.missing, "`pip install -U pip`"));
    assert!(!has_line(&d.missing, "no Python dependencies found"));

    let t = parse_rendered(&d);
    assert_eq!(
        t["python"]["packages"][1].as_str(),
        Some("tensorflow==2.5.0")
    );
    assert!(t.get("resources").is_none());
    let p = parse_project(&dir, &d);
    assert_eq!(
        p.deps,
        crate::manifest::Dependencies::Inline(strs(&["pillow==8.3.1", "tensorflow==2.5.0"]))
    );
    assert_eq!(p.packages, strs(&["libgl1-mesa-glx"]));
    assert_eq!(p.ports, [5000]);
    assert_eq!(p.manifest.resources.gpus, 0);
}

#[test]
fn bad_cog_and_bento_yaml_are_noted() {
    let dir = project(&[
        (
            "cog.yaml",
            "build:\n  gpu: true\n  python_version: \"3.11\n predict: [\n",
        ),
        ("bentofile.yaml", "- just\n- a list\n"),
        ("predict.py", COG_PREDICTOR),
        ("requirements.txt", "cog\n"),
    ]);
    let d = detect_ok(&dir);
    let bad = d
        .missing
        .iter()
        .find(|l| l.contains("not valid YAML"))
        .expect("a line about cog.yaml");
    assert!(bad.starts_with("cog.yaml:"), "{bad}");
    let line_no: usize = bad
        .trim_start_matches("cog.yaml:")
        .split(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!((3..=5).contains(&line_no), "{bad}");
    assert!(has_line(
        &d.missing,
        "bentofile.yaml is not a YAML mapping: ignored"
    ));
    assert_eq!(d.gpus, 0);
    assert!(!has_line(&d.detected, "a Cog project"));
    assert!(has_line(&d.missing, "no app found"));
    parse_project(&dir, &d);

    // Keys of the wrong type are noted and skipped; the rest is read.
    let dir = project(&[
        (
            "cog.yaml",
            "build:\n  system_packages:\n    ffmpeg: yes\n  gpu: maybe\n  python_requirements: requirements.txt\npredict: \"predict.py:Predictor\"\n",
        ),
        ("predict.py", COG_PREDICTOR),
        ("requirements.txt", "cog\n"),
    ]);
    let d = detect_ok(&dir);
    assert!(has_line(
        &d.missing,
        "cog.yaml: build.system_packages is not a list of strings: ignored"
    ));
    assert!(has_line(
        &d.missing,
        "cog.yaml: build.gpu is not true or false: ignored"
    ));
    assert_eq!(d.command, Some(strs(&["python", "-m", "cog.server.http"])));
    assert!(d.packages_needed.is_empty());
    parse_project(&dir, &d);

    // Empty and huge files.
    let dir = project(&[("cog.yaml", ""), ("bentofile.yaml", "service: \"svc:S\"\n")]);
    fs::write(
        dir.path().join("cog.yaml"),
        vec![b'#'; (MAX_TEXT_BYTES + 1) as usize],
    )
    .unwrap();
    let d = detect_ok(&dir);
    assert!(has_line(&d.missing, "skipped: cog.yaml (larger than"));
    assert!(has_line(
        &d.missing,
        "bentofile.yaml's service names module `svc`"
    ));
}

const BENTO_SERVICE: &str = r#"
import bentoml
from helpers import clean


@bentoml.service(
    resources={"cpu": "2"},
    traffic={"timeout": 30},
)
class Summarization:
    def __init__(self) -> None:
        from transformers import pipeline
        self.pipeline = pipeline("summarization")

    @bentoml.api
    def summarize(self, text: str) -> str:
        return clean(self.pipeline(text)[0]["summary_text"])
"#;

#[test]
fn bentofile_project() {
    let dir = project(&[
        (
            "bentofile.yaml",
            r#"service: "service:Summarization"
name: Summarizer
labels:
  owner: ml-team
include:
  - "*.py"
  - "/configs/"
exclude:
  - "tests/"
python:
  requirements_txt: "./requirements-bento.txt"
  packages:
    - torch
    - transformers
  extra_index_url:
    - "https://download.pytorch.org/whl/cpu"
docker:
  python_version: "3.11"
  system_packages:
    - ffmpeg
envs:
  - name: HF_TOKEN
  - name: MODEL_ID
    value: sshleifer/distilbart-cnn-12-6
  - name: BUILD_ONLY
    value: x
    stage: build
models:
  - "summarization-model:latest"
"#,
        ),
        ("service.py", BENTO_SERVICE),
        ("helpers.py", "def clean(s):\n    return s.strip()\n"),
        ("configs/app.json", "{}"),
        ("tests/test_service.py", "def test():\n    pass\n"),
        (
            "requirements-bento.txt",
            "bentoml>=1.3\ntorch\ntransformers\n",
        ),
    ]);
    let d = detect_ok(&dir);
    assert_eq!(d.name, "summarizer");
    assert_eq!(
        d.command,
        Some(strs(&[
            "bentoml",
            "serve",
            "service:Summarization",
            "--host",
            "0.0.0.0",
            "--port",
            "3000"
        ]))
    );
    assert_eq!(d.port, Some(3000));
    assert_eq!(d.healthcheck.as_deref(), Some("/readyz"));
    assert_eq!(
        d.deps,
        PythonDeps::Requirements("requirements-bento.txt".into())
    );
    assert_eq!(
        d.app_files,
        strs(&["**/*.py", "configs", "!**/tests", "!**/tests/**"])
    );
    assert_eq!(
        env_of(&d, "MODEL_ID").as_deref(),
        Some("sshleifer/distilbart-cnn-12-6")
    );
    assert_eq!(env_of(&d, "BUILD_ONLY"), None);
    assert_eq!(env_of(&d, "HF_TOKEN"), None);
    assert_eq!(d.python.as_deref(), Some("3.11"));
    assert_eq!(d.packages_needed, strs(&["libgomp1", "ffmpeg"]));
    assert_eq!(
        d.extra_index_urls,
        strs(&["https://download.pytorch.org/whl/cpu"])
    );
    assert_eq!(d.gpus, 0);

    assert!(has_line(&d.detected, "bentofile.yaml: a BentoML project"));
    assert!(has_line(
        &d.detected,
        "app: BentoML service `service:Summarization`, from bentofile.yaml's service (bentoml serve)"
    ));
    assert!(has_line(
        &d.detected,
        "python dependencies: requirements-bento.txt (from bentofile.yaml's python.requirements_txt; resolved by uv into kiln.lock)"
    ));
    assert!(has_line(
        &d.detected,
        "app files: **/*.py, configs, !**/tests, !**/tests/** (from bentofile.yaml's include/exclude)"
    ));
    assert!(has_line(
        &d.detected,
        "env: MODEL_ID (from bentofile.yaml's envs)"
    ));
    assert!(has_line(
        &d.detected,
        "python: 3.11 (from bentofile.yaml's docker.python_version)"
    ));
    assert!(has_line(&d.detected, "healthcheck: GET /readyz"));
    assert!(has_line(
        &d.missing,
        "bentofile.yaml's python.packages lists 2 packages, not used: requirements-bento.txt is"
    ));
    assert!(has_line(&d.missing, "envs without a value (HF_TOKEN)"));
    assert!(has_line(&d.missing, "models (summarization-model:latest)"));
    assert!(!has_line(&d.missing, "bentoml is not among"));
    assert!(!has_line(&d.missing, "[app].files holds the app"));
    assert!(!has_line(&d.missing, "leaves out"));
    assert!(!has_line(&d.detected, "also found: BentoML"));

    let p = parse_project(&dir, &d);
    assert_eq!(p.name, "summarizer");
    assert_eq!(p.files, d.app_files);
    assert_eq!(p.ports, [3000]);
    assert_eq!(
        p.health.as_ref().and_then(|h| h.http_path.as_deref()),
        Some("/readyz")
    );
    assert_eq!(
        p.manifest.python.extra_index_url,
        strs(&["https://download.pytorch.org/whl/cpu"])
    );
    assert_eq!(
        p.manifest.app.env.get("MODEL_ID").map(String::as_str),
        Some("sshleifer/distilbart-cnn-12-6")
    );
    assert_eq!(p.packages, strs(&["libgomp1", "ffmpeg"]));
    let include = kiln_build::dockerignore::Ignore::parse(&p.files.join("\n"));
    assert!(include.is_excluded("service.py"));
    assert!(include.is_excluded("configs/app.json"));
    assert!(!include.is_excluded("tests/test_service.py"));
    assert!(!include.is_excluded("requirements-bento.txt"));
}

#[test]
fn bentofile_with_packages_only() {
    let dir = project(&[
        (
            "bentofile.yaml",
            "service: \"service:Summarization\"\npython:\n  packages:\n    - transformers\n    - torch\n  index_url: https://pypi.example.org/simple\n",
        ),
        ("service.py", BENTO_SERVICE),
        ("helpers.py", "def clean(s):\n    return s\n"),
        ("pyproject.toml", "[tool.ruff]\nline-length = 100\n"),
    ]);
    let d = detect_ok(&dir);
    assert_eq!(
        d.deps,
        PythonDeps::Inline {
            from: "bentofile.yaml's python.packages".into(),
            packages: strs(&["transformers", "torch"]),
        }
    );
    assert_eq!(
        d.index_url.as_deref(),
        Some("https://pypi.example.org/simple")
    );
    assert_eq!(d.app_files, strs(&["service.py", "helpers.py"]));
    assert!(has_line(
        &d.missing,
        "bentoml is not among the dependencies, but `bentoml serve` is in it: add `bentoml` to [python].packages"
    ));
    let p = parse_project(&dir, &d);
    assert_eq!(
        p.deps,
        crate::manifest::Dependencies::Inline(strs(&["transformers", "torch"]))
    );
    assert_eq!(
        p.manifest.python.index_url.as_deref(),
        Some("https://pypi.example.org/simple")
    );
}

#[test]
fn bentofile_service_module_missing() {
    let dir = project(&[
        (
            "bentofile.yaml",
            "service: \"missing_module:Svc\"\npython:\n  packages: [bentoml]\n",
        ),
        ("README.md", "# a service\n"),
    ]);
    let d = detect_ok(&dir);
    assert_eq!(
        d.command,
        Some(strs(&[
            "bentoml",
            "serve",
            "missing_module:Svc",
            "--host",
            "0.0.0.0",
            "--port",
            "3000"
        ]))
    );
    assert_eq!(d.app_files, strs(&["**"]));
    assert!(has_line(
        &d.missing,
        "bentofile.yaml's service names module `missing_module`, but the project has no missing_module.py or missing_module/__init__.py"
    ));
    assert!(has_line(&d.missing, "is not in the project's files"));
    assert!(!has_line(&d.missing, "bentoml is not among"));
    let p = parse_project(&dir, &d);
    assert_eq!(p.ports, [3000]);

    // A file path that is not there, and a port from the flag.
    let dir = project(&[
        ("bentofile.yaml", "service: \"./svc/main.py:Svc\"\n"),
        ("requirements.txt", "bentoml\n"),
    ]);
    let opts = InitOptions {
        port: Some(8080),
        ..InitOptions::default()
    };
    let d = detect_with(&dir, &opts);
    assert!(has_line(
        &d.missing,
        "bentofile.yaml's service names svc/main.py, which is not in the project"
    ));
    assert_eq!(d.port, Some(8080));
    assert_eq!(d.command.as_ref().unwrap()[6], "8080");
}

#[test]
fn bentoml_service_found_in_the_code() {
    let dir = project(&[
        ("service.py", BENTO_SERVICE),
        ("helpers.py", "def clean(s):\n    return s\n"),
        (
            "legacy.py",
            "import bentoml\n\nsvc = bentoml.Service(\"old\", runners=[])\n",
        ),
        ("main.py", "if __name__ == '__main__':\n    print(1)\n"),
        ("requirements.txt", "bentoml\ntransformers\n"),
    ]);
    let d = detect_ok(&dir);
    assert_eq!(
        d.command,
        Some(strs(&[
            "bentoml",
            "serve",
            "service:Summarization",
            "--host",
            "0.0.0.0",
            "--port",
            "3000"
        ]))
    );
    assert_eq!(d.healthcheck.as_deref(), Some("/readyz"));
    assert_eq!(d.app_files, strs(&["service.py", "helpers.py"]));
    assert!(has_line(
        &d.detected,
        "app: BentoML service `Summarization` in service.py (bentoml serve)"
    ));
    assert!(has_line(
        &d.detected,
        "also found: BentoML service `svc` in legacy.py"
    ));
    assert!(!has_line(&d.missing, "bentoml is not among"));
    parse_project(&dir, &d);

    // A Cog project with a bentofile too: cog.yaml's app is served, the other is listed.
    let dir = project(&[
        (
            "cog.yaml",
            "build:\n  python_requirements: requirements.txt\npredict: \"predict.py:Predictor\"\n",
        ),
        ("bentofile.yaml", "service: \"service:Summarization\"\n"),
        ("predict.py", COG_PREDICTOR),
        ("helpers.py", "def load_model():\n    return str\n"),
        ("service.py", BENTO_SERVICE),
        ("requirements.txt", "cog\nbentoml\n"),
    ]);
    let d = detect_ok(&dir);
    assert_eq!(d.command, Some(strs(&["python", "-m", "cog.server.http"])));
    assert!(has_line(
        &d.detected,
        "also found: BentoML service `service:Summarization`, from bentofile.yaml's service"
    ));
    assert!(!has_line(
        &d.detected,
        "also found: BentoML service `Summarization`"
    ));
}
