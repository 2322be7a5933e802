//! The error of this crate: a bad input, with what to do about it.

/// A bad input: what is wrong, and what to do about it.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    message: String,
    hint: Option<String>,
}

impl Error {
    pub(crate) fn new(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            hint: Some(hint.into()),
        }
    }

    /// What the user can do about it.
    pub fn hint(&self) -> Option<String> {
        self.hint.clone()
    }
}

/// Result of this crate: the error is a bad option or an image unfit to deploy.
pub type Result<T> = std::result::Result<T, Error>;
