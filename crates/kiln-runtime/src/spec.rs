//! The OCI runtime spec (config.json) of a container: the image's config, the user's
//! flags, and secure defaults at least Docker's (its 14 capabilities, masked and read-only
//! /proc and /sys paths, a seccomp filter, the device allow-list, private namespaces and
//! no-new-privileges on).

use std::path::{Path, PathBuf};

use oci_spec::runtime::{
    Capabilities, LinuxBuilder, LinuxCapabilitiesBuilder, LinuxCpuBuilder, LinuxDevice,
    LinuxDeviceCgroup, LinuxDeviceCgroupBuilder, LinuxDeviceType, LinuxMemoryBuilder,
    LinuxNamespace, LinuxNamespaceBuilder, LinuxNamespaceType, LinuxPidsBuilder, LinuxResources,
    LinuxResourcesBuilder, LinuxSeccomp, Mount, MountBuilder, PosixRlimitBuilder, PosixRlimitType,
    Process, ProcessBuilder, RootBuilder, Spec, SpecBuilder, UserBuilder,
};
use oci_spec::OciSpecError;
use serde_json::Value;

use crate::cgroupfs::{CgroupView, CGROUP_ROOT};
use crate::error::{Result, RuntimeError};

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
    /// Docker's default profile, adjusted to the container's capabilities.
    #[default]
    Default,
    /// `seccomp=unconfined`: no seccomp filter at all.
    Unconfined,
    /// A profile in the OCI runtime spec's `linux.seccomp` format (or Docker's profile
    /// format, which shares its core fields). [`build`] reads it as the spec's
    /// `LinuxSeccomp`: fields that type lacks (Docker's `archMap`, a rule's `includes`) are
    /// left out of config.json, as runc and libcontainer ignore them.
    Profile(Value),
}

/// A mount requested by the user.
#[derive(Clone, Debug, PartialEq)]
pub enum UserMount {
    /// A host path (or a named volume's directory) bound into the container (`-v`,
    /// `--mount type=bind`), recursively and private.
    Bind {
        /// Absolute path on the host.
        source: String,
        /// Absolute path in the container.
        destination: String,
        /// Whether the mount is read-only (`:ro`).
        readonly: bool,
    },
    /// A fresh tmpfs (`--tmpfs`, `--mount type=tmpfs`), always nosuid, nodev and noexec.
    Tmpfs {
        /// Absolute path in the container.
        destination: String,
        /// Further mount options, e.g. `size=64m` or `mode=1777`.
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
    /// The process's argv (an init process first when `--init` is used).
    pub args: Vec<String>,
    /// The process's environment, `KEY=VALUE`.
    pub env: Vec<String>,
    /// The process's working directory in the container; empty means `/`.
    pub cwd: String,
    /// User ID the process runs as.
    pub uid: u32,
    /// Primary group ID the process runs as.
    pub gid: u32,
    /// Supplementary group IDs of the process.
    pub additional_gids: Vec<u32>,
    /// Hostname set in the container's UTS namespace.
    pub hostname: String,
    /// Whether the process gets a pseudo-terminal (`-t`).
    pub terminal: bool,
    /// Whether the root filesystem is mounted read-only (`--read-only`).
    pub read_only: bool,
    /// Whether the container gets a network namespace of its own or the host's.
    pub network: Network,
    /// The user's bind and tmpfs mounts, mounted after the standard ones in this order.
    pub mounts: Vec<UserMount>,
    /// Files kiln writes for the container (/etc/hosts, /etc/hostname, /etc/resolv.conf).
    pub etc_files: Vec<(String, String)>,
    /// Memory limit in bytes (`--memory`), swap included: no swap beyond it.
    pub memory: Option<i64>,
    /// Most processes and threads the container may have (`--pids-limit`).
    pub pids_limit: Option<i64>,
    /// CPU quota in CPUs (`--cpus 1.5`), as a CFS quota per 100 ms period.
    pub cpus: Option<f64>,
    /// Size in bytes of the /dev/shm tmpfs (`--shm-size`); `None`: 64 MiB.
    pub shm_size: Option<u64>,
    /// Capabilities added to Docker's default set (`--cap-add`; `ALL` allowed).
    pub cap_add: Vec<String>,
    /// Capabilities dropped from Docker's default set (`--cap-drop`; `ALL` allowed).
    pub cap_drop: Vec<String>,
    /// Whether the process may not gain privileges through setuid binaries or file
    /// capabilities (`--security-opt no-new-privileges`).
    pub no_new_privileges: bool,
    /// Which seccomp filter the process gets.
    pub seccomp: Seccomp,
    /// Resource limits of the process (`--ulimit`).
    pub rlimits: Vec<Rlimit>,
    /// The container's cgroup path, e.g. `/kiln/<id>` (`linux.cgroupsPath`).
    pub cgroups_path: String,
    /// Device nodes created in the container (`linux.devices`).
    pub privileged_devices: Vec<LinuxDevice>,
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

/// The mount options of kiln's bind mounts of the cgroup view: read-only, nothing runs.
const CGROUP_BIND_OPTIONS: &[&str] = &["rbind", "rprivate", "ro", "nosuid", "noexec", "nodev"];

/// Why a spec could not be assembled (the builders fail only on invalid values).
fn spec_error(e: OciSpecError) -> RuntimeError {
    RuntimeError::Refused {
        message: format!("cannot build the runtime spec: {e}"),
        hint: None,
    }
}

/// A mount of `source` of type `typ` at `destination`.
fn mount<S: AsRef<str>>(
    destination: &str,
    typ: &str,
    source: impl AsRef<Path>,
    options: &[S],
) -> Result<Mount> {
    MountBuilder::default()
        .destination(destination)
        .typ(typ)
        .source(source.as_ref())
        .options(
            options
                .iter()
                .map(|o| o.as_ref().to_string())
                .collect::<Vec<_>>(),
        )
        .build()
        .map_err(spec_error)
}

/// A device cgroup rule.
fn device_rule(
    allow: bool,
    typ: Option<LinuxDeviceType>,
    major: Option<i64>,
    minor: Option<i64>,
    access: &str,
) -> Result<LinuxDeviceCgroup> {
    let mut rule = LinuxDeviceCgroupBuilder::default()
        .allow(allow)
        .access(access)
        .build()
        .map_err(spec_error)?;
    rule.set_typ(typ);
    rule.set_major(major);
    rule.set_minor(minor);
    Ok(rule)
}

/// Device nodes a container always gets, with their cgroup allow rules (Docker's list).
fn default_device_rules() -> Result<Vec<LinuxDeviceCgroup>> {
    use LinuxDeviceType::{B, C};
    let mut rules = vec![device_rule(false, None, None, None, "rwm")?];
    for (major, minor) in [
        (1, Some(3)),    // null
        (1, Some(5)),    // zero
        (1, Some(7)),    // full
        (1, Some(8)),    // random
        (1, Some(9)),    // urandom
        (5, Some(0)),    // tty
        (5, Some(1)),    // console
        (5, Some(2)),    // ptmx
        (136, None),     // pts/*
        (10, Some(200)), // net/tun
    ] {
        rules.push(device_rule(true, Some(C), Some(major), minor, "rwm")?);
    }
    // mknod of any device is allowed (as Docker), opening one is not.
    rules.push(device_rule(true, Some(C), None, None, "m")?);
    rules.push(device_rule(true, Some(B), None, None, "m")?);
    Ok(rules)
}

/// The mounts of every container, then the cgroup view, kiln's /etc files and the user's.
fn mounts(o: &SpecOptions) -> Result<Vec<Mount>> {
    let shm_size = format!("size={}", o.shm_size.unwrap_or(64 << 20));
    let mut mounts = vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"])?,
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        )?,
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        )?,
        mount(
            "/sys",
            "sysfs",
            "sysfs",
            &["nosuid", "noexec", "nodev", "ro"],
        )?,
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        )?,
        mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", shm_size.as_str()],
        )?,
    ];
    match &o.cgroup_view {
        CgroupView::Hidden => {}
        CgroupView::Unified => mounts.push(mount(
            CGROUP_ROOT,
            "cgroup",
            "cgroup",
            &["ro", "nosuid", "noexec", "nodev", "relatime"],
        )?),
        CgroupView::V1 { template, binds } => {
            mounts.push(mount(CGROUP_ROOT, "bind", template, CGROUP_BIND_OPTIONS)?);
            for (source, name) in binds {
                let dest = format!("{CGROUP_ROOT}/{name}");
                mounts.push(mount(&dest, "bind", source, CGROUP_BIND_OPTIONS)?);
            }
        }
    }
    for (dest, src) in &o.etc_files {
        mounts.push(mount(dest, "bind", src, &["rbind", "rprivate"])?);
    }
    for m in &o.mounts {
        mounts.push(match m {
            UserMount::Bind {
                source,
                destination,
                readonly,
            } => {
                let mut opts = vec!["rbind", "rprivate"];
                if *readonly {
                    opts.push("ro");
                }
                mount(destination, "bind", source, &opts)?
            }
            UserMount::Tmpfs {
                destination,
                options,
            } => {
                let mut opts: Vec<String> = vec!["nosuid".into(), "nodev".into(), "noexec".into()];
                opts.extend(options.iter().cloned());
                mount(destination, "tmpfs", "tmpfs", &opts)?
            }
        });
    }
    Ok(mounts)
}

/// The container's namespaces: its own pid, ipc, uts and mount, cgroup with the unified
/// view, network unless it shares the host's (the one at `netns_path` when given).
fn namespaces(o: &SpecOptions) -> Result<Vec<LinuxNamespace>> {
    use LinuxNamespaceType as T;
    let mut types = vec![T::Pid, T::Ipc, T::Uts, T::Mount];
    if o.cgroup_view == CgroupView::Unified {
        types.push(T::Cgroup);
    }
    if o.network == Network::None {
        types.push(T::Network);
    }
    types
        .into_iter()
        .map(|typ| {
            let mut ns = LinuxNamespaceBuilder::default()
                .typ(typ)
                .build()
                .map_err(spec_error)?;
            if typ == T::Network {
                ns.set_path(o.netns_path.as_ref().map(PathBuf::from));
            }
            Ok(ns)
        })
        .collect()
}

/// The cgroup limits: the device allow-list, memory (without swap beyond it), pids, cpus.
fn resources(o: &SpecOptions) -> Result<LinuxResources> {
    let mut resources = LinuxResourcesBuilder::default()
        .devices(default_device_rules()?)
        .build()
        .map_err(spec_error)?;
    if let Some(m) = o.memory {
        // No swap beyond the limit: a container that exceeds it is killed, predictably.
        let memory = LinuxMemoryBuilder::default().limit(m).swap(m).build();
        resources.set_memory(Some(memory.map_err(spec_error)?));
    }
    if let Some(p) = o.pids_limit {
        let pids = LinuxPidsBuilder::default().limit(p).build();
        resources.set_pids(Some(pids.map_err(spec_error)?));
    }
    if let Some(c) = o.cpus {
        let cpu = LinuxCpuBuilder::default()
            .quota((c * 100_000.0).round() as i64)
            .period(100_000u64)
            .build();
        resources.set_cpu(Some(cpu.map_err(spec_error)?));
    }
    Ok(resources)
}

/// `profile` (the OCI runtime spec's linux.seccomp, or Docker's format, which shares its
/// core fields) as the spec's type; `name` says which profile in the error.
fn seccomp_profile(profile: &Value, name: &str) -> Result<LinuxSeccomp> {
    serde_json::from_value(profile.clone()).map_err(|e| RuntimeError::Invalid {
        what: "seccomp profile",
        value: name.to_string(),
        reason: format!("it does not fit the runtime spec's linux.seccomp: {e}"),
    })
}

/// How the error names a user's profile: its start, as the JSON it is.
fn profile_name(profile: &Value) -> String {
    let text = profile.to_string();
    match text.char_indices().nth(60) {
        Some((i, _)) => format!("{}...", &text[..i]),
        None => text,
    }
}

/// The container's process: its command, user, environment, capabilities and rlimits.
fn process(o: &SpecOptions, caps: &[String]) -> Result<Process> {
    let caps: Capabilities = caps
        .iter()
        .map(|c| {
            serde_json::from_value(Value::String(c.clone())).map_err(|_| RuntimeError::Invalid {
                what: "capability",
                value: c.clone(),
                reason: "not a capability Linux defines".into(),
            })
        })
        .collect::<Result<_>>()?;
    let mut capabilities = LinuxCapabilitiesBuilder::default()
        .bounding(caps.clone())
        .effective(caps.clone())
        .permitted(caps)
        .build()
        .map_err(spec_error)?;
    capabilities.set_inheritable(None);
    capabilities.set_ambient(None);
    let rlimits = o
        .rlimits
        .iter()
        .map(|r| {
            let typ: PosixRlimitType = serde_json::from_value(Value::String(r.name.clone()))
                .map_err(|_| RuntimeError::Invalid {
                    what: "rlimit",
                    value: r.name.clone(),
                    reason: "not a resource limit the runtime spec knows".into(),
                })?;
            PosixRlimitBuilder::default()
                .typ(typ)
                .soft(r.soft)
                .hard(r.hard)
                .build()
                .map_err(spec_error)
        })
        .collect::<Result<Vec<_>>>()?;
    let user = UserBuilder::default()
        .uid(o.uid)
        .gid(o.gid)
        .additional_gids(o.additional_gids.clone())
        .build()
        .map_err(spec_error)?;
    let mut process = ProcessBuilder::default()
        .terminal(o.terminal)
        .user(user)
        .args(o.args.clone())
        .env(o.env.clone())
        .cwd(if o.cwd.is_empty() {
            "/"
        } else {
            o.cwd.as_str()
        })
        .capabilities(capabilities)
        .rlimits(rlimits)
        .build()
        .map_err(spec_error)?;
    // Absent rather than false: libcontainer loads the seccomp filter before it drops
    // capabilities only when the field is absent (with `false` it loads it after, without
    // the privilege to do so).
    process.set_no_new_privileges(o.no_new_privileges.then_some(true));
    Ok(process)
}

/// Builds config.json for a bundle whose root filesystem is at `rootfs` (relative path).
/// Fails on a seccomp profile that does not fit the runtime spec, or a capability or
/// rlimit it does not know.
pub fn build(o: &SpecOptions) -> Result<Spec> {
    let caps = capabilities(&o.cap_add, &o.cap_drop);
    let mut linux = LinuxBuilder::default()
        .namespaces(namespaces(o)?)
        .cgroups_path(&o.cgroups_path)
        .resources(resources(o)?)
        .masked_paths(
            MASKED_PATHS
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>(),
        )
        .readonly_paths(
            READONLY_PATHS
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>(),
        )
        .build()
        .map_err(spec_error)?;
    linux.set_seccomp(match &o.seccomp {
        Seccomp::Default => Some(seccomp_profile(&default_seccomp(&caps), "kiln's default")?),
        Seccomp::Profile(p) => Some(seccomp_profile(p, &profile_name(p))?),
        Seccomp::Unconfined => None,
    });
    if !o.privileged_devices.is_empty() {
        linux.set_devices(Some(o.privileged_devices.clone()));
    }
    let root = RootBuilder::default()
        .path("rootfs")
        .readonly(o.read_only)
        .build()
        .map_err(spec_error)?;
    let mut spec = SpecBuilder::default()
        .version("1.0.2")
        .process(process(o, &caps)?)
        .root(root)
        .hostname(o.hostname.clone())
        .mounts(mounts(o)?)
        .linux(linux)
        .build()
        .map_err(spec_error)?;
    // The builder starts from oci-spec's example spec, which has (empty) annotations.
    spec.set_annotations(None);
    Ok(spec)
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
    use serde_json::json;

    #[test]
    fn defaults_are_docker_like() {
        let parsed = build(&SpecOptions {
            args: vec!["sh".into()],
            no_new_privileges: true,
            cgroups_path: "/kiln/x".into(),
            ..Default::default()
        })
        .unwrap();
        let spec = serde_json::to_value(&parsed).unwrap();
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
        })
        .unwrap();
        let admin = serde_json::to_value(&admin).unwrap();
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
    fn limits_namespace_and_profiles() {
        let spec = build(&SpecOptions {
            rlimits: vec![Rlimit {
                name: "RLIMIT_NOFILE".into(),
                soft: 10,
                hard: 20,
            }],
            netns_path: Some("/run/netns/x".into()),
            memory: Some(1 << 20),
            seccomp: Seccomp::Profile(json!({"defaultAction": "SCMP_ACT_ALLOW"})),
            ..Default::default()
        })
        .unwrap();
        let spec = serde_json::to_value(&spec).unwrap();
        assert_eq!(
            spec["process"]["rlimits"],
            json!([{"type": "RLIMIT_NOFILE", "soft": 10, "hard": 20}])
        );
        assert_eq!(
            spec["linux"]["namespaces"][4],
            json!({"type": "network", "path": "/run/netns/x"})
        );
        assert_eq!(
            spec["linux"]["resources"]["memory"],
            json!({"limit": 1 << 20, "swap": 1 << 20})
        );
        assert_eq!(
            spec["linux"]["seccomp"],
            json!({"defaultAction": "SCMP_ACT_ALLOW"})
        );
        // No annotations, inheritable or ambient capabilities from oci-spec's example spec.
        assert!(spec.get("annotations").is_none());
        assert!(spec["process"]["capabilities"].get("ambient").is_none());
        assert!(spec["process"].get("noNewPrivileges").is_none());

        let err = build(&SpecOptions {
            seccomp: Seccomp::Profile(json!({"defaultAction": "SCMP_ACT_SOMETIMES"})),
            ..Default::default()
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("seccomp profile"), "{err}");
        assert!(err.contains("SCMP_ACT_SOMETIMES"), "{err}");
        let err = build(&SpecOptions {
            cap_add: vec!["CAP_TELEPORT".into()],
            ..Default::default()
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("CAP_TELEPORT"), "{err}");
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
