//! The OCI runtime spec (config.json) of a container: the image's config, the user's
//! flags, and secure defaults at least Docker's (its 14 capabilities, masked and read-only
//! /proc and /sys paths, a seccomp filter, the device allow-list, private namespaces and
//! no-new-privileges on).

use crate::cgroupfs::{CgroupView, CGROUP_ROOT};
use serde_json::{json, Value};

/// Docker's default capability set.
pub const DEFAULT_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Paths hidden from containers (bind-mounted over with /dev/null or an empty tmpfs).
pub const MASKED_PATHS: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Paths mounted read-only.
pub const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// How the container sees the network.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Network {
    /// A network namespace of its own with only loopback.
    #[default]
    None,
    /// The host's network namespace.
    Host,
}

/// Seccomp choice (`--security-opt seccomp=...`).
#[derive(Clone, Debug, PartialEq, Default)]
pub enum Seccomp {
    #[default]
    Default,
    Unconfined,
    /// A profile in the OCI runtime spec's `linux.seccomp` format (or Docker's profile
    /// format, which shares its core fields).
    Profile(Value),
}

/// A mount requested by the user.
#[derive(Clone, Debug, PartialEq)]
pub enum UserMount {
    Bind {
        source: String,
        destination: String,
        readonly: bool,
    },
    Tmpfs {
        destination: String,
        options: Vec<String>,
    },
}

/// A resource limit of the container's process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rlimit {
    /// The spec's name: `RLIMIT_NOFILE`, `RLIMIT_NPROC`...
    pub name: String,
    /// Soft limit.
    pub soft: u64,
    /// Hard limit.
    pub hard: u64,
}

/// Everything that decides the spec.
#[derive(Clone, Debug, Default)]
pub struct SpecOptions {
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub hostname: String,
    pub terminal: bool,
    pub read_only: bool,
    pub network: Network,
    pub mounts: Vec<UserMount>,
    /// Files kiln writes for the container (/etc/hosts, /etc/hostname, /etc/resolv.conf).
    pub etc_files: Vec<(String, String)>,
    pub memory: Option<i64>,
    pub pids_limit: Option<i64>,
    pub cpus: Option<f64>,
    pub shm_size: Option<u64>,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub no_new_privileges: bool,
    pub seccomp: Seccomp,
    pub rlimits: Vec<Rlimit>,
    pub cgroups_path: String,
    pub privileged_devices: Vec<Value>,
    /// A network namespace made beforehand (loopback up), joined instead of a new one.
    pub netns_path: Option<String>,
    /// What the container sees at /sys/fs/cgroup ([`crate::cgroupfs::prepare`]).
    pub cgroup_view: CgroupView,
}

fn normalize_cap(c: &str) -> String {
    let c = c.to_ascii_uppercase();
    if c.starts_with("CAP_") {
        c
    } else {
        format!("CAP_{c}")
    }
}

/// The capability set after `--cap-add`/`--cap-drop` (`ALL` works in both, as Docker).
pub fn capabilities(add: &[String], drop: &[String]) -> Vec<String> {
    let mut caps: Vec<String> = DEFAULT_CAPS.iter().map(|s| s.to_string()).collect();
    if drop.iter().any(|d| d.eq_ignore_ascii_case("all")) {
        caps.clear();
    }
    for d in drop {
        let d = normalize_cap(d);
        caps.retain(|c| *c != d);
    }
    for a in add {
        if a.eq_ignore_ascii_case("all") {
            caps = grantable_caps().iter().map(|s| s.to_string()).collect();
            continue;
        }
        let a = normalize_cap(a);
        if !caps.contains(&a) {
            caps.push(a);
        }
    }
    caps
}

/// The capabilities of `ALL_CAPS` that kiln can give a container: those in its own
/// bounding set (which holds only capabilities the running kernel knows). A process cannot
/// raise a capability outside its bounding set, so asking for one fails the container
/// (capset: EPERM, "failed syscall"): kiln run in a container or a sandbox that dropped
/// some (CAP_SYS_RESOURCE, say), or on a kernel older than the newest ones, would make
/// `--cap-add ALL` fail every container. Docker's ALL likewise means what the kernel has.
pub fn grantable_caps() -> Vec<&'static str> {
    let bounding = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("CapBnd:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .unwrap_or(u64::MAX);
    caps_in_mask(bounding)
}

/// The capabilities of `ALL_CAPS` whose bits are set in `mask`.
fn caps_in_mask(mask: u64) -> Vec<&'static str> {
    ALL_CAPS
        .iter()
        .enumerate()
        .filter(|(number, _)| mask & (1u64 << number) != 0)
        .map(|(_, name)| *name)
        .collect()
}

/// Every capability Linux defines (as of 6.x), in the order of their numbers
/// (`ALL_CAPS[n]` is capability number n).
pub const ALL_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// Docker's default seccomp profile for a container with capabilities `caps`.
fn default_seccomp(caps: &[String]) -> Value {
    crate::seccomp::default_profile(caps)
}

/// Device nodes a container always gets, with their cgroup allow rules (Docker's list).
fn default_device_rules() -> Vec<Value> {
    let mut rules = vec![json!({"allow": false, "access": "rwm"})];
    for (kind, major, minor) in [
        ("c", Some(1), Some(3)),    // null
        ("c", Some(1), Some(5)),    // zero
        ("c", Some(1), Some(7)),    // full
        ("c", Some(1), Some(8)),    // random
        ("c", Some(1), Some(9)),    // urandom
        ("c", Some(5), Some(0)),    // tty
        ("c", Some(5), Some(1)),    // console
        ("c", Some(5), Some(2)),    // ptmx
        ("c", Some(136), None),     // pts/*
        ("c", Some(10), Some(200)), // net/tun
    ] {
        rules.push(
            json!({"allow": true, "type": kind, "major": major, "minor": minor, "access": "rwm"}),
        );
    }
    // mknod of any device is allowed (as Docker), opening one is not.
    rules.push(json!({"allow": true, "type": "c", "access": "m"}));
    rules.push(json!({"allow": true, "type": "b", "access": "m"}));
    rules
}

/// Builds config.json for a bundle whose root filesystem is at `rootfs` (relative path).
pub fn build(o: &SpecOptions) -> Value {
    let caps = capabilities(&o.cap_add, &o.cap_drop);
    let mut mounts = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", format!("size={}", o.shm_size.unwrap_or(64 << 20))]}),
    ];
    match &o.cgroup_view {
        CgroupView::Hidden => {}
        CgroupView::Unified => mounts.push(
            json!({"destination": CGROUP_ROOT, "type": "cgroup", "source": "cgroup", "options": ["ro", "nosuid", "noexec", "nodev", "relatime"]}),
        ),
        CgroupView::V1 { template, binds } => {
            mounts.push(json!({"destination": CGROUP_ROOT, "type": "bind", "source": template, "options": ["rbind", "rprivate", "ro", "nosuid", "noexec", "nodev"]}));
            for (source, name) in binds {
                mounts.push(json!({"destination": format!("{CGROUP_ROOT}/{name}"), "type": "bind", "source": source, "options": ["rbind", "rprivate", "ro", "nosuid", "noexec", "nodev"]}));
            }
        }
    }
    for (dest, src) in &o.etc_files {
        mounts.push(json!({"destination": dest, "type": "bind", "source": src, "options": ["rbind", "rprivate"]}));
    }
    for m in &o.mounts {
        mounts.push(match m {
            UserMount::Bind { source, destination, readonly } => {
                let mut opts = vec!["rbind", "rprivate"];
                if *readonly {
                    opts.push("ro");
                }
                json!({"destination": destination, "type": "bind", "source": source, "options": opts})
            }
            UserMount::Tmpfs { destination, options } => {
                let mut opts: Vec<String> = vec!["nosuid".into(), "nodev".into(), "noexec".into()];
                opts.extend(options.iter().cloned());
                json!({"destination": destination, "type": "tmpfs", "source": "tmpfs", "options": opts})
            }
        });
    }
    let mut namespaces = vec![
        json!({"type": "pid"}),
        json!({"type": "ipc"}),
        json!({"type": "uts"}),
        json!({"type": "mount"}),
    ];
    if o.cgroup_view == CgroupView::Unified {
        namespaces.push(json!({"type": "cgroup"}));
    }
    if o.network == Network::None {
        namespaces.push(match &o.netns_path {
            Some(p) => json!({"type": "network", "path": p}),
            None => json!({"type": "network"}),
        });
    }
    let mut resources = json!({"devices": default_device_rules()});
    if let Some(m) = o.memory {
        // No swap beyond the limit: a container that exceeds it is killed, predictably.
        resources["memory"] = json!({"limit": m, "swap": m});
    }
    if let Some(p) = o.pids_limit {
        resources["pids"] = json!({"limit": p});
    }
    if let Some(c) = o.cpus {
        resources["cpu"] = json!({"quota": (c * 100_000.0).round() as i64, "period": 100_000});
    }
    let mut linux = json!({
        "namespaces": namespaces,
        "cgroupsPath": o.cgroups_path,
        "resources": resources,
        "maskedPaths": MASKED_PATHS,
        "readonlyPaths": READONLY_PATHS,
    });
    match &o.seccomp {
        Seccomp::Default => linux["seccomp"] = default_seccomp(&caps),
        Seccomp::Profile(p) => linux["seccomp"] = p.clone(),
        Seccomp::Unconfined => {}
    }
    if !o.privileged_devices.is_empty() {
        linux["devices"] = Value::Array(o.privileged_devices.clone());
    }
    let rlimits: Vec<Value> = o
        .rlimits
        .iter()
        .map(|r| json!({"type": r.name, "soft": r.soft, "hard": r.hard}))
        .collect();
    json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": o.terminal,
            "user": {"uid": o.uid, "gid": o.gid, "additionalGids": o.additional_gids},
            "args": o.args,
            "env": o.env,
            "cwd": if o.cwd.is_empty() { "/" } else { o.cwd.as_str() },
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            "rlimits": rlimits,
            // Absent rather than false: libcontainer loads the seccomp filter before it
            // drops capabilities only when the field is absent (with `false` it loads it
            // after, without the privilege to do so).
            "noNewPrivileges": o.no_new_privileges.then_some(true),
        },
        "root": {"path": "rootfs", "readonly": o.read_only},
        "hostname": o.hostname,
        "mounts": mounts,
        "linux": linux,
    })
}

/// Clamps rlimits to what this process may grant (a child cannot exceed its parent's
/// hard limit: asking for more fails the container with EPERM).
pub fn clamp_rlimit(resource: rustix::process::Resource, soft: u64, hard: u64) -> (u64, u64) {
    let cur = rustix::process::getrlimit(resource);
    let max = cur.maximum.unwrap_or(u64::MAX);
    (soft.min(max), hard.min(max))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_docker_like() {
        let spec = build(&SpecOptions {
            args: vec!["sh".into()],
            no_new_privileges: true,
            cgroups_path: "/kiln/x".into(),
            ..Default::default()
        });
        let parsed: oci_spec::runtime::Spec = serde_json::from_value(spec.clone()).unwrap();
        assert_eq!(
            parsed.process().as_ref().unwrap().no_new_privileges(),
            Some(true)
        );
        assert_eq!(
            spec["process"]["capabilities"]["bounding"]
                .as_array()
                .unwrap()
                .len(),
            14
        );
        assert!(spec["linux"]["maskedPaths"]
            .as_array()
            .unwrap()
            .contains(&json!("/proc/kcore")));
        // Docker's seccomp profile: an allow-list without mount (no CAP_SYS_ADMIN), clone3
        // as not implemented.
        let seccomp = &spec["linux"]["seccomp"];
        assert_eq!(seccomp["defaultAction"], "SCMP_ACT_ERRNO");
        let rules = seccomp["syscalls"].as_array().unwrap();
        let named = |n: &str| {
            rules
                .iter()
                .filter(|r| r["names"].as_array().unwrap().contains(&json!(n)))
                .collect::<Vec<_>>()
        };
        assert!(named("mount").is_empty());
        assert!(!named("read").is_empty());
        assert_eq!(named("clone3")[0]["errnoRet"], libc::ENOSYS);
        let admin = build(&SpecOptions {
            cap_add: vec!["SYS_ADMIN".into()],
            ..Default::default()
        });
        assert!(admin["linux"]["seccomp"]["syscalls"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["names"].as_array().unwrap().contains(&json!("mount"))));
        let ns: Vec<_> = spec["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["type"].as_str().unwrap())
            .collect();
        assert_eq!(ns, ["pid", "ipc", "uts", "mount", "network"]);
    }

    #[test]
    fn capability_flags() {
        let c = capabilities(
            &["sys_admin".into()],
            &["NET_RAW".into(), "cap_mknod".into()],
        );
        assert!(c.contains(&"CAP_SYS_ADMIN".to_string()));
        assert!(!c.contains(&"CAP_NET_RAW".to_string()));
        assert_eq!(c.len(), 13);
        assert!(capabilities(&[], &["ALL".into()]).is_empty());
        assert_eq!(
            capabilities(&["ALL".into()], &[]),
            grantable_caps()
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn all_means_the_capabilities_kiln_holds() {
        assert_eq!(ALL_CAPS.len(), 41);
        assert_eq!(ALL_CAPS[21], "CAP_SYS_ADMIN");
        assert_eq!(ALL_CAPS[24], "CAP_SYS_RESOURCE");
        assert_eq!(ALL_CAPS[40], "CAP_CHECKPOINT_RESTORE");
        // A bounding set without CAP_SYS_RESOURCE (bit 24), on a 5.9+ kernel.
        let held = caps_in_mask(0x1ff_feff_ffff);
        assert_eq!(held.len(), 40);
        assert!(!held.contains(&"CAP_SYS_RESOURCE"));
        // A kernel older than CAP_PERFMON (5.8) has 38 capabilities.
        assert_eq!(caps_in_mask((1 << 38) - 1), &ALL_CAPS[..38]);
        // What this process holds is what ALL grants.
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let bnd = status
            .lines()
            .find_map(|l| l.strip_prefix("CapBnd:"))
            .unwrap();
        let bnd = u64::from_str_radix(bnd.trim(), 16).unwrap();
        let all = capabilities(&["all".into()], &[]);
        for (n, cap) in ALL_CAPS.iter().enumerate() {
            assert_eq!(all.contains(&cap.to_string()), bnd & (1 << n) != 0, "{cap}");
        }
    }
}
