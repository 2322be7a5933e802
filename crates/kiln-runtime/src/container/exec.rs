//! `kiln exec`: a further process in a running container.

use super::confine::{invalid_json, saved_seccomp, store_root, Confined, Filter};
use super::process::{become_subreaper, Exit};
use super::{lib_error, ContainerDirs};
use crate::error::{Result, RuntimeError};
use libcontainer::container::builder::ContainerBuilder;
use libcontainer::syscall::syscall::SyscallType;
use nix::sys::wait::{waitpid, WaitStatus};
use std::fs;

/// Runs a further process in a running container (`kiln exec`): it joins the container's
/// namespaces and cgroup with the same confinement as the container's first process.
pub fn exec(
    dirs: &ContainerDirs,
    id: &str,
    args: Vec<String>,
    env: std::collections::HashMap<String, String>,
    cwd: Option<String>,
    user: Option<(u32, u32)>,
) -> Result<Exit> {
    let lib = |e| lib_error(dirs, e);
    let config = dirs.bundle().join("config.json");
    let spec = oci_spec::runtime::Spec::load(&config).map_err(|e| RuntimeError::Io {
        path: config.clone(),
        source: std::io::Error::other(e.to_string()),
    })?;
    // The container's own filter: the compiled program when kiln loaded it into the
    // first process, else what libcontainer loaded (config.json, adapted for it).
    let saved = saved_seccomp(dirs);
    let filter = match fs::read(&saved) {
        Ok(bytes) => {
            let profile: oci_spec::runtime::LinuxSeccomp =
                serde_json::from_slice(&bytes).map_err(|e| invalid_json(&saved, e))?;
            Filter::Program(crate::bpf::program(store_root(dirs), &profile)?)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            match spec.linux().as_ref().and_then(|l| l.seccomp().clone()) {
                Some(s) => Filter::Libcontainer(s),
                None => Filter::None,
            }
        }
        Err(e) => return Err(RuntimeError::io(saved)(e)),
    };
    // As `docker exec`: the container's user unless one is given.
    let user = user.or_else(|| {
        spec.process()
            .as_ref()
            .map(|p| (p.user().uid(), p.user().gid()))
    });
    let confined = Confined {
        filter,
        rlimits: spec
            .process()
            .as_ref()
            .and_then(|p| p.rlimits().clone())
            .unwrap_or_default(),
    };
    become_subreaper()?;
    let pid = ContainerBuilder::new(id.to_string(), SyscallType::default())
        .with_executor(confined)
        .with_root_path(dirs.state())
        .map_err(lib)?
        .as_tenant()
        .with_container_args(args)
        .with_env(env)
        .with_cwd(cwd)
        .with_user(user.map(|u| u.0))
        .with_group(user.map(|u| u.1))
        .with_detach(false)
        .build()
        .map_err(lib)?;
    loop {
        match waitpid(pid, None) {
            Ok(WaitStatus::Exited(_, code)) => return Ok(Exit::Code(code)),
            Ok(WaitStatus::Signaled(_, sig, _)) => return Ok(Exit::Signal(sig as i32)),
            Ok(_) => continue,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => {
                return Err(RuntimeError::Io {
                    path: "waitpid".into(),
                    source: e.into(),
                })
            }
        }
    }
}
