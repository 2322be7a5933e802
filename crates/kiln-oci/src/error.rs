//! Errors of the OCI data layer.

/// Every error names the value it is about.
#[derive(Debug, thiserror::Error)]
pub enum OciError {
    /// A digest is not `sha256:` followed by 64 lowercase hex characters (other
    /// algorithms are refused too, since kiln cannot verify them).
    #[error("invalid digest `{value}`: {reason}")]
    InvalidDigest {
        /// The text that was given as a digest.
        value: String,
        /// What is wrong with it, e.g. "only sha256 digests are supported".
        reason: String,
    },
    /// An image reference (`registry/repo:tag@digest`) does not parse: a bad
    /// component, tag or digest.
    #[error("invalid reference `{value}`: {reason}")]
    InvalidReference {
        /// The reference as the user wrote it.
        value: String,
        /// Which rule of the reference grammar it breaks.
        reason: String,
    },
    /// A platform is not of the form `os/arch[/variant]`.
    #[error("invalid platform `{value}`: {reason}")]
    InvalidPlatform {
        /// The platform string as given, e.g. from `--platform`.
        value: String,
        /// Why it was refused, with an example of the expected form.
        reason: String,
    },
    /// A `--change` instruction is unsupported or its arguments are malformed.
    #[error("invalid change `{value}`: {reason}")]
    InvalidChange {
        /// The whole instruction, e.g. `CMD ["python","app.py"]`.
        value: String,
        /// Why it cannot be applied (unknown instruction, missing argument, bad JSON).
        reason: String,
    },
}

/// Result of this crate.
pub type Result<T> = std::result::Result<T, OciError>;
