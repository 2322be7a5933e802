//! The confinement kiln applies to a container's processes itself rather than through
//! libcontainer: the seccomp filter compiled ahead ([`crate::bpf`]) and, for `kiln exec`,
//! the container's rlimits.

use super::ContainerDirs;
use crate::error::{Result, RuntimeError};
use libcontainer::workload::default::DefaultExecutor;
use std::fs;
use std::path::{Path, PathBuf};

/// The store a container directory (`<store>/containers/<id>`) belongs to.
pub(super) fn store_root(dirs: &ContainerDirs) -> Option<&Path> {
    let containers = dirs.dir.parent()?;
    (containers.file_name()? == "containers")
        .then(|| containers.parent())
        .flatten()
}

/// Where the container's seccomp profile is kept (as the runtime spec wrote it) when
/// kiln, not libcontainer, loads it: `kiln exec` reads it there.
pub(super) fn saved_seccomp(dirs: &ContainerDirs) -> PathBuf {
    dirs.dir.join("seccomp.json")
}

pub(super) fn invalid_json(path: &Path, e: serde_json::Error) -> RuntimeError {
    RuntimeError::Io {
        path: path.to_path_buf(),
        source: std::io::Error::other(e.to_string()),
    }
}

/// Rewrites the bundle's config.json for the built-in runtime (an external one gets it as
/// written) and says which filter the container's process loads itself.
///
/// With no-new-privileges (the default) and a profile without `SCMP_ACT_NOTIFY`, the
/// filter is the program compiled once into the store's cache ([`crate::bpf`]), loaded
/// right before the command is executed; `linux.seccomp` leaves config.json (libcontainer
/// would build the same filter again, ~8 ms at every start) and is kept in
/// `seccomp.json` for `kiln exec`. Otherwise libcontainer loads it as before, given the
/// operands it expects ([`crate::seccomp::for_libcontainer`]).
pub(super) fn prepare_config(dirs: &ContainerDirs) -> Result<Filter> {
    let path = dirs.bundle().join("config.json");
    let bytes = fs::read(&path).map_err(RuntimeError::io(&path))?;
    let mut config: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| invalid_json(&path, e))?;
    let no_new_privileges =
        config.pointer("/process/noNewPrivileges") == Some(&serde_json::Value::Bool(true));
    let profile = config
        .pointer("/linux/seccomp")
        .filter(|_| no_new_privileges)
        .and_then(|v| serde_json::from_value::<oci_spec::runtime::LinuxSeccomp>(v.clone()).ok())
        .filter(crate::bpf::cacheable);
    let filter = match profile {
        Some(profile) => {
            let program = crate::bpf::program(store_root(dirs), &profile)?;
            let saved = saved_seccomp(dirs);
            let tmp = dirs.dir.join(".seccomp.json.tmp");
            fs::write(
                &tmp,
                serde_json::to_vec(&profile).expect("seccomp profiles serialize"),
            )
            .and_then(|_| fs::rename(&tmp, &saved))
            .map_err(RuntimeError::io(&saved))?;
            if let Some(linux) = config.get_mut("linux").and_then(|l| l.as_object_mut()) {
                linux.remove("seccomp");
            }
            Filter::Program(program)
        }
        None => {
            crate::seccomp::for_libcontainer(&mut config);
            Filter::None
        }
    };
    fs::write(
        &path,
        serde_json::to_vec(&config).expect("JSON values serialize"),
    )
    .map_err(RuntimeError::io(&path))?;
    Ok(filter)
}

/// A seccomp filter the container's process loads itself, right before it executes its
/// command (after capabilities are dropped, which a filter allows under
/// no-new-privileges).
#[derive(Clone)]
pub(super) enum Filter {
    /// None, or libcontainer loads it (`kiln run` without no-new-privileges or with
    /// `SCMP_ACT_NOTIFY`).
    None,
    /// The program compiled ahead ([`crate::bpf`]), read before the process was forked.
    Program(crate::bpf::Program),
    /// Built by libcontainer's own code in the process (`kiln exec` into a container
    /// whose filter libcontainer loaded: the profile as config.json holds it).
    Libcontainer(oci_spec::runtime::LinuxSeccomp),
}

/// libcontainer's executor with what kiln adds to the process before it executes the
/// command: the seccomp filter kiln loads itself (`kiln run`, build steps, `kiln exec`)
/// and rlimits (`kiln exec`). libcontainer 0.7 gives a tenant the container's namespaces,
/// cgroup, capabilities and no-new-privileges, but rebuilds the spec's `linux` section
/// without the seccomp filter and the process without its rlimits: this executor applies
/// both so that it is confined exactly as the container's first process.
#[derive(Clone)]
pub(super) struct Confined {
    pub(super) filter: Filter,
    pub(super) rlimits: Vec<oci_spec::runtime::PosixRlimit>,
}

impl libcontainer::workload::Executor for Confined {
    fn exec(
        &self,
        spec: &oci_spec::runtime::Spec,
    ) -> std::result::Result<(), libcontainer::workload::ExecutorError> {
        use libcontainer::workload::ExecutorError;
        for r in &self.rlimits {
            let resource = rlimit_resource(r.typ());
            if let Some(resource) = resource {
                // Never above what this process holds (raising needs a capability the
                // process no longer has); the container's own values were clamped so.
                let (soft, hard) = crate::spec::clamp_rlimit(resource, r.soft(), r.hard());
                rustix::process::setrlimit(
                    resource,
                    rustix::process::Rlimit {
                        current: Some(soft),
                        maximum: Some(hard),
                    },
                )
                .map_err(|e| ExecutorError::Other(format!("setrlimit {:?}: {e}", r.typ())))?;
            }
        }
        if !matches!(self.filter, Filter::None) {
            // A process without no-new-privileges may not load a filter any more (its
            // capabilities are dropped): it gets no-new-privileges for itself. A first
            // process has it already (kiln loads its filter only then); an exec'd one
            // into a `no-new-privileges=false` container is stricter than the
            // container's first process, never looser.
            if !rustix::thread::no_new_privs().unwrap_or(false) {
                rustix::thread::set_no_new_privs(true).map_err(|e| {
                    ExecutorError::Other(format!("cannot set no-new-privileges: {e}"))
                })?;
            }
        }
        match &self.filter {
            Filter::None => {}
            Filter::Program(program) => program.load().map_err(|e| {
                ExecutorError::Other(format!("cannot load the seccomp filter: {e}"))
            })?,
            Filter::Libcontainer(filter) => {
                libcontainer::seccomp::initialize_seccomp(filter).map_err(|e| {
                    ExecutorError::Other(format!("cannot load the seccomp filter: {e}"))
                })?;
            }
        }
        DefaultExecutor {}.exec(spec)
    }

    fn validate(
        &self,
        spec: &oci_spec::runtime::Spec,
    ) -> std::result::Result<(), libcontainer::workload::ExecutorValidationError> {
        DefaultExecutor {}.validate(spec)
    }
}

/// The rustix resource of an OCI rlimit type.
fn rlimit_resource(t: oci_spec::runtime::PosixRlimitType) -> Option<rustix::process::Resource> {
    use oci_spec::runtime::PosixRlimitType as T;
    use rustix::process::Resource as R;
    Some(match t {
        T::RlimitCpu => R::Cpu,
        T::RlimitFsize => R::Fsize,
        T::RlimitData => R::Data,
        T::RlimitStack => R::Stack,
        T::RlimitCore => R::Core,
        T::RlimitRss => R::Rss,
        T::RlimitNproc => R::Nproc,
        T::RlimitNofile => R::Nofile,
        T::RlimitMemlock => R::Memlock,
        T::RlimitAs => R::As,
        T::RlimitLocks => R::Locks,
        T::RlimitSigpending => R::Sigpending,
        T::RlimitMsgqueue => R::Msgqueue,
        T::RlimitNice => R::Nice,
        T::RlimitRtprio => R::Rtprio,
        T::RlimitRttime => R::Rttime,
    })
}
