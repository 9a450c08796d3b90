//! Errors callers can match on, mapped from gRPC status codes.

/// What went wrong, by what the caller should do about it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The request was malformed (the message names the field).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// No credential of that name.
    #[error("not found: {0}")]
    NotFound(String),
    /// The broker cannot serve this now (wrong credential kind, restricted
    /// key, Twilio rejected the client, ...).
    #[error("failed precondition: {0}")]
    FailedPrecondition(String),
    /// The broker needs a caller identity (Unix socket or client certificate).
    #[error("unauthenticated: {0}")]
    Unauthenticated(String),
    /// The broker's policy does not allow this caller to do this.
    #[error("permission denied: {0}")]
    PermissionDenied(String),
    /// Over the caller's rate limit; retry later.
    #[error("rate limited: {0}")]
    ResourceExhausted(String),
    /// The broker, Twilio or the audit trail is down; retry later.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The call did not finish in time.
    #[error("deadline exceeded: {0}")]
    DeadlineExceeded(String),
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
}

impl From<tonic::Status> for Error {
    fn from(status: tonic::Status) -> Self {
        let message = status.message().to_owned();
        match status.code() {
            tonic::Code::InvalidArgument => Error::InvalidArgument(message),
            tonic::Code::NotFound => Error::NotFound(message),
            tonic::Code::FailedPrecondition => Error::FailedPrecondition(message),
            tonic::Code::Unauthenticated => Error::Unauthenticated(message),
            tonic::Code::PermissionDenied => Error::PermissionDenied(message),
            tonic::Code::ResourceExhausted => Error::ResourceExhausted(message),
            tonic::Code::Unavailable => Error::Unavailable(message),
            tonic::Code::DeadlineExceeded => Error::DeadlineExceeded(message),
            // tonic's channel reports a deadline it enforced itself as
            // CANCELLED "Timeout expired" (its `TimeoutExpired`).
            tonic::Code::Cancelled if message == tonic::TimeoutExpired(()).to_string() => {
                Error::DeadlineExceeded(message)
            }
            code => Error::Other { code, message },
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
        assert!(!Error::from(tonic::Status::not_found("x")).is_retryable());
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
