//! Whiteout semantics, deterministic writing, round trips, normalize and flatten.

mod common;

use std::fs;
use std::io::{Cursor, Read, Write};
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::Path;

use common::{names, snapshot, tar_paths, Jail, RawTar};
use kiln_layer::{
    decompress, extract, flatten, normalize, write_dir, Compression, Compressor, ExtractOptions,
    LayerError, WriteOptions,
};

fn apply(root: &Path, tar: &[u8]) {
    extract(tar, root, &ExtractOptions::default()).unwrap();
}

fn set_mtime(p: &Path, secs: i64) {
    let t = rustix::fs::Timespec {
        tv_sec: secs,
        tv_nsec: 0,
    };
    let ts = rustix::fs::Timestamps {
        last_access: t,
        last_modification: t,
    };
    rustix::fs::utimensat(
        rustix::fs::CWD,
        p,
        &ts,
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )
    .unwrap();
}

fn lower() -> Vec<u8> {
    RawTar::new()
        .dir("a")
        .file("a/x", b"x")
        .file("a/y", b"y")
        .dir("b")
        .file("b/z", b"z")
        .dir("c")
        .file("c/k", b"k")
        .dir("c/sub")
        .file("c/sub/deep", b"d")
        .file("d", b"d")
        .dir("o")
        .file("o/old", b"o")
        .finish()
}

fn upper() -> Vec<u8> {
    RawTar::new()
        .file("a/.wh.x", b"")
        .file(".wh.b", b"")
        .file("c/.wh..wh..opq", b"")
        .file("c/new", b"n")
        .file(".wh.nonexistent", b"")
        .file("d/.wh.foo", b"") // parent is a file: nothing to hide
        .file("o/mine", b"m") // written before the opaque marker of the same layer: kept
        .file("o/.wh..wh..opq", b"")
        .file("e/f", b"f")
        .file("e/.wh.f", b"") // same layer: a whiteout only hides lower layers
        .file(".wh..wh.plnk", b"") // aufs bookkeeping: ignored
        .finish()
}

#[test]
fn whiteouts_and_opaque_dirs() {
    let j = Jail::new();
    apply(&j.root, &lower());
    apply(&j.root, &upper());
    assert_eq!(
        names(&j.root),
        ["a", "a/y", "c", "c/new", "d", "e", "e/f", "o", "o/mine"]
    );
    j.assert_untouched();
}

#[test]
fn replacing_kinds_across_layers() {
    let j = Jail::new();
    apply(
        &j.root,
        &RawTar::new()
            .dir("p")
            .file("p/child", b"c")
            .file("q", b"q")
            .dir("r")
            .finish(),
    );
    let mut up = RawTar::new();
    up.file("p", b"now a file")
        .dir("q")
        .file("q/in", b"i")
        .entry("r", tar::EntryType::Directory, "", 0o700, b"");
    apply(&j.root, &up.finish());
    assert_eq!(names(&j.root), ["p", "q", "q/in", "r"]);
    assert_eq!(fs::read(j.root.join("p")).unwrap(), b"now a file");
    assert_eq!(
        fs::metadata(j.root.join("r")).unwrap().mode() & 0o777,
        0o700
    );
}

/// Builds the same logical tree in a fresh dir, creating entries in the given order.
fn make_tree(dir: &Path, reverse: bool, mtime: i64) {
    let mut dirs = ["usr/bin", "usr-local", "etc"];
    if reverse {
        dirs.reverse();
    }
    for d in dirs {
        fs::create_dir_all(dir.join(d)).unwrap();
    }
    let mut files = vec![
        ("usr/bin/tool", &b"#!/bin/sh\n"[..], 0o4755),
        ("etc/conf", b"a=1", 0o640),
        ("usr-local/z", b"z", 0o600),
    ];
    if reverse {
        files.reverse();
    }
    for (p, data, mode) in files {
        fs::write(dir.join(p), data).unwrap();
        fs::set_permissions(dir.join(p), fs::Permissions::from_mode(mode)).unwrap();
    }
    let long = "l".repeat(120);
    fs::write(dir.join(&long), vec![1u8; 5000]).unwrap();
    fs::hard_link(dir.join("usr/bin/tool"), dir.join("usr/bin/tool-alias")).unwrap();
    symlink("../etc/conf", dir.join("usr/conf-link")).unwrap();
    symlink("l".repeat(150), dir.join("long-link")).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        dir.join("fifo"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
    // user.* xattrs are carried; a filesystem without them just yields a tree without.
    let _ = rustix::fs::setxattr(
        dir.join("etc/conf").as_path(),
        "user.kiln",
        b"v",
        rustix::fs::XattrFlags::empty(),
    );
    let _ = std::os::unix::net::UnixListener::bind(dir.join("sock")); // sockets are skipped
    for p in snapshot(dir, true).keys() {
        set_mtime(&dir.join(p), mtime);
    }
    set_mtime(dir, mtime);
}

#[test]
fn write_dir_is_deterministic_and_sorted() {
    let opts = WriteOptions {
        source_date_epoch: Some(1_000_000),
        ..Default::default()
    };
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    make_tree(a.path(), false, 2_000_000);
    make_tree(b.path(), true, 3_000_000);
    let ta = write_dir(a.path(), Vec::new(), &opts).unwrap();
    assert_eq!(
        ta,
        write_dir(a.path(), Vec::new(), &opts).unwrap(),
        "same tree twice"
    );
    assert_eq!(
        ta,
        write_dir(b.path(), Vec::new(), &opts).unwrap(),
        "other creation order and mtimes"
    );
    // Without an epoch the different mtimes show.
    let none = WriteOptions::default();
    assert_ne!(
        write_dir(a.path(), Vec::new(), &none).unwrap(),
        write_dir(b.path(), Vec::new(), &none).unwrap()
    );

    let paths = tar_paths(&ta);
    let bare: Vec<String> = paths
        .iter()
        .map(|p| p.trim_end_matches('/').to_string())
        .collect();
    let mut sorted = bare.clone();
    sorted.sort();
    assert_eq!(bare, sorted);
    assert!(bare
        .iter()
        .all(|p| !p.starts_with('/') && !p.starts_with("./")));
    assert!(!bare.contains(&"sock".to_string()));
    assert!(bare.contains(&"l".repeat(120)));

    let mut ar = tar::Archive::new(&ta[..]);
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let h = e.header().clone();
        assert_eq!(h.mtime().unwrap(), 1_000_000);
        assert_eq!(h.username_bytes(), Some(&b""[..]));
        assert_eq!(h.groupname_bytes(), Some(&b""[..]));
        if e.path_bytes().as_ref() == b"usr/bin/tool-alias" {
            assert_eq!(h.entry_type(), tar::EntryType::Link);
            assert_eq!(e.link_name_bytes().unwrap().as_ref(), b"usr/bin/tool");
        }
        if e.path_bytes().as_ref() == b"usr/bin/tool" {
            assert_eq!(h.mode().unwrap(), 0o4755);
        }
        if e.path_bytes().as_ref() == b"long-link" {
            assert_eq!(e.link_name_bytes().unwrap().len(), 150);
        }
        let _ = e.pax_extensions();
    }
}

#[test]
fn write_dir_then_extract_round_trips() {
    let src = tempfile::tempdir().unwrap();
    make_tree(src.path(), false, 1_234_567);
    let owned = src.path().join("etc/owned");
    fs::write(&owned, b"o").unwrap();
    let root = rustix::process::geteuid().is_root();
    if root {
        std::os::unix::fs::lchown(&owned, Some(1234), Some(5678)).unwrap();
        std::os::unix::fs::lchown(src.path().join("usr/conf-link"), Some(42), Some(43)).unwrap();
    }
    set_mtime(&owned, 1_234_567);
    set_mtime(&src.path().join("etc"), 1_234_567);
    // Through zstd, as a store would keep it.
    let mut z = Compressor::new(Vec::new(), Compression::Zstd).unwrap();
    write_dir(src.path(), &mut z, &WriteOptions::default()).unwrap();
    let blob = z.finish().unwrap();
    let (c, r) = decompress(&blob[..]).unwrap();
    assert_eq!(c, Compression::Zstd);
    let j = Jail::new();
    let stats = extract(r, &j.root, &ExtractOptions::default()).unwrap();
    assert!(stats.entries > 5 && stats.bytes >= 5000);

    let mut want = snapshot(src.path(), true);
    want.remove("sock");
    assert_eq!(snapshot(&j.root, true), want);
    let (a, b) = (
        fs::metadata(j.root.join("usr/bin/tool")).unwrap(),
        fs::metadata(j.root.join("usr/bin/tool-alias")).unwrap(),
    );
    assert_eq!(a.ino(), b.ino());
    if root {
        assert_eq!(
            (fs::metadata(j.root.join("etc/owned")).unwrap().uid(), 1234),
            (1234, 1234)
        );
        let v = rustix::fs::lgetxattr(
            src.path().join("etc/conf").as_path(),
            "user.kiln",
            &mut [0u8; 8][..],
        );
        if v.is_ok() {
            let mut buf = [0u8; 8];
            let n =
                rustix::fs::lgetxattr(j.root.join("etc/conf").as_path(), "user.kiln", &mut buf[..])
                    .unwrap();
            assert_eq!(&buf[..n], b"v");
        }
    }
    j.assert_untouched();
}

#[test]
fn device_nodes_round_trip_when_permitted() {
    let src = tempfile::tempdir().unwrap();
    let dev = src.path().join("null");
    if rustix::fs::mknodat(
        rustix::fs::CWD,
        &dev,
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::from_raw_mode(0o666),
        rustix::fs::makedev(1, 3),
    )
    .is_err()
    {
        return; // no CAP_MKNOD here
    }
    fs::set_permissions(&dev, fs::Permissions::from_mode(0o666)).unwrap();
    let tar = write_dir(src.path(), Vec::new(), &WriteOptions::default()).unwrap();
    let j = Jail::new();
    apply(&j.root, &tar);
    assert_eq!(snapshot(&j.root, true), snapshot(src.path(), true));
}

#[test]
fn normalize_cleans_and_refuses_escapes() {
    let mut t = RawTar::new();
    t.dir("./")
        .dir("./etc/")
        .file("/etc/passwd", b"root")
        .file("./z", b"z")
        .hardlink("./a", "/etc/passwd");
    // An entry with owner names, which must not survive.
    let mut h = tar::Header::new_ustar();
    h.set_path("u").unwrap();
    h.set_username("alice").unwrap();
    h.set_groupname("staff").unwrap();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_size(0);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(99);
    h.set_cksum();
    let input = [h.as_bytes(), &t.finish()[..]].concat();
    let out = normalize(
        &input[..],
        Vec::new(),
        &WriteOptions {
            source_date_epoch: Some(10),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(tar_paths(&out), ["u", "etc/", "etc/passwd", "z", "a"]);
    let mut ar = tar::Archive::new(&out[..]);
    for e in ar.entries().unwrap() {
        let e = e.unwrap();
        assert_eq!(e.header().mtime().unwrap(), 10);
        assert_eq!(e.header().username_bytes(), Some(&b""[..]));
        assert_eq!(e.header().groupname_bytes(), Some(&b""[..]));
        if e.header().entry_type() == tar::EntryType::Link {
            assert_eq!(e.link_name_bytes().unwrap().as_ref(), b"etc/passwd");
        }
    }
    // Output is itself normalized: a fixed point.
    assert_eq!(
        normalize(
            &out[..],
            Vec::new(),
            &WriteOptions {
                source_date_epoch: Some(10),
                ..Default::default()
            }
        )
        .unwrap(),
        out
    );
    for (name, bad) in [
        ("../x", RawTar::new().file("../x", b"").finish()),
        (
            "l",
            RawTar::new().hardlink("l", "a/../../etc/shadow").finish(),
        ),
    ] {
        match normalize(&bad[..], Vec::new(), &WriteOptions::default()).unwrap_err() {
            LayerError::UnsafeEntry { entry, .. } => assert_eq!(entry, name),
            e => panic!("{e}"),
        }
    }
}

fn flatten_bytes(layers: &[Vec<u8>]) -> Vec<u8> {
    let mut calls = 0;
    let mut open = |i: usize| -> std::io::Result<Box<dyn Read + '_>> {
        calls += 1;
        Ok(Box::new(Cursor::new(&layers[i][..])))
    };
    let out = flatten(layers.len(), &mut open, Vec::new()).unwrap();
    assert_eq!(calls, layers.len() * 2);
    out
}

#[test]
fn flatten_matches_sequential_extraction() {
    let l3 = RawTar::new()
        .dir("a")
        .file("a/y", b"y3") // overwrites
        .symlink("lnk", "a/y")
        .file(".wh.d", b"")
        .file("keep/.wh.h2", b"") // h2 (a link) goes; h1 and h3 share the hidden f's data
        .finish();
    let l_links = RawTar::new()
        .dir("keep")
        .file("keep/f", b"shared")
        .hardlink("keep/h1", "keep/f")
        .hardlink("keep/h2", "keep/f")
        .hardlink("keep/h3", "./keep/h1")
        .file("g", b"g")
        .hardlink("g2", "g")
        .finish();
    let hide_f = RawTar::new()
        .file("keep/.wh.f", b"")
        .file("g", b"g replaced")
        .finish();
    let layers = vec![lower(), l_links, upper(), hide_f, l3];

    let seq = Jail::new();
    for l in &layers {
        apply(&seq.root, l);
    }
    let flat = flatten_bytes(&layers);
    let paths = tar_paths(&flat);
    assert!(paths.iter().all(|p| !p.contains(".wh.")), "{paths:?}");
    let one = Jail::new();
    apply(&one.root, &flat);
    // Directory mtimes differ by design (sequential extraction touches lower dirs), everything else matches.
    assert_eq!(snapshot(&one.root, false), snapshot(&seq.root, false));
    assert_eq!(
        fs::metadata(one.root.join("keep/h1")).unwrap().ino(),
        fs::metadata(one.root.join("keep/h3")).unwrap().ino()
    );
    assert_eq!(fs::metadata(one.root.join("g2")).unwrap().nlink(), 1);
    // Deterministic, and the flattened stream is a fixed point of flatten.
    assert_eq!(flatten_bytes(&layers), flat);
    assert_eq!(flatten_bytes(std::slice::from_ref(&flat)), flat);
    seq.assert_untouched();
    one.assert_untouched();
}

#[test]
fn flatten_refuses_bad_whiteouts_and_keeps_order() {
    let bad = RawTar::new().file("a/.wh...", b"").finish();
    let mut open =
        |_i: usize| -> std::io::Result<Box<dyn Read>> { Ok(Box::new(Cursor::new(bad.clone()))) };
    assert!(matches!(
        flatten(1, &mut open, Vec::new()),
        Err(LayerError::UnsafeEntry { .. })
    ));
    let l = RawTar::new()
        .file("z", b"")
        .file("./a", b"")
        .dir("m")
        .finish();
    assert_eq!(tar_paths(&flatten_bytes(&[l])), ["z", "a", "m/"]);
}

#[test]
fn gzip_layers_round_trip() {
    let src = tempfile::tempdir().unwrap();
    fs::write(src.path().join("f"), vec![9u8; 100_000]).unwrap();
    let mut z = Compressor::new(Vec::new(), Compression::Gzip).unwrap();
    write_dir(
        src.path(),
        &mut z,
        &WriteOptions {
            source_date_epoch: Some(0),
            ..Default::default()
        },
    )
    .unwrap();
    z.flush().unwrap();
    let blob = z.finish().unwrap();
    assert_eq!(&blob[4..8], &[0, 0, 0, 0], "gzip mtime is zero");
    let (c, r) = decompress(&blob[..]).unwrap();
    assert_eq!(c, Compression::Gzip);
    let j = Jail::new();
    extract(r, &j.root, &ExtractOptions::default()).unwrap();
    assert_eq!(fs::read(j.root.join("f")).unwrap(), vec![9u8; 100_000]);
}
