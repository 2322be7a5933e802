//! Versions: every tag move recorded, `kiln history`, `kiln diff`, `kiln rollback` (in the
//! store and on a registry), and `prune --keep-history`.

mod common;
use common::registry::*;
use common::*;
use std::process::Stdio;

/// Builds `app:v` from `FROM bb:v1` + `body` in a context holding `files`; returns the
/// image digest.
fn build_version(
    k: &Kiln,
    label: &str,
    body: &str,
    files: &[(&str, &str)],
    extra: &[&str],
) -> String {
    let ctx = k.dir.path().join(label);
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("Dockerfile"), format!("FROM bb:v1\n{body}")).unwrap();
    for (p, c) in files {
        std::fs::write(ctx.join(p), c).unwrap();
    }
    let mut args = vec!["build", "-q", "--network", "none", "-t", "app:v"];
    args.extend_from_slice(extra);
    let ctx_s = ctx.to_str().unwrap().to_string();
    args.push(&ctx_s);
    k.ok(&args);
    digest_of(k, "app:v")
}

fn digest_of(k: &Kiln, reference: &str) -> String {
    k.ok(&["inspect", reference, "--format", "{{.Digest}}"])
        .trim()
        .to_string()
}

fn run_app(k: &Kiln) -> String {
    k.ok(&["run", "--rm", "--network", "none", "app:v"])
}

const APP: &str = "COPY app.txt /app.txt\nCMD [\"cat\", \"/app.txt\"]\n";

/// A RUN step installing version `v` of a Python distribution (its metadata only: what
/// `pip` leaves, and what `kiln diff` reads).
fn python_package(v: &str) -> String {
    let dir = format!("/usr/local/lib/python3.11/site-packages/fastlib-{v}.dist-info");
    format!(
        "RUN mkdir -p {dir} && printf 'Metadata-Version: 2.1\\nName: fastlib\\nVersion: {v}\\n' > {dir}/METADATA && echo pip > {dir}/INSTALLER\n"
    )
}

#[test]
fn three_versions_diff_rollback_and_history() {
    let k = kiln_with_busybox();
    let v1 = build_version(&k, "c1", APP, &[("app.txt", "one\n")], &[]);
    let v2 = build_version(
        &k,
        "c2",
        &format!("ENV MODE=fast\n{}{APP}", python_package("1.0")),
        &[("app.txt", "two\n")],
        &[],
    );
    let v3 = build_version(
        &k,
        "c3",
        &format!(
            "ENV MODE=fast\n{}EXPOSE 8000\n{APP}RUN echo extra > /extra\n",
            python_package("1.1")
        ),
        &[("app.txt", "three\n")],
        &[],
    );
    assert_eq!(run_app(&k), "three\n");

    // diff: config and files, reading only what the images do not share.
    let d = json(&k.ok(&["diff", &v2, &v3, "--files", "--json"]));
    assert_eq!(d["config"]["ports"]["added"]["8000/tcp"], "", "{d}");
    assert_eq!(
        d["packages"]["python"]["changed"],
        serde_json::json!([{"name": "fastlib", "from": "1.0", "to": "1.1"}]),
        "{d}"
    );
    let files: Vec<(String, String)> = d["files"]["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["change"].as_str().unwrap().into(),
                c["path"].as_str().unwrap().into(),
            )
        })
        .collect();
    let meta = "/usr/local/lib/python3.11/site-packages/fastlib-1";
    assert_eq!(
        files,
        [
            ("modified".to_string(), "/app.txt".to_string()),
            ("added".to_string(), "/extra".to_string()),
            ("removed".to_string(), format!("{meta}.0.dist-info")),
            (
                "removed".to_string(),
                format!("{meta}.0.dist-info/INSTALLER")
            ),
            (
                "removed".to_string(),
                format!("{meta}.0.dist-info/METADATA")
            ),
            ("added".to_string(), format!("{meta}.1.dist-info")),
            ("added".to_string(), format!("{meta}.1.dist-info/INSTALLER")),
            ("added".to_string(), format!("{meta}.1.dist-info/METADATA")),
        ],
        "{d}"
    );
    assert!(d["files"]["shared_layers"].as_u64().unwrap() >= 1, "{d}");
    let d = json(&k.ok(&["diff", &v1, &v2, "--json"]));
    assert_eq!(d["config"]["env"]["added"]["MODE"], "fast", "{d}");
    let human = k.ok(&["diff", &v1, &v3, "--files"]);
    assert!(human.contains("M /app.txt"), "{human}");
    assert!(human.contains("+ python fastlib 1.1"), "{human}");
    assert!(human.contains("+ env MODE=fast"), "{human}");

    // rollback twice: v2, then v1; each is a move of its own.
    k.ok(&["rollback", "app:v"]);
    assert_eq!(digest_of(&k, "app:v"), v2);
    assert_eq!(run_app(&k), "two\n");
    k.ok(&["rollback", "app:v"]);
    assert_eq!(digest_of(&k, "app:v"), v1);
    assert_eq!(run_app(&k), "one\n");
    // ... and a rollback is itself rolled back by naming the version.
    k.ok(&["rollback", "app:v", "--to", &v3[7..19]]);
    assert_eq!(run_app(&k), "three\n");
    k.ok(&["rollback", "app:v", "--to", "-2"]);
    assert_eq!(digest_of(&k, "app:v"), v1);

    let h = json(&k.ok(&["history", "app:v", "--json"]));
    let rows = h.as_array().unwrap();
    let digests: Vec<&str> = rows.iter().map(|r| r["digest"].as_str().unwrap()).collect();
    assert_eq!(digests, [v3.as_str(), v2.as_str(), v1.as_str()], "{h}");
    let current: Vec<bool> = rows.iter().map(|r| r["current"] == true).collect();
    assert_eq!(current, [false, false, true]);
    assert!(rows
        .iter()
        .all(|r| r["command"].as_str().unwrap().starts_with("kiln build")));
    // Every move is in the history file: 3 builds and 4 rollbacks.
    let moves = std::fs::read_to_string(k.root().join("history/tags.jsonl")).unwrap();
    let app_moves: Vec<serde_json::Value> = moves
        .lines()
        .map(json)
        .filter(|m| m["name"] == "app:v")
        .collect();
    assert_eq!(app_moves.len(), 7, "{moves}");
    assert_eq!(
        app_moves
            .iter()
            .filter(|m| m["action"] == "rollback")
            .count(),
        4
    );
    assert!(app_moves
        .iter()
        .all(|m| m["user"].is_string() && m["time"].is_string()));
    let human = k.ok(&["history", "app:v"]);
    assert!(
        human
            .lines()
            .any(|l| l.starts_with('*') && l.contains(&v1[7..19])),
        "{human}"
    );
    let layers = k.ok(&["history", "--layers", "app:v"]);
    assert!(layers.contains("COPY app.txt /app.txt"), "{layers}");
}

#[test]
fn bad_input_is_named() {
    let k = kiln_with_busybox();
    let v1 = build_version(&k, "c1", APP, &[("app.txt", "one\n")], &[]);
    build_version(&k, "c2", APP, &[("app.txt", "two\n")], &[]);
    k.ok(&["rollback", "app:v"]);
    let (code, e) = k.fails(&["rollback", "app:v"]);
    assert_eq!(code, 1);
    assert!(e.contains("it is version 1 of 2"), "{e}");
    assert!(e.contains("hint: `kiln history app:v`"), "{e}");
    let (_, e) = k.fails(&["rollback", "app:v", "--to", "sha256:0123456789ab"]);
    assert!(e.contains("is not a version of app:v"), "{e}");
    let (_, e) = k.fails(&["rollback", "nothere:v1"]);
    assert!(e.contains("no history for nothere:v1"), "{e}");
    let (_, e) = k.fails(&["diff", "app:v", "nothere:v1"]);
    assert!(e.contains("no such image: nothere:v1"), "{e}");
    assert!(e.contains("hint:"), "{e}");

    // A line cut short (a kiln killed while writing) is named by number; the rest reads.
    let hist = k.root().join("history/tags.jsonl");
    let mut text = std::fs::read_to_string(&hist).unwrap();
    let lines = text.lines().count();
    text.push_str("{\"time\":\"2026-11-30T00:00:00Z\",\"act");
    std::fs::write(&hist, &text).unwrap();
    build_version(&k, "c3", APP, &[("app.txt", "three\n")], &[]);
    let out = k
        .cmd()
        .args(["history", "app:v", "--json"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("tags.jsonl:{}: not a history record", lines + 1)),
        "{stderr}"
    );
    let rows = json(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(rows.as_array().unwrap().len(), 3);
    assert_eq!(rows[2]["digest"], v1.as_str());
    k.ok(&["check"]);
}

#[test]
fn concurrent_tag_moves_lose_no_record() {
    let k = kiln_with_busybox();
    let before = std::fs::read_to_string(k.root().join("history/tags.jsonl"))
        .unwrap()
        .lines()
        .count();
    let children: Vec<_> = (0..2)
        .map(|p| {
            let mut script = String::new();
            for i in 0..40 {
                script.push_str(&format!(
                    "{} tag bb:v1 p{p}:t{i} || exit 1\n",
                    env!("CARGO_BIN_EXE_kiln")
                ));
            }
            std::process::Command::new("sh")
                .arg("-c")
                .arg(script)
                .env("KILN_ROOT", k.root())
                .stdout(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    let text = std::fs::read_to_string(k.root().join("history/tags.jsonl")).unwrap();
    assert_eq!(text.lines().count(), before + 80);
    assert!(text
        .lines()
        .all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()));
}

#[test]
fn prune_keeps_exactly_the_history_it_is_told() {
    let k = kiln_with_busybox();
    let digests: Vec<String> = (1..=5)
        .map(|i| {
            build_version(
                &k,
                &format!("c{i}"),
                &format!("RUN echo {i} > /n\n{APP}"),
                &[("app.txt", &format!("{i}\n"))],
                &[],
            )
        })
        .collect();
    let r = json(&k.ok(&["prune", "--json", "--keep-history", "3"]));
    assert_eq!(r["old_versions"], 2, "{r}");
    // The three most recent versions stay for rollback; the two oldest are gone.
    for (i, d) in digests.iter().enumerate() {
        let present = k
            .cmd()
            .args(["inspect", d])
            .output()
            .unwrap()
            .status
            .success();
        assert_eq!(present, i >= 2, "version {} ({d})", i + 1);
    }
    k.ok(&["rollback", "app:v", "--to", "-2"]);
    assert_eq!(run_app(&k), "3\n");
    let (_, e) = k.fails(&["rollback", "app:v", "--to", &digests[0]]);
    assert!(e.contains("is no longer in the store"), "{e}");
    // Images never tagged are not history: a prune leaves them.
    k.ok(&["check"]);
}

fn skopeo_digest(reference: &str) -> String {
    let out = run(skopeo()
        .args(["inspect", "--tls-verify=false", "--format", "{{.Digest}}"])
        .arg(format!("docker://{reference}")));
    out.trim().to_string()
}

#[test]
fn rollback_of_a_registry_tag() {
    let reg = Registry::open();
    let k = kiln_with_busybox();
    let remote = format!("{}/team/app:v", reg.addr());
    let mut pushed = Vec::new();
    for i in 1..=3 {
        build_version(
            &k,
            &format!("c{i}"),
            APP,
            &[("app.txt", &format!("{i}\n"))],
            &[],
        );
        let out = k.ok(&["push", "--json", "app:v", &remote]);
        pushed.push(json(&out)["digest"].as_str().unwrap().to_string());
    }
    assert_eq!(skopeo_digest(&remote), pushed[2]);
    let h = json(&k.ok(&["history", &remote, "--json"]));
    assert_eq!(h.as_array().unwrap().len(), 3, "{h}");
    k.ok(&["rollback", &remote]);
    assert_eq!(skopeo_digest(&remote), pushed[1]);
    // A fresh store pulls v2.
    let fresh = Kiln::new();
    fresh.ok(&["pull", "-q", &remote]);
    assert_eq!(
        fresh.ok(&["run", "--rm", "--network", "none", &remote]),
        "2\n"
    );
    // The rollback is recorded: history marks v2 current, and v3 is one rollback away.
    let h = json(&k.ok(&["history", &remote, "--json"]));
    assert_eq!(h[1]["digest"], pushed[1].as_str());
    assert_eq!(h[1]["current"], true, "{h}");
    k.ok(&["rollback", &remote, "--to", &pushed[2]]);
    assert_eq!(skopeo_digest(&remote), pushed[2]);
    // The local tag was not moved by the remote rollbacks.
    assert_eq!(run_app(&k), "3\n");
}

/// A context that is a git checkout gives the image its revision and source, and the
/// history the commit (with `+` when the tree differs from it) and the build's message.
#[test]
fn git_revision_and_message() {
    let k = kiln_with_busybox();
    let ctx = k.dir.path().join("repo");
    std::fs::create_dir_all(&ctx).unwrap();
    let git = |args: &[&str]| {
        run(std::process::Command::new("git")
            .arg("-C")
            .arg(&ctx)
            .args(args)
            .env("GIT_AUTHOR_DATE", "@1700000000 +0000")
            .env("GIT_COMMITTER_DATE", "@1700000000 +0000"))
    };
    git(&["init", "-q"]);
    git(&["config", "user.email", "ci@example.com"]);
    git(&["config", "user.name", "ci"]);
    git(&[
        "remote",
        "add",
        "origin",
        "https://user:token@git.example.com/team/app.git",
    ]);
    std::fs::write(ctx.join("Dockerfile"), format!("FROM bb:v1\n{APP}")).unwrap();
    std::fs::write(ctx.join("app.txt"), "one\n").unwrap();
    git(&["add", "."]);
    git(&["commit", "-q", "-m", "first"]);
    let commit = git(&["rev-parse", "HEAD"]).trim().to_string();
    let build = |msg: &str| {
        k.ok(&[
            "build",
            "-q",
            "--network",
            "none",
            "-t",
            "app:v",
            "-m",
            msg,
            ctx.to_str().unwrap(),
        ])
    };
    build("the first model");
    let labels = json(&k.ok(&["inspect", "app:v", "--format", "{{json .Config.Labels}}"]));
    assert_eq!(labels["org.opencontainers.image.revision"], commit.as_str());
    assert_eq!(
        labels["org.opencontainers.image.source"], "https://git.example.com/team/app.git",
        "no credentials in the image"
    );
    let created = k.ok(&["inspect", "app:v", "--format", "{{.Created}}"]);
    assert!(created.starts_with("2023-11-14T22:13:20"), "{created}");
    // An uncommitted change: the history says so.
    std::fs::write(ctx.join("app.txt"), "two\n").unwrap();
    build("try a fix");
    let h = json(&k.ok(&["history", "app:v", "--json"]));
    assert_eq!(h[0]["commit"], commit.as_str());
    assert_eq!(h[0]["dirty"], true);
    assert_eq!(h[0]["message"], "try a fix");
    assert_eq!(h[1]["dirty"], false);
    assert_eq!(h[1]["message"], "the first model");
    let human = k.ok(&["history", "app:v"]);
    assert!(human.contains(&format!("{}+", &commit[..9])), "{human}");
    assert!(
        !std::fs::read_to_string(k.root().join("history/tags.jsonl"))
            .unwrap()
            .contains("token")
    );
}
