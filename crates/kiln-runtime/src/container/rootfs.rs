//! The container's root filesystem and the files the runtime adds to it: the private
//! mount namespace, the overlay, /etc/hostname, /etc/hosts and /etc/resolv.conf, and the
//! removal of it all.

use super::ContainerDirs;
use crate::error::{Result, RuntimeError};
use nix::mount::{mount, MsFlags};
use std::fs;
use std::path::{Path, PathBuf};

/// Moves this process into a mount namespace of its own whose mounts do not propagate
/// back to the host. Must run before any thread is started.
pub fn private_mount_namespace() -> Result<()> {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS).map_err(|e| RuntimeError::Io {
        path: "/".into(),
        source: std::io::Error::from(e),
    })?;
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_SLAVE,
        None::<&str>,
    )
    .map_err(|e| RuntimeError::Io {
        path: "/".into(),
        source: e.into(),
    })
}

/// Creates the container's directories and mounts its root filesystem: the snapshots
/// (bottom first) as read-only lower layers, a fresh upper layer on top.
pub fn mount_rootfs(dirs: &ContainerDirs, lowerdirs: &[PathBuf]) -> Result<()> {
    mount_rootfs_with(dirs, lowerdirs, false)
}

/// [`mount_rootfs`], optionally `volatile`: overlayfs then skips syncing the upper layer
/// (at every fsync and at unmount, where it syncs the whole filesystem holding it). For
/// build steps, whose upper layer is read once into a layer blob that is itself fsynced,
/// and `--rm` containers, whose upper layer is deleted: waiting for writeback (hundreds
/// of milliseconds after a `pip install` or a `kiln load`) buys nothing.
pub fn mount_rootfs_with(
    dirs: &ContainerDirs,
    lowerdirs: &[PathBuf],
    volatile: bool,
) -> Result<()> {
    for d in [
        dirs.upper(),
        dirs.work(),
        dirs.rootfs(),
        dirs.state(),
        dirs.dir.join("empty"),
    ] {
        fs::create_dir_all(&d).map_err(RuntimeError::io(&d))?;
    }
    let mut lowers: Vec<PathBuf> = lowerdirs.iter().rev().cloned().collect();
    if lowers.is_empty() {
        lowers.push(dirs.dir.join("empty"));
    }
    // Snapshot paths are long; the mount data is limited to one page. Naming them
    // relative to their common directory (via the working directory) fits ~60 layers.
    let common = lowers[0].parent().map(Path::to_path_buf);
    let relative = common
        .as_ref()
        .filter(|c| lowers.iter().all(|l| l.parent() == Some(c.as_path())));
    let previous_cwd = std::env::current_dir().ok();
    let lower_arg = match relative {
        Some(c) => {
            std::env::set_current_dir(c).map_err(RuntimeError::io(c))?;
            lowers
                .iter()
                .map(|l| l.file_name().unwrap().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join(":")
        }
        None => lowers
            .iter()
            .map(|l| l.display().to_string())
            .collect::<Vec<_>>()
            .join(":"),
    };
    let data = format!(
        "lowerdir={lower_arg},upperdir={},workdir={}{}",
        dirs.upper().display(),
        dirs.work().display(),
        if volatile { ",volatile" } else { "" }
    );
    let result = mount(
        Some("overlay"),
        &dirs.rootfs(),
        Some("overlay"),
        MsFlags::empty(),
        Some(data.as_str()),
    );
    if let Some(p) = previous_cwd {
        let _ = std::env::set_current_dir(p);
    }
    result.map_err(|e| RuntimeError::Io {
        path: dirs.rootfs(),
        source: std::io::Error::other(format!("cannot mount the overlay root filesystem: {e}")),
    })
}

/// Writes the container's /etc/hostname, /etc/hosts and /etc/resolv.conf into `dir`, as
/// Docker provides them (the host's hosts file on the host network, loopback names
/// otherwise); returns (path in the container, file) pairs for the spec's bind mounts.
pub fn write_etc_files(
    dir: &Path,
    hostname: &str,
    host_network: bool,
) -> Result<Vec<(String, String)>> {
    let hosts = if host_network {
        fs::read_to_string("/etc/hosts").unwrap_or_default()
    } else {
        format!("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t{hostname}\n")
    };
    let mut out = Vec::new();
    for (file, content) in [
        ("hostname", format!("{hostname}\n")),
        ("hosts", hosts),
        (
            "resolv.conf",
            fs::read_to_string("/etc/resolv.conf").unwrap_or_default(),
        ),
    ] {
        let p = dir.join(file);
        fs::write(&p, content).map_err(RuntimeError::io(&p))?;
        out.push((format!("/etc/{file}"), p.display().to_string()));
    }
    Ok(out)
}

/// What the runtime, not the container's process, put in the upper directory: the bind
/// targets of /etc/hostname, /etc/hosts and /etc/resolv.conf, and /dev, /proc, /sys (and
/// /dev's mount points) when the image lacked them and they hold nothing else. Docker
/// keeps these in an "init" layer that `docker commit` leaves out; kiln leaves them out
/// by name.
pub fn runtime_mount_points(upper: &Path) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = ["etc/hostname", "etc/hosts", "etc/resolv.conf"]
        .iter()
        .map(|p| p.as_bytes().to_vec())
        .collect();
    for dir in ["dev/pts", "dev/shm", "dev/mqueue", "dev", "proc", "sys"] {
        let path = upper.join(dir);
        let Ok(entries) = std::fs::read_dir(&path) else {
            continue;
        };
        let only_excluded = entries.flatten().all(|e| {
            let rel = format!("{dir}/{}", e.file_name().to_string_lossy());
            out.contains(&rel.into_bytes())
        });
        if only_excluded {
            out.push(dir.as_bytes().to_vec());
        }
    }
    out
}

/// Removes a container's directory after its process is gone and its overlay unmounted.
pub fn remove_dirs(dirs: &ContainerDirs) -> Result<()> {
    for m in [dirs.rootfs(), dirs.dir.join("netns")] {
        let _ = nix::mount::umount2(&m, nix::mount::MntFlags::MNT_DETACH);
    }
    match fs::remove_dir_all(&dirs.dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(RuntimeError::io(&dirs.dir)(e)),
    }
}
