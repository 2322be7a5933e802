//! Media types kiln reads and writes.

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
pub const OCI_LAYER_NONDIST: &str = "application/vnd.oci.image.layer.nondistributable.v1.tar";
pub const OCI_LAYER_NONDIST_GZIP: &str =
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip";
pub const OCI_LAYER_NONDIST_ZSTD: &str =
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
pub const DOCKER_LAYER_FOREIGN_GZIP: &str =
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";

/// Annotation holding a tag in an OCI layout's index.json.
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";
/// Annotation holding the full image name (containerd and Docker 25+ write it).
pub const ANNOTATION_IMAGE_NAME: &str = "io.containerd.image.name";
/// Creation time annotation.
pub const ANNOTATION_CREATED: &str = "org.opencontainers.image.created";
/// The label in which a kiln project image describes itself (JSON: ports, resources,
/// healthcheck, weights, the kiln.lock digest): written by kiln-project, read by
/// `kiln env` and `kiln deploy`.
pub const LABEL_KILN_PROJECT: &str = "dev.kiln.project";

/// What a descriptor's media type says about the blob it points to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Manifest,
    Index,
    Config,
    Layer,
}

/// Classifies a media type; `None` for types kiln does not know, which callers refuse.
pub fn kind(media_type: &str) -> Option<Kind> {
    Some(match media_type {
        OCI_MANIFEST | DOCKER_MANIFEST => Kind::Manifest,
        OCI_INDEX | DOCKER_MANIFEST_LIST => Kind::Index,
        OCI_CONFIG | DOCKER_CONFIG => Kind::Config,
        OCI_LAYER
        | OCI_LAYER_GZIP
        | OCI_LAYER_ZSTD
        | OCI_LAYER_NONDIST
        | OCI_LAYER_NONDIST_GZIP
        | OCI_LAYER_NONDIST_ZSTD
        | DOCKER_LAYER_GZIP
        | DOCKER_LAYER_FOREIGN_GZIP => Kind::Layer,
        _ => return None,
    })
}

/// The OCI layer media type for a compression suffix (`""`, `"+gzip"`, `"+zstd"`).
pub fn oci_layer(suffix: &str) -> &'static str {
    match suffix {
        "+gzip" => OCI_LAYER_GZIP,
        "+zstd" => OCI_LAYER_ZSTD,
        _ => OCI_LAYER,
    }
}
