//! Registry errors. Each names the registry, repository or digest it is about, and
//! carries no HTTP dump: a user reads "not found", not a stack of status lines.

use std::path::PathBuf;

/// Errors of registry operations.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("cannot reach registry {registry}: {reason}")]
    Unreachable { registry: String, reason: String },
    #[error("{registry}: authentication required or refused (401 unauthorized){detail}")]
    Unauthorized { registry: String, detail: String },
    #[error("{registry}: access to {repository} denied (403 forbidden)")]
    Denied {
        registry: String,
        repository: String,
    },
    #[error("{what} not found")]
    NotFound { what: String },
    #[error("blob {digest} from {registry} has the wrong content: its bytes hash to {actual}")]
    DigestMismatch {
        registry: String,
        digest: String,
        actual: String,
    },
    #[error("{registry}: {method} {path} answered {status}{message}")]
    Http {
        registry: String,
        method: String,
        path: String,
        status: u16,
        message: String,
    },
    #[error("{registry}: {reason}")]
    Protocol { registry: String, reason: String },
    #[error("no manifest for platform {platform} in {reference} (it has: {available})")]
    NoPlatform {
        reference: String,
        platform: String,
        available: String,
    },
    #[error("credentials: {path}: {reason}")]
    Credentials { path: PathBuf, reason: String },
    #[error(transparent)]
    Store(#[from] kiln_store::StoreError),
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
