//! The image config: history entries, environment, labels (the project's metadata under
//! `PROJECT_LABEL`), command and healthcheck.

use super::base::Interp;
use super::{PROJECT_LABEL, VENV};
use crate::lockfile::KilnLock;
use crate::manifest::Project;
use kiln_build::exec::CacheEntry;
use kiln_oci::types::{rfc3339, ContainerConfig, History, ImageConfig, RootFs};
use std::collections::BTreeMap;

pub(super) fn history(epoch: i64, by: String) -> History {
    History {
        created: Some(rfc3339(epoch)),
        created_by: Some(by),
        author: None,
        comment: Some("kiln project".into()),
        empty_layer: false,
    }
}

#[allow(clippy::too_many_arguments)]
pub(super) fn image_config(
    p: &Project,
    lock: &KilnLock,
    base: &kiln_store::ImageInfo,
    interp: &Interp,
    epoch: i64,
    layers: &[CacheEntry],
    hist: Vec<History>,
    extra_labels: &BTreeMap<String, String>,
    weights_layer: &BTreeMap<String, String>,
) -> ImageConfig {
    let base_cfg = base.config.config.clone().unwrap_or_default();
    let base_env = base_cfg.env.clone().unwrap_or_default();
    let path = base_env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        .to_string();
    let mut env: Vec<(String, String)> = base_env
        .iter()
        .filter_map(|e| {
            e.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .filter(|(k, _)| k != "PATH")
        .collect();
    let mut set = |k: &str, v: String| {
        env.retain(|(e, _)| e != k);
        env.push((k.to_string(), v));
    };
    set("PATH", format!("{VENV}/bin:{path}"));
    set("VIRTUAL_ENV", VENV.to_string());
    set("PYTHONUNBUFFERED", "1".into());
    set("LANG", "C.UTF-8".into());
    if let Some(name) = p.user.2.as_deref().filter(|n| *n != "root") {
        set("HOME", format!("/home/{name}"));
    }
    for (k, v) in p.env() {
        set(&k, v);
    }
    let mut labels: BTreeMap<String, String> = base_cfg
        .labels
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    labels.insert("org.opencontainers.image.title".into(), p.name.clone());
    if let Some(v) = &p.version {
        labels.insert("org.opencontainers.image.version".into(), v.clone());
    }
    if let Some(d) = &p.manifest.project.description {
        labels.insert("org.opencontainers.image.description".into(), d.clone());
    }
    labels.insert("org.opencontainers.image.created".into(), rfc3339(epoch));
    labels.remove("org.opencontainers.image.base.name");
    labels.insert(
        "org.opencontainers.image.base.name".into(),
        lock.base.image.clone(),
    );
    labels.insert(
        "org.opencontainers.image.base.digest".into(),
        base.descriptor.digest.to_string(),
    );
    for (k, v) in extra_labels {
        labels.insert(k.clone(), v.clone());
    }
    let meta = serde_json::json!({
        "name": p.name,
        "version": p.version,
        "ports": p.ports,
        "resources": {
            "cpus": p.manifest.resources.cpus.map(crate::manifest::Cpus::value),
            "memory_bytes": p.memory_bytes,
            "gpus": p.manifest.resources.gpus,
        },
        "healthcheck": p.health.as_ref().map(|h| serde_json::json!({"path": h.http_path, "test": h.test})),
        "weights": lock.weights.iter().map(|w| serde_json::json!({
            "name": w.name,
            "target": w.target,
            "files": w.files.iter().map(|f| {
                let at = if f.path.is_empty() { w.target.clone() } else { crate::manifest::image_join(&w.target, &f.path) };
                serde_json::json!({"path": at, "size": f.size, "sha256": f.sha256, "layer": weights_layer.get(&at)})
            }).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "writable": p.manifest.app.writable,
        "python": {"version": interp.full, "interpreter": interp.path, "platform": interp.platform, "venv": VENV},
        "lock": lock.digest(),
    });
    labels.insert(
        PROJECT_LABEL.into(),
        serde_json::to_string(&meta).expect("serializes"),
    );
    let mut cfg = ContainerConfig {
        user: Some(format!("{}:{}", p.user.0, p.user.1)),
        env: Some(env.into_iter().map(|(k, v)| format!("{k}={v}")).collect()),
        working_dir: Some(p.workdir.clone()),
        labels: Some(labels.into_iter().collect()),
        ..Default::default()
    };
    if !p.ports.is_empty() {
        cfg.exposed_ports = Some(
            p.ports
                .iter()
                .map(|n| (format!("{n}/tcp"), serde_json::json!({})))
                .collect(),
        );
    }
    match (&p.entrypoint, &p.command) {
        (Some(e), c) => {
            cfg.entrypoint = Some(e.clone());
            cfg.cmd = c.clone();
        }
        (None, Some(c)) => cfg.cmd = Some(c.clone()),
        (None, None) => {
            cfg.entrypoint = base_cfg.entrypoint.clone();
            cfg.cmd = base_cfg
                .cmd
                .clone()
                .or_else(|| Some(vec!["python3".into()]));
        }
    }
    if let Some(h) = &p.health {
        let mut hc = serde_json::json!({ "Test": h.test });
        if let Some(v) = h.interval_ns {
            hc["Interval"] = v.into();
        }
        if let Some(v) = h.timeout_ns {
            hc["Timeout"] = v.into();
        }
        if let Some(v) = h.start_period_ns {
            hc["StartPeriod"] = v.into();
        }
        if let Some(v) = h.retries {
            hc["Retries"] = v.into();
        }
        cfg.extra.insert("Healthcheck".into(), hc);
    }
    ImageConfig {
        created: Some(rfc3339(epoch)),
        author: None,
        architecture: base.config.architecture.clone(),
        os: "linux".into(),
        variant: base.config.variant.clone(),
        config: Some(cfg),
        rootfs: RootFs {
            kind: "layers".into(),
            diff_ids: layers.iter().map(|e| e.diff_id.clone()).collect(),
        },
        history: Some(hist),
        extra: Default::default(),
    }
}
