//! Why a call to Twilio's management APIs failed, by meaning.

use std::time::Duration;

/// A failed management call. Never holds a secret (see the module
/// invariant in `twilio_api`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// Twilio refused the call (HTTP 4xx other than 429): a wrong or deleted
    /// manager credential (401 / 20003), one without the right (403), a
    /// missing resource (404) or a bad request (400). Retrying will not help.
    #[error("Twilio refused the call (HTTP {status}{}): {message}", code.map(|c| format!(", error {c}")).unwrap_or_default())]
    Rejected {
        /// HTTP status.
        status: u16,
        /// Twilio's error code (e.g. 20003), when the body had one.
        code: Option<u64>,
        /// Twilio's message, scrubbed and shortened.
        message: String,
        /// Twilio's `more_info` link.
        more_info: Option<String>,
    },
    /// Twilio's rate limit (HTTP 429, error 20429): retry after a while.
    #[error("Twilio rate-limited the call (HTTP 429{}){}", code.map(|c| format!(", error {c}")).unwrap_or_default(), retry_after.map(|d| format!("; retry after {} s", d.as_secs())).unwrap_or_default())]
    RateLimited {
        /// `Retry-After`, when Twilio sent one (in seconds).
        retry_after: Option<Duration>,
        /// Twilio's error code (20429), when the body had one.
        code: Option<u64>,
    },
    /// Twilio could not be reached, timed out, or answered 5xx, a redirect
    /// or something unusable: retry later.
    #[error("Twilio {0}")]
    Unreachable(String),
    /// The manager credential cannot manage keys or tokens (not an Auth
    /// Token or a Main key), or an argument is malformed; nothing was sent.
    #[error("{0}")]
    NotAllowed(String),
}

impl ApiError {
    /// Whether the same call may succeed later without any change.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            ApiError::RateLimited { .. } | ApiError::Unreachable(_)
        )
    }
}
