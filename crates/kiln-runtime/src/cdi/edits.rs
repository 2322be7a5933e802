//! Resolved container edits ([`Edits`]) and their application to an OCI runtime spec.

use std::path::Path;

use oci_spec::runtime::{
    Hook as OciHook, HookBuilder, Hooks, Linux, LinuxDevice, LinuxDeviceBuilder, LinuxDeviceCgroup,
    LinuxDeviceCgroupBuilder, LinuxDeviceType, LinuxResources, MountBuilder, Process, Spec,
};

use super::host::resolve_device_node;
use super::spec::SpecEdits;
use super::CdiError;

/// A device node to create in the container, with type/major/minor filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceNode {
    /// Path in the container.
    pub path: String,
    /// Path on the host (defaults to `path`).
    pub host_path: String,
    /// "c", "b", "u" or "p".
    pub dev_type: String,
    /// Device major number (from the host's node when the spec gives none; 0 for a fifo).
    pub major: i64,
    /// Device minor number (from the host's node when the spec gives none; 0 for a fifo).
    pub minor: i64,
    /// Permission bits of the node in the container; `None` leaves the runtime's default.
    pub file_mode: Option<u32>,
    /// cgroup access, a subset of "rwm" (default "rwm").
    pub permissions: String,
    /// Owner of the node in the container; `None`: the container process's uid, unless root.
    pub uid: Option<u32>,
    /// Group of the node in the container; `None`: the container process's gid, unless root.
    pub gid: Option<u32>,
}

/// A mount to add to the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// Source of the mount on the host (a path for a bind mount).
    pub host_path: String,
    /// Absolute destination in the container; replaces an existing mount there.
    pub container_path: String,
    /// Defaults to "bind".
    pub mount_type: String,
    /// As given; a bind mount without options gets `["rbind", "rprivate"]`.
    pub options: Vec<String>,
}

/// An OCI hook to add to the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hook {
    /// prestart, createRuntime, createContainer, startContainer, poststart or poststop.
    pub hook_name: String,
    /// Absolute path on the host of the program to run.
    pub path: String,
    /// Its full argv, `argv[0]` included; empty: none given to the runtime.
    pub args: Vec<String>,
    /// Its environment, `KEY=VALUE`; empty: none given to the runtime.
    pub env: Vec<String>,
    /// Seconds the runtime lets it run before it is killed; `None`: no limit.
    pub timeout: Option<i64>,
}

/// Merged container edits: the spec-level containerEdits of each spec involved, then each device's edits.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Edits {
    /// Environment variables, "KEY=VALUE"; one replaces the process's variable of the same KEY.
    pub env: Vec<String>,
    /// Device nodes to create, each also allowed in the device cgroup.
    pub device_nodes: Vec<DeviceNode>,
    /// Mounts to add, in order.
    pub mounts: Vec<Mount>,
    /// OCI hooks to append to the runtime spec's hook lists.
    pub hooks: Vec<Hook>,
    /// Supplementary groups for the container process, without duplicates (0 is not added).
    pub additional_gids: Vec<u32>,
}
impl Edits {
    /// Appends one spec's or device's edits, filling device node details from the host.
    pub(super) fn append(&mut self, edits: &SpecEdits, device: &str) -> Result<(), CdiError> {
        self.env.extend(edits.env.iter().flatten().cloned());
        for node in edits.device_nodes.iter().flatten() {
            self.device_nodes.push(resolve_device_node(node, device)?);
        }
        for m in edits.mounts.iter().flatten() {
            let mount_type = m
                .mount_type
                .clone()
                .filter(|t| !t.is_empty())
                .unwrap_or_else(|| "bind".to_string());
            let mut options = m.options.clone().unwrap_or_default();
            if options.is_empty() && mount_type == "bind" {
                options = vec!["rbind".to_string(), "rprivate".to_string()];
            }
            self.mounts.push(Mount {
                host_path: m.host_path.clone(),
                container_path: m.container_path.clone(),
                mount_type,
                options,
            });
        }
        for h in edits.hooks.iter().flatten() {
            self.hooks.push(Hook {
                hook_name: h.hook_name.clone(),
                path: h.path.clone(),
                args: h.args.clone().unwrap_or_default(),
                env: h.env.clone().unwrap_or_default(),
                timeout: h.timeout,
            });
        }
        for gid in edits.additional_gids.iter().flatten() {
            if !self.additional_gids.contains(gid) {
                self.additional_gids.push(*gid);
            }
        }
        Ok(())
    }

    /// Whether there is nothing to apply.
    pub fn is_empty(&self) -> bool {
        self == &Edits::default()
    }

    /// Applies the edits to an OCI runtime spec: process.env (a variable replaces one of the
    /// same KEY), linux.devices (with the process's uid and gid as the default owner) and
    /// their linux.resources.devices allow rules, mounts, hooks.<hookName> and
    /// process.user.additionalGids. Applying twice adds no duplicate nodes, mounts, variables
    /// or gids.
    pub fn apply(&self, spec: &mut Spec) -> Result<(), CdiError> {
        self.apply_env(spec);
        self.apply_device_nodes(spec)?;
        self.apply_mounts(spec)?;
        self.apply_hooks(spec)?;
        self.apply_additional_gids(spec);
        Ok(())
    }

    /// process.env: each variable replaces one of the same KEY, else is appended.
    fn apply_env(&self, spec: &mut Spec) {
        if self.env.is_empty() {
            return;
        }
        let env = process_mut(spec).env_mut().get_or_insert_with(Vec::new);
        for var in &self.env {
            let key = env_key(var);
            match env.iter().position(|v| env_key(v) == key) {
                Some(i) => env[i] = var.clone(),
                None => env.push(var.clone()),
            }
        }
    }

    /// linux.devices (a node replaces one of the same path) and their linux.resources.devices
    /// allow rules.
    fn apply_device_nodes(&self, spec: &mut Spec) -> Result<(), CdiError> {
        if self.device_nodes.is_empty() {
            return Ok(());
        }
        let owner = process_owner(spec);
        let linux = linux_mut(spec);
        let devices = linux.devices_mut().get_or_insert_with(Vec::new);
        for node in &self.device_nodes {
            devices.retain(|d| d.path() != Path::new(&node.path));
            devices.push(linux_device(node, owner)?);
        }
        let rules = linux
            .resources_mut()
            .get_or_insert_with(LinuxResources::default)
            .devices_mut()
            .get_or_insert_with(Vec::new);
        for node in &self.device_nodes {
            rules.extend(allow_rule(node)?);
        }
        Ok(())
    }

    /// mounts: each replaces one of the same destination.
    fn apply_mounts(&self, spec: &mut Spec) -> Result<(), CdiError> {
        if self.mounts.is_empty() {
            return Ok(());
        }
        let mounts = spec.mounts_mut().get_or_insert_with(Vec::new);
        for m in &self.mounts {
            mounts.retain(|x| x.destination() != Path::new(&m.container_path));
            let mount = MountBuilder::default()
                .destination(&m.container_path)
                .typ(&m.mount_type)
                .source(&m.host_path)
                .options(m.options.clone())
                .build()
                .map_err(|e| apply_error(format!("mount {}: {e}", m.container_path)))?;
            mounts.push(mount);
        }
        Ok(())
    }

    /// hooks.<hookName>, appended.
    fn apply_hooks(&self, spec: &mut Spec) -> Result<(), CdiError> {
        for h in &self.hooks {
            let mut hook = HookBuilder::default()
                .path(&h.path)
                .build()
                .map_err(|e| apply_error(format!("hook {}: {e}", h.path)))?;
            hook.set_args((!h.args.is_empty()).then(|| h.args.clone()));
            hook.set_env((!h.env.is_empty()).then(|| h.env.clone()));
            hook.set_timeout(h.timeout);
            let hooks = spec.hooks_mut().get_or_insert_with(Hooks::default);
            hooks_named(hooks, &h.hook_name)?
                .get_or_insert_with(Vec::new)
                .push(hook);
        }
        Ok(())
    }

    /// process.user.additionalGids, without duplicates (gid 0 is never added).
    fn apply_additional_gids(&self, spec: &mut Spec) {
        let mut gids = self
            .additional_gids
            .iter()
            .copied()
            .filter(|&g| g != 0)
            .peekable();
        if gids.peek().is_none() {
            return;
        }
        let list = process_mut(spec)
            .user_mut()
            .additional_gids_mut()
            .get_or_insert_with(Vec::new);
        for g in gids {
            if !list.contains(&g) {
                list.push(g);
            }
        }
    }
}

fn apply_error(reason: String) -> CdiError {
    CdiError::Apply { reason }
}

/// The KEY of `KEY=VALUE` (all of it without `=`).
fn env_key(var: &str) -> &str {
    var.split_once('=').map_or(var, |(k, _)| k)
}

/// The spec's process, made (user 0:0, cwd /, nothing else) where it has none.
fn process_mut(spec: &mut Spec) -> &mut Process {
    spec.process_mut().get_or_insert_with(|| {
        // oci-spec's default process is an example one (sh, its env, capabilities...).
        let mut p = Process::default();
        p.set_terminal(None);
        p.set_args(None);
        p.set_env(None);
        p.set_capabilities(None);
        p.set_rlimits(None);
        p.set_no_new_privileges(None);
        p
    })
}

/// The spec's linux section, made (empty) where it has none.
fn linux_mut(spec: &mut Spec) -> &mut Linux {
    spec.linux_mut().get_or_insert_with(|| {
        // oci-spec's default is an example one (namespaces, masked paths...).
        let mut l = Linux::default();
        l.set_resources(None);
        l.set_namespaces(None);
        l.set_masked_paths(None);
        l.set_readonly_paths(None);
        l
    })
}

/// The process's uid and gid where not root, the default owner of device nodes (as the CDI
/// reference does).
fn process_owner(spec: &Spec) -> (Option<u32>, Option<u32>) {
    let user = spec.process().as_ref().map(|p| p.user());
    (
        user.map(|u| u.uid()).filter(|&i| i > 0),
        user.map(|u| u.gid()).filter(|&i| i > 0),
    )
}

/// The device type of a CDI node ("c", "b", "u" or "p").
fn device_type(node: &DeviceNode) -> Result<LinuxDeviceType, CdiError> {
    match node.dev_type.as_str() {
        "c" => Ok(LinuxDeviceType::C),
        "b" => Ok(LinuxDeviceType::B),
        "u" => Ok(LinuxDeviceType::U),
        "p" => Ok(LinuxDeviceType::P),
        t => Err(apply_error(format!(
            "device node {}: invalid type `{t}` (expected b, c, u or p)",
            node.path
        ))),
    }
}

/// A linux.devices entry, owned by the node's uid and gid, else `owner`'s.
fn linux_device(
    node: &DeviceNode,
    (proc_uid, proc_gid): (Option<u32>, Option<u32>),
) -> Result<LinuxDevice, CdiError> {
    let mut d = LinuxDeviceBuilder::default()
        .path(&node.path)
        .typ(device_type(node)?)
        .major(node.major)
        .minor(node.minor)
        .build()
        .map_err(|e| apply_error(format!("device node {}: {e}", node.path)))?;
    d.set_file_mode(node.file_mode);
    d.set_uid(node.uid.or(proc_uid));
    d.set_gid(node.gid.or(proc_gid));
    Ok(d)
}

/// The device cgroup rule allowing `node` (none for a fifo, which needs none).
fn allow_rule(node: &DeviceNode) -> Result<Option<LinuxDeviceCgroup>, CdiError> {
    let rule_type = match device_type(node)? {
        LinuxDeviceType::B => LinuxDeviceType::B,
        LinuxDeviceType::C | LinuxDeviceType::U => LinuxDeviceType::C,
        _ => return Ok(None),
    };
    LinuxDeviceCgroupBuilder::default()
        .allow(true)
        .typ(rule_type)
        .major(node.major)
        .minor(node.minor)
        .access(&node.permissions)
        .build()
        .map(Some)
        .map_err(|e| apply_error(format!("device node {}: {e}", node.path)))
}

/// The list of hooks named `name` (a CDI hookName).
#[allow(deprecated)] // prestart: deprecated by the runtime spec, still a CDI hook name
fn hooks_named<'a>(
    hooks: &'a mut Hooks,
    name: &str,
) -> Result<&'a mut Option<Vec<OciHook>>, CdiError> {
    Ok(match name {
        "prestart" => hooks.prestart_mut(),
        "createRuntime" => hooks.create_runtime_mut(),
        "createContainer" => hooks.create_container_mut(),
        "startContainer" => hooks.start_container_mut(),
        "poststart" => hooks.poststart_mut(),
        "poststop" => hooks.poststop_mut(),
        _ => return Err(apply_error(format!("unknown hook name `{name}`"))),
    })
}
