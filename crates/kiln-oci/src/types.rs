//! Serde types of the OCI image documents (descriptor, manifest, index, config).
//!
//! Written here rather than taken from `oci-spec` because kiln must serialize them
//! byte-for-byte reproducibly: `oci-spec` keeps annotations, labels and volumes in
//! `HashMap`s, whose iteration order changes between processes, so the same image would get
//! a different digest on every run. These types use `BTreeMap` and a fixed field order, and
//! keep unknown fields (`extra`) so documents from other tools survive a round trip.

use crate::digest::Digest;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// Annotations, labels: sorted maps.
pub type StringMap = BTreeMap<String, String>;
/// Fields kiln does not model, kept as they were.
pub type Extra = BTreeMap<String, Value>;

fn is_false(b: &bool) -> bool {
    !*b
}

/// A content descriptor.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// Media type of the blob pointed to, e.g. [`crate::media::OCI_LAYER_GZIP`]; it tells
    /// how to read the blob.
    pub media_type: String,
    /// Digest of the blob's bytes as stored (compressed, for a compressed layer).
    pub digest: Digest,
    /// Size in bytes of the blob as stored; a fetched blob of another size is refused.
    pub size: u64,
    /// Other locations the blob may be downloaded from (foreign and non-distributable layers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urls: Option<Vec<String>>,
    /// Free-form metadata, e.g. the tag ([`crate::media::ANNOTATION_REF_NAME`]) in an OCI
    /// layout's index.json.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<StringMap>,
    /// The platform the image runs on, set on the manifests listed by an index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<PlatformSpec>,
    /// For an artifact manifest (an SBOM, a signature), its type; used by the referrers API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// Members kiln does not model, kept so the descriptor round-trips unchanged.
    #[serde(flatten)]
    pub extra: Extra,
}

impl Descriptor {
    /// A descriptor with no annotations or platform.
    pub fn new(media_type: &str, digest: Digest, size: u64) -> Self {
        Self {
            media_type: media_type.to_string(),
            digest,
            size,
            urls: None,
            annotations: None,
            platform: None,
            artifact_type: None,
            extra: Extra::new(),
        }
    }

    /// One annotation's value.
    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations.as_ref()?.get(key).map(String::as_str)
    }
}

/// The platform object of an index entry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlatformSpec {
    /// CPU architecture in Go's GOARCH naming, e.g. `amd64`.
    pub architecture: String,
    /// Operating system in Go's GOOS naming, e.g. `linux`.
    pub os: String,
    /// Required OS version (`os.version`); used by Windows images.
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_version: Option<String>,
    /// Required OS features (`os.features`); used by Windows images.
    #[serde(
        rename = "os.features",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_features: Option<Vec<String>>,
    /// CPU variant, e.g. `v8` for arm64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// Members kiln does not model, kept so the document round-trips unchanged.
    #[serde(flatten)]
    pub extra: Extra,
}

/// An image manifest (OCI or Docker schema 2, which share this shape).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// Always 2 for the manifests kiln reads and writes.
    pub schema_version: u32,
    /// The manifest's own media type; optional in OCI, always present in Docker schema 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// Set when the manifest describes an artifact (SBOM, signature) rather than an image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// Descriptor of the image configuration blob.
    pub config: Descriptor,
    /// The layers, base first; unpacked in this order to build the root filesystem.
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    /// The manifest this one refers to (an SBOM or signature attached to an image); found
    /// through the referrers API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    /// Free-form metadata about the image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<StringMap>,
    /// Members kiln does not model, kept so the document round-trips unchanged.
    #[serde(flatten)]
    pub extra: Extra,
}

impl Manifest {
    /// An OCI image manifest of a config and layers.
    pub fn oci(config: Descriptor, layers: Vec<Descriptor>) -> Self {
        Self {
            schema_version: 2,
            media_type: Some(crate::media::OCI_MANIFEST.to_string()),
            artifact_type: None,
            config,
            layers,
            subject: None,
            annotations: None,
            extra: Extra::new(),
        }
    }
}

/// An image index (or Docker manifest list); also the shape of an OCI layout's index.json.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    /// Always 2.
    pub schema_version: u32,
    /// The index's own media type; optional in OCI, present in what kiln writes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The manifests listed, typically one per platform or, in index.json, one per tagged
    /// image.
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
    /// Free-form metadata about the index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<StringMap>,
    /// Members kiln does not model, kept so the document round-trips unchanged.
    #[serde(flatten)]
    pub extra: Extra,
}

impl Default for Index {
    fn default() -> Self {
        Self {
            schema_version: 2,
            media_type: Some(crate::media::OCI_INDEX.to_string()),
            manifests: Vec::new(),
            annotations: None,
            extra: Extra::new(),
        }
    }
}

/// The image configuration (OCI image config; Docker's is a superset).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ImageConfig {
    /// When the image was created, as RFC 3339 (see [`rfc3339`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// Who built the image, free-form.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// CPU architecture the image's binaries are for (GOARCH naming, e.g. `amd64`).
    #[serde(default)]
    pub architecture: String,
    /// Operating system the image runs on (GOOS naming, e.g. `linux`).
    #[serde(default)]
    pub os: String,
    /// CPU variant, e.g. `v8` for arm64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// Default execution parameters of containers run from the image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<ContainerConfig>,
    /// The diff IDs of the layers, which tie the config to the uncompressed layer contents.
    pub rootfs: RootFs,
    /// How each layer was made, in layer order; entries with `empty_layer` made no layer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history: Option<Vec<History>>,
    /// Members kiln does not model (Docker's `container_config`, `docker_version`, ...),
    /// kept so the document round-trips unchanged.
    #[serde(flatten)]
    pub extra: Extra,
}

/// The `rootfs` member: the uncompressed digests (diff IDs) of the layers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RootFs {
    /// Always `layers` (the JSON member `type`).
    #[serde(rename = "type")]
    pub kind: String,
    /// Digests of each layer's uncompressed tar, base first.
    #[serde(default)]
    pub diff_ids: Vec<Digest>,
}

/// One `history` entry.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    /// When this step ran, as RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// The command that made this step, e.g. a Dockerfile instruction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    /// Who made this step, free-form.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// A free-form note about the step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// True when the step changed only the config and produced no layer (e.g. `ENV`); such
    /// entries have no matching diff ID.
    #[serde(default, skip_serializing_if = "is_false")]
    pub empty_layer: bool,
}

/// The execution parameters (`config` member), with Docker's capitalized keys.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerConfig {
    /// User (and optional group) the process runs as, by name or number: `user[:group]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Ports the image listens on, keyed `port/proto` (e.g. `8080/tcp`); values are empty
    /// objects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exposed_ports: Option<BTreeMap<String, Value>>,
    /// Environment variables as `KEY=value` strings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<String>>,
    /// Executable and leading arguments of the container's process; `cmd` is appended to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    /// Default arguments: appended to `entrypoint`, or the whole command when there is none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    /// Paths inside the container meant to be mounted as volumes; values are empty objects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volumes: Option<BTreeMap<String, Value>>,
    /// Directory the process starts in; `/` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// Image labels, e.g. [`crate::media::LABEL_KILN_PROJECT`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<StringMap>,
    /// Signal sent to stop the container (e.g. `SIGTERM`, the default when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    /// Members kiln does not model (`Hostname`, `Healthcheck`, ...), kept so the document
    /// round-trips unchanged.
    #[serde(flatten)]
    pub extra: Extra,
}

/// The PATH a container gets when its image sets none (Docker's default).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A Unix time as an image config's `created` writes it: RFC 3339, whole seconds, UTC
/// (`1970-01-01T00:00:00Z`).
pub fn rfc3339(epoch: i64) -> String {
    chrono::DateTime::from_timestamp(epoch, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Serializes a document the way kiln stores it: compact JSON, fields in declaration
/// order, maps sorted. Same value, same bytes.
pub fn to_canonical_json<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("kiln's document types always serialize")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_config_round_trips_unknown_fields() {
        let src = r#"{"architecture":"amd64","config":{"Cmd":["sh"],"Env":null,"Hostname":"","Labels":{"b":"2","a":"1"}},"container_config":{"Cmd":null},"created":"2024-01-01T00:00:00Z","docker_version":"20.10.24","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"]}}"#;
        let c: ImageConfig = serde_json::from_str(src).unwrap();
        assert_eq!(
            c.config.as_ref().unwrap().cmd.as_deref(),
            Some(&["sh".to_string()][..])
        );
        assert!(c.extra.contains_key("docker_version"));
        let again = to_canonical_json(&c);
        let c2: ImageConfig = serde_json::from_slice(&again).unwrap();
        assert_eq!(c, c2);
        assert_eq!(again, to_canonical_json(&c2));
        let text = String::from_utf8(again).unwrap();
        assert!(text.find("\"a\"").unwrap() < text.find("\"b\"").unwrap());
    }
}
