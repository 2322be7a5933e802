//! A many-file layer made by GNU tar extracts to the tree GNU tar itself extracts: modes (setuid,
//! sticky), owners, mtimes to the nanosecond (and past 2242, beyond the octal field), symlinks,
//! hardlinks (also to a file written just before), FIFOs, xattrs (`user.*`, `security.capability`),
//! and entries that replace earlier ones of the same archive.
//!
//! Needs root (owners, capabilities) and GNU tar; skipped (with a note) otherwise.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use kiln_layer::{extract, ExtractOptions, Whiteouts};
use rustix::fs::{AtFlags, Timespec, Timestamps, XattrFlags, CWD};

fn usable() -> bool {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: needs root (owners, security.capability)");
        return false;
    }
    let gnu = Command::new("tar")
        .arg("--version")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("GNU tar"));
    if !gnu {
        eprintln!("skipped: GNU tar not found");
    }
    gnu
}

fn set_times(p: &Path, sec: i64, nsec: i64) {
    let t = Timespec {
        tv_sec: sec,
        tv_nsec: nsec,
    };
    rustix::fs::utimensat(
        CWD,
        p,
        &Timestamps {
            last_access: t,
            last_modification: t,
        },
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .unwrap();
}

fn chown(p: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::lchown(p, Some(uid), Some(gid)).unwrap();
}

/// xorshift: the same tree on every run.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A site-packages-like tree: packages of nested directories with `__init__.py`, modules, caches,
/// `.so` files, and the odd cases around them.
fn make_tree(root: &Path) {
    let mut r = Rng(0x9e37_79b9_7f4a_7c15);
    let owners = [(0, 0), (1000, 1000), (65534, 100), (2_000_000, 3_000_000)];
    let modes = [0o644, 0o755, 0o600, 0o444, 0o640, 0o4755, 0o2755, 0o700];
    let mut files = Vec::new();
    for p in 0..30 {
        let pkg = root.join(format!("site-packages/pkg{p}"));
        let mut dirs = vec![pkg.clone()];
        fs::create_dir_all(&pkg).unwrap();
        for d in 0..(1 + r.below(6)) {
            let parent = dirs[r.below(dirs.len() as u64) as usize].clone();
            let sub = parent.join(format!("sub{d}"));
            fs::create_dir(&sub).unwrap();
            dirs.push(sub);
        }
        for d in &dirs {
            fs::write(d.join("__init__.py"), b"").unwrap();
            files.push(d.join("__init__.py"));
            for f in 0..(5 + r.below(60)) {
                let (name, size) = match r.below(10) {
                    0 => (format!("_ext{f}.so"), 20_000 + r.below(400_000)),
                    1..=3 => (format!("mod{f}.pyc"), r.below(30_000)),
                    _ => (format!("mod{f}.py"), r.below(9_000)),
                };
                let path = d.join(name);
                let data: Vec<u8> = (0..size)
                    .map(|i| (i as u8) ^ (r.next() as u8 & 7))
                    .collect();
                fs::write(&path, &data).unwrap();
                files.push(path);
            }
        }
        for d in &dirs {
            let (uid, gid) = owners[r.below(4) as usize];
            chown(d, uid, gid);
        }
    }
    // One big file, streamed rather than queued.
    let big = root.join("site-packages/pkg0/libbig.so");
    fs::write(&big, vec![7u8; 3 << 20]).unwrap();
    files.push(big);
    for (i, f) in files.iter().enumerate() {
        let (uid, gid) = owners[r.below(4) as usize];
        chown(f, uid, gid);
        let mode = modes[r.below(modes.len() as u64) as usize];
        fs::set_permissions(f, fs::Permissions::from_mode(mode)).unwrap();
        if i % 7 == 0 {
            rustix::fs::setxattr(
                f,
                "user.kiln",
                format!("v{i}").as_bytes(),
                XattrFlags::empty(),
            )
            .unwrap();
        }
    }
    // security.capability (cap_net_bind_service, v2), after chown (which clears it).
    let cap = root.join("site-packages/pkg1/__init__.py");
    let v2: [u8; 20] = [0, 0, 0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    rustix::fs::setxattr(&cap, "security.capability", &v2, XattrFlags::empty()).unwrap();
    // Links: relative, absolute, dangling, to a directory; hardlinks.
    let sp = root.join("site-packages");
    symlink("pkg1/__init__.py", sp.join("rel-link")).unwrap();
    symlink("/site-packages/pkg2", sp.join("abs-dir-link")).unwrap();
    symlink("nowhere/at/all", sp.join("dangling")).unwrap();
    chown(&sp.join("dangling"), 1000, 1000);
    fs::hard_link(&files[3], sp.join("hard-a")).unwrap();
    fs::hard_link(&files[3], sp.join("pkg3/hard-b")).unwrap();
    rustix::fs::mknodat(
        CWD,
        sp.join("fifo"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o640),
        0,
    )
    .unwrap();
    fs::write(
        root.join("top.py"),
        b"first version, longer than the second\n",
    )
    .unwrap();
    let tmp = root.join("tmp");
    fs::create_dir(&tmp).unwrap();
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o1777)).unwrap();
    // Times last, children before parents: nanoseconds, and one far beyond the octal field.
    let mut all: Vec<PathBuf> = walk(root).into_keys().map(|p| root.join(p)).collect();
    all.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for (i, p) in all.iter().enumerate() {
        let sec = 1_600_000_000 + (i as i64) * 1013;
        set_times(p, sec, (i as i64 * 7_919_993) % 1_000_000_000);
    }
    set_times(&files[5], 9_999_999_999, 123_456_789);
}

/// Every path under `root` (relative), with what a comparison looks at.
fn walk(root: &Path) -> BTreeMap<PathBuf, fs::Metadata> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let md = fs::symlink_metadata(&p).unwrap();
            if md.is_dir() {
                stack.push(p.clone());
            }
            out.insert(p.strip_prefix(root).unwrap().to_path_buf(), md);
        }
    }
    out
}

fn xattrs(p: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut names = vec![0u8; 64 * 1024];
    let n = rustix::fs::llistxattr(p, &mut names).unwrap();
    let mut out = BTreeMap::new();
    for name in names[..n].split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let name = String::from_utf8_lossy(name).into_owned();
        let mut v = vec![0u8; 64 * 1024];
        let k = rustix::fs::lgetxattr(p, name.as_str(), &mut v).unwrap();
        out.insert(name, v[..k].to_vec());
    }
    out
}

/// Everything compared of one entry, as text (a failure shows the first difference).
fn describe(root: &Path, rel: &Path, md: &fs::Metadata, inodes: &BTreeMap<u64, PathBuf>) -> String {
    let p = root.join(rel);
    let mut s = format!(
        "{} mode {:o} owner {}:{} mtime {}.{:09} xattrs {:?}",
        rel.display(),
        md.mode(),
        md.uid(),
        md.gid(),
        md.mtime(),
        md.mtime_nsec(),
        xattrs(&p)
    );
    if md.file_type().is_symlink() {
        s += &format!(" -> {}", fs::read_link(&p).unwrap().display());
    } else if md.is_file() {
        let data = fs::read(&p).unwrap();
        s += &format!(
            " size {} sum {} links {} first name {}",
            data.len(),
            data.iter().enumerate().fold(0u64, |a, (i, &b)| a
                .wrapping_mul(31)
                .wrapping_add(u64::from(b) ^ i as u64)),
            md.nlink(),
            inodes[&md.ino()].display()
        );
    }
    s
}

fn listing(root: &Path) -> Vec<String> {
    let tree = walk(root);
    // Hardlinks: the same inode must carry the same set of names in both trees.
    let mut inodes = BTreeMap::new();
    for (rel, md) in &tree {
        if md.is_file() {
            inodes.entry(md.ino()).or_insert_with(|| rel.clone());
        }
    }
    tree.iter()
        .map(|(rel, md)| describe(root, rel, md, &inodes))
        .collect()
}

fn gnu(args: &[&str], dir: &Path) {
    let st = Command::new("tar")
        .args(args)
        .current_dir(dir)
        .status()
        .unwrap();
    assert!(st.success(), "tar {args:?} failed");
}

#[test]
fn many_file_layer_equals_gnu_tar() {
    if !usable() {
        return;
    }
    let base = tempfile::tempdir().unwrap();
    let src = base.path().join("src");
    fs::create_dir(&src).unwrap();
    make_tree(&src);
    let layer = base.path().join("layer.tar");
    let layer_s = layer.to_str().unwrap();
    let xattr_args = ["--xattrs", "--xattrs-include=*", "--numeric-owner"];
    let mut create = vec!["--format=posix", "-cf", layer_s];
    create.extend(xattr_args);
    create.extend(["site-packages", "tmp", "top.py"]);
    gnu(&create, &src);
    // Appended entries replace earlier ones: a file rewritten (new content and mode), and a
    // hardlink to that new file, both while the first version may still be being written. At the
    // top: GNU tar sets a directory's mtime when it leaves it, so entries appended into a directory
    // of the archive would change its mtime there (kiln sets directory times after the layer).
    let again = base.path().join("again");
    fs::create_dir(&again).unwrap();
    let f = again.join("top.py");
    fs::write(&f, b"second version\n").unwrap();
    fs::set_permissions(&f, fs::Permissions::from_mode(0o751)).unwrap();
    fs::hard_link(&f, again.join("top-link")).unwrap();
    set_times(&f, 1_700_000_000, 5);
    let mut append = vec!["--format=posix", "-rf", layer_s];
    append.extend(xattr_args);
    append.extend(["top.py", "top-link"]);
    gnu(&append, &again);

    let by_gnu = base.path().join("gnu");
    fs::create_dir(&by_gnu).unwrap();
    let mut x = vec!["-xpf", layer_s];
    x.extend(xattr_args);
    gnu(&x, &by_gnu);
    let want = listing(&by_gnu);
    assert!(want.len() > 1000, "the tree has {} entries", want.len());

    for whiteouts in [Whiteouts::Apply, Whiteouts::Overlay] {
        let by_kiln = base.path().join(format!("kiln-{whiteouts:?}"));
        fs::create_dir(&by_kiln).unwrap();
        let opts = ExtractOptions {
            same_owner: true,
            whiteouts,
        };
        let stats = extract(fs::File::open(&layer).unwrap(), &by_kiln, &opts).unwrap();
        assert!(stats.entries as usize >= want.len());
        let got = listing(&by_kiln);
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(g, w, "{whiteouts:?}: the first entry that differs");
        }
        assert_eq!(got.len(), want.len(), "{whiteouts:?}: entry count");
    }
}
