//! Host device nodes: filling a CDI device node's type and numbers from the host, Docker's
//! `--device HOST[:CONTAINER][:PERMISSIONS]`, and `--gpus` as NVIDIA CDI names.

use std::os::unix::fs::{FileTypeExt, MetadataExt};

use super::edits::{DeviceNode, Edits};
use super::names::validate_device_name;
use super::spec::SpecDeviceNode;
use super::CdiError;

/// Fills in host path, type, major and minor (from the host's device node where absent).
pub(super) fn resolve_device_node(
    node: &SpecDeviceNode,
    device: &str,
) -> Result<DeviceNode, CdiError> {
    let host_path = node
        .host_path
        .clone()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| node.path.clone());
    let mut dev_type = node.dev_type.clone().filter(|t| !t.is_empty());
    let mut major = node.major;
    let mut minor = node.minor;
    let complete = match dev_type.as_deref() {
        Some("p") => true,
        Some(_) => major.is_some(),
        None => false,
    };
    if !complete {
        let err = |reason: String| CdiError::DeviceNode {
            device: device.to_string(),
            path: host_path.clone(),
            reason,
        };
        let meta = std::fs::metadata(&host_path).map_err(|e| err(e.to_string()))?;
        let ft = meta.file_type();
        let stat_type = if ft.is_char_device() {
            "c"
        } else if ft.is_block_device() {
            "b"
        } else if ft.is_fifo() {
            "p"
        } else {
            return Err(err("not a device node".to_string()));
        };
        if dev_type.is_none() {
            dev_type = Some(stat_type.to_string());
        }
        if stat_type != "p" {
            let rdev = meta.rdev();
            major.get_or_insert(i64::from(libc::major(rdev)));
            minor.get_or_insert(i64::from(libc::minor(rdev)));
        }
    }
    Ok(DeviceNode {
        path: node.path.clone(),
        host_path,
        dev_type: dev_type.unwrap_or_else(|| "c".to_string()),
        major: major.unwrap_or(0),
        minor: minor.unwrap_or(0),
        file_mode: node.file_mode,
        permissions: node
            .permissions
            .clone()
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| "rwm".to_string()),
        uid: node.uid,
        gid: node.gid,
    })
}

/// Translates Docker's `--gpus` value into NVIDIA CDI device names: `all` -> `nvidia.com/gpu=all`,
/// a count `N` (or `count=N`) -> `nvidia.com/gpu=0` .. `=N-1`, `device=0,1` (optionally quoted, as
/// Docker's CSV syntax needs: `"device=0,1"`) -> those devices (indices or UUIDs).
pub fn gpus_to_devices(gpus: &str) -> Result<Vec<String>, CdiError> {
    let err = |reason: &str| CdiError::Gpus {
        value: gpus.to_string(),
        reason: reason.to_string(),
    };
    let mut v = gpus.trim();
    for q in ['"', '\''] {
        if v.len() >= 2 && v.starts_with(q) && v.ends_with(q) {
            v = &v[1..v.len() - 1];
        }
    }
    let v = v.trim();
    let all = || vec!["nvidia.com/gpu=all".to_string()];
    let count = |n: &str| -> Result<Vec<String>, CdiError> {
        let n: u32 = n
            .parse()
            .map_err(|_| err("expected `all`, a gpu count, or device=ID[,ID...]"))?;
        if n == 0 {
            return Err(err("gpu count must be at least 1"));
        }
        Ok((0..n).map(|i| format!("nvidia.com/gpu={i}")).collect())
    };
    if v == "all" || v == "count=all" {
        return Ok(all());
    }
    if let Some(n) = v.strip_prefix("count=") {
        return count(n);
    }
    if let Some(list) = v.strip_prefix("device=") {
        let mut out = Vec::new();
        for id in list.split(',').map(str::trim) {
            if id.is_empty() {
                return Err(err("empty device id"));
            }
            validate_device_name(id, &|r| err(&r))?;
            let name = format!("nvidia.com/gpu={id}");
            if !out.contains(&name) {
                out.push(name);
            }
        }
        return Ok(out);
    }
    if !v.is_empty() && v.chars().all(|c| c.is_ascii_digit()) {
        return count(v);
    }
    Err(err("expected `all`, a gpu count, or device=ID[,ID...]"))
}

/// Docker's `--device HOST[:CONTAINER][:PERMISSIONS]` (a host device node, not a CDI name)
/// as edits: the node is created in the container and allowed in its device cgroup.
pub fn host_device(spec: &str) -> Result<Edits, CdiError> {
    let bad = |reason: &str| CdiError::InvalidName {
        name: spec.to_string(),
        reason: reason.to_string(),
    };
    let parts: Vec<&str> = spec.split(':').collect();
    let (host, ctr, perms) = match parts.as_slice() {
        [h] => (*h, *h, "rwm"),
        [h, p] if !p.starts_with('/') => (*h, *h, *p),
        [h, c] => (*h, *c, "rwm"),
        [h, c, p] => (*h, *c, *p),
        _ => return Err(bad("expected HOST[:CONTAINER][:PERMISSIONS]")),
    };
    if !host.starts_with('/') || !ctr.starts_with('/') {
        return Err(bad("device paths must be absolute"));
    }
    if perms.is_empty() || !perms.chars().all(|c| matches!(c, 'r' | 'w' | 'm')) {
        return Err(bad("permissions are letters of `rwm`"));
    }
    let node = SpecDeviceNode {
        path: ctr.to_string(),
        host_path: Some(host.to_string()),
        permissions: Some(perms.to_string()),
        ..Default::default()
    };
    Ok(Edits {
        device_nodes: vec![resolve_device_node(&node, spec)?],
        ..Default::default()
    })
}
