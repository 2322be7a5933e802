//! Kubernetes objects for a kiln image: a Deployment (or a Job), a Service, a
//! HorizontalPodAutoscaler and a PodDisruptionBudget, typed with `k8s-openapi` and
//! serialized deterministically (sorted keys, same inputs give the same bytes).
//!
//! What the pod gets comes from the image's config (exposed ports, HEALTHCHECK, USER,
//! VOLUMEs, the OCI revision label) and from [`Options`]. The pod is hardened by default:
//! non-root with the image's numeric uid, no privilege escalation, all capabilities
//! dropped, seccomp `RuntimeDefault`, a read-only root filesystem with an emptyDir at
//! `/tmp` and at each VOLUME, no service account token.
//!
//! This crate does no I/O and talks to no cluster: it returns objects and warnings.

// Libraries report through their progress traits and errors; only the CLI prints.
#![deny(clippy::print_stdout, clippy::print_stderr)]
#![warn(missing_docs)]

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::autoscaling::v2::{
    CrossVersionObjectReference, HorizontalPodAutoscaler, HorizontalPodAutoscalerSpec, MetricSpec,
    MetricTarget, ResourceMetricSource,
};
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, EmptyDirVolumeSource, ExecAction, HTTPGetAction,
    PodSecurityContext, PodSpec, PodTemplateSpec, Probe, ResourceRequirements, SeccompProfile,
    SecurityContext, Service, ServicePort, ServiceSpec, TCPSocketAction, Toleration, Volume,
    VolumeMount,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kiln_oci::ImageConfig;
use std::collections::BTreeMap;

/// The annotation that carries the image's `org.opencontainers.image.revision`.
pub const REVISION_ANNOTATION: &str = "dev.kiln/revision";
/// The GPU resource and toleration key (NVIDIA's device plugin).
pub const GPU_RESOURCE: &str = "nvidia.com/gpu";
/// The startup probe's budget: `STARTUP_FAILURES` × `STARTUP_PERIOD` seconds (10 minutes),
/// for models that take long to load.
pub const STARTUP_FAILURES: i32 = 60;
/// Seconds between two startup probes (the probe's `periodSeconds`).
pub const STARTUP_PERIOD: i32 = 10;
/// The default CPU utilization target of the autoscaler, in percent.
pub const DEFAULT_CPU_TARGET: i32 = 80;

/// A bad input: what is wrong, and what to do about it.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    message: String,
    hint: Option<String>,
}

impl Error {
    fn new(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            hint: Some(hint.into()),
        }
    }

    /// What the user can do about it.
    pub fn hint(&self) -> Option<String> {
        self.hint.clone()
    }
}

/// Result of this crate: the error is a bad option or an image unfit to deploy.
pub type Result<T> = std::result::Result<T, Error>;

/// The image the objects run.
pub struct Image<'a> {
    /// `registry/repository@sha256:...`: what the pods pull.
    pub reference: String,
    /// The tag, for the `app.kubernetes.io/version` label.
    pub version: Option<String>,
    /// The image's configuration: its exposed ports, HEALTHCHECK, USER, VOLUMEs and labels
    /// shape the pod.
    pub config: &'a ImageConfig,
}

/// What the user asked for.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Name of every object and the `app.kubernetes.io/name` label that selects the pods;
    /// an RFC 1123 DNS label.
    pub name: String,
    /// Namespace set on every object; `None` leaves it to `kubectl` (the current context's).
    pub namespace: Option<String>,
    /// Fixed number of pods (for a Job: completions and parallelism); 1 when unset.
    /// Excludes `max`.
    pub replicas: Option<i32>,
    /// Fewest pods the autoscaler keeps (default 1); needs `max`.
    pub min: Option<i32>,
    /// Most pods the autoscaler may run; setting it adds a HorizontalPodAutoscaler.
    pub max: Option<i32>,
    /// Average CPU utilization, in percent of the CPU request, the autoscaler aims at
    /// (default [`DEFAULT_CPU_TARGET`]); needs `max`.
    pub cpu_target: Option<i32>,
    /// GPUs each pod gets as a [`GPU_RESOURCE`] limit, with a toleration for GPU nodes;
    /// else what the kiln project label declares.
    pub gpus: Option<u32>,
    /// Node labels the pods must be scheduled on (`nodeSelector`).
    pub node_selector: BTreeMap<String, String>,
    /// The port to serve (default: the image's exposed ports).
    pub port: Option<u16>,
    /// CPU request and limit as a Kubernetes quantity (`500m`, `2`); else the kiln project
    /// label's.
    pub cpu: Option<String>,
    /// Memory request and limit as a Kubernetes quantity (`512Mi`, `4Gi`); else the kiln
    /// project label's.
    pub memory: Option<String>,
    /// A Job instead of a Deployment and a Service.
    pub job: bool,
    /// Allow an image that runs as root (no runAsNonRoot).
    pub allow_root: bool,
    /// A Service is required: an image without a port is an error (else a Service is
    /// written when there is a port).
    pub service: bool,
}

/// One object, as the JSON value it serializes to (keys sorted).
#[derive(Clone, Debug, PartialEq)]
pub struct Object {
    /// `Deployment`, `Service`, ...
    pub kind: &'static str,
    /// The object's `metadata.name` ([`Options::name`]).
    pub name: String,
    /// The whole object as the JSON value it serializes to, keys sorted.
    pub value: serde_json::Value,
}

/// The objects and what the user should know about them.
#[derive(Clone, Debug, Default)]
pub struct Objects {
    /// The objects generated, in this order where present: Deployment (or Job), Service,
    /// HorizontalPodAutoscaler, PodDisruptionBudget.
    pub objects: Vec<Object>,
    /// Things the user should know that do not stop the deployment, e.g. pods without probes.
    pub warnings: Vec<String>,
}

/// Checks that `s` is an RFC 1123 DNS label (what Kubernetes requires of names), and
/// that it starts with a letter (RFC 1035, required of a Service's name); the error names
/// the rule broken.
pub fn validate_name(what: &str, s: &str) -> Result<()> {
    let rule = |r: &str| {
        Err(Error::new(
            format!("invalid {what} `{s}`: {r}"),
            "Kubernetes names are RFC 1123 DNS labels: at most 63 lowercase letters, digits and \
             '-', starting with a letter and ending with a letter or digit, e.g. `iris-v2`",
        ))
    };
    if s.is_empty() {
        return rule("a name must not be empty");
    }
    if s.len() > 63 {
        return rule(&format!(
            "a name must be at most 63 characters (it has {})",
            s.len()
        ));
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return rule(&format!(
            "a name may contain only lowercase letters, digits and '-' (found `{c}`)"
        ));
    }
    if !s.starts_with(|c: char| c.is_ascii_lowercase()) {
        return rule("a name must start with a lowercase letter");
    }
    if s.ends_with('-') {
        return rule("a name must end with a letter or a digit");
    }
    Ok(())
}

/// A label value: at most 63 of `[A-Za-z0-9_.-]`, alphanumeric at both ends.
fn valid_label_value(s: &str) -> bool {
    let b = s.as_bytes();
    s.len() <= 63
        && (b.is_empty()
            || (b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter()
                    .all(|c| c.is_ascii_alphanumeric() || b"-_.".contains(c))))
}

/// A label key: `[prefix/]name`, the name a label value that is not empty.
fn valid_label_key(s: &str) -> bool {
    let (prefix, name) = match s.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, s),
    };
    !name.is_empty()
        && valid_label_value(name)
        && prefix.is_none_or(|p| {
            !p.is_empty()
                && p.len() <= 253
                && p.split('.').all(|l| {
                    !l.is_empty()
                        && l.len() <= 63
                        && l.bytes()
                            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
                        && !l.starts_with('-')
                        && !l.ends_with('-')
                })
        })
}

/// A resource quantity as users write them: `500m`, `2`, `1.5`, `512Mi`, `4G`.
fn valid_quantity(s: &str) -> bool {
    const SUFFIXES: &[&str] = &[
        "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "m", "k", "M", "G", "T", "P", "E", "",
    ];
    SUFFIXES.iter().any(|suf| {
        s.strip_suffix(suf).is_some_and(|n| {
            let (int, frac) = n.split_once('.').unwrap_or((n, "0"));
            !int.is_empty()
                && int.bytes().all(|c| c.is_ascii_digit())
                && !frac.is_empty()
                && frac.bytes().all(|c| c.is_ascii_digit())
                && n.bytes().any(|c| c != b'0' && c != b'.')
        })
    })
}

/// Parses `K=V` for `--node-selector`.
pub fn parse_node_selector(s: &str) -> Result<(String, String)> {
    let hint =
        "give a node label as KEY=VALUE, e.g. `nvidia.com/gpu.product=NVIDIA-H100-80GB-HBM3`";
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| Error::new(format!("invalid node selector `{s}`: no `=`"), hint))?;
    if !valid_label_key(k) {
        return Err(Error::new(
            format!("invalid node selector `{s}`: `{k}` is not a label key"),
            hint,
        ));
    }
    if !valid_label_value(v) {
        return Err(Error::new(
            format!("invalid node selector `{s}`: `{v}` is not a label value (at most 63 of letters, digits, '-', '_', '.', alphanumeric at both ends)"),
            hint,
        ));
    }
    Ok((k.to_string(), v.to_string()))
}

/// The image's `USER` as a pod sees it.
#[derive(Debug, PartialEq, Eq)]
enum ImageUser {
    /// root, or no USER.
    Root,
    /// A numeric user (and group): what `runAsUser`/`runAsGroup` take.
    Numeric(i64, Option<i64>),
    /// A user name (as written), which Kubernetes cannot check against runAsNonRoot.
    Named(String),
}

fn image_user(user: Option<&str>) -> ImageUser {
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
fn exposed_ports(config: &ImageConfig) -> Vec<(u16, String)> {
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

/// Seconds from a Docker duration in nanoseconds, rounded up, at least 1.
fn seconds(ns: Option<&serde_json::Value>) -> Option<i32> {
    let ns = ns?.as_u64().filter(|n| *n > 0)?;
    Some(ns.div_ceil(1_000_000_000).clamp(1, i32::MAX as u64) as i32)
}

/// `http://localhost:PORT/PATH` in a curl or wget command: (port, path).
fn http_check(words: &[String]) -> Option<(i32, String)> {
    let program = words.first()?.rsplit('/').next()?;
    if program != "curl" && program != "wget" {
        return None;
    }
    words.iter().skip(1).find_map(|w| {
        let w = w.trim_matches(|c| c == '"' || c == '\'');
        let rest = w.strip_prefix("http://")?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) => (h, p.parse::<u16>().ok().filter(|p| *p > 0)?),
            None => (authority, 80),
        };
        matches!(host, "localhost" | "127.0.0.1" | "[::1]" | "0.0.0.0")
            .then(|| (i32::from(port), path.to_string()))
    })
}

/// The label a kiln project image describes itself with (kiln-project writes it).
pub const PROJECT_LABEL: &str = kiln_oci::media::LABEL_KILN_PROJECT;

/// What a kiln project image says of itself: its ports, resources, HTTP health path and
/// writable paths, the defaults of the objects written for it.
#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(default)]
struct ProjectMeta {
    ports: Vec<u16>,
    resources: ProjectResources,
    healthcheck: Option<ProjectHealth>,
    writable: Vec<String>,
}

#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(default)]
struct ProjectResources {
    cpus: Option<f64>,
    memory_bytes: Option<u64>,
    gpus: u32,
}

#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(default)]
struct ProjectHealth {
    path: Option<String>,
}

fn project_meta(config: &ImageConfig) -> Option<ProjectMeta> {
    let text = config
        .config
        .as_ref()?
        .labels
        .as_ref()?
        .get(PROJECT_LABEL)?;
    serde_json::from_str(text).ok()
}

/// CPUs as a Kubernetes quantity: `2`, `500m`.
fn cpu_quantity(cpus: f64) -> String {
    let milli = (cpus * 1000.0).round() as u64;
    if milli.is_multiple_of(1000) {
        (milli / 1000).to_string()
    } else {
        format!("{milli}m")
    }
}

/// Bytes as a Kubernetes quantity: `1Gi`, `512Mi`, or plain bytes.
fn memory_quantity(bytes: u64) -> String {
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

/// The probe handler and timing from the image's HEALTHCHECK, if it has one.
fn healthcheck_probe(config: &ImageConfig) -> Option<Probe> {
    let hc = config.config.as_ref()?.extra.get("Healthcheck")?;
    let test: Vec<String> = hc
        .get("Test")?
        .as_array()?
        .iter()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    let (command, words): (Vec<String>, Vec<String>) = match test.first()?.as_str() {
        "CMD" if test.len() > 1 => (test[1..].to_vec(), test[1..].to_vec()),
        "CMD-SHELL" if test.len() > 1 => {
            let script = test[1..].join(" ");
            let words = script.split_whitespace().map(str::to_string).collect();
            (vec!["/bin/sh".into(), "-c".into(), script], words)
        }
        _ => return None,
    };
    // A kiln project's HTTP check is a python3 one-liner; its label names the path.
    let project_http = project_meta(config).and_then(|m| {
        let path = m.healthcheck?.path?;
        let port = *m.ports.first()?;
        Some((i32::from(port), path))
    });
    let mut probe = match project_http.or_else(|| http_check(&words)) {
        Some((port, path)) => Probe {
            http_get: Some(HTTPGetAction {
                path: Some(path),
                port: IntOrString::Int(port),
                ..Default::default()
            }),
            ..Default::default()
        },
        None => Probe {
            exec: Some(ExecAction {
                command: Some(command),
            }),
            ..Default::default()
        },
    };
    probe.period_seconds = Some(seconds(hc.get("Interval")).unwrap_or(10));
    probe.timeout_seconds = Some(seconds(hc.get("Timeout")).unwrap_or(5));
    probe.failure_threshold = Some(
        hc.get("Retries")
            .and_then(|r| r.as_i64())
            .filter(|r| *r > 0)
            .map_or(3, |r| r.min(i32::MAX as i64) as i32),
    );
    Some(probe)
}

/// Readiness, liveness and startup probes.
fn probes(config: &ImageConfig, port: Option<i32>) -> Option<(Probe, Probe, Probe)> {
    let base = healthcheck_probe(config).or_else(|| {
        port.map(|p| Probe {
            tcp_socket: Some(TCPSocketAction {
                port: IntOrString::Int(p),
                ..Default::default()
            }),
            period_seconds: Some(10),
            timeout_seconds: Some(5),
            failure_threshold: Some(3),
            ..Default::default()
        })
    })?;
    let startup = Probe {
        period_seconds: Some(STARTUP_PERIOD),
        failure_threshold: Some(STARTUP_FAILURES),
        ..base.clone()
    };
    Some((base.clone(), base, startup))
}

fn check_options(opts: &Options) -> Result<()> {
    validate_name("name", &opts.name)?;
    if let Some(ns) = &opts.namespace {
        validate_name("namespace", ns)?;
    }
    let positive = |flag: &str, v: Option<i32>, least: i32| match v {
        Some(n) if n < least => Err(Error::new(
            format!("{flag} {n}: must be at least {least}"),
            format!("give {flag} a number of at least {least}"),
        )),
        _ => Ok(()),
    };
    positive("--replicas", opts.replicas, 0)?;
    positive("--min", opts.min, 1)?;
    positive("--max", opts.max, 1)?;
    positive("--cpu-target", opts.cpu_target, 1)?;
    if let (Some(min), Some(max)) = (opts.min, opts.max) {
        if min > max {
            return Err(Error::new(
                format!("--min {min} is above --max {max}"),
                "the autoscaler needs --min at most --max, e.g. `--min 2 --max 10`",
            ));
        }
    }
    if opts.max.is_none() && (opts.min.is_some() || opts.cpu_target.is_some()) {
        let flag = if opts.min.is_some() {
            "--min"
        } else {
            "--cpu-target"
        };
        return Err(Error::new(
            format!("{flag} needs --max: they configure the autoscaler"),
            "add `--max N`, or give a fixed number of pods with `--replicas N`",
        ));
    }
    if opts.max.is_some() && opts.replicas.is_some() {
        return Err(Error::new(
            "--replicas and --max both set the number of pods",
            "use `--replicas N` for a fixed number, or `--min N --max M` to autoscale",
        ));
    }
    if opts.job && (opts.max.is_some() || opts.min.is_some()) {
        return Err(Error::new(
            "--job cannot autoscale: a Job runs to completion, an autoscaler scales a Deployment",
            "drop --min/--max/--cpu-target, or drop --job to serve",
        ));
    }
    for (flag, q) in [("--cpu", &opts.cpu), ("--memory", &opts.memory)] {
        if let Some(q) = q {
            if !valid_quantity(q) {
                return Err(Error::new(
                    format!("invalid {flag} `{q}`: not a Kubernetes quantity"),
                    "quantities look like `500m` or `2` (CPUs), `512Mi` or `4Gi` (memory)",
                ));
            }
        }
    }
    if opts.gpus == Some(0) {
        return Err(Error::new(
            "--gpus 0: give at least one GPU",
            "drop --gpus for a pod without GPUs",
        ));
    }
    Ok(())
}

/// Sorts the keys of every object in `v`, so the output does not depend on how
/// serde_json keeps maps.
fn sorted(v: serde_json::Value) -> serde_json::Value {
    match v {
        serde_json::Value::Object(m) => {
            let b: BTreeMap<String, serde_json::Value> =
                m.into_iter().map(|(k, v)| (k, sorted(v))).collect();
            serde_json::Value::Object(b.into_iter().collect())
        }
        serde_json::Value::Array(a) => {
            serde_json::Value::Array(a.into_iter().map(sorted).collect())
        }
        v => v,
    }
}

fn object<T: serde::Serialize>(kind: &'static str, name: &str, o: &T) -> Object {
    Object {
        kind,
        name: name.to_string(),
        value: sorted(serde_json::to_value(o).expect("k8s-openapi objects serialize")),
    }
}

/// The objects for `image` as `opts` asks.
pub fn generate(image: &Image, opts: &Options) -> Result<Objects> {
    check_options(opts)?;
    let config = image.config;
    let mut warnings = Vec::new();
    let name = opts.name.as_str();

    // Labels: the selector is the name only, which never changes across versions.
    let selector: BTreeMap<String, String> =
        [("app.kubernetes.io/name".to_string(), name.to_string())].into();
    let mut labels = selector.clone();
    labels.insert("app.kubernetes.io/managed-by".into(), "kiln".into());
    if let Some(v) = &image.version {
        if valid_label_value(v) {
            labels.insert("app.kubernetes.io/version".into(), v.clone());
        } else {
            warnings.push(format!(
                "the tag `{v}` is not a valid label value: no app.kubernetes.io/version label"
            ));
        }
    }
    let image_labels = config.config.as_ref().and_then(|c| c.labels.as_ref());
    let annotations: Option<BTreeMap<String, String>> = image_labels
        .and_then(|l| l.get("org.opencontainers.image.revision"))
        .filter(|r| !r.is_empty())
        .map(|r| [(REVISION_ANNOTATION.to_string(), r.clone())].into());
    let meta = |n: &str| ObjectMeta {
        name: Some(n.to_string()),
        namespace: opts.namespace.clone(),
        labels: Some(labels.clone()),
        annotations: annotations.clone(),
        ..Default::default()
    };

    // Ports.
    let ports: Vec<(u16, String)> = match opts.port {
        Some(p) if p > 0 => vec![(p, "TCP".to_string())],
        Some(_) => {
            return Err(Error::new(
                "--port 0: not a port",
                "give a port from 1 to 65535",
            ));
        }
        None => exposed_ports(config),
    };
    if ports.is_empty() && opts.service && !opts.job {
        return Err(Error::new(
            "a Service was asked for, and the image exposes no port",
            "declare the port the app listens on: `ports = [8000]` in kiln.toml's [app] (EXPOSE in a Dockerfile), or pass --port",
        ));
    }
    let primary = ports
        .iter()
        .find(|(_, proto)| proto == "TCP")
        .map(|(p, _)| i32::from(*p));

    // The user.
    let user = config.config.as_ref().and_then(|c| c.user.as_deref());
    let (run_as_user, run_as_group) = match image_user(user) {
        ImageUser::Numeric(uid, gid) => (Some(uid), gid),
        ImageUser::Root if opts.allow_root => {
            warnings
                .push("the image runs as root: the pod is not runAsNonRoot (--allow-root)".into());
            (None, None)
        }
        ImageUser::Root => {
            return Err(Error::new(
                "the image runs as root: its pods would be refused by a restricted namespace",
                "build it with a numeric non-root user (`USER 1000` in the Dockerfile), or pass `--allow-root`",
            ));
        }
        ImageUser::Named(u) if opts.allow_root => {
            warnings.push(format!(
                "the image's USER `{u}` is not numeric: the pod is not runAsNonRoot (--allow-root)"
            ));
            (None, None)
        }
        ImageUser::Named(u) => {
            return Err(Error::new(
                format!("the image's USER `{u}` is not numeric: Kubernetes cannot check that it is not root"),
                "build it with a numeric user (`USER 1000` or `USER 1000:1000`), or pass `--allow-root`",
            ));
        }
    };
    let non_root = run_as_user.is_some();

    let project = project_meta(config).unwrap_or_default();
    // Writable paths: /tmp, the image's VOLUMEs and a project's `writable`, each an emptyDir.
    let mut writable: Vec<String> = vec!["/tmp".into()];
    for v in &project.writable {
        let v = v.trim_end_matches('/');
        if v.starts_with('/') && v.len() > 1 && !writable.iter().any(|w| w == v) {
            writable.push(v.to_string());
        }
    }
    if let Some(vols) = config.config.as_ref().and_then(|c| c.volumes.as_ref()) {
        for v in vols.keys() {
            let v = v.trim_end_matches('/');
            if !v.is_empty() && !writable.iter().any(|w| w == v) {
                writable.push(v.to_string());
            }
        }
    }
    let (volumes, mounts): (Vec<Volume>, Vec<VolumeMount>) = writable
        .iter()
        .enumerate()
        .map(|(i, path)| {
            let vname = if i == 0 {
                "tmp".to_string()
            } else {
                format!("volume-{i}")
            };
            (
                Volume {
                    name: vname.clone(),
                    empty_dir: Some(EmptyDirVolumeSource::default()),
                    ..Default::default()
                },
                VolumeMount {
                    name: vname,
                    mount_path: path.clone(),
                    ..Default::default()
                },
            )
        })
        .unzip();

    // Resources: the options, else what a kiln project declares.
    let mut requests = BTreeMap::new();
    let mut limits = BTreeMap::new();
    let cpu = opts.cpu.clone().or_else(|| {
        project
            .resources
            .cpus
            .filter(|c| *c > 0.0)
            .map(cpu_quantity)
    });
    let memory = opts.memory.clone().or_else(|| {
        project
            .resources
            .memory_bytes
            .filter(|m| *m > 0)
            .map(memory_quantity)
    });
    for (key, q) in [("cpu", &cpu), ("memory", &memory)] {
        if let Some(q) = q {
            requests.insert(key.to_string(), Quantity(q.clone()));
            limits.insert(key.to_string(), Quantity(q.clone()));
        }
    }
    let gpus = opts
        .gpus
        .or((project.resources.gpus > 0).then_some(project.resources.gpus));
    if let Some(n) = gpus {
        limits.insert(GPU_RESOURCE.to_string(), Quantity(n.to_string()));
    }
    let resources = (!requests.is_empty() || !limits.is_empty()).then(|| ResourceRequirements {
        requests: (!requests.is_empty()).then_some(requests),
        limits: (!limits.is_empty()).then_some(limits),
        ..Default::default()
    });

    let probes = if opts.job {
        None
    } else {
        probes(config, primary)
    };
    if !opts.job && probes.is_none() {
        warnings.push("the image has no HEALTHCHECK and no port: the pods have no probes".into());
    }
    let (readiness, liveness, startup) = match probes {
        Some((r, l, s)) => (Some(r), Some(l), Some(s)),
        None => (None, None, None),
    };

    let container = Container {
        name: name.to_string(),
        image: Some(image.reference.clone()),
        image_pull_policy: Some("IfNotPresent".into()),
        ports: (!ports.is_empty()).then(|| {
            ports
                .iter()
                .map(|(p, proto)| ContainerPort {
                    container_port: i32::from(*p),
                    name: Some(port_name(*p, proto)),
                    protocol: Some(proto.clone()),
                    ..Default::default()
                })
                .collect()
        }),
        resources,
        readiness_probe: readiness,
        liveness_probe: liveness,
        startup_probe: startup,
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            privileged: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_non_root: non_root.then_some(true),
            run_as_user,
            run_as_group,
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".into()]),
                ..Default::default()
            }),
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        volume_mounts: Some(mounts),
        ..Default::default()
    };
    let pod = PodSpec {
        containers: vec![container],
        automount_service_account_token: Some(false),
        restart_policy: opts.job.then(|| "Never".to_string()),
        security_context: Some(PodSecurityContext {
            run_as_non_root: non_root.then_some(true),
            run_as_user,
            run_as_group,
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        node_selector: (!opts.node_selector.is_empty()).then(|| opts.node_selector.clone()),
        tolerations: gpus.map(|_| {
            vec![Toleration {
                key: Some(GPU_RESOURCE.into()),
                operator: Some("Exists".into()),
                effect: Some("NoSchedule".into()),
                ..Default::default()
            }]
        }),
        volumes: Some(volumes),
        ..Default::default()
    };
    let template = PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(labels.clone()),
            annotations: annotations.clone(),
            ..Default::default()
        }),
        spec: Some(pod),
    };

    let mut objects = Vec::new();
    if opts.job {
        let n = opts.replicas.unwrap_or(1);
        let job = Job {
            metadata: meta(name),
            spec: Some(JobSpec {
                template,
                backoff_limit: Some(3),
                completions: Some(n),
                parallelism: Some(n),
                ..Default::default()
            }),
            ..Default::default()
        };
        objects.push(object("Job", name, &job));
        return Ok(Objects { objects, warnings });
    }

    let replicas = opts.replicas.or(opts.min).unwrap_or(1);
    let deployment = Deployment {
        metadata: meta(name),
        spec: Some(DeploymentSpec {
            // With an autoscaler, the autoscaler owns the number of pods: a re-apply
            // must not reset it.
            replicas: opts.max.is_none().then_some(replicas),
            selector: LabelSelector {
                match_labels: Some(selector.clone()),
                ..Default::default()
            },
            template,
            ..Default::default()
        }),
        ..Default::default()
    };
    objects.push(object("Deployment", name, &deployment));

    if !ports.is_empty() {
        let service = Service {
            metadata: meta(name),
            spec: Some(ServiceSpec {
                type_: Some("ClusterIP".into()),
                selector: Some(selector.clone()),
                ports: Some(
                    ports
                        .iter()
                        .map(|(p, proto)| ServicePort {
                            name: Some(port_name(*p, proto)),
                            port: i32::from(*p),
                            protocol: Some(proto.clone()),
                            target_port: Some(IntOrString::String(port_name(*p, proto))),
                            ..Default::default()
                        })
                        .collect(),
                ),
                ..Default::default()
            }),
            ..Default::default()
        };
        objects.push(object("Service", name, &service));
    }

    if let Some(max) = opts.max {
        if opts.cpu.is_none() {
            warnings.push(
                "--max without --cpu: the autoscaler measures CPU against the pods' CPU request"
                    .into(),
            );
        }
        let hpa = HorizontalPodAutoscaler {
            metadata: meta(name),
            spec: Some(HorizontalPodAutoscalerSpec {
                scale_target_ref: CrossVersionObjectReference {
                    api_version: Some("apps/v1".into()),
                    kind: "Deployment".into(),
                    name: name.to_string(),
                },
                min_replicas: Some(opts.min.unwrap_or(1)),
                max_replicas: max,
                metrics: Some(vec![MetricSpec {
                    type_: "Resource".into(),
                    resource: Some(ResourceMetricSource {
                        name: "cpu".into(),
                        target: MetricTarget {
                            type_: "Utilization".into(),
                            average_utilization: Some(
                                opts.cpu_target.unwrap_or(DEFAULT_CPU_TARGET),
                            ),
                            ..Default::default()
                        },
                    }),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        };
        objects.push(object("HorizontalPodAutoscaler", name, &hpa));
    }

    if opts.min.unwrap_or(replicas) > 1 {
        let pdb = PodDisruptionBudget {
            metadata: meta(name),
            spec: Some(PodDisruptionBudgetSpec {
                max_unavailable: Some(IntOrString::Int(1)),
                selector: Some(LabelSelector {
                    match_labels: Some(selector.clone()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        objects.push(object("PodDisruptionBudget", name, &pdb));
    }
    Ok(Objects { objects, warnings })
}

/// A port's name (at most 15 characters): `tcp-8000`.
fn port_name(port: u16, proto: &str) -> String {
    format!("{}-{port}", proto.to_ascii_lowercase())
}

/// The objects as YAML documents separated by `---`.
pub fn to_yaml(objects: &[Object]) -> String {
    objects
        .iter()
        .map(|o| serde_yaml::to_string(&o.value).expect("JSON values serialize as YAML"))
        .collect::<Vec<_>>()
        .join("---\n")
}

/// The objects as one JSON `List`.
pub fn to_json(objects: &[Object]) -> String {
    let list = serde_json::json!({
        "apiVersion": "v1",
        "kind": "List",
        "items": objects.iter().map(|o| o.value.clone()).collect::<Vec<_>>(),
    });
    let mut s = serde_json::to_string_pretty(&sorted(list)).expect("JSON values serialize");
    s.push('\n');
    s
}

/// What the cluster pulls: a registry name of the image, by digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pullable {
    /// `registry/repository@sha256:...`
    pub reference: String,
    /// Repository path inside the registry (`library/iris`); its last part is the default
    /// object name.
    pub repository: String,
    /// The tag the user named, if any, for the `app.kubernetes.io/version` label.
    pub tag: Option<String>,
}

impl Pullable {
    /// The manifest `digest` in the repository of `name`.
    pub fn new(name: &kiln_oci::Reference, digest: &str) -> Self {
        Pullable {
            reference: format!("{}@{digest}", name.full_name()),
            repository: name.repository().to_string(),
            tag: name.tag().map(str::to_string),
        }
    }
}

/// A name in a registry: not one kiln made up for a local image (`docker.io/library/x`
/// for `x:v1`), which no registry serves unless it was pulled from there.
pub fn registry_name(familiar: &str) -> Option<kiln_oci::Reference> {
    let r = kiln_oci::Reference::parse(familiar).ok()?;
    let first = familiar.split('/').next().unwrap_or("");
    let explicit = familiar.contains('/')
        && (first.contains('.') || first.contains(':') || first == "localhost");
    explicit.then_some(r)
}

/// The objects' name: `name` when given, else the last part of the repository.
pub fn default_name(name: Option<&str>, repository: &str) -> String {
    name.map(str::to_string).unwrap_or_else(|| {
        repository
            .rsplit('/')
            .next()
            .unwrap_or(repository)
            .to_string()
    })
}

/// Generates once with a placeholder digest, so that bad options fail before a push.
pub fn check(config: &ImageConfig, opts: &Options) -> Result<()> {
    generate(
        &Image {
            reference: String::new(),
            version: None,
            config,
        },
        opts,
    )
    .map(|_| ())
}

/// The error of an image kiln has no registry name for.
pub fn no_registry_name(image: &str) -> Error {
    Error::new(
        format!("`{image}` has no registry name: Kubernetes pulls images from a registry"),
        format!(
            "push it as you deploy it: `kiln deploy {image} --push registry.example.com/team/name:tag`"
        ),
    )
}

#[cfg(test)]
mod tests;
