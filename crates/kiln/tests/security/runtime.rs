//! A container (and a process `kiln exec` adds to it) stays confined: it cannot change its
//! own limits through the cgroup file system, see a hierarchy's root, or run anything
//! less confined than its first process.

use crate::common::*;

/// A detached container removed when the test ends.
struct Detached<'a> {
    k: &'a Kiln,
    name: String,
}

impl<'a> Detached<'a> {
    fn start(k: &'a Kiln, flags: &[&str]) -> Self {
        let name = unique("sec");
        let mut args = vec!["run", "-d", "--network", "none", "--name", &name];
        args.extend_from_slice(flags);
        args.extend_from_slice(&["bb:v1", "sleep", "300"]);
        k.ok(&args);
        Self { k, name }
    }

    fn exec(&self, script: &str) -> String {
        self.k.ok(&["exec", &self.name, "sh", "-c", script])
    }
}

impl Drop for Detached<'_> {
    fn drop(&mut self) {
        let _ = self.k.cmd().args(["rm", "-f", &self.name]).output();
    }
}

/// `Field:\tvalue` of a /proc/PID/status text.
fn status_field<'s>(status: &'s str, field: &str) -> &'s str {
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in {status}"))
        .trim()
}

#[test]
fn cgroup_filesystem_is_read_only_and_shows_only_the_container() {
    let k = kiln_with_busybox();
    let out = k
        .cmd()
        .args([
            "run",
            "--rm",
            "--network",
            "none",
            "--pids-limit",
            "10",
            "--memory",
            "64m",
            "bb:v1",
            "sh",
            "-c",
            "cat /sys/fs/cgroup/pids/pids.max; cat /sys/fs/cgroup/memory/memory.limit_in_bytes; \
             echo max > /sys/fs/cgroup/pids/pids.max; echo 1073741824 > /sys/fs/cgroup/memory/memory.limit_in_bytes; \
             touch /sys/fs/cgroup/new; echo $(ls -A /sys/fs/cgroup/systemd/ /sys/fs/cgroup/unified/ | grep -v ':$' | grep -c .); \
             cat /sys/fs/cgroup/pids/pids.max",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Its own limits, readable; every write refused; no hierarchy root (no release_agent).
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], "10", "{stdout}{stderr}");
    assert_eq!(lines[1], (64u64 << 20).to_string(), "{stdout}{stderr}");
    assert_eq!(
        stderr.matches("Read-only file system").count(),
        3,
        "{stderr}"
    );
    assert_eq!(
        lines[2], "0",
        "the systemd and unified directories are empty: {stdout}"
    );
    assert_eq!(lines[3], "10", "{stdout}");
}

/// The review's escape: with CAP_SYS_ADMIN, release_agent of the host's name=systemd
/// hierarchy ran a payload on the host. Now there is no hierarchy root to write to.
#[test]
fn no_release_agent_even_with_sys_admin() {
    let k = kiln_with_busybox();
    let out = k
        .cmd()
        .args([
            "run",
            "--rm",
            "--network",
            "none",
            "--cap-add",
            "SYS_ADMIN",
            "bb:v1",
            "sh",
            "-c",
            "ls /sys/fs/cgroup/*/release_agent; echo /x > /sys/fs/cgroup/systemd/release_agent; echo 1 > /sys/fs/cgroup/pids/notify_on_release; echo done",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stdout.contains("done"), "{stdout}{stderr}");
    assert!(!stdout.contains("release_agent"), "{stdout}");
    assert!(stderr.contains("Read-only file system"), "{stderr}");
}

/// `kiln exec` runs with the container's seccomp filter, no-new-privileges, capabilities
/// and rlimits.
#[test]
fn exec_is_confined_like_the_container() {
    let k = kiln_with_busybox();
    let c = Detached::start(&k, &["--ulimit", "nofile=512:512", "--cap-drop", "NET_RAW"]);
    let first = c.exec("cat /proc/1/status");
    let exec = c.exec("cat /proc/self/status");
    assert_eq!(status_field(&exec, "Seccomp"), "2", "{exec}");
    assert_eq!(status_field(&exec, "NoNewPrivs"), "1", "{exec}");
    assert_eq!(
        status_field(&exec, "CapEff"),
        status_field(&first, "CapEff")
    );
    assert_eq!(
        status_field(&exec, "CapBnd"),
        status_field(&first, "CapBnd")
    );
    assert_eq!(status_field(&first, "Seccomp"), "2");
    assert_eq!(c.exec("ulimit -n").trim(), "512");
    // The same cgroup as the container's first process.
    assert_eq!(
        c.exec("cat /proc/self/cgroup | grep pids"),
        c.exec("cat /proc/1/cgroup | grep pids")
    );
}

/// `--security-opt no-new-privileges=false` starts (the filter is loaded before the
/// capabilities are dropped), and its exec'd processes are filtered all the same.
#[test]
fn no_new_privileges_false_still_filters() {
    let k = kiln_with_busybox();
    let c = Detached::start(&k, &["--security-opt", "no-new-privileges=false"]);
    let first = c.exec("cat /proc/1/status");
    assert_eq!(status_field(&first, "NoNewPrivs"), "0", "{first}");
    assert_eq!(status_field(&first, "Seccomp"), "2", "{first}");
    let exec = c.exec("cat /proc/self/status");
    assert_eq!(status_field(&exec, "Seccomp"), "2", "{exec}");
}

#[test]
fn privileged_is_refused_with_a_hint() {
    let k = kiln_with_busybox();
    let (code, stderr) = k.fails(&["run", "--rm", "--privileged", "bb:v1", "true"]);
    assert_eq!(code, 125, "Docker's code for a run that never started");
    assert!(
        stderr.contains("kiln does not run privileged containers"),
        "{stderr}"
    );
    assert!(stderr.contains("hint: "), "{stderr}");
}
