//! `kiln run` against the issue's checklist: secure defaults, limits, exit codes, images
//! from Docker and Podman, and bad input leaving nothing behind. Needs root, as the
//! runtime does (CI runs as root).

mod common;
use common::*;
use std::process::Command;

/// Runs `kiln run ARGS`, returning (exit code, stdout, stderr).
fn run_in(k: &Kiln, args: &[&str]) -> (i32, String, String) {
    let out = k.cmd().arg("run").args(args).output().expect("run kiln");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "{stderr}");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr,
    )
}

#[test]
fn default_container_is_confined() {
    let k = kiln_with_busybox();
    let script = r#"
        echo pid=$$
        echo procs=$(ls /proc | grep -c '^[0-9]')
        grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status
        echo kcore=$(cat /proc/kcore 2>/dev/null | wc -c)
        mount -t tmpfs none /mnt 2>/dev/null && echo mount=ok || echo mount=refused
        (echo x > /proc/sys/kernel/domainname) 2>/dev/null && echo procsys=written || echo procsys=refused
        echo hostname=$(cat /etc/hostname)
        echo lo=$(cat /sys/class/net/lo/operstate) ifaces=$(ls /sys/class/net | tr '\n' ' ')
    "#;
    let (code, out, err) = run_in(&k, &["--rm", "bb:v1", "sh", "-c", script]);
    assert_eq!(code, 0, "{err}");
    let field = |name: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or_else(|| panic!("no {name} in:\n{out}"))
            .trim()
            .to_string()
    };
    assert_eq!(field("pid="), "1", "the command is PID 1");
    // sh, its subshell, ls and grep at most: no host process is visible.
    assert!(field("procs=").parse::<u32>().unwrap() <= 4, "{out}");
    // Docker's 14 default capabilities: CHOWN DAC_OVERRIDE FOWNER FSETID KILL SETGID
    // SETUID SETPCAP NET_BIND_SERVICE NET_RAW SYS_CHROOT MKNOD AUDIT_WRITE SETFCAP.
    let docker_default: u64 = [0, 1, 3, 4, 5, 6, 7, 8, 10, 13, 18, 27, 29, 31]
        .iter()
        .map(|b| 1u64 << b)
        .sum();
    for cap in ["CapEff:", "CapBnd:"] {
        let v = u64::from_str_radix(&field(cap), 16).unwrap();
        assert_eq!(
            v & !docker_default,
            0,
            "{cap} {v:x} exceeds Docker's default set"
        );
    }
    assert_eq!(field("NoNewPrivs:"), "1");
    assert_eq!(field("Seccomp:"), "2");
    assert_eq!(field("kcore="), "0");
    assert_eq!(field("mount="), "refused");
    assert_eq!(field("procsys="), "refused");
    assert_eq!(field("hostname=").len(), 12);
    // A network namespace of its own, loopback up (plus pasta's interface by default).
    assert!(field("lo=").starts_with("unknown ifaces="), "{out}");
    let (code, out, err) = run_in(
        &k,
        &[
            "--rm",
            "--network",
            "none",
            "bb:v1",
            "sh",
            "-c",
            "echo $(cat /sys/class/net/lo/operstate) $(ls /sys/class/net)",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out, "unknown lo\n",
        "`--network none`: loopback only, and up"
    );
    k.assert_nothing_left();
}

#[test]
fn limits_are_enforced() {
    let k = kiln_with_busybox();
    // 100 MB in a shell variable under a 32 MB limit: the OOM killer ends it.
    let (code, out, _) = run_in(
        &k,
        &[
            "--rm",
            "--memory",
            "32m",
            "bb:v1",
            "sh",
            "-c",
            "x=$(head -c 100000000 /dev/zero | tr '\\0' a); echo survived ${#x}",
        ],
    );
    assert_eq!(code, 137, "{out}");
    // A fork loop stops at the pids limit.
    let (code, _, err) = run_in(
        &k,
        &[
            "--rm",
            "--pids-limit",
            "8",
            "bb:v1",
            "sh",
            "-c",
            "for i in $(seq 1 40); do sleep 3 & done; wait",
        ],
    );
    assert_ne!(code, 0);
    assert!(
        err.contains("can't fork") || err.contains("Resource temporarily unavailable"),
        "{err}"
    );
    // Writes refused: --read-only root, and a read-only volume.
    let (code, _, err) = run_in(
        &k,
        &["--rm", "--read-only", "bb:v1", "sh", "-c", "echo x > /x"],
    );
    assert_ne!(code, 0);
    assert!(err.contains("Read-only file system"), "{err}");
    let vol = tempfile::tempdir().unwrap();
    let spec = format!("{}:/data:ro", vol.path().display());
    let (code, _, err) = run_in(
        &k,
        &["--rm", "-v", &spec, "bb:v1", "sh", "-c", "echo x > /data/x"],
    );
    assert_ne!(code, 0);
    assert!(err.contains("Read-only file system"), "{err}");
    assert!(!vol.path().join("x").exists());
    // A writable volume is written through.
    let spec = format!("{}:/data", vol.path().display());
    let (code, _, err) = run_in(
        &k,
        &[
            "--rm",
            "-v",
            &spec,
            "bb:v1",
            "sh",
            "-c",
            "echo hi > /data/x",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        std::fs::read_to_string(vol.path().join("x")).unwrap(),
        "hi\n"
    );
    k.assert_nothing_left();
}

#[test]
fn a_relative_root_works() {
    let k = kiln_with_busybox();
    let out = k
        .cmd()
        .env_remove("KILN_ROOT")
        .current_dir(k.dir.path())
        .args([
            "--root",
            "store",
            "run",
            "--rm",
            "bb:v1",
            "cat",
            "/etc/hello.txt",
        ])
        .output()
        .unwrap();
    assert_success(&out);
    assert!(!String::from_utf8_lossy(&out.stdout).is_empty());
}

#[test]
fn exit_codes_env_user_and_workdir() {
    let k = kiln_with_busybox();
    let (code, out, _) = run_in(&k, &["--rm", "bb:v1"]);
    assert_eq!((code, out.as_str()), (0, "hello from kiln\n"));
    assert_eq!(run_in(&k, &["--rm", "bb:v1", "sh", "-c", "exit 3"]).0, 3);
    let (code, _, err) = run_in(&k, &["--rm", "bb:v1", "nosuchcommand"]);
    assert_eq!(code, 127);
    assert!(err.contains("executable file not found"), "{err}");
    let (code, _, err) = run_in(&k, &["--rm", "bb:v1", "/etc/hello.txt"]);
    assert_eq!(code, 126, "{err}");
    let (code, out, err) = run_in(
        &k,
        &[
            "--rm",
            "-e",
            "A=1",
            "-e",
            "B=two words",
            "-w",
            "/etc",
            "-u",
            "1000:1000",
            "bb:v1",
            "sh",
            "-c",
            "echo $A/$B/$(pwd)/$(id -u):$(id -g)/$PATH",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        "1/two words//etc/1000:1000//usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n"
    );
    let (code, out, _) = run_in(&k, &["--rm", "--entrypoint", "echo", "bb:v1", "a", "b"]);
    assert_eq!((code, out.as_str()), (0, "a b\n"));
    k.assert_nothing_left();
}

#[test]
fn bad_input_is_refused_and_leaves_nothing() {
    let k = kiln_with_busybox();
    for (args, needle) in [
        (
            vec!["--rm", "--pull", "never", "nosuch:v1", "true"],
            "no such image: nosuch:v1",
        ),
        (
            vec!["--rm", "-v", "relative", "bb:v1", "true"],
            "invalid volume specification `relative`",
        ),
        (
            vec!["--rm", "-v", "/nonexistent-kiln-path:/x", "bb:v1", "true"],
            "does not exist",
        ),
        (
            vec!["--rm", "-u", "nobody", "bb:v1", "true"],
            "unable to find user nobody",
        ),
        (
            vec!["--rm", "--memory", "lots", "bb:v1", "true"],
            "invalid size `lots`",
        ),
        (
            vec!["--rm", "--network", "bridge0", "bb:v1", "true"],
            "unknown network",
        ),
    ] {
        let (code, _, err) = run_in(&k, &args);
        assert_eq!(code, 125, "{args:?}: {err}");
        assert!(
            err.starts_with("error: ") && err.contains(needle),
            "{args:?}: {err}"
        );
    }
    // A name in use.
    run_in(&k, &["--name", "taken", "bb:v1", "true"]);
    let (code, _, err) = run_in(&k, &["--name", "taken", "bb:v1", "true"]);
    assert_eq!(code, 125);
    assert!(err.contains("already in use"), "{err}");
    std::fs::remove_dir_all(k.root().join("containers")).unwrap();
    k.assert_nothing_left();
}

/// Images built by Docker and Podman, moved through `kiln load`, give the same stdout and
/// exit code under kiln as under `docker run`.
#[test]
fn docker_and_podman_images_run_the_same() {
    let k = Kiln::new();
    let (base, app) = docker_build_on_busybox(
        k.dir.path(),
        "r",
        "ENV GREETING=hi\nWORKDIR /work\nRUN echo data > /work/file\nCMD [\"sh\", \"-c\", \"echo $GREETING from $(pwd): $(cat file); exit 7\"]\n",
    );
    let out = docker()
        .args(["run", "--rm", "--network", "none", &format!("{app}:v1")])
        .output()
        .unwrap();
    let saved = k.dir.path().join("d.tar");
    run(docker()
        .args(["save", "-o"])
        .arg(&saved)
        .arg(format!("{app}:v1")));
    run(docker().args(["rmi", &format!("{app}:v1"), &format!("{base}:v1")]));
    k.ok(&["load", "-i", saved.to_str().unwrap()]);
    let (code, stdout, _) = run_in(&k, &["--rm", &format!("{app}:v1")]);
    assert_eq!(code, out.status.code().unwrap());
    assert_eq!(code, 7);
    assert_eq!(stdout, String::from_utf8_lossy(&out.stdout));
    assert_eq!(stdout, "hi from /work: data\n");

    let name = format!("localhost/{}:v1", unique("rpod"));
    run(podman()
        .args(["import", "--change", "CMD [\"cat\", \"/etc/hello.txt\"]"])
        .arg(busybox_tar())
        .arg(&name));
    let p = k.dir.path().join("p.tar");
    run(podman()
        .args(["save", "--format", "oci-archive", "-o"])
        .arg(&p)
        .arg(&name));
    let pout = run(podman().args(PODMAN_RUN).arg(&name));
    run(podman().args(["rmi", &name]));
    k.ok(&["load", "-i", p.to_str().unwrap()]);
    let (code, stdout, _) = run_in(&k, &["--rm", &name]);
    assert_eq!((code, stdout), (0, pout));
    k.assert_nothing_left();
}

/// SIGKILL of kiln mid-run, then `kiln rm -f`: nothing left mounted, no stray cgroup, no
/// stray process.
#[test]
fn sigkill_of_kiln_then_rm_leaves_nothing() {
    let k = kiln_with_busybox();
    let mut child = k
        .cmd()
        .args(["run", "--name", "victim", "bb:v1", "sleep", "31"])
        .spawn()
        .unwrap();
    // Wait until the container process runs.
    let mut record = serde_json::Value::Null;
    for _ in 0..100 {
        std::thread::sleep(std::time::Duration::from_millis(50));
        let v = json(&k.ok(&["ps", "--json"]));
        if let Some(r) = v.as_array().and_then(|a| a.first()) {
            record = r.clone();
            break;
        }
    }
    assert_eq!(
        record["Name"], "victim",
        "the container never showed up as running"
    );
    let _ = child.kill();
    let _ = child.wait();
    let pid = record["Pid"].as_i64().unwrap();
    let id = record["Id"].as_str().unwrap().to_string();
    assert!(
        std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "the container outlives kiln until removed"
    );
    let ps = json(&k.ok(&["ps", "--json"]));
    assert_eq!(ps[0]["State"], "running", "{ps}");
    assert_eq!(k.ok(&["rm", "-f", "victim"]).trim(), "victim");
    std::thread::sleep(std::time::Duration::from_millis(200));
    // Gone, or a zombie waiting for the host's init to reap it (kiln, its parent, is dead).
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    assert!(
        stat.is_empty()
            || stat
                .rsplit_once(')')
                .unwrap()
                .1
                .trim_start()
                .starts_with('Z'),
        "process {pid} survived `kiln rm -f`: {stat}"
    );
    let ps = run(Command::new("ps").args(["-eo", "stat=,args="]));
    assert!(
        !ps.lines()
            .any(|l| l.ends_with(" sleep 31") && !l.starts_with('Z')),
        "{ps}"
    );
    for entry in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        let cg = entry.path().join("kiln").join(&id);
        assert!(!cg.exists(), "cgroup {} left behind", cg.display());
    }
    k.assert_nothing_left();
    assert!(k.ok(&["ps", "-a", "-q"]).is_empty());
}

/// Signals reach the container: SIGTERM to kiln is forwarded (the trap's exit code comes
/// back), and a container killed by a signal exits 128+N, as under Docker.
#[test]
fn signals_are_forwarded_and_reported() {
    let k = kiln_with_busybox();
    let mut child = k
        .cmd()
        .args([
            "run",
            "--rm",
            "--name",
            "trap",
            "bb:v1",
            "sh",
            "-c",
            "trap 'exit 42' TERM; echo ready; while :; do sleep 0.1; done",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
    assert_eq!(line, "ready\n");
    run(Command::new("kill").args(["-TERM", &child.id().to_string()]));
    assert_eq!(child.wait().unwrap().code(), Some(42));

    let mut sleeper = k
        .cmd()
        .args(["run", "--rm", "--name", "sleeper", "bb:v1", "sleep", "30"])
        .spawn()
        .unwrap();
    let mut pid = None;
    for _ in 0..100 {
        std::thread::sleep(std::time::Duration::from_millis(50));
        let v = json(&k.ok(&["ps", "--json"]));
        if let Some(p) = v
            .as_array()
            .and_then(|a| a.first())
            .and_then(|r| r["Pid"].as_i64())
        {
            pid = Some(p);
            break;
        }
    }
    let pid = pid.expect("the container never ran");
    run(Command::new("kill").args(["-KILL", &pid.to_string()]));
    assert_eq!(sleeper.wait().unwrap().code(), Some(137));
    k.assert_nothing_left();
}

/// `-d`, then `ps`, `logs`, `exec`, `kill`, `stop` (a container that ignores SIGTERM is
/// killed after `-t`), `wait` and `rm`, each from another kiln process.
#[test]
fn detached_lifecycle() {
    let k = kiln_with_busybox();
    let started = std::time::Instant::now();
    let out = k.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "bb:v1",
        "sh",
        "-c",
        "echo started; echo oops >&2; trap '' TERM; while :; do sleep 0.2; done",
    ]);
    let id = out.trim().to_string();
    assert_eq!(id.len(), 64, "{out}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "-d returns at once"
    );
    let ps = k.ok(&["ps"]);
    assert!(ps.contains("web") && ps.contains("Up"), "{ps}");
    let mut logs = (String::new(), String::new());
    for _ in 0..100 {
        let out = k.cmd().args(["logs", "web"]).output().unwrap();
        logs = (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        );
        if logs.0.contains("started") && logs.1.contains("oops") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(logs.0, "started\n");
    assert_eq!(logs.1, "oops\n");
    let log_file =
        std::fs::read_to_string(k.root().join("containers").join(&id).join("container.log"))
            .unwrap();
    // Docker's json-file records; the two streams are pumped concurrently, in any order.
    let records: Vec<serde_json::Value> = log_file.lines().map(json).collect();
    let out_rec = records
        .iter()
        .find(|r| r["stream"] == "stdout")
        .expect("a stdout record");
    assert_eq!(out_rec["log"], "started\n");
    assert!(out_rec["time"].as_str().unwrap().ends_with('Z'));
    // exec joins the container: it sees the container's PID 1 and its files.
    let out = k.ok(&[
        "exec",
        "web",
        "sh",
        "-c",
        "cat /proc/1/cmdline | tr '\\0' ' '; echo; cat /etc/hello.txt",
    ]);
    assert!(out.starts_with("sh -c echo started"), "{out}");
    assert!(out.ends_with("hello from kiln\n"), "{out}");
    let (code, _, _) = run_in_exec(&k, &["web", "sh", "-c", "exit 4"]);
    assert_eq!(code, 4);
    // --user takes names from the container's /etc/passwd and /etc/group.
    k.ok(&[
        "exec",
        "web",
        "sh",
        "-c",
        "echo 'app:x:1234:4321::/home/app:/bin/sh' >> /etc/passwd; echo 'app:x:4321:' >> /etc/group",
    ]);
    let out = k.ok(&[
        "exec",
        "-u",
        "app",
        "web",
        "sh",
        "-c",
        "echo $(cat /proc/self/status | grep -E '^(Uid|Gid)' | tr -s '\t' ' ')",
    ]);
    assert!(
        out.contains("Uid: 1234 1234") && out.contains("Gid: 4321 4321"),
        "{out}"
    );
    let (code, _, err) = run_in_exec(&k, &["-u", "nosuchuser", "web", "true"]);
    assert_ne!(code, 0);
    assert!(err.contains("nosuchuser"), "{err}");
    // The container ignores SIGTERM: stop waits -t, then kills.
    let t = std::time::Instant::now();
    assert_eq!(k.ok(&["stop", "-t", "1", "web"]).trim(), "web");
    let took = t.elapsed();
    assert!(
        took >= std::time::Duration::from_secs(1) && took < std::time::Duration::from_secs(8),
        "{took:?}"
    );
    assert_eq!(k.ok(&["wait", "web"]).trim(), "137");
    assert!(k.ok(&["ps", "-a"]).contains("Exited (137)"));
    assert!(
        k.ok(&["ps"]).lines().count() == 1,
        "only the header: nothing runs"
    );
    let (code, err) = k.fails(&["exec", "web", "true"]);
    assert_eq!(code, 1);
    assert!(err.contains("not running"), "{err}");
    assert_eq!(k.ok(&["rm", "web"]).trim(), "web");

    // kill -s delivers the signal; the trap's exit code is recorded.
    k.ok(&[
        "run",
        "-d",
        "--rm",
        "--name",
        "k2",
        "bb:v1",
        "sh",
        "-c",
        "trap 'exit 5' USR1; while :; do sleep 0.1; done",
    ]);
    std::thread::sleep(std::time::Duration::from_millis(300));
    k.ok(&["kill", "-s", "USR1", "k2"]);
    for _ in 0..100 {
        if k.ok(&["ps", "-a", "-q"]).is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // --rm removed it once it exited.
    assert!(k.ok(&["ps", "-a", "-q"]).is_empty());
    // Detached failures are reported by the command itself.
    let (code, err) = k.fails(&["run", "-d", "bb:v1", "nosuchcommand"]);
    assert_eq!(code, 127, "{err}");
    k.assert_nothing_left();
}

fn run_in_exec(k: &Kiln, args: &[&str]) -> (i32, String, String) {
    let out = k.cmd().arg("exec").args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `--runtime runc` runs the same bundle with an external OCI runtime: same output, same
/// confinement, exit code passed through.
#[test]
fn external_runtime_runs_the_same_bundle() {
    let k = kiln_with_busybox();
    let (code, out, err) = run_in(
        &k,
        &[
            "--rm",
            "--runtime",
            "runc",
            "bb:v1",
            "sh",
            "-c",
            "cat /etc/hello.txt; grep -E '^(NoNewPrivs|Seccomp):' /proc/self/status; exit 9",
        ],
    );
    assert_eq!(code, 9, "{err}");
    assert_eq!(out, "hello from kiln\nNoNewPrivs:\t1\nSeccomp:\t2\n");
    let (code, _, err) = run_in(
        &k,
        &["--rm", "--runtime", "no-such-runtime", "bb:v1", "true"],
    );
    assert_eq!(code, 125);
    assert!(err.contains("not found"), "{err}");
    k.assert_nothing_left();
}

/// GPUs and other devices through CDI (a spec written here exposes harmless nodes and a
/// mount), `--gpus` mapped to NVIDIA's CDI names, and Docker's host `--device`.
#[test]
fn cdi_devices_and_gpus() {
    let k = kiln_with_busybox();
    let cdi = tempfile::tempdir().unwrap();
    let libs = tempfile::tempdir().unwrap();
    std::fs::write(libs.path().join("libfake-cuda.so"), "not really a driver\n").unwrap();
    std::fs::write(
        cdi.path().join("example.json"),
        serde_json::json!({
            "cdiVersion": "0.6.0",
            "kind": "example.com/accel",
            "containerEdits": {"env": ["ACCEL_DRIVER=fake"]},
            "devices": [
                {"name": "a0", "containerEdits": {
                    "deviceNodes": [{"path": "/dev/accel0", "hostPath": "/dev/null"}],
                    "mounts": [{"hostPath": libs.path(), "containerPath": "/usr/lib/accel", "options": ["ro", "rbind"]}],
                    "env": ["ACCEL_VISIBLE=0"]}},
                {"name": "a1", "containerEdits": {"deviceNodes": [{"path": "/dev/accel1", "hostPath": "/dev/zero"}]}},
            ]
        })
        .to_string(),
    )
    .unwrap();
    std::fs::write(
        cdi.path().join("nvidia.yaml"),
        "cdiVersion: 0.5.0\nkind: nvidia.com/gpu\ndevices:\n- name: \"0\"\n  containerEdits:\n    deviceNodes:\n    - path: /dev/nvidia0\n      hostPath: /dev/null\n- name: \"1\"\n  containerEdits:\n    deviceNodes:\n    - path: /dev/nvidia1\n      hostPath: /dev/zero\ncontainerEdits:\n  env:\n  - NVIDIA_VISIBLE_DEVICES=void\n",
    )
    .unwrap();
    let dir = cdi.path().to_str().unwrap();
    let (code, out, err) = run_in(&k, &["--rm", "--cdi-spec-dir", dir, "--device", "example.com/accel=a0", "bb:v1", "sh", "-c",
        "ls /dev/accel* ; cat /usr/lib/accel/libfake-cuda.so; echo $ACCEL_DRIVER $ACCEL_VISIBLE; echo x > /dev/accel0 && echo writable; head -c 3 /dev/accel0 | wc -c"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        "/dev/accel0\nnot really a driver\nfake 0\nwritable\n0\n"
    );
    let (code, out, err) = run_in(
        &k,
        &[
            "--rm",
            "--cdi-spec-dir",
            dir,
            "--gpus",
            "all",
            "bb:v1",
            "sh",
            "-c",
            "ls /dev/nvidia*; echo $NVIDIA_VISIBLE_DEVICES",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "/dev/nvidia0\n/dev/nvidia1\nvoid\n");
    let (code, out, _) = run_in(
        &k,
        &[
            "--rm",
            "--cdi-spec-dir",
            dir,
            "--gpus",
            "1",
            "bb:v1",
            "sh",
            "-c",
            "ls /dev/nvidia*",
        ],
    );
    assert_eq!((code, out.as_str()), (0, "/dev/nvidia0\n"));
    // A device that is not in any spec: refused before anything runs, naming the known ones.
    let (code, _, err) = run_in(
        &k,
        &[
            "--rm",
            "--cdi-spec-dir",
            dir,
            "--device",
            "example.com/accel=a9",
            "bb:v1",
            "true",
        ],
    );
    assert_eq!(code, 125);
    assert!(
        err.contains("a9") && err.contains("a0") && err.contains("hint:"),
        "{err}"
    );
    // Docker's host device form; the node is usable, others stay denied by the cgroup.
    let (code, out, err) = run_in(
        &k,
        &[
            "--rm",
            "--device",
            "/dev/zero:/dev/myzero:r",
            "bb:v1",
            "sh",
            "-c",
            "head -c 4 /dev/myzero | wc -c",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "4");
    k.assert_nothing_left();
}

/// `-p` publishes a port of the container's private network (pasta) on the host's
/// loopback; the server inside answers there.
#[test]
fn published_port_reaches_a_server_inside() {
    let k = Kiln::new();
    let root = tempfile::tempdir().unwrap();
    run(Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", busybox_rootfs().display()))
        .arg(root.path()));
    std::os::unix::fs::symlink("busybox", root.path().join("bin/httpd")).unwrap();
    std::fs::create_dir_all(root.path().join("www")).unwrap();
    std::fs::write(
        root.path().join("www/index.html"),
        "served from a kiln container\n",
    )
    .unwrap();
    k.ok(&["import", root.path().to_str().unwrap(), "-t", "web:v1"]);
    // A free port on the host.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let spec = format!("127.0.0.1:{port}:80");
    k.ok(&[
        "run", "-d", "--name", "web", "-p", &spec, "web:v1", "httpd", "-f", "-p", "80", "-h",
        "/www",
    ]);
    let mut body = String::new();
    for _ in 0..100 {
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            use std::io::{Read, Write};
            s.write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")
                .unwrap();
            body.clear();
            let _ = s.read_to_string(&mut body);
            if body.contains("served from") {
                break;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(
        body.starts_with("HTTP/1.") && body.ends_with("served from a kiln container\n"),
        "{body}"
    );
    k.ok(&["stop", "-t", "1", "web"]);
    k.ok(&["rm", "web"]);
    // The forwarder goes with the container (pasta exits on SIGTERM, shortly after).
    let mut closed = false;
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            closed = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(closed, "port {port} still answers");
    let (code, _, err) = run_in(
        &k,
        &[
            "--rm",
            "--network",
            "none",
            "-p",
            "8080:80",
            "web:v1",
            "true",
        ],
    );
    assert_eq!(code, 125);
    assert!(err.contains("cannot be published"), "{err}");
    let (code, _, err) = run_in(&k, &["--rm", "-p", "80", "web:v1", "true"]);
    assert_eq!(code, 125);
    assert!(err.contains("port specification"), "{err}");
    k.assert_nothing_left();
}

/// Standard input reaches the container with `-i` only, as with Docker.
#[test]
fn stdin_only_with_interactive() {
    let k = kiln_with_busybox();
    let feed = |args: &[&str]| {
        let mut child = k
            .cmd()
            .arg("run")
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(child.stdin.as_mut().unwrap(), b"from the host\n").unwrap();
        drop(child.stdin.take());
        let out = child.wait_with_output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    assert_eq!(
        feed(&["--rm", "-i", "bb:v1", "cat"]),
        (Some(0), "from the host\n".to_string())
    );
    assert_eq!(feed(&["--rm", "bb:v1", "cat"]), (Some(0), String::new()));
}

/// Named volumes live in the store and outlive the containers that write them.
#[test]
fn named_volumes_persist_between_containers() {
    let k = kiln_with_busybox();
    let (code, _, err) = run_in(
        &k,
        &[
            "--rm",
            "-v",
            "models:/models",
            "bb:v1",
            "sh",
            "-c",
            "echo weights > /models/w.bin",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = run_in(
        &k,
        &[
            "--rm",
            "--mount",
            "type=volume,source=models,target=/m,readonly",
            "bb:v1",
            "sh",
            "-c",
            "cat /m/w.bin; echo x > /m/y",
        ],
    );
    assert_eq!(code, 1, "{err}");
    assert_eq!(out, "weights\n");
    assert!(err.contains("Read-only file system"), "{err}");
    assert_eq!(
        std::fs::read_to_string(k.root().join("volumes/models/_data/w.bin")).unwrap(),
        "weights\n"
    );
    // A new volume mounted where the image has files starts with a copy of them (Docker's
    // behaviour); once used, it keeps its own content.
    let (code, out, err) = run_in(
        &k,
        &[
            "--rm",
            "-v",
            "etcvol:/etc",
            "bb:v1",
            "sh",
            "-c",
            "cat /etc/hello.txt; echo mine > /etc/hello.txt",
        ],
    );
    assert_eq!((code, out.as_str()), (0, "hello from kiln\n"), "{err}");
    let (code, out, err) = run_in(
        &k,
        &[
            "--rm",
            "-v",
            "etcvol:/etc",
            "bb:v1",
            "cat",
            "/etc/hello.txt",
        ],
    );
    assert_eq!((code, out.as_str()), (0, "mine\n"), "{err}");
    // A volume that already has content is never overwritten from the image.
    std::fs::create_dir_all(k.root().join("volumes/pre/_data")).unwrap();
    std::fs::write(k.root().join("volumes/pre/_data/own.txt"), "own\n").unwrap();
    let (code, out, err) = run_in(&k, &["--rm", "-v", "pre:/etc", "bb:v1", "ls", "/etc"]);
    assert_eq!((code, out.as_str()), (0, "own.txt\n"), "{err}");
    let (code, _, err) = run_in(&k, &["--rm", "-v", "../escape:/x", "bb:v1", "true"]);
    assert_eq!(code, 125);
    assert!(
        err.contains("neither an absolute path nor a volume name"),
        "{err}"
    );
}

/// `kiln commit`: added, changed and deleted files of a container become a layer of a new
/// image (deletions as OCI whiteouts), with `--change` applied to its config.
#[test]
fn commit_records_changes_and_deletions() {
    let k = kiln_with_busybox();
    let (code, _, err) = run_in(
        &k,
        &[
            "--name",
            "work",
            "bb:v1",
            "sh",
            "-c",
            "echo model > /model.txt && rm /etc/hello.txt && mkdir -p /data && echo d > /data/x",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let id = k.ok(&[
        "commit",
        "-c",
        "CMD [\"cat\", \"/model.txt\"]",
        "-m",
        "trained",
        "work",
        "bb:v2",
    ]);
    assert!(id.trim().starts_with("sha256:"));
    let (code, out, _) = run_in(&k, &["--rm", "bb:v2"]);
    assert_eq!((code, out.as_str()), (0, "model\n"));
    let (code, out, _) = run_in(
        &k,
        &[
            "--rm",
            "bb:v2",
            "sh",
            "-c",
            "ls /etc/hello.txt 2>&1; cat /data/x",
        ],
    );
    assert_eq!(code, 0);
    assert!(
        out.contains("No such file") && out.ends_with("d\n"),
        "{out}"
    );
    let v = json(&k.ok(&["inspect", "bb:v2"]))[0].clone();
    assert_eq!(v["RootFS"]["diff_ids"].as_array().unwrap().len(), 2);
    assert_eq!(
        v["History"].as_array().unwrap().last().unwrap()["comment"],
        "trained"
    );
    // The layer carries the deletion as an OCI whiteout, so other tools see it too.
    let flat = k.dir.path().join("flat.tar");
    k.ok(&["export", "bb:v2", "-o", flat.to_str().unwrap()]);
    let names: Vec<String> = tar_listing(&flat).into_iter().map(|(n, _)| n).collect();
    assert!(
        names.contains(&"model.txt".to_string()) && !names.contains(&"etc/hello.txt".to_string()),
        "{names:?}"
    );
    // The bind targets the runtime made (/etc/hosts, ...) and the /dev, /proc, /sys mount
    // points the image lacked are not the container's changes: the image has none of them.
    for made in [
        "etc/hosts",
        "etc/hostname",
        "etc/resolv.conf",
        "proc",
        "sys",
        "dev",
    ] {
        assert!(
            !names.iter().any(|n| n.trim_end_matches('/') == made),
            "{made} was committed: {names:?}"
        );
    }
    k.ok(&["rm", "work"]);
    k.ok(&["check"]);
}

/// `--init`: tini is PID 1, the command its child; zombies are reaped and the exit code
/// passes through.
#[test]
fn init_runs_as_pid_1() {
    let k = kiln_with_busybox();
    let (code, out, err) = run_in(
        &k,
        &[
            "--rm",
            "--init",
            "bb:v1",
            "sh",
            "-c",
            "cat /proc/1/cmdline | tr '\\0' ' '; echo; echo me=$$; exit 6",
        ],
    );
    assert_eq!(code, 6, "{err}");
    assert!(out.starts_with("/sbin/docker-init -- sh -c"), "{out}");
    assert!(!out.contains("me=1\n"), "{out}");
}

/// `-t`: the container gets a terminal (its pty master relayed to ours), as under
/// `docker run -t`; output comes through the line discipline (CRLF), the exit code too.
#[test]
fn tty_gives_the_container_a_terminal() {
    let k = kiln_with_busybox();
    let kiln = env!("CARGO_BIN_EXE_kiln");
    let cmd = format!(
        "KILN_ROOT={} {kiln} run --rm -t bb:v1 sh -c 'test -t 0 && test -t 1 && echo tty-ok; exit 5' </dev/null",
        k.root().display()
    );
    // script(1) provides the outer terminal, as a user's shell would.
    let out = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .output()
        .expect("script from bsdutils");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("tty-ok\r\n"), "{text:?}");
    assert_eq!(out.status.code(), Some(5), "{text:?}");
    // Without an outer terminal it still runs, with a pty inside.
    let (code, out, err) = run_in(
        &k,
        &[
            "--rm",
            "-t",
            "bb:v1",
            "sh",
            "-c",
            "test -t 1 && echo inner-tty",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "inner-tty\r\n");
    k.assert_nothing_left();
}

/// Output sent to /dev/null works: the application's writes succeed (libcontainer would
/// otherwise hand it a read-only /dev/null).
#[test]
fn output_to_dev_null_is_writable() {
    let k = kiln_with_busybox();
    let null = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/null")
        .unwrap();
    let status = k
        .cmd()
        .args([
            "run",
            "--rm",
            "--network",
            "none",
            "bb:v1",
            "sh",
            "-c",
            "echo out && echo err >&2",
        ])
        .stdout(null.try_clone().unwrap())
        .stderr(null)
        .status()
        .unwrap();
    assert!(status.success(), "{status}");
}

/// On the default network the container's first action may be to use it: kiln starts
/// the application once pasta has configured the namespace (its default route), before
/// pasta has finished starting, and nothing the application sends is lost. The Debian
/// archive is the one outside server these tests may reach.
#[test]
fn default_network_works_from_the_first_instruction() {
    let k = Kiln::new();
    let root = tempfile::tempdir().unwrap();
    run(Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", busybox_rootfs().display()))
        .arg(root.path()));
    std::os::unix::fs::symlink("busybox", root.path().join("bin/wget")).unwrap();
    k.ok(&["import", root.path().to_str().unwrap(), "-t", "net:v1"]);
    for _ in 0..5 {
        let (code, out, err) = run_in(
            &k,
            &[
                "--rm",
                "net:v1",
                "wget",
                "-q",
                "-O",
                "-",
                "http://deb.debian.org/debian/dists/bookworm/Release",
            ],
        );
        assert_eq!(code, 0, "{err}");
        assert!(out.starts_with("Origin: Debian"), "{out}");
    }
    k.assert_nothing_left();
}

/// pasta is started on the container's first packet, not waited for: when it cannot
/// start, why goes to kiln's standard error (the container just has no network), instead
/// of vanishing. A pasta that fails is a fault the real one will not produce on demand:
/// a script named `pasta` first on PATH stands in for it.
#[test]
fn a_pasta_that_fails_on_demand_says_why() {
    let k = kiln_with_busybox();
    let bin = tempfile::tempdir().unwrap();
    let fake = bin.path().join("pasta");
    std::fs::write(
        &fake,
        "#!/bin/sh\necho 'pasta: the fault this test injects' >&2\nexit 1\n",
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap()
    );
    // The connection's first segment is the namespace's first packet: it starts the
    // stand-in (and, with no network behind it, times out).
    let out = k
        .cmd()
        .env("PATH", path)
        .args(["run", "--rm", "bb:v1", "sh", "-c"])
        .arg("busybox nc -w1 192.0.2.1 9 </dev/null; sleep 0.3; echo done")
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("done"), "{stdout}");
    assert!(
        stderr.contains("pasta: the fault this test injects"),
        "{stderr}"
    );
    k.assert_nothing_left();
}

/// `kiln stop` of a `-d --rm` container succeeds: the container's record goes as soon as
/// it exits, which stop takes for the exit it waits for (not for a timeout followed by
/// SIGKILL of a container that is gone), and nothing of it is left. As with Docker, the
/// removal itself finishes in the container's supervisor, just after stop returns.
#[test]
fn stop_of_a_detached_rm_container_succeeds() {
    let k = kiln_with_busybox();
    // A shell with a TERM trap exits at once on SIGTERM (PID 1 ignores signals it has
    // no handler for).
    k.ok(&[
        "run",
        "-d",
        "--rm",
        "--name",
        "gone",
        "bb:v1",
        "sh",
        "-c",
        "trap 'exit 0' TERM; while true; do sleep 0.1; done",
    ]);
    let t = std::time::Instant::now();
    assert_eq!(k.ok(&["stop", "-t", "5", "gone"]).trim(), "gone");
    assert!(
        t.elapsed() < std::time::Duration::from_secs(4),
        "{:?}",
        t.elapsed()
    );
    let removed = (0..100).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(50));
        !k.ok(&["ps", "-a"]).contains("gone")
    });
    assert!(removed, "{}", k.ok(&["ps", "-a"]));
    k.assert_nothing_left();
}
