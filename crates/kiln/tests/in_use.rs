//! The store never deletes what is in use: containers (running or stopped) are GC roots,
//! running builds, pulls and loads hold what they write and read, a SIGKILLed kiln pins
//! nothing for ever, and a full disk leaves no partial image.

mod common;
use common::registry::*;
use common::*;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn output(k: &Kiln, args: &[&str]) -> Output {
    k.cmd()
        .env("DOCKER_CONFIG", k.dir.path().join("docker-config"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn spawn(k: &Kiln, args: &[&str]) -> Child {
    k.cmd()
        .env("DOCKER_CONFIG", k.dir.path().join("docker-config"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn context(k: &Kiln, label: &str, dockerfile: &str) -> PathBuf {
    let ctx = k.dir.path().join(label);
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("Dockerfile"), dockerfile).unwrap();
    ctx
}

/// Names in a store directory (`tmp`, `leases`, `containers`), sorted.
fn entries(k: &Kiln, dir: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(k.root().join(dir))
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// The store is whole: `kiln check` passes and every tagged image starts.
fn store_is_whole(k: &Kiln) {
    k.ok(&["check"]);
    let images = json(&k.ok(&["images", "--json"]));
    for img in images.as_array().unwrap() {
        let Some(name) = img["Names"][0].as_str() else {
            continue;
        };
        let out = output(k, &["run", "--rm", "--network", "none", name, "true"]);
        assert!(
            out.status.success(),
            "{name} does not run: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The review's first reproduction: `rmi` then `prune` under a running container.
#[test]
fn a_container_keeps_its_image_through_rmi_and_prune() {
    let k = kiln_with_busybox();
    k.ok(&[
        "run",
        "-d",
        "--name",
        "c1",
        "--network",
        "none",
        "bb:v1",
        "sleep",
        "300",
    ]);
    let (code, stderr) = k.fails(&["rmi", "bb:v1"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("in use by container c1"), "{stderr}");
    assert!(
        stderr.contains("hint: remove those containers first"),
        "{stderr}"
    );
    // Refused by ID too, and nothing was untagged.
    let id = k.ok(&["inspect", "bb:v1", "--format", "{{.Digest}}"]);
    k.fails(&["rmi", id.trim()]);
    assert!(k.ok(&["images"]).contains("bb"));

    let untagged = k.ok(&["rmi", "--force", "bb:v1"]);
    assert!(untagged.contains("Untagged: bb:v1"), "{untagged}");
    assert!(!untagged.contains("Deleted"), "{untagged}");
    let report = json(&k.ok(&["prune", "--json"]));
    assert_eq!(report["blobs"], 0, "{report}");
    assert_eq!(report["snapshots"], 0, "{report}");
    let kept = report["kept"].as_array().unwrap();
    assert_eq!(kept.len(), 4, "manifest, config, layer, snapshot: {report}");
    assert!(
        kept.iter().all(|k| k["users"][0] == "container c1"),
        "{report}"
    );

    // Every kiln that ran has ended its lease: only the container's root holds.
    assert!(
        entries(&k, "leases").is_empty(),
        "{:?}",
        entries(&k, "leases")
    );
    // The container still has every file, and still answers.
    assert_eq!(
        k.ok(&["exec", "c1", "cat", "/etc/hello.txt"]),
        "hello from kiln\n"
    );
    assert!(k.ok(&["exec", "c1", "ls", "/bin"]).contains("busybox"));
    // Stopped, it still holds its image.
    k.ok(&["stop", "-t", "1", "c1"]);
    let report = json(&k.ok(&["prune", "--json"]));
    assert_eq!(report["blobs"], 0, "{report}");
    assert!(!k.ok(&["commit", "c1", "back:v1"]).is_empty());
    // Removed, it lets go.
    k.ok(&["rm", "c1"]);
    k.ok(&["rmi", "back:v1"]);
    let report = json(&k.ok(&["prune", "--json"]));
    assert!(report["blobs"].as_u64().unwrap() >= 3, "{report}");
    assert_eq!(report["snapshots"], 1, "{report}");
    k.ok(&["check"]);
}

/// The review's second reproduction: prune while a build writes its layers.
#[test]
fn prune_during_a_build_keeps_its_layers() {
    let k = kiln_with_busybox();
    let ctx = context(
        &k,
        "ctx",
        "FROM bb:v1\n\
         RUN head -c 20000000 /dev/urandom > /big\n\
         RUN sleep 2\n\
         RUN wc -c < /big > /size\n\
         CMD [\"cat\", \"/size\"]\n",
    );
    let mut build = spawn(
        &k,
        &[
            "build",
            "--no-cache",
            "--network",
            "none",
            "-t",
            "x:3",
            ctx.to_str().unwrap(),
        ],
    );
    let mut prunes = 0;
    let status = loop {
        if let Some(s) = build.try_wait().unwrap() {
            break s;
        }
        k.ok(&["prune"]);
        prunes += 1;
        std::thread::sleep(Duration::from_millis(100));
    };
    let out = build.wait_with_output().unwrap();
    assert!(
        status.success(),
        "the build failed beside prune:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(prunes > 5, "prune ran {prunes} times only");
    assert_eq!(
        k.ok(&["run", "--rm", "--network", "none", "x:3"]).trim(),
        "20000000"
    );
    k.ok(&["prune"]);
    store_is_whole(&k);
}

/// Four loops at once on one store, for a bounded time: builds, pulls from a local
/// registry, `run --rm`, and prune + rmi of the images the others make. Every command of
/// the first three succeeds, a long-running container loses nothing, and the store is
/// whole afterwards.
#[test]
fn build_pull_run_and_prune_at_once() {
    let reg = Registry::open();
    let k = kiln_with_busybox();
    let remote = format!("{}/stress/bb:v1", reg.addr());
    k.ok(&["push", "bb:v1", &remote]);
    k.ok(&["tag", "bb:v1", "base:v1"]);
    k.ok(&[
        "run",
        "-d",
        "--name",
        "long",
        "--network",
        "none",
        "bb:v1",
        "sleep",
        "300",
    ]);
    let deadline = Instant::now() + Duration::from_secs(25);
    let ctx = context(
        &k,
        "ctx",
        "FROM base:v1\nARG N\nRUN echo $N > /n && head -c 2000000 /dev/urandom > /r\nCMD [\"cat\", \"/n\"]\n",
    );
    std::thread::scope(|s| {
        let k = &k;
        let builds = s.spawn(|| {
            let mut n = 0;
            while Instant::now() < deadline {
                n += 1;
                let out = output(
                    k,
                    &[
                        "build",
                        "--network",
                        "none",
                        "--build-arg",
                        &format!("N={n}"),
                        "-t",
                        &format!("app:{n}"),
                        ctx.to_str().unwrap(),
                    ],
                );
                assert!(
                    out.status.success(),
                    "build {n}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                let shown = output(
                    k,
                    &["run", "--rm", "--network", "none", &format!("app:{n}")],
                );
                // The prune loop may have removed the tag already: then it is gone whole.
                if shown.status.success() {
                    assert_eq!(String::from_utf8_lossy(&shown.stdout).trim(), n.to_string());
                } else {
                    let e = String::from_utf8_lossy(&shown.stderr);
                    assert!(
                        e.contains("no such image") || e.contains("unable to find image"),
                        "{e}"
                    );
                }
            }
            n
        });
        let pulls = s.spawn(|| {
            let mut n = 0;
            while Instant::now() < deadline {
                n += 1;
                let out = output(k, &["pull", "-q", &remote]);
                assert!(
                    out.status.success(),
                    "pull {n}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            n
        });
        let runs = s.spawn(|| {
            let mut n = 0;
            while Instant::now() < deadline {
                n += 1;
                let out = output(
                    k,
                    &[
                        "run",
                        "--rm",
                        "--network",
                        "none",
                        "bb:v1",
                        "cat",
                        "/etc/hello.txt",
                    ],
                );
                assert_eq!(
                    String::from_utf8_lossy(&out.stdout),
                    "hello from kiln\n",
                    "run {n}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            n
        });
        let prunes = s.spawn(|| {
            let mut n = 0;
            while Instant::now() < deadline {
                n += 1;
                // Older builds and the pulled image go; their content may be in use.
                let images = json(&k.ok(&["images", "--json"]));
                for name in images
                    .as_array()
                    .unwrap()
                    .iter()
                    .flat_map(|i| i["Names"].as_array().unwrap())
                    .filter_map(|n| n.as_str())
                {
                    if name.starts_with("app:") || name.contains("stress/bb") {
                        let _ = output(k, &["rmi", name]);
                    }
                }
                let out = output(k, &["prune"]);
                assert_success(&out);
                std::thread::sleep(Duration::from_millis(200));
            }
            n
        });
        let counts = [builds, pulls, runs, prunes].map(|h| h.join().unwrap());
        eprintln!("builds, pulls, runs, prunes: {counts:?}");
        assert!(counts.iter().all(|c| *c >= 2), "{counts:?}");
    });
    assert!(k.ok(&["exec", "long", "ls", "/bin"]).contains("busybox"));
    assert_eq!(
        k.ok(&["exec", "long", "cat", "/etc/hello.txt"]),
        "hello from kiln\n"
    );
    k.ok(&["rm", "-f", "long"]);
    store_is_whole(&k);
}

/// A directory of `mb` MiB of random bytes (an image nothing compresses).
fn random_rootfs(dir: &Path, mb: usize) -> PathBuf {
    let root = dir.join(format!("rootfs-{mb}"));
    std::fs::create_dir_all(root.join("data")).unwrap();
    // A busybox userland, so that the image runs.
    assert!(Command::new("cp")
        .arg("-a")
        .arg(busybox_rootfs().join("bin"))
        .arg(&root)
        .status()
        .unwrap()
        .success());
    let mut f = std::fs::File::open("/dev/urandom").unwrap();
    for i in 0..mb {
        let mut buf = vec![0u8; 1 << 20];
        std::io::Read::read_exact(&mut f, &mut buf).unwrap();
        std::fs::write(root.join(format!("data/{i}")), buf).unwrap();
    }
    root
}

/// After a SIGKILL, prune reclaims what the killed process left, and nothing that an
/// image or a container uses is gone.
fn after_kill(k: &Kiln, what: &str) {
    let report = json(&k.ok(&["prune", "--json"]));
    assert!(
        entries(k, "tmp").is_empty(),
        "{what}: tmp/ keeps {:?}",
        entries(k, "tmp")
    );
    assert!(
        entries(k, "leases").is_empty(),
        "{what}: leases of dead processes kept: {:?} ({report})",
        entries(k, "leases")
    );
    let builds: Vec<_> = entries(k, "containers")
        .into_iter()
        .filter(|c| c.starts_with("build-"))
        .collect();
    assert!(builds.is_empty(), "{what}: {builds:?}");
    store_is_whole(k);
    assert_eq!(
        k.ok(&["exec", "keep", "cat", "/etc/hello.txt"]),
        "hello from kiln\n",
        "{what}"
    );
}

#[test]
fn sigkill_during_build_pull_and_load_leaves_nothing_pinned() {
    let reg = Registry::open();
    let k = kiln_with_busybox();
    k.ok(&[
        "run",
        "-d",
        "--name",
        "keep",
        "--network",
        "none",
        "bb:v1",
        "sleep",
        "300",
    ]);
    // A 48 MiB image on the registry and in an archive, made in another store.
    let other = Kiln::new();
    let rootfs = random_rootfs(other.dir.path(), 48);
    other.ok(&["import", rootfs.to_str().unwrap(), "-t", "big:v1"]);
    let remote = format!("{}/kill/big:v1", reg.addr());
    other.ok(&["push", "big:v1", &remote]);
    let archive = other.dir.path().join("big.tar");
    other.ok(&["save", "big:v1", "-o", archive.to_str().unwrap()]);
    let ctx = context(
        &k,
        "ctx",
        "FROM bb:v1\nRUN head -c 30000000 /dev/urandom > /a\nRUN head -c 30000000 /dev/urandom > /b\n",
    );
    let cases: [(&str, Vec<&str>); 3] = [
        (
            "build",
            vec![
                "build",
                "--no-cache",
                "--network",
                "none",
                "-t",
                "k:1",
                ctx.to_str().unwrap(),
            ],
        ),
        ("pull", vec!["pull", "-q", &remote]),
        ("load", vec!["load", "-q", "-i", archive.to_str().unwrap()]),
    ];
    for (what, args) in &cases {
        for delay_ms in [150u64, 400, 900, 1600] {
            let mut child = spawn(&k, args);
            std::thread::sleep(Duration::from_millis(delay_ms));
            let _ = child.kill();
            let _ = child.wait();
            after_kill(&k, &format!("{what} killed after {delay_ms} ms"));
            // Whatever finished before the kill is a whole image; drop it for the next try.
            let _ = output(&k, &["rmi", "k:1"]);
            let _ = output(&k, &["rmi", &remote]);
            let _ = output(&k, &["rmi", "big:v1"]);
        }
    }
    k.ok(&["rm", "-f", "keep"]);
}

/// A store on a small tmpfs.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn new(size: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(st.success(), "cannot mount a tmpfs (the tests run as root)");
        Self { dir }
    }

    fn kiln(&self) -> Kiln {
        // The store on the tmpfs, the rest of the Kiln's files beside it.
        let k = Kiln::new();
        std::os::unix::fs::symlink(self.dir.path(), k.root()).unwrap();
        k
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// A failure from a full disk: a clear error with the hint, no image, nothing in tmp/,
/// and a store that passes `kiln check`.
fn full_disk_failure(k: &Kiln, args: &[&str], images_before: usize) {
    let out = output(k, args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{args:?} succeeded on a full disk");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        stderr.contains("No space left on device"),
        "{args:?}: {stderr}"
    );
    assert!(
        stderr.contains("hint: the file system holding the store is full"),
        "{args:?}: {stderr}"
    );
    assert!(
        entries(k, "tmp").is_empty(),
        "{args:?}: tmp/ keeps {:?}",
        entries(k, "tmp")
    );
    let images = json(&k.ok(&["images", "--json"]));
    assert_eq!(
        images.as_array().unwrap().len(),
        images_before,
        "{args:?}: {images}"
    );
    k.ok(&["check"]);
}

#[test]
fn a_full_disk_leaves_no_partial_image() {
    let reg = Registry::open();
    let other = Kiln::new();
    let rootfs = random_rootfs(other.dir.path(), 24);
    other.ok(&["import", rootfs.to_str().unwrap(), "-t", "big:v1"]);
    let remote = format!("{}/full/big:v1", reg.addr());
    other.ok(&["push", "big:v1", &remote]);
    let archive = other.dir.path().join("big.tar");
    other.ok(&["save", "big:v1", "-o", archive.to_str().unwrap()]);

    let disk = SmallDisk::new("12m");
    let k = disk.kiln();
    k.ok(&["import", busybox_rootfs().to_str().unwrap(), "-t", "bb:v1"]);
    full_disk_failure(&k, &["load", "-q", "-i", archive.to_str().unwrap()], 1);
    full_disk_failure(&k, &["pull", "-q", &remote], 1);
    full_disk_failure(&k, &["import", rootfs.to_str().unwrap(), "-t", "imp:v1"], 1);
    let ctx = context(&k, "ctx", "FROM bb:v1\nCOPY data /data\n");
    std::fs::create_dir_all(ctx.join("data")).unwrap();
    for i in 0..12 {
        std::fs::copy(
            rootfs.join(format!("data/{i}")),
            ctx.join(format!("data/{i}")),
        )
        .unwrap();
    }
    full_disk_failure(
        &k,
        &[
            "build",
            "--network",
            "none",
            "-t",
            "b:v1",
            ctx.to_str().unwrap(),
        ],
        1,
    );
    let built: Vec<_> = entries(&k, "containers");
    assert!(built.is_empty(), "{built:?}");
    // commit: the container's 6 MB fit, the layer made of them does not.
    k.ok(&[
        "run",
        "--name",
        "w",
        "--network",
        "none",
        "bb:v1",
        "sh",
        "-c",
        "head -c 6000000 /dev/urandom > /f",
    ]);
    full_disk_failure(&k, &["commit", "w", "c:v1"], 1);
    k.ok(&["rm", "w"]);
    full_disk_failure(
        &k,
        &["base", "debian", "--suite", "bookworm", "-t", "deb:v1"],
        1,
    );
    k.ok(&["prune"]);
    store_is_whole(&k);
}

/// Two builds of one context at once, with no cache: both finish, and both images run.
#[test]
fn two_builds_of_one_context_at_once() {
    let k = kiln_with_busybox();
    let ctx = context(
        &k,
        "ctx",
        "FROM bb:v1\nCOPY Dockerfile /df\nRUN head -c 3000000 /dev/urandom > /r && sleep 1\nRUN wc -c < /r > /size\nCMD [\"cat\", \"/size\"]\n",
    );
    let builds: Vec<Child> = ["one:v1", "two:v1"]
        .iter()
        .map(|tag| {
            spawn(
                &k,
                &[
                    "build",
                    "--no-cache",
                    "--network",
                    "none",
                    "-t",
                    tag,
                    ctx.to_str().unwrap(),
                ],
            )
        })
        .collect();
    for b in builds {
        let out = b.wait_with_output().unwrap();
        assert_success(&out);
    }
    for tag in ["one:v1", "two:v1"] {
        assert_eq!(
            k.ok(&["run", "--rm", "--network", "none", tag]).trim(),
            "3000000"
        );
    }
    store_is_whole(&k);
}
