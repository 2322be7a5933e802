//! The image as the cluster pulls it: a registry name, by digest, and the objects'
//! default name.

use crate::error::Error;

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

/// The error of an image kiln has no registry name for.
pub fn no_registry_name(image: &str) -> Error {
    Error::new(
        format!("`{image}` has no registry name: Kubernetes pulls images from a registry"),
        format!(
            "push it as you deploy it: `kiln deploy {image} --push registry.example.com/team/name:tag`"
        ),
    )
}
