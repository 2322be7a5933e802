//! kiln's default seccomp profile: Docker's (moby 20.10's `profiles/seccomp/default.json`),
//! rule for rule, written as kiln's own table and turned into the OCI runtime spec's
//! `linux.seccomp` object for a container's capability set and the architecture kiln was
//! built for, the way moby's `setupSeccomp` does.
//!
//! An allow-list: everything not named here fails with EPERM. Namespaces are refused unless
//! the container has CAP_SYS_ADMIN: `clone` is allowed only without namespace flags (its
//! flags argument masked with `CLONE_NS_FLAGS` must be 0) and `clone3`, whose flags live in
//! memory seccomp cannot read, fails with ENOSYS so that libcs fall back to `clone`.
//! Names the running kernel or libseccomp do not know are skipped by libcontainer (and
//! by runc), so a newer or older kernel never makes a container fail to start.

use serde_json::{json, Value};

/// `CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER |
/// CLONE_NEWPID | CLONE_NEWNET` (2114060288): the flags `clone` may not carry without
/// CAP_SYS_ADMIN.
pub const CLONE_NS_FLAGS: u64 = (libc::CLONE_NEWNS
    | libc::CLONE_NEWCGROUP
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET) as u64;

/// System calls every container may make, whatever its capabilities.
const ALLOWED: &[&str] = &[
    "_llseek",
    "_newselect",
    "accept",
    "accept4",
    "access",
    "adjtimex",
    "alarm",
    "bind",
    "brk",
    "capget",
    "capset",
    "chdir",
    "chmod",
    "chown",
    "chown32",
    "clock_adjtime",
    "clock_adjtime64",
    "clock_getres",
    "clock_getres_time64",
    "clock_gettime",
    "clock_gettime64",
    "clock_nanosleep",
    "clock_nanosleep_time64",
    "close",
    "close_range",
    "connect",
    "copy_file_range",
    "creat",
    "dup",
    "dup2",
    "dup3",
    "epoll_create",
    "epoll_create1",
    "epoll_ctl",
    "epoll_ctl_old",
    "epoll_pwait",
    "epoll_pwait2",
    "epoll_wait",
    "epoll_wait_old",
    "eventfd",
    "eventfd2",
    "execve",
    "execveat",
    "exit",
    "exit_group",
    "faccessat",
    "faccessat2",
    "fadvise64",
    "fadvise64_64",
    "fallocate",
    "fanotify_mark",
    "fchdir",
    "fchmod",
    "fchmodat",
    "fchown",
    "fchown32",
    "fchownat",
    "fcntl",
    "fcntl64",
    "fdatasync",
    "fgetxattr",
    "flistxattr",
    "flock",
    "fork",
    "fremovexattr",
    "fsetxattr",
    "fstat",
    "fstat64",
    "fstatat64",
    "fstatfs",
    "fstatfs64",
    "fsync",
    "ftruncate",
    "ftruncate64",
    "futex",
    "futex_time64",
    "futex_waitv",
    "futimesat",
    "get_robust_list",
    "get_thread_area",
    "getcpu",
    "getcwd",
    "getdents",
    "getdents64",
    "getegid",
    "getegid32",
    "geteuid",
    "geteuid32",
    "getgid",
    "getgid32",
    "getgroups",
    "getgroups32",
    "getitimer",
    "getpeername",
    "getpgid",
    "getpgrp",
    "getpid",
    "getppid",
    "getpriority",
    "getrandom",
    "getresgid",
    "getresgid32",
    "getresuid",
    "getresuid32",
    "getrlimit",
    "getrusage",
    "getsid",
    "getsockname",
    "getsockopt",
    "gettid",
    "gettimeofday",
    "getuid",
    "getuid32",
    "getxattr",
    "inotify_add_watch",
    "inotify_init",
    "inotify_init1",
    "inotify_rm_watch",
    "io_cancel",
    "io_destroy",
    "io_getevents",
    "io_pgetevents",
    "io_pgetevents_time64",
    "io_setup",
    "io_submit",
    "io_uring_enter",
    "io_uring_register",
    "io_uring_setup",
    "ioctl",
    "ioprio_get",
    "ioprio_set",
    "ipc",
    "kill",
    "landlock_add_rule",
    "landlock_create_ruleset",
    "landlock_restrict_self",
    "lchown",
    "lchown32",
    "lgetxattr",
    "link",
    "linkat",
    "listen",
    "listxattr",
    "llistxattr",
    "lremovexattr",
    "lseek",
    "lsetxattr",
    "lstat",
    "lstat64",
    "madvise",
    "membarrier",
    "memfd_create",
    "memfd_secret",
    "mincore",
    "mkdir",
    "mkdirat",
    "mknod",
    "mknodat",
    "mlock",
    "mlock2",
    "mlockall",
    "mmap",
    "mmap2",
    "mprotect",
    "mq_getsetattr",
    "mq_notify",
    "mq_open",
    "mq_timedreceive",
    "mq_timedreceive_time64",
    "mq_timedsend",
    "mq_timedsend_time64",
    "mq_unlink",
    "mremap",
    "msgctl",
    "msgget",
    "msgrcv",
    "msgsnd",
    "msync",
    "munlock",
    "munlockall",
    "munmap",
    "nanosleep",
    "newfstatat",
    "open",
    "openat",
    "openat2",
    "pause",
    "pidfd_open",
    "pidfd_send_signal",
    "pipe",
    "pipe2",
    "poll",
    "ppoll",
    "ppoll_time64",
    "prctl",
    "pread64",
    "preadv",
    "preadv2",
    "prlimit64",
    "process_mrelease",
    "pselect6",
    "pselect6_time64",
    "pwrite64",
    "pwritev",
    "pwritev2",
    "read",
    "readahead",
    "readlink",
    "readlinkat",
    "readv",
    "recv",
    "recvfrom",
    "recvmmsg",
    "recvmmsg_time64",
    "recvmsg",
    "remap_file_pages",
    "removexattr",
    "rename",
    "renameat",
    "renameat2",
    "restart_syscall",
    "rmdir",
    "rseq",
    "rt_sigaction",
    "rt_sigpending",
    "rt_sigprocmask",
    "rt_sigqueueinfo",
    "rt_sigreturn",
    "rt_sigsuspend",
    "rt_sigtimedwait",
    "rt_sigtimedwait_time64",
    "rt_tgsigqueueinfo",
    "sched_get_priority_max",
    "sched_get_priority_min",
    "sched_getaffinity",
    "sched_getattr",
    "sched_getparam",
    "sched_getscheduler",
    "sched_rr_get_interval",
    "sched_rr_get_interval_time64",
    "sched_setaffinity",
    "sched_setattr",
    "sched_setparam",
    "sched_setscheduler",
    "sched_yield",
    "seccomp",
    "select",
    "semctl",
    "semget",
    "semop",
    "semtimedop",
    "semtimedop_time64",
    "send",
    "sendfile",
    "sendfile64",
    "sendmmsg",
    "sendmsg",
    "sendto",
    "set_robust_list",
    "set_thread_area",
    "set_tid_address",
    "setfsgid",
    "setfsgid32",
    "setfsuid",
    "setfsuid32",
    "setgid",
    "setgid32",
    "setgroups",
    "setgroups32",
    "setitimer",
    "setpgid",
    "setpriority",
    "setregid",
    "setregid32",
    "setresgid",
    "setresgid32",
    "setresuid",
    "setresuid32",
    "setreuid",
    "setreuid32",
    "setrlimit",
    "setsid",
    "setsockopt",
    "setuid",
    "setuid32",
    "setxattr",
    "shmat",
    "shmctl",
    "shmdt",
    "shmget",
    "shutdown",
    "sigaltstack",
    "signalfd",
    "signalfd4",
    "sigprocmask",
    "sigreturn",
    "socket",
    "socketcall",
    "socketpair",
    "splice",
    "stat",
    "stat64",
    "statfs",
    "statfs64",
    "statx",
    "symlink",
    "symlinkat",
    "sync",
    "sync_file_range",
    "syncfs",
    "sysinfo",
    "tee",
    "tgkill",
    "time",
    "timer_create",
    "timer_delete",
    "timer_getoverrun",
    "timer_gettime",
    "timer_gettime64",
    "timer_settime",
    "timer_settime64",
    "timerfd_create",
    "timerfd_gettime",
    "timerfd_gettime64",
    "timerfd_settime",
    "timerfd_settime64",
    "times",
    "tkill",
    "truncate",
    "truncate64",
    "ugetrlimit",
    "umask",
    "uname",
    "unlink",
    "unlinkat",
    "utime",
    "utimensat",
    "utimensat_time64",
    "utimes",
    "vfork",
    "vmsplice",
    "wait4",
    "waitid",
    "waitpid",
    "write",
    "writev",
];

/// What a rule does to the calls it matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Action {
    Allow,
    Errno(i32),
}

/// A comparison of one argument: `(index, value, op)` in the OCI spec's terms (for
/// `SCMP_CMP_MASKED_EQ`, `value` is the mask and the masked argument must be 0).
type Arg = (u32, u64, &'static str);

/// One rule of the profile and the conditions under which it applies (moby's
/// `includes`/`excludes`): all of `with_caps` held, none of `without_caps`; the host
/// architecture (moby's Go names: amd64, arm64, s390x...) in `on_arches` when that is not
/// empty and not in `not_on_arches`; a kernel at least `min_kernel`.
struct Rule {
    names: &'static [&'static str],
    action: Action,
    args: &'static [Arg],
    with_caps: &'static [&'static str],
    without_caps: &'static [&'static str],
    on_arches: &'static [&'static str],
    not_on_arches: &'static [&'static str],
    min_kernel: Option<(u32, u32)>,
}

const fn allow(names: &'static [&'static str]) -> Rule {
    Rule {
        names,
        action: Action::Allow,
        args: &[],
        with_caps: &[],
        without_caps: &[],
        on_arches: &[],
        not_on_arches: &[],
        min_kernel: None,
    }
}

const fn allow_with(cap: &'static [&'static str], names: &'static [&'static str]) -> Rule {
    Rule {
        with_caps: cap,
        ..allow(names)
    }
}

const fn allow_on(arches: &'static [&'static str], names: &'static [&'static str]) -> Rule {
    Rule {
        on_arches: arches,
        ..allow(names)
    }
}

const SYS_ADMIN: &[&str] = &["CAP_SYS_ADMIN"];
const MIPS: &[&str] = &["mips3l64n32", "mips64", "mips64n32", "mipsel", "mipsel64"];
const S390: &[&str] = &["s390", "s390x"];

/// The profile, in moby's order.
const RULES: &[Rule] = &[
    allow(ALLOWED),
    // Tracing was refused before 4.8: seccomp could be bypassed with it.
    Rule {
        min_kernel: Some((4, 8)),
        ..allow(&["ptrace"])
    },
    // Personalities: PER_LINUX, PER_LINUX32, UNAME26, UNAME26|PER_LINUX32, and the query.
    Rule {
        args: &[(0, 0, "SCMP_CMP_EQ")],
        ..allow(&["personality"])
    },
    Rule {
        args: &[(0, 0x0008, "SCMP_CMP_EQ")],
        ..allow(&["personality"])
    },
    Rule {
        args: &[(0, 0x20000, "SCMP_CMP_EQ")],
        ..allow(&["personality"])
    },
    Rule {
        args: &[(0, 0x20008, "SCMP_CMP_EQ")],
        ..allow(&["personality"])
    },
    Rule {
        args: &[(0, 0xffff_ffff, "SCMP_CMP_EQ")],
        ..allow(&["personality"])
    },
    allow_on(&["ppc64le"], &["sync_file_range2"]),
    allow_on(
        &["arm", "arm64"],
        &[
            "arm_fadvise64_64",
            "arm_sync_file_range",
            "sync_file_range2",
            "breakpoint",
            "cacheflush",
            "set_tls",
        ],
    ),
    allow_on(&["amd64", "x32"], &["arch_prctl"]),
    allow_on(&["amd64", "x32", "x86"], &["modify_ldt"]),
    allow_on(
        S390,
        &[
            "s390_pci_mmio_read",
            "s390_pci_mmio_write",
            "s390_runtime_instr",
        ],
    ),
    allow_with(&["CAP_DAC_READ_SEARCH"], &["open_by_handle_at"]),
    allow_with(
        SYS_ADMIN,
        &[
            "bpf",
            "clone",
            "clone3",
            "fanotify_init",
            "fsconfig",
            "fsmount",
            "fsopen",
            "fspick",
            "lookup_dcookie",
            "mount",
            "mount_setattr",
            "move_mount",
            "name_to_handle_at",
            "open_tree",
            "perf_event_open",
            "quotactl",
            "quotactl_fd",
            "setdomainname",
            "sethostname",
            "setns",
            "syslog",
            "umount",
            "umount2",
            "unshare",
        ],
    ),
    // Without CAP_SYS_ADMIN: clone without namespace flags (flags are the first argument,
    // the second on s390), clone3 as not implemented (errno 89 is ENOSYS on MIPS).
    Rule {
        args: &[(0, CLONE_NS_FLAGS, "SCMP_CMP_MASKED_EQ")],
        without_caps: SYS_ADMIN,
        not_on_arches: S390,
        ..allow(&["clone"])
    },
    Rule {
        args: &[(1, CLONE_NS_FLAGS, "SCMP_CMP_MASKED_EQ")],
        without_caps: SYS_ADMIN,
        on_arches: S390,
        ..allow(&["clone"])
    },
    Rule {
        action: Action::Errno(libc::ENOSYS),
        without_caps: SYS_ADMIN,
        not_on_arches: MIPS,
        ..allow(&["clone3"])
    },
    Rule {
        action: Action::Errno(89),
        without_caps: SYS_ADMIN,
        on_arches: MIPS,
        ..allow(&["clone3"])
    },
    allow_with(&["CAP_SYS_BOOT"], &["reboot"]),
    allow_with(&["CAP_SYS_CHROOT"], &["chroot"]),
    allow_with(
        &["CAP_SYS_MODULE"],
        &["delete_module", "init_module", "finit_module"],
    ),
    allow_with(&["CAP_SYS_PACCT"], &["acct"]),
    allow_with(
        &["CAP_SYS_PTRACE"],
        &[
            "kcmp",
            "pidfd_getfd",
            "process_madvise",
            "process_vm_readv",
            "process_vm_writev",
            "ptrace",
        ],
    ),
    allow_with(&["CAP_SYS_RAWIO"], &["iopl", "ioperm"]),
    allow_with(
        &["CAP_SYS_TIME"],
        &["settimeofday", "stime", "clock_settime"],
    ),
    allow_with(&["CAP_SYS_TTY_CONFIG"], &["vhangup"]),
    allow_with(
        &["CAP_SYS_NICE"],
        &["get_mempolicy", "mbind", "set_mempolicy"],
    ),
    allow_with(&["CAP_SYSLOG"], &["syslog"]),
];

/// The architecture kiln was built for, by moby's (Go's) name; "" where moby has none.
pub fn host_arch() -> &'static str {
    if cfg!(target_arch = "x86_64") {
        "amd64"
    } else if cfg!(target_arch = "x86") {
        "x86"
    } else if cfg!(target_arch = "aarch64") {
        "arm64"
    } else if cfg!(target_arch = "arm") {
        "arm"
    } else if cfg!(target_arch = "s390x") {
        "s390x"
    } else if cfg!(all(target_arch = "powerpc64", target_endian = "little")) {
        "ppc64le"
    } else if cfg!(target_arch = "powerpc64") {
        "ppc64"
    } else if cfg!(all(target_arch = "mips64", target_endian = "little")) {
        "mipsel64"
    } else if cfg!(target_arch = "mips64") {
        "mips64"
    } else if cfg!(all(target_arch = "mips", target_endian = "little")) {
        "mipsle"
    } else {
        ""
    }
}

/// The seccomp architectures a filter for `arch` covers (moby's `archMap`): the native
/// one and those its processes can also call the kernel as (32-bit x86 and x32 on
/// x86_64...). Empty where moby has no entry: libseccomp then uses the native one.
fn architectures(arch: &str) -> &'static [&'static str] {
    match arch {
        "amd64" => &["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "arm64" => &["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"],
        "mips64" => &["SCMP_ARCH_MIPS64", "SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64N32"],
        "mips64n32" => &["SCMP_ARCH_MIPS64N32", "SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64"],
        "mipsel64" => &[
            "SCMP_ARCH_MIPSEL64",
            "SCMP_ARCH_MIPSEL",
            "SCMP_ARCH_MIPSEL64N32",
        ],
        "mips3l64n32" => &[
            "SCMP_ARCH_MIPSEL64N32",
            "SCMP_ARCH_MIPSEL",
            "SCMP_ARCH_MIPSEL64",
        ],
        "s390x" => &["SCMP_ARCH_S390X", "SCMP_ARCH_S390"],
        _ => &[],
    }
}

/// The running kernel's (version, major revision), e.g. (6, 1); None if unknown.
pub fn kernel_version() -> Option<(u32, u32)> {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").ok()?;
    parse_kernel_version(&release)
}

fn parse_kernel_version(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.trim().split(['.', '-']);
    let kernel = parts.next()?.parse().ok()?;
    let major = parts.next()?.parse().ok()?;
    Some((kernel, major))
}

/// Docker's default profile for a container with capabilities `caps` (bounding set, as
/// `CAP_*` names) on the host architecture and running kernel.
pub fn default_profile(caps: &[String]) -> Value {
    profile_for(caps, host_arch(), kernel_version())
}

/// The profile for `caps` on architecture `arch` (moby's names) and kernel `kernel`
/// (an unknown kernel counts as new).
pub fn profile_for(caps: &[String], arch: &str, kernel: Option<(u32, u32)>) -> Value {
    let has = |c: &&str| caps.iter().any(|h| h == c);
    let mut syscalls = Vec::new();
    for r in RULES {
        let applies = r.with_caps.iter().all(has)
            && !r.without_caps.iter().any(has)
            && (r.on_arches.is_empty() || r.on_arches.contains(&arch))
            && !r.not_on_arches.contains(&arch)
            && match (r.min_kernel, kernel) {
                (Some(min), Some(k)) => k >= min,
                _ => true,
            };
        if !applies {
            continue;
        }
        let mut rule = json!({"names": r.names});
        match r.action {
            Action::Allow => rule["action"] = json!("SCMP_ACT_ALLOW"),
            Action::Errno(e) => {
                rule["action"] = json!("SCMP_ACT_ERRNO");
                rule["errnoRet"] = json!(e);
            }
        }
        if !r.args.is_empty() {
            rule["args"] = r
                .args
                .iter()
                .map(|(index, value, op)| json!({"index": index, "value": value, "op": op}))
                .collect();
        }
        syscalls.push(rule);
    }
    let mut profile = json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": libc::EPERM,
        "syscalls": syscalls,
    });
    let arches = architectures(arch);
    if !arches.is_empty() {
        profile["architectures"] = json!(arches);
    }
    profile
}

/// Rewrites the `linux.seccomp` of an OCI runtime spec (config.json) for libcontainer 0.7,
/// which reads the arguments of `SCMP_CMP_MASKED_EQ` the other way round from the runtime
/// spec, runc and crun: it takes `valueTwo` as the mask and `value` as what the masked
/// argument must equal. Given Docker's clone rule as written (mask 2114060288, result 0)
/// it builds a rule with mask 0, which libseccomp reduces to "always": clone with any
/// namespace flag passes the filter. Swapping the two values gives libcontainer the rule
/// the spec means. Apply it to the config.json the built-in runtime runs when
/// libcontainer loads the filter, never to the one an external runtime (runc) gets. (The
/// program kiln compiles itself, [`crate::bpf`], reads the spec's meaning directly.)
pub fn for_libcontainer(config: &mut Value) {
    let Some(rules) = config
        .pointer_mut("/linux/seccomp/syscalls")
        .and_then(Value::as_array_mut)
    else {
        return;
    };
    for rule in rules {
        let Some(args) = rule.get_mut("args").and_then(Value::as_array_mut) else {
            continue;
        };
        for arg in args {
            if arg["op"] == "SCMP_CMP_MASKED_EQ" {
                let mask = arg.get("value").cloned().unwrap_or(json!(0));
                let result = arg.get("valueTwo").cloned().unwrap_or(json!(0));
                arg["value"] = result;
                arg["valueTwo"] = mask;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{ALL_CAPS, DEFAULT_CAPS};
    use std::collections::BTreeMap;

    const MOBY_PROFILE: &str =
        "/usr/share/gocode/src/github.com/docker/docker/profiles/seccomp/default.json";

    /// One allowed or refused call: (name, action, errno, args as canonical JSON).
    type Tuple = (String, String, Option<u64>, String);
    /// Each tuple and how many times it is there (moby names ptrace and syslog twice).
    type Rules = BTreeMap<Tuple, usize>;

    fn moby_profile() -> Value {
        let text = std::fs::read_to_string(MOBY_PROFILE).unwrap_or_else(|e| {
            panic!(
                "{MOBY_PROFILE}: {e}: install golang-github-docker-docker-dev (scripts/install-deps.sh)"
            )
        });
        serde_json::from_str(&text).expect("moby's default.json parses")
    }

    fn strs(v: &Value) -> Vec<&str> {
        v.as_array()
            .map(|a| a.iter().map(|s| s.as_str().unwrap()).collect())
            .unwrap_or_default()
    }

    fn kernel_at_least(min: &Value, kernel: Option<(u32, u32)>) -> Option<bool> {
        let min = parse_kernel_version(min.as_str()?)?;
        Some(kernel.is_none_or(|k| k >= min))
    }

    /// What moby's `setupSeccomp` (profiles/seccomp/seccomp_linux.go) makes of its profile
    /// for a bounding set `caps` on `arch`: (architectures, default action, rules).
    fn moby_effective(
        moby: &Value,
        caps: &[String],
        arch: &str,
        kernel: Option<(u32, u32)>,
    ) -> (Vec<String>, String, Rules) {
        let seccomp_arch = match arch {
            "x86" => "SCMP_ARCH_X86",
            "amd64" => "SCMP_ARCH_X86_64",
            "arm" => "SCMP_ARCH_ARM",
            "arm64" => "SCMP_ARCH_AARCH64",
            "mips64" => "SCMP_ARCH_MIPS64",
            "mipsel64" => "SCMP_ARCH_MIPSEL64",
            "ppc64le" => "SCMP_ARCH_PPC64LE",
            "s390x" => "SCMP_ARCH_S390X",
            _ => "",
        };
        let mut arches = Vec::new();
        for a in moby["archMap"].as_array().unwrap() {
            if a["architecture"] == seccomp_arch {
                arches.push(seccomp_arch.to_string());
                arches.extend(strs(&a["subArchitectures"]).iter().map(|s| s.to_string()));
                break;
            }
        }
        let has = |c: &str| caps.iter().any(|h| h == c);
        let mut rules = Rules::new();
        for call in moby["syscalls"].as_array().unwrap() {
            let (inc, exc) = (&call["includes"], &call["excludes"]);
            if strs(&exc["arches"]).contains(&arch)
                || strs(&exc["caps"]).iter().any(|c| has(c))
                || kernel_at_least(&exc["minKernel"], kernel) == Some(true)
            {
                continue;
            }
            let on = strs(&inc["arches"]);
            if (!on.is_empty() && !on.contains(&arch))
                || !strs(&inc["caps"]).iter().all(|c| has(c))
                || kernel_at_least(&inc["minKernel"], kernel) == Some(false)
            {
                continue;
            }
            let mut names = strs(&call["names"]);
            if let Some(n) = call["name"].as_str() {
                names.push(n);
            }
            for n in names {
                *rules.entry(tuple(n, call)).or_default() += 1;
            }
        }
        (
            arches,
            moby["defaultAction"].as_str().unwrap().into(),
            rules,
        )
    }

    fn tuple(name: &str, rule: &Value) -> Tuple {
        let args = match &rule["args"] {
            Value::Null => json!([]),
            a => a.clone(),
        };
        (
            name.to_string(),
            rule["action"].as_str().unwrap().to_string(),
            rule["errnoRet"].as_u64(),
            args.to_string(),
        )
    }

    fn kiln_effective(profile: &Value) -> (Vec<String>, String, Rules) {
        let mut rules = Rules::new();
        for rule in profile["syscalls"].as_array().unwrap() {
            for n in strs(&rule["names"]) {
                *rules.entry(tuple(n, rule)).or_default() += 1;
            }
        }
        (
            strs(&profile["architectures"])
                .iter()
                .map(|s| s.to_string())
                .collect(),
            profile["defaultAction"].as_str().unwrap().into(),
            rules,
        )
    }

    fn caps(base: &[&str], extra: &[&str]) -> Vec<String> {
        base.iter().chain(extra).map(|s| s.to_string()).collect()
    }

    #[test]
    fn matches_mobys_default_profile_rule_for_rule() {
        let moby = moby_profile();
        let cap_sets = [
            caps(DEFAULT_CAPS, &[]),
            caps(DEFAULT_CAPS, &["CAP_SYS_ADMIN"]),
            caps(DEFAULT_CAPS, &["CAP_SYS_PTRACE"]),
            caps(ALL_CAPS, &[]),
            vec![],
        ];
        for arch in ["amd64", "arm64", "s390x", "ppc64le", "mips64", "x86"] {
            for kernel in [Some((6, 1)), Some((4, 4)), None] {
                for caps in &cap_sets {
                    let want = moby_effective(&moby, caps, arch, kernel);
                    let got = kiln_effective(&profile_for(caps, arch, kernel));
                    assert_eq!(got.0, want.0, "architectures on {arch}");
                    assert_eq!(got.1, want.1, "default action");
                    let missing: Vec<_> = want
                        .2
                        .iter()
                        .filter(|(t, n)| got.2.get(*t) != Some(n))
                        .collect();
                    let extra: Vec<_> = got
                        .2
                        .iter()
                        .filter(|(t, n)| want.2.get(*t) != Some(n))
                        .collect();
                    assert!(
                        missing.is_empty() && extra.is_empty(),
                        "{arch} {kernel:?} {caps:?}: kiln lacks {missing:?}, kiln adds {extra:?}"
                    );
                }
            }
        }
    }

    fn rules_for<'a>(profile: &'a Value, name: &str) -> Vec<&'a Value> {
        profile["syscalls"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| strs(&r["names"]).contains(&name))
            .collect()
    }

    #[test]
    fn namespaces_need_sys_admin() {
        let default = profile_for(&caps(DEFAULT_CAPS, &[]), "amd64", Some((6, 1)));
        assert_eq!(CLONE_NS_FLAGS, 2114060288);
        assert_eq!(default["defaultAction"], "SCMP_ACT_ERRNO");
        assert_eq!(default["defaultErrnoRet"], libc::EPERM);
        assert_eq!(
            default["architectures"],
            json!(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"])
        );
        let clone = rules_for(&default, "clone");
        assert_eq!(clone.len(), 1);
        assert_eq!(
            clone[0]["args"],
            json!([{"index": 0, "value": 2114060288u64, "op": "SCMP_CMP_MASKED_EQ"}])
        );
        let clone3 = rules_for(&default, "clone3");
        assert_eq!(clone3.len(), 1);
        assert_eq!(clone3[0]["action"], "SCMP_ACT_ERRNO");
        assert_eq!(clone3[0]["errnoRet"], libc::ENOSYS);
        for refused in ["mount", "unshare", "setns", "keyctl", "bpf", "umount2"] {
            assert!(rules_for(&default, refused).is_empty(), "{refused}");
        }

        let admin = profile_for(&caps(DEFAULT_CAPS, &["CAP_SYS_ADMIN"]), "amd64", None);
        for name in ["clone", "clone3", "mount", "unshare", "setns"] {
            let r = rules_for(&admin, name);
            assert_eq!(r.len(), 1, "{name}");
            assert_eq!(r[0]["action"], "SCMP_ACT_ALLOW");
            assert!(r[0].get("args").is_none(), "{name}");
        }
        // s390 passes clone's flags second.
        let s390 = profile_for(&caps(DEFAULT_CAPS, &[]), "s390x", None);
        assert_eq!(rules_for(&s390, "clone")[0]["args"][0]["index"], 1);
    }

    #[test]
    fn libcontainer_accepts_the_profile() {
        for caps in [caps(DEFAULT_CAPS, &[]), caps(ALL_CAPS, &[])] {
            let p = default_profile(&caps);
            let parsed: oci_spec::runtime::LinuxSeccomp =
                serde_json::from_value(p.clone()).expect("an OCI linux.seccomp object");
            assert_eq!(parsed.default_errno_ret(), Some(libc::EPERM as u32));
            assert_eq!(
                parsed.syscalls().as_ref().unwrap().len(),
                p["syscalls"].as_array().unwrap().len()
            );
        }
    }

    #[test]
    fn kernel_versions() {
        assert_eq!(parse_kernel_version("6.18.44-fc-v669\n"), Some((6, 18)));
        assert_eq!(parse_kernel_version("4.8-rc5"), Some((4, 8)));
        assert_eq!(parse_kernel_version("5"), None);
    }

    #[test]
    fn libcontainer_gets_masked_comparisons_its_way_round() {
        let mut config = json!({"linux": {"seccomp": default_profile(&caps(DEFAULT_CAPS, &[]))}});
        let before = config.clone();
        for_libcontainer(&mut config);
        let clone = rules_for(&config["linux"]["seccomp"], "clone");
        assert_eq!(clone[0]["args"][0]["value"], 0);
        assert_eq!(clone[0]["args"][0]["valueTwo"], CLONE_NS_FLAGS);
        let personality = rules_for(&config["linux"]["seccomp"], "personality");
        assert_eq!(
            personality[0]["args"],
            rules_for(&before["linux"]["seccomp"], "personality")[0]["args"]
        );
        // libcontainer's reading of it: mask = valueTwo, datum = value.
        let parsed: oci_spec::runtime::LinuxSeccomp =
            serde_json::from_value(config["linux"]["seccomp"].clone()).unwrap();
        let arg = parsed
            .syscalls()
            .as_ref()
            .unwrap()
            .iter()
            .find(|s| s.names().contains(&"clone".to_string()))
            .unwrap()
            .args()
            .clone()
            .unwrap()[0];
        assert_eq!((arg.value(), arg.value_two()), (0, Some(CLONE_NS_FLAGS)));
        let mut unconfined = json!({"linux": {}});
        for_libcontainer(&mut unconfined);
        assert_eq!(unconfined, json!({"linux": {}}));
    }
}
