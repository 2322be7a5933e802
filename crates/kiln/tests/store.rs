//! The store and archives end to end: determinism, tags under concurrency, crash safety,
//! multi-platform indexes, compression variants, prune and check.

mod common;
use common::*;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

fn blob_set(root: &Path) -> BTreeSet<String> {
    std::fs::read_dir(root.join("blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

fn big_rootfs(dir: &Path, megabytes: usize) -> std::path::PathBuf {
    let root = dir.join("bigroot");
    std::fs::create_dir_all(root.join("weights")).unwrap();
    // Incompressible-ish data, different per file, deterministic.
    let mut state = 0x9e3779b97f4a7c15u64;
    for f in 0..megabytes {
        let mut data = vec![0u8; 1 << 20];
        for chunk in data.chunks_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            chunk.copy_from_slice(&state.to_le_bytes()[..chunk.len()]);
        }
        std::fs::write(root.join(format!("weights/shard-{f:03}.bin")), data).unwrap();
    }
    root
}

#[test]
fn save_is_byte_identical_and_load_is_idempotent() {
    let k = Kiln::new();
    k.ok(&[
        "import",
        busybox_rootfs().to_str().unwrap(),
        "-t",
        "det:v1",
        "-c",
        "ENV A=1",
    ]);
    let a = k.dir.path().join("a.tar");
    let b = k.dir.path().join("b.tar");
    k.ok(&["save", "det:v1", "-o", a.to_str().unwrap()]);
    k.ok(&["save", "det:v1", "-o", b.to_str().unwrap()]);
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    for format in ["docker", "oci"] {
        let x = k.dir.path().join(format!("{format}1.tar"));
        let y = k.dir.path().join(format!("{format}2.tar"));
        k.ok(&[
            "save",
            "--format",
            format,
            "det:v1",
            "-o",
            x.to_str().unwrap(),
        ]);
        k.ok(&[
            "save",
            "--format",
            format,
            "det:v1",
            "-o",
            y.to_str().unwrap(),
        ]);
        assert_eq!(
            std::fs::read(&x).unwrap(),
            std::fs::read(&y).unwrap(),
            "{format}"
        );
    }

    let k2 = Kiln::new();
    k2.ok(&["load", "-i", a.to_str().unwrap()]);
    let index1 = std::fs::read(k2.root().join("index.json")).unwrap();
    let blobs1 = blob_set(&k2.root());
    let history1 = std::fs::read(k2.root().join("history/tags.jsonl")).unwrap();
    let out = k2.ok(&["load", "-i", a.to_str().unwrap()]);
    assert_eq!(out.trim(), "Loaded image: det:v1");
    assert_eq!(std::fs::read(k2.root().join("index.json")).unwrap(), index1);
    assert_eq!(blob_set(&k2.root()), blobs1);
    assert_eq!(
        std::fs::read(k2.root().join("history/tags.jsonl")).unwrap(),
        history1
    );
    // The docker layout loads to the same image ID.
    let k3 = Kiln::new();
    k3.ok(&[
        "load",
        "-i",
        k.dir.path().join("docker1.tar").to_str().unwrap(),
    ]);
    assert_eq!(
        k3.ok(&["inspect", "--format", "{{.Id}}", "det:v1"]),
        k.ok(&["inspect", "--format", "{{.Id}}", "det:v1"])
    );
}

#[test]
fn import_is_reproducible_with_source_date_epoch() {
    let digests: Vec<String> = (0..2)
        .map(|i| {
            let k = Kiln::new();
            let src = k.dir.path().join("src");
            run(Command::new("cp").arg("-a").arg(busybox_rootfs()).arg(&src));
            // Different mtimes on disk in each run.
            run(Command::new("touch")
                .arg("-d")
                .arg(format!("2025-0{}-01 10:00", i + 1))
                .arg(src.join("etc/hello.txt")));
            let out = k
                .cmd()
                .env("SOURCE_DATE_EPOCH", "1700000000")
                .args(["import", src.to_str().unwrap(), "-t", "rep:v1"])
                .output()
                .unwrap();
            assert!(out.status.success());
            k.ok(&["inspect", "--format", "{{.Digest}} {{.Created}}", "rep:v1"])
        })
        .collect();
    assert_eq!(digests[0], digests[1]);
    assert!(
        digests[0].contains("2023-11-14T22:13:20Z"),
        "{}",
        digests[0]
    );
}

#[test]
fn concurrent_tags_are_never_lost() {
    let k = Kiln::new();
    k.ok(&[
        "import",
        busybox_rootfs().to_str().unwrap(),
        "-t",
        "base:v1",
    ]);
    let children: Vec<_> = (0..16)
        .map(|i| {
            k.cmd()
                .args(["tag", "base:v1", &format!("app{i}:v{i}")])
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    let v = json(&k.ok(&["images", "--json"]));
    let names = v[0]["Names"].as_array().unwrap();
    assert_eq!(names.len(), 17, "{v}");
    k.ok(&["check"]);
}

#[test]
fn sigkill_at_any_point_leaves_a_sound_store() {
    let k = Kiln::new();
    let root = big_rootfs(k.dir.path(), 48);
    k.ok(&[
        "import",
        root.to_str().unwrap(),
        "-t",
        "big:v1",
        "--compression",
        "none",
    ]);
    let archive = k.dir.path().join("big.tar");
    k.ok(&["save", "big:v1", "-o", archive.to_str().unwrap()]);
    let target = Kiln::new();
    target.ok(&["images"]);
    // Kill loads, imports and saves at staggered instants.
    for i in 0..12u64 {
        let mut child = match i % 3 {
            0 | 1 => target
                .cmd()
                .args(["load", "-q", "-i", archive.to_str().unwrap()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
            _ => target
                .cmd()
                .args(["import", root.to_str().unwrap(), "-t", &format!("imp:{i}")])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        };
        std::thread::sleep(Duration::from_millis(15 + i * 37));
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        let check = target.cmd().arg("check").output().unwrap();
        assert!(
            check.status.success(),
            "store broken after SIGKILL #{i}:\n{}",
            String::from_utf8_lossy(&check.stderr)
        );
        // A name is either fully there (loadable, runnable data) or absent.
        let images = json(&target.ok(&["images", "--json"]));
        for img in images.as_array().unwrap() {
            let digest = img["Digest"].as_str().unwrap();
            target.ok(&["inspect", digest]);
        }
    }
    let pruned = target.ok(&["prune"]);
    assert!(pruned.contains("Total reclaimed space"), "{pruned}");
    assert_eq!(
        std::fs::read_dir(target.root().join("tmp"))
            .unwrap()
            .count(),
        0
    );
    target.ok(&["check"]);
    target.ok(&["load", "-q", "-i", archive.to_str().unwrap()]);
    target.ok(&["check"]);
    assert_eq!(
        target.ok(&["inspect", "--format", "{{.Digest}}", "big:v1"]),
        k.ok(&["inspect", "--format", "{{.Digest}}", "big:v1"])
    );
}

#[test]
fn tag_rmi_prune_and_check() {
    let k = Kiln::new();
    k.ok(&["import", busybox_rootfs().to_str().unwrap(), "-t", "one:v1"]);
    k.ok(&["tag", "one:v1", "two:v1"]);
    let id = k.ok(&["inspect", "--format", "{{.Id}}", "one:v1"]);
    let id = id.trim();
    // By ID with two names: refused without --force.
    let (code, err) = k.fails(&["rmi", &id[7..19]]);
    assert_eq!(code, 1);
    assert!(
        err.contains("several names") && err.contains("hint:"),
        "{err}"
    );
    // By name: untag only while another name remains.
    let out = k.ok(&["rmi", "two:v1"]);
    assert_eq!(out.trim(), "Untagged: two:v1");
    assert!(k.ok(&["images"]).contains("one"));
    let out = k.ok(&["rmi", "one:v1"]);
    assert!(out.contains("Deleted: sha256:"), "{out}");
    assert_eq!(
        json(&k.ok(&["images", "--json"])).as_array().unwrap().len(),
        0
    );
    let pruned = k.ok(&["prune", "--json"]);
    let v = json(&pruned);
    assert_eq!(v["blobs"], 3, "{v}");
    assert!(v["reclaimed"].as_u64().unwrap() > 1_000_000);
    assert!(blob_set(&k.root()).is_empty());

    // check names a corrupted blob and exits non-zero.
    k.ok(&["import", busybox_rootfs().to_str().unwrap(), "-t", "c:v1"]);
    k.ok(&["check"]);
    let manifest = json(&k.ok(&["inspect", "c:v1"]))[0]["Manifest"].clone();
    let layer = manifest["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let path = k.root().join("blobs/sha256").join(&layer[7..]);
    let mut bytes = std::fs::read(&path).unwrap();
    let n = bytes.len();
    bytes[n / 2] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();
    let (code, err) = k.fails(&["check"]);
    assert_eq!(code, 1);
    assert!(
        err.contains(&layer) && err.contains("does not match"),
        "{err}"
    );
    std::fs::remove_file(&path).unwrap();
    let (_, err) = k.fails(&["check"]);
    assert!(
        err.contains("image c:v1") && err.contains("missing"),
        "{err}"
    );
}

/// A two-platform index of which only the host's platform is present.
#[test]
fn multi_platform_index_keeps_the_index_and_picks_the_host() {
    let k = Kiln::new();
    k.ok(&["import", busybox_rootfs().to_str().unwrap(), "-t", "mp:v1"]);
    let v = json(&k.ok(&["inspect", "mp:v1"]))[0].clone();
    let manifest_digest = v["Digest"].as_str().unwrap().to_string();
    let dir = k.dir.path().join("layout");
    run(skopeo()
        .arg("copy")
        .arg(format!("oci:{}:mp:v1", k.root().display()))
        .arg(format!("oci:{}", dir.display())));
    let size = std::fs::metadata(dir.join("blobs/sha256").join(&manifest_digest[7..]))
        .unwrap()
        .len();
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        a => a,
    };
    let other = if arch == "amd64" { "arm64" } else { "amd64" };
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": format!("sha256:{}", "ab".repeat(32)), "size": 1234, "platform": {"os": "linux", "architecture": other}},
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manifest_digest, "size": size, "platform": {"os": "linux", "architecture": arch}},
        ]
    });
    let bytes = serde_json::to_vec(&index).unwrap();
    let index_hex = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes));
    std::fs::write(dir.join("blobs/sha256").join(&index_hex), &bytes).unwrap();
    let top = serde_json::json!({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.index.v1+json", "digest": format!("sha256:{index_hex}"), "size": bytes.len(),
        "annotations": {"org.opencontainers.image.ref.name": "multi:v1"}}]});
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&top).unwrap()).unwrap();

    let k2 = Kiln::new();
    assert_eq!(
        k2.ok(&["load", "-i", dir.to_str().unwrap()]).trim(),
        "Loaded image: multi:v1"
    );
    let v = json(&k2.ok(&["inspect", "multi:v1"]))[0].clone();
    assert_eq!(v["MediaType"], "application/vnd.oci.image.index.v1+json");
    assert_eq!(v["Digest"], format!("sha256:{index_hex}"));
    assert_eq!(v["ManifestDigest"], manifest_digest);
    assert_eq!(v["Architecture"], arch);
    let check = k2.cmd().arg("check").output().unwrap();
    assert!(check.status.success());
    assert!(String::from_utf8_lossy(&check.stderr).contains(&format!("platform linux/{other}")));
    // Saved and loaded again, the index survives as the image.
    let out = k2.dir.path().join("multi.tar");
    k2.ok(&["save", "multi:v1", "-o", out.to_str().unwrap()]);
    let k3 = Kiln::new();
    k3.ok(&["load", "-i", out.to_str().unwrap()]);
    assert_eq!(
        k3.ok(&["inspect", "--format", "{{.Digest}}", "multi:v1"])
            .trim(),
        format!("sha256:{index_hex}")
    );
}

#[test]
fn zstd_gzip_and_uncompressed_layers() {
    let k = Kiln::new();
    let mut trees = Vec::new();
    for c in ["gzip", "zstd", "none"] {
        let name = format!("comp-{c}:v1");
        k.ok(&[
            "import",
            busybox_tar().to_str().unwrap(),
            "-t",
            &name,
            "--compression",
            c,
        ]);
        let v = json(&k.ok(&["inspect", &name]))[0].clone();
        let mt = v["Manifest"]["layers"][0]["mediaType"]
            .as_str()
            .unwrap()
            .to_string();
        let want = match c {
            "gzip" => "application/vnd.oci.image.layer.v1.tar+gzip",
            "zstd" => "application/vnd.oci.image.layer.v1.tar+zstd",
            _ => "application/vnd.oci.image.layer.v1.tar",
        };
        assert_eq!(mt, want);
        // Through an archive into another store, and flattened.
        let archive = k.dir.path().join(format!("{c}.tar"));
        k.ok(&["save", &name, "-o", archive.to_str().unwrap()]);
        let k2 = Kiln::new();
        k2.ok(&["load", "-i", archive.to_str().unwrap()]);
        let flat = k.dir.path().join(format!("{c}-flat.tar"));
        k2.ok(&["export", &name, "-o", flat.to_str().unwrap()]);
        trees.push(tar_listing(&flat));
        // The Docker layout carries the layer uncompressed, and loads to the same ID.
        let docker = k.dir.path().join(format!("{c}-docker.tar"));
        k.ok(&[
            "save",
            "--format",
            "docker",
            &name,
            "-o",
            docker.to_str().unwrap(),
        ]);
        let k3 = Kiln::new();
        k3.ok(&["load", "-i", docker.to_str().unwrap()]);
        assert_eq!(
            k3.ok(&["inspect", "--format", "{{.Id}}", &name]),
            k.ok(&["inspect", "--format", "{{.Id}}", &name])
        );
    }
    assert_eq!(trees[0], trees[1]);
    assert_eq!(trees[0], trees[2]);
    assert!(trees[0].iter().any(|(n, _)| n == "etc/hello.txt"));
    // A zstd-compressed archive as a whole loads too.
    let zst = k.dir.path().join("all.tar.zst");
    run(Command::new("zstd")
        .arg("-q")
        .arg("-f")
        .arg(k.dir.path().join("gzip.tar"))
        .arg("-o")
        .arg(&zst));
    let k4 = Kiln::new();
    assert_eq!(
        k4.ok(&["load", "-i", zst.to_str().unwrap()]).trim(),
        "Loaded image: comp-gzip:v1"
    );
}

#[test]
fn import_applies_changes_and_stdin() {
    let k = Kiln::new();
    let out = k
        .cmd()
        .args([
            "import",
            "-",
            "imp:v1",
            "-c",
            "CMD [\"cat\", \"/etc/hello.txt\"]",
            "-c",
            "ENV MODEL=iris",
            "-c",
            "EXPOSE 8000",
            "-c",
            "WORKDIR /app",
            "-c",
            "LABEL org.example.team=ml",
        ])
        .stdin(std::fs::File::open(busybox_tar()).unwrap())
        .output()
        .unwrap();
    assert_success(&out);
    let id = String::from_utf8(out.stdout).unwrap();
    assert!(id.trim().starts_with("sha256:"));
    let c = json(&k.ok(&["inspect", "imp:v1"]))[0]["Config"].clone();
    assert_eq!(c["Cmd"], serde_json::json!(["cat", "/etc/hello.txt"]));
    assert_eq!(c["Env"], serde_json::json!(["MODEL=iris"]));
    assert_eq!(c["ExposedPorts"], serde_json::json!({"8000/tcp": {}}));
    assert_eq!(c["WorkingDir"], "/app");
    assert_eq!(c["Labels"]["org.example.team"], "ml");
    let images = k.ok(&["images"]);
    assert!(images.starts_with("REPOSITORY"), "{images}");
    assert!(images.contains("imp "), "{images}");
    let (_, err) = k.fails(&["import", "-", "x:v1", "-c", "RUN echo no"]);
    assert!(err.contains("`RUN` is not supported"), "{err}");
}

/// Docker 25+ `docker save`: an OCI layout whose index.json carries the full name in
/// `io.containerd.image.name` and only the tag in `ref.name`, plus manifest.json; read
/// from standard input, as `docker save x | kiln load` does.
#[test]
fn docker_25_layout_from_stdin() {
    let k = Kiln::new();
    k.ok(&[
        "import",
        busybox_rootfs().to_str().unwrap(),
        "-t",
        "team/app:v3",
    ]);
    let digest = k.ok(&["inspect", "--format", "{{.Digest}}", "team/app:v3"]);
    let saved = k.dir.path().join("kiln.tar");
    k.ok(&["save", "team/app:v3", "-o", saved.to_str().unwrap()]);
    // Rewrite index.json as Docker 25 writes it.
    let mut archive = tar::Archive::new(std::fs::File::open(&saved).unwrap());
    let mut out = tar::Builder::new(Vec::new());
    for entry in archive.entries().unwrap() {
        let mut e = entry.unwrap();
        let path = e.path().unwrap().into_owned();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut e, &mut data).unwrap();
        if path.to_str() == Some("index.json") {
            let mut v = json(std::str::from_utf8(&data).unwrap());
            v["manifests"][0]["annotations"] = serde_json::json!({
                "io.containerd.image.name": "docker.io/team/app:v3",
                "org.opencontainers.image.ref.name": "v3",
            });
            data = serde_json::to_vec(&v).unwrap();
        }
        let mut h = e.header().clone();
        h.set_size(data.len() as u64);
        h.set_cksum();
        out.append(&h, &data[..]).unwrap();
    }
    let bytes = out.into_inner().unwrap();
    let k2 = Kiln::new();
    let mut child = k2
        .cmd()
        .arg("load")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), &bytes).unwrap();
    drop(child.stdin.take());
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        "Loaded image: team/app:v3"
    );
    assert_eq!(
        k2.ok(&[
            "inspect",
            "--format",
            "{{.Digest}}",
            "docker.io/team/app:v3"
        ]),
        digest
    );
}

/// `kiln load` unpacks layers while it reads them: the snapshots are there before the
/// first run, equal to what a run unpacks from the blob, and a layer whose content is
/// not what the config says leaves neither a snapshot nor a temp directory.
#[test]
fn load_unpacks_layers_ahead() {
    let k = Kiln::new();
    let rootfs = big_rootfs(k.dir.path(), 3);
    std::fs::write(rootfs.join("hello.txt"), "ahead\n").unwrap();
    run(Command::new("cp")
        .arg("-a")
        .arg(busybox_rootfs().join("."))
        .arg(&rootfs));
    let entries = |k: &Kiln, d: &str| -> Vec<String> {
        std::fs::read_dir(k.root().join(d))
            .map(|r| {
                r.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    for (c, format) in [("gzip", "oci"), ("zstd", "oci"), ("none", "docker")] {
        let name = format!("ahead-{c}:v1");
        k.ok(&[
            "import",
            rootfs.to_str().unwrap(),
            "-t",
            &name,
            "--compression",
            c,
        ]);
        let archive = k.dir.path().join(format!("ahead-{c}.tar"));
        k.ok(&[
            "save",
            "--format",
            format,
            &name,
            "-o",
            archive.to_str().unwrap(),
        ]);
        let k2 = Kiln::new();
        k2.ok(&["load", "-i", archive.to_str().unwrap()]);
        // One layer: its chain ID is its diff ID.
        let diff = json(&k2.ok(&["inspect", &name]))[0]["ImageConfig"]["rootfs"]["diff_ids"][0]
            .as_str()
            .unwrap()
            .trim_start_matches("sha256:")
            .to_string();
        assert_eq!(entries(&k2, "snapshots"), vec![diff.clone()], "{c}");
        assert!(
            entries(&k2, "tmp").is_empty(),
            "{c}: {:?}",
            entries(&k2, "tmp")
        );
        // The same tree a run unpacks from the blob in a store that never loaded it.
        let k3 = Kiln::new();
        k3.ok(&[
            "import",
            rootfs.to_str().unwrap(),
            "-t",
            &name,
            "--compression",
            c,
        ]);
        k3.ok(&["run", "--rm", "--network", "none", &name, "/bin/true"]);
        let ahead = dir_tree(&k2.root().join("snapshots").join(&diff));
        let unpacked = dir_tree(&k3.root().join("snapshots").join(&diff));
        assert_eq!(ahead, unpacked, "{c}");
        assert!(ahead.iter().any(|l| l.contains("hello.txt")), "{ahead:?}");
        assert_eq!(
            k2.ok(&[
                "run",
                "--rm",
                "--network",
                "none",
                &name,
                "cat",
                "/hello.txt"
            ]),
            "ahead\n"
        );
    }
    // A Docker archive whose layer is not what its config says: refused, nothing left.
    let archive = k.dir.path().join("ahead-none.tar");
    let dir = k.dir.path().join("tampered");
    std::fs::create_dir_all(&dir).unwrap();
    run(Command::new("tar")
        .arg("-xf")
        .arg(&archive)
        .arg("-C")
        .arg(&dir));
    let manifest = json(&std::fs::read_to_string(dir.join("manifest.json")).unwrap());
    let layer = dir.join(manifest[0]["Layers"][0].as_str().unwrap());
    let mut bytes = std::fs::read(&layer).unwrap();
    let at = bytes.windows(6).position(|w| w == b"ahead\n").unwrap();
    bytes[at] = b'A';
    std::fs::write(&layer, bytes).unwrap();
    let bad = k.dir.path().join("tampered.tar");
    run(Command::new("tar")
        .arg("-cf")
        .arg(&bad)
        .arg("-C")
        .arg(&dir)
        .arg("."));
    let k4 = Kiln::new();
    let (code, err) = k4.fails(&["load", "-i", bad.to_str().unwrap()]);
    assert_ne!(code, 0);
    assert!(err.contains("sha256:"), "{err}");
    assert!(entries(&k4, "snapshots").is_empty());
    assert!(entries(&k4, "tmp").is_empty(), "{:?}", entries(&k4, "tmp"));
}

/// Every entry below `root`: path, type, mode, owner, mtime, size, link target and a
/// hash of the content.
fn dir_tree(root: &Path) -> Vec<String> {
    use std::hash::{Hash, Hasher};
    use std::os::unix::fs::MetadataExt;
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let md = std::fs::symlink_metadata(&p).unwrap();
            let mut h = std::collections::hash_map::DefaultHasher::new();
            if md.is_file() {
                std::fs::read(&p).unwrap().hash(&mut h);
            } else if md.file_type().is_symlink() {
                std::fs::read_link(&p).unwrap().hash(&mut h);
            } else if md.is_dir() {
                stack.push(p.clone());
            }
            out.push(format!(
                "{} {:o} {}:{} {} {} {:x}",
                p.strip_prefix(root).unwrap().display(),
                md.mode(),
                md.uid(),
                md.gid(),
                md.mtime(),
                md.len(),
                h.finish()
            ));
        }
    }
    out.sort();
    out
}
