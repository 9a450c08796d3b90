//! The broker's error type, named by meaning.
//!
//! Domain modules return [`Error`]; `grpc/status.rs` holds the one table that
//! turns each variant into a gRPC status. Messages never carry a secret: a
//! variant that could be built from user input stores only field names and
//! descriptions written by the broker.

/// Everything that can go wrong in a request, by what the caller should do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The request itself is malformed; `field` names the offending field.
    #[error("{field} {reason}")]
    InvalidArgument {
        /// The request field, e.g. `api_key.account_sid`.
        field: String,
        /// What is wrong with it, written by the broker.
        reason: String,
    },
    /// No credential of that name.
    #[error("no credential named {name:?}")]
    CredentialNotFound {
        /// The name asked for.
        name: String,
    },
    /// The request is well formed but the system is not in a state to serve it
    /// (wrong credential kind, restricted key, rejected by Twilio...).
    #[error("{0}")]
    FailedPrecondition(String),
    /// The caller has no identity the broker can trust.
    #[error("{0}")]
    Unauthenticated(String),
    /// The caller's identity may not do this.
    #[error("{0}")]
    PermissionDenied(String),
    /// A dependency (Twilio, a plugin, the audit trail) is down; retrying later may work.
    #[error("{0}")]
    Unavailable(String),
    /// The caller is over its rate limit.
    #[error("{0}")]
    ResourceExhausted(String),
    /// A bug or an unexpected failure inside the broker. Logged in full once;
    /// the caller sees only a request id.
    #[error("internal error: {0:#}")]
    Internal(anyhow::Error),
}

impl Error {
    /// A malformed field.
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::InvalidArgument {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

impl From<twilio_broker_store_api::StoreError> for Error {
    fn from(err: twilio_broker_store_api::StoreError) -> Self {
        match err {
            twilio_broker_store_api::StoreError::Unavailable(msg) => Error::Unavailable(msg),
            other => Error::Internal(anyhow::Error::new(other)),
        }
    }
}

/// Shorthand for results in the broker.
pub type Result<T, E = Error> = std::result::Result<T, E>;
