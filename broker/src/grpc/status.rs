//! The one table from [`Error`] to gRPC status: a code, a message a person
//! can act on, and a `google.rpc.ErrorInfo` detail (`domain` =
//! [`DOMAIN`]) whose `reason` clients decide on, plus `google.rpc.RetryInfo`
//! where a retry delay is known. Clients must never parse the message.
//!
//! | Error                  | Code                | reason                    | metadata                                                   | RetryInfo |
//! |------------------------|---------------------|---------------------------|------------------------------------------------------------|-----------|
//! | `InvalidField`         | INVALID_ARGUMENT    | INVALID_FIELD             | `field`                                                    |           |
//! | `MinTtlUnreachable`    | INVALID_ARGUMENT    | MIN_TTL_UNREACHABLE       | `field`, `credential`, `min_ttl_seconds`, `lifetime_seconds` |         |
//! | `CredentialNotFound`   | NOT_FOUND           | CREDENTIAL_NOT_FOUND      | `credential`                                               |           |
//! | `WrongCredentialKind`  | FAILED_PRECONDITION | WRONG_CREDENTIAL_KIND     | `credential`, `kind`                                       |           |
//! | `RestrictedKey`        | FAILED_PRECONDITION | RESTRICTED_KEY            | `credential`                                               |           |
//! | `TwilioRejected`       | FAILED_PRECONDITION | TWILIO_REJECTED           | `credential`, `http_status`, `twilio_code`?, `retry_after_seconds`? |  |
//! | `TwilioUnreachable`    | UNAVAILABLE         | TWILIO_UNREACHABLE        | `credential`, `retry_after_seconds`?                       | if known  |
//! | `CredentialUnreadable` | FAILED_PRECONDITION | CREDENTIAL_UNREADABLE     | `credential`                                               |           |
//! | `RecordUnreadable`     | FAILED_PRECONDITION | RECORD_UNREADABLE         | `record`                                                   |           |
//! | `PolicyNotReloaded`    | FAILED_PRECONDITION | POLICY_NOT_RELOADED       |                                                            |           |
//! | `NeedsRunningBroker`   | FAILED_PRECONDITION | NEEDS_RUNNING_BROKER      |                                                            |           |
//! | `ConsoleOff`           | FAILED_PRECONDITION | CONSOLE_OFF               |                                                            |           |
//! | `IdentityRequired`     | UNAUTHENTICATED     | IDENTITY_REQUIRED         | `rpc`                                                      |           |
//! | `CertificateRefused`   | UNAUTHENTICATED     | CLIENT_CERTIFICATE_REFUSED|                                                            |           |
//! | `Denied`               | PERMISSION_DENIED   | DENIED                    | `caller`                                                   |           |
//! | `RateLimited`          | RESOURCE_EXHAUSTED  | RATE_LIMITED              | `caller`, `retry_after_seconds`                            | yes       |
//! | `TooManyRefusals`      | RESOURCE_EXHAUSTED  | TOO_MANY_REFUSALS         | `retry_after_seconds`                                      | yes       |
//! | `ManagerUnusable`      | FAILED_PRECONDITION | MANAGER_UNUSABLE          | `credential`, `manager`                                    |           |
//! | `NotRotatable`         | FAILED_PRECONDITION | NOT_ROTATABLE             | `credential`                                               |           |
//! | `RotationRefused`      | FAILED_PRECONDITION | ROTATION_REFUSED          | `credential`, `http_status`, `twilio_code`?                |           |
//! | `RotationUnavailable`  | UNAVAILABLE         | ROTATION_UNAVAILABLE      | `credential`, `retry_after_seconds`?                       | if known  |
//! | `NotAudited`           | UNAVAILABLE         | NOT_AUDITED               |                                                            |           |
//! | `ConcurrentChange`     | UNAVAILABLE         | CONCURRENT_CHANGE         |                                                            |           |
//! | `StorageUnavailable`   | UNAVAILABLE         | STORAGE_UNAVAILABLE       |                                                            |           |
//! | `Internal`             | INTERNAL            | INTERNAL                  | `request_id`                                               |           |
//!
//! `retry_after_seconds` is whole seconds, rounded up. Messages are written
//! by the broker and never contain a secret; an internal error's message
//! is only a request id (the chain is logged once, here).

use std::collections::HashMap;
use std::time::Duration;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::error::Error;

/// The `ErrorInfo.domain` of every error the broker sends.
pub const DOMAIN: &str = "twilio-broker";

impl From<Error> for Status {
    fn from(err: Error) -> Self {
        to_status(err, &uuid::Uuid::new_v4().to_string())
    }
}

/// One row of the table: the code, the reason, the metadata and the retry delay.
struct Row {
    code: Code,
    reason: &'static str,
    metadata: HashMap<String, String>,
    retry_after: Option<Duration>,
}

impl Row {
    fn new(code: Code, reason: &'static str) -> Self {
        Row {
            code,
            reason,
            metadata: HashMap::new(),
            retry_after: None,
        }
    }

    fn with(mut self, key: &str, value: impl ToString) -> Self {
        self.metadata.insert(key.to_owned(), value.to_string());
        self
    }

    /// Records a retry delay in the metadata, and as RetryInfo when `retry_info`.
    fn retry(mut self, after: Option<Duration>, retry_info: bool) -> Self {
        if let Some(after) = after {
            self = self.with("retry_after_seconds", whole_seconds(after));
            if retry_info {
                self.retry_after = Some(after);
            }
        }
        self
    }
}

/// Seconds, rounded up (a client that waits this long is not early).
fn whole_seconds(wait: Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

fn row(err: &Error, request_id: &str) -> Row {
    use Code::*;
    match err {
        Error::InvalidField { field, .. } => {
            Row::new(InvalidArgument, "INVALID_FIELD").with("field", field)
        }
        Error::MinTtlUnreachable {
            credential,
            min_ttl,
            lifetime,
        } => Row::new(InvalidArgument, "MIN_TTL_UNREACHABLE")
            .with("field", "min_ttl_seconds")
            .with("credential", credential)
            .with("min_ttl_seconds", min_ttl.as_secs())
            .with("lifetime_seconds", lifetime.as_secs()),
        Error::CredentialNotFound { name } => {
            Row::new(NotFound, "CREDENTIAL_NOT_FOUND").with("credential", name)
        }
        Error::WrongCredentialKind {
            credential, kind, ..
        } => Row::new(FailedPrecondition, "WRONG_CREDENTIAL_KIND")
            .with("credential", credential)
            .with("kind", kind),
        Error::RestrictedKey { credential } => {
            Row::new(FailedPrecondition, "RESTRICTED_KEY").with("credential", credential)
        }
        Error::TwilioRejected {
            credential,
            twilio,
            retry_after,
            ..
        } => {
            let row = Row::new(FailedPrecondition, "TWILIO_REJECTED")
                .with("credential", credential)
                .with("http_status", twilio.http_status);
            let row = match twilio.code {
                Some(code) => row.with("twilio_code", code),
                None => row,
            };
            // Retrying the same call does not help until the credential is
            // fixed: the delay is information, not RetryInfo.
            row.retry(*retry_after, false)
        }
        Error::TwilioUnreachable {
            credential,
            retry_after,
            ..
        } => Row::new(Unavailable, "TWILIO_UNREACHABLE")
            .with("credential", credential)
            .retry(*retry_after, true),
        Error::CredentialUnreadable { credential, .. } => {
            Row::new(FailedPrecondition, "CREDENTIAL_UNREADABLE").with("credential", credential)
        }
        Error::RecordUnreadable { record, .. } => {
            Row::new(FailedPrecondition, "RECORD_UNREADABLE").with("record", record)
        }
        Error::PolicyNotReloaded { .. } => Row::new(FailedPrecondition, "POLICY_NOT_RELOADED"),
        Error::NeedsRunningBroker { .. } => Row::new(FailedPrecondition, "NEEDS_RUNNING_BROKER"),
        Error::ConsoleOff => Row::new(FailedPrecondition, "CONSOLE_OFF"),
        Error::IdentityRequired { rpc } => {
            Row::new(Unauthenticated, "IDENTITY_REQUIRED").with("rpc", rpc)
        }
        Error::CertificateRefused { .. } => Row::new(Unauthenticated, "CLIENT_CERTIFICATE_REFUSED"),
        Error::Denied { caller, .. } => Row::new(PermissionDenied, "DENIED").with("caller", caller),
        Error::RateLimited {
            caller,
            retry_after,
        } => Row::new(ResourceExhausted, "RATE_LIMITED")
            .with("caller", caller)
            .retry(Some(*retry_after), true),
        Error::TooManyRefusals { retry_after, .. } => {
            Row::new(ResourceExhausted, "TOO_MANY_REFUSALS").retry(Some(*retry_after), true)
        }
        Error::ManagerUnusable {
            credential,
            manager,
            ..
        } => Row::new(FailedPrecondition, "MANAGER_UNUSABLE")
            .with("credential", credential)
            .with("manager", manager),
        Error::NotRotatable { credential, .. } => {
            Row::new(FailedPrecondition, "NOT_ROTATABLE").with("credential", credential)
        }
        Error::RotationRefused {
            credential,
            http_status,
            twilio_code,
            ..
        } => {
            let row = Row::new(FailedPrecondition, "ROTATION_REFUSED")
                .with("credential", credential)
                .with("http_status", http_status);
            match twilio_code {
                Some(code) => row.with("twilio_code", code),
                None => row,
            }
        }
        Error::RotationUnavailable {
            credential,
            retry_after,
            ..
        } => Row::new(Unavailable, "ROTATION_UNAVAILABLE")
            .with("credential", credential)
            .retry(*retry_after, true),
        Error::NotAudited { .. } => Row::new(Unavailable, "NOT_AUDITED"),
        Error::ConcurrentChange { .. } => Row::new(Unavailable, "CONCURRENT_CHANGE"),
        Error::StorageUnavailable { .. } => Row::new(Unavailable, "STORAGE_UNAVAILABLE"),
        Error::Internal(_) => Row::new(Internal, "INTERNAL").with("request_id", request_id),
    }
}

/// The status for `err`; an internal error is logged once under `request_id`.
pub fn to_status(err: Error, request_id: &str) -> Status {
    let row = row(&err, request_id);
    let message = match &err {
        Error::Internal(chain) => {
            tracing::error!(%request_id, error = %format!("{chain:#}"), "internal error");
            format!(
                "internal error; the broker's log has the details under request id {request_id}"
            )
        }
        other => other.to_string(),
    };
    let mut details = ErrorDetails::with_error_info(row.reason, DOMAIN, row.metadata);
    if let Some(after) = row.retry_after {
        details.set_retry_info(Some(after));
    }
    Status::with_error_details(row.code, message, details)
}

/// The canonical name of a status code, as in audit events and metrics.
pub fn code_name(code: Code) -> &'static str {
    use Code::*;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreError;

    const SECRET: &str = "s3cr3t-value-never-shown";

    /// Every variant, with the code, reason, metadata and retry delay it must get.
    #[allow(clippy::type_complexity)]
    fn table() -> Vec<(
        Error,
        Code,
        &'static str,
        &'static [(&'static str, &'static str)],
        Option<u64>,
    )> {
        let secs = Duration::from_secs;
        vec![
            (
                Error::invalid("api_key.secret", "must not be empty"),
                Code::InvalidArgument,
                "INVALID_FIELD",
                &[("field", "api_key.secret")],
                None,
            ),
            (
                Error::MinTtlUnreachable {
                    credential: "c".into(),
                    min_ttl: secs(7200),
                    lifetime: secs(3000),
                },
                Code::InvalidArgument,
                "MIN_TTL_UNREACHABLE",
                &[
                    ("field", "min_ttl_seconds"),
                    ("credential", "c"),
                    ("min_ttl_seconds", "7200"),
                    ("lifetime_seconds", "3000"),
                ],
                None,
            ),
            (
                Error::CredentialNotFound { name: "c".into() },
                Code::NotFound,
                "CREDENTIAL_NOT_FOUND",
                &[("credential", "c")],
                None,
            ),
            (
                Error::WrongCredentialKind {
                    credential: "c".into(),
                    kind: "auth_token",
                    rpc: "GetBearer",
                    needed: "an oauth_client credential",
                    advice: "",
                },
                Code::FailedPrecondition,
                "WRONG_CREDENTIAL_KIND",
                &[("credential", "c"), ("kind", "auth_token")],
                None,
            ),
            (
                Error::RestrictedKey {
                    credential: "c".into(),
                },
                Code::FailedPrecondition,
                "RESTRICTED_KEY",
                &[("credential", "c")],
                None,
            ),
            (
                Error::TwilioRejected {
                    credential: "c".into(),
                    client_id: "OQ1".into(),
                    twilio: Box::new(crate::error::TwilioAnswer {
                        http_status: 401,
                        code: Some(20003),
                        message: "Authenticate".into(),
                        more_info: None,
                    }),
                    retry_after: Some(Duration::from_millis(29_500)),
                },
                Code::FailedPrecondition,
                "TWILIO_REJECTED",
                &[
                    ("credential", "c"),
                    ("http_status", "401"),
                    ("twilio_code", "20003"),
                    ("retry_after_seconds", "30"),
                ],
                None,
            ),
            (
                Error::TwilioUnreachable {
                    credential: "c".into(),
                    detail: "timed out".into(),
                    retry_after: Some(secs(5)),
                },
                Code::Unavailable,
                "TWILIO_UNREACHABLE",
                &[("credential", "c"), ("retry_after_seconds", "5")],
                Some(5),
            ),
            (
                Error::CredentialUnreadable {
                    credential: "c".into(),
                    detail: "bad tag".into(),
                },
                Code::FailedPrecondition,
                "CREDENTIAL_UNREADABLE",
                &[("credential", "c")],
                None,
            ),
            (
                Error::from(StoreError::Unsealable {
                    key: "manifest".into(),
                    reason: "bad tag".into(),
                }),
                Code::FailedPrecondition,
                "RECORD_UNREADABLE",
                &[("record", "manifest")],
                None,
            ),
            (
                Error::PolicyNotReloaded {
                    detail: "line 3".into(),
                },
                Code::FailedPrecondition,
                "POLICY_NOT_RELOADED",
                &[],
                None,
            ),
            (
                Error::NeedsRunningBroker {
                    what: "reviewing a stored credential",
                },
                Code::FailedPrecondition,
                "NEEDS_RUNNING_BROKER",
                &[],
                None,
            ),
            (
                Error::ConsoleOff,
                Code::FailedPrecondition,
                "CONSOLE_OFF",
                &[],
                None,
            ),
            (
                Error::IdentityRequired { rpc: "GetBearer" },
                Code::Unauthenticated,
                "IDENTITY_REQUIRED",
                &[("rpc", "GetBearer")],
                None,
            ),
            (
                Error::CertificateRefused {
                    detail: "no SAN".into(),
                },
                Code::Unauthenticated,
                "CLIENT_CERTIFICATE_REFUSED",
                &[],
                None,
            ),
            (
                Error::Denied {
                    caller: "uid:1".into(),
                    action: "GetBearer".into(),
                },
                Code::PermissionDenied,
                "DENIED",
                &[("caller", "uid:1")],
                None,
            ),
            (
                Error::RateLimited {
                    caller: "uid:1".into(),
                    retry_after: Duration::from_millis(200),
                },
                Code::ResourceExhausted,
                "RATE_LIMITED",
                &[("caller", "uid:1"), ("retry_after_seconds", "1")],
                Some(0),
            ),
            (
                Error::TooManyRefusals {
                    source_addr: "10.0.0.1".into(),
                    retry_after: secs(2),
                },
                Code::ResourceExhausted,
                "TOO_MANY_REFUSALS",
                &[("retry_after_seconds", "2")],
                Some(2),
            ),
            (
                Error::ManagerUnusable {
                    credential: "c".into(),
                    manager: "m".into(),
                    detail: "not stored".into(),
                },
                Code::FailedPrecondition,
                "MANAGER_UNUSABLE",
                &[("credential", "c"), ("manager", "m")],
                None,
            ),
            (
                Error::NotRotatable {
                    credential: "c".into(),
                    detail: "Main keys are created in the Console".into(),
                },
                Code::FailedPrecondition,
                "NOT_ROTATABLE",
                &[("credential", "c")],
                None,
            ),
            (
                Error::RotationRefused {
                    credential: "c".into(),
                    step: "creating the new key".into(),
                    http_status: 401,
                    twilio_code: Some(20003),
                    detail: "Authenticate".into(),
                },
                Code::FailedPrecondition,
                "ROTATION_REFUSED",
                &[
                    ("credential", "c"),
                    ("http_status", "401"),
                    ("twilio_code", "20003"),
                ],
                None,
            ),
            (
                Error::RotationUnavailable {
                    credential: "c".into(),
                    step: "creating the new key".into(),
                    detail: "rate-limited the call".into(),
                    retry_after: Some(secs(3)),
                },
                Code::Unavailable,
                "ROTATION_UNAVAILABLE",
                &[("credential", "c"), ("retry_after_seconds", "3")],
                Some(3),
            ),
            (
                Error::NotAudited {
                    detail: "sink file is full".into(),
                },
                Code::Unavailable,
                "NOT_AUDITED",
                &[],
                None,
            ),
            (
                Error::ConcurrentChange {
                    what: "credential \"c\"".into(),
                },
                Code::Unavailable,
                "CONCURRENT_CHANGE",
                &[],
                None,
            ),
            (
                Error::from(StoreError::Unavailable("connection refused".into())),
                Code::Unavailable,
                "STORAGE_UNAVAILABLE",
                &[],
                None,
            ),
            (
                Error::from(StoreError::Backend(SECRET.into())),
                Code::Internal,
                "INTERNAL",
                &[("request_id", "req-1")],
                None,
            ),
            (
                Error::Internal(anyhow::anyhow!("{SECRET}")),
                Code::Internal,
                "INTERNAL",
                &[("request_id", "req-1")],
                None,
            ),
        ]
    }

    #[test]
    fn every_error_has_its_code_reason_metadata_and_retry_delay() {
        for (err, code, reason, metadata, retry_secs) in table() {
            let shown = format!("{err:?}");
            let status = to_status(err, "req-1");
            assert_eq!(status.code(), code, "{shown}");
            let info = status.get_details_error_info().expect("ErrorInfo attached");
            assert_eq!(info.reason, reason, "{shown}");
            assert_eq!(info.domain, DOMAIN, "{shown}");
            let want: HashMap<String, String> = metadata
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            assert_eq!(info.metadata, want, "{shown}");
            let retry = status
                .get_details_retry_info()
                .and_then(|r| r.retry_delay)
                .map(|d| d.as_secs());
            assert_eq!(retry, retry_secs, "{shown}");
            assert!(!status.message().is_empty(), "{shown}");
            assert!(
                !status.message().contains(SECRET),
                "{shown}: {}",
                status.message()
            );
            assert!(
                reason.bytes().all(|b| b.is_ascii_uppercase() || b == b'_'),
                "{reason} is UPPER_SNAKE"
            );
        }
    }

    #[test]
    fn an_internal_error_shows_only_the_request_id() {
        let status = to_status(Error::Internal(anyhow::anyhow!("disk on fire")), "req-9");
        assert!(status.message().contains("req-9"), "{}", status.message());
        assert!(!status.message().contains("disk"), "{}", status.message());
    }

    #[test]
    fn messages_say_what_to_do() {
        let status = to_status(
            Error::MinTtlUnreachable {
                credential: "c".into(),
                min_ttl: Duration::from_secs(7200),
                lifetime: Duration::from_secs(3000),
            },
            "r",
        );
        assert!(
            status.message().contains("ask for less"),
            "{}",
            status.message()
        );
        let status = to_status(
            Error::RateLimited {
                caller: "uid:1".into(),
                retry_after: Duration::from_secs(3),
            },
            "r",
        );
        assert!(
            status.message().contains("retry in about 3 s"),
            "{}",
            status.message()
        );
    }
}
