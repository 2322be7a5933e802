//! `-v`, `--mount` and `--tmpfs` as mounts, and named volumes: `volumes/NAME/_data` in the
//! store, filled from the image on first use as Docker does.

use crate::error::{Result, RuntimeError};
use crate::launch::options::{parse_size, random_id};
use crate::spec::UserMount;
use std::path::{Path, PathBuf};

fn invalid(spec: &str, reason: impl Into<String>, hint: &str) -> RuntimeError {
    RuntimeError::refused(
        format!("invalid volume specification `{spec}`{}", reason.into()),
        hint,
    )
}

/// Docker's rule for volume names.
fn is_volume_name(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 2
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

/// The directory of a named volume in the store, created on first use.
fn volume_dir(root: &Path, name: &str) -> Result<PathBuf> {
    let dir = kiln_store::layout::volume_data(root, name);
    std::fs::create_dir_all(&dir).map_err(RuntimeError::io(&dir))?;
    Ok(dir)
}

/// `-v HOST:CONTAINER[:ro|rw]` or `-v NAME:CONTAINER[:ro]` (a named volume of the store
/// at `root`).
pub fn parse_volume(root: &Path, v: &str) -> Result<UserMount> {
    const USE: &str = "use `-v /host/path:/container/path[:ro]`";
    let parts: Vec<&str> = v.split(':').collect();
    let (src, dst, mode) = match parts.as_slice() {
        [s, d] => (*s, *d, "rw"),
        [s, d, m] => (*s, *d, *m),
        _ => return Err(invalid(v, "", USE)),
    };
    if !dst.starts_with('/') || src.is_empty() {
        return Err(invalid(v, "", USE));
    }
    let src = if src.starts_with('/') {
        src.to_string()
    } else if is_volume_name(src) {
        volume_dir(root, src)?.display().to_string()
    } else {
        return Err(invalid(
            v,
            format!(": `{src}` is neither an absolute path nor a volume name"),
            "use `-v /host/path:/container/path` or `-v NAME:/container/path`",
        ));
    };
    let readonly = match mode {
        "ro" => true,
        "rw" | "z" | "Z" => false,
        _ => return Err(invalid(v, "", USE)),
    };
    if !Path::new(&src).exists() {
        return Err(invalid(
            v,
            format!(": {src} does not exist"),
            "create the host directory first, or name a volume",
        ));
    }
    Ok(UserMount::Bind {
        source: src,
        destination: dst.to_string(),
        readonly,
    })
}

/// `--mount type=bind|volume|tmpfs,source=...,target=...[,readonly]`.
pub fn parse_mount(root: &Path, m: &str) -> Result<UserMount> {
    const USE: &str = "use `--mount type=bind|volume|tmpfs,source=...,target=...[,readonly]`";
    let bad = |why: String| RuntimeError::refused(format!("invalid mount `{m}`: {why}"), USE);
    let mut kind = "volume";
    let (mut src, mut dst, mut ro) = (None, None, false);
    let mut opts = Vec::new();
    for kv in m.split(',') {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        match k {
            "type" => kind = v,
            "source" | "src" => src = Some(v.to_string()),
            "target" | "destination" | "dst" => dst = Some(v.to_string()),
            "readonly" | "ro" => ro = v.is_empty() || v == "true" || v == "1",
            "tmpfs-size" => opts.push(format!("size={}", parse_size(v)?)),
            "tmpfs-mode" => opts.push(format!("mode={v}")),
            _ => return Err(bad(format!("unknown option `{k}`"))),
        }
    }
    let dst = dst.ok_or_else(|| bad("no target".into()))?;
    let mode = if ro { "ro" } else { "rw" };
    match kind {
        "bind" => {
            let src = src.ok_or_else(|| bad("no source".into()))?;
            if !src.starts_with('/') {
                return Err(bad("a bind source is an absolute host path".into()));
            }
            parse_volume(root, &format!("{src}:{dst}:{mode}"))
        }
        "volume" => {
            // Without a source: an anonymous volume, named by a random ID as Docker does.
            let name = src.unwrap_or_else(random_id);
            if !is_volume_name(&name) {
                return Err(bad(format!("`{name}` is not a volume name")));
            }
            parse_volume(root, &format!("{name}:{dst}:{mode}"))
        }
        "tmpfs" => Ok(UserMount::Tmpfs {
            destination: dst,
            options: opts,
        }),
        other => Err(bad(format!(
            "type `{other}` is not supported (bind, volume, tmpfs)"
        ))),
    }
}

/// `--tmpfs PATH[:OPTIONS]`.
pub fn parse_tmpfs(t: &str) -> UserMount {
    let (dst, opts) = t.split_once(':').unwrap_or((t, ""));
    UserMount::Tmpfs {
        destination: dst.to_string(),
        options: opts
            .split(',')
            .filter(|o| !o.is_empty())
            .map(str::to_string)
            .collect(),
    }
}

/// A named volume used for the first time gets what the image has at its mount point
/// (files, owners, modes, links), as Docker does; later runs see the volume as they left
/// it. `volumes/NAME/.populated` marks a volume that was offered its content once.
pub fn populate_new_volumes(root: &Path, rootfs: &Path, mounts: &[UserMount]) -> Result<()> {
    let volumes = kiln_store::layout::volumes_dir(root);
    for m in mounts {
        let UserMount::Bind {
            source,
            destination,
            ..
        } = m
        else {
            continue;
        };
        let data = Path::new(source);
        let Some(vol) = data
            .parent()
            .filter(|v| v.parent() == Some(volumes.as_path()))
        else {
            continue;
        };
        if data.file_name() != Some(std::ffi::OsStr::new("_data")) {
            continue;
        }
        let marker = vol.join(".populated");
        if marker.exists() {
            continue;
        }
        let empty = std::fs::read_dir(data)
            .map(|mut d| d.next().is_none())
            .unwrap_or(false);
        if empty {
            copy_from_image(rootfs, destination, data).map_err(|e| RuntimeError::Io {
                path: vol.to_path_buf(),
                source: std::io::Error::new(
                    e.kind(),
                    format!("cannot fill the volume from the image's {destination}: {e}"),
                ),
            })?;
        }
        std::fs::write(&marker, b"").map_err(RuntimeError::io(&marker))?;
    }
    Ok(())
}

/// Copies the directory `path` of the root filesystem (resolved inside it: links cannot
/// lead out) into `dest`, keeping owners, modes, times and symlinks; nothing when the
/// image has no directory there.
fn copy_from_image(rootfs: &Path, path: &str, dest: &Path) -> std::io::Result<()> {
    use rustix::fs::{openat2, Mode, OFlags, ResolveFlags};
    use std::os::fd::AsRawFd;
    let root = rustix::fs::open(rootfs, OFlags::PATH | OFlags::DIRECTORY, Mode::empty())?;
    let Ok(fd) = openat2(
        &root,
        path.trim_start_matches('/'),
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    ) else {
        return Ok(());
    };
    let src = PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()));
    copy_tree(&src, dest)?;
    let md = std::fs::metadata(&src)?;
    copy_meta(dest, &md)
}

fn copy_meta(dest: &Path, md: &std::fs::Metadata) -> std::io::Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    std::os::unix::fs::lchown(dest, Some(md.uid()), Some(md.gid()))?;
    if !md.file_type().is_symlink() {
        std::fs::set_permissions(dest, std::fs::Permissions::from_mode(md.mode() & 0o7777))?;
    }
    Ok(())
}

/// Recursive copy that never follows symlinks (they are copied as links).
fn copy_tree(src: &Path, dest: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(src)? {
        let entry = entry?;
        let from = entry.path();
        let to = dest.join(entry.file_name());
        let md = std::fs::symlink_metadata(&from)?;
        let ft = md.file_type();
        if ft.is_dir() {
            std::fs::create_dir(&to)?;
            copy_tree(&from, &to)?;
        } else if ft.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&from)?, &to)?;
        } else if ft.is_file() {
            std::fs::copy(&from, &to)?;
        } else {
            // Devices, sockets and fifos have no place in a data volume.
            continue;
        }
        copy_meta(&to, &md)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volume_specs() {
        let root = tempfile::tempdir().unwrap();
        let host = root.path().display().to_string();
        match parse_volume(root.path(), &format!("{host}:/data:ro")).unwrap() {
            UserMount::Bind {
                source,
                destination,
                readonly,
            } => {
                assert_eq!(
                    (source.as_str(), destination.as_str(), readonly),
                    (host.as_str(), "/data", true)
                );
            }
            other => panic!("{other:?}"),
        }
        match parse_volume(root.path(), "cache:/root/.cache").unwrap() {
            UserMount::Bind { source, .. } => {
                assert_eq!(
                    Path::new(&source),
                    kiln_store::layout::volume_data(root.path(), "cache")
                );
                assert!(Path::new(&source).is_dir());
            }
            other => panic!("{other:?}"),
        }
        for bad in [
            "/x",
            "rel/path:/d",
            "/nonexistent-kiln:/d",
            &format!("{host}:/d:rx"),
            &format!("{host}:d"),
        ] {
            let e = parse_volume(root.path(), bad).unwrap_err();
            assert!(e.hint().is_some(), "{bad}: {e}");
        }
    }

    #[test]
    fn mount_specs() {
        let root = tempfile::tempdir().unwrap();
        assert_eq!(
            parse_mount(root.path(), "type=tmpfs,target=/t,tmpfs-size=1m").unwrap(),
            UserMount::Tmpfs {
                destination: "/t".into(),
                options: vec![format!("size={}", 1 << 20)]
            }
        );
        assert!(matches!(
            parse_mount(root.path(), "type=volume,target=/v").unwrap(),
            UserMount::Bind {
                readonly: false,
                ..
            }
        ));
        for bad in [
            "type=bind,target=/t",
            "type=bind,source=rel,target=/t",
            "type=nfs,target=/t",
            "target=/t,bogus=1",
            "type=tmpfs",
        ] {
            assert!(parse_mount(root.path(), bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse_tmpfs("/run:size=1m,mode=1777"),
            UserMount::Tmpfs {
                destination: "/run".into(),
                options: vec!["size=1m".into(), "mode=1777".into()]
            }
        );
    }
}
