//! `kiln base debian` against the real Debian archive (deb.debian.org), compared with
//! mmdebstrap, with forged indexes and tampered packages refused.
mod common;

use common::{json, run, Kiln};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// One bookworm + python3 image, built once from the archive with a lock, shared by
/// the tests (each test that changes anything works on its own store).
struct Fixture {
    kiln: Kiln,
    lock: PathBuf,
    report: serde_json::Value,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let kiln = Kiln::new().kept_until_exit();
        let lock = kiln.dir.path().join("py.lock");
        let out = kiln.ok(&[
            "base",
            "debian",
            "--suite",
            "bookworm",
            "--packages",
            "python3",
            "-t",
            "py:1",
            "--lock",
            lock.to_str().unwrap(),
            "--json",
        ]);
        Fixture {
            report: json(&out),
            kiln,
            lock,
        }
    })
}

fn lock_json(path: &Path) -> serde_json::Value {
    json(&std::fs::read_to_string(path).unwrap())
}

/// A new store whose .deb cache is a copy of the fixture's (no second download).
fn warm_kiln() -> Kiln {
    let k = Kiln::new();
    let from = fixture().kiln.root().join("cache/debian/debs");
    let to = k.root().join("cache/debian");
    std::fs::create_dir_all(&to).unwrap();
    run(Command::new("cp").arg("-a").arg(&from).arg(&to));
    k
}

fn in_image(k: &Kiln, image: &str, script: &str) -> String {
    k.ok(&["run", "--rm", "--pull", "never", image, "sh", "-c", script])
}

fn digest(k: &Kiln, image: &str) -> String {
    json(&k.ok(&["inspect", image]))[0]["Digest"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn python_image_behaves_like_debian() {
    let f = fixture();
    let k = &f.kiln;
    let lock = lock_json(&f.lock);
    let packages: Vec<&str> = lock["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    for p in [
        "python3",
        "python3.11",
        "libssl3",
        "libsqlite3-0",
        "base-files",
        "apt",
        "dpkg",
    ] {
        assert!(packages.contains(&p), "{p} not in the lock: {packages:?}");
    }
    assert_eq!(
        f.report["packages"].as_u64().unwrap() as usize,
        packages.len()
    );
    // The lock records each package's exact version, architecture and SHA256.
    for p in lock["packages"].as_array().unwrap() {
        assert_eq!(p["sha256"].as_str().unwrap().len(), 64, "{p}");
        assert!(
            ["amd64", "all"].contains(&p["architecture"].as_str().unwrap()),
            "{p}"
        );
        assert!(!p["version"].as_str().unwrap().is_empty());
    }
    // Which maintainer scripts ran in a container is reported.
    let scripts: Vec<&str> = f.report["scripts_run"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert!(
        scripts.contains(&"libpam-runtime (postinst)"),
        "{scripts:?}"
    );

    let out = in_image(
        k,
        "py:1",
        "python3 -c 'import ssl, sqlite3, json, venv; print(ssl.OPENSSL_VERSION); print(sqlite3.connect(\":memory:\").execute(\"select 6*7\").fetchone()[0])'",
    );
    assert!(out.contains("OpenSSL 3."), "{out}");
    assert!(out.contains("42"), "{out}");
    let out = in_image(k, "py:1", "dpkg -l python3");
    assert!(out.lines().any(|l| l.starts_with("ii  python3 ")), "{out}");
    // Every package is installed and configured in the dpkg database, none half-done.
    let out = in_image(
        k,
        "py:1",
        "dpkg-query -W -f '${db:Status-Abbrev}${Package}\\n' | sort; echo audit:; dpkg --audit",
    );
    let installed: BTreeSet<&str> = out.lines().filter_map(|l| l.strip_prefix("ii ")).collect();
    assert_eq!(installed, packages.iter().copied().collect(), "{out}");
    assert!(out.trim_end().ends_with("audit:"), "dpkg --audit: {out}");
    let passwd = in_image(
        k,
        "py:1",
        "cat /etc/passwd; ls -l /etc/shadow; awk 'BEGIN{print 1+1}'; command -v which pager",
    );
    assert!(
        passwd.starts_with("root:x:0:0:root:/root:/bin/bash\n"),
        "{passwd}"
    );
    assert!(passwd.contains("-rw-r----- 1 root shadow"), "{passwd}");
    assert!(passwd.contains("\n2\n"), "{passwd}");
    // apt works inside: a Dockerfile FROM this image can add packages.
    let out = k.ok(&[
        "run", "--rm", "--pull", "never", "--network", "host", "py:1", "sh", "-c",
        "apt-get update -qq && apt-get install -y -qq hello >/dev/null 2>&1 && hello && dpkg -l hello | tail -1",
    ]);
    assert!(out.contains("Hello, world!"), "{out}");
    assert!(out.contains("ii  hello"), "{out}");
    // A standard image: Docker runs it too.
    let dir = tempfile::tempdir().unwrap();
    let tar = dir.path().join("py.tar");
    let name = common::unique("kiln-debian-py");
    k.ok(&["tag", "py:1", &format!("{name}:1")]);
    k.ok(&["save", &format!("{name}:1"), "-o", tar.to_str().unwrap()]);
    run(common::docker().arg("load").arg("-i").arg(&tar));
    let out = run(common::docker().args([
        "run",
        "--rm",
        "--network",
        "none",
        &format!("{name}:1"),
        "python3",
        "-c",
        "import ssl, sqlite3; print('docker ok')",
    ]));
    run(common::docker().args(["rmi", &format!("{name}:1")]));
    assert_eq!(out.trim(), "docker ok");
}

#[test]
fn same_lock_same_digest_and_layers_follow_change() {
    let f = fixture();
    let first = digest(&f.kiln, "py:1");
    // A fresh store with an empty cache, from the same lock: the same image, bit for bit.
    let k = Kiln::new();
    let out = json(&k.ok(&[
        "base",
        "debian",
        "--suite",
        "bookworm",
        "--lock",
        f.lock.to_str().unwrap(),
        "-t",
        "again:1",
        "--json",
    ]));
    assert_eq!(out["resolved"], false, "{out}");
    assert!(
        out["downloaded"]["packages"].as_u64().unwrap() > 50,
        "{out}"
    );
    assert_eq!(digest(&k, "again:1"), first);
    // Again in the same store: nothing downloaded, every layer from the cache.
    let out = json(&k.ok(&[
        "base",
        "debian",
        "--suite",
        "bookworm",
        "--lock",
        f.lock.to_str().unwrap(),
        "-t",
        "again:2",
        "--json",
    ]));
    assert_eq!(out["downloaded"]["packages"], 0, "{out}");
    assert_eq!(out["cached_layers"], 3, "{out}");
    assert_eq!(digest(&k, "again:2"), first);
    // --packages that disagree with the lock are refused, naming the lock.
    let (code, err) = k.fails(&[
        "base",
        "debian",
        "--packages",
        "python3,curl",
        "--lock",
        f.lock.to_str().unwrap(),
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("py.lock") && err.contains("hint:"), "{err}");
    // Adding a package rebuilds neither the base layer nor its snapshot.
    let layers = |k: &Kiln, image: &str| -> Vec<String> {
        json(&k.ok(&["inspect", image]))[0]["ImageConfig"]["rootfs"]["diff_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_str().unwrap().to_string())
            .collect()
    };
    let w = warm_kiln();
    w.ok(&["base", "debian", "--packages", "python3", "-t", "a:1", "-q"]);
    let out = json(&w.ok(&[
        "base",
        "debian",
        "--packages",
        "python3,libgomp1",
        "-t",
        "b:1",
        "--json",
    ]));
    assert!(out["cached_layers"].as_u64().unwrap() >= 1, "{out}");
    let (a, b) = (layers(&w, "a:1"), layers(&w, "b:1"));
    assert_eq!(a[0], b[0], "the base layer changed");
    assert_ne!(a[1], b[1], "the extra layer did not change");
    let gomp = in_image(&w, "b:1", "dpkg -l libgomp1 | tail -1");
    assert!(gomp.starts_with("ii  libgomp1"), "{gomp}");
}

/// A mirror on disk: `dists/bookworm/InRelease` and a Packages index, for faults a real
/// mirror does not produce.
fn fake_mirror(inrelease: &[u8], packages_gz: &[u8]) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    let dists = d.path().join("dists/bookworm");
    std::fs::create_dir_all(dists.join("main/binary-amd64")).unwrap();
    std::fs::write(dists.join("InRelease"), inrelease).unwrap();
    std::fs::write(dists.join("main/binary-amd64/Packages.gz"), packages_gz).unwrap();
    d
}

fn real_inrelease() -> Vec<u8> {
    let out = Command::new("curl")
        .args([
            "-sSf",
            "http://deb.debian.org/debian/dists/bookworm/InRelease",
        ])
        .output()
        .expect("curl (apt-get install curl)");
    assert!(
        out.status.success(),
        "curl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn store_state(k: &Kiln) -> (String, Vec<String>) {
    let index = std::fs::read_to_string(k.root().join("index.json")).unwrap_or_default();
    let tmp: Vec<String> = std::fs::read_dir(k.root().join("tmp"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    (index, tmp)
}

#[test]
fn forged_indexes_and_tampered_packages_are_refused() {
    let f = fixture();
    let inrelease = real_inrelease();
    let base_args = |mirror: &Path| -> Vec<String> {
        vec![
            "base".into(),
            "debian".into(),
            "--suite".into(),
            "bookworm".into(),
            "--mirror".into(),
            format!("file://{}", mirror.display()),
            "--security-mirror".into(),
            "none".into(),
            "--no-updates".into(),
            "-t".into(),
            "forged:1".into(),
        ]
    };
    let k = Kiln::new();
    k.ok(&["images"]);
    let before = store_state(&k);

    // A Packages index that does not match the hash the signed InRelease gives for it.
    let m = fake_mirror(&inrelease, b"\x1f\x8b not the real index");
    let args = base_args(m.path());
    let (code, err) = k.fails(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code, 1);
    assert!(err.contains("main/binary-amd64/Packages.gz"), "{err}");
    assert!(err.contains("does not match"), "{err}");

    // One character of the signed text changed: the signature fails.
    let text = String::from_utf8(inrelease.clone()).unwrap();
    let forged = text.replacen("Origin: Debian", "Origin: Debiax", 1);
    assert_ne!(forged, text);
    let m = fake_mirror(forged.as_bytes(), b"");
    let args = base_args(m.path());
    let (_, err) = k.fails(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(err.contains("dists/bookworm/InRelease"), "{err}");
    assert!(err.contains("bad signature"), "{err}");

    // Signed, but by no key of the keyring given.
    let m = fake_mirror(&inrelease, b"");
    let mut args = base_args(m.path());
    let other = "/usr/share/keyrings/debian-archive-bullseye-security-automatic.gpg";
    assert!(
        Path::new(other).exists(),
        "{other} (apt-get install debian-archive-keyring)"
    );
    args.extend(["--keyring".into(), other.into()]);
    let (_, err) = k.fails(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(err.contains("InRelease"), "{err}");
    assert!(
        err.contains("no valid signature from a trusted key"),
        "{err}"
    );

    // Not signed at all.
    let m = fake_mirror(b"Origin: Debian\nSuite: stable\n", b"");
    let args = base_args(m.path());
    let (_, err) = k.fails(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        err.contains("InRelease") && err.contains("not an OpenPGP cleartext-signed file"),
        "{err}"
    );
    assert_eq!(store_state(&k), before, "a refused build changed the store");

    // A .deb in the cache changed after it was verified: refused, naming the file.
    let w = warm_kiln();
    w.ok(&["images"]);
    let before = store_state(&w);
    let deb = std::fs::read_dir(w.root().join("cache/debian/debs"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("bash_")
        })
        .expect("bash in the cache");
    let mut bytes = std::fs::read(&deb).unwrap();
    let n = bytes.len();
    bytes[n / 2] ^= 0x20;
    std::fs::write(&deb, &bytes).unwrap();
    let (code, err) = w.fails(&[
        "base",
        "debian",
        "--lock",
        f.lock.to_str().unwrap(),
        "-t",
        "t:1",
    ]);
    assert_eq!(code, 1);
    assert!(err.contains(&deb.display().to_string()), "{err}");
    assert!(err.contains("SHA256") && err.contains("hint:"), "{err}");
    assert_eq!(store_state(&w), before, "a refused build changed the store");
    w.ok(&["check"]);
}

/// Paths mmdebstrap's tree has and kiln's does not, and why.
const ONLY_MMDEBSTRAP: &[(&str, &str)] = &[
    (
        "__pycache__",
        "Python byte-code: kiln leaves it to the interpreter (as the python:3 images do)",
    ),
    ("dev/", "device nodes: the runtime makes /dev"),
    (
        "etc/hostname",
        "copied from the build host by mmdebstrap; the runtime writes it",
    ),
    (
        "etc/resolv.conf",
        "copied from the build host by mmdebstrap; the runtime writes it",
    ),
    (
        "etc/fstab",
        "mmdebstrap's placeholder; containers mount nothing from it",
    ),
    (
        "etc/apt/sources.list",
        "kiln writes the deb822 sources.list.d/debian.sources",
    ),
    (
        "etc/systemd/",
        "systemd units enabled by postinsts: an image starts no systemd",
    ),
    ("var/lib/systemd/", "systemd unit state, as above"),
    (
        "etc/rc",
        "init script links (update-rc.d): an image runs no init",
    ),
    ("etc/.pwd.lock", "lock file left by shadow's tools"),
    ("etc/passwd-", "backup left by shadow's tools"),
    ("etc/group-", "backup left by shadow's tools"),
    ("var/lib/dpkg/status-old", "dpkg's backup"),
    ("var/lib/dpkg/diversions-old", "dpkg's backup"),
    (
        "var/lib/dpkg/arch",
        "written by mmdebstrap; dpkg needs it only with foreign architectures",
    ),
    (
        "var/lib/apt/extended_states",
        "apt's record of automatic installs",
    ),
    (
        "var/cache/debconf/",
        "debconf's cache of every package's templates",
    ),
    ("var/cache/apt/", "apt's package cache"),
    ("var/lib/apt/lists/", "apt's downloaded indexes"),
];

#[test]
fn matches_mmdebstrap_package_set_and_size() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let mm_tar = dir.path().join("mm.tar");
    let status = Command::new("mmdebstrap")
        .args([
            "--quiet",
            "--variant=minbase",
            "--include=python3",
            "bookworm",
        ])
        .arg(&mm_tar)
        .args([
            "deb http://deb.debian.org/debian bookworm main",
            "deb http://deb.debian.org/debian bookworm-updates main",
            "deb http://deb.debian.org/debian-security bookworm-security main",
        ])
        .status()
        .expect("mmdebstrap (apt-get install mmdebstrap)");
    assert!(status.success());
    let mm = dir.path().join("mm");
    std::fs::create_dir(&mm).unwrap();
    run(Command::new("tar")
        .arg("-C")
        .arg(&mm)
        .arg("-xf")
        .arg(&mm_tar));
    let kx_tar = dir.path().join("kiln.tar");
    f.kiln
        .ok(&["export", "py:1", "-o", kx_tar.to_str().unwrap()]);
    let kx = dir.path().join("kiln");
    std::fs::create_dir(&kx).unwrap();
    run(Command::new("tar")
        .arg("-C")
        .arg(&kx)
        .arg("-xf")
        .arg(&kx_tar));

    // The same packages at the same versions.
    let pkgs = |root: &Path| -> BTreeMap<String, String> {
        run(Command::new("dpkg-query")
            .arg(format!("--admindir={}/var/lib/dpkg", root.display()))
            .args(["-W", "-f", "${Package} ${Version} ${db:Status-Abbrev}\\n"]))
        .lines()
        .map(|l| {
            let v: Vec<&str> = l.split_whitespace().collect();
            assert_eq!(v.get(2), Some(&"ii"), "{root:?}: {l}");
            (v[0].to_string(), v[1].to_string())
        })
        .collect()
    };
    let (a, b) = (pkgs(&mm), pkgs(&kx));
    assert_eq!(a, b, "package sets differ (mmdebstrap, kiln)");

    // The same files, but for what mmdebstrap's scripts and setup add that an image does
    // not need (each explained in ONLY_MMDEBSTRAP).
    let (ta, tb) = (common::flat_tree(&mm_tar), common::flat_tree(&kx_tar));
    let path_of = |e: &str| e.split(' ').next().unwrap().to_string();
    let (pa, pb): (BTreeSet<String>, BTreeSet<String>) = (
        ta.iter().map(|e| path_of(e)).collect(),
        tb.iter().map(|e| path_of(e)).collect(),
    );
    let unexplained: Vec<&String> = pa
        .difference(&pb)
        .filter(|p| !ONLY_MMDEBSTRAP.iter().any(|(pat, _)| p.contains(pat)))
        .collect();
    assert!(
        unexplained.is_empty(),
        "only in mmdebstrap's tree: {unexplained:?}"
    );
    let extra: Vec<&String> = pb.difference(&pa).collect();
    assert_eq!(
        extra,
        ["etc/apt/sources.list.d/debian.sources"],
        "only in kiln's tree"
    );
    // Files both have are the same (type, mode, owner, content), except caches apt and
    // debconf rewrite, and /etc/shells: on mmdebstrap's tree usrmerge converted /usr after
    // update-shells ran, so the /usr twins come last; kiln's /usr is merged from the start,
    // which gives the order update-shells itself writes (each shell, then its twin).
    // Hardlinks are compared by their target's content: which name of a hardlinked file
    // a tar stores as the file is an order, not a difference.
    let entries = |t: &[String]| -> BTreeMap<String, String> {
        let raw: BTreeMap<String, Vec<String>> = t
            .iter()
            .map(|e| {
                let v: Vec<String> = e.split(' ').map(str::to_string).collect();
                (v[0].clone(), v)
            })
            .collect();
        raw.iter()
            .map(|(p, v)| {
                let (kind, link, sum) = if v[1] == "Link" {
                    let target = v[4].trim_start_matches("./").trim_start_matches('/');
                    ("Regular", String::new(), raw[target][5].clone())
                } else {
                    (v[1].as_str(), v[4].clone(), v[5].clone())
                };
                (p.clone(), format!("{kind} {} {} {link} {sum}", v[2], v[3]))
            })
            .collect()
    };
    let (ea, eb) = (entries(&ta), entries(&tb));
    let differ: Vec<String> = eb
        .iter()
        .filter(|(p, d)| ea.get(*p).is_some_and(|a| a != *d))
        .map(|(p, d)| format!("{p}: mmdebstrap {} / kiln {d}", ea[p]))
        .filter(|e| !e.starts_with("var/cache/") && !e.starts_with("var/lib/apt/"))
        .filter(|e| !e.starts_with("etc/shells:") && !e.starts_with("etc/shadow:"))
        .collect();
    assert!(differ.is_empty(), "differ from mmdebstrap's: {differ:#?}");

    // And no larger.
    let (mm_size, kiln_size) = (
        std::fs::metadata(&mm_tar).unwrap().len(),
        std::fs::metadata(&kx_tar).unwrap().len(),
    );
    eprintln!("mmdebstrap tarball {mm_size} bytes, kiln image (flattened) {kiln_size} bytes");
    assert!(
        kiln_size <= mm_size,
        "kiln {kiln_size} > mmdebstrap {mm_size}"
    );
}
