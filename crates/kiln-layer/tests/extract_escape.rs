//! Malicious layers: every case checks the outcome (confined or refused by name) and that nothing outside
//! the target was created, changed or removed.

mod common;

use std::fs;
use std::path::Path;

use common::{names, tmp_escape, Jail, RawTar};
use kiln_layer::{extract, ExtractOptions, LayerError};

fn apply(root: &Path, tar: &[u8]) -> kiln_layer::Result<kiln_layer::ExtractStats> {
    extract(tar, root, &ExtractOptions::default())
}

#[test]
fn absolute_path_is_confined() {
    let j = Jail::new();
    let esc = tmp_escape("abs");
    apply(&j.root, &RawTar::new().file(&esc, b"x").finish()).unwrap();
    assert!(!Path::new(&esc).exists());
    assert_eq!(
        fs::read(j.root.join(esc.trim_start_matches('/'))).unwrap(),
        b"x"
    );
    j.assert_untouched();
}

#[test]
fn dotdot_paths_are_clamped_at_the_root() {
    let j = Jail::new();
    let tar = RawTar::new()
        .file("../escape", b"1")
        .file("a/../../escape2", b"2")
        .file("../sentinel/outside-file", b"3")
        .finish();
    apply(&j.root, &tar).unwrap();
    assert_eq!(fs::read(j.root.join("escape")).unwrap(), b"1");
    assert_eq!(fs::read(j.root.join("escape2")).unwrap(), b"2");
    assert_eq!(
        fs::read(j.root.join("sentinel/outside-file")).unwrap(),
        b"3"
    );
    j.assert_untouched();
}

#[test]
fn write_through_symlink_to_root_is_confined() {
    let j = Jail::new();
    let esc = tmp_escape("slash");
    let inner = format!("evil{esc}");
    apply(
        &j.root,
        &RawTar::new()
            .symlink("evil", "/")
            .file(&inner, b"x")
            .finish(),
    )
    .unwrap();
    assert!(!Path::new(&esc).exists());
    assert_eq!(
        fs::read(j.root.join(esc.trim_start_matches('/'))).unwrap(),
        b"x"
    );
    assert_eq!(fs::read_link(j.root.join("evil")).unwrap(), Path::new("/"));
    j.assert_untouched();
}

#[test]
fn write_through_relative_symlink_is_confined() {
    let j = Jail::new();
    let tar = RawTar::new()
        .symlink("up", "../../..")
        .file("up/escape", b"1")
        .symlink("side", "../sentinel")
        .file("side/outside-file", b"pwned")
        .file("side/new", b"2")
        .finish();
    apply(&j.root, &tar).unwrap();
    assert_eq!(fs::read(j.root.join("escape")).unwrap(), b"1");
    // `../sentinel` seen from the root is `/sentinel` inside it.
    assert_eq!(
        fs::read(j.root.join("sentinel/outside-file")).unwrap(),
        b"pwned"
    );
    assert_eq!(fs::read(j.root.join("sentinel/new")).unwrap(), b"2");
    j.assert_untouched();
}

#[test]
fn symlink_from_lower_layer_is_confined() {
    let j = Jail::new();
    let abs = j.sentinel.to_str().unwrap().to_string();
    apply(
        &j.root,
        &RawTar::new()
            .symlink("evil", &abs)
            .symlink("evil2", "../../../../..")
            .finish(),
    )
    .unwrap();
    let layer2 = RawTar::new()
        .file("evil/outside-file", b"pwned")
        .file("evil2/escape", b"x")
        .file("evil/.wh.outside-file", b"")
        .dir("evil/newdir")
        .finish();
    apply(&j.root, &layer2).unwrap();
    let inside = j.root.join(abs.trim_start_matches('/'));
    assert!(inside.join("newdir").is_dir());
    // The whiteout (same layer) spared the file this layer wrote.
    assert_eq!(fs::read(inside.join("outside-file")).unwrap(), b"pwned");
    assert_eq!(fs::read(j.root.join("escape")).unwrap(), b"x");
    // A later layer whiting out through the symlink also stays inside.
    apply(
        &j.root,
        &RawTar::new().file("evil/.wh.outside-file", b"").finish(),
    )
    .unwrap();
    assert!(!inside.join("outside-file").exists());
    j.assert_untouched();
}

#[test]
fn file_over_planted_symlink_replaces_it() {
    let j = Jail::new();
    let target = j.sentinel.join("outside-file");
    let t = target.to_str().unwrap();
    apply(
        &j.root,
        &RawTar::new()
            .symlink("link", t)
            .symlink("dirlink", j.sentinel.to_str().unwrap())
            .finish(),
    )
    .unwrap();
    let tar = RawTar::new()
        .file("link", b"pwned")
        .dir("dirlink")
        .entry("fifo", tar::EntryType::Fifo, "", 0o600, b"")
        .finish();
    apply(&j.root, &tar).unwrap();
    assert_eq!(fs::read(j.root.join("link")).unwrap(), b"pwned");
    assert!(fs::symlink_metadata(j.root.join("dirlink"))
        .unwrap()
        .is_dir());
    j.assert_untouched();
}

#[test]
fn hardlinks_outside_are_refused() {
    let j = Jail::new();
    for (i, target) in [
        "/etc/passwd",
        "../sentinel/outside-file",
        "../../../../etc/passwd",
    ]
    .iter()
    .enumerate()
    {
        let name = format!("h{i}");
        let err = apply(&j.root, &RawTar::new().hardlink(&name, target).finish()).unwrap_err();
        match &err {
            LayerError::UnsafeEntry { entry, .. } => assert_eq!(entry, &name),
            other => panic!("unexpected error {other}"),
        }
        assert!(
            err.to_string()
                .starts_with(&format!("layer entry `{name}`")),
            "{err}"
        );
        assert!(!j.root.join(&name).exists());
    }
    let err = apply(&j.root, &RawTar::new().hardlink("h", "./").finish()).unwrap_err();
    assert!(matches!(err, LayerError::UnsafeEntry { .. }), "{err}");
    j.assert_untouched();
}

#[test]
fn hardlink_then_write_does_not_modify_target() {
    let j = Jail::new();
    let passwd = fs::read("/etc/passwd").unwrap();
    let tar = RawTar::new()
        .file("etc/passwd", b"root:x:0:0::/root:/bin/sh\n")
        .hardlink("h", "/etc/passwd")
        .file("h", b"pwned")
        .symlink("s", "/etc/passwd")
        .hardlink("hs", "s")
        .file("hs", b"pwned2")
        .file("s", b"pwned3")
        .finish();
    apply(&j.root, &tar).unwrap();
    assert_eq!(
        fs::read(j.root.join("etc/passwd")).unwrap(),
        b"root:x:0:0::/root:/bin/sh\n"
    );
    assert_eq!(fs::read(j.root.join("h")).unwrap(), b"pwned");
    assert_eq!(fs::read(j.root.join("hs")).unwrap(), b"pwned2");
    assert_eq!(fs::read(j.root.join("s")).unwrap(), b"pwned3");
    assert_eq!(fs::read("/etc/passwd").unwrap(), passwd);
    // A hardlink to a planted symlink links the symlink itself, never what it points to.
    let j2 = Jail::new();
    let out = j2.sentinel.join("outside-file");
    let tar = RawTar::new()
        .symlink("s", out.to_str().unwrap())
        .hardlink("h", "s")
        .finish();
    apply(&j2.root, &tar).unwrap();
    assert!(fs::symlink_metadata(j2.root.join("h"))
        .unwrap()
        .is_symlink());
    j.assert_untouched();
    j2.assert_untouched();
}

#[test]
fn whiteout_dotdot_is_refused() {
    let j = Jail::new();
    fs::write(j.root.join("keep"), b"k").unwrap();
    for name in [".wh...", "a/.wh...", ".wh..", ".wh."] {
        let err = apply(&j.root, &RawTar::new().dir("a").file(name, b"").finish()).unwrap_err();
        match &err {
            LayerError::UnsafeEntry { entry, .. } => assert_eq!(entry, name),
            other => panic!("unexpected error {other}"),
        }
    }
    // `.wh.` of something above the root through `..` in the directory part stays inside.
    apply(
        &j.root,
        &RawTar::new()
            .file("../../.wh.sentinel", b"")
            .file("../.wh.root", b"")
            .finish(),
    )
    .unwrap();
    assert!(j.root.join("keep").exists());
    j.assert_untouched();
}

#[test]
fn symlink_chains_are_confined() {
    let j = Jail::new();
    let esc = tmp_escape("chain");
    let tar = RawTar::new()
        .symlink("a", "b")
        .symlink("b", "c/d")
        .dir("c")
        .symlink("c/d", "../../../..")
        .symlink("e", "a/tmp")
        .file(&format!("a{esc}"), b"1")
        .file(&format!("e/{}", esc.trim_start_matches("/tmp/")), b"2")
        .symlink("loop1", "loop2")
        .symlink("loop2", "loop1")
        .finish();
    apply(&j.root, &tar).unwrap();
    assert!(!Path::new(&esc).exists());
    assert_eq!(
        fs::read(j.root.join(esc.trim_start_matches('/'))).unwrap(),
        b"2"
    );
    // A loop in the parent path is an error naming the entry, not a hang or an escape.
    let err = apply(&j.root, &RawTar::new().file("loop1/x", b"").finish()).unwrap_err();
    assert!(err.to_string().contains("`loop1/x`"), "{err}");
    j.assert_untouched();
}

#[test]
fn pax_long_path_escape_is_confined() {
    let j = Jail::new();
    let long = format!("{}/../../../../../../../../../../escape", "d".repeat(150));
    let tar = RawTar::new()
        .pax(&[("path", long.as_bytes())])
        .file("short", b"x")
        .finish();
    apply(&j.root, &tar).unwrap();
    assert_eq!(names(&j.root), ["escape"]);
    j.assert_untouched();
}

#[test]
fn truncated_and_garbage_streams_error() {
    let data = vec![7u8; 10_000];
    let full = RawTar::new()
        .dir("d")
        .file("d/big", &data)
        .file("d/after", b"a")
        .finish();
    // Cut inside file data: an error naming the entry.
    let j = Jail::new();
    let err = apply(&j.root, &full[..512 * 2 + 3000]).unwrap_err();
    assert!(matches!(err, LayerError::Tar { .. }), "{err}");
    assert!(err.to_string().contains("d/big"), "{err}");
    // Cut inside a header.
    let err = apply(&Jail::new().root, &full[..512 + 100]).unwrap_err();
    assert!(matches!(err, LayerError::Tar { .. }), "{err}");
    // Garbage.
    let garbage: Vec<u8> = (0..2048u32).map(|i| (i * 7 + 3) as u8).collect();
    assert!(apply(&Jail::new().root, &garbage).is_err());
    // Ends cleanly between entries without the zero blocks: accepted, like Go's reader.
    let j = Jail::new();
    let cut = 512 * 2 + 10_240;
    apply(&j.root, &full[..cut]).unwrap();
    assert_eq!(fs::read(j.root.join("d/big")).unwrap(), data);
    // Normalize and flatten refuse the same truncation.
    assert!(
        kiln_layer::normalize(&full[..512 * 2 + 3000], Vec::new(), &Default::default()).is_err()
    );
    let cut_data = full[..512 * 2 + 3000].to_vec();
    let mut open = |_i: usize| -> std::io::Result<Box<dyn std::io::Read>> {
        Ok(Box::new(std::io::Cursor::new(cut_data.clone())))
    };
    assert!(kiln_layer::flatten(1, &mut open, Vec::new()).is_err());
}
