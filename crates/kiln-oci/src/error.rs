//! Errors of the OCI data layer.

/// Every error names the value it is about.
#[derive(Debug, thiserror::Error)]
pub enum OciError {
    #[error("invalid digest `{value}`: {reason}")]
    InvalidDigest { value: String, reason: String },
    #[error("invalid reference `{value}`: {reason}")]
    InvalidReference { value: String, reason: String },
    #[error("invalid platform `{value}`: {reason}")]
    InvalidPlatform { value: String, reason: String },
    #[error("invalid change `{value}`: {reason}")]
    InvalidChange { value: String, reason: String },
}

/// Result of this crate.
pub type Result<T> = std::result::Result<T, OciError>;
