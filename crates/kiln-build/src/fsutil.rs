//! File operations of COPY and ADD inside a root filesystem being built: paths resolved
//! within the root (an image's symlinks never lead a copy onto the build host), copies
//! that set owners and modes as Docker does, and content hashes of what is copied (the
//! cache key of a COPY is what it copies, not when the files were touched).

use sha2::{Digest as _, Sha256};
use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

/// Resolves `path` (absolute inside the root) to a host path under `root`, following the
/// root's symlinks as the container would see them: absolute link targets restart at the
/// root, `..` stops at it. The last component may be missing.
pub fn secure_join(root: &Path, path: &str) -> io::Result<PathBuf> {
    let mut resolved: Vec<std::ffi::OsString> = Vec::new();
    let mut pending: Vec<std::ffi::OsString> = Path::new(path)
        .components()
        .rev()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect();
    let mut links = 0;
    while let Some(part) = pending.pop() {
        if part == ".." {
            resolved.pop();
            continue;
        }
        let mut candidate = root.to_path_buf();
        candidate.extend(&resolved);
        candidate.push(&part);
        match fs::symlink_metadata(&candidate) {
            Ok(md) if md.file_type().is_symlink() => {
                links += 1;
                if links > 40 {
                    return Err(io::Error::other(format!(
                        "too many levels of symbolic links in {path}"
                    )));
                }
                let target = fs::read_link(&candidate)?;
                if target.is_absolute() {
                    resolved.clear();
                }
                for c in target.components().rev() {
                    match c {
                        Component::Normal(n) => pending.push(n.to_os_string()),
                        Component::ParentDir => pending.push("..".into()),
                        _ => {}
                    }
                }
            }
            _ => resolved.push(part),
        }
    }
    let mut out = root.to_path_buf();
    out.extend(&resolved);
    Ok(out)
}

/// `mkdir -p` inside the root; directories made get mode 0755 and `owner`.
pub fn mkdir_all(root: &Path, path: &str, owner: Option<(u32, u32)>) -> io::Result<PathBuf> {
    let mut cur = String::new();
    let mut last = root.to_path_buf();
    for part in path.split('/').filter(|p| !p.is_empty() && *p != ".") {
        cur.push('/');
        cur.push_str(part);
        let p = secure_join(root, &cur)?;
        match fs::symlink_metadata(&p) {
            Ok(md) if md.is_dir() => {}
            Ok(_) => {
                return Err(io::Error::other(format!(
                    "{cur} exists and is not a directory"
                )));
            }
            Err(_) => {
                fs::create_dir(&p)?;
                fs::set_permissions(&p, fs::Permissions::from_mode(0o755))?;
                if let Some((u, g)) = owner {
                    std::os::unix::fs::lchown(&p, Some(u), Some(g))?;
                }
            }
        }
        last = p;
    }
    Ok(last)
}

/// How copied files are owned and moded.
#[derive(Clone, Copy, Debug, Default)]
pub struct CopyMeta {
    /// `--chown`: otherwise root (0:0), whatever the source's owner.
    pub owner: Option<(u32, u32)>,
    /// `--chmod`: otherwise the source's mode.
    pub mode: Option<u32>,
    /// Keep the source's owner (COPY --from a stage or image keeps what the image has).
    pub keep_owner: bool,
}

fn apply_meta(path: &Path, md: &fs::Metadata, meta: &CopyMeta) -> io::Result<()> {
    let (uid, gid) = match (meta.owner, meta.keep_owner) {
        (Some(o), _) => o,
        (None, true) => (md.uid(), md.gid()),
        (None, false) => (0, 0),
    };
    std::os::unix::fs::lchown(path, Some(uid), Some(gid))?;
    if !md.file_type().is_symlink() {
        let mode = meta.mode.unwrap_or(md.mode() & 0o7777);
        fs::set_permissions(path, fs::Permissions::from_mode(mode))?;
    }
    let mtime = filetime_of(md);
    set_mtime(path, mtime)
}

fn filetime_of(md: &fs::Metadata) -> (i64, i64) {
    (md.mtime(), md.mtime_nsec())
}

fn set_mtime(path: &Path, (s, ns): (i64, i64)) -> io::Result<()> {
    let t = rustix::fs::Timespec {
        tv_sec: s,
        tv_nsec: ns as _,
    };
    rustix::fs::utimensat(
        rustix::fs::CWD,
        path,
        &rustix::fs::Timestamps {
            last_access: t,
            last_modification: t,
        },
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )
    .map_err(io::Error::from)
}

/// Whether a path of a copy is taken (what `.dockerignore` and `--exclude` say).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keep {
    Yes,
    No,
    /// An excluded directory under which a `!` exception may re-include something: it is
    /// taken, with its real metadata, only when something below it is (BuildKit's walk).
    Below,
}

/// Whether `p` is taken: [`Keep::Yes`], or [`Keep::Below`] with something taken under it.
pub fn kept(p: &Path, filter: &dyn Fn(&Path) -> Keep) -> bool {
    match filter(p) {
        Keep::Yes => true,
        Keep::No => false,
        Keep::Below => fs::read_dir(p)
            .map(|d| d.flatten().any(|e| kept(&e.path(), filter)))
            .unwrap_or(false),
    }
}

/// Files already copied by one COPY, by (device, inode): a second name of the same file
/// becomes a hard link to the first copy, as BuildKit keeps hard links.
pub type HardLinks = std::collections::HashMap<(u64, u64), PathBuf>;

/// Copies `src` (a file, symlink or directory on the host) to `dest`, a host path already
/// resolved inside the root. A directory's content is merged into `dest`.
pub fn copy_into(
    root: &Path,
    src: &Path,
    dest_in_root: &str,
    meta: &CopyMeta,
    filter: &dyn Fn(&Path) -> Keep,
    links: &mut HardLinks,
) -> io::Result<()> {
    let md = fs::symlink_metadata(src)?;
    if md.is_dir() {
        let d = mkdir_all(
            root,
            dest_in_root,
            meta.owner
                .or(if meta.keep_owner { None } else { Some((0, 0)) }),
        )?;
        let mut entries: Vec<_> = fs::read_dir(src)?.collect::<io::Result<Vec<_>>>()?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let from = e.path();
            if !kept(&from, filter) {
                continue;
            }
            let name = e.file_name();
            let child = format!(
                "{}/{}",
                dest_in_root.trim_end_matches('/'),
                name.to_string_lossy()
            );
            copy_into(root, &from, &child, meta, filter, links)?;
        }
        // The directory takes the source's mode and owner (as BuildKit's copy does).
        apply_meta(&d, &md, meta)?;
        return Ok(());
    }
    let (parent, _) = dest_in_root.rsplit_once('/').unwrap_or(("", dest_in_root));
    mkdir_all(
        root,
        parent,
        meta.owner
            .or(if meta.keep_owner { None } else { Some((0, 0)) }),
    )?;
    let to = secure_join(root, dest_in_root)?;
    if let Ok(old) = fs::symlink_metadata(&to) {
        if old.is_dir() {
            fs::remove_dir_all(&to)?;
        } else {
            fs::remove_file(&to)?;
        }
    }
    let ft = md.file_type();
    if ft.is_symlink() {
        std::os::unix::fs::symlink(fs::read_link(src)?, &to)?;
    } else if ft.is_file() {
        if md.nlink() > 1 {
            if let Some(first) = links.get(&(md.dev(), md.ino())) {
                return fs::hard_link(first, &to);
            }
            links.insert((md.dev(), md.ino()), to.clone());
        }
        fs::copy(src, &to)?;
    } else {
        // Devices, fifos and sockets: BuildKit copies them as they are; a context rarely
        // has any. Recreate fifos; skip the rest.
        if ft.is_fifo() {
            nix::unistd::mkfifo(
                &to,
                nix::sys::stat::Mode::from_bits_truncate(md.mode() & 0o777),
            )
            .map_err(io::Error::from)?;
        } else {
            return Ok(());
        }
    }
    apply_meta(&to, &md, meta)
}

use std::os::unix::fs::FileTypeExt;

/// Sets every mtime in the tree to at most `epoch` (what a layer written with that
/// SOURCE_DATE_EPOCH records), links themselves included.
pub fn clamp_times(dir: &Path, epoch: i64) -> io::Result<()> {
    let md = fs::symlink_metadata(dir)?;
    if md.is_dir() {
        for e in fs::read_dir(dir)? {
            clamp_times(&e?.path(), epoch)?;
        }
    }
    if md.mtime() > epoch {
        set_mtime(dir, (epoch, 0))?;
    }
    Ok(())
}

/// A content hash of `paths` (files, links, directories, recursively): names relative to
/// each path, types, modes, link targets and bytes; not owners or times.
pub fn content_hash(
    paths: &[(String, PathBuf)],
    filter: &dyn Fn(&Path) -> Keep,
) -> io::Result<String> {
    let mut h = Sha256::new();
    // Hard links are part of what is copied: a second name hashes as a link to the first.
    let mut seen = std::collections::HashMap::new();
    for (label, p) in paths {
        h.update(label.as_bytes());
        h.update([0]);
        hash_tree(&mut h, p, "", filter, &mut seen)?;
    }
    Ok(hex::encode(h.finalize()))
}

fn hash_tree(
    h: &mut Sha256,
    p: &Path,
    rel: &str,
    filter: &dyn Fn(&Path) -> Keep,
    seen: &mut std::collections::HashMap<(u64, u64), String>,
) -> io::Result<()> {
    let md = fs::symlink_metadata(p)?;
    let ft = md.file_type();
    h.update(rel.as_bytes());
    h.update(format!("\0{:o}\0", md.mode()).as_bytes());
    let first = (ft.is_file() && md.nlink() > 1)
        .then(|| seen.get(&(md.dev(), md.ino())).cloned())
        .flatten();
    if let Some(first) = first {
        h.update(b"hardlink\0");
        h.update(first.as_bytes());
    } else if ft.is_symlink() {
        h.update(fs::read_link(p)?.as_os_str().as_encoded_bytes());
    } else if ft.is_file() {
        if md.nlink() > 1 {
            // Named relative to its source: no host path enters the cache key.
            seen.insert((md.dev(), md.ino()), rel.to_string());
        }
        io::copy(&mut fs::File::open(p)?, h)?;
    } else if ft.is_dir() {
        let mut entries: Vec<_> = fs::read_dir(p)?.collect::<io::Result<Vec<_>>>()?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            if !kept(&e.path(), filter) {
                continue;
            }
            let child = format!("{rel}/{}", e.file_name().to_string_lossy());
            hash_tree(h, &e.path(), &child, filter, seen)?;
        }
    }
    h.update([0xff]);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hard_links_and_reincluded_files_are_copied() {
        let src = tempfile::tempdir().unwrap();
        let root = tempfile::tempdir().unwrap();
        fs::create_dir_all(src.path().join("docs/sub")).unwrap();
        fs::write(src.path().join("a"), "a").unwrap();
        fs::hard_link(src.path().join("a"), src.path().join("b")).unwrap();
        fs::write(src.path().join("docs/README.md"), "r").unwrap();
        fs::write(src.path().join("docs/other.md"), "o").unwrap();
        fs::write(src.path().join("docs/sub/x"), "x").unwrap();
        let base = src.path().to_path_buf();
        let filter = move |p: &Path| match p.strip_prefix(&base).unwrap().to_str().unwrap() {
            "docs" => Keep::Below,
            "docs/README.md" => Keep::Yes,
            r if r.starts_with("docs/") => Keep::Below,
            _ => Keep::Yes,
        };
        let mut links = HardLinks::new();
        copy_into(
            root.path(),
            src.path(),
            "/c",
            &CopyMeta::default(),
            &filter,
            &mut links,
        )
        .unwrap();
        let c = root.path().join("c");
        assert_eq!(
            fs::metadata(c.join("a")).unwrap().ino(),
            fs::metadata(c.join("b")).unwrap().ino()
        );
        assert!(c.join("docs/README.md").is_file());
        assert!(!c.join("docs/other.md").exists());
        assert!(!c.join("docs/sub").exists(), "nothing kept below it");
        // The hash sees the link: a copy instead of a link is another content.
        let h1 = content_hash(&[("x".into(), src.path().to_path_buf())], &filter).unwrap();
        fs::remove_file(src.path().join("b")).unwrap();
        fs::write(src.path().join("b"), "a").unwrap();
        let h2 = content_hash(&[("x".into(), src.path().to_path_buf())], &filter).unwrap();
        assert_ne!(h1, h2);
    }

    #[test]
    fn secure_join_stays_in_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("usr/lib")).unwrap();
        std::os::unix::fs::symlink("/usr/lib", root.join("lib")).unwrap();
        std::os::unix::fs::symlink("../../../../etc", root.join("usr/escape")).unwrap();
        assert_eq!(secure_join(root, "/lib/x").unwrap(), root.join("usr/lib/x"));
        assert_eq!(
            secure_join(root, "/usr/escape/passwd").unwrap(),
            root.join("etc/passwd")
        );
        assert_eq!(secure_join(root, "/../../x").unwrap(), root.join("x"));
    }
}
