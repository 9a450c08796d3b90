//! The error a plugin returns, named by what the broker should do with it.

use std::fmt;

/// How the broker should treat a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The input was refused: bad configuration, key or event. Crosses the
    /// ABI as `TB_STATUS_INVALID`.
    Invalid,
    /// A dependency is down; retrying later may work (`TB_STATUS_UNAVAILABLE`).
    Unavailable,
    /// Anything else (`TB_STATUS_ERROR`).
    Failed,
}

/// A plugin failure: a kind and a message for the operator. The message
/// must not contain a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginError {
    /// What the broker should do.
    pub kind: ErrorKind,
    /// What went wrong, for the operator.
    pub message: String,
}

impl PluginError {
    /// Refused input.
    pub fn invalid(message: impl fmt::Display) -> Self {
        Self::new(ErrorKind::Invalid, message)
    }

    /// A dependency is down.
    pub fn unavailable(message: impl fmt::Display) -> Self {
        Self::new(ErrorKind::Unavailable, message)
    }

    /// Any other failure.
    pub fn failed(message: impl fmt::Display) -> Self {
        Self::new(ErrorKind::Failed, message)
    }

    fn new(kind: ErrorKind, message: impl fmt::Display) -> Self {
        PluginError {
            kind,
            message: message.to_string(),
        }
    }
}

impl fmt::Display for PluginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            ErrorKind::Invalid => "invalid input",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Failed => "failed",
        };
        write!(f, "{kind}: {}", self.message)
    }
}

impl std::error::Error for PluginError {}
