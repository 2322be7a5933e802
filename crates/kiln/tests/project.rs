//! kiln projects (kiln.toml): examples/iris and examples/onnx built from an empty store
//! with the real Debian archive and PyPI, served through `kiln run -p`, Docker and Podman;
//! layers that follow change; reproducible digests; exact Python environments; errors
//! that name file:line with a hint and build nothing.

mod common;

use common::registry::Registry;
use common::validators::{validate_and_check, venv, CDX_VALIDATE};
use common::{assert_success, docker, json, podman, run, unique, Kiln};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

/// A copy of an example in `dir` (without kiln.lock unless `with_lock`).
fn copy_example(name: &str, dir: &Path, with_lock: bool) -> PathBuf {
    let dest = dir.join(name);
    run(Command::new("cp")
        .arg("-r")
        .arg(examples().join(name))
        .arg(&dest));
    if !with_lock {
        let _ = std::fs::remove_file(dest.join("kiln.lock"));
    }
    dest
}

struct Built {
    digest: String,
    /// (kind, name, digest) per layer, lowest first.
    layers: Vec<(String, String, String)>,
}

fn build(k: &Kiln, dir: &Path, extra: &[&str]) -> Built {
    let mut args = vec!["build", "--progress", "json"];
    args.extend_from_slice(extra);
    args.push(dir.to_str().unwrap());
    let out = json(&k.ok(&args));
    Built {
        digest: out["digest"].as_str().unwrap().to_string(),
        layers: out["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| {
                (
                    l["kind"].as_str().unwrap().to_string(),
                    l["name"].as_str().unwrap().to_string(),
                    l["digest"].as_str().unwrap().to_string(),
                )
            })
            .collect(),
    }
}

struct Fixture {
    k: Kiln,
    iris_dir: PathBuf,
    iris: Built,
    onnx: Built,
}

/// Both examples, built once from an empty store (copies: the repository stays clean).
fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let k = Kiln::new().kept_until_exit();
        let iris_dir = copy_example("iris", k.dir.path(), false);
        let onnx_dir = copy_example("onnx", k.dir.path(), false);
        let iris = build(&k, &iris_dir, &[]);
        let onnx = build(&k, &onnx_dir, &[]);
        Fixture {
            k,
            iris_dir,
            iris,
            onnx,
        }
    })
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One HTTP/1.0 request to 127.0.0.1:port; (status, body).
fn http(port: u16, method: &str, path: &str, body: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut resp = String::new();
    s.read_to_string(&mut resp).ok()?;
    let status = resp.split_whitespace().nth(1)?.parse().ok()?;
    let body = resp.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
    Some((status, body))
}

const PREDICT: &str = r#"{"features": [[5.1, 3.5, 1.4, 0.2]]}"#;

/// Waits for /health, then asks for a prediction: the body naming setosa.
fn serves(port: u16) -> String {
    for _ in 0..120 {
        if let Some((200, _)) = http(port, "GET", "/health", "") {
            let (status, body) = http(port, "POST", "/predict", PREDICT).expect("predict");
            assert_eq!(status, 200, "{body}");
            return body;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    panic!("nothing answered /health on port {port}");
}

/// `kiln run -d -p` of the image; the prediction; the container removed.
fn kiln_serves(k: &Kiln, image: &str) {
    let port = free_port();
    let id = k
        .ok(&["run", "-d", "-p", &format!("127.0.0.1:{port}:8000"), image])
        .trim()
        .to_string();
    let body = serves(port);
    let user = k.ok(&["exec", &id, "id", "-u"]);
    let _ = k.cmd().args(["rm", "-f", &id]).output();
    assert!(body.contains("setosa"), "{body}");
    assert_eq!(user.trim(), "1000", "the app runs as the non-root user");
}

#[test]
fn examples_build_from_nothing_and_answer_through_kiln_run() {
    let f = fixture();
    // By digest: other tests build variants of the examples in the same store, under
    // the same names.
    kiln_serves(&f.k, &f.iris.digest);
    kiln_serves(&f.k, &f.onnx.digest);
    // The layers, lowest first: weights, OS, env, Python, code.
    let kinds: Vec<&str> = f.iris.layers.iter().map(|l| l.0.as_str()).collect();
    let order = ["weights", "os", "env", "python", "code"];
    let mut pos = 0;
    for k in &kinds {
        let i = order.iter().position(|o| o == k).expect("known kind");
        assert!(i >= pos, "layers out of order: {kinds:?}");
        pos = i;
    }
    assert_eq!(kinds.first(), Some(&"weights"));
    assert_eq!(kinds.last(), Some(&"code"));
    // The config: non-root user, ports, healthcheck, labels with the project metadata.
    let cfg = json(&f.k.ok(&["inspect", &f.iris.digest]));
    let text = cfg[0]["Config"].to_string();
    assert!(text.contains("\"1000:1000\""), "{text}");
    assert!(text.contains("8000/tcp"), "{text}");
    assert!(text.contains("dev.kiln.project"), "{text}");
    assert!(text.contains("org.opencontainers.image.version"), "{text}");
    assert!(text.contains("Healthcheck"), "{text}");
}

#[test]
fn docker_and_podman_run_the_saved_image_and_answer_the_same() {
    let f = fixture();
    let ask = r#"
import time, urllib.request
body = b'{"features": [[5.1, 3.5, 1.4, 0.2]]}'
for _ in range(120):
    try:
        req = urllib.request.Request('http://127.0.0.1:8000/predict', data=body, headers={'content-type': 'application/json'})
        print(urllib.request.urlopen(req, timeout=5).read().decode())
        break
    except Exception:
        time.sleep(0.25)
"#;
    for (name, digest) in [("iris", &f.iris.digest), ("onnx", &f.onnx.digest)] {
        let tar = f.k.dir.path().join(format!("{name}.tar"));
        let tag = format!("{}:1", unique(name));
        f.k.ok(&["tag", digest, &tag]);
        f.k.ok(&["save", &tag, "-o", tar.to_str().unwrap()]);
        // Docker
        run(docker().args(["load", "-i", tar.to_str().unwrap()]));
        let id = run(docker().args(["run", "-d", "--network", "none", &tag]))
            .trim()
            .to_string();
        let out = docker()
            .args(["exec", &id, "python3", "-c", ask])
            .output()
            .unwrap();
        let _ = docker().args(["rm", "-f", &id]).output();
        let _ = docker().args(["rmi", &tag]).output();
        let body = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            body.contains("setosa"),
            "{name}: docker: {body} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // Podman
        run(podman().args(["load", "-i", tar.to_str().unwrap()]));
        let mut args: Vec<&str> = common::PODMAN_RUN.to_vec();
        args.retain(|a| *a != "--rm");
        args.insert(1, "-d");
        args.push(&tag);
        let id = run(podman().args(&args)).trim().to_string();
        let out = podman()
            .args(["exec", &id, "python3", "-c", ask])
            .output()
            .unwrap();
        let _ = podman().args(["rm", "-f", &id]).output();
        let _ = podman().args(["rmi", &tag]).output();
        let body2 = String::from_utf8_lossy(&out.stdout);
        assert!(
            body2.contains("setosa"),
            "{name}: podman: {body2} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(body.trim(), body2.trim(), "{name}");
    }
}

fn layer_named<'a>(b: &'a Built, kind: &str, prefix: &str) -> &'a str {
    &b.layers
        .iter()
        .find(|l| l.0 == kind && l.1.starts_with(prefix))
        .unwrap_or_else(|| panic!("no {kind} layer `{prefix}` in {:?}", b.layers))
        .2
}

#[test]
fn layers_follow_change_and_large_distributions_are_shared() {
    let f = fixture();
    // iris and onnx install the same numpy wheel: one layer, one digest.
    assert_eq!(
        layer_named(&f.iris, "python", "numpy "),
        layer_named(&f.onnx, "python", "numpy "),
        "numpy's layer is shared"
    );
    // A code edit changes exactly one layer.
    let dir = tempfile::tempdir().unwrap();
    let iris = copy_example("iris", dir.path(), false);
    std::fs::copy(f.iris_dir.join("kiln.lock"), iris.join("kiln.lock")).unwrap();
    let before = build(&f.k, &iris, &[]);
    assert_eq!(before.digest, f.iris.digest, "same inputs, same image");
    let app = iris.join("app.py");
    let mut text = std::fs::read_to_string(&app).unwrap();
    text.push_str("\n# an edit\n");
    std::fs::write(&app, text).unwrap();
    let after = build(&f.k, &iris, &["--locked"]);
    assert_ne!(after.digest, before.digest);
    let changed: Vec<_> = before
        .layers
        .iter()
        .zip(&after.layers)
        .filter(|(a, b)| a.2 != b.2)
        .map(|(a, _)| a.0.clone())
        .collect();
    assert_eq!(before.layers.len(), after.layers.len());
    assert_eq!(changed, ["code"], "a code edit changes the code layer only");

    // A dependency version change leaves the weights and OS layers (and numpy's) alone.
    let onnx = copy_example("onnx", dir.path(), false);
    let req = onnx.join("requirements.txt");
    let text = std::fs::read_to_string(&req).unwrap();
    let pinned: String = text
        .lines()
        .map(|l| {
            if l.starts_with("uvicorn==") {
                "uvicorn==0.30.6".to_string()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    assert_ne!(pinned.trim(), text.trim(), "requirements.txt pins uvicorn");
    std::fs::write(&req, pinned + "\n").unwrap();
    let dep = build(&f.k, &onnx, &[]);
    let of = |b: &Built, kind: &str| -> Vec<String> {
        b.layers
            .iter()
            .filter(|l| l.0 == kind)
            .map(|l| l.2.clone())
            .collect()
    };
    for kind in ["weights", "os", "env"] {
        assert_eq!(of(&dep, kind), of(&f.onnx, kind), "{kind} layers kept");
    }
    assert_eq!(
        layer_named(&dep, "python", "numpy "),
        layer_named(&f.onnx, "python", "numpy ")
    );
    assert_ne!(dep.digest, f.onnx.digest);
}

#[test]
fn the_same_lock_in_two_directories_and_stores_gives_the_same_digest() {
    let f = fixture();
    let k2 = Kiln::new();
    let dir = copy_example("iris", k2.dir.path(), false);
    std::fs::copy(f.iris_dir.join("kiln.lock"), dir.join("kiln.lock")).unwrap();
    // No SOURCE_DATE_EPOCH (Kiln::cmd removes it), and another day: the clock three days
    // ahead (libfaketime). The image time comes from the lock, not from today.
    let faketime = ["/usr/bin/faketime", "/bin/faketime"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("faketime is required by this test: apt-get install -y faketime (scripts/test.sh does it)");
    let out = Command::new(faketime)
        .args(["-f", "+3d"])
        .arg(env!("CARGO_BIN_EXE_kiln"))
        .args([
            "build",
            "--progress",
            "json",
            "--locked",
            dir.to_str().unwrap(),
        ])
        .env("KILN_ROOT", k2.root())
        .env_remove("SOURCE_DATE_EPOCH")
        .output()
        .unwrap();
    assert_success(&out);
    let b = Built {
        digest: json(&String::from_utf8_lossy(&out.stdout))["digest"]
            .as_str()
            .unwrap()
            .to_string(),
        layers: vec![],
    };
    assert_eq!(b.digest, f.iris.digest);
    // kiln lock agrees that nothing changed and writes the same bytes.
    let before = std::fs::read(dir.join("kiln.lock")).unwrap();
    let out = json(&k2.ok(&["lock", "--json", dir.to_str().unwrap()]));
    assert_eq!(out["changes"].as_array().unwrap().len(), 0, "{out}");
    assert_eq!(std::fs::read(dir.join("kiln.lock")).unwrap(), before);
}

/// (name, version) of the packages uv.lock installs for Python 3.11: its entries minus the
/// project itself, with only the version whose marker matches 3.11 when it has several.
fn uv_lock_packages(path: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut name = None;
    for l in text.lines() {
        if l == "[[package]]" {
            name = None;
        } else if let Some(v) = l.strip_prefix("name = ") {
            name = Some(v.trim_matches('"').to_string());
        } else if let (Some(n), Some(v)) = (&name, l.strip_prefix("version = ")) {
            out.entry(n.replace('_', "-").to_lowercase())
                .or_default()
                .insert(v.trim_matches('"').to_string());
        }
    }
    out.remove("iris");
    out
}

#[test]
fn the_python_environment_is_exactly_uv_lock_and_the_process_is_not_root() {
    let f = fixture();
    let script = "import importlib.metadata as m, json, os\n\
print(json.dumps({'uid': os.getuid(), 'dists': sorted([d.metadata['Name'].lower().replace('_', '-'), d.version] for d in m.distributions())}))";
    let out = json(&f.k.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        &f.iris.digest,
        "python3",
        "-c",
        script,
    ]));
    assert_eq!(out["uid"], 1000);
    let installed: BTreeMap<String, String> = out["dists"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d[0].as_str().unwrap().to_string(),
                d[1].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let locked = uv_lock_packages(&f.iris_dir.join("uv.lock"));
    assert_eq!(
        installed.keys().collect::<BTreeSet<_>>(),
        locked.keys().collect::<BTreeSet<_>>(),
        "distribution names: importlib.metadata vs uv.lock"
    );
    for (n, v) in &installed {
        assert!(
            locked[n].contains(v),
            "{n} {v} is not uv.lock's ({:?})",
            locked[n]
        );
    }
}

/// A project in a temp dir from `files`; the error of `kiln build` on it, and the store
/// left without a new image.
fn build_error(k: &Kiln, files: &[(&str, &str)]) -> String {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        let p = dir.path().join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    let before = k.ok(&["images", "-q"]);
    let (_, err) = k.fails(&["build", dir.path().to_str().unwrap()]);
    assert_eq!(
        k.ok(&["images", "-q"]),
        before,
        "a failed build adds no image"
    );
    assert!(err.contains("hint:"), "no hint in: {err}");
    err
}

#[test]
fn bad_input_names_file_and_line_with_a_hint_and_builds_nothing() {
    // A store of its own: "no image added" must not see the other tests' builds.
    let own = Kiln::new();
    let k = &own;
    let head = "[project]\nname = \"bad\"\n";
    let e = build_error(k, &[("kiln.toml", &format!("{head}colour = \"red\"\n"))]);
    assert!(
        e.contains("kiln.toml:3:1") && e.contains("unknown field `colour`"),
        "{e}"
    );
    let e = build_error(k, &[("kiln.toml", &format!("{head}[app]\nports = 8000\n"))]);
    assert!(
        e.contains("kiln.toml:4:9") && e.contains("invalid type"),
        "{e}"
    );
    let e = build_error(
        k,
        &[("kiln.toml", &format!("{head}[app]\nports = [\"http\"]\n"))],
    );
    assert!(
        e.contains("kiln.toml:4:") && e.contains("invalid type"),
        "{e}"
    );
    let e = build_error(
        k,
        &[(
            "kiln.toml",
            &format!("{head}[weights.m]\npath = \"model.bin\"\n"),
        )],
    );
    assert!(
        e.contains("kiln.toml:4:8") && e.contains("does not exist"),
        "{e}"
    );
    let e = build_error(
        k,
        &[(
            "kiln.toml",
            &format!("{head}[python]\nrequirements = \"reqs.txt\"\n"),
        )],
    );
    assert!(
        e.contains("kiln.toml:4:16") && e.contains("does not exist"),
        "{e}"
    );
    let e = build_error(
        k,
        &[
            (
                "kiln.toml",
                &format!("{head}[python]\nversion = \"3.12\"\n"),
            ),
            ("requirements.txt", "six==1.16.0\n"),
        ],
    );
    assert!(
        e.contains("kiln.toml:4:11") && e.contains("gives Python 3.11"),
        "{e}"
    );
    let e = build_error(
        k,
        &[
            ("kiln.toml", head),
            (
                "requirements.txt",
                "six==1.16.0\nno-such-package-kiln-test==1.0\n",
            ),
        ],
    );
    assert!(
        e.contains("requirements.txt:2") && e.contains("no-such-package-kiln-test"),
        "{e}"
    );
    let e = build_error(
        k,
        &[("kiln.toml", head), ("requirements.txt", "numpy==0.0.1\n")],
    );
    assert!(
        e.contains("requirements.txt:1") && e.contains("numpy"),
        "{e}"
    );
    // uv.lock out of date with pyproject.toml.
    let pyproject = std::fs::read_to_string(examples().join("iris/pyproject.toml")).unwrap();
    let changed = pyproject.replace("dependencies = [", "dependencies = [\n    \"six==1.16.0\",");
    assert_ne!(changed, pyproject);
    let lock = std::fs::read_to_string(examples().join("iris/uv.lock")).unwrap();
    let e = build_error(
        k,
        &[
            ("kiln.toml", head),
            ("pyproject.toml", &changed),
            ("uv.lock", &lock),
        ],
    );
    assert!(
        e.contains("pyproject.toml:") && e.contains("out of date"),
        "{e}"
    );
    assert!(e.contains("uv lock"), "{e}");
}

#[test]
fn locked_builds_fail_naming_what_changed() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let iris = copy_example("iris", dir.path(), false);
    let (_, err) = f.k.fails(&["build", "--locked", iris.to_str().unwrap()]);
    assert!(
        err.contains("kiln.lock does not exist") && err.contains("kiln lock"),
        "{err}"
    );
    std::fs::copy(f.iris_dir.join("kiln.lock"), iris.join("kiln.lock")).unwrap();
    std::fs::write(iris.join("models/iris.joblib"), b"other weights").unwrap();
    let (_, err) = f.k.fails(&["build", "--locked", iris.to_str().unwrap()]);
    assert!(
        err.contains("out of date") && err.contains("weights file models/iris.joblib changed"),
        "{err}"
    );
    assert!(err.contains("hint: run `kiln lock`"), "{err}");
    // Without --locked the lock is updated and the weights layer alone changes below the OS.
    let b = build(&f.k, &iris, &[]);
    assert_ne!(
        layer_named(&b, "weights", "iris"),
        layer_named(&f.iris, "weights", "iris")
    );
    assert_eq!(
        b.layers.iter().filter(|l| l.0 == "os").collect::<Vec<_>>(),
        f.iris
            .layers
            .iter()
            .filter(|l| l.0 == "os")
            .collect::<Vec<_>>()
    );
}

/// uv for the test's own `uv lock`: the one kiln uses ($KILN_UV, PATH, else the pinned
/// copy kiln installed into the fixture's store).
fn uv_binary(k: &Kiln) -> PathBuf {
    if let Some(p) = std::env::var_os("KILN_UV").filter(|v| !v.is_empty()) {
        return PathBuf::from(p);
    }
    if let Some(path) = std::env::var_os("PATH") {
        for d in std::env::split_paths(&path) {
            if d.join("uv").is_file() {
                return d.join("uv");
            }
        }
    }
    let p = k.root().join("cache/uv/0.13.9/uv");
    assert!(p.is_file(), "kiln installed no uv at {}", p.display());
    p
}

/// `kiln init`, `kiln build`, `kiln run -d -p`: the body of GET `path`.
fn init_build_serve(k: &Kiln, dir: &Path, port_in: u16, path: &str) -> String {
    init_build_probe(k, dir, port_in, |port| match http(port, "GET", path, "") {
        Some((200, b)) => Some(b),
        _ => None,
    })
}

/// `kiln init`, `kiln build`, `kiln run -d -p`, then `probe` on the published port
/// until it gives an answer (30 s at most); the container is removed.
fn init_build_probe(
    k: &Kiln,
    dir: &Path,
    port_in: u16,
    mut probe: impl FnMut(u16) -> Option<String>,
) -> String {
    let out = k
        .cmd()
        .args(["init", dir.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "kiln init: {err}");
    assert!(dir.join("kiln.toml").is_file() && dir.join(".kilnignore").is_file());
    k.ok(&["build", "-q", "-t", "initapp:1", dir.to_str().unwrap()]);
    let port = free_port();
    let id = k
        .ok(&[
            "run",
            "-d",
            "-p",
            &format!("127.0.0.1:{port}:{port_in}"),
            "initapp:1",
        ])
        .trim()
        .to_string();
    let mut body = None;
    for _ in 0..120 {
        body = probe(port);
        if body.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let logs = k.cmd().args(["logs", &id]).output().unwrap();
    let _ = k.cmd().args(["rm", "-f", &id]).output();
    body.unwrap_or_else(|| {
        panic!(
            "no answer on {port_in}; kiln.toml:\n{}\nlogs:\n{}{}",
            std::fs::read_to_string(dir.join("kiln.toml")).unwrap(),
            String::from_utf8_lossy(&logs.stdout),
            String::from_utf8_lossy(&logs.stderr)
        )
    })
}

#[test]
fn init_then_build_serves_projects_kiln_has_never_seen() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    // pyproject.toml + uv.lock + a weights directory + a server module.
    let a = dir.path().join("scorer");
    std::fs::create_dir_all(a.join("weights")).unwrap();
    std::fs::write(a.join("weights/encoder.safetensors"), vec![7u8; 4096]).unwrap();
    std::fs::write(
        a.join("pyproject.toml"),
        "[project]\nname = \"scorer\"\nversion = \"0.2.0\"\nrequires-python = \">=3.11\"\ndependencies = [\"fastapi==0.115.6\", \"uvicorn==0.34.0\"]\n\n[tool.uv]\npackage = false\n",
    )
    .unwrap();
    std::fs::write(
        a.join("server.py"),
        "import os\nfrom fastapi import FastAPI\nimport uvicorn\n\nWEIGHTS = os.path.join(os.path.dirname(__file__), \"weights\", \"encoder.safetensors\")\napp = FastAPI()\n\n@app.get(\"/health\")\ndef health():\n    return {\"weights\": os.path.getsize(WEIGHTS)}\n\nif __name__ == \"__main__\":\n    uvicorn.run(app, host=\"0.0.0.0\", port=9000)\n",
    )
    .unwrap();
    run(Command::new(uv_binary(&f.k))
        .arg("lock")
        .current_dir(&a)
        .env("UV_CACHE_DIR", dir.path().join("uv-cache")));
    let body = init_build_serve(&f.k, &a, 9000, "/health");
    assert!(body.contains("4096"), "{body}");

    // requirements.txt only, a Flask app naming its port.
    let b = dir.path().join("flaskapp");
    std::fs::create_dir_all(&b).unwrap();
    std::fs::write(b.join("requirements.txt"), "flask==3.1.0\n").unwrap();
    std::fs::write(
        b.join("app.py"),
        "from flask import Flask\n\napp = Flask(__name__)\n\n@app.route(\"/\")\ndef index():\n    return \"hello from flask\"\n\nif __name__ == \"__main__\":\n    app.run(host=\"0.0.0.0\", port=5001)\n",
    )
    .unwrap();
    let body = init_build_serve(&f.k, &b, 5001, "/");
    assert!(body.contains("hello from flask"), "{body}");

    // A Cog project: cog.yaml names the Python version, the packages and the predictor;
    // the image runs Cog's own HTTP server, which answers a prediction once set up.
    let g = dir.path().join("cogapp");
    std::fs::create_dir_all(&g).unwrap();
    std::fs::write(
        g.join("cog.yaml"),
        "build:\n  python_version: \"3.11\"\n  python_packages:\n    - \"cog==0.9.26\"\npredict: \"predict.py:Predictor\"\n",
    )
    .unwrap();
    std::fs::write(
        g.join("predict.py"),
        "from cog import BasePredictor, Input\n\nclass Predictor(BasePredictor):\n    def setup(self):\n        self.prefix = \"hello \"\n\n    def predict(self, name: str = Input(description=\"who\")) -> str:\n        return self.prefix + name\n",
    )
    .unwrap();
    let body = init_build_probe(&f.k, &g, 5000, |port| {
        // 200 in every state: READY once setup() has run.
        let (_, health) = http(port, "GET", "/health-check", "")?;
        if !health.contains("READY") {
            return None;
        }
        http(
            port,
            "POST",
            "/predictions",
            r#"{"input": {"name": "kiln"}}"#,
        )
        .map(|(_, b)| b)
    });
    assert!(body.contains(r#""output":"hello kiln""#), "{body}");

    // A BentoML project: bentofile.yaml names the service and its packages; the image
    // runs `bentoml serve`, ready once /readyz answers.
    let h = dir.path().join("bentoapp");
    std::fs::create_dir_all(&h).unwrap();
    std::fs::write(
        h.join("bentofile.yaml"),
        "service: \"service:Greeter\"\ninclude:\n  - \"*.py\"\npython:\n  packages:\n    - bentoml==1.4.40\n",
    )
    .unwrap();
    std::fs::write(
        h.join("service.py"),
        "import bentoml\n\n@bentoml.service\nclass Greeter:\n    @bentoml.api\n    def greet(self, name: str) -> str:\n        return \"hello \" + name\n",
    )
    .unwrap();
    let body = init_build_probe(&f.k, &h, 3000, |port| {
        let (200, _) = http(port, "GET", "/readyz", "")? else {
            return None;
        };
        http(port, "POST", "/greet", r#"{"name": "kiln"}"#).map(|(_, b)| b)
    });
    assert_eq!(body.trim(), "hello kiln");

    // A src-layout package whose app is a [project.scripts] entry (a batch command).
    let c = dir.path().join("mytool");
    std::fs::create_dir_all(c.join("src/mytool")).unwrap();
    std::fs::write(
        c.join("pyproject.toml"),
        "[project]\nname = \"mytool\"\nversion = \"1.0.0\"\nrequires-python = \">=3.11\"\ndependencies = [\"six==1.16.0\"]\n\n[project.scripts]\nmytool = \"mytool.cli:main\"\n\n[tool.uv]\npackage = false\n",
    )
    .unwrap();
    std::fs::write(c.join("src/mytool/__init__.py"), "").unwrap();
    std::fs::write(
        c.join("src/mytool/cli.py"),
        "import six\n\ndef main():\n    print('mytool', six.__version__)\n    return 0\n",
    )
    .unwrap();
    run(Command::new(uv_binary(&f.k))
        .arg("lock")
        .current_dir(&c)
        .env("UV_CACHE_DIR", dir.path().join("uv-cache")));
    let out =
        f.k.cmd()
            .args(["init", c.to_str().unwrap()])
            .output()
            .unwrap();
    assert_success(&out);
    f.k.ok(&["build", "-q", "-t", "mytool-init:1", c.to_str().unwrap()]);
    let printed =
        f.k.ok(&["run", "--rm", "--network", "none", "mytool-init:1"]);
    assert_eq!(
        printed.trim(),
        "mytool 1.16.0",
        "kiln.toml:\n{}",
        std::fs::read_to_string(c.join("kiln.toml")).unwrap()
    );
}

/// The `image:` of the Deployment in `yaml`.
fn image_of(yaml: &str) -> String {
    yaml.lines()
        .find_map(|l| l.trim().trim_start_matches("- ").strip_prefix("image: "))
        .expect("an image line")
        .to_string()
}

fn validated(k: &Kiln, yaml: &str, what: &str) {
    let file = k.dir.path().join(format!("{what}.yaml"));
    std::fs::write(&file, yaml).unwrap();
    validate_and_check(&file);
}

#[test]
fn project_deploys_validate_push_by_digest_and_roll_back() {
    let f = fixture();
    let k = &f.k;
    let reg = Registry::open();
    let dir = tempfile::tempdir().unwrap();
    let iris = copy_example("iris", dir.path(), false);
    std::fs::copy(f.iris_dir.join("kiln.lock"), iris.join("kiln.lock")).unwrap();
    let dest = format!("{}/team/iris:1", reg.addr());
    // In a namespace of its own (checkov's CKV_K8S_21 wants one; docs/deploy.md).
    let deploy = |args: &[&str]| {
        let mut a = vec!["deploy", "--namespace", "ml"];
        a.extend_from_slice(args);
        k.ok(&a)
    };
    let yaml = deploy(&[iris.to_str().unwrap(), "--push", &dest, "--replicas", "3"]);
    // The project's declarations: port, resources, HTTP probes, non-root, its name.
    for needle in [
        "kind: Service\n",
        "kind: PodDisruptionBudget\n",
        "name: iris\n",
        "cpu: '1'",
        "memory: 1Gi",
        "path: /health",
        "runAsUser: 1000",
        "app.kubernetes.io/version: '1'",
    ] {
        assert!(yaml.contains(needle), "`{needle}` not in:\n{yaml}");
    }
    validated(k, &yaml, "iris");
    let v1 = image_of(&yaml);
    assert!(
        v1.starts_with(&format!("{}/team/iris@sha256:", reg.addr())),
        "{v1}"
    );
    let si = json(&run(common::skopeo()
        .args(["inspect", "--tls-verify=false"])
        .arg(format!("docker://{v1}"))));
    assert_eq!(si["Digest"].as_str(), v1.split_once('@').map(|(_, d)| d));
    // Same inputs, same bytes.
    assert_eq!(
        deploy(&[iris.to_str().unwrap(), "--push", &dest, "--replicas", "3"]),
        yaml
    );

    // A GPU variant: gpus = 1 in kiln.toml.
    let gpu = dir.path().join("iris-gpu");
    run(Command::new("cp").arg("-r").arg(&iris).arg(&gpu));
    let toml = std::fs::read_to_string(gpu.join("kiln.toml")).unwrap();
    let toml = toml.replace("memory = \"1g\"", "memory = \"1g\"\ngpus = 1");
    assert!(toml.contains("gpus = 1"));
    // Its own name: the variants of this test must not take the examples' names.
    let toml = toml.replace("name = \"iris\"", "name = \"iris-gpu\"");
    std::fs::write(gpu.join("kiln.toml"), toml).unwrap();
    let gpu_image = build(k, &gpu, &[]);
    let gyaml = deploy(&[
        gpu.to_str().unwrap(),
        "--push",
        &format!("{}/team/iris-gpu:1", reg.addr()),
    ]);
    assert!(gyaml.contains("nvidia.com/gpu: '1'"), "{gyaml}");
    assert!(gyaml.contains("key: nvidia.com/gpu"), "{gyaml}");
    validated(k, &gyaml, "iris-gpu");
    let env = json(&k.ok(&["env", "--json", &gpu_image.digest]));
    let vars = env["config"]["env"].to_string();
    assert!(vars.contains("NVIDIA_VISIBLE_DEVICES=all"), "{vars}");

    // A new version, pushed under the same tag; --rollback writes the previous one.
    std::fs::write(
        iris.join("app.py"),
        std::fs::read_to_string(iris.join("app.py")).unwrap() + "\n# v2\n",
    )
    .unwrap();
    let v2 = image_of(&deploy(&[iris.to_str().unwrap(), "--push", &dest]));
    assert_ne!(v2, v1);
    let back = deploy(&[&dest, "--rollback"]);
    assert_eq!(image_of(&back), v1);
    validated(k, &back, "iris-rollback");

    // A Service asked for, and a project without a port.
    let noport = dir.path().join("noport");
    run(Command::new("cp").arg("-r").arg(&iris).arg(&noport));
    let toml = std::fs::read_to_string(noport.join("kiln.toml")).unwrap();
    let toml = toml
        .lines()
        .filter(|l| {
            !l.starts_with("ports")
                && !l.starts_with("[app.healthcheck]")
                && !l.starts_with("path = \"/health\"")
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(noport.join("kiln.toml"), toml).unwrap();
    let (_, err) = k.fails(&[
        "deploy",
        noport.to_str().unwrap(),
        "--service",
        "--push",
        &dest,
    ]);
    assert!(
        err.contains("exposes no port") && err.contains("hint:") && err.contains("ports = [8000]"),
        "{err}"
    );
}

#[test]
fn sbom_of_iris_equals_pip_and_dpkg_in_the_container_and_validates() {
    let f = fixture();
    let k = &f.k;
    // pip is not in the image: run it from its wheel (a wheel is a zip Python can run),
    // mounted read-only, over the venv's site-packages.
    let wheels = k.dir.path().join("pip-wheel");
    run(Command::new(venv().join("bin/pip"))
        .args(["download", "-q", "--no-deps", "pip==24.3.1", "-d"])
        .arg(&wheels));
    let whl = std::fs::read_dir(&wheels)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mount = format!("{}:/tmp/pip.whl:ro", whl.display());
    let pip = json(&k.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "-v",
        &mount,
        &f.iris.digest,
        "python3",
        "/tmp/pip.whl/pip",
        "list",
        "--format",
        "json",
        "--path",
        "/opt/venv/lib/python3.11/site-packages",
    ]));
    let pip: BTreeSet<(String, String)> = pip
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_lowercase().replace('_', "-"),
                p["version"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let spdx = k.dir.path().join("iris.spdx.json");
    k.ok(&["sbom", &f.iris.digest, "-o", spdx.to_str().unwrap()]);
    let doc = json(&std::fs::read_to_string(&spdx).unwrap());
    let mut py = BTreeSet::new();
    let mut debs = BTreeSet::new();
    let weights: Vec<&serde_json::Value> = doc["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["primaryPackagePurpose"] == "FILE")
        .collect();
    assert_eq!(weights.len(), 1, "the weights file is in the SBOM");
    assert_eq!(weights[0]["name"], "/app/models/iris.joblib");
    assert_eq!(
        weights[0]["checksums"][0]["checksumValue"]
            .as_str()
            .map(str::len),
        Some(64)
    );
    for p in doc["packages"].as_array().unwrap() {
        let purl = p["externalRefs"][0]["referenceLocator"]
            .as_str()
            .unwrap_or("");
        if let Some(rest) = purl.strip_prefix("pkg:pypi/") {
            let (n, v) = rest.split_once('@').unwrap();
            py.insert((n.to_string(), v.to_string()));
        } else if purl.starts_with("pkg:deb/") {
            debs.insert(format!(
                "{} {}",
                p["name"].as_str().unwrap(),
                p["versionInfo"].as_str().unwrap()
            ));
        }
    }
    assert_eq!(py, pip, "SBOM vs pip list");
    let dpkg = k.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        &f.iris.digest,
        "dpkg-query",
        "-W",
        "-f",
        "${Package} ${Version}\n",
    ]);
    let dpkg: BTreeSet<String> = dpkg.lines().map(str::to_string).collect();
    assert_eq!(debs, dpkg, "SBOM vs dpkg-query");
    // The SBOM attached at build is the one `kiln sbom` gives, and it validates.
    let out = Command::new(venv().join("bin/pyspdxtools"))
        .arg("-i")
        .arg(&spdx)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pyspdxtools: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cdx = k.dir.path().join("iris.cdx.json");
    k.ok(&[
        "sbom",
        &f.iris.digest,
        "--format",
        "cyclonedx",
        "-o",
        cdx.to_str().unwrap(),
    ]);
    let cdx_doc = json(&std::fs::read_to_string(&cdx).unwrap());
    assert!(
        cdx_doc["components"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["type"] == "data"
                && c["name"] == "/app/models/iris.joblib"
                && c["hashes"][0]["alg"] == "SHA-256"),
        "the weights file is in the CycloneDX document"
    );
    let out = Command::new(venv().join("bin/python"))
        .args(["-c", CDX_VALIDATE])
        .arg(&cdx)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "CycloneDX: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    // kiln env: the project's description and its weights.
    let env = json(&k.ok(&["env", "--json", &f.iris.digest]));
    assert_eq!(env["project"]["name"], "iris");
    assert_eq!(env["project"]["healthcheck"]["path"], "/health");
    assert!(env["project"]["lock"]
        .as_str()
        .unwrap()
        .starts_with("sha256:"));
    let w = &env["weights"][0];
    assert_eq!(w["path"], "/app/models/iris.joblib");
    assert_eq!(w["layer"].as_str(), Some(f.iris.layers[0].2.as_str()));
}

#[test]
fn a_source_distribution_is_built_in_a_build_container_and_named() {
    let f = fixture();
    let k = &f.k;
    // docopt 0.6.2 exists only as an sdist on PyPI.
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("sd");
    std::fs::create_dir_all(&p).unwrap();
    std::fs::write(p.join("requirements.txt"), "docopt==0.6.2\n").unwrap();
    std::fs::write(
        p.join("main.py"),
        "import docopt\nprint('docopt', docopt.__version__)\n",
    )
    .unwrap();
    std::fs::write(
        p.join("kiln.toml"),
        "[project]\nname = \"sdist-test\"\n[app]\ncommand = [\"python3\", \"main.py\"]\n",
    )
    .unwrap();
    let out = k
        .cmd()
        .args(["build", "-t", "sdist-test:1", p.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains(
            "building docopt 0.6.2 from its source distribution in a kiln build container"
        ),
        "the step is named: {err}"
    );
    let lock = std::fs::read_to_string(p.join("kiln.lock")).unwrap();
    assert!(
        lock.contains("docopt-0.6.2.tar.gz") && lock.contains("sdist = true"),
        "{lock}"
    );
    assert_eq!(
        k.ok(&["run", "--rm", "--network", "none", "sdist-test:1"])
            .trim(),
        "docopt 0.6.2"
    );
    // No host path or time in the layer: uv's direct_url.json and uv_cache.json for the
    // local wheel are gone.
    let listing = k.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "sdist-test:1",
        "ls",
        "/opt/venv/lib/python3.11/site-packages/docopt-0.6.2.dist-info",
    ]);
    assert!(
        listing.contains("METADATA")
            && !listing.contains("direct_url.json")
            && !listing.contains("uv_cache.json"),
        "{listing}"
    );
}
