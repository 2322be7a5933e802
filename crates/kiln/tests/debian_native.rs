//! Maintainer-script effects kiln writes natively, against the scripts themselves: the same
//! bookworm base built twice from one lock, once with the native effect turned off
//! (`KILN_DEBIAN_NO_NATIVE`, so the script runs in the container step) and once natively;
//! the two images must hold the same files.
mod common;

use common::{json, run, Kiln};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::process::Command;

/// Builds `--packages ca-certificates` from `lock` (written by the first build) into `k`.
fn build(k: &Kiln, lock: &Path, tag: &str, no_native: Option<&str>) -> serde_json::Value {
    let mut c = k.cmd();
    c.args([
        "base",
        "debian",
        "--suite",
        "bookworm",
        "--packages",
        "ca-certificates",
        "-t",
        tag,
        "--lock",
        lock.to_str().unwrap(),
        "--json",
    ]);
    match no_native {
        Some(v) => c.env("KILN_DEBIAN_NO_NATIVE", v),
        None => c.env_remove("KILN_DEBIAN_NO_NATIVE"),
    };
    let out = c.output().expect("run kiln");
    assert!(
        out.status.success(),
        "kiln base debian failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    json(&String::from_utf8(out.stdout).unwrap())
}

/// One entry of an image's flattened tree.
#[derive(Debug, PartialEq, Eq)]
struct Entry {
    kind: char,
    mode: u32,
    owner: (u64, u64),
    mtime: u64,
    link: Option<String>,
    bytes: Vec<u8>,
}

/// Every entry of `image` (`kiln export`), by path.
fn entries(k: &Kiln, image: &str) -> BTreeMap<String, Entry> {
    let dir = tempfile::tempdir().unwrap();
    let tar_path = dir.path().join("x.tar");
    k.ok(&["export", image, "-o", tar_path.to_str().unwrap()]);
    let mut a = tar::Archive::new(std::fs::File::open(&tar_path).unwrap());
    let mut out = BTreeMap::new();
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        let path = e.path().unwrap().to_string_lossy().into_owned();
        let path = path
            .trim_start_matches("./")
            .trim_end_matches('/')
            .to_string();
        let h = e.header().clone();
        let kind = match h.entry_type() {
            tar::EntryType::Directory => 'd',
            tar::EntryType::Symlink => 'l',
            tar::EntryType::Link => 'h',
            tar::EntryType::Regular => 'f',
            _ => '?',
        };
        let mut bytes = Vec::new();
        e.read_to_end(&mut bytes).unwrap();
        out.insert(
            path,
            Entry {
                kind,
                mode: h.mode().unwrap() & 0o7777,
                owner: (h.uid().unwrap(), h.gid().unwrap()),
                mtime: h.mtime().unwrap(),
                link: h
                    .link_name()
                    .unwrap()
                    .map(|l| l.to_string_lossy().into_owned()),
                bytes,
            },
        );
    }
    out
}

#[test]
fn ca_certificates_native_equals_the_script() {
    let script = Kiln::new();
    let lock = script.dir.path().join("ca.lock");
    let rs = build(&script, &lock, "ca:script", Some("ca-certificates"));
    let ran: Vec<&str> = rs["scripts_run"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert!(ran.contains(&"ca-certificates (postinst)"), "{rs}");

    // The same lock in a second store with a copy of the .deb cache.
    let native = Kiln::new();
    let to = native.root().join("cache/debian");
    std::fs::create_dir_all(&to).unwrap();
    run(Command::new("cp")
        .arg("-a")
        .arg(script.root().join("cache/debian/debs"))
        .arg(&to));
    let rn = build(&native, &lock, "ca:native", None);
    assert_eq!(rn["downloaded"]["packages"], 0, "{rn}");
    assert!(
        !rn["scripts_run"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s.as_str().unwrap().starts_with("ca-certificates")),
        "{rn}"
    );
    let how = rn["maintainer_scripts"]["ca-certificates"]
        .as_str()
        .unwrap();
    assert!(how.starts_with("native:"), "{how}");

    let a = entries(&script, "ca:script");
    let b = entries(&native, "ca:native");
    let ours = |p: &str| {
        p == "etc/ca-certificates.conf"
            || p.starts_with("etc/ssl/certs")
            || p.starts_with("usr/local/share/ca-certificates")
    };
    let certs: Vec<&String> = b.keys().filter(|p| ours(p)).collect();
    let pems = certs.iter().filter(|p| p.ends_with(".pem")).count();
    let hashes = certs.iter().filter(|p| p.ends_with(".0")).count();
    assert!(pems > 100, "{certs:?}");
    assert_eq!(pems, hashes, "{certs:?}");
    assert!(b["etc/ssl/certs/ca-certificates.crt"].bytes.len() > 100_000);
    // File for file: names, kinds, modes, owners, times, link targets, bytes.
    let mut differ = Vec::new();
    for p in a.keys().chain(b.keys()).filter(|p| ours(p)) {
        if a.get(p) != b.get(p) {
            differ.push(format!(
                "{p}: script {:?} / native {:?}",
                a.get(p)
                    .map(|e| (e.kind, e.mode, e.owner, e.mtime, &e.link, e.bytes.len())),
                b.get(p)
                    .map(|e| (e.kind, e.mode, e.owner, e.mtime, &e.link, e.bytes.len()))
            ));
        }
    }
    assert!(
        differ.is_empty(),
        "native differs from the script: {differ:#?}"
    );
    // The rest of the image too, but for what only the script leaves: debconf's records
    // of the questions it asked and the trigger it deferred (a no-op without hooks).
    let expected = [
        "var/cache/debconf/config.dat",
        "var/cache/debconf/templates.dat",
        "var/lib/dpkg/triggers/Unincorp",
    ];
    let mut other = Vec::new();
    for p in a.keys().chain(b.keys()) {
        if !ours(p) && !expected.contains(&p.as_str()) && a.get(p) != b.get(p) && !other.contains(p)
        {
            other.push(p.clone());
        }
    }
    assert!(other.is_empty(), "other differences: {other:#?}");
    // The bundle works: a TLS library in the image reads it.
    let out = native.ok(&[
        "run",
        "--rm",
        "--pull",
        "never",
        "--network",
        "none",
        "ca:native",
        "sh",
        "-c",
        "openssl verify -CApath /etc/ssl/certs /etc/ssl/certs/ISRG_Root_X1.pem && openssl storeutl -noout -certs /etc/ssl/certs/ca-certificates.crt | tail -1",
    ]);
    assert!(out.contains("ISRG_Root_X1.pem: OK"), "{out}");
    assert!(out.contains(&format!("Total found: {pems}")), "{out}");
}
