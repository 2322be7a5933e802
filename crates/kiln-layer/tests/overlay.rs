//! Overlay snapshots: layers extracted with `Whiteouts::Overlay` into their own directories and stacked
//! with a real overlayfs mount must show the same tree as flattening them with `Whiteouts::Apply`.
//!
//! These tests need root (mknod of whiteouts, `trusted.*` xattrs, mount) and fail, not skip, without it.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Jail, RawTar};
use kiln_layer::{extract, overlay_supported, ExtractOptions, LayerError, Whiteouts};

fn require_root() {
    assert!(
        rustix::process::geteuid().is_root(),
        "this test needs root: it creates whiteout devices, sets trusted.overlay.* xattrs and mounts \
         overlayfs; run `cargo test -p kiln-layer --test overlay` as root"
    );
}

fn opts(whiteouts: Whiteouts) -> ExtractOptions {
    ExtractOptions {
        whiteouts,
        ..ExtractOptions::default()
    }
}

/// A read-only overlayfs mount of `lowers` (topmost first), unmounted on drop, even after a failed assert.
struct Overlay {
    mnt: PathBuf,
}

impl Overlay {
    fn mount(lowers: &[&Path], mnt: &Path) -> Overlay {
        let list: Vec<String> = lowers.iter().map(|p| p.display().to_string()).collect();
        let out = Command::new("mount")
            .args(["-t", "overlay", "overlay", "-o"])
            .arg(format!("ro,lowerdir={}", list.join(":")))
            .arg(mnt)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "mount overlay failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Overlay {
            mnt: mnt.to_path_buf(),
        }
    }
}

impl Drop for Overlay {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.mnt).status();
    }
}

/// Path -> (kind, mode, uid, gid, content: file data, link target or rdev, mtime of non-directories).
type Tree = BTreeMap<String, (&'static str, u32, u32, u32, Vec<u8>, Option<i64>)>;

fn tree(root: &Path) -> Tree {
    fn walk(root: &Path, dir: &Path, out: &mut Tree) {
        let mut names: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        names.sort();
        for p in names {
            let md = fs::symlink_metadata(&p).unwrap();
            let ft = md.file_type();
            let (kind, content) = if ft.is_dir() {
                ("dir", Vec::new())
            } else if ft.is_symlink() {
                let t = fs::read_link(&p).unwrap();
                ("symlink", t.into_os_string().into_encoded_bytes())
            } else if ft.is_file() {
                ("file", fs::read(&p).unwrap())
            } else if ft.is_char_device() {
                ("char", md.rdev().to_le_bytes().to_vec())
            } else {
                ("other", Vec::new())
            };
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            let mode = if ft.is_symlink() {
                0
            } else {
                md.mode() & 0o7777
            };
            let mtime = (!ft.is_dir()).then_some(md.mtime());
            out.insert(rel, (kind, mode, md.uid(), md.gid(), content, mtime));
            if ft.is_dir() {
                walk(root, &p, out);
            }
        }
    }
    let mut out = Tree::new();
    walk(root, root, &mut out);
    out
}

fn xattr(p: &Path, name: &str) -> Option<Vec<u8>> {
    let mut buf = [0u8; 64];
    rustix::fs::lgetxattr(p, name, &mut buf[..])
        .ok()
        .map(|n| buf[..n].to_vec())
}

fn is_whiteout(p: &Path) -> bool {
    fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_char_device() && m.rdev() == 0)
}

fn is_opaque(p: &Path) -> bool {
    xattr(p, "trusted.overlay.opaque").as_deref() == Some(b"y")
}

fn layers() -> Vec<Vec<u8>> {
    let l1 = RawTar::new()
        .dir("etc")
        .file("etc/a", b"a")
        .file("etc/b", b"b")
        .file("gone", b"g")
        .dir("opq")
        .file("opq/old", b"o")
        .dir("opq/sub")
        .file("opq/sub/deep", b"d")
        .file("f2d", b"file")
        .dir("d2f")
        .file("d2f/x", b"x")
        .symlink("lnk", "etc/a")
        .file("keep", b"k")
        .hardlink("keep2", "keep")
        .dir("wdir")
        .dir("wdir/inner")
        .file("wdir/inner/x", b"x")
        .dir("implicit")
        .file("implicit/old", b"o")
        .dir("redo")
        .file("redo/old", b"o")
        .dir("mine")
        .file("mine/old", b"o")
        .dir("emp")
        .file("emp/old", b"o")
        .file("f", b"f1")
        .dir("wc")
        .file("wc/x", b"x")
        .dir("d3")
        .file("d3/x", b"x")
        .dir("d3/y")
        .file("d3/y/z", b"z")
        .entry("priv", tar::EntryType::Directory, "", 0o700, b"")
        .file("priv/s", b"s")
        .finish();
    let mut l2 = RawTar::new();
    l2.file("etc/.wh.a", b"") // no entry for etc: the snapshot gets one
        .file(".wh.gone", b"")
        .dir("opq")
        .file("opq/.wh..wh..opq", b"")
        .file("opq/new", b"n")
        .dir("f2d")
        .file("f2d/in", b"i")
        .file("d2f", b"now a file")
        .file(".wh.wdir", b"")
        .file("implicit/new", b"n")
        .file(".wh.redo", b"") // deleted, then recreated in the same layer
        .dir("redo")
        .file("redo/new", b"n")
        .dir("mine")
        .file("mine/new", b"n")
        .file(".wh.mine", b"") // same layer: hides only the lower content
        .dir("emp")
        .file(".wh.emp", b"")
        .file("f", b"f2")
        .file(".wh.f", b"") // same layer: f stays
        .file(".wh.lnk", b"")
        .symlink("lnk2", "etc/b")
        .file(".wh.wc", b"")
        .file("wc/child", b"c") // through this layer's own whiteout
        .file(".wh..wh.plnk", b""); // aufs bookkeeping
                                    // A layer may not steer overlayfs with xattrs of its own.
    l2.pax(&[("SCHILY.xattr.trusted.overlay.opaque", b"y")])
        .dir("priv");
    let l2 = l2.finish();
    let l3 = RawTar::new()
        .file("opq/.wh.new", b"")
        .file("etc/b", b"b3")
        .file(".wh.keep", b"")
        .file("d3/.wh..wh..opq", b"") // no entry for d3 in this layer
        .file("d3/fresh", b"f")
        .file("new/deep/file", b"nd")
        .file("priv/t", b"t")
        .finish();
    vec![l1, l2, l3]
}

#[test]
fn stacked_snapshots_equal_flattened_layers() {
    require_root();
    let layers = layers();
    let flat = tempfile::tempdir().unwrap();
    for l in &layers {
        extract(&l[..], flat.path(), &opts(Whiteouts::Apply)).unwrap();
    }

    let work = tempfile::tempdir().unwrap();
    overlay_supported(work.path()).unwrap();
    assert_eq!(
        fs::read_dir(work.path()).unwrap().count(),
        0,
        "probe left behind"
    );
    let mut snaps = Vec::new();
    for (i, l) in layers.iter().enumerate() {
        let s = work.path().join(format!("l{}", i + 1));
        fs::create_dir(&s).unwrap();
        fs::set_permissions(&s, fs::Permissions::from_mode(0o755)).unwrap();
        extract(&l[..], &s, &opts(Whiteouts::Overlay)).unwrap();
        snaps.push(s);
    }

    // The markers themselves, in layer 2's snapshot.
    let l2 = &snaps[1];
    for wh in ["etc/a", "gone", "wdir", "lnk"] {
        assert!(is_whiteout(&l2.join(wh)), "{wh} is no whiteout device");
    }
    assert_eq!(
        fs::symlink_metadata(l2.join("gone")).unwrap().mode() & 0o7777,
        0
    );
    for d in ["opq", "redo", "mine", "emp", "wc"] {
        assert!(is_opaque(&l2.join(d)), "{d} is not opaque");
    }
    for d in ["etc", "f2d", "implicit", "priv"] {
        assert!(!is_opaque(&l2.join(d)), "{d} is opaque");
    }
    assert_eq!(fs::read(l2.join("f")).unwrap(), b"f2");
    assert!(!l2.join(".wh..wh.plnk").exists());
    assert!(is_whiteout(&snaps[2].join("opq/new")));
    assert!(is_opaque(&snaps[2].join("d3")));
    for s in &snaps {
        let names: Vec<_> = tree(s).into_keys().filter(|p| p.contains(".wh.")).collect();
        assert!(names.is_empty(), "{names:?}");
    }

    let mnt = work.path().join("merged");
    fs::create_dir(&mnt).unwrap();
    let m = Overlay::mount(&[&snaps[2], &snaps[1], &snaps[0]], &mnt);
    let merged = tree(&m.mnt);
    let want = tree(flat.path());
    for (p, v) in &want {
        assert_eq!(merged.get(p), Some(v), "merged view differs at {p}");
    }
    assert_eq!(
        merged.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>()
    );
    // A few of the expectations spelled out, so that a bug shared by both modes still shows.
    let keys: Vec<&str> = want.keys().map(String::as_str).collect();
    for gone in [
        "etc/a", "gone", "wdir", "lnk", "keep", "opq/old", "opq/sub", "opq/new", "redo/old",
        "mine/old", "emp/old", "wc/x", "d3/x", "d3/y",
    ] {
        assert!(!keys.contains(&gone), "{gone} still shows");
    }
    for kept in [
        "etc/b",
        "f2d/in",
        "d2f",
        "implicit/old",
        "implicit/new",
        "redo/new",
        "mine/new",
        "emp",
        "f",
        "lnk2",
        "keep2",
        "wc/child",
        "d3/fresh",
        "new/deep/file",
        "priv/s",
        "priv/t",
    ] {
        assert!(keys.contains(&kept), "{kept} is missing");
    }
    assert_eq!(fs::read(mnt.join("etc/b")).unwrap(), b"b3");
    assert_eq!(fs::read(mnt.join("f")).unwrap(), b"f2");
    assert_eq!(
        xattr(&flat.path().join("priv"), "trusted.overlay.opaque"),
        None
    );
    drop(m);
}

#[test]
fn overlay_whiteouts_stay_confined() {
    require_root();
    let j = Jail::new();
    let esc = common::tmp_escape("ovl");
    let tar = RawTar::new()
        .symlink("evil", "/")
        .symlink("up", "../sentinel")
        .file("evil/.wh.sentinel", b"")
        .file("up/.wh.outside-file", b"")
        .file("../.wh.sentinel", b"")
        .file(&format!("{esc}/.wh.x"), b"")
        .symlink("dangling", &esc)
        .file("dangling/.wh.y", b"")
        .finish();
    extract(&tar[..], &j.root, &opts(Whiteouts::Overlay)).unwrap();
    assert!(!Path::new(&esc).exists());
    j.assert_untouched();
    let inside = j.root.join(esc.trim_start_matches('/'));
    assert!(is_whiteout(&inside.join("x")));
    assert!(is_whiteout(&inside.join("y")));
    assert!(is_whiteout(&j.root.join("sentinel")));
    assert!(
        is_whiteout(&j.root.join("sentinel/outside-file")) || is_whiteout(&j.root.join("sentinel"))
    );
}

#[test]
fn opaque_root_and_bad_names_are_refused() {
    require_root();
    for tar in [
        RawTar::new().file(".wh..wh..opq", b"").finish(),
        RawTar::new()
            .symlink("back", "/")
            .file("back/.wh..wh..opq", b"")
            .finish(),
    ] {
        let j = Jail::new();
        match extract(&tar[..], &j.root, &opts(Whiteouts::Overlay)).unwrap_err() {
            LayerError::Unsupported { entry, reason } => {
                assert!(entry.ends_with(".wh..wh..opq"), "{entry}");
                assert!(reason.contains("root"), "{reason}");
            }
            e => panic!("{e}"),
        }
        assert!(!is_opaque(&j.root));
    }
    for name in [".wh...", "a/.wh...", ".wh..", ".wh."] {
        let j = Jail::new();
        let tar = RawTar::new().file(name, b"").finish();
        assert!(
            matches!(
                extract(&tar[..], &j.root, &opts(Whiteouts::Overlay)),
                Err(LayerError::UnsafeEntry { .. })
            ),
            "{name}"
        );
        j.assert_untouched();
    }
}

#[test]
fn hardlink_to_a_lower_layer_is_refused_in_overlay_mode() {
    require_root();
    let j = Jail::new();
    let tar = RawTar::new().file(".wh.x", b"").hardlink("y", "x").finish();
    match extract(&tar[..], &j.root, &opts(Whiteouts::Overlay)).unwrap_err() {
        LayerError::UnsafeEntry { entry, .. } => assert_eq!(entry, "y"),
        e => panic!("{e}"),
    }
}
