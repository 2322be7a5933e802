//! Registry errors. Each names the registry, repository or digest it is about, and
//! carries no HTTP dump: a user reads "not found", not a stack of status lines.

use std::path::PathBuf;

/// Errors of registry operations.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// No answer came: the host does not resolve, the connection or TLS handshake
    /// failed, or it kept dropping after every retry.
    #[error("cannot reach registry {registry}: {reason}")]
    Unreachable {
        /// Registry host (and port) as written in the reference, e.g. `ghcr.io`.
        registry: String,
        /// What failed, with the transport's chain of causes (no full URL).
        reason: String,
    },
    /// The registry answered 401: no credentials were found for a Basic challenge, or
    /// the ones sent (or the token service) were refused.
    #[error("{registry}: authentication required or refused (401 unauthorized){detail}")]
    Unauthorized {
        /// Registry host (and port) that refused.
        registry: String,
        /// The registry's own `errors` messages as ` (CODE: message; ...)`, or empty.
        detail: String,
    },
    /// The registry answered 403: the account is known but lacks rights on the
    /// repository.
    #[error("{registry}: access to {repository} denied (403 forbidden)")]
    Denied {
        /// Registry host (and port) that refused.
        registry: String,
        /// Repository path within the registry, e.g. `library/debian`.
        repository: String,
    },
    /// The registry answered 404 for a manifest, blob or tag, or no mirror had the
    /// reference.
    #[error("{what} not found")]
    NotFound {
        /// What was asked for, e.g. `manifest docker.io/library/debian:12`.
        what: String,
    },
    /// Bytes received from (or accepted by) the registry do not hash to the digest
    /// that named them.
    #[error("blob {digest} from {registry} has the wrong content: its bytes hash to {actual}")]
    DigestMismatch {
        /// Registry host (and port) the bytes came from or went to.
        registry: String,
        /// The digest expected (`sha256:...`), from the manifest or the request.
        digest: String,
        /// The digest the bytes actually have.
        actual: String,
    },
    /// The registry answered a status other than 401, 403 or 404 that the operation
    /// cannot use (after the retries for 429 and 5xx).
    #[error("{registry}: {method} {path} answered {status}{message}")]
    Http {
        /// Registry host (and port) that answered.
        registry: String,
        /// HTTP method of the failed request (`GET`, `PUT`, ...).
        method: String,
        /// URL path of the request (no query, so no upload state tokens).
        path: String,
        /// HTTP status code of the answer.
        status: u16,
        /// The registry's own `errors` messages as ` (CODE: message; ...)`, or empty.
        message: String,
    },
    /// The registry (or its token service) broke the distribution spec: a missing
    /// `Location`, a manifest that is not JSON, a bad token answer, an unknown media
    /// type, a lost upload.
    #[error("{registry}: {reason}")]
    Protocol {
        /// Registry host (and port) that misbehaved.
        registry: String,
        /// What was wrong with its answer.
        reason: String,
    },
    /// An image index holds no manifest for the platform wanted.
    #[error("no manifest for platform {platform} in {reference} (it has: {available})")]
    NoPlatform {
        /// The reference pulled, fully qualified.
        reference: String,
        /// The platform wanted, e.g. `linux/arm64/v8`.
        platform: String,
        /// The platforms the index offers, comma-separated.
        available: String,
    },
    /// A credential file or helper, or the kiln config file, could not be read, parsed
    /// or written.
    #[error("credentials: {path}: {reason}")]
    Credentials {
        /// The file at fault (for a failing `docker-credential-NAME` helper, the config
        /// file that names it).
        path: PathBuf,
        /// What went wrong with it.
        reason: String,
    },
    /// The local store failed while reading or writing blobs, index or snapshots.
    #[error(transparent)]
    Store(#[from] kiln_store::StoreError),
    /// An OCI document (manifest, index, config) or reference was invalid.
    #[error(transparent)]
    Oci(#[from] kiln_oci::OciError),
}

impl RegistryError {
    /// A suggestion for the user, when there is a likely fix.
    pub fn hint(&self) -> Option<String> {
        match self {
            RegistryError::Unauthorized { registry, .. } => Some(format!(
                "log in with `kiln login {registry}`, or check the credentials stored for it"
            )),
            RegistryError::Denied { .. } => {
                Some("the account may lack push or pull rights on this repository".into())
            }
            RegistryError::Unreachable { registry, reason }
                if reason.contains("certificate") || reason.contains("tls") =>
            {
                Some(format!(
                    "for a registry without a valid TLS certificate, pass --tls-verify=false or add {registry} to insecure-registries in the kiln config"
                ))
            }
            RegistryError::Unreachable { .. } => {
                Some("check the registry's name and port, and that it is up".into())
            }
            RegistryError::NotFound { .. } => {
                Some("check the repository name and tag (`skopeo list-tags` shows tags)".into())
            }
            _ => None,
        }
    }
}

/// Result of this crate.
pub type Result<T> = std::result::Result<T, RegistryError>;
