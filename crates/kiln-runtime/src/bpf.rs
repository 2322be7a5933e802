//! The container's seccomp filter compiled once and loaded as a BPF program.
//!
//! libcontainer builds the filter with libseccomp in every container's init process, at
//! every start: for Docker's allow-list (~350 names on three architectures) that is ~8 ms
//! of CPU, most of a `kiln run --rm IMAGE /bin/true`. kiln instead translates the spec's
//! `linux.seccomp` exactly as libcontainer's `initialize_seccomp` does (with the runtime
//! spec's meaning of `SCMP_CMP_MASKED_EQ`, see [`crate::seccomp::for_libcontainer`]),
//! exports the program libseccomp would load, and keeps it in the store:
//! `cache/seccomp/<key>.bpf`, where the key is the SHA-256 of the profile's canonical JSON
//! (plus this format's version, the libseccomp version and the native architecture,
//! which all shape the program). The container's process loads those bytes with
//! `seccomp(SECCOMP_SET_MODE_FILTER)` right before it executes its command.
//!
//! Only for processes with no-new-privileges (the default): loading a filter needs it
//! (or CAP_SYS_ADMIN, which is why libcontainer loads it before dropping capabilities
//! when the spec leaves no-new-privileges out). Profiles using `SCMP_ACT_NOTIFY` need
//! libcontainer's notify plumbing; both keep libcontainer's own path.

use crate::error::{Result, RuntimeError};
use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompFilterFlag, LinuxSeccompOperator,
};
use serde_json::Value;
use std::collections::HashSet;
use std::fs;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

/// Bumped whenever the translation below changes what a cached program means.
const FORMAT: &str = "kiln-seccomp-bpf/1";

/// Most instructions the kernel accepts in one classic BPF program (`BPF_MAXINSNS`).
const BPF_MAXINSNS: usize = 4096;

/// A compiled filter, ready to be loaded: the program and the `seccomp(2)` flags the
/// profile's `flags` ask for.
#[derive(Clone, Debug)]
pub struct Program {
    insns: Vec<libc::sock_filter>,
    flags: libc::c_ulong,
}

impl Program {
    /// The program from libseccomp's export (instructions in native byte order).
    pub fn from_bytes(bytes: &[u8], flags: libc::c_ulong) -> Result<Self> {
        let n = bytes.len() / 8;
        if bytes.is_empty() || !bytes.len().is_multiple_of(8) || n > BPF_MAXINSNS {
            return Err(RuntimeError::Invalid {
                what: "seccomp BPF program",
                value: format!("{} bytes", bytes.len()),
                reason: format!("expected 1 to {BPF_MAXINSNS} instructions of 8 bytes each"),
            });
        }
        let insns = bytes
            .chunks_exact(8)
            .map(|c| libc::sock_filter {
                code: u16::from_ne_bytes([c[0], c[1]]),
                jt: c[2],
                jf: c[3],
                k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
            })
            .collect();
        Ok(Self { insns, flags })
    }

    /// How many instructions the program has.
    pub fn len(&self) -> usize {
        self.insns.len()
    }

    /// Always false: an empty program is refused by [`Program::from_bytes`].
    pub fn is_empty(&self) -> bool {
        self.insns.is_empty()
    }

    /// Loads the filter into the calling thread (with `SECCOMP_FILTER_FLAG_TSYNC`, into
    /// all its threads), as libseccomp's `seccomp_load` does. The caller must have
    /// no-new-privileges or CAP_SYS_ADMIN. Allocates nothing: safe in a forked child.
    pub fn load(&self) -> std::io::Result<()> {
        let prog = libc::sock_fprog {
            len: self.insns.len() as libc::c_ushort,
            filter: self.insns.as_ptr() as *mut libc::sock_filter,
        };
        // SAFETY: `prog` points at `len` valid instructions that outlive the call; the
        // kernel copies them.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER as libc::c_ulong,
                self.flags,
                &prog as *const libc::sock_fprog,
            )
        };
        if rc == 0 {
            return Ok(());
        }
        if rc > 0 {
            // TSYNC: the id of a thread that could not be synchronized.
            return Err(std::io::Error::other(format!(
                "thread {rc} cannot take the seccomp filter"
            )));
        }
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::ENOSYS) && self.flags == 0 {
            // Kernels before 3.17: the prctl interface (no flags).
            // SAFETY: as above.
            let rc = unsafe {
                libc::prctl(
                    libc::PR_SET_SECCOMP,
                    libc::SECCOMP_MODE_FILTER as libc::c_ulong,
                    &prog as *const libc::sock_fprog,
                )
            };
            return if rc == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            };
        }
        Err(err)
    }
}

/// Whether a process with this profile can have the cached program instead of
/// libcontainer's filter: not with `SCMP_ACT_NOTIFY` (anywhere).
pub fn cacheable(seccomp: &LinuxSeccomp) -> bool {
    seccomp.default_action() != LinuxSeccompAction::ScmpActNotify
        && !seccomp
            .syscalls()
            .iter()
            .flatten()
            .any(|s| s.action() == LinuxSeccompAction::ScmpActNotify)
}

/// The `seccomp(2)` flags libseccomp passes for the profile's `flags` (no listener:
/// `SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV` only goes with one, so it is left out).
pub fn load_flags(seccomp: &LinuxSeccomp) -> libc::c_ulong {
    let mut flags = 0;
    for f in seccomp.flags().iter().flatten() {
        flags |= match f {
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => libc::SECCOMP_FILTER_FLAG_TSYNC,
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => libc::SECCOMP_FILTER_FLAG_LOG,
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => {
                libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW
            }
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => 0,
        };
    }
    flags
}

/// The profile's canonical JSON: object keys sorted, no whitespace.
pub fn canonical_json(seccomp: &LinuxSeccomp) -> String {
    fn write(v: &Value, out: &mut String) {
        match v {
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                out.push('{');
                for (i, k) in keys.into_iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&Value::String(k.clone()).to_string());
                    out.push(':');
                    write(&m[k], out);
                }
                out.push('}');
            }
            Value::Array(a) => {
                out.push('[');
                for (i, x) in a.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write(x, out);
                }
                out.push(']');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let value = serde_json::to_value(seccomp).expect("seccomp profiles serialize");
    let mut out = String::new();
    write(&value, &mut out);
    out
}

/// The cache key of a profile: the hex SHA-256 of the format, libseccomp's version, the
/// native architecture and the profile's canonical JSON.
pub fn cache_key(seccomp: &LinuxSeccomp) -> String {
    let lib = libseccomp::ScmpVersion::current()
        .map(|v| format!("{}.{}.{}", v.major, v.minor, v.micro))
        .unwrap_or_default();
    let text = format!(
        "{FORMAT}\nlibseccomp {lib}\narch {}\n{}",
        std::env::consts::ARCH,
        canonical_json(seccomp)
    );
    kiln_oci::digest::Digest::of_bytes(text.as_bytes())
        .hex()
        .to_string()
}

/// The cache directory of a store.
pub fn cache_dir(store_root: &Path) -> PathBuf {
    kiln_store::layout::cache_dir(store_root, kiln_store::layout::Cache::Seccomp)
}

fn lib_err(what: &str, e: impl std::fmt::Display) -> RuntimeError {
    RuntimeError::Io {
        path: "seccomp".into(),
        source: std::io::Error::other(format!("{what}: {e}")),
    }
}

fn translate_arch(arch: Arch) -> ScmpArch {
    match arch {
        Arch::ScmpArchNative => ScmpArch::Native,
        Arch::ScmpArchX86 => ScmpArch::X86,
        Arch::ScmpArchX86_64 => ScmpArch::X8664,
        Arch::ScmpArchX32 => ScmpArch::X32,
        Arch::ScmpArchArm => ScmpArch::Arm,
        Arch::ScmpArchAarch64 => ScmpArch::Aarch64,
        Arch::ScmpArchMips => ScmpArch::Mips,
        Arch::ScmpArchMips64 => ScmpArch::Mips64,
        Arch::ScmpArchMips64n32 => ScmpArch::Mips64N32,
        Arch::ScmpArchMipsel => ScmpArch::Mipsel,
        Arch::ScmpArchMipsel64 => ScmpArch::Mipsel64,
        Arch::ScmpArchMipsel64n32 => ScmpArch::Mipsel64N32,
        Arch::ScmpArchPpc => ScmpArch::Ppc,
        Arch::ScmpArchPpc64 => ScmpArch::Ppc64,
        Arch::ScmpArchPpc64le => ScmpArch::Ppc64Le,
        Arch::ScmpArchS390 => ScmpArch::S390,
        Arch::ScmpArchS390x => ScmpArch::S390X,
        Arch::ScmpArchRiscv64 => ScmpArch::Riscv64,
        Arch::ScmpArchParisc => ScmpArch::Parisc,
        Arch::ScmpArchParisc64 => ScmpArch::Parisc64,
        Arch::ScmpArchLoongarch64 => ScmpArch::Loongarch64,
        Arch::ScmpArchM68k => ScmpArch::M68k,
        Arch::ScmpArchSh => ScmpArch::Sh,
        Arch::ScmpArchSheb => ScmpArch::Sheb,
    }
}

/// libcontainer's translation of an action (errno defaults to EPERM).
fn translate_action(action: LinuxSeccompAction, errno: Option<u32>) -> Result<ScmpAction> {
    let errno = errno.map(|e| e as i32).unwrap_or(libc::EPERM);
    Ok(match action {
        LinuxSeccompAction::ScmpActKill => ScmpAction::KillThread,
        LinuxSeccompAction::ScmpActTrap => ScmpAction::Trap,
        LinuxSeccompAction::ScmpActErrno => ScmpAction::Errno(errno),
        LinuxSeccompAction::ScmpActTrace => ScmpAction::Trace(
            errno
                .try_into()
                .map_err(|e| lib_err(&format!("SCMP_ACT_TRACE errno {errno}"), e))?,
        ),
        LinuxSeccompAction::ScmpActAllow => ScmpAction::Allow,
        LinuxSeccompAction::ScmpActKillProcess => ScmpAction::KillProcess,
        LinuxSeccompAction::ScmpActNotify => ScmpAction::Notify,
        LinuxSeccompAction::ScmpActLog => ScmpAction::Log,
        LinuxSeccompAction::ScmpActKillThread => ScmpAction::KillThread,
    })
}

/// One argument comparison with the runtime spec's meaning (runc's, crun's): for
/// `SCMP_CMP_MASKED_EQ`, `value` is the mask and `valueTwo` what the masked argument must
/// equal. (libcontainer 0.7 reads them the other way round.)
fn translate_arg(
    index: u32,
    op: LinuxSeccompOperator,
    value: u64,
    two: Option<u64>,
) -> ScmpArgCompare {
    let op = match op {
        LinuxSeccompOperator::ScmpCmpNe => ScmpCompareOp::NotEqual,
        LinuxSeccompOperator::ScmpCmpLt => ScmpCompareOp::Less,
        LinuxSeccompOperator::ScmpCmpLe => ScmpCompareOp::LessOrEqual,
        LinuxSeccompOperator::ScmpCmpEq => ScmpCompareOp::Equal,
        LinuxSeccompOperator::ScmpCmpGe => ScmpCompareOp::GreaterEqual,
        LinuxSeccompOperator::ScmpCmpGt => ScmpCompareOp::Greater,
        LinuxSeccompOperator::ScmpCmpMaskedEq => {
            return ScmpArgCompare::new(index, ScmpCompareOp::MaskedEqual(value), two.unwrap_or(0))
        }
    };
    ScmpArgCompare::new(index, op, value)
}

/// Builds the libseccomp filter of a profile as libcontainer's `initialize_seccomp` does
/// (but for `SCMP_CMP_MASKED_EQ`'s operands, see [`translate_arg`]): default action and
/// errno, flags, architectures, no automatic no-new-privileges, one rule per name (rules
/// with the default action skipped, names libseccomp does not know skipped), argument
/// comparisons of the same index split into separate rules.
pub fn filter(seccomp: &LinuxSeccomp) -> Result<ScmpFilterContext> {
    let default_action = translate_action(seccomp.default_action(), seccomp.default_errno_ret())?;
    let mut ctx = ScmpFilterContext::new(default_action)
        .map_err(|e| lib_err("cannot create the seccomp filter", e))?;
    for flag in seccomp.flags().iter().flatten() {
        match flag {
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => ctx.set_ctl_log(true),
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => ctx.set_ctl_tsync(true),
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => ctx.set_ctl_ssb(true),
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => ctx.set_ctl_waitkill(true),
        }
        .map_err(|e| lib_err(&format!("seccomp flag {flag:?}"), e))?;
    }
    for &arch in seccomp.architectures().iter().flatten() {
        ctx.add_arch(translate_arch(arch))
            .map_err(|e| lib_err(&format!("seccomp architecture {arch:?}"), e))?;
    }
    ctx.set_ctl_nnp(false)
        .map_err(|e| lib_err("SCMP_FLTATR_CTL_NNP", e))?;
    for syscall in seccomp.syscalls().iter().flatten() {
        let action = translate_action(syscall.action(), syscall.errno_ret())?;
        if action == default_action {
            continue;
        }
        for name in syscall.names() {
            let Ok(sc) = ScmpSyscall::from_name(name) else {
                // Unknown to libseccomp (or the kernel): skipped, as libcontainer does.
                continue;
            };
            let rule_err = |e| lib_err(&format!("seccomp rule for {name}"), e);
            match syscall.args() {
                Some(args) => {
                    let mut seen = HashSet::new();
                    let mut duplicate = false;
                    let comparators: Vec<ScmpArgCompare> = args
                        .iter()
                        .map(|a| {
                            let index = a.index() as u32;
                            duplicate |= !seen.insert(index);
                            translate_arg(index, a.op(), a.value(), a.value_two())
                        })
                        .collect();
                    if duplicate {
                        for c in &comparators {
                            ctx.add_rule_conditional(action, sc, std::slice::from_ref(c))
                                .map_err(rule_err)?;
                        }
                    } else {
                        ctx.add_rule_conditional(action, sc, &comparators)
                            .map_err(rule_err)?;
                    }
                }
                None => {
                    ctx.add_rule(action, sc).map_err(rule_err)?;
                }
            }
        }
    }
    Ok(ctx)
}

/// The BPF program libseccomp generates for a profile (native byte order).
pub fn compile(seccomp: &LinuxSeccomp) -> Result<Vec<u8>> {
    let ctx = filter(seccomp)?;
    let memfd = rustix::fs::memfd_create("kiln-seccomp", rustix::fs::MemfdFlags::CLOEXEC)
        .map_err(|e| lib_err("memfd_create", e))?;
    ctx.export_bpf(&memfd)
        .map_err(|e| lib_err("cannot export the seccomp filter", e))?;
    let mut file = fs::File::from(memfd);
    let mut bytes = Vec::new();
    file.rewind()
        .and_then(|_| file.read_to_end(&mut bytes))
        .map_err(|e| lib_err("cannot read the exported seccomp filter", e))?;
    Ok(bytes)
}

/// The program of a profile: from `<store>/cache/seccomp/<key>.bpf`, or compiled and
/// stored there (atomically: a temporary file, fsynced, renamed). Without a store, or
/// when the cache cannot be written, compiled for this use alone.
pub fn program(store_root: Option<&Path>, seccomp: &LinuxSeccomp) -> Result<Program> {
    let flags = load_flags(seccomp);
    let Some(root) = store_root else {
        return Program::from_bytes(&compile(seccomp)?, flags);
    };
    let dir = cache_dir(root);
    let key = cache_key(seccomp);
    let path = dir.join(format!("{key}.bpf"));
    if let Ok(bytes) = fs::read(&path) {
        if let Ok(p) = Program::from_bytes(&bytes, flags) {
            return Ok(p);
        }
        // A damaged entry: compiled again and replaced below.
    }
    let bytes = compile(seccomp)?;
    let program = Program::from_bytes(&bytes, flags)?;
    let _ = store(&dir, &path, &bytes);
    Ok(program)
}

fn store(dir: &Path, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id()
    ));
    let written = (|| {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{ALL_CAPS, DEFAULT_CAPS};

    fn profile(caps: &[&str]) -> LinuxSeccomp {
        let caps: Vec<String> = caps.iter().map(|c| c.to_string()).collect();
        serde_json::from_value(crate::seccomp::default_profile(&caps)).expect("the profile parses")
    }

    #[test]
    fn default_profile_compiles_to_the_same_program_every_time() {
        let p = profile(DEFAULT_CAPS);
        let a = compile(&p).unwrap();
        let b = compile(&p).unwrap();
        assert!(!a.is_empty());
        assert_eq!(a.len() % 8, 0);
        assert_eq!(a, b);
        let prog = Program::from_bytes(&a, load_flags(&p)).unwrap();
        assert!(prog.len() <= BPF_MAXINSNS);
        assert_eq!(cache_key(&p), cache_key(&profile(DEFAULT_CAPS)));
        assert!(cacheable(&p));
    }

    #[test]
    fn cache_key_changes_with_capabilities() {
        let default = cache_key(&profile(DEFAULT_CAPS));
        let admin = cache_key(&profile(&[DEFAULT_CAPS, &["CAP_SYS_ADMIN"]].concat()));
        let all = cache_key(&profile(ALL_CAPS));
        assert_ne!(default, admin);
        assert_ne!(default, all);
        assert_ne!(admin, all);
        assert_eq!(default.len(), 64);
    }

    #[test]
    fn masked_eq_uses_the_runtime_spec_operands() {
        // Docker's clone rule: allowed only when flags & CLONE_NS_FLAGS == 0. With the
        // operands swapped (mask 0) libseccomp would make it unconditional, and the
        // program would equal that of a plain `clone` allow rule.
        let with_args: LinuxSeccomp = serde_json::from_value(serde_json::json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "syscalls": [{"names": ["clone"], "action": "SCMP_ACT_ALLOW", "args": [
                {"index": 0, "value": crate::seccomp::CLONE_NS_FLAGS, "valueTwo": 0,
                 "op": "SCMP_CMP_MASKED_EQ"}]}]
        }))
        .unwrap();
        let plain: LinuxSeccomp = serde_json::from_value(serde_json::json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "syscalls": [{"names": ["clone"], "action": "SCMP_ACT_ALLOW"}]
        }))
        .unwrap();
        let a = compile(&with_args).unwrap();
        let p = compile(&plain).unwrap();
        assert_ne!(a, p);
        let mask = (crate::seccomp::CLONE_NS_FLAGS as u32).to_ne_bytes();
        assert!(
            a.chunks_exact(8).any(|i| i[4..8] == mask),
            "the mask is in the program"
        );
    }

    #[test]
    fn loaded_program_refuses_namespaces_and_clone3() {
        let program = Program::from_bytes(&compile(&profile(DEFAULT_CAPS)).unwrap(), 0).unwrap();
        // SAFETY: the child only makes system calls (no allocation, no locks) and exits.
        match unsafe { libc::fork() } {
            0 => unsafe {
                libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
                if program.load().is_err() {
                    libc::_exit(10);
                }
                let errno = || *libc::__errno_location();
                if libc::unshare(libc::CLONE_NEWUSER) == 0 || errno() != libc::EPERM {
                    libc::_exit(11);
                }
                if libc::syscall(libc::SYS_clone3, 0usize, 0usize) != -1 || errno() != libc::ENOSYS
                {
                    libc::_exit(12);
                }
                if libc::getpid() <= 0 {
                    libc::_exit(13);
                }
                libc::_exit(0)
            },
            pid => {
                assert!(pid > 0);
                let mut status = 0;
                assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
                assert!(libc::WIFEXITED(status), "status {status}");
                assert_eq!(libc::WEXITSTATUS(status), 0);
            }
        }
    }

    #[test]
    fn notify_profiles_are_not_cacheable() {
        let p: LinuxSeccomp = serde_json::from_value(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "listenerPath": "/run/l.sock",
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]
        }))
        .unwrap();
        assert!(!cacheable(&p));
    }

    #[test]
    fn program_is_cached_in_the_store() {
        let root = tempfile::tempdir().unwrap();
        let p = profile(DEFAULT_CAPS);
        let first = program(Some(root.path()), &p).unwrap();
        let path = cache_dir(root.path()).join(format!("{}.bpf", cache_key(&p)));
        let bytes = fs::read(&path).unwrap();
        assert_eq!(bytes.len(), first.len() * 8);
        assert_eq!(bytes, compile(&p).unwrap());
        let entries: Vec<_> = fs::read_dir(cache_dir(root.path())).unwrap().collect();
        assert_eq!(entries.len(), 1, "no temporary file left");
        // A damaged entry is replaced.
        fs::write(&path, b"short").unwrap();
        let again = program(Some(root.path()), &p).unwrap();
        assert_eq!(again.len(), first.len());
        assert_eq!(fs::read(&path).unwrap(), bytes);
    }
}
