//! The objects themselves: the pod (container, security context, volumes, resources,
//! probes) in a Deployment or a Job, and the Service, HorizontalPodAutoscaler and
//! PodDisruptionBudget around it.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::autoscaling::v2::{
    CrossVersionObjectReference, HorizontalPodAutoscaler, HorizontalPodAutoscalerSpec, MetricSpec,
    MetricTarget, ResourceMetricSource,
};
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, EmptyDirVolumeSource, PodSecurityContext, PodSpec,
    PodTemplateSpec, ResourceRequirements, SeccompProfile, SecurityContext, Service, ServicePort,
    ServiceSpec, Toleration, Volume, VolumeMount,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kiln_oci::ImageConfig;

use crate::error::{Error, Result};
use crate::image::{
    cpu_quantity, exposed_ports, image_user, memory_quantity, project_meta, ImageUser,
};
use crate::options::{Image, Options};
use crate::output::{object, Objects};
use crate::probes::probes;
use crate::validate::{check_options, valid_label_value};

/// The annotation that carries the image's `org.opencontainers.image.revision`.
pub const REVISION_ANNOTATION: &str = "dev.kiln/revision";

/// The GPU resource and toleration key (NVIDIA's device plugin).
pub const GPU_RESOURCE: &str = "nvidia.com/gpu";

/// The default CPU utilization target of the autoscaler, in percent.
pub const DEFAULT_CPU_TARGET: i32 = 80;

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
