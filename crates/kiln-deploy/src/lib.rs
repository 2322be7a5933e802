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

mod error;
mod generate;
mod image;
mod options;
mod output;
mod probes;
mod registry;
mod validate;

pub use error::{Error, Result};
pub use generate::{check, generate, DEFAULT_CPU_TARGET, GPU_RESOURCE, REVISION_ANNOTATION};
pub use image::PROJECT_LABEL;
pub use options::{Image, Options};
pub use output::{to_json, to_yaml, Object, Objects};
pub use probes::{STARTUP_FAILURES, STARTUP_PERIOD};
pub use registry::{default_name, no_registry_name, registry_name, Pullable};
pub use validate::{parse_node_selector, validate_name};

#[cfg(test)]
mod tests;
