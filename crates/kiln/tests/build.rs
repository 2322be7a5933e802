//! `kiln build` against `docker build` (BuildKit, Docker 20.10): the same Dockerfiles and
//! contexts give the same flattened file tree (paths, types, modes, owners, contents,
//! link targets) and the same config. Plus the cache, reproducibility and bad input.

mod common;
use common::builds::*;
use common::*;
use std::path::PathBuf;
use std::process::Command;

#[test]
fn instructions_match_docker_build() {
    let b = Base::new("bi");
    let (body, files) = (INSTRUCTIONS.dockerfile, INSTRUCTIONS.files);
    let t = same_as_docker(&b, "instr", body, files, &[]);
    assert!(
        t.iter().any(|l| l.starts_with("srv/app/sub/version.txt ")),
        "{t:#?}"
    );
    assert!(
        t.iter()
            .any(|l| l.starts_with("owned/a.conf Regular 644 1000:1000")),
        "{t:#?}"
    );
    assert!(
        t.iter()
            .any(|l| l.starts_with("moded.conf Regular 640 0:0")),
        "{t:#?}"
    );
    assert!(!t.iter().any(|l| l.starts_with("data/keep")), "{t:#?}");
}

#[test]
fn multi_stage_target_and_ignore_match_docker_build() {
    let b = Base::new("bm");
    let (body, files) = (MULTI_STAGE.dockerfile, MULTI_STAGE.files);
    let t = same_as_docker(&b, "multi", body, files, &[]);
    assert!(t.iter().any(|l| l.starts_with("app/artifact ")));
    assert!(t.iter().any(|l| l.starts_with("ctx/keep.log ")));
    assert!(!t.iter().any(|l| l.starts_with("ctx/a.log")
        || l.contains("secret")
        || l.starts_with("ctx/build/")));
    // --target builds only what that stage needs (the failing stage is never run).
    let t = same_as_docker(&b, "multitarget", body, files, MULTI_STAGE_TARGET.args);
    assert!(t.iter().any(|l| l.starts_with("out/tested ")));
}

#[test]
fn run_mounts_match_docker_build_and_leave_nothing() {
    let b = Base::new("bmnt");
    let secret = b.k.dir.path().join("token.txt");
    std::fs::write(&secret, RUN_MOUNTS.secrets[0].1).unwrap();
    let body = RUN_MOUNTS.dockerfile;
    // A fresh cache id: Docker's cache mounts outlive this test.
    let body = body.replace("CACHEID", &unique("cache"));
    let files = RUN_MOUNTS.files;
    let secret_arg = format!("id=token,src={}", secret.display());
    let t = same_as_docker(&b, "mounts", &body, files, &["--secret", &secret_arg]);
    for absent in [
        "var/cache/app/log",
        "scratch/t",
        "mnt/files/f",
        "run/secrets/token",
    ] {
        assert!(
            !t.iter().any(|l| l.starts_with(absent)),
            "{absent} is in the image: {t:#?}"
        );
    }
    // The secret is in no blob of the store and not in the history.
    let store = b.k.root().join("blobs/sha256");
    for e in std::fs::read_dir(&store).unwrap() {
        let p = e.unwrap().path();
        let bytes = std::fs::read(&p).unwrap();
        let text = match kiln_gunzip(&bytes) {
            Some(t) => t,
            None => bytes,
        };
        assert!(
            !text.windows(12).any(|w| w == b"s3cr3t-value"),
            "the secret is in blob {}",
            p.display()
        );
    }
}

fn kiln_gunzip(bytes: &[u8]) -> Option<Vec<u8>> {
    if !bytes.starts_with(&[0x1f, 0x8b]) {
        return None;
    }
    let mut out = Vec::new();
    let mut child = Command::new("gzip")
        .arg("-dc")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .ok()?;
    let mut stdin = child.stdin.take()?;
    let data = bytes.to_vec();
    let w = std::thread::spawn(move || std::io::Write::write_all(&mut stdin, &data));
    std::io::Read::read_to_end(child.stdout.as_mut()?, &mut out).ok()?;
    let _ = w.join();
    child.wait().ok()?;
    Some(out)
}

#[test]
fn add_archives_and_heredocs() {
    let b = Base::new("badd");
    let ctx = b.case_context(&ADD_ARCHIVE_HEREDOCS, "add", "");
    kiln_build(&b.k, &ctx, "add:v1", &[]);
    let t = kiln_tree(&b.k, "add:v1");
    assert!(
        t.iter().any(|l| l.starts_with("opt/pkg/mod.py Regular")),
        "{t:#?}"
    );
    let out = b.k.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "add:v1",
        "cat",
        "/heredoc.txt",
        "/etc/app.conf",
    ]);
    assert_eq!(out, "from heredoc\nkey=value\n");
}

#[test]
fn cache_rebuilds_from_the_first_changed_step() {
    let b = Base::new("bc");
    let body = CACHE_STEPS.dockerfile;
    let ctx = b.context("cache", body, CACHE_STEPS.files);
    let first = kiln_build(&b.k, &ctx, "c:v1", &[]);
    assert!(!first.contains("CACHED"), "{first}");
    let second = kiln_build(&b.k, &ctx, "c:v2", &[]);
    assert_eq!(second.matches("CACHED").count(), 4, "{second}");
    assert_eq!(
        b.k.ok(&["inspect", "--format", "{{.Id}}", "c:v1"]),
        b.k.ok(&["inspect", "--format", "{{.Id}}", "c:v2"])
    );
    // Only the app changed: everything before its COPY is cached.
    std::fs::write(ctx.join("app.py"), "v2\n").unwrap();
    let third = kiln_build(&b.k, &ctx, "c:v3", &[]);
    assert_eq!(third.matches("CACHED").count(), 3, "{third}");
    let v1 = json(&b.k.ok(&["inspect", "c:v1"]))[0]["RootFS"]["diff_ids"].clone();
    let v3 = json(&b.k.ok(&["inspect", "c:v3"]))[0]["RootFS"]["diff_ids"].clone();
    let (v1, v3) = (v1.as_array().unwrap(), v3.as_array().unwrap());
    assert_eq!(v1.len(), v3.len());
    assert_eq!(
        v1[..v1.len() - 1],
        v3[..v3.len() - 1],
        "only the last layer differs"
    );
    assert_ne!(v1.last(), v3.last());
    assert_eq!(
        b.k.ok(&["run", "--rm", "--network", "none", "c:v3"]),
        "v2\n"
    );
    // Changing a build arg used by RUN reruns that step.
    std::fs::write(
        ctx.join("Dockerfile"),
        body.replace("FROM BASE", &format!("FROM {}\nARG FLAVOR=a", b.name)),
    )
    .unwrap();
    kiln_build(&b.k, &ctx, "c:a", &[]);
    let other = kiln_build(&b.k, &ctx, "c:b", &["--build-arg", "FLAVOR=b"]);
    assert!(other.matches("CACHED").count() < 4, "{other}");
    b.k.ok(&["check"]);
}

#[test]
fn same_context_in_two_directories_gives_the_same_digest() {
    let b = Base::new("brepro");
    let (body, files) = (REPRODUCIBLE.dockerfile, REPRODUCIBLE.files);
    let c1 = b.context("r1", body, files);
    let c2 = b.context("r2", body, files);
    // Different file times in the two copies.
    run(Command::new("touch")
        .args(["-d", "2001-01-01"])
        .arg(c1.join("a.txt")));
    let iid1 = b.k.dir.path().join("iid1");
    let iid2 = b.k.dir.path().join("iid2");
    kiln_build(
        &b.k,
        &c1,
        "r:1",
        &["--no-cache", "--iidfile", iid1.to_str().unwrap()],
    );
    kiln_build(
        &b.k,
        &c2,
        "r:2",
        &["--no-cache", "--iidfile", iid2.to_str().unwrap()],
    );
    let d1 = b.k.ok(&["inspect", "--format", "{{.Digest}}", "r:1"]);
    let d2 = b.k.ok(&["inspect", "--format", "{{.Digest}}", "r:2"]);
    assert_eq!(d1, d2, "two directories, --no-cache: the same image");
    assert_eq!(
        std::fs::read_to_string(&iid1).unwrap(),
        std::fs::read_to_string(&iid2).unwrap()
    );
    let created = b.k.ok(&["inspect", "--format", "{{.Created}}", "r:1"]);
    assert!(created.starts_with("1970-01-01T00:00:00"), "{created}");
}

#[test]
fn bad_input_names_the_line_and_leaves_no_image() {
    let b = Base::new("bbad");
    let check = |label: &str, body: &str, files: &[(&str, &str)], needles: &[&str]| {
        let ctx = b.context(label, body, files);
        let tag = format!("{label}:v1");
        let out =
            b.k.cmd()
                .args(["build", "--network", "none", "-t", &tag])
                .arg(&ctx)
                .output()
                .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!out.status.success(), "{label}: the build succeeded");
        assert!(!stderr.contains("panicked"), "{stderr}");
        for n in needles {
            assert!(stderr.contains(n), "{label}: `{n}` is not in:\n{stderr}");
        }
        let images = b.k.ok(&["images"]);
        assert!(
            !images.contains(label),
            "{label}: an image was named:\n{images}"
        );
    };
    check(
        "syntax",
        BAD_SYNTAX.dockerfile,
        &[],
        &["Dockerfile:3", "COPY"],
    );
    check(
        "unknown",
        BAD_UNKNOWN.dockerfile,
        &[],
        &["Dockerfile:2", "FROBNICATE"],
    );
    check(
        "missing",
        BAD_MISSING.dockerfile,
        &[],
        &["Dockerfile:2", "nothere.txt"],
    );
    check(
        "failing",
        BAD_FAILING.dockerfile,
        &[],
        &["Dockerfile:2", "exit code 3", "about-to-fail"],
    );
    // Nothing of the failed steps is left mounted or in the containers directory.
    b.k.assert_nothing_left();
    b.k.ok(&["check"]);
}

/// Ctrl-C (SIGINT to kiln) in the middle of a RUN step: the build stops, no image is
/// named, nothing stays mounted, and the store passes `kiln check`.
#[test]
fn interrupted_build_leaves_the_store_consistent() {
    let b = Base::new("bint");
    let ctx = b.context("int", INTERRUPTED.dockerfile, INTERRUPTED.files);
    let mut child =
        b.k.cmd()
            .args([
                "build",
                "--network",
                "none",
                "--progress",
                "plain",
                "-t",
                "int:v1",
            ])
            .arg(&ctx)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
    // Wait for the long step to print, then interrupt.
    let stderr = child.stderr.take().unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stderr));
    let mut seen = Vec::new();
    for l in lines.by_ref() {
        let l = l.unwrap();
        seen.push(l.clone());
        if l.ends_with(" started") {
            break;
        }
    }
    let t = std::time::Instant::now();
    run(Command::new("kill").args(["-INT", &child.id().to_string()]));
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = child.wait().unwrap();
    assert!(
        t.elapsed() < std::time::Duration::from_secs(20),
        "the build kept running"
    );
    assert!(!status.success(), "{seen:?} {rest:?}");
    assert!(!b.k.ok(&["images"]).contains("int "), "an image was named");
    b.k.assert_nothing_left();
    b.k.ok(&["check"]);
}

/// RUN steps get a network namespace of their own by default (pasta for the way out):
/// a server on the host's loopback is out of their reach; `--network host` reaches it.
#[test]
fn run_steps_default_to_a_private_network() {
    let b = Base::new("bnet");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in listener.incoming().flatten() {
            let mut s = s;
            let mut buf = [0u8; 1024];
            let _ = std::io::Read::read(&mut s, &mut buf);
            let _ = std::io::Write::write_all(
                &mut s,
                b"HTTP/1.0 200 OK\r\nContent-Length: 14\r\n\r\nhost-loopback\n",
            );
        }
    });
    let body = PRIVATE_NETWORK
        .dockerfile
        .replace("PORT", &port.to_string());
    let ctx = b.context("net", &body, &[]);
    let out =
        b.k.cmd()
            .args(["build", "-q", "-t", "net:private"])
            .arg(&ctx)
            .output()
            .unwrap();
    assert_success(&out);
    let got = b.k.ok(&["run", "--rm", "--network", "none", "net:private"]);
    assert_eq!(got, "unreachable\n");
    b.k.ok(&[
        "build",
        "-q",
        "--no-cache",
        "--network",
        "host",
        "-t",
        "net:host",
        ctx.to_str().unwrap(),
    ]);
    let got = b.k.ok(&["run", "--rm", "--network", "none", "net:host"]);
    assert_eq!(got, "host-loopback\n");
}

/// `--cache-to type=local` on one machine, `--cache-from type=local` on another (a fresh
/// store): every layer step is a hit and the image is the same.
#[test]
fn local_cache_export_and_import() {
    let b = Base::new("bcache");
    let ctx = b.context("cx", LOCAL_CACHE.dockerfile, LOCAL_CACHE.files);
    let dir = b.k.dir.path().join("ci-cache");
    let dest = format!("type=local,dest={}", dir.display());
    kiln_build(&b.k, &ctx, "cx:v1", &["--cache-to", &dest]);
    assert!(dir.join("index.json").is_file());
    let id1 = b.k.ok(&["inspect", "--format", "{{.Id}}", "cx:v1"]);
    // The other machine: the same base image, no cache.
    let other = Kiln::new();
    let tar = b.k.dir.path().join("base.tar");
    b.k.ok(&["save", &b.name, "-o", tar.to_str().unwrap()]);
    other.ok(&["load", "-q", "-i", tar.to_str().unwrap()]);
    let src = format!("type=local,src={}", dir.display());
    let out = kiln_build(&other, &ctx, "cx:v1", &["--cache-from", &src]);
    assert_eq!(out.matches("CACHED").count(), 3, "{out}");
    assert_eq!(other.ok(&["inspect", "--format", "{{.Id}}", "cx:v1"]), id1);
    other.ok(&["check"]);
    // A corrupt blob in the cache directory is refused, naming it.
    let idx = json(&std::fs::read_to_string(dir.join("index.json")).unwrap());
    let digest = idx["manifests"][0]["digest"].as_str().unwrap().to_string();
    let blob = dir
        .join("blobs/sha256")
        .join(digest.trim_start_matches("sha256:"));
    let mut bytes = std::fs::read(&blob).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&blob, bytes).unwrap();
    let third = Kiln::new();
    third.ok(&["load", "-q", "-i", tar.to_str().unwrap()]);
    let out = third
        .cmd()
        .args([
            "build",
            "--network",
            "none",
            "--cache-from",
            &src,
            "-t",
            "cx:v1",
        ])
        .arg(&ctx)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a corrupt cache was accepted");
    assert!(
        stderr.contains(&digest[7..19]) || stderr.contains(&digest),
        "{stderr}"
    );
    third.ok(&["check"]);
}

/// `--host-ca`: RUN steps see the host's CA bundle (and the variables package managers
/// read) while they run; no layer, history entry or config holds it.
#[test]
fn host_ca_reaches_run_steps_and_no_layer() {
    let b = Base::new("bca");
    let ca = b.k.dir.path().join("corp-ca.pem");
    std::fs::write(
        &ca,
        "-----BEGIN CERTIFICATE-----\nkiln-test-ca-marker\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let ctx = b.context("ca", HOST_CA.dockerfile, HOST_CA.files);
    let out =
        b.k.cmd()
            .env("SSL_CERT_FILE", &ca)
            .args(["build", "--network", "none", "--host-ca", "-t", "ca:v1"])
            .arg(&ctx)
            .output()
            .unwrap();
    assert_success(&out);
    let seen = b.k.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "ca:v1",
        "cat",
        "/seen",
        "/vars",
    ]);
    assert_eq!(seen, "1\n/run/kiln/host-ca.crt /run/kiln/host-ca.crt\n");
    let t = kiln_tree(&b.k, "ca:v1");
    assert!(!t.iter().any(|l| l.starts_with("run")), "{t:#?}");
    let conf = b.k.ok(&["inspect", "ca:v1"]);
    // The Dockerfile's own text names $SSL_CERT_FILE; the mount and its value are absent.
    assert!(
        !conf.contains("host-ca") && !conf.contains("\"SSL_CERT_FILE="),
        "{conf}"
    );
    for e in std::fs::read_dir(b.k.root().join("blobs/sha256")).unwrap() {
        let bytes = std::fs::read(e.unwrap().path()).unwrap();
        let text = kiln_gunzip(&bytes).unwrap_or(bytes);
        assert!(
            !text.windows(19).any(|w| w == b"kiln-test-ca-marker"),
            "the CA is in a blob"
        );
    }
}

/// The rest of the reference against docker build: ARG before FROM, the escape
/// directive, SHELL with shell-form CMD and ENTRYPOINT, HEALTHCHECK, ONBUILD (recorded,
/// then fired in a child image), ADD of a local archive, COPY --from an image.
#[test]
fn directives_shell_healthcheck_onbuild_match_docker_build() {
    let b = Base::new("bdir");
    // A parent with ONBUILD triggers, built by both.
    let pctx = b.context("parent", ONBUILD_PARENT, &[]);
    let parent = format!("{}:v1", unique("parent"));
    docker_build(&pctx, &parent, &[]);
    kiln_build(&b.k, &pctx, &parent, &[]);
    let dparent =
        json(&run(docker().args(["image", "inspect", &parent])))[0]["Config"]["OnBuild"].clone();
    let kparent = json(&b.k.ok(&["inspect", &parent]))[0]["Config"]["OnBuild"].clone();
    assert_eq!(
        kparent, dparent,
        "ONBUILD triggers are recorded as Docker records them"
    );
    let ctx = b.case_context(&DIRECTIVES, "directives", &parent);
    let tag = format!("{}:v1", unique("dir"));
    docker_build(&ctx, &tag, &[]);
    kiln_build(&b.k, &ctx, &tag, &[]);
    let dt = docker_tree(b.k.dir.path(), &tag);
    let kt = kiln_tree(&b.k, &tag);
    let dconf = json(&run(docker().args(["image", "inspect", &tag])))[0]["Config"].clone();
    let kconf = json(&b.k.ok(&["inspect", &tag]))[0]["Config"].clone();
    run(docker().args(["rmi", &tag, &parent]));
    let only_docker: Vec<_> = dt.iter().filter(|l| !kt.contains(l)).collect();
    let only_kiln: Vec<_> = kt.iter().filter(|l| !dt.contains(l)).collect();
    assert!(
        only_docker.is_empty() && only_kiln.is_empty(),
        "trees differ\nonly in docker's: {only_docker:#?}\nonly in kiln's: {only_kiln:#?}"
    );
    assert_eq!(config_of(&kconf), config_of(&dconf));
    for key in ["Healthcheck", "OnBuild", "Shell"] {
        let norm = |v: &serde_json::Value| match v {
            serde_json::Value::Array(a) if a.is_empty() => serde_json::Value::Null,
            x => x.clone(),
        };
        assert_eq!(norm(&kconf[key]), norm(&dconf[key]), "{key}");
    }
    assert!(kt.iter().any(|l| l.starts_with("onbuild.txt ")), "{kt:#?}");
    assert!(
        kt.iter().any(|l| l.starts_with("from-trigger.txt ")),
        "{kt:#?}"
    );
    assert!(
        kt.iter().any(|l| l.starts_with("opt/pkg/sub/mod.py ")),
        "{kt:#?}"
    );
}

/// `ADD URL`: downloaded (here from a server on loopback), mode 0600, checked against
/// `--checksum`; a wrong checksum fails naming both digests.
#[test]
fn add_url_with_checksum() {
    let b = Base::new("burl");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in listener.incoming().flatten() {
            let mut s = s;
            let mut buf = [0u8; 2048];
            let _ = std::io::Read::read(&mut s, &mut buf);
            let _ = std::io::Write::write_all(
                &mut s,
                b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\nLast-Modified: Tue, 01 Jan 2019 00:00:00 GMT\r\nConnection: close\r\n\r\nweights\n",
            );
        }
    });
    let sum = "sha256:ae9e1c5ec2e7ea8e9b4a0a6bbbb1bcf0d0e1a5c3c9f5e1e1b7f5f1a3e0c0a0a0";
    let real = {
        use sha2::Digest as _;
        format!("sha256:{}", hex::encode(sha2::Sha256::digest(b"weights\n")))
    };
    let url_dockerfile = |sum: &str| {
        ADD_URL
            .dockerfile
            .replace("SUM", sum)
            .replace("PORT", &port.to_string())
    };
    let good = url_dockerfile(&real);
    let ctx = b.context("url", &good, &[]);
    kiln_build(&b.k, &ctx, "url:v1", &[]);
    let t = kiln_tree(&b.k, "url:v1");
    assert!(
        t.iter()
            .any(|l| l.starts_with("models/w.bin Regular 600 0:0")),
        "{t:#?}"
    );
    let bad = url_dockerfile(sum);
    let ctx = b.context("urlbad", &bad, &[]);
    let out =
        b.k.cmd()
            .args(["build", "--network", "none", "-t", "url:bad"])
            .arg(&ctx)
            .output()
            .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("checksum") && stderr.contains(&real),
        "{stderr}"
    );
}

/// BuildKit's newer COPY flags (Dockerfile 1.7, beyond Docker 20.10): `--exclude`
/// patterns and `--parents`.
#[test]
fn copy_exclude_and_parents() {
    let b = Base::new("bcx");
    let ctx = b.context(
        "cx",
        COPY_EXCLUDE_PARENTS.dockerfile,
        COPY_EXCLUDE_PARENTS.files,
    );
    kiln_build(&b.k, &ctx, "cx:v1", &[]);
    let names: Vec<String> = kiln_tree(&b.k, "cx:v1")
        .into_iter()
        .map(|l| l.split(' ').next().unwrap().to_string())
        .collect();
    for present in [
        "app/main.py",
        "app/pkg/mod.py",
        "etc/svc/a/one/conf.yaml",
        "etc/svc/a/two/conf.yaml",
    ] {
        assert!(
            names.iter().any(|n| n == present),
            "{present} missing: {names:?}"
        );
    }
    for absent in [
        "app/junk.tmp",
        "app/cache/x",
        "etc/svc/a/two/other.txt",
        "etc/svc/conf.yaml",
    ] {
        assert!(
            !names.iter().any(|n| n == absent),
            "{absent} present: {names:?}"
        );
    }
}

/// A Debian bookworm root filesystem with python3 and pip, made once by mmdebstrap from
/// the Debian archive and kept in `$KILN_TEST_CACHE` (default /var/tmp/kiln-test-cache).
fn python_base_tar() -> PathBuf {
    let dir = PathBuf::from(
        std::env::var("KILN_TEST_CACHE").unwrap_or_else(|_| "/var/tmp/kiln-test-cache".into()),
    );
    let tar = dir.join("pybase-bookworm.tar");
    if tar.is_file() {
        return tar;
    }
    // An earlier version of this test left a directory there (mmdebstrap chose its
    // output format from a `.tar.PID` name): make the tar again.
    if tar.is_dir() {
        std::fs::remove_dir_all(&tar).unwrap();
    }
    std::fs::create_dir_all(&dir).unwrap();
    let tmp = dir.join(format!("pybase-bookworm.tar.{}", std::process::id()));
    let mm = Command::new("mmdebstrap")
        .args([
            "--quiet",
            "--format=tar",
            "--variant=minbase",
            "--include=python3,python3-pip,ca-certificates",
            "bookworm",
        ])
        .arg(&tmp)
        .arg("http://deb.debian.org/debian")
        .status()
        .unwrap_or_else(|e| panic!("mmdebstrap: {e} (apt-get install mmdebstrap)"));
    assert!(mm.success(), "mmdebstrap failed");
    std::fs::rename(&tmp, &tar).unwrap();
    tar
}

/// The ML Dockerfile: a Python base, `pip install scikit-learn` (PyPI, through the host's
/// CA with --host-ca, on the default private network), then the app. The image runs the
/// model; editing only the app rebuilds only the last layer.
#[test]
fn ml_dockerfile_cold_then_app_edit_rebuilds_only_the_last_layer() {
    let k = Kiln::new();
    k.ok(&[
        "import",
        python_base_tar().to_str().unwrap(),
        "-t",
        "pybase:bookworm",
    ]);
    let ctx = k.dir.path().join("ml");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("Dockerfile"), ML.dockerfile).unwrap();
    let app = "from sklearn.linear_model import LinearRegression\nm = LinearRegression().fit([[0], [1], [2]], [0, 2, 4])\nprint('slope', round(float(m.coef_[0]), 3))\n";
    std::fs::write(ctx.join("app.py"), app).unwrap();
    let out = k
        .cmd()
        .args(["build", "--host-ca", "--progress", "plain", "-t", "ml:v1"])
        .arg(&ctx)
        .output()
        .unwrap();
    assert_success(&out);
    assert_eq!(
        k.ok(&["run", "--rm", "--network", "none", "ml:v1"]),
        "slope 2.0\n"
    );
    std::fs::write(ctx.join("app.py"), format!("{app}print('v2')\n")).unwrap();
    let out = k
        .cmd()
        .args(["build", "--host-ca", "--progress", "plain", "-t", "ml:v2"])
        .arg(&ctx)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("#2 CACHED"),
        "the pip step is cached: {stderr}"
    );
    let ids = |t: &str| {
        json(&k.ok(&["inspect", t]))[0]["RootFS"]["diff_ids"]
            .as_array()
            .unwrap()
            .clone()
    };
    let (v1, v2) = (ids("ml:v1"), ids("ml:v2"));
    assert_eq!(v1.len(), v2.len());
    assert_eq!(
        v1[..v1.len() - 1],
        v2[..v2.len() - 1],
        "only the app layer differs"
    );
    assert_ne!(v1.last(), v2.last());
    assert_eq!(
        k.ok(&["run", "--rm", "--network", "none", "ml:v2"]),
        "slope 2.0\nv2\n"
    );
}

/// Independent stages are built at the same time: two stages that each sleep record
/// overlapping intervals, and the main build finds their layers cached — also with
/// `--no-cache`, which only ignores what this build did not make.
#[test]
fn independent_stages_build_in_parallel() {
    let b = Base::new("bpar");
    let ctx = b.context("par", PARALLEL_STAGES.dockerfile, PARALLEL_STAGES.files);
    for (tag, extra) in [("par:v1", vec![]), ("par:v2", vec!["--no-cache"])] {
        let out = kiln_build(&b.k, &ctx, tag, &extra);
        assert!(out.contains("in parallel"), "{out}");
        assert!(
            out.matches("CACHED").count() >= 2,
            "the stages' RUN steps come from the helpers: {out}"
        );
        let read = |f: &str| -> f64 {
            let s = b.k.ok(&["run", "--rm", "--network", "none", tag, "cat", f]);
            s.split_whitespace().next().unwrap().parse().unwrap()
        };
        let (a0, a1, b0, b1) = (
            read("/a-start"),
            read("/a-end"),
            read("/b-start"),
            read("/b-end"),
        );
        assert!(
            a0 < b1 && b0 < a1,
            "{tag}: the stages ran one after the other: a {a0}..{a1}, b {b0}..{b1}"
        );
    }
}

/// FROM scratch, a Containerfile with its own Containerfile.dockerignore, `--label`,
/// `--output type=oci` (an archive skopeo reads) and `--progress json` (one JSON object
/// per line).
#[test]
fn scratch_containerfile_labels_output_and_json_progress() {
    let b = Base::new("bscr");
    // The table's context: a Containerfile, bin/busybox, notes.txt, a .dockerignore
    // ("bin") that loses to Containerfile.dockerignore ("notes.txt").
    let ctx = b.case_context(&SCRATCH_CONTAINERFILE, "scratch-ctx", "");
    let archive = b.k.dir.path().join("scratch-oci.tar");
    let out =
        b.k.cmd()
            .args([
                "build",
                "--network",
                "none",
                "--progress",
                "json",
                "--label",
                "team=ml",
                "-t",
                "scr:v1",
            ])
            .arg("--output")
            .arg(format!("type=oci,dest={}", archive.display()))
            .arg(&ctx)
            .output()
            .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let events: Vec<serde_json::Value> = stderr
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(json)
        .collect();
    assert!(
        events.iter().any(|e| e["instruction"] == "COPY . /"),
        "{stderr}"
    );
    assert!(events.iter().any(|e| e["seconds"].is_number()), "{stderr}");
    assert_eq!(
        b.k.ok(&["run", "--rm", "--network", "none", "scr:v1"]),
        "from scratch\n"
    );
    let names: Vec<String> = kiln_tree(&b.k, "scr:v1")
        .into_iter()
        .map(|l| l.split(' ').next().unwrap().to_string())
        .collect();
    assert!(names.contains(&"bin/busybox".to_string()), "{names:?}");
    assert!(
        !names.iter().any(|n| n == "notes.txt"),
        "Containerfile.dockerignore applies: {names:?}"
    );
    let labels =
        b.k.ok(&["inspect", "--format", "{{json .Config.Labels}}", "scr:v1"]);
    assert_eq!(json(&labels)["team"], "ml");
    let si = json(&run(skopeo()
        .arg("inspect")
        .arg(format!("oci-archive:{}", archive.display()))));
    assert_eq!(si["Labels"]["team"], "ml");
}
