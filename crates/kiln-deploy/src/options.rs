//! What the objects are made from: the image and the user's options.

use std::collections::BTreeMap;

use kiln_oci::ImageConfig;

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
    ///
    /// [`DEFAULT_CPU_TARGET`]: crate::DEFAULT_CPU_TARGET
    pub cpu_target: Option<i32>,
    /// GPUs each pod gets as a [`GPU_RESOURCE`] limit, with a toleration for GPU nodes;
    /// else what the kiln project label declares.
    ///
    /// [`GPU_RESOURCE`]: crate::GPU_RESOURCE
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
