//! The CDI spec file format (`cdiVersion`, `kind`, `devices`, `containerEdits`), its parsing
//! from JSON or YAML, and its validation.

use std::collections::HashSet;
use std::path::Path;

use serde::Deserialize;

use super::names::{validate_device_name, validate_kind, Fail};
use super::{CdiError, KNOWN_VERSIONS};

/// OCI hook names a CDI spec may use.
const HOOK_NAMES: &[&str] = &[
    "prestart",
    "createRuntime",
    "createContainer",
    "startContainer",
    "poststart",
    "poststop",
];

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct SpecFile {
    pub(super) cdi_version: String,
    pub(super) kind: String,
    #[serde(default)]
    pub(super) devices: Vec<SpecDevice>,
    #[serde(default)]
    pub(super) container_edits: Option<SpecEdits>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct SpecDevice {
    pub(super) name: String,
    #[serde(default)]
    pub(super) container_edits: SpecEdits,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct SpecEdits {
    #[serde(default)]
    pub(super) env: Option<Vec<String>>,
    #[serde(default)]
    pub(super) device_nodes: Option<Vec<SpecDeviceNode>>,
    #[serde(default)]
    pub(super) hooks: Option<Vec<SpecHook>>,
    #[serde(default)]
    pub(super) mounts: Option<Vec<SpecMount>>,
    #[serde(default, rename = "additionalGIDs")]
    pub(super) additional_gids: Option<Vec<u32>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct SpecDeviceNode {
    #[serde(default)]
    pub(super) path: String,
    #[serde(default)]
    pub(super) host_path: Option<String>,
    #[serde(default, rename = "type")]
    pub(super) dev_type: Option<String>,
    #[serde(default)]
    pub(super) major: Option<i64>,
    #[serde(default)]
    pub(super) minor: Option<i64>,
    #[serde(default)]
    pub(super) file_mode: Option<u32>,
    #[serde(default)]
    pub(super) permissions: Option<String>,
    #[serde(default)]
    pub(super) uid: Option<u32>,
    #[serde(default)]
    pub(super) gid: Option<u32>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct SpecMount {
    #[serde(default)]
    pub(super) host_path: String,
    #[serde(default)]
    pub(super) container_path: String,
    #[serde(default, rename = "type")]
    pub(super) mount_type: Option<String>,
    #[serde(default)]
    pub(super) options: Option<Vec<String>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct SpecHook {
    #[serde(default)]
    pub(super) hook_name: String,
    #[serde(default)]
    pub(super) path: String,
    #[serde(default)]
    pub(super) args: Option<Vec<String>>,
    #[serde(default)]
    pub(super) env: Option<Vec<String>>,
    #[serde(default)]
    pub(super) timeout: Option<i64>,
}

pub(super) fn parse_spec_file(path: &Path) -> Result<SpecFile, CdiError> {
    let data = std::fs::read_to_string(path).map_err(|source| CdiError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let parse_error = |reason: String| CdiError::Parse {
        path: path.to_path_buf(),
        reason,
    };
    let spec: SpecFile = match path.extension().and_then(|e| e.to_str()) {
        Some("json") => serde_json::from_str(&data).map_err(|e| parse_error(e.to_string()))?,
        _ => serde_yaml::from_str(&data).map_err(|e| parse_error(e.to_string()))?,
    };
    validate_spec(&spec, &|reason| CdiError::Invalid {
        path: path.to_path_buf(),
        reason,
    })?;
    Ok(spec)
}

fn validate_spec(spec: &SpecFile, fail: Fail<'_>) -> Result<(), CdiError> {
    if !KNOWN_VERSIONS.contains(&spec.cdi_version.as_str()) {
        return Err(fail(format!(
            "unsupported cdiVersion `{}` (known: {})",
            spec.cdi_version,
            KNOWN_VERSIONS.join(", ")
        )));
    }
    validate_kind(&spec.kind, fail)?;
    if let Some(edits) = &spec.container_edits {
        validate_edits(edits, &|r| fail(format!("spec containerEdits: {r}")))?;
    }
    let mut names = HashSet::new();
    for dev in &spec.devices {
        validate_device_name(&dev.name, fail)?;
        if !names.insert(dev.name.as_str()) {
            return Err(fail(format!("device `{}` is defined twice", dev.name)));
        }
        validate_edits(&dev.container_edits, &|r| {
            fail(format!("device `{}`: {r}", dev.name))
        })?;
    }
    Ok(())
}

fn validate_edits(edits: &SpecEdits, fail: Fail<'_>) -> Result<(), CdiError> {
    for env in edits.env.iter().flatten() {
        validate_env(env, fail)?;
    }
    for node in edits.device_nodes.iter().flatten() {
        if node.path.is_empty() {
            return Err(fail("device node without a path".to_string()));
        }
        if let Some(t) = &node.dev_type {
            if !matches!(t.as_str(), "b" | "c" | "u" | "p") {
                return Err(fail(format!(
                    "device node {}: invalid type `{t}` (expected b, c, u or p)",
                    node.path
                )));
            }
        }
        if let Some(p) = &node.permissions {
            if p.is_empty() || p.chars().any(|c| !matches!(c, 'r' | 'w' | 'm')) {
                return Err(fail(format!(
                    "device node {}: invalid permissions `{p}` (expected a subset of rwm)",
                    node.path
                )));
            }
        }
    }
    for hook in edits.hooks.iter().flatten() {
        if !HOOK_NAMES.contains(&hook.hook_name.as_str()) {
            return Err(fail(format!(
                "hook {}: invalid hookName `{}` (expected one of {})",
                hook.path,
                hook.hook_name,
                HOOK_NAMES.join(", ")
            )));
        }
        if !Path::new(&hook.path).is_absolute() {
            return Err(fail(format!("hook path `{}` is not absolute", hook.path)));
        }
        for env in hook.env.iter().flatten() {
            validate_env(env, &|r| fail(format!("hook {}: {r}", hook.path)))?;
        }
    }
    for mount in edits.mounts.iter().flatten() {
        if mount.host_path.is_empty() {
            return Err(fail(format!(
                "mount {}: missing hostPath",
                mount.container_path
            )));
        }
        if mount.container_path.is_empty() {
            return Err(fail(format!(
                "mount {}: missing containerPath",
                mount.host_path
            )));
        }
    }
    Ok(())
}

fn validate_env(env: &str, fail: Fail<'_>) -> Result<(), CdiError> {
    match env.split_once('=') {
        Some((key, _)) if !key.is_empty() => Ok(()),
        _ => Err(fail(format!(
            "invalid environment variable `{env}` (expected KEY=VALUE)"
        ))),
    }
}
