//! The cgroup file system as a container sees it: read-only, and only the container's own
//! cgroups. A writable cgroupfs lets a container lift its own memory and pids limits, and
//! a v1 hierarchy root (release_agent) is a way onto the host.
//!
//! - cgroup v2 (unified): a cgroup namespace of its own, with cgroup2 mounted read-only
//!   over it, so the container's cgroup is the root it sees (as Docker on v2).
//! - cgroup v1 and hybrid: /sys/fs/cgroup is a read-only copy of the host's directory
//!   layout (one empty directory per hierarchy, the co-mount symlinks), and each hierarchy
//!   the runtime puts the container in is bind-mounted read-only from the container's own
//!   cgroup directory. Named hierarchies (`name=systemd`) and controllers the runtime does
//!   not manage stay empty directories: the container never sees a hierarchy's root.
//!
//! libcontainer's own `cgroup` mount is not used on v1: it binds the hierarchies
//! read-write, the systemd one from the root.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Where the host's cgroup hierarchies are mounted.
pub const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// The v1 controllers libcontainer's cgroup manager puts a container in (each one it
/// finds mounted), so a container's directory exists in every hierarchy that has one.
const MANAGED_V1: &[&str] = &[
    "cpu",
    "cpuacct",
    "cpuset",
    "devices",
    "hugetlb",
    "memory",
    "pids",
    "perf_event",
    "blkio",
    "net_prio",
    "net_cls",
    "freezer",
];

/// What a container gets at /sys/fs/cgroup.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum CgroupView {
    /// Nothing mounted there (sysfs shows an empty directory).
    #[default]
    Hidden,
    /// cgroup v2: a cgroup namespace and a read-only cgroup2 mount.
    Unified,
    /// cgroup v1/hybrid: `template` bound read-only at /sys/fs/cgroup, then each
    /// (host source, name under /sys/fs/cgroup) bound read-only.
    V1 {
        /// `<container dir>/cgroupfs`: an empty directory per host hierarchy and the
        /// host's co-mount symlinks.
        template: PathBuf,
        /// The container's own cgroup directory in each managed hierarchy, and the
        /// hierarchy's directory name under /sys/fs/cgroup it is bound over.
        binds: Vec<(PathBuf, String)>,
    },
}

/// One cgroup v1 hierarchy mounted on the host.
#[derive(Clone, Debug, PartialEq)]
struct Hierarchy {
    /// The directory name under /sys/fs/cgroup (`memory`, `cpu,cpuacct`, `systemd`).
    name: String,
    /// Its controllers (`name=systemd` for a named one).
    controllers: Vec<String>,
}

/// Is /sys/fs/cgroup itself a cgroup2 mount (a unified host)?
fn unified() -> bool {
    rustix::fs::statfs(CGROUP_ROOT)
        .map(|s| s.f_type == libc::CGROUP2_SUPER_MAGIC)
        .unwrap_or(false)
}

/// The v1 hierarchies directly under /sys/fs/cgroup, from a mountinfo text.
fn v1_hierarchies(mountinfo: &str) -> Vec<Hierarchy> {
    let mut out = Vec::new();
    for line in mountinfo.lines() {
        // ID PARENT MAJ:MIN ROOT MOUNT-POINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER-OPTIONS
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let fields: Vec<&str> = left.split(' ').collect();
        let rest: Vec<&str> = right.split(' ').collect();
        if fields.len() < 5 || rest.len() < 3 || rest[0] != "cgroup" {
            continue;
        }
        let Some(name) = fields[4].strip_prefix("/sys/fs/cgroup/") else {
            continue;
        };
        if name.contains('/') || name.is_empty() {
            continue;
        }
        let controllers = rest[2]
            .split(',')
            .filter(|o| MANAGED_V1.contains(o) || o.starts_with("name="))
            .map(str::to_string)
            .collect();
        out.push(Hierarchy {
            name: name.to_string(),
            controllers,
        });
    }
    out
}

/// The binds of a container in cgroup `cgroups_path` (absolute, as in the runtime spec):
/// each managed hierarchy's directory for that cgroup.
fn v1_binds(hierarchies: &[Hierarchy], cgroups_path: &str) -> Vec<(PathBuf, String)> {
    let rel = cgroups_path.trim_start_matches('/');
    hierarchies
        .iter()
        .filter(|h| {
            h.controllers
                .iter()
                .any(|c| MANAGED_V1.contains(&c.as_str()))
        })
        .map(|h| {
            (
                Path::new(CGROUP_ROOT).join(&h.name).join(rel),
                h.name.clone(),
            )
        })
        .collect()
}

/// Prepares the view for a container whose cgroup is `cgroups_path`: on v1, the
/// read-only layout is written under `dir` (the container's own directory).
pub fn prepare(dir: &Path, cgroups_path: &str) -> io::Result<CgroupView> {
    if unified() {
        return Ok(CgroupView::Unified);
    }
    if cgroups_path.is_empty() {
        return Ok(CgroupView::Hidden);
    }
    let mountinfo = fs::read_to_string("/proc/self/mountinfo")?;
    let hierarchies = v1_hierarchies(&mountinfo);
    let template = dir.join("cgroupfs");
    fs::create_dir_all(&template)?;
    // The host's layout: a directory per hierarchy, the co-mount links (cpu -> cpu,cpuacct).
    for entry in fs::read_dir(CGROUP_ROOT)? {
        let entry = entry?;
        let to = template.join(entry.file_name());
        let ft = entry.file_type()?;
        let made = if ft.is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(entry.path())?, &to)
        } else if ft.is_dir() {
            fs::create_dir(&to)
        } else {
            continue;
        };
        match made {
            Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
            _ => {}
        }
    }
    Ok(CgroupView::V1 {
        template,
        binds: v1_binds(&hierarchies, cgroups_path),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime shared:9 - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/rdma rw,relatime - cgroup cgroup rw,rdma
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    #[test]
    fn only_the_containers_own_managed_hierarchies_are_bound() {
        let h = v1_hierarchies(HYBRID);
        assert_eq!(
            h.iter().map(|h| h.name.as_str()).collect::<Vec<_>>(),
            ["cpu,cpuacct", "memory", "rdma", "systemd"]
        );
        let binds = v1_binds(&h, "/kiln/abc");
        assert_eq!(
            binds,
            [
                (
                    PathBuf::from("/sys/fs/cgroup/cpu,cpuacct/kiln/abc"),
                    "cpu,cpuacct".to_string()
                ),
                (
                    PathBuf::from("/sys/fs/cgroup/memory/kiln/abc"),
                    "memory".to_string()
                ),
            ]
        );
    }
}
