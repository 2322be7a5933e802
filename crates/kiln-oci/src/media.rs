//! Media types kiln reads and writes.

/// OCI image manifest: one image's config and layers.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index: a list of manifests, usually one per platform.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image configuration blob (execution parameters, diff IDs, history).
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// OCI layer as an uncompressed tar.
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
/// OCI layer as a gzip-compressed tar.
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// OCI layer as a zstd-compressed tar.
pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
/// OCI layer that must not be pushed to other registries (deprecated in the spec),
/// uncompressed tar.
pub const OCI_LAYER_NONDIST: &str = "application/vnd.oci.image.layer.nondistributable.v1.tar";
/// Non-distributable OCI layer, gzip-compressed tar.
pub const OCI_LAYER_NONDIST_GZIP: &str =
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip";
/// Non-distributable OCI layer, zstd-compressed tar.
pub const OCI_LAYER_NONDIST_ZSTD: &str =
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd";
/// Docker image manifest, schema 2 (same shape as the OCI manifest).
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list: Docker's multi-platform counterpart of the OCI index.
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker image configuration blob (a superset of the OCI config).
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// Docker layer as a gzip-compressed tar (Docker layers are always gzipped).
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// Docker "foreign" layer (e.g. a Windows base layer) fetched from the descriptor's `urls`,
/// gzip-compressed tar.
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
    /// An image manifest (OCI or Docker schema 2).
    Manifest,
    /// An index of manifests (OCI index or Docker manifest list).
    Index,
    /// An image configuration blob.
    Config,
    /// A filesystem layer tar, compressed or not.
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
