//! Helpers shared by the integration tests: raw tar construction (names the `tar` crate's builder would
//! refuse), sentinels next to the target, and tree snapshots for comparisons.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use tar::{EntryType, Header};

/// Builds tar bytes entry by entry, writing names verbatim into the header.
#[derive(Default)]
pub struct RawTar {
    pub buf: Vec<u8>,
}

impl RawTar {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn entry(
        &mut self,
        name: &str,
        ty: EntryType,
        link: &str,
        mode: u32,
        data: &[u8],
    ) -> &mut Self {
        assert!(
            name.len() <= 100 && link.len() <= 100,
            "use pax() for long names"
        );
        let mut h = Header::new_ustar();
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
        h.set_entry_type(ty);
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_600_000_000);
        h.set_size(data.len() as u64);
        h.set_cksum();
        self.buf.extend_from_slice(h.as_bytes());
        self.buf.extend_from_slice(data);
        self.buf.resize(self.buf.len().div_ceil(512) * 512, 0);
        self
    }

    /// A PAX extended header for the next entry.
    pub fn pax(&mut self, recs: &[(&str, &[u8])]) -> &mut Self {
        let mut body = Vec::new();
        for (k, v) in recs {
            let rest = k.len() + v.len() + 3;
            let mut len = rest + 1;
            while len != rest + len.to_string().len() {
                len = rest + len.to_string().len();
            }
            body.extend_from_slice(format!("{len} {k}=").as_bytes());
            body.extend_from_slice(v);
            body.push(b'\n');
        }
        self.entry("PaxHeader", EntryType::XHeader, "", 0o644, &body.clone())
    }

    pub fn file(&mut self, name: &str, data: &[u8]) -> &mut Self {
        self.entry(name, EntryType::Regular, "", 0o644, data)
    }
    pub fn dir(&mut self, name: &str) -> &mut Self {
        self.entry(name, EntryType::Directory, "", 0o755, b"")
    }
    pub fn symlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.entry(name, EntryType::Symlink, target, 0o777, b"")
    }
    pub fn hardlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.entry(name, EntryType::Link, target, 0o644, b"")
    }
    pub fn finish(&mut self) -> Vec<u8> {
        let mut b = std::mem::take(&mut self.buf);
        b.extend_from_slice(&[0u8; 1024]);
        b
    }
}

/// A temp dir holding `root/` (the extraction target) and `sentinel/outside-file`, which no test may touch.
pub struct Jail {
    pub dir: tempfile::TempDir,
    pub root: PathBuf,
    pub sentinel: PathBuf,
}

impl Jail {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let sentinel = dir.path().join("sentinel");
        fs::create_dir(&root).unwrap();
        fs::create_dir(&sentinel).unwrap();
        fs::write(sentinel.join("outside-file"), b"original").unwrap();
        Jail {
            dir,
            root,
            sentinel,
        }
    }

    /// Nothing outside `root` changed: the temp dir holds only `root` and `sentinel`, the sentinel only its
    /// untouched file (same content, one link, same mode).
    pub fn assert_untouched(&self) {
        let mut top: Vec<_> = fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        top.sort();
        assert_eq!(
            top,
            ["root", "sentinel"],
            "something was created next to the target"
        );
        let names: Vec<_> = fs::read_dir(&self.sentinel)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["outside-file"], "sentinel dir changed");
        let f = self.sentinel.join("outside-file");
        assert_eq!(fs::read(&f).unwrap(), b"original");
        let md = fs::symlink_metadata(&f).unwrap();
        assert!(md.is_file());
        assert_eq!(md.nlink(), 1, "outside file was hardlinked");
        assert_eq!(md.mode() & 0o7777, 0o644);
    }
}

/// A unique absolute path under /tmp that must never come to exist.
pub fn tmp_escape(tag: &str) -> String {
    format!("/tmp/kiln-escape-{}-{tag}", std::process::id())
}

/// What a tree looks like, path by path; `dir_mtimes` decides whether directory mtimes count.
#[derive(Debug, PartialEq, Eq)]
pub struct Node {
    pub kind: &'static str,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: Option<i64>,
    pub nlink: u64,
    pub content: Vec<u8>,
}

pub fn snapshot(root: &Path, dir_mtimes: bool) -> BTreeMap<String, Node> {
    fn walk(root: &Path, dir: &Path, dir_mtimes: bool, out: &mut BTreeMap<String, Node>) {
        for e in fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let md = fs::symlink_metadata(&p).unwrap();
            let ft = md.file_type();
            let (kind, content) = if ft.is_dir() {
                ("dir", Vec::new())
            } else if ft.is_symlink() {
                (
                    "symlink",
                    fs::read_link(&p)
                        .unwrap()
                        .into_os_string()
                        .into_encoded_bytes(),
                )
            } else if ft.is_file() {
                ("file", fs::read(&p).unwrap())
            } else if ft.is_fifo() {
                ("fifo", Vec::new())
            } else if ft.is_char_device() {
                ("char", md.rdev().to_le_bytes().to_vec())
            } else {
                ("other", Vec::new())
            };
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            let mtime = (dir_mtimes || !ft.is_dir()).then_some(md.mtime());
            let nlink = if ft.is_dir() { 0 } else { md.nlink() };
            let mode = if ft.is_symlink() {
                0
            } else {
                md.mode() & 0o7777
            };
            out.insert(
                rel,
                Node {
                    kind,
                    mode,
                    uid: md.uid(),
                    gid: md.gid(),
                    mtime,
                    nlink,
                    content,
                },
            );
            if ft.is_dir() {
                walk(root, &p, dir_mtimes, out);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, dir_mtimes, &mut out);
    out
}

pub fn names(root: &Path) -> Vec<String> {
    snapshot(root, false).into_keys().collect()
}

/// Paths of a tar stream, in order.
pub fn tar_paths(bytes: &[u8]) -> Vec<String> {
    let mut ar = tar::Archive::new(bytes);
    ar.entries()
        .unwrap()
        .map(|e| String::from_utf8_lossy(&e.unwrap().path_bytes()).into_owned())
        .collect()
}
