//! Every read from the network or an archive is bounded: a registry cannot fill the disk
//! with a blob that never ends, nor the memory with a manifest or config that never ends;
//! an archive cannot make `kiln load` hold its entries in memory.

use crate::common::registry::*;
use crate::common::*;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

const MIB: u64 = 1 << 20;

/// How a child ran: its exit code (None when killed by a signal), stderr, peak RSS
/// (from `wait4`'s rusage, so exactly this child's) and wall time.
struct Measured {
    code: Option<i32>,
    stderr: String,
    max_rss_kib: u64,
    elapsed: Duration,
}

/// Runs `cmd` to its end, killing it (and failing the test) after `deadline`.
fn measured(mut cmd: Command, deadline: Duration) -> Measured {
    let dir = tempfile::tempdir().unwrap();
    let err_path = dir.path().join("stderr");
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(File::create(&err_path).unwrap());
    let start = Instant::now();
    let child = cmd.spawn().expect("spawn kiln");
    let pid = child.id() as libc::pid_t;
    let done = Arc::new(AtomicBool::new(false));
    let watchdog = {
        let done = done.clone();
        thread::spawn(move || {
            while !done.load(Ordering::SeqCst) {
                if start.elapsed() > deadline {
                    // SAFETY: `pid` is our child, not yet reaped (`done` is unset).
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                    return true;
                }
                thread::sleep(Duration::from_millis(20));
            }
            false
        })
    };
    let mut status: libc::c_int = 0;
    // SAFETY: a zeroed rusage is a valid value for wait4 to fill.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: plain syscall on our own child, with valid pointers.
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    done.store(true, Ordering::SeqCst);
    let elapsed = start.elapsed();
    let killed = watchdog.join().unwrap();
    drop(child);
    assert_eq!(r, pid, "wait4: {}", io::Error::last_os_error());
    let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
    assert!(
        !killed,
        "{cmd:?} ran longer than {deadline:?}; its stderr:\n{stderr}"
    );
    let code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
    Measured {
        code,
        stderr,
        max_rss_kib: usage.ru_maxrss as u64,
        elapsed,
    }
}

/// What is in the store's tmp/: the bytes of its top-level files (blobs being written)
/// and of everything (snapshots being unpacked too).
fn tmp_bytes(root: &Path) -> (u64, u64) {
    fn walk(p: &Path, top: bool, files: &mut u64, all: &mut u64) {
        let Ok(rd) = std::fs::read_dir(p) else { return };
        for e in rd.flatten() {
            let Ok(m) = e.path().symlink_metadata() else {
                continue;
            };
            if m.is_dir() {
                walk(&e.path(), false, files, all);
            } else {
                *all += m.len();
                if top {
                    *files += m.len();
                }
            }
        }
    }
    let (mut files, mut all) = (0, 0);
    walk(&root.join("tmp"), true, &mut files, &mut all);
    (files, all)
}

fn tmp_entries(root: &Path) -> Vec<String> {
    std::fs::read_dir(root.join("tmp"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// A store with `lim/bb:v1` pushed to `reg`: (manifest JSON, config digest, config size,
/// layer digest, layer size).
fn seeded(reg: &Registry, repo: &str) -> (serde_json::Value, String, u64, String, u64) {
    let src = kiln_with_busybox();
    src.ok(&["push", "bb:v1", &format!("{}/{repo}:v1", reg.addr())]);
    let (raw, _) = raw_manifest(&reg.addr(), repo, "v1", None);
    let m: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    let config = m["config"]["digest"].as_str().unwrap().to_string();
    let config_size = m["config"]["size"].as_u64().unwrap();
    let layer = m["layers"][0]["digest"].as_str().unwrap().to_string();
    let layer_size = m["layers"][0]["size"].as_u64().unwrap();
    (m, config, config_size, layer, layer_size)
}

/// A fresh store (its index.json written), and that index.json.
fn fresh_store() -> (Kiln, Vec<u8>) {
    let k = Kiln::new();
    k.ok(&["images"]);
    let index = std::fs::read(k.root().join("index.json")).unwrap();
    (k, index)
}

/// After a refused pull: no image, no tag, nothing left in tmp/, and the store checks.
fn assert_untouched(k: &Kiln, index_before: &[u8]) {
    assert_eq!(
        std::fs::read(k.root().join("index.json")).unwrap(),
        index_before,
        "index.json changed"
    );
    assert!(
        tmp_entries(&k.root()).is_empty(),
        "tmp/ keeps {:?}",
        tmp_entries(&k.root())
    );
    k.ok(&["check"]);
}

/// A registry whose layer body never ends: the download stops at the layer's declared
/// size (plus the one byte that shows the lie), fails naming the digest and the size,
/// never holds more than the declared size in tmp/, and leaves the store as it was.
#[test]
fn endless_layer_is_cut_at_its_declared_size() {
    let reg = Registry::open();
    let (_, _, _, layer, layer_size) = seeded(&reg, "lim/endless");
    let proxy = FaultProxy::new(&reg.addr(), Fault::EndlessLayers);
    let (k, index_before) = fresh_store();
    let reference = format!("{}/lim/endless:v1", proxy.addr());

    let err_path = k.dir.path().join("pull.stderr");
    let mut child = k
        .cmd()
        .args(["pull", &reference])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(File::create(&err_path).unwrap())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let (mut max_files, mut max_all) = (0, 0);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        let (files, all) = tmp_bytes(&k.root());
        max_files = max_files.max(files);
        max_all = max_all.max(all);
        if start.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "kiln pull of an endless layer still ran after 120 s (tmp/ peaked at {max_all} bytes)"
            );
        }
        thread::sleep(Duration::from_millis(2));
    };
    let stderr = std::fs::read_to_string(&err_path).unwrap();
    eprintln!(
        "endless layer: tmp/ peaked at {max_files} bytes of blobs ({max_all} in all) for a layer of {layer_size}; {}",
        stderr.trim()
    );
    assert!(!status.success(), "the pull of an endless layer succeeded");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        stderr.contains(&layer) && stderr.contains(&layer_size.to_string()),
        "the error names the layer {layer} and its declared size {layer_size}:\n{stderr}"
    );
    assert!(
        max_files <= layer_size,
        "tmp/ held {max_files} bytes of blobs for a layer of {layer_size}"
    );
    // Snapshot staging holds the unpacked busybox too: a few MiB, not gigabytes.
    assert!(max_all <= 64 * MIB, "tmp/ peaked at {max_all} bytes");
    // What the proxy managed to write past the real body: socket buffers, no more.
    assert!(
        proxy.endless_bytes() <= 64 * MIB,
        "kiln read on: the proxy sent {} bytes past the body",
        proxy.endless_bytes()
    );
    assert_untouched(&k, &index_before);
}

/// A manifest that never ends, a config that never ends, and a manifest declaring a
/// config over the cap: each refused with an error that says what and how large, fast,
/// and nothing enters the store.
#[test]
fn manifest_and_config_over_their_caps_are_refused() {
    let reg = Registry::open();
    let (_, config, config_size, _, _) = seeded(&reg, "lim/caps");
    for fault in [
        Fault::EndlessManifests,
        Fault::EndlessConfigs,
        Fault::HugeConfigSize,
    ] {
        let proxy = FaultProxy::new(&reg.addr(), fault);
        let (k, index_before) = fresh_store();
        let reference = format!("{}/lim/caps:v1", proxy.addr());
        let mut cmd = k.cmd();
        cmd.args(["pull", &reference]);
        let m = measured(cmd, Duration::from_secs(120));
        eprintln!("{fault:?}: {}", m.stderr.trim());
        assert_ne!(m.code, Some(0), "{fault:?}: the pull succeeded");
        assert!(
            m.code.is_some(),
            "{fault:?}: killed by a signal:\n{}",
            m.stderr
        );
        assert!(!m.stderr.contains("panicked"), "{fault:?}: {}", m.stderr);
        match fault {
            Fault::EndlessManifests => assert!(
                m.stderr.contains("manifest") && m.stderr.contains("larger than 4 MiB"),
                "{fault:?}: {}",
                m.stderr
            ),
            Fault::EndlessConfigs => assert!(
                m.stderr.contains(&config)
                    && m.stderr
                        .contains(&format!("larger than the {config_size} bytes")),
                "{fault:?}: {}",
                m.stderr
            ),
            _ => {
                assert!(
                    m.stderr.contains(&config)
                        && m.stderr.contains(&HUGE_CONFIG_SIZE.to_string())
                        && m.stderr.contains("16 MiB"),
                    "{fault:?}: {}",
                    m.stderr
                );
                assert_eq!(
                    proxy.count("GET", &config),
                    0,
                    "{fault:?}: a config over the cap is not even asked for"
                );
            }
        }
        assert!(
            m.max_rss_kib < 128 << 10,
            "{fault:?}: peak RSS {} KiB",
            m.max_rss_kib
        );
        assert!(
            proxy.endless_bytes() <= 64 * MIB,
            "{fault:?}: kiln read on: the proxy sent {} bytes past the body",
            proxy.endless_bytes()
        );
        assert_untouched(&k, &index_before);
    }
}

/// Copies every entry of the tar at `from` into `b`.
fn copy_entries<W: Write>(b: &mut tar::Builder<W>, from: &Path) {
    let mut a = tar::Archive::new(File::open(from).unwrap());
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        let mut h = e.header().clone();
        let path = e.path().unwrap().into_owned();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        b.append_data(&mut h, path, &data[..]).unwrap();
    }
}

/// A `gzip -1` pipe into `out`: (the tar builder on its stdin, the gzip child).
fn gzip_to(out: &Path) -> (tar::Builder<std::process::ChildStdin>, std::process::Child) {
    let mut gz = Command::new("gzip")
        .args(["-1", "-c"])
        .stdin(Stdio::piped())
        .stdout(File::create(out).unwrap())
        .spawn()
        .expect("gzip");
    let stdin = gz.stdin.take().unwrap();
    (tar::Builder::new(stdin), gz)
}

fn finish_gzip(b: tar::Builder<std::process::ChildStdin>, mut gz: std::process::Child) {
    drop(b.into_inner().unwrap());
    assert!(gz.wait().unwrap().success());
}

fn file_header(size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_size(size);
    h.set_mode(0o644);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mtime(0);
    h
}

/// `kiln load` of a small .tgz holding 5,000 entries of 1 MiB each (5 GiB unpacked)
/// besides a valid image: the image loads, and the loader's peak RSS stays far under
/// 512 MB (it held every entry under 1 MiB in memory: over 4 GiB).
#[test]
fn load_of_many_entries_keeps_memory_bounded() {
    let src = kiln_with_busybox();
    let dir = tempfile::tempdir().unwrap();
    let saved = dir.path().join("bb.tar");
    src.ok(&["save", "bb:v1", "-o", saved.to_str().unwrap()]);
    let tgz: PathBuf = dir.path().join("many.tgz");
    let (mut b, gz) = gzip_to(&tgz);
    let junk = vec![0u8; MIB as usize];
    for i in 0..5000 {
        let mut h = file_header(MIB);
        b.append_data(&mut h, format!("junk/{i:04}"), &junk[..])
            .unwrap();
    }
    copy_entries(&mut b, &saved);
    finish_gzip(b, gz);
    let compressed = std::fs::metadata(&tgz).unwrap().len();
    assert!(compressed < 64 * MIB, "the archive is {compressed} bytes");

    let (k, _) = fresh_store();
    let mut cmd = k.cmd();
    cmd.args(["load", "-i", tgz.to_str().unwrap()]);
    let m = measured(cmd, Duration::from_secs(540));
    eprintln!(
        "kiln load of {compressed} bytes (5,000 x 1 MiB entries): peak RSS {} KiB in {:?}",
        m.max_rss_kib, m.elapsed
    );
    assert_eq!(m.code, Some(0), "kiln load failed:\n{}", m.stderr);
    assert!(
        m.max_rss_kib < 512 * 1000,
        "peak RSS {} KiB, over 512 MB",
        m.max_rss_kib
    );
    let images = k.ok(&["images"]);
    assert!(images.contains("bb"), "{images}");
    assert!(
        tmp_entries(&k.root()).is_empty(),
        "tmp/ keeps {:?}",
        tmp_entries(&k.root())
    );
    k.ok(&["check"]);
}

/// A Docker archive whose config is 200 MB of (valid) JSON: refused, naming the entry
/// and the cap, quickly and without reading it into memory.
#[test]
fn huge_config_in_an_archive_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let tgz = dir.path().join("bigconfig.tgz");
    let (mut b, gz) = gzip_to(&tgz);
    let size: u64 = 200_000_000;
    let head = br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},"comment":""#;
    let tail = br#""}"#;
    let filler = size - head.len() as u64 - tail.len() as u64;
    let body = (&head[..])
        .chain(io::repeat(b'a').take(filler))
        .chain(&tail[..]);
    let mut h = file_header(size);
    b.append_data(&mut h, "big-config.json", body).unwrap();
    let manifest = br#"[{"Config":"big-config.json","RepoTags":["big:v1"],"Layers":[]}]"#;
    let mut h = file_header(manifest.len() as u64);
    b.append_data(&mut h, "manifest.json", &manifest[..])
        .unwrap();
    finish_gzip(b, gz);

    let (k, index_before) = fresh_store();
    let mut cmd = k.cmd();
    cmd.args(["load", "-i", tgz.to_str().unwrap()]);
    let m = measured(cmd, Duration::from_secs(120));
    eprintln!(
        "kiln load of a 200 MB config: peak RSS {} KiB in {:?}; {}",
        m.max_rss_kib,
        m.elapsed,
        m.stderr.trim()
    );
    assert_ne!(m.code, Some(0), "a 200 MB config was loaded");
    assert!(m.code.is_some(), "killed by a signal:\n{}", m.stderr);
    assert!(!m.stderr.contains("panicked"), "{}", m.stderr);
    assert!(
        m.stderr.contains("big-config.json") && m.stderr.contains("16 MiB"),
        "the error names the entry and the cap:\n{}",
        m.stderr
    );
    assert!(
        m.max_rss_kib < 128 << 10,
        "peak RSS {} KiB for a refused config",
        m.max_rss_kib
    );
    assert!(m.elapsed < Duration::from_secs(60), "took {:?}", m.elapsed);
    assert_untouched(&k, &index_before);
}

/// A password on the command line shows in the process list: kiln says so, as Docker
/// does for `login -p`, and still works.
#[test]
fn password_on_the_command_line_is_warned_about() {
    let reg = Registry::with_auth("alice", "s3cret");
    let k = kiln_with_busybox();
    let dest = format!("{}/creds/bb:v1", reg.addr());
    let out = k
        .cmd()
        .env("DOCKER_CONFIG", k.dir.path().join("docker-config"))
        .args(["push", "--creds", "alice:s3cret", "bb:v1", &dest])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        stderr
            .matches("WARNING! Using a password on the command line")
            .count(),
        1,
        "{stderr}"
    );
    // With the user alone on the command line there is nothing to warn about.
    let out = k
        .cmd()
        .env("DOCKER_CONFIG", k.dir.path().join("docker-config"))
        .args(["login", "-u", "alice", "--password-stdin", &reg.addr()])
        .stdin(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin.take().unwrap().write_all(b"s3cret\n")?;
            c.wait_with_output()
        })
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("WARNING"), "{stderr}");
}
