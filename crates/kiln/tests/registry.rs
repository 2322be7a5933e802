//! `kiln pull`, `push`, `login`, `logout` and `copy` against a real registry (the CNCF
//! distribution server on a loopback port), with skopeo, Podman and Docker on the other
//! side, and faults (a registry killed mid-push, corrupt blobs, dropped connections, 429s)
//! injected by a proxy. Loopback registries are spoken to over plain http, as Docker does.
//! Credentials live in each test's temp dir: the real home is never touched.

mod common;
use common::registry::*;
use common::*;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const HELLO: &str = "hello from kiln\n";

/// `kiln` on the store of `k`, with the Docker config, the auth file and HOME in its temp
/// dir.
fn kiln(k: &Kiln) -> Command {
    let mut c = k.cmd();
    c.env("DOCKER_CONFIG", k.dir.path().join("docker-config"))
        .env("HOME", k.dir.path().join("home"))
        .env_remove("REGISTRY_AUTH_FILE")
        .stdin(Stdio::null());
    c
}

fn output(k: &Kiln, args: &[&str]) -> Output {
    kiln(k).args(args).output().expect("run kiln")
}

/// Runs kiln, asserting success; returns stdout.
fn ok(k: &Kiln, args: &[&str]) -> String {
    let out = output(k, args);
    assert!(
        out.status.success(),
        "kiln {args:?} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 stdout")
}

/// Runs kiln, asserting failure without a panic; returns stderr.
fn fails(k: &Kiln, args: &[&str]) -> String {
    let out = output(k, args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "kiln {args:?} succeeded unexpectedly:\n{}{stderr}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        !stderr.contains("panicked"),
        "kiln {args:?} panicked:\n{stderr}"
    );
    eprintln!("kiln {args:?} failed as expected:\n{stderr}");
    assert!(
        stderr.lines().any(|l| l.starts_with("error: ")),
        "kiln {args:?}: no `error: ` line:\n{stderr}"
    );
    stderr
}

/// `kiln run --rm --network none IMAGE CMD...`, asserting success; returns stdout.
fn run_image(k: &Kiln, image: &str, cmd: &[&str]) -> String {
    let mut args = vec!["run", "--rm", "--network", "none", image];
    args.extend_from_slice(cmd);
    ok(k, &args)
}

/// Copies `name` from kiln's store (an OCI layout) to `docker://REGISTRY/DEST` with
/// skopeo: the registry gets its content without going through `kiln push`.
/// Returns the manifest digest the registry serves.
fn seed(reg: &Registry, k: &Kiln, name: &str, dest: &str) -> String {
    run(skopeo()
        .args(["copy", "-q", "--dest-tls-verify=false"])
        .arg(format!("oci:{}:{name}", k.root().display()))
        .arg(format!("docker://{}/{dest}", reg.addr())));
    let (repo, tag) = dest.rsplit_once(':').unwrap();
    raw_manifest(&reg.addr(), repo, tag, None).1
}

/// `skopeo inspect --tls-verify=false docker://REF`.
fn skopeo_inspect(reference: &str) -> serde_json::Value {
    json(&run(skopeo()
        .args(["inspect", "--tls-verify=false"])
        .arg(format!("docker://{reference}"))))
}

/// The blobs of a manifest: the config's digest and the layers' (digest, mediaType, size).
fn manifest_blobs(raw: &[u8]) -> (String, Vec<(String, String, u64)>) {
    let m: serde_json::Value = serde_json::from_slice(raw).expect("manifest JSON");
    let config = m["config"]["digest"].as_str().expect("config").to_string();
    let layers = m["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .map(|l| {
            (
                l["digest"].as_str().unwrap().to_string(),
                l["mediaType"].as_str().unwrap().to_string(),
                l["size"].as_u64().unwrap(),
            )
        })
        .collect();
    (config, layers)
}

/// `kiln push --json` output: (digest, blobs as (digest, size, status), uploaded_bytes).
fn push_report(v: &serde_json::Value) -> (String, Vec<(String, u64, String)>, u64) {
    let digest = v["digest"].as_str().expect("digest").to_string();
    assert!(digest.starts_with("sha256:"), "{v}");
    let blobs = v["blobs"]
        .as_array()
        .unwrap_or_else(|| panic!("blobs: {v}"))
        .iter()
        .map(|b| {
            (
                b["digest"].as_str().unwrap().to_string(),
                b["size"].as_u64().unwrap(),
                b["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let uploaded = v["uploaded_bytes"]
        .as_u64()
        .unwrap_or_else(|| panic!("uploaded_bytes: {v}"));
    (digest, blobs, uploaded)
}

/// `docker save IMAGE | kiln load`.
fn docker_to_kiln(k: &Kiln, image: &str) {
    let tar = k
        .dir
        .path()
        .join(format!("{}.tar", image.replace([':', '/'], "_")));
    run(docker().args(["save", "-o"]).arg(&tar).arg(image));
    k.ok(&["load", "-q", "-i", tar.to_str().unwrap()]);
    std::fs::remove_file(tar).unwrap();
}

/// Asserts that the store holds no image named after `host` and that `kiln check` passes.
fn assert_nothing_from(k: &Kiln, host: &str) {
    let images = ok(k, &["images"]);
    assert!(!images.contains(host), "an image was left:\n{images}");
    let listed = json(&ok(k, &["images", "--json"]));
    assert_eq!(listed, serde_json::json!([]), "images left");
    ok(k, &["check"]);
}

/// The CLI these tests drive is there (a clear message instead of clap's when not).
fn need_registry_cli() {
    let out = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["pull", "--help"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "`kiln pull` is not implemented yet:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The fixtures themselves, with skopeo as the client: the registry starts, serves,
/// survives a restart with its content; the proxy forwards, and injects each fault.
#[test]
fn fixtures_registry_and_fault_proxy_work() {
    let k = kiln_with_busybox();
    let mut reg = Registry::open();
    assert_eq!(http_status(&reg.addr(), "GET", "/v2/"), Some(200));
    let digest = seed(&reg, &k, "bb:v1", "fx/bb:v1");
    assert_eq!(
        skopeo_inspect(&format!("{}/fx/bb:v1", reg.addr()))["Digest"],
        digest
    );
    let linked = reg.linked_blobs("fx/bb");
    assert_eq!(linked.len(), 2, "config and one layer: {linked:?}");

    reg.kill();
    assert_eq!(http_status(&reg.addr(), "GET", "/v2/"), None);
    reg.restart();
    assert_eq!(raw_manifest(&reg.addr(), "fx/bb", "v1", None).1, digest);

    let copy_via = |proxy: &FaultProxy, n: usize| {
        skopeo()
            .args(["copy", "-q", "--src-tls-verify=false"])
            .arg(format!("docker://{}/fx/bb:v1", proxy.addr()))
            .arg(format!(
                "oci:{}:bb:v1",
                k.dir.path().join(format!("out{n}")).display()
            ))
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let plain = FaultProxy::new(&reg.addr(), Fault::None);
    let out = copy_via(&plain, 0);
    assert_success(&out);
    assert_eq!(
        plain.count("GET", "/blobs/sha256:"),
        2,
        "{:?}",
        plain.requests()
    );

    let corrupt = FaultProxy::new(&reg.addr(), Fault::CorruptBlobs);
    let out = copy_via(&corrupt, 1);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "skopeo accepted a corrupt blob");
    assert!(err.contains("sha256:"), "{err}");

    // The faults that go away on a retry: skopeo 1.9 gives up on the first one, and the
    // second try through the same proxy passes.
    for fault in [Fault::DropBlobsOnce, Fault::TooManyRequestsOnce] {
        let proxy = FaultProxy::new(&reg.addr(), fault);
        let mut done = false;
        for n in 0..8 {
            if copy_via(&proxy, 10 + n).status.success() {
                done = true;
                break;
            }
        }
        assert!(done, "{fault:?}: {:?}", proxy.requests());
        let (raw, d) = raw_manifest(&proxy.addr(), "fx/bb", "v1", None);
        assert_eq!(d, digest, "{fault:?}");
        let (config, layers) = manifest_blobs(&raw);
        for blob in std::iter::once(config).chain(layers.into_iter().map(|l| l.0)) {
            if fault == Fault::DropBlobsOnce {
                assert!(
                    proxy.count("GET", &blob) >= 2,
                    "{fault:?} {blob}: {:?}",
                    proxy.requests()
                );
            }
        }
    }

    let auth = Registry::with_auth("kiln", "s3cret");
    assert_eq!(http_status(&auth.addr(), "GET", "/v2/"), Some(401));
    assert_eq!(
        http_get(&auth.addr(), "/v2/", Some(("kiln", "s3cret"))).0,
        200
    );
    assert_eq!(
        http_get(&auth.addr(), "/v2/", Some(("kiln", "nope"))).0,
        401
    );
    assert_eq!(base64(b"kiln:s3cret"), "a2lsbjpzM2NyZXQ=");
    assert_eq!(base64(b"ab"), "YWI=");
}

/// a. `kiln push`; skopeo sees the same manifest digest; Podman pulls it and runs it.
#[test]
fn kiln_push_then_skopeo_and_podman_pull_and_run() {
    need_registry_cli();
    let reg = Registry::open();
    let k = kiln_with_busybox();
    let repo = unique("a");
    let dest = format!("{}/{repo}:v1", reg.addr());
    let v = json(&ok(&k, &["push", "--json", "bb:v1", &dest]));
    assert_eq!(v["reference"], dest.as_str(), "{v}");
    let (digest, blobs, uploaded) = push_report(&v);

    let (raw, served) = raw_manifest(&reg.addr(), &repo, "v1", None);
    assert_eq!(
        served, digest,
        "the digest kiln reports is the one the registry serves"
    );
    assert_eq!(v["size"].as_u64(), Some(raw.len() as u64), "{v}");
    let (config, layers) = manifest_blobs(&raw);
    let mut want: Vec<String> = layers.iter().map(|l| l.0.clone()).collect();
    want.push(config);
    want.sort();
    let mut got: Vec<String> = blobs.iter().map(|b| b.0.clone()).collect();
    got.sort();
    assert_eq!(got, want, "the blobs kiln reports are the manifest's");
    assert!(blobs.iter().all(|b| b.2 == "pushed"), "{v}");
    assert_eq!(uploaded, blobs.iter().map(|b| b.1).sum::<u64>(), "{v}");
    assert_eq!(reg.linked_blobs(&repo), want);

    let si = skopeo_inspect(&dest);
    assert_eq!(si["Digest"], digest.as_str());
    assert_eq!(si["Layers"].as_array().unwrap().len(), layers.len());

    run(podman().args(["pull", "-q", "--tls-verify=false", &dest]));
    let ran = run(podman().args(PODMAN_RUN).arg(&dest));
    let pd = run(podman().args(["image", "inspect", "--format", "{{.Digest}}", &dest]));
    run(podman().args(["rmi", &dest]));
    assert_eq!(ran, HELLO);
    assert_eq!(pd.trim(), digest);
}

/// b. Docker builds, skopeo pushes from the Docker daemon, kiln pulls: same digest, same
/// image ID, same output as `docker run`.
#[test]
fn skopeo_pushes_docker_image_kiln_pulls_and_runs() {
    need_registry_cli();
    let reg = Registry::open();
    let k = Kiln::new();
    let (base, app) = docker_build_on_busybox(
        k.dir.path(),
        "rb",
        "RUN echo pulled by kiln > /p.txt\nRUN mkdir -p /d && echo two > /d/two\nCMD [\"sh\", \"-c\", \"cat /p.txt /d/two\"]\n",
    );
    let image = format!("{app}:v1");
    let want = run(docker().args(["run", "--rm", "--network", "none", &image]));
    assert_eq!(want, "pulled by kiln\ntwo\n");
    let id = run(docker().args(["inspect", "--format", "{{.Id}}", &image]));
    let host = docker()
        .get_envs()
        .find(|(k, _)| *k == "DOCKER_HOST")
        .and_then(|(_, v)| v)
        .unwrap()
        .to_owned();
    let dest = format!("{}/{}:v1", reg.addr(), unique("b"));
    run(skopeo()
        .args(["copy", "-q", "--dest-tls-verify=false", "--src-daemon-host"])
        .arg(&host)
        .env("DOCKER_HOST", &host)
        .arg(format!("docker-daemon:{image}"))
        .arg(format!("docker://{dest}")));
    run(docker().args(["rmi", &image, &format!("{base}:v1")]));
    let sdigest = skopeo_inspect(&dest)["Digest"]
        .as_str()
        .unwrap()
        .to_string();

    let v = json(&ok(&k, &["pull", "--json", &dest]));
    assert_eq!(v["reference"], dest.as_str(), "{v}");
    assert_eq!(v["digest"], sdigest.as_str(), "{v}");
    assert_eq!(v["id"], id.trim(), "the image ID is Docker's: {v}");
    let layers = v["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 3, "{v}");
    assert!(layers.iter().all(|l| l["status"] == "downloaded"), "{v}");
    let sum: u64 = layers.iter().map(|l| l["size"].as_u64().unwrap()).sum();
    assert!(
        v["downloaded_bytes"].as_u64().unwrap() >= sum,
        "downloaded_bytes counts the layers: {v}"
    );
    assert_eq!(
        k.ok(&["inspect", "--format", "{{.Digest}}", &dest]).trim(),
        sdigest
    );
    assert_eq!(run_image(&k, &dest, &[]), want);

    // Again into the same store: nothing to download.
    let again = json(&ok(&k, &["pull", "--json", &dest]));
    assert_eq!(again["digest"], sdigest.as_str());
    assert!(
        again["layers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|l| l["status"] == "exists"),
        "{again}"
    );
    assert_eq!(again["downloaded_bytes"], 0, "{again}");

    // Human output in a fresh store: `Digest: ...`, then the reference as the last line.
    let k2 = Kiln::new();
    let human = ok(&k2, &["pull", &dest]);
    let lines: Vec<&str> = human.lines().collect();
    assert_eq!(lines.last().copied(), Some(dest.as_str()), "{human}");
    assert!(
        lines.contains(&format!("Digest: {sdigest}").as_str()),
        "{human}"
    );
    let quiet = ok(&Kiln::new(), &["pull", "-q", &dest]);
    assert!(quiet.lines().count() <= 1, "{quiet}");
    assert_eq!(run_image(&k2, &dest, &[]), want);
    ok(&k2, &["check"]);
}

/// Builds `APP:v1` and `APP:v2` on busybox with Docker: the same 1 MB random layer, then a
/// last layer that differs; returns their names after moving them into kiln.
fn two_images_differing_in_last_layer(k: &Kiln) -> (String, String) {
    let body = "RUN busybox head -c 1000000 /dev/urandom > /mid\nARG V=1\nRUN echo $V > /last\nCMD [\"cat\", \"/last\"]\n";
    let (base, app) = docker_build_on_busybox(k.dir.path(), "rc", body);
    let ctx = k.dir.path().join(format!("ctx-{app}"));
    run(docker()
        .env("DOCKER_BUILDKIT", "1")
        .args([
            "build",
            "--network",
            "none",
            "-q",
            "--build-arg",
            "V=2",
            "-t",
            &format!("{app}:v2"),
        ])
        .arg(&ctx));
    let (v1, v2) = (format!("{app}:v1"), format!("{app}:v2"));
    docker_to_kiln(k, &v1);
    docker_to_kiln(k, &v2);
    run(docker().args(["rmi", &v1, &v2, &format!("{base}:v1")]));
    (v1, v2)
}

/// c. A second push sends no blob; an image that differs in its last layer sends that
/// layer and its config only.
#[test]
fn second_push_uploads_nothing_and_changed_layer_only() {
    need_registry_cli();
    let reg = Registry::open();
    let k = Kiln::new();
    let (v1, v2) = two_images_differing_in_last_layer(&k);
    let repo = unique("c");
    let d1 = format!("{}/{repo}:v1", reg.addr());
    let d2 = format!("{}/{repo}:v2", reg.addr());

    let first = json(&ok(&k, &["push", "--json", &v1, &d1]));
    let (digest1, blobs1, up1) = push_report(&first);
    assert_eq!(blobs1.len(), 4, "config and three layers: {first}");
    assert!(blobs1.iter().all(|b| b.2 == "pushed"), "{first}");
    assert!(up1 > 1_000_000, "the random layer went up: {first}");

    let second = json(&ok(&k, &["push", "--json", &v1, &d1]));
    let (digest1b, blobs1b, up1b) = push_report(&second);
    assert_eq!(
        digest1b, digest1,
        "the same image pushes to the same digest"
    );
    assert_eq!(up1b, 0, "{second}");
    assert_eq!(blobs1b.len(), 4, "{second}");
    assert!(blobs1b.iter().all(|b| b.2 == "exists"), "{second}");

    let third = json(&ok(&k, &["push", "--json", &v2, &d2]));
    let (digest2, blobs2, up2) = push_report(&third);
    assert_ne!(digest2, digest1);
    let (raw2, served2) = raw_manifest(&reg.addr(), &repo, "v2", None);
    assert_eq!(served2, digest2);
    let (config2, layers2) = manifest_blobs(&raw2);
    let (raw1, _) = raw_manifest(&reg.addr(), &repo, "v1", None);
    let (_, layers1) = manifest_blobs(&raw1);
    assert_eq!(layers1[..2], layers2[..2], "only the last layer differs");
    assert_ne!(layers1[2], layers2[2]);
    let mut pushed: Vec<&str> = blobs2
        .iter()
        .filter(|b| b.2 == "pushed")
        .map(|b| b.0.as_str())
        .collect();
    pushed.sort();
    let mut want = vec![config2.as_str(), layers2[2].0.as_str()];
    want.sort();
    assert_eq!(pushed, want, "the changed layer and the config: {third}");
    assert!(
        blobs2
            .iter()
            .filter(|b| b.2 != "pushed")
            .all(|b| b.2 == "exists"),
        "{third}"
    );
    let pushed_size: u64 = blobs2.iter().filter(|b| b.2 == "pushed").map(|b| b.1).sum();
    assert_eq!(up2, pushed_size, "{third}");
    assert!(
        up2 < 100_000,
        "no more than the last layer and config: {third}"
    );
}

/// d. The registry is SIGKILLed while the big layer is being uploaded; after a restart a
/// second push completes, reusing the blobs already complete; a fresh store pulls it back.
#[test]
fn registry_killed_mid_push_then_second_push_completes() {
    need_registry_cli();
    let mut reg = Registry::open();
    let k = Kiln::new();
    const BIG: u64 = 64 * 1024 * 1024;
    let (base, app) = docker_build_on_busybox(
        k.dir.path(),
        "rd",
        &format!(
            "RUN busybox head -c {BIG} /dev/urandom > /big\nRUN echo small > /small\nCMD [\"sh\", \"-c\", \"busybox wc -c < /big\"]\n"
        ),
    );
    let image = format!("{app}:v1");
    docker_to_kiln(&k, &image);
    run(docker().args(["rmi", &image, &format!("{base}:v1")]));
    let repo = unique("d");
    let dest = format!("{}/{repo}:v1", reg.addr());

    let mut push = kiln(&k)
        .args(["push", "--json", &image, &dest])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    loop {
        if reg.upload_bytes(&repo) > 8_000_000 {
            reg.kill();
            break;
        }
        if let Some(status) = push.try_wait().unwrap() {
            let out = push.wait_with_output().unwrap();
            panic!(
                "the push ended ({status}) before the registry could be killed mid-upload:\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no upload reached the registry in 120 s"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    // The first push fails (it may retry for a while against the dead registry).
    let deadline = Instant::now() + Duration::from_secs(180);
    let status = loop {
        if let Some(status) = push.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = push.kill();
            let _ = push.wait();
            panic!("kiln push did not give up within 180 s of the registry's death");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = push.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !status.success(),
        "the push succeeded with its registry dead"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        stderr.contains("error: "),
        "the failed push ({status}) says why on stderr: {stderr:?}"
    );

    let complete = reg.linked_blobs(&repo);
    eprintln!("first push, killed:\n{stderr}\ncomplete before the kill: {complete:?}");
    reg.restart();
    let v = json(&ok(&k, &["push", "--json", &image, &dest]));
    eprintln!("second push: {v}");
    let (digest, blobs, uploaded) = push_report(&v);
    assert_eq!(blobs.len(), 4, "config and three layers: {v}");
    for (d, size, status) in &blobs {
        if complete.contains(d) {
            assert_eq!(status, "exists", "{d} was complete before the kill: {v}");
        } else {
            assert_eq!(status, "pushed", "{d}: {v}");
        }
        if *size > BIG / 2 {
            assert!(
                !complete.contains(d),
                "the big layer was cut off: {complete:?}"
            );
        }
    }
    assert!(uploaded > BIG / 2, "{v}");
    assert_eq!(raw_manifest(&reg.addr(), &repo, "v1", None).1, digest);

    let k2 = Kiln::new();
    let pulled = json(&ok(&k2, &["pull", "--json", &dest]));
    assert_eq!(pulled["digest"], digest.as_str(), "{pulled}");
    assert_eq!(
        pulled["id"].as_str().unwrap(),
        k.ok(&["inspect", "--format", "{{.Id}}", &image]).trim()
    );
    assert_eq!(run_image(&k2, &dest, &[]).trim(), BIG.to_string());
    ok(&k2, &["check"]);
}

/// e. A blob whose bytes do not match its digest is refused, naming the digest, and
/// leaves no image behind.
#[test]
fn corrupt_blob_is_refused() {
    need_registry_cli();
    let reg = Registry::open();
    let src = kiln_with_busybox();
    seed(&reg, &src, "bb:v1", "e/bb:v1");
    let (raw, _) = raw_manifest(&reg.addr(), "e/bb", "v1", None);
    let (config, layers) = manifest_blobs(&raw);
    let proxy = FaultProxy::new(&reg.addr(), Fault::CorruptBlobs);
    let k = Kiln::new();
    let reference = format!("{}/e/bb:v1", proxy.addr());
    let stderr = fails(&k, &["pull", &reference]);
    assert!(
        std::iter::once(&config)
            .chain(layers.iter().map(|l| &l.0))
            .any(|d| stderr.contains(d.as_str())),
        "the error names the corrupt blob's digest:\n{stderr}"
    );
    assert!(proxy.count("GET", "/blobs/sha256:") >= 1);
    assert_nothing_from(&k, &proxy.addr());
    // The JSON form fails the same way.
    let stderr = fails(&k, &["pull", "--json", &reference]);
    assert!(stderr.contains("sha256:"), "{stderr}");
    assert_nothing_from(&k, &proxy.addr());
}

/// f. A connection dropped mid-blob, and 429 Too Many Requests, are retried: the pull
/// completes and the image runs.
#[test]
fn dropped_connection_and_429_are_retried() {
    need_registry_cli();
    let reg = Registry::open();
    let src = kiln_with_busybox();
    let digest = seed(&reg, &src, "bb:v1", "f/bb:v1");
    for fault in [Fault::DropBlobsOnce, Fault::TooManyRequestsOnce] {
        let proxy = FaultProxy::new(&reg.addr(), fault);
        let k = Kiln::new();
        let reference = format!("{}/f/bb:v1", proxy.addr());
        let v = json(&ok(&k, &["pull", "--json", &reference]));
        assert_eq!(v["digest"], digest.as_str(), "{fault:?}: {v}");
        assert_eq!(run_image(&k, &reference, &[]), HELLO, "{fault:?}");
        ok(&k, &["check"]);
        let requests = proxy.requests();
        match fault {
            Fault::DropBlobsOnce => {
                let layer = &v["layers"][0]["digest"];
                assert!(
                    proxy.count("GET", layer.as_str().unwrap()) >= 2,
                    "{fault:?}: the layer was fetched again: {requests:?}"
                );
            }
            _ => assert!(
                requests.iter().any(|(_, n)| *n >= 2),
                "{fault:?}: some request was retried: {requests:?}"
            ),
        }
    }
}

/// g. Basic auth: refused without credentials (with a hint), wrong password refused,
/// `kiln login` stores Docker's format, push and pull work, `kiln logout` removes them.
#[test]
fn basic_auth_login_push_pull_logout() {
    need_registry_cli();
    let reg = Registry::with_auth("kiln", "s3cret");
    let k = kiln_with_busybox();
    let authdir = k.dir.path().join("auth");
    std::fs::create_dir_all(&authdir).unwrap();
    let authfile = authdir.join("auth.json");
    let af = authfile.to_str().unwrap();
    let addr = reg.addr();
    let dest = format!("{addr}/g/bb:v1");

    let stderr = fails(&k, &["push", "--authfile", af, "bb:v1", &dest]);
    let lower = stderr.to_lowercase();
    assert!(
        lower.contains("401") || lower.contains("unauthorized"),
        "{stderr}"
    );
    assert!(
        stderr
            .lines()
            .any(|l| l.starts_with("hint:") && l.contains("kiln login")),
        "{stderr}"
    );

    let stderr = fails(
        &k,
        &[
            "login",
            "-u",
            "kiln",
            "-p",
            "wrong",
            "--authfile",
            af,
            &addr,
        ],
    );
    let lower = stderr.to_lowercase();
    assert!(
        lower.contains("401") || lower.contains("unauthorized"),
        "{stderr}"
    );
    assert_eq!(authfile_entry(&authfile, &addr), None, "nothing stored");

    let mut login = kiln(&k)
        .args([
            "login",
            "-u",
            "kiln",
            "--password-stdin",
            "--authfile",
            af,
            &addr,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write as _;
        let mut stdin = login.stdin.take().unwrap();
        stdin.write_all(b"s3cret\n").unwrap();
    }
    let out = login.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "login: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Login Succeeded"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(
        authfile_entry(&authfile, &addr).as_deref(),
        Some(base64(b"kiln:s3cret").as_str())
    );

    let v = json(&ok(
        &k,
        &["push", "--json", "--authfile", af, "bb:v1", &dest],
    ));
    let (digest, _, _) = push_report(&v);
    assert_eq!(
        raw_manifest(&addr, "g/bb", "v1", reg.credentials()).1,
        digest
    );

    let k2 = Kiln::new();
    let pulled = json(&ok(&k2, &["pull", "--json", "--authfile", af, &dest]));
    assert_eq!(pulled["digest"], digest.as_str());
    assert_eq!(run_image(&k2, &dest, &[]), HELLO);

    ok(&k, &["logout", "--authfile", af, &addr]);
    assert_eq!(authfile_entry(&authfile, &addr), None, "logout removes it");
    let k3 = Kiln::new();
    let stderr = fails(&k3, &["pull", "--authfile", af, &dest]);
    let lower = stderr.to_lowercase();
    assert!(
        lower.contains("401") || lower.contains("unauthorized"),
        "{stderr}"
    );
    assert!(stderr.contains("kiln login"), "{stderr}");
    assert_nothing_from(&k3, &addr);

    // Without --authfile: $DOCKER_CONFIG/config.json (in this test's temp dir).
    let config = k.dir.path().join("docker-config/config.json");
    let out = ok(&k, &["login", "-u", "kiln", "-p", "s3cret", &addr]);
    assert!(out.contains("Login Succeeded"), "{out}");
    assert_eq!(
        authfile_entry(&config, &addr).as_deref(),
        Some(base64(b"kiln:s3cret").as_str())
    );
    let k4 = Kiln::new();
    let pulled = kiln(&k4)
        .env("DOCKER_CONFIG", config.parent().unwrap())
        .args(["pull", "-q", &dest])
        .output()
        .unwrap();
    assert_success(&pulled);
    ok(&k, &["logout", &addr]);
    assert_eq!(authfile_entry(&config, &addr), None);
}

/// h. Unknown repository, unknown tag and unknown host: clear one-line errors.
#[test]
fn not_found_and_unknown_host() {
    need_registry_cli();
    let reg = Registry::open();
    let src = kiln_with_busybox();
    seed(&reg, &src, "bb:v1", "h/bb:v1");
    let k = Kiln::new();
    let addr = reg.addr();
    for (reference, names) in [
        (format!("{addr}/h/nope:v1"), "h/nope"),
        (format!("{addr}/h/bb:v2"), "v2"),
    ] {
        let stderr = fails(&k, &["pull", &reference]);
        assert!(
            stderr.to_lowercase().contains("not found"),
            "{reference}:\n{stderr}"
        );
        assert!(stderr.contains(names), "{reference}:\n{stderr}");
        for dump in [
            "HTTP/1.1",
            "<html",
            "\"errors\"",
            "MANIFEST_UNKNOWN",
            "NAME_UNKNOWN",
        ] {
            assert!(
                !stderr.contains(dump),
                "{reference}: no HTTP dump:\n{stderr}"
            );
        }
    }
    let stderr = fails(&k, &["pull", "nonexistent.invalid/x:1"]);
    assert!(stderr.contains("nonexistent.invalid"), "{stderr}");
    let stderr = fails(&src, &["push", "bb:v1", "nonexistent.invalid/x:1"]);
    assert!(stderr.contains("nonexistent.invalid"), "{stderr}");
    let stderr = fails(&src, &["push", "nothere:v1", &format!("{addr}/h/x:v1")]);
    assert!(
        stderr.contains("nothere"),
        "a missing local image: {stderr}"
    );
    assert_nothing_from(&k, &addr);
}

/// i. `kiln copy` between a registry, OCI layouts and archives, and Docker's archives.
#[test]
fn copy_between_transports() {
    need_registry_cli();
    let reg = Registry::open();
    let src = kiln_with_busybox();
    let addr = reg.addr();
    let digest = seed(&reg, &src, "bb:v1", "i/x:v1");
    let k = Kiln::new();
    let dir = k.dir.path().join("layout");
    let layout = dir.to_str().unwrap();

    ok(
        &k,
        &[
            "copy",
            &format!("docker://{addr}/i/x:v1"),
            &format!("oci:{layout}:v1"),
        ],
    );
    let si = json(&run(skopeo()
        .arg("inspect")
        .arg(format!("oci:{layout}:v1"))));
    assert_eq!(si["Digest"], digest.as_str(), "copy keeps the manifest");

    ok(
        &k,
        &[
            "copy",
            &format!("oci:{layout}:v1"),
            &format!("docker://{addr}/i/y:v1"),
        ],
    );
    assert_eq!(
        skopeo_inspect(&format!("{addr}/i/y:v1"))["Digest"],
        digest.as_str()
    );

    // Registry -> Docker archive -> docker load, which runs it.
    let name = format!("{}:v1", unique("icopy"));
    let archive = k.dir.path().join("docker.tar");
    ok(
        &k,
        &[
            "copy",
            &format!("docker://{addr}/i/x:v1"),
            &format!("docker-archive:{}:{name}", archive.display()),
        ],
    );
    let loaded = run(docker().args(["load", "-i"]).arg(&archive));
    assert!(loaded.contains(&name), "{loaded}");
    let ran = run(docker().args(["run", "--rm", "--network", "none", &name]));
    run(docker().args(["rmi", &name]));
    assert_eq!(ran, HELLO);

    // Registry -> the local store (bare and kiln: names) -> an OCI archive skopeo reads.
    ok(
        &k,
        &["copy", &format!("docker://{addr}/i/x:v1"), "copied:v1"],
    );
    assert_eq!(run_image(&k, "copied:v1", &[]), HELLO);
    ok(
        &k,
        &["copy", &format!("docker://{addr}/i/y:v1"), "kiln:copied:v2"],
    );
    assert_eq!(
        k.ok(&["inspect", "--format", "{{.Digest}}", "copied:v2"])
            .trim(),
        digest
    );
    let oar = k.dir.path().join("oci.tar");
    ok(
        &k,
        &[
            "copy",
            "copied:v1",
            &format!("oci-archive:{}:z:v1", oar.display()),
        ],
    );
    let si = json(&run(skopeo()
        .arg("inspect")
        .arg(format!("oci-archive:{}:z:v1", oar.display()))));
    assert_eq!(si["Digest"], digest.as_str());
    // And from the archive back into a registry.
    ok(
        &k,
        &[
            "copy",
            &format!("oci-archive:{}:z:v1", oar.display()),
            &format!("docker://{addr}/i/z:v1"),
        ],
    );
    assert_eq!(raw_manifest(&addr, "i/z", "v1", None).1, digest);
    ok(&k, &["check"]);
}

/// j. `kiln push --compression zstd`: zstd layers in an OCI manifest, pulled and run by a
/// fresh store.
#[test]
fn zstd_push_roundtrip() {
    need_registry_cli();
    let reg = Registry::open();
    let k = kiln_with_busybox();
    let dest = format!("{}/j/bb:zstd", reg.addr());
    let v = json(&ok(
        &k,
        &["push", "--json", "--compression", "zstd", "bb:v1", &dest],
    ));
    let (digest, _, _) = push_report(&v);
    let raw = run(skopeo()
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{dest}")));
    let m = json(&raw);
    assert!(
        m["mediaType"].is_null() || m["mediaType"] == "application/vnd.oci.image.manifest.v1+json",
        "zstd layers need an OCI manifest: {raw}"
    );
    let layers = m["layers"].as_array().unwrap();
    assert!(!layers.is_empty());
    for l in layers {
        assert_eq!(
            l["mediaType"], "application/vnd.oci.image.layer.v1.tar+zstd",
            "{raw}"
        );
    }
    // The layer really is zstd: its first bytes are zstd's magic number.
    let layer = layers[0]["digest"].as_str().unwrap();
    let (status, _, blob) = http_get(&reg.addr(), &format!("/v2/j/bb/blobs/{layer}"), None);
    assert_eq!(status, 200);
    assert_eq!(blob[..4], [0x28, 0xb5, 0x2f, 0xfd], "zstd magic");

    let k2 = Kiln::new();
    let pulled = json(&ok(&k2, &["pull", "--json", &dest]));
    assert_eq!(pulled["digest"], digest.as_str());
    assert_eq!(run_image(&k2, &dest, &[]), HELLO);
    ok(&k2, &["check"]);
    // The gzip push of the same image is a different manifest with the same config.
    let gz = json(&ok(
        &k,
        &[
            "push",
            "--json",
            "bb:v1",
            &format!("{}/j/bb:gzip", reg.addr()),
        ],
    ));
    assert_ne!(gz["digest"], digest.as_str());
    let (graw, _) = raw_manifest(&reg.addr(), "j/bb", "gzip", None);
    assert_eq!(
        manifest_blobs(&graw).0,
        m["config"]["digest"].as_str().unwrap()
    );
}

/// `kiln run` pulls an image it does not have (`--pull missing`, the default), and
/// `--pull never` refuses to.
#[test]
fn run_pulls_a_missing_image() {
    need_registry_cli();
    let reg = Registry::open();
    let src = kiln_with_busybox();
    seed(&reg, &src, "bb:v1", "run/bb:v1");
    let reference = format!("{}/run/bb:v1", reg.addr());
    let k = Kiln::new();
    let stderr = fails(
        &k,
        &[
            "run",
            "--rm",
            "--pull",
            "never",
            "--network",
            "none",
            &reference,
        ],
    );
    assert!(stderr.contains("no such image"), "{stderr}");
    assert_eq!(run_image(&k, &reference, &[]), HELLO);
    let images = k.ok(&["images"]);
    assert!(
        images.contains(&format!("{}/run/bb", reg.addr())),
        "{images}"
    );
    // `--pull always` fetches the manifest again and downloads nothing new.
    let out = ok(
        &k,
        &[
            "run",
            "--rm",
            "--pull",
            "always",
            "--network",
            "none",
            &reference,
        ],
    );
    assert_eq!(out, HELLO);
    ok(&k, &["check"]);
}

/// A mirror from the config is tried first: the registry named in the reference is down,
/// the mirror has the image, and the pull works without ever reaching the registry.
#[test]
fn pull_through_a_configured_mirror() {
    need_registry_cli();
    let mirror = Registry::open();
    let src = kiln_with_busybox();
    let digest = seed(&mirror, &src, "bb:v1", "team/bb:v1");
    // A port nothing listens on stands for the registry that is unreachable.
    let down = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let k = Kiln::new();
    let config = k.dir.path().join("kiln.json");
    std::fs::write(
        &config,
        serde_json::json!({
            "registry-mirrors": { format!("127.0.0.1:{down}"): [format!("http://{}", mirror.addr())] }
        })
        .to_string(),
    )
    .unwrap();
    let reference = format!("127.0.0.1:{down}/team/bb:v1");
    let out = kiln(&k)
        .env("KILN_CONFIG", &config)
        .args(["pull", "--json", &reference])
        .output()
        .unwrap();
    assert_success(&out);
    let v = json(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(v["digest"], digest.as_str(), "{v}");
    assert_eq!(run_image(&k, &reference, &[]), HELLO);
    // Without the mirror, the same pull fails naming the registry.
    let stderr = fails(&k, &["pull", &format!("127.0.0.1:{down}/team/bb:v2")]);
    assert!(stderr.contains(&format!("127.0.0.1:{down}")), "{stderr}");
}

/// A blob kiln pulled from one repository is mounted, not uploaded, when pushed to
/// another repository of the same registry.
#[test]
fn push_mounts_blobs_from_another_repository() {
    need_registry_cli();
    let reg = Registry::open();
    let src = kiln_with_busybox();
    let digest = seed(&reg, &src, "bb:v1", "a/bb:v1");
    let k = Kiln::new();
    ok(&k, &["pull", "-q", &format!("{}/a/bb:v1", reg.addr())]);
    let v = json(&ok(
        &k,
        &[
            "push",
            "--json",
            &format!("{}/a/bb:v1", reg.addr()),
            &format!("{}/b/bb:v1", reg.addr()),
        ],
    ));
    let (pushed_digest, blobs, uploaded) = push_report(&v);
    assert_eq!(pushed_digest, digest);
    assert_eq!(uploaded, 0, "{v}");
    assert!(
        blobs.iter().all(|b| b.2 == "mounted"),
        "every blob is mounted from a/bb: {v}"
    );
    assert_eq!(reg.linked_blobs("b/bb"), reg.linked_blobs("a/bb"));
    let k2 = Kiln::new();
    ok(&k2, &["pull", "-q", &format!("{}/b/bb:v1", reg.addr())]);
    assert_eq!(
        run_image(&k2, &format!("{}/b/bb:v1", reg.addr()), &[]),
        HELLO
    );
}

/// `credsStore` in Docker's config: `login` hands the credentials to the
/// `docker-credential-NAME` helper (Docker's protocol on stdin/stdout), pulls and pushes
/// ask it for them, `logout` erases them; config.json itself never holds the secret.
#[test]
fn credential_helper_from_docker_config() {
    use std::os::unix::fs::PermissionsExt;
    need_registry_cli();
    let reg = Registry::with_auth("helper", "h3lp");
    let k = kiln_with_busybox();
    let addr = reg.addr();
    let bin = k.dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let secret_file = k.dir.path().join("helper-store.json");
    // A helper that keeps one credential in a file: the protocol's real extension point.
    let helper = bin.join("docker-credential-kilntest");
    std::fs::write(
        &helper,
        format!(
            "#!/bin/sh\nf='{}'\ncase \"$1\" in\n  get) read server; [ -f \"$f\" ] && cat \"$f\" || {{ echo 'credentials not found in native keychain'; exit 1; }} ;;\n  store) cat > \"$f\" ;;\n  erase) read server; rm -f \"$f\" ;;\nesac\n",
            secret_file.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let config_dir = k.dir.path().join("docker-config");
    std::fs::create_dir_all(&config_dir).unwrap();
    std::fs::write(
        config_dir.join("config.json"),
        r#"{"credsStore":"kilntest"}"#,
    )
    .unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let with_helper = |args: &[&str]| kiln(&k).env("PATH", &path).args(args).output().unwrap();

    let dest = format!("{addr}/h/bb:v1");
    let out = with_helper(&["push", "bb:v1", &dest]);
    assert!(!out.status.success(), "pushed without credentials");
    let out = with_helper(&["login", "-u", "helper", "-p", "h3lp", &addr]);
    assert_success(&out);
    let stored = json(&std::fs::read_to_string(&secret_file).expect("the helper stored them"));
    assert_eq!(stored["Username"], "helper");
    assert_eq!(stored["Secret"], "h3lp");
    assert_eq!(stored["ServerURL"], addr.as_str());
    let config = std::fs::read_to_string(config_dir.join("config.json")).unwrap();
    assert!(
        !config.contains("h3lp") && !config.contains("auths\":{\""),
        "{config}"
    );
    let out = with_helper(&["push", "-q", "bb:v1", &dest]);
    assert_success(&out);
    let out = with_helper(&["logout", &addr]);
    assert_success(&out);
    assert!(!secret_file.exists(), "logout erased them");
    let out = with_helper(&["pull", &dest]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("kiln login"),
        "{stderr}"
    );
}

/// `--chunk-size`: a 6 MB layer goes up in 1 MiB PATCHes with Content-Range (seen by a
/// pass-through proxy), and the registry assembles the same blob.
#[test]
fn chunked_upload_with_chunk_size() {
    need_registry_cli();
    let reg = Registry::open();
    let proxy = FaultProxy::new(&reg.addr(), Fault::None);
    let k = Kiln::new();
    let rootfs = k.dir.path().join("rootfs");
    std::fs::create_dir_all(&rootfs).unwrap();
    // Incompressible bytes, so the gzip layer stays about 6 MB.
    let mut data = vec![0u8; 6_000_000];
    let mut x: u64 = 0x9e3779b97f4a7c15;
    for b in data.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    std::fs::write(rootfs.join("weights.bin"), &data).unwrap();
    k.ok(&["import", rootfs.to_str().unwrap(), "-t", "w:v1"]);
    let dest = format!("{}/chunk/w:v1", proxy.addr());
    let v = json(&ok(
        &k,
        &["push", "--json", "--chunk-size", "1m", "w:v1", &dest],
    ));
    let (digest, blobs, uploaded) = push_report(&v);
    let layer = blobs
        .iter()
        .find(|b| b.1 > 5_000_000)
        .expect("the big layer");
    assert_eq!(layer.2, "pushed", "{v}");
    assert!(uploaded >= layer.1, "{v}");
    let patches = proxy.count("PATCH", "/blobs/uploads/");
    assert!(
        patches >= 6,
        "{patches} PATCH requests for a 6 MB layer in 1 MiB chunks"
    );
    assert_eq!(raw_manifest(&reg.addr(), "chunk/w", "v1", None).1, digest);
    let k2 = Kiln::new();
    ok(&k2, &["pull", "-q", &format!("{}/chunk/w:v1", reg.addr())]);
    let out = exported_weights(&k2, &format!("{}/chunk/w:v1", reg.addr()));
    assert_eq!(out.len(), data.len());
    assert!(out == data, "the layer came back byte for byte");
    let stderr = fails(&k, &["push", "--chunk-size", "10", "w:v1", &dest]);
    assert!(stderr.contains("--chunk-size"), "{stderr}");
}

/// `kiln export` of the pulled image's weights file, as bytes.
fn exported_weights(k: &Kiln, image: &str) -> Vec<u8> {
    let tar = k.dir.path().join("export.tar");
    ok(k, &["export", image, "-o", tar.to_str().unwrap()]);
    let mut archive = tar::Archive::new(std::fs::File::open(&tar).unwrap());
    for e in archive.entries().unwrap() {
        let mut e = e.unwrap();
        if e.path().unwrap().ends_with("weights.bin") {
            let mut v = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut v).unwrap();
            return v;
        }
    }
    panic!("weights.bin is not in the image");
}
