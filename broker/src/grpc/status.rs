//! The one table from [`Error`] to gRPC status.
//!
//! | Error                | Code                | Message to the caller                 |
//! |----------------------|---------------------|---------------------------------------|
//! | `InvalidArgument`    | INVALID_ARGUMENT    | the field and what is wrong           |
//! | `CredentialNotFound` | NOT_FOUND           | the name asked for                    |
//! | `FailedPrecondition` | FAILED_PRECONDITION | what state blocks it and what to do   |
//! | `Unauthenticated`    | UNAUTHENTICATED     | that an identity is needed            |
//! | `PermissionDenied`   | PERMISSION_DENIED   | what was denied                       |
//! | `Unavailable`        | UNAVAILABLE         | which dependency is down              |
//! | `ResourceExhausted`  | RESOURCE_EXHAUSTED  | the limit                             |
//! | `Internal`           | INTERNAL            | a request id only; the chain is logged|
//!
//! Messages are written by the broker and never contain a secret.

use tonic::Status;

use crate::error::Error;

impl From<Error> for Status {
    fn from(err: Error) -> Self {
        to_status(err, &uuid::Uuid::new_v4().to_string())
    }
}

/// The status for `err`; an internal error is logged once under `request_id`.
pub fn to_status(err: Error, request_id: &str) -> Status {
    {
        let message = err.to_string();
        match err {
            Error::InvalidArgument { .. } => Status::invalid_argument(message),
            Error::CredentialNotFound { .. } => Status::not_found(message),
            Error::FailedPrecondition(_) => Status::failed_precondition(message),
            Error::Unauthenticated(_) => Status::unauthenticated(message),
            Error::PermissionDenied(_) => Status::permission_denied(message),
            Error::Unavailable(_) => Status::unavailable(message),
            Error::ResourceExhausted(_) => Status::resource_exhausted(message),
            Error::Internal(chain) => {
                tracing::error!(%request_id, error = %format!("{chain:#}"), "internal error");
                Status::internal(format!(
                    "internal error; the broker's log has the details under request id {request_id}"
                ))
            }
        }
    }
}

/// The canonical name of a status code, as in audit events and metrics.
pub fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "CANCELLED",
        Unknown => "UNKNOWN",
        InvalidArgument => "INVALID_ARGUMENT",
        DeadlineExceeded => "DEADLINE_EXCEEDED",
        NotFound => "NOT_FOUND",
        AlreadyExists => "ALREADY_EXISTS",
        PermissionDenied => "PERMISSION_DENIED",
        ResourceExhausted => "RESOURCE_EXHAUSTED",
        FailedPrecondition => "FAILED_PRECONDITION",
        Aborted => "ABORTED",
        OutOfRange => "OUT_OF_RANGE",
        Unimplemented => "UNIMPLEMENTED",
        Internal => "INTERNAL",
        Unavailable => "UNAVAILABLE",
        DataLoss => "DATA_LOSS",
        Unauthenticated => "UNAUTHENTICATED",
    }
}
