//! Errors callers can match on: the variant follows the gRPC status code,
//! and [`Details`] carries the broker's `google.rpc.ErrorInfo` (`reason`,
//! `metadata`) and `google.rpc.RetryInfo` delay.
//!
//! **Decide on [`Error::reason`], never on the message text**: the reasons
//! (`MIN_TTL_UNREACHABLE`, `RATE_LIMITED`, ...) are part of the broker's
//! contract (README, "Error reasons"); messages are for people and may change.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use tonic_types::StatusExt;

/// The `ErrorInfo.domain` of errors the broker sends.
pub const ERROR_DOMAIN: &str = "twilio-broker";

/// What the broker said about an error: the message for people, and the
/// machine-readable reason, metadata and retry delay.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Details {
    /// The broker's message, for people (never parse it).
    pub message: String,
    /// `ErrorInfo.reason` (UPPER_SNAKE, e.g. `MIN_TTL_UNREACHABLE`) when the
    /// broker sent one.
    pub reason: Option<String>,
    /// `ErrorInfo.metadata` (e.g. `field`, `credential`, `retry_after_seconds`).
    pub metadata: BTreeMap<String, String>,
    /// `RetryInfo.retry_delay`, when the broker knows when a retry may work.
    pub retry_after: Option<Duration>,
}

impl Details {
    /// Details from a status: its message, and the broker's ErrorInfo
    /// (only from the broker's domain) and RetryInfo when present.
    pub fn from_status(status: &tonic::Status) -> Self {
        let info = status
            .get_details_error_info()
            .filter(|info| info.domain == ERROR_DOMAIN);
        let retry_after = status
            .get_details_retry_info()
            .and_then(|retry| retry.retry_delay);
        let (reason, metadata) = match info {
            Some(info) => (Some(info.reason), info.metadata.into_iter().collect()),
            None => (None, BTreeMap::new()),
        };
        Details {
            message: status.message().to_owned(),
            reason,
            metadata,
            retry_after,
        }
    }
}

impl From<&str> for Details {
    fn from(message: &str) -> Self {
        Details {
            message: message.to_owned(),
            ..Details::default()
        }
    }
}

impl From<String> for Details {
    fn from(message: String) -> Self {
        Details {
            message,
            ..Details::default()
        }
    }
}

impl fmt::Display for Details {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// The message, so that `Error::NotFound(m)` reads as before.
impl std::ops::Deref for Details {
    type Target = str;
    fn deref(&self) -> &str {
        &self.message
    }
}

/// What went wrong, by what the caller should do about it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The request was malformed (`metadata["field"]` names the field).
    #[error("invalid argument: {0}")]
    InvalidArgument(Details),
    /// No credential of that name.
    #[error("not found: {0}")]
    NotFound(Details),
    /// The broker cannot serve this now (wrong credential kind, restricted
    /// key, Twilio rejected the client, ...).
    #[error("failed precondition: {0}")]
    FailedPrecondition(Details),
    /// The broker needs a caller identity (Unix socket or client certificate).
    #[error("unauthenticated: {0}")]
    Unauthenticated(Details),
    /// The broker's policy does not allow this caller to do this.
    #[error("permission denied: {0}")]
    PermissionDenied(Details),
    /// Over the caller's rate limit; retry later.
    #[error("rate limited: {0}")]
    ResourceExhausted(Details),
    /// The broker, Twilio or the audit trail is down; retry later.
    #[error("unavailable: {0}")]
    Unavailable(Details),
    /// The call did not finish in time.
    #[error("deadline exceeded: {0}")]
    DeadlineExceeded(Details),
    /// The connection could not be made.
    #[error("cannot connect to the broker: {0}")]
    Connect(String),
    /// The broker answered something this client did not expect.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// Any other status.
    #[error("{code:?}: {message}")]
    Other {
        /// The gRPC code.
        code: tonic::Code,
        /// The broker's message.
        message: String,
        /// The reason, metadata and retry delay.
        details: Details,
    },
}

impl Error {
    /// True when retrying later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Error::Unavailable(_)
                | Error::ResourceExhausted(_)
                | Error::DeadlineExceeded(_)
                | Error::Connect(_)
        )
    }

    /// What the broker said, when the error is a status from it.
    pub fn details(&self) -> Option<&Details> {
        match self {
            Error::InvalidArgument(d)
            | Error::NotFound(d)
            | Error::FailedPrecondition(d)
            | Error::Unauthenticated(d)
            | Error::PermissionDenied(d)
            | Error::ResourceExhausted(d)
            | Error::Unavailable(d)
            | Error::DeadlineExceeded(d)
            | Error::Other { details: d, .. } => Some(d),
            Error::Connect(_) | Error::Protocol(_) => None,
        }
    }

    /// The broker's `ErrorInfo.reason` (e.g. `MIN_TTL_UNREACHABLE`): what
    /// to decide on.
    pub fn reason(&self) -> Option<&str> {
        self.details().and_then(|d| d.reason.as_deref())
    }

    /// One `ErrorInfo.metadata` value (e.g. `field`, `credential`).
    pub fn metadata(&self, key: &str) -> Option<&str> {
        self.details()
            .and_then(|d| d.metadata.get(key))
            .map(String::as_str)
    }

    /// How long to wait before retrying, when the broker said.
    pub fn retry_after(&self) -> Option<Duration> {
        self.details().and_then(|d| d.retry_after)
    }
}

impl From<tonic::Status> for Error {
    fn from(status: tonic::Status) -> Self {
        let details = Details::from_status(&status);
        match status.code() {
            tonic::Code::InvalidArgument => Error::InvalidArgument(details),
            tonic::Code::NotFound => Error::NotFound(details),
            tonic::Code::FailedPrecondition => Error::FailedPrecondition(details),
            tonic::Code::Unauthenticated => Error::Unauthenticated(details),
            tonic::Code::PermissionDenied => Error::PermissionDenied(details),
            tonic::Code::ResourceExhausted => Error::ResourceExhausted(details),
            tonic::Code::Unavailable => Error::Unavailable(details),
            tonic::Code::DeadlineExceeded => Error::DeadlineExceeded(details),
            // tonic's channel reports a deadline it enforced itself as
            // CANCELLED "Timeout expired" (its `TimeoutExpired`).
            tonic::Code::Cancelled if details.message == tonic::TimeoutExpired(()).to_string() => {
                Error::DeadlineExceeded(details)
            }
            code => Error::Other {
                code,
                message: details.message.clone(),
                details,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_map_to_variants() {
        let cases = [
            (tonic::Code::InvalidArgument, "invalid argument"),
            (tonic::Code::NotFound, "not found"),
            (tonic::Code::FailedPrecondition, "failed precondition"),
            (tonic::Code::Unauthenticated, "unauthenticated"),
            (tonic::Code::PermissionDenied, "permission denied"),
            (tonic::Code::ResourceExhausted, "rate limited"),
            (tonic::Code::Unavailable, "unavailable"),
            (tonic::Code::Internal, "Internal"),
        ];
        for (code, prefix) in cases {
            let err = Error::from(tonic::Status::new(code, "m"));
            assert!(err.to_string().starts_with(prefix), "{code:?}: {err}");
        }
        assert!(Error::from(tonic::Status::unavailable("x")).is_retryable());
        assert_eq!(Error::from(tonic::Status::unavailable("x")).reason(), None);
        assert!(!Error::from(tonic::Status::not_found("x")).is_retryable());
    }

    #[test]
    fn the_reason_metadata_and_retry_delay_come_from_the_details() {
        use tonic_types::ErrorDetails;
        let mut details = ErrorDetails::with_error_info(
            "RATE_LIMITED",
            ERROR_DOMAIN,
            [("caller".to_owned(), "uid:1".to_owned())],
        );
        details.set_retry_info(Some(Duration::from_secs(3)));
        let status = tonic::Status::with_error_details(
            tonic::Code::ResourceExhausted,
            "caller uid:1 is over its rate limit",
            details,
        );
        let err = Error::from(status);
        assert!(matches!(err, Error::ResourceExhausted(_)), "{err:?}");
        assert_eq!(err.reason(), Some("RATE_LIMITED"));
        assert_eq!(err.metadata("caller"), Some("uid:1"));
        assert_eq!(err.retry_after(), Some(Duration::from_secs(3)));
        // Another domain's reason is not the broker's.
        let foreign = tonic::Status::with_error_details(
            tonic::Code::Unavailable,
            "m",
            ErrorDetails::with_error_info(
                "RATE_LIMITED",
                "example.com",
                std::collections::HashMap::new(),
            ),
        );
        assert_eq!(Error::from(foreign).reason(), None);
    }

    #[test]
    fn a_locally_expired_deadline_is_deadline_exceeded() {
        // What tonic's channel returns when it enforces a call's deadline.
        let local = tonic::Status::from_error(Box::new(tonic::TimeoutExpired(())));
        assert_eq!(local.code(), tonic::Code::Cancelled);
        assert!(matches!(Error::from(local), Error::DeadlineExceeded(_)));
        // Any other cancellation stays what it is.
        let other = Error::from(tonic::Status::cancelled("client went away"));
        assert!(
            matches!(
                other,
                Error::Other {
                    code: tonic::Code::Cancelled,
                    ..
                }
            ),
            "{other:?}"
        );
    }
}
