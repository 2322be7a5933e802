//! The env layer: the app user in /etc/passwd and /etc/group, its home, the venv skeleton
//! and the workdir.

use super::base::Interp;
use super::io;
use super::layer::write_tree;
use crate::manifest::Project;
use crate::{Error, Result};
use kiln_build::exec::CacheEntry;
use kiln_layer::Compression;
use kiln_store::Store;
use std::fs;
use std::path::{Path, PathBuf};

/// The base's /etc/passwd or /etc/group: the top layer's that has it, read inside that
/// layer (the image's links never reach the host's files) and bounded.
pub(super) fn base_file(lowers: &[PathBuf], rel: &str) -> Option<String> {
    lowers
        .iter()
        .rev()
        .find_map(|d| kiln_runtime::container::read_in_root(d, rel))
}

pub(super) fn env_layer(
    store: &Store,
    root: &Path,
    p: &Project,
    interp: &Interp,
    passwd: &str,
    group: &str,
    epoch: i64,
) -> Result<CacheEntry> {
    use std::os::unix::fs::{chown, symlink, PermissionsExt};
    let mk = |rel: &str, mode: u32, owner: Option<(u32, u32)>| -> Result<PathBuf> {
        let d = root.join(rel);
        fs::create_dir_all(&d).map_err(io(&d))?;
        fs::set_permissions(&d, fs::Permissions::from_mode(mode)).map_err(io(&d))?;
        if let Some((u, g)) = owner {
            chown(&d, Some(u), Some(g)).map_err(io(&d))?;
        }
        Ok(d)
    };
    let (uid, gid, uname) = p.user.clone();
    let etc = mk("etc", 0o755, None)?;
    if let Some(name) = uname.as_deref().filter(|n| *n != "root") {
        // A name the base already has keeps its entry, and must have the ids kiln runs as.
        if let Some(l) = passwd.lines().find(|l| l.split(':').next() == Some(name)) {
            let f: Vec<&str> = l.split(':').collect();
            let ids = (
                f.get(2).and_then(|u| u.parse::<u32>().ok()),
                f.get(3).and_then(|g| g.parse::<u32>().ok()),
            );
            if ids != (Some(uid), Some(gid)) {
                return Err(Error::with_hint(
                    format!(
                        "user `{name}` exists in the base with uid:gid {}:{}, not {uid}:{gid}",
                        f.get(2).unwrap_or(&"?"),
                        f.get(3).unwrap_or(&"?")
                    ),
                    format!(
                        "set [app] user = \"{}:{}\", or pick a name the base does not have",
                        f.get(2).unwrap_or(&"?"),
                        f.get(3).unwrap_or(&"?")
                    ),
                ));
            }
        }
        let has_user = passwd.lines().any(|l| l.split(':').next() == Some(name));
        let has_group = group.lines().any(|l| l.split(':').next() == Some(name));
        let home = format!("/home/{name}");
        // Writes `text` with `line` after it, on a line of its own, as etc/`file` (0644).
        let append = |file: &str, text: &str, line: String| -> Result<()> {
            let mut t = text.to_string();
            if !t.is_empty() && !t.ends_with('\n') {
                t.push('\n');
            }
            t.push_str(&line);
            fs::write(etc.join(file), t).map_err(io(&etc))?;
            fs::set_permissions(etc.join(file), fs::Permissions::from_mode(0o644)).map_err(io(&etc))
        };
        if !has_user {
            append(
                "passwd",
                passwd,
                format!("{name}:x:{uid}:{gid}::{home}:/bin/sh\n"),
            )?;
        }
        if !has_group {
            append("group", group, format!("{name}:x:{gid}:\n"))?;
        }
        mk("home", 0o755, None)?;
        mk(&format!("home/{name}"), 0o750, Some((uid, gid)))?;
    }
    let venv = mk("opt/venv", 0o755, None)?;
    mk("opt/venv/bin", 0o755, None)?;
    mk(
        &format!("opt/venv/lib/python{}/site-packages", interp.version),
        0o755,
        None,
    )?;
    let home = Path::new(&interp.path)
        .parent()
        .map_or("/usr/bin".into(), |d| d.display().to_string());
    fs::write(
        venv.join("pyvenv.cfg"),
        format!(
            "home = {home}\ninclude-system-site-packages = false\nversion = {}\nexecutable = {}\n",
            interp.full, interp.path
        ),
    )
    .map_err(io(&venv))?;
    fs::set_permissions(venv.join("pyvenv.cfg"), fs::Permissions::from_mode(0o644))
        .map_err(io(&venv))?;
    let bin = venv.join("bin");
    symlink(&interp.path, bin.join("python")).map_err(io(&bin))?;
    symlink("python", bin.join("python3")).map_err(io(&bin))?;
    symlink("python", bin.join(format!("python{}", interp.version))).map_err(io(&bin))?;
    mk(p.workdir.trim_start_matches('/'), 0o755, None)?;
    for w in &p.manifest.app.writable {
        let rel = crate::manifest::image_join("/", w);
        if rel != "/" {
            mk(rel.trim_start_matches('/'), 0o755, Some((uid, gid)))?;
        }
    }
    write_tree(store, root, epoch, Compression::None)
}
