//! What the image's config says of the pod: its USER, its exposed ports, and the
//! description a kiln project image carries in a label (ports, resources, health path,
//! writable paths).

use kiln_oci::ImageConfig;

/// The image's `USER` as a pod sees it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ImageUser {
    /// root, or no USER.
    Root,
    /// A numeric user (and group): what `runAsUser`/`runAsGroup` take.
    Numeric(i64, Option<i64>),
    /// A user name (as written), which Kubernetes cannot check against runAsNonRoot.
    Named(String),
}

pub(crate) fn image_user(user: Option<&str>) -> ImageUser {
    let user = user.unwrap_or("").trim();
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    if u.is_empty() || u == "root" || u == "0" {
        return ImageUser::Root;
    }
    let gid = g.map(|g| g.parse::<i64>());
    match (u.parse::<i64>(), gid) {
        (Ok(uid), None) => ImageUser::Numeric(uid, None),
        (Ok(uid), Some(Ok(gid))) => ImageUser::Numeric(uid, Some(gid)),
        _ => ImageUser::Named(user.to_string()),
    }
}

/// The image's exposed ports, `(port, protocol)`, sorted.
pub(crate) fn exposed_ports(config: &ImageConfig) -> Vec<(u16, String)> {
    let mut v: Vec<(u16, String)> = config
        .config
        .as_ref()
        .and_then(|c| c.exposed_ports.as_ref())
        .into_iter()
        .flat_map(|m| m.keys())
        .filter_map(|k| {
            let (p, proto) = k.split_once('/').unwrap_or((k, "tcp"));
            Some((p.parse().ok()?, proto.to_ascii_uppercase()))
        })
        .filter(|(p, proto): &(u16, String)| {
            *p > 0 && (proto == "TCP" || proto == "UDP" || proto == "SCTP")
        })
        .collect();
    v.sort();
    v.dedup();
    v
}

/// The label a kiln project image describes itself with (kiln-project writes it).
pub const PROJECT_LABEL: &str = kiln_oci::media::LABEL_KILN_PROJECT;

/// What a kiln project image says of itself: its ports, resources, HTTP health path and
/// writable paths, the defaults of the objects written for it.
#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(default)]
pub(crate) struct ProjectMeta {
    pub(crate) ports: Vec<u16>,
    pub(crate) resources: ProjectResources,
    pub(crate) healthcheck: Option<ProjectHealth>,
    pub(crate) writable: Vec<String>,
}

#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(default)]
pub(crate) struct ProjectResources {
    pub(crate) cpus: Option<f64>,
    pub(crate) memory_bytes: Option<u64>,
    pub(crate) gpus: u32,
}

#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(default)]
pub(crate) struct ProjectHealth {
    pub(crate) path: Option<String>,
}

pub(crate) fn project_meta(config: &ImageConfig) -> Option<ProjectMeta> {
    let text = config
        .config
        .as_ref()?
        .labels
        .as_ref()?
        .get(PROJECT_LABEL)?;
    serde_json::from_str(text).ok()
}

/// CPUs as a Kubernetes quantity: `2`, `500m`.
pub(crate) fn cpu_quantity(cpus: f64) -> String {
    let milli = (cpus * 1000.0).round() as u64;
    if milli.is_multiple_of(1000) {
        (milli / 1000).to_string()
    } else {
        format!("{milli}m")
    }
}

/// Bytes as a Kubernetes quantity: `1Gi`, `512Mi`, or plain bytes.
pub(crate) fn memory_quantity(bytes: u64) -> String {
    for (unit, size) in [
        ("Ti", 1u64 << 40),
        ("Gi", 1 << 30),
        ("Mi", 1 << 20),
        ("Ki", 1 << 10),
    ] {
        if bytes >= size && bytes.is_multiple_of(size) {
            return format!("{}{unit}", bytes / size);
        }
    }
    bytes.to_string()
}
