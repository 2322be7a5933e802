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

mod arch;
mod rules;
#[cfg(test)]
mod tests;

use arch::architectures;
pub use arch::host_arch;
use rules::{Action, RULES};

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
