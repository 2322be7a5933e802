//! Docker's default seccomp profile in a default container: no namespaces through clone,
//! unshare or setns, clone3 as not implemented, no keyrings, mounts, modules, BPF... and
//! the same answers as Docker itself gives, call for call, for the same capabilities.
use crate::common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A static C program making each call of interest, in a child process of its own (so
/// that one that succeeds changes nothing for the next), and printing `name: ok` or
/// `name: ERRNO` (EPERM, ENOSYS...). `filter(...)` lines pass flags the kernel rejects
/// with EINVAL before any permission check: EPERM there can only come from seccomp.
const PROBE_C: &str = r#"
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long result;

static void report(const char *name, long r) {
    if (r < 0)
        printf("%s: %s\n", name, strerrorname_np(errno));
    else
        printf("%s: ok\n", name);
    fflush(stdout);
}

static long do_clone(unsigned long flags) {
    long r = syscall(SYS_clone, flags | SIGCHLD, 0, 0, 0, 0);
    if (r == 0)
        _exit(0);
    if (r > 0)
        waitpid(r, NULL, 0);
    return r;
}

#define PROBE(name, call)                  \
    do {                                   \
        fflush(stdout);                    \
        pid_t p = fork();                  \
        if (p == 0) {                      \
            errno = 0;                     \
            result = (long)(call);         \
            report(name, result);          \
            _exit(0);                      \
        }                                  \
        if (p < 0)                         \
            report("fork", -1);            \
        else                               \
            waitpid(p, NULL, 0);           \
    } while (0)

int main(void) {
    static const struct { const char *name; unsigned long flag; } ns[] = {
        {"NEWUSER", CLONE_NEWUSER}, {"NEWNET", CLONE_NEWNET}, {"NEWNS", CLONE_NEWNS},
        {"NEWPID", CLONE_NEWPID}, {"NEWUTS", CLONE_NEWUTS}, {"NEWIPC", CLONE_NEWIPC},
        {"NEWCGROUP", CLONE_NEWCGROUP},
    };
    char name[64];
    PROBE("clone()", do_clone(0));
    for (unsigned i = 0; i < sizeof ns / sizeof ns[0]; i++) {
        snprintf(name, sizeof name, "clone(%s)", ns[i].name);
        PROBE(name, do_clone(ns[i].flag));
        snprintf(name, sizeof name, "filter(clone(%s))", ns[i].name);
        PROBE(name, syscall(SYS_clone, ns[i].flag | CLONE_SIGHAND | SIGCHLD, 0, 0, 0, 0));
    }
    PROBE("clone3", syscall(SYS_clone3, NULL, 0));
    PROBE("unshare(0)", unshare(0));
    PROBE("unshare(NEWUSER)", unshare(CLONE_NEWUSER));
    PROBE("unshare(NEWNS)", unshare(CLONE_NEWNS));
    PROBE("setns", setns(-1, 0));
    PROBE("keyctl", syscall(SYS_keyctl, 0 /* GET_KEYRING_ID */, -3 /* SESSION */, 0));
    PROBE("add_key", syscall(SYS_add_key, "user", "kiln", "x", 1, -3));
    PROBE("ptrace(TRACEME)", ptrace(PTRACE_TRACEME, 0, 0, 0));
    PROBE("personality(query)", personality(0xffffffff));
    PROBE("personality(LINUX32)", personality(PER_LINUX32));
    PROBE("personality(ADDR_NO_RANDOMIZE)", personality(ADDR_NO_RANDOMIZE));
    PROBE("mount", mount("none", "/kiln-no-such-dir", "tmpfs", 0, NULL));
    PROBE("umount2", umount2("/kiln-no-such-dir", 0));
    PROBE("chroot", chroot("/"));
    PROBE("bpf", syscall(SYS_bpf, -1, NULL, 0));
    PROBE("perf_event_open", syscall(SYS_perf_event_open, NULL, 0, -1, -1, 0));
    PROBE("userfaultfd", syscall(SYS_userfaultfd, 0));
    PROBE("kcmp", syscall(SYS_kcmp, getpid(), getpid(), 0 /* KCMP_FILE */, 0, 0));
    PROBE("process_vm_readv", syscall(SYS_process_vm_readv, getpid(), NULL, 0, NULL, 0, 0));
    PROBE("open_by_handle_at", syscall(SYS_open_by_handle_at, -1, NULL, 0));
    PROBE("name_to_handle_at", syscall(SYS_name_to_handle_at, -1, "", NULL, NULL, 0));
    PROBE("syslog", syscall(SYS_syslog, 10 /* SIZE_BUFFER */, NULL, 0));
    PROBE("reboot", syscall(SYS_reboot, 0, 0, 0, NULL));
    PROBE("init_module", syscall(SYS_init_module, NULL, 0, ""));
    PROBE("acct", syscall(SYS_acct, "/kiln-no-such-file"));
    PROBE("clock_settime", syscall(SYS_clock_settime, CLOCK_REALTIME, NULL));
    PROBE("swapon", syscall(SYS_swapon, "/kiln-no-such-file", 0));
    PROBE("kexec_load", syscall(SYS_kexec_load, 0, 0, NULL, 0));
    PROBE("sethostname", syscall(SYS_sethostname, NULL, 1));
    PROBE("io_uring_setup", syscall(SYS_io_uring_setup, 0, NULL));
    PROBE("pivot_root", syscall(SYS_pivot_root, "/kiln-no-such-dir", "/kiln-no-such-dir"));
    PROBE("fsopen", syscall(SYS_fsopen, "kiln-no-such-fs", 0));
    PROBE("getpid", getpid());
    return 0;
}
"#;

/// The probe compiled (static) into a busybox root filesystem, imported into kiln's store
/// as `probe:v1`; returns the directory of the root filesystem too (for Docker).
fn probe_image(k: &Kiln) -> PathBuf {
    let cc = ["/usr/bin/cc", "/usr/bin/gcc"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .unwrap_or_else(|| {
            panic!("a C compiler is required: apt-get install -y gcc libc6-dev (scripts/install-deps.sh)")
        });
    let dir = k.dir.path().join("probe");
    let rootfs = dir.join("rootfs");
    std::fs::create_dir_all(&dir).unwrap();
    run(Command::new("cp")
        .arg("-a")
        .arg(busybox_rootfs())
        .arg(&rootfs));
    std::fs::write(dir.join("probe.c"), PROBE_C).unwrap();
    run(Command::new(cc)
        .args(["-static", "-O2", "-o"])
        .arg(rootfs.join("probe"))
        .arg(dir.join("probe.c")));
    k.ok(&["import", rootfs.to_str().unwrap(), "-t", "probe:v1"]);
    rootfs
}

/// The probe's answers in a kiln container run with `flags`: name -> result.
fn kiln_probe(k: &Kiln, flags: &[&str]) -> Vec<(String, String)> {
    let mut args = vec!["run", "--rm"];
    args.extend(flags);
    args.extend(["probe:v1", "/probe"]);
    parse(&k.ok(&args))
}

fn parse(out: &str) -> Vec<(String, String)> {
    let r: Vec<(String, String)> = out
        .lines()
        .filter_map(|l| l.split_once(": "))
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    assert!(
        r.last().is_some_and(|(n, v)| n == "getpid" && v == "ok"),
        "the probe did not run to its end:\n{out}"
    );
    r
}

fn get<'a>(r: &'a [(String, String)], name: &str) -> &'a str {
    r.iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("no {name} in {r:?}"))
        .1
        .as_str()
}

const NAMESPACES: &[&str] = &[
    "NEWUSER",
    "NEWNET",
    "NEWNS",
    "NEWPID",
    "NEWUTS",
    "NEWIPC",
    "NEWCGROUP",
];

#[test]
fn default_profile_refuses_namespaces_and_clone3() {
    let k = kiln_with_busybox();
    probe_image(&k);
    let r = kiln_probe(&k, &[]);
    assert_eq!(get(&r, "clone()"), "ok", "{r:?}");
    for ns in NAMESPACES {
        assert_eq!(get(&r, &format!("clone({ns})")), "EPERM", "{r:?}");
        assert_eq!(get(&r, &format!("filter(clone({ns}))")), "EPERM", "{r:?}");
    }
    assert_eq!(get(&r, "clone3"), "ENOSYS");
    for refused in [
        "unshare(0)",
        "unshare(NEWUSER)",
        "setns",
        "keyctl",
        "add_key",
        "personality(ADDR_NO_RANDOMIZE)",
        "mount",
        "umount2",
        "bpf",
        "perf_event_open",
        "userfaultfd",
        "kcmp",
        "process_vm_readv",
        "open_by_handle_at",
        "syslog",
        "reboot",
        "init_module",
        "acct",
        "clock_settime",
        "swapon",
        "kexec_load",
    ] {
        assert_eq!(get(&r, refused), "EPERM", "{refused}: {r:?}");
    }
    for allowed in [
        "ptrace(TRACEME)",
        "personality(query)",
        "personality(LINUX32)",
        "chroot",
    ] {
        assert_eq!(get(&r, allowed), "ok", "{allowed}: {r:?}");
    }

    // CAP_SYS_ADMIN: clone with any flags and clone3 pass the filter (the kernel answers
    // EINVAL to the impossible flags), unshare is allowed.
    let r = kiln_probe(&k, &["--cap-add", "SYS_ADMIN"]);
    for ns in NAMESPACES {
        assert_eq!(get(&r, &format!("filter(clone({ns}))")), "EINVAL", "{r:?}");
    }
    for ns in ["NEWNET", "NEWNS", "NEWPID", "NEWUTS", "NEWIPC", "NEWCGROUP"] {
        assert_eq!(get(&r, &format!("clone({ns})")), "ok", "{r:?}");
    }
    assert_eq!(get(&r, "clone3"), "EINVAL", "{r:?}");
    assert_eq!(get(&r, "unshare(0)"), "ok", "{r:?}");
    assert_eq!(get(&r, "unshare(NEWNS)"), "ok", "{r:?}");
    assert_eq!(get(&r, "mount"), "ENOENT", "{r:?}");
    assert_eq!(get(&r, "keyctl"), "EPERM", "{r:?}");

    // CAP_SYS_PTRACE: kcmp and process_vm_readv, still no namespaces.
    let r = kiln_probe(&k, &["--cap-add", "SYS_PTRACE"]);
    assert_ne!(get(&r, "kcmp"), "EPERM", "{r:?}");
    assert_ne!(get(&r, "process_vm_readv"), "EPERM", "{r:?}");
    assert_eq!(get(&r, "filter(clone(NEWUSER))"), "EPERM", "{r:?}");
}

#[test]
fn cap_add_all_and_unconfined_run() {
    let k = kiln_with_busybox();
    k.ok(&["run", "--rm", "--cap-add", "ALL", "bb:v1", "true"]);
    k.ok(&[
        "run",
        "--rm",
        "--cap-add",
        "all",
        "--cap-drop",
        "SYS_ADMIN",
        "bb:v1",
        "true",
    ]);
    k.ok(&[
        "run",
        "--rm",
        "--security-opt",
        "seccomp=unconfined",
        "bb:v1",
        "true",
    ]);
    probe_image(&k);
    // ALL: Docker's profile allows everything it has a capability rule for.
    let r = kiln_probe(&k, &["--cap-add", "ALL"]);
    assert_eq!(get(&r, "filter(clone(NEWUSER))"), "EINVAL", "{r:?}");
    assert_eq!(get(&r, "clone3"), "EINVAL", "{r:?}");
    assert_eq!(get(&r, "unshare(0)"), "ok", "{r:?}");
    // Unconfined: no filter at all, even keyrings are the kernel's to refuse or not.
    let r = kiln_probe(&k, &["--security-opt", "seccomp=unconfined"]);
    assert_eq!(get(&r, "clone3"), "EINVAL", "{r:?}");
    assert_eq!(get(&r, "filter(clone(NEWUSER))"), "EINVAL", "{r:?}");
    assert_ne!(get(&r, "keyctl"), "EPERM", "{r:?}");
}

#[test]
fn same_answers_as_docker() {
    let k = kiln_with_busybox();
    let rootfs = probe_image(&k);
    let tar = k.dir.path().join("probe.tar");
    run(Command::new("tar")
        .arg("-C")
        .arg(&rootfs)
        .arg("-cf")
        .arg(&tar)
        .arg("."));
    let image = format!("{}:v1", unique("seccomp-probe"));
    run(docker().arg("import").arg(&tar).arg(&image));
    for flags in [
        &[][..],
        &["--cap-add", "SYS_ADMIN"][..],
        &["--cap-add", "SYS_PTRACE"][..],
        &["--cap-drop", "ALL"][..],
    ] {
        let ours = kiln_probe(&k, flags);
        let mut args = vec![
            "run",
            "--rm",
            "--network",
            "none",
            "--security-opt",
            "apparmor=unconfined",
        ];
        args.extend(flags);
        args.extend([image.as_str(), "/probe"]);
        let theirs = parse(&run(docker().args(&args)));
        let differ: Vec<String> = ours
            .iter()
            .zip(&theirs)
            .filter(|(a, b)| a != b)
            .map(|(a, b)| format!("{}: kiln {} docker {}", a.0, a.1, b.1))
            .collect();
        assert!(
            differ.is_empty() && ours.len() == theirs.len(),
            "{flags:?}: kiln and Docker differ:\n{}\nkiln: {ours:?}\ndocker: {theirs:?}",
            differ.join("\n")
        );
    }
    let _ = docker().args(["rmi", "-f", &image]).output();
}
