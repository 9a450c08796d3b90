//! The broker's error type, named by what happened.
//!
//! Domain modules return [`Error`] carrying structured data (a field name, a
//! credential name, a retry delay, Twilio's error code); the `Display` text
//! is the message a person can act on. `grpc/status.rs` holds the one table
//! that turns each variant into a gRPC code, that message and a
//! `google.rpc.ErrorInfo` reason.
//!
//! **Invariants:** no variant names a gRPC status code, and nothing below
//! `grpc/` chooses one (the tidy test checks that no module outside `grpc/`,
//! `server.rs`, `cli/` and `transport/` uses `tonic::Status` or `tonic::Code`).
//! Messages never carry a secret: a variant that could be built from user
//! input stores only names, SIDs and descriptions written by the broker (or
//! Twilio's scrubbed error text).

use std::time::Duration;

use twilio_broker_store_api::StoreError;

/// Everything that can go wrong in a request, by what happened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A request field is malformed or out of range.
    #[error("{field} {reason}")]
    InvalidField {
        /// The request field, e.g. `api_key.account_sid`.
        field: String,
        /// What is wrong with it, written by the broker.
        reason: String,
    },
    /// GetBearer's `min_ttl_seconds` is more than any token Twilio issues for
    /// this credential lives; asking again with less works.
    #[error(
        "min_ttl_seconds is {} s, but Twilio issues tokens for credential {credential:?} that live \
         {} s (less a safety margin); ask for less",
        min_ttl.as_secs(),
        lifetime.as_secs()
    )]
    MinTtlUnreachable {
        /// The credential asked for.
        credential: String,
        /// What the caller asked for.
        min_ttl: Duration,
        /// How long Twilio's tokens for it live, less the broker's margin.
        lifetime: Duration,
    },
    /// No credential of that name.
    #[error("no credential named {name:?}")]
    CredentialNotFound {
        /// The name asked for.
        name: String,
    },
    /// The credential is of a kind this RPC cannot use.
    #[error(
        "credential {credential:?} is {} {kind} credential, but {rpc} needs {needed}. {advice}",
        article(kind)
    )]
    WrongCredentialKind {
        /// The credential's name.
        credential: String,
        /// Its kind (`api_key`, `auth_token`, `oauth_client`, `test`).
        kind: &'static str,
        /// The RPC asked for.
        rpc: &'static str,
        /// What the RPC needs, in words.
        needed: &'static str,
        /// What to do instead, in words.
        advice: &'static str,
    },
    /// A restricted API key cannot sign Access Tokens.
    #[error(
        "credential {credential:?} is a restricted API key, and Twilio refuses Access Tokens \
         signed by restricted keys; store a Main or Standard key to mint"
    )]
    RestrictedKey {
        /// The credential's name.
        credential: String,
    },
    /// Twilio's token endpoint refused the credential's OAuth client.
    #[error(
        "Twilio rejected the OAuth client of credential {credential:?} (client id {client_id}): \
         {twilio}. Check that the OAuth app still exists and its client secret is current, then \
         store the right secret with `twilio-broker credential add`; the broker asks Twilio \
         again in {} or as soon as the credential is replaced",
        in_words(*retry_after)
    )]
    TwilioRejected {
        /// The credential's name.
        credential: String,
        /// The OAuth client id (public).
        client_id: String,
        /// What Twilio answered (boxed: rare, and it keeps `Error` small).
        twilio: Box<TwilioAnswer>,
        /// When the broker asks Twilio again.
        retry_after: Option<Duration>,
    },
    /// Twilio's token endpoint could not be reached (or answered 5xx/429).
    #[error(
        "no bearer token for credential {credential:?}: Twilio's token endpoint {detail}; the \
         broker retries in {}",
        in_words(*retry_after)
    )]
    TwilioUnreachable {
        /// The credential's name.
        credential: String,
        /// What failed (no secret).
        detail: String,
        /// When the broker asks Twilio again.
        retry_after: Option<Duration>,
    },
    /// The stored record of a credential does not open; it is not served.
    #[error(
        "the stored record of credential {credential:?} cannot be opened ({detail}); it is not \
         served. Put the credential again to replace it"
    )]
    CredentialUnreadable {
        /// The credential's name.
        credential: String,
        /// Why it does not open.
        detail: String,
    },
    /// A stored record (by store key) does not open or is not served, and the
    /// operation needs every record.
    #[error("record {record:?} cannot be opened ({detail}); delete or replace it first")]
    RecordUnreadable {
        /// The store key.
        record: String,
        /// Why it does not open.
        detail: String,
    },
    /// ReloadPolicy found a policy that does not compile; the previous one
    /// stays in force.
    #[error("the policy was not reloaded and the previous one stays in force: {detail}")]
    PolicyNotReloaded {
        /// The compile error (no secret: a policy holds none).
        detail: String,
    },
    /// A local (no-daemon) command asked for something only a running broker has.
    #[error("{what} needs a running broker")]
    NeedsRunningBroker {
        /// What was asked.
        what: &'static str,
    },
    /// The operator console is not served by this broker (OpenConsole).
    #[error(
        "the operator console is off: start the broker with --console-listen 127.0.0.1:PORT \
         (or TWILIO_BROKER_CONSOLE_LISTEN, `console_listen` in the config)"
    )]
    ConsoleOff,
    /// The caller has no identity and the policy needs one.
    #[error(
        "{rpc} needs a caller identity: connect over the broker's Unix socket or with a client \
         certificate (mutual TLS)"
    )]
    IdentityRequired {
        /// The RPC asked for.
        rpc: &'static str,
    },
    /// The transport refused the caller's client certificate.
    #[error("client certificate refused: {detail}")]
    CertificateRefused {
        /// Why, written by the broker.
        detail: String,
    },
    /// The policy does not let this caller do this.
    #[error("caller {caller} may not call {action}")]
    Denied {
        /// The caller's principal.
        caller: String,
        /// The action, described.
        action: String,
    },
    /// The caller is over its rate limit.
    #[error("caller {caller} is over its rate limit; retry in {}", in_words(Some(*retry_after)))]
    RateLimited {
        /// The caller's principal.
        caller: String,
        /// When one more call would be allowed.
        retry_after: Duration,
    },
    /// The caller's source sent too many refused calls.
    #[error(
        "too many refused calls from {source_addr}; fix the calls or the policy, then retry in {}",
        in_words(Some(*retry_after))
    )]
    TooManyRefusals {
        /// The source (address or socket peer).
        source_addr: String,
        /// When one more call would be allowed.
        retry_after: Duration,
    },
    /// A required audit sink could not record the request, so it was refused.
    #[error("the request was refused because it could not be audited ({detail})")]
    NotAudited {
        /// Which sink and why (no secret).
        detail: String,
    },
    /// Other broker replicas changed the same thing at the same time; retrying works.
    #[error("{what} is being changed by other broker replicas at the same time; retry")]
    ConcurrentChange {
        /// What was contended.
        what: String,
    },
    /// The store (or the state file) cannot be reached right now.
    #[error("storage unavailable: {detail}")]
    StorageUnavailable {
        /// What failed (no secret).
        detail: String,
    },
    /// An `api_key` credential names a manager that cannot manage its keys:
    /// not stored, not a Main key or an Auth Token, or of another account.
    #[error(
        "credential {credential:?} cannot use {manager:?} as its manager: {detail}. A manager \
         must be a stored Main key or Auth Token of the same account"
    )]
    ManagerUnusable {
        /// The credential naming the manager.
        credential: String,
        /// The manager's name.
        manager: String,
        /// Why (no secret).
        detail: String,
    },
    /// The credential cannot be rotated as asked (no manager, a Main key, a
    /// kind the broker does not rotate, or a rotation already running).
    #[error("credential {credential:?} cannot be rotated now: {detail}")]
    NotRotatable {
        /// The credential's name.
        credential: String,
        /// Why, and what to do (no secret).
        detail: String,
    },
    /// Twilio refused a rotation step (401/403/404/400): the rotation
    /// stopped with the current key unchanged or the previous key still
    /// alive, as `detail` says; retrying after fixing the manager works.
    #[error(
        "the rotation of credential {credential:?} stopped: Twilio refused {step} \
         (HTTP {http_status}{}): {detail}",
        twilio_code.map(|c| format!(", error {c}")).unwrap_or_default()
    )]
    RotationRefused {
        /// The credential's name.
        credential: String,
        /// The step Twilio refused and what state it left (no secret).
        step: String,
        /// The HTTP status.
        http_status: u16,
        /// Twilio's error code, when it sent one.
        twilio_code: Option<u64>,
        /// Twilio's message, scrubbed, and what to do.
        detail: String,
    },
    /// Twilio rate-limited a rotation step (429 / 20429) or could not be
    /// reached: the rotation stopped in a known state; retry after the delay.
    #[error(
        "the rotation of credential {credential:?} stopped: {step}: Twilio {detail}; nothing \
         was half-applied, retry `credential rotate` in {}",
        in_words(*retry_after)
    )]
    RotationUnavailable {
        /// The credential's name.
        credential: String,
        /// The step that failed and what state it left (no secret).
        step: String,
        /// What failed (no secret).
        detail: String,
        /// When a retry may succeed, when Twilio said.
        retry_after: Option<Duration>,
    },
    /// A bug or an unexpected failure inside the broker. Logged in full once;
    /// the caller sees only a request id.
    #[error("internal error: {0:#}")]
    Internal(anyhow::Error),
}

/// What Twilio's token endpoint answered when it refused a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TwilioAnswer {
    /// The HTTP status.
    pub http_status: u16,
    /// Twilio's error code (e.g. 20003), when it sent one.
    pub code: Option<u64>,
    /// Twilio's error text, scrubbed of anything secret.
    pub message: String,
    /// Twilio's documentation link for the error.
    pub more_info: Option<String>,
}

impl std::fmt::Display for TwilioAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HTTP {}", self.http_status)?;
        if let Some(code) = self.code {
            write!(f, ", Twilio error {code}")?;
        }
        if !self.message.is_empty() {
            write!(f, ": {}", self.message)?;
        }
        if let Some(link) = &self.more_info {
            write!(f, " ({link})")?;
        }
        Ok(())
    }
}

/// "a" or "an" before a credential kind.
fn article(kind: &str) -> &'static str {
    if kind.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    }
}

/// A retry delay in words.
fn in_words(wait: Option<Duration>) -> String {
    match wait {
        Some(wait) if !wait.is_zero() => {
            format!("about {} s", wait.as_secs().max(1))
        }
        _ => "a moment".to_owned(),
    }
}

impl Error {
    /// A malformed field.
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::InvalidField {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// The store's errors as the caller sees them. Kept here, not in `store/`,
/// so the store does not depend on the request error type.
impl From<StoreError> for Error {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Unavailable(detail) => Error::StorageUnavailable { detail },
            StoreError::Unsealable { key, reason } => Error::RecordUnreadable {
                record: key,
                detail: reason,
            },
            other => Error::Internal(anyhow::Error::new(other)),
        }
    }
}

/// Shorthand for results in the broker.
pub type Result<T, E = Error> = std::result::Result<T, E>;
