//! Bad input: broken archives and references fail with exit code 1, an `error:` line that
//! names the file and the entry or digest at fault, a `hint:` where one helps, no panic,
//! and a store exactly as it was before (index.json, images, no temp files, `kiln check`).

mod common;
use common::*;
use sha2::Digest as _;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Valid archives of `bad:v1` (busybox, one uncompressed layer bigger than the 1 MiB that
/// `kiln load` keeps in memory), written by kiln itself.
struct Fixtures {
    _kiln: Kiln,
    /// `kiln save`: an OCI layout plus Docker's manifest.json.
    oci: PathBuf,
    /// `kiln save --format docker`: manifest.json, `<diffid>/layer.tar`, `<hex>.json`.
    docker: PathBuf,
}

fn fixtures() -> &'static Fixtures {
    static F: OnceLock<Fixtures> = OnceLock::new();
    F.get_or_init(|| {
        let k = Kiln::new().kept_until_exit();
        let rootfs = busybox_rootfs().to_str().unwrap();
        k.ok(&["import", rootfs, "-t", "bad:v1", "--compression", "none"]);
        let oci = k.dir.path().join("good.tar");
        let docker = k.dir.path().join("good-docker.tar");
        k.ok(&["save", "bad:v1", "-o", oci.to_str().unwrap()]);
        k.ok(&[
            "save",
            "--format",
            "docker",
            "bad:v1",
            "-o",
            docker.to_str().unwrap(),
        ]);
        Fixtures {
            _kiln: k,
            oci,
            docker,
        }
    })
}

/// One entry of a tar, to edit.
struct Entry {
    name: String,
    header: tar::Header,
    data: Vec<u8>,
}

fn read_tar(path: &Path) -> Vec<Entry> {
    use std::io::Read as _;
    let mut archive = tar::Archive::new(std::fs::File::open(path).unwrap());
    archive
        .entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let name = String::from_utf8_lossy(&e.path_bytes()).into_owned();
            let header = e.header().clone();
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            Entry { name, header, data }
        })
        .collect()
}

fn write_tar(path: &Path, entries: &[Entry]) {
    let mut b = tar::Builder::new(std::fs::File::create(path).unwrap());
    for e in entries {
        let mut h = e.header.clone();
        h.set_path(&e.name).unwrap();
        h.set_size(e.data.len() as u64);
        h.set_cksum();
        b.append(&h, e.data.as_slice()).unwrap();
    }
    b.into_inner().unwrap();
}

/// A copy of `src` at `dst` with `edit` applied to its entries.
fn rewrite(src: &Path, dst: &Path, edit: impl FnOnce(&mut Vec<Entry>)) {
    let mut entries = read_tar(src);
    edit(&mut entries);
    write_tar(dst, &entries);
}

fn entry<'a>(entries: &'a mut [Entry], name: &str) -> &'a mut Entry {
    entries
        .iter_mut()
        .find(|e| e.name.trim_start_matches("./") == name)
        .unwrap_or_else(|| panic!("no entry {name}"))
}

/// The digest (hex) of the single layer of `bad:v1`, from the OCI index and manifest.
fn oci_layer_hex(entries: &mut [Entry]) -> String {
    let manifest = oci_manifest_hex(entries);
    let m = json(
        std::str::from_utf8(&entry(entries, &format!("blobs/sha256/{manifest}")).data).unwrap(),
    );
    m["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_string()
}

fn oci_manifest_hex(entries: &mut [Entry]) -> String {
    let index = json(std::str::from_utf8(&entry(entries, "index.json").data).unwrap());
    index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_string()
}

/// Docker's manifest.json of a docker-format archive.
fn docker_manifest(entries: &mut [Entry]) -> serde_json::Value {
    json(std::str::from_utf8(&entry(entries, "manifest.json").data).unwrap())
}

/// What must not change when a command fails.
struct Snapshot {
    index: Vec<u8>,
    images: String,
    blobs: Vec<String>,
}

fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn snapshot(k: &Kiln) -> Snapshot {
    // Creates the store if it is not there yet.
    k.ok(&["images"]);
    Snapshot {
        index: std::fs::read(k.root().join("index.json")).unwrap(),
        images: k.ok(&["images", "--json"]),
        blobs: listing(&k.root().join("blobs/sha256")),
    }
}

fn assert_untouched(k: &Kiln, before: &Snapshot) {
    let index = std::fs::read(k.root().join("index.json")).unwrap();
    assert!(
        index == before.index,
        "index.json changed:\nbefore: {}\nafter:  {}",
        String::from_utf8_lossy(&before.index),
        String::from_utf8_lossy(&index)
    );
    assert_eq!(k.ok(&["images", "--json"]), before.images, "images changed");
    assert_eq!(
        listing(&k.root().join("blobs/sha256")),
        before.blobs,
        "blobs were added or removed"
    );
    let tmp = listing(&k.root().join("tmp"));
    assert!(tmp.is_empty(), "left behind in the store's tmp/: {tmp:?}");
    k.ok(&["check"]);
}

/// Runs `args` on `k`, expecting a clean failure: exit code 1, a first line `error: ...`
/// naming each of `names`, a `hint:` line containing `hint` (when given), the store as it
/// was. Returns stderr.
fn fails_cleanly(k: &Kiln, args: &[&str], names: &[&str], hint: Option<&str>) -> String {
    let before = snapshot(k);
    let (code, stderr) = k.fails(args);
    assert_eq!(code, 1, "kiln {args:?}: exit code\n{stderr}");
    let first = stderr.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("error: "),
        "kiln {args:?}: first line of stderr is not `error: ...`:\n{stderr}"
    );
    for n in names {
        assert!(
            first.contains(n),
            "kiln {args:?}: the error does not name `{n}`:\n{stderr}"
        );
    }
    // Lines of the printer only: no raw bytes or text of the input leaking through.
    for l in stderr.lines() {
        assert!(
            ["error: ", "caused by: ", "hint: "]
                .iter()
                .any(|p| l.starts_with(p)),
            "kiln {args:?}: stray line in stderr: {l:?}\n{stderr}"
        );
        assert!(
            !l.contains(|c: char| c.is_control() || c == char::REPLACEMENT_CHARACTER),
            "kiln {args:?}: unprintable characters in stderr: {l:?}"
        );
    }
    // A cause is printed once: not at the end of the first line and again below it.
    for cause in stderr.lines().filter_map(|l| l.strip_prefix("caused by: ")) {
        assert!(
            !first.ends_with(&format!(": {cause}")),
            "kiln {args:?}: the cause is printed twice:\n{stderr}"
        );
    }
    if let Some(h) = hint {
        assert!(
            stderr
                .lines()
                .any(|l| l.starts_with("hint: ") && l.contains(h)),
            "kiln {args:?}: no `hint:` line containing {h:?}:\n{stderr}"
        );
    }
    assert_untouched(k, &before);
    stderr
}

/// `kiln load -i FILE` into a fresh store, expected to fail cleanly.
fn load_fails(file: &Path, names: &[&str], hint: bool) -> String {
    let k = Kiln::new();
    let path = file.to_str().unwrap();
    let mut all = vec![path];
    all.extend_from_slice(names);
    fails_cleanly(&k, &["load", "-i", path], &all, hint.then_some(""))
}

/// A fresh store holding `bad:v1`.
fn store_with_image() -> Kiln {
    let k = Kiln::new();
    k.ok(&["load", "-i", fixtures().oci.to_str().unwrap()]);
    k
}

/// A place for the broken files.
fn scratch() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

// 1. Not a tar.

#[test]
fn not_a_tar_random_bytes() {
    let d = scratch();
    let f = d.path().join("random.tar");
    // xorshift: reproducible bytes, no compression magic at the start.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut bytes: Vec<u8> = (0..8192)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    bytes[0] = b'Q';
    std::fs::write(&f, bytes).unwrap();
    let err = load_fails(&f, &[], true);
    assert!(err.contains("not a tar archive"), "{err}");
}

#[test]
fn not_a_tar_empty_file() {
    let d = scratch();
    let f = d.path().join("empty.tar");
    std::fs::write(&f, b"").unwrap();
    load_fails(&f, &[], true);
}

#[test]
fn not_a_tar_text_file() {
    let d = scratch();
    let f = d.path().join("notes.txt");
    std::fs::write(
        &f,
        "These are not the images you are looking for.\n".repeat(40),
    )
    .unwrap();
    let err = load_fails(&f, &[], true);
    assert!(err.contains("not a tar archive"), "{err}");
}

// 2. Truncated.

/// (entry name, header offset, data offset, size) of each entry of a tar.
fn positions(path: &Path) -> Vec<(String, u64, u64, u64)> {
    let mut archive = tar::Archive::new(std::fs::File::open(path).unwrap());
    archive
        .entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let name = String::from_utf8_lossy(&e.path_bytes()).into_owned();
            (
                name,
                e.raw_header_position(),
                e.raw_file_position(),
                e.size(),
            )
        })
        .collect()
}

fn truncate_copy(src: &Path, dst: &Path, len: u64) {
    let bytes = std::fs::read(src).unwrap();
    std::fs::write(dst, &bytes[..len as usize]).unwrap();
}

#[test]
fn truncated_in_layer_blob() {
    let src = &fixtures().oci;
    let layer = oci_layer_hex(&mut read_tar(src));
    let name = format!("blobs/sha256/{layer}");
    let (_, _, data, size) = positions(src).into_iter().find(|p| p.0 == name).unwrap();
    assert!(size > 1 << 20, "the layer should be staged on disk");
    let d = scratch();
    let f = d.path().join("cut.tar");
    truncate_copy(src, &f, data + size / 2);
    let err = load_fails(&f, &[&layer], true);
    assert!(err.contains("truncated"), "{err}");
}

#[test]
fn truncated_in_header() {
    let src = &fixtures().oci;
    let pos = positions(src);
    // Cut in the middle of the last entry's header: that entry has no name yet, so the
    // error names the entry before it.
    let (_, header, _, _) = pos[pos.len() - 1];
    let before = &pos[pos.len() - 2].0;
    let d = scratch();
    let f = d.path().join("cut.tar");
    truncate_copy(src, &f, header + 200);
    let err = load_fails(&f, &[&format!("after entry `{before}`")], true);
    assert!(err.contains("truncated"), "{err}");
}

// 3. Missing blob.

#[test]
fn oci_missing_layer_blob() {
    let d = scratch();
    let f = d.path().join("missing.tar");
    let mut layer = String::new();
    rewrite(&fixtures().oci, &f, |es| {
        layer = oci_layer_hex(es);
        es.retain(|e| !e.name.ends_with(&layer));
    });
    let err = load_fails(&f, &[&layer], false);
    assert!(err.contains("missing"), "{err}");
}

#[test]
fn docker_missing_layer_tar() {
    let d = scratch();
    let f = d.path().join("missing.tar");
    let mut layer = String::new();
    rewrite(&fixtures().docker, &f, |es| {
        layer = docker_manifest(es)[0]["Layers"][0]
            .as_str()
            .unwrap()
            .to_string();
        es.retain(|e| e.name.trim_end_matches('/') != layer.trim_end_matches("/layer.tar"));
        es.retain(|e| e.name != layer);
    });
    assert!(layer.ends_with("/layer.tar"), "{layer}");
    let err = load_fails(&f, &[&layer], false);
    assert!(err.contains("not in the archive"), "{err}");
}

// 4. Digest mismatch.

#[test]
fn oci_layer_digest_mismatch() {
    let d = scratch();
    let f = d.path().join("flipped.tar");
    let mut layer = String::new();
    rewrite(&fixtures().oci, &f, |es| {
        layer = oci_layer_hex(es);
        let e = entry(es, &format!("blobs/sha256/{layer}"));
        let mid = e.data.len() / 2;
        e.data[mid] ^= 0xff;
    });
    let err = load_fails(&f, &[&layer], true);
    assert!(err.contains("wrong content"), "{err}");
}

#[test]
fn docker_layer_diff_id_mismatch() {
    let d = scratch();
    let f = d.path().join("flipped.tar");
    let mut layer = String::new();
    rewrite(&fixtures().docker, &f, |es| {
        layer = docker_manifest(es)[0]["Layers"][0]
            .as_str()
            .unwrap()
            .to_string();
        let e = entry(es, &layer);
        let mid = e.data.len() / 2;
        e.data[mid] ^= 0xff;
    });
    let err = load_fails(&f, &[&layer], true);
    assert!(err.contains("does not match"), "{err}");
}

// 5. Unknown media type.

#[test]
fn unknown_media_type() {
    const UNKNOWN: &str = "application/vnd.example.unknown";
    let d = scratch();
    let f = d.path().join("unknown.tar");
    let mut layer = String::new();
    rewrite(&fixtures().oci, &f, |es| {
        layer = oci_layer_hex(es);
        let old = oci_manifest_hex(es);
        let m = entry(es, &format!("blobs/sha256/{old}"));
        let mut v = json(std::str::from_utf8(&m.data).unwrap());
        v["layers"][0]["mediaType"] = UNKNOWN.into();
        m.data = serde_json::to_vec(&v).unwrap();
        let new = hex::encode(sha2::Sha256::digest(&m.data));
        let size = m.data.len();
        m.name = format!("blobs/sha256/{new}");
        let ix = entry(es, "index.json");
        let mut v = json(std::str::from_utf8(&ix.data).unwrap());
        v["manifests"][0]["digest"] = format!("sha256:{new}").into();
        v["manifests"][0]["size"] = size.into();
        ix.data = serde_json::to_vec(&v).unwrap();
    });
    let err = load_fails(&f, &[&layer, UNKNOWN], false);
    assert!(err.contains("unknown media type"), "{err}");
}

// 6. References that do not parse.

#[test]
fn tag_uppercase_reference() {
    let k = store_with_image();
    let err = fails_cleanly(&k, &["tag", "bad:v1", "Bad:Ref"], &["Bad:Ref"], None);
    assert!(err.contains("repository name must be lowercase"), "{err}");
}

#[test]
fn inspect_double_slash_reference() {
    let k = store_with_image();
    fails_cleanly(&k, &["inspect", "a//b"], &["a//b"], None);
}

#[test]
fn save_short_digest_reference() {
    let k = store_with_image();
    let d = scratch();
    let out = d.path().join("f");
    fails_cleanly(
        &k,
        &["save", "x@sha256:abc", "-o", out.to_str().unwrap()],
        &["x@sha256:abc"],
        None,
    );
    assert_eq!(listing(d.path()), Vec::<String>::new(), "save left files");
}

#[test]
fn import_uppercase_tag() {
    let k = store_with_image();
    let rootfs = busybox_rootfs().to_str().unwrap();
    let err = fails_cleanly(
        &k,
        &["import", rootfs, "-t", "UPPER:case"],
        &["UPPER:case"],
        None,
    );
    assert!(err.contains("repository name must be lowercase"), "{err}");
}

#[test]
fn docker_archive_invalid_repo_tag() {
    let d = scratch();
    let f = d.path().join("badname.tar");
    rewrite(&fixtures().docker, &f, |es| {
        let m = entry(es, "manifest.json");
        let mut v = json(std::str::from_utf8(&m.data).unwrap());
        v[0]["RepoTags"] = serde_json::json!(["Bad:Name"]);
        m.data = serde_json::to_vec(&v).unwrap();
    });
    let err = load_fails(&f, &["manifest.json", "Bad:Name"], false);
    assert!(err.contains("lowercase"), "{err}");
}

// 7. Other inputs.

#[test]
fn load_nonexistent_path() {
    let k = Kiln::new();
    fails_cleanly(&k, &["load", "-i", "/nonexistent"], &["/nonexistent"], None);
}

#[test]
fn inspect_missing_image() {
    let k = store_with_image();
    let err = fails_cleanly(
        &k,
        &["inspect", "nosuch:v1"],
        &["nosuch:v1"],
        Some("kiln images"),
    );
    assert!(err.to_lowercase().contains("no such image"), "{err}");
}

#[test]
fn import_tar_with_escape() {
    let k = store_with_image();
    let d = scratch();
    let f = d.path().join("escape.tar");
    let mut b = tar::Builder::new(std::fs::File::create(&f).unwrap());
    let mut ok = tar::Header::new_gnu();
    ok.set_path("etc/ok.txt").unwrap();
    ok.set_size(3);
    ok.set_mode(0o644);
    ok.set_uid(0);
    ok.set_gid(0);
    ok.set_mtime(0);
    ok.set_cksum();
    b.append(&ok, &b"ok\n"[..]).unwrap();
    // `set_path` refuses `..`: write the name into the header itself.
    let mut bad = tar::Header::new_gnu();
    let name = b"../escape";
    bad.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name);
    bad.set_size(4);
    bad.set_mode(0o644);
    bad.set_uid(0);
    bad.set_gid(0);
    bad.set_mtime(0);
    bad.set_entry_type(tar::EntryType::Regular);
    bad.set_cksum();
    b.append(&bad, &b"bad\n"[..]).unwrap();
    b.into_inner().unwrap();
    let err = fails_cleanly(
        &k,
        &["import", f.to_str().unwrap(), "-t", "escape:v1"],
        &[f.to_str().unwrap()],
        None,
    );
    // `error: cannot import FILE` / `caused by: layer entry `../escape`: ...`
    assert!(
        err.lines()
            .any(|l| l.starts_with("caused by: ") && l.contains("`../escape`")),
        "the entry is not named:\n{err}"
    );
    let (_, err) = k.fails(&["inspect", "escape:v1"]);
    assert!(err.contains("escape:v1"), "{err}");
}

#[test]
fn save_to_missing_directory() {
    let k = store_with_image();
    let d = scratch();
    let missing = d.path().join("no-such-dir");
    let out = missing.join("out.tar");
    fails_cleanly(
        &k,
        &["save", "bad:v1", "-o", out.to_str().unwrap()],
        &[missing.to_str().unwrap()],
        None,
    );
    assert_eq!(listing(d.path()), Vec::<String>::new(), "save left files");
}
