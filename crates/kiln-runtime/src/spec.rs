//! The OCI runtime spec (config.json) of a container: the image's config, the user's
//! flags, and secure defaults at least Docker's (its 14 capabilities, masked and read-only
//! /proc and /sys paths, a seccomp filter, the device allow-list, private namespaces and
//! no-new-privileges on).

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

/// System calls refused with EPERM by the default seccomp filter: kernel modules,
/// keyrings, mounts and namespaces, clocks, reboot, swap, BPF and perf, handles that
/// bypass path checks, io_uring. The same families Docker's default profile refuses to
/// a container without extra capabilities.
///
/// A deny-list (rather than Docker's allow-list) so that a syscall this list does not
/// know, on a newer kernel or another architecture, cannot make every container fail to
/// start; the capability set and no-new-privileges still bound what such a call can do.
pub const DENIED_SYSCALLS: &[&str] = &[
    "acct",
    "add_key",
    "bpf",
    "clock_adjtime",
    "clock_settime",
    "delete_module",
    "finit_module",
    "fsconfig",
    "fsmount",
    "fsopen",
    "fspick",
    "init_module",
    "io_uring_enter",
    "io_uring_register",
    "io_uring_setup",
    "kexec_file_load",
    "kexec_load",
    "keyctl",
    "lookup_dcookie",
    "mount",
    "mount_setattr",
    "move_mount",
    "name_to_handle_at",
    "open_by_handle_at",
    "open_tree",
    "perf_event_open",
    "pivot_root",
    "quotactl",
    "reboot",
    "request_key",
    "setns",
    "settimeofday",
    "swapoff",
    "swapon",
    "syslog",
    "umount2",
    "unshare",
    "userfaultfd",
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
    /// (type, soft, hard)
    pub rlimits: Vec<(String, u64, u64)>,
    pub cgroups_path: String,
    pub privileged_devices: Vec<Value>,
    /// A network namespace made beforehand (loopback up), joined instead of a new one.
    pub netns_path: Option<String>,
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
            caps = ALL_CAPS.iter().map(|s| s.to_string()).collect();
            continue;
        }
        let a = normalize_cap(a);
        if !caps.contains(&a) {
            caps.push(a);
        }
    }
    caps
}

/// Every capability Linux defines (as of 6.x).
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

fn default_seccomp() -> Value {
    json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            {"names": DENIED_SYSCALLS, "action": "SCMP_ACT_ERRNO", "errnoRet": libc::EPERM},
            // glibc falls back to clone(2) when clone3 is missing; clone3's flags cannot be
            // inspected by seccomp, so refuse it as unimplemented, as Docker does.
            {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": libc::ENOSYS},
        ]
    })
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
        json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["ro", "nosuid", "noexec", "nodev", "relatime"]}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", format!("size={}", o.shm_size.unwrap_or(64 << 20))]}),
    ];
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
        Seccomp::Default => linux["seccomp"] = default_seccomp(),
        Seccomp::Profile(p) => linux["seccomp"] = p.clone(),
        Seccomp::Unconfined => {}
    }
    if !o.privileged_devices.is_empty() {
        linux["devices"] = Value::Array(o.privileged_devices.clone());
    }
    let rlimits: Vec<Value> = o
        .rlimits
        .iter()
        .map(|(t, soft, hard)| json!({"type": t, "soft": soft, "hard": hard}))
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
            "noNewPrivileges": o.no_new_privileges,
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
        assert!(spec["linux"]["seccomp"]["syscalls"][0]["names"]
            .as_array()
            .unwrap()
            .contains(&json!("mount")));
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
        assert_eq!(capabilities(&["ALL".into()], &[]).len(), ALL_CAPS.len());
    }
}
