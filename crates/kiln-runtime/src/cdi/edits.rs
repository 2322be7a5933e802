//! Resolved container edits ([`Edits`]) and their application to an OCI runtime spec.

use serde_json::{json, Map, Value};

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
    pub major: i64,
    pub minor: i64,
    pub file_mode: Option<u32>,
    /// cgroup access, a subset of "rwm" (default "rwm").
    pub permissions: String,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
}

/// A mount to add to the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub host_path: String,
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
    pub path: String,
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub timeout: Option<i64>,
}

/// Merged container edits: the spec-level containerEdits of each spec involved, then each device's edits.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Edits {
    /// "KEY=VALUE"
    pub env: Vec<String>,
    pub device_nodes: Vec<DeviceNode>,
    pub mounts: Vec<Mount>,
    pub hooks: Vec<Hook>,
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

    /// Applies the edits to an OCI runtime spec given as serde_json::Value (the shape of config.json): appends
    /// process.env (replacing same KEY), linux.devices entries {path,type,major,minor,fileMode,uid,gid} and the
    /// matching linux.resources.devices allow rules {allow:true,type,major,minor,access}, mounts
    /// {destination,type,source,options}, hooks under spec.hooks.<hookName> {path,args,env,timeout},
    /// process.user.additionalGids.
    pub fn apply(&self, spec: &mut Value) -> Result<(), CdiError> {
        let root = spec.as_object_mut().ok_or_else(|| CdiError::Apply {
            reason: "runtime spec is not a json object".to_string(),
        })?;
        self.apply_env(root)?;
        self.apply_device_nodes(root)?;
        self.apply_mounts(root)?;
        self.apply_hooks(root)?;
        self.apply_additional_gids(root)
    }

    /// process.env: each variable replaces one of the same KEY, else is appended.
    fn apply_env(&self, root: &mut Map<String, Value>) -> Result<(), CdiError> {
        if self.env.is_empty() {
            return Ok(());
        }
        let env = array_at(root, &["process", "env"])?;
        for var in &self.env {
            let key = env_key(var);
            match env
                .iter()
                .position(|v| v.as_str().is_some_and(|s| env_key(s) == key))
            {
                Some(i) => env[i] = Value::String(var.clone()),
                None => env.push(Value::String(var.clone())),
            }
        }
        Ok(())
    }

    /// linux.devices (a node replaces one of the same path) and their linux.resources.devices
    /// allow rules.
    fn apply_device_nodes(&self, root: &mut Map<String, Value>) -> Result<(), CdiError> {
        if self.device_nodes.is_empty() {
            return Ok(());
        }
        let (proc_uid, proc_gid) = process_owner(root);
        let devices = array_at(root, &["linux", "devices"])?;
        for node in &self.device_nodes {
            devices.retain(|d| d.get("path").and_then(Value::as_str) != Some(&node.path));
            devices.push(linux_device(node, proc_uid, proc_gid));
        }
        let rules = array_at(root, &["linux", "resources", "devices"])?;
        rules.extend(self.device_nodes.iter().filter_map(allow_rule));
        Ok(())
    }

    /// mounts: each replaces one of the same destination.
    fn apply_mounts(&self, root: &mut Map<String, Value>) -> Result<(), CdiError> {
        if self.mounts.is_empty() {
            return Ok(());
        }
        let mounts = array_at(root, &["mounts"])?;
        for m in &self.mounts {
            mounts.retain(|x| {
                x.get("destination").and_then(Value::as_str) != Some(&m.container_path)
            });
            mounts.push(json!({
                "destination": m.container_path,
                "type": m.mount_type,
                "source": m.host_path,
                "options": m.options,
            }));
        }
        Ok(())
    }

    /// hooks.<hookName>, appended.
    fn apply_hooks(&self, root: &mut Map<String, Value>) -> Result<(), CdiError> {
        for h in &self.hooks {
            let hooks = array_at(root, &["hooks", &h.hook_name])?;
            let mut o = Map::new();
            o.insert("path".into(), json!(h.path));
            if !h.args.is_empty() {
                o.insert("args".into(), json!(h.args));
            }
            if !h.env.is_empty() {
                o.insert("env".into(), json!(h.env));
            }
            if let Some(t) = h.timeout {
                o.insert("timeout".into(), json!(t));
            }
            hooks.push(Value::Object(o));
        }
        Ok(())
    }

    /// process.user.additionalGids, without duplicates (gid 0 is never added).
    fn apply_additional_gids(&self, root: &mut Map<String, Value>) -> Result<(), CdiError> {
        let gids: Vec<u32> = self
            .additional_gids
            .iter()
            .copied()
            .filter(|&g| g != 0)
            .collect();
        if gids.is_empty() {
            return Ok(());
        }
        let process = object_at(root, &["process"])?;
        let user = process
            .entry("user")
            .or_insert_with(|| json!({"uid": 0, "gid": 0}));
        let user = user.as_object_mut().ok_or_else(|| CdiError::Apply {
            reason: "process.user is not an object".to_string(),
        })?;
        let list = user
            .entry("additionalGids")
            .or_insert_with(|| Value::Array(Vec::new()))
            .as_array_mut()
            .ok_or_else(|| CdiError::Apply {
                reason: "process.user.additionalGids is not an array".to_string(),
            })?;
        for g in gids {
            if !list.iter().any(|v| v.as_u64() == Some(u64::from(g))) {
                list.push(json!(g));
            }
        }
        Ok(())
    }
}

/// The KEY of `KEY=VALUE` (all of it without `=`).
fn env_key(var: &str) -> &str {
    var.split_once('=').map_or(var, |(k, _)| k)
}

/// The process's uid and gid where not root, the default owner of device nodes (as the CDI
/// reference does).
fn process_owner(root: &Map<String, Value>) -> (Option<u64>, Option<u64>) {
    let user = root.get("process").and_then(|p| p.get("user"));
    let id = |key: &str| {
        user.and_then(|u| u.get(key))
            .and_then(Value::as_u64)
            .filter(|&i| i > 0)
    };
    (id("uid"), id("gid"))
}

/// A linux.devices entry {path,type,major,minor,fileMode,uid,gid}.
fn linux_device(node: &DeviceNode, proc_uid: Option<u64>, proc_gid: Option<u64>) -> Value {
    let mut d = Map::new();
    d.insert("path".into(), json!(node.path));
    d.insert("type".into(), json!(node.dev_type));
    d.insert("major".into(), json!(node.major));
    d.insert("minor".into(), json!(node.minor));
    if let Some(mode) = node.file_mode {
        d.insert("fileMode".into(), json!(mode));
    }
    if let Some(uid) = node.uid.map(u64::from).or(proc_uid) {
        d.insert("uid".into(), json!(uid));
    }
    if let Some(gid) = node.gid.map(u64::from).or(proc_gid) {
        d.insert("gid".into(), json!(gid));
    }
    Value::Object(d)
}

/// The device cgroup rule allowing `node` (none for a fifo, which needs none).
fn allow_rule(node: &DeviceNode) -> Option<Value> {
    let rule_type = match node.dev_type.as_str() {
        "b" => "b",
        "c" | "u" => "c",
        _ => return None,
    };
    Some(json!({
        "allow": true,
        "type": rule_type,
        "major": node.major,
        "minor": node.minor,
        "access": node.permissions,
    }))
}

/// The object at `path` under `root`, created (as empty objects) where missing.
fn object_at<'a>(
    root: &'a mut Map<String, Value>,
    path: &[&str],
) -> Result<&'a mut Map<String, Value>, CdiError> {
    let mut cur = root;
    for (i, key) in path.iter().enumerate() {
        let v = cur
            .entry(key.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        if v.is_null() {
            *v = Value::Object(Map::new());
        }
        cur = v.as_object_mut().ok_or_else(|| CdiError::Apply {
            reason: format!("{} is not an object", path[..=i].join(".")),
        })?;
    }
    Ok(cur)
}

/// The array at `path` under `root`, created (with its parents) where missing.
fn array_at<'a>(
    root: &'a mut Map<String, Value>,
    path: &[&str],
) -> Result<&'a mut Vec<Value>, CdiError> {
    let (last, parents) = path.split_last().expect("non-empty path");
    let parent = object_at(root, parents)?;
    let v = parent
        .entry(last.to_string())
        .or_insert_with(|| Value::Array(Vec::new()));
    if v.is_null() {
        *v = Value::Array(Vec::new());
    }
    v.as_array_mut().ok_or_else(|| CdiError::Apply {
        reason: format!("{} is not an array", path.join(".")),
    })
}
