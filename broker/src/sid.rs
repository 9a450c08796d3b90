//! Twilio identifier formats: two uppercase letters and 32 hex digits.
//!
//! Validated at the edge so that a malformed SID is an INVALID_ARGUMENT when a
//! credential is stored, not a 20003 from Twilio later (WIRE.md section 4).

/// The two-letter prefixes the broker checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SidKind {
    /// `AC`: an account (live or test).
    Account,
    /// `SK`: an API key of any type.
    ApiKey,
    /// `OQ`: an OAuth app, whose SID is its client id.
    OAuthClient,
    /// `AP`: a TwiML application.
    Application,
    /// `CR`: a (push) credential.
    PushCredential,
    /// `IS`: a Chat, Conversations, Sync or Notify service.
    Service,
    /// `RL`: a Chat/Conversations role.
    Role,
    /// `WS`: a TaskRouter workspace.
    Workspace,
    /// `WK`: a TaskRouter worker.
    Worker,
}

impl SidKind {
    /// The two-letter prefix of this kind of SID.
    pub const fn prefix(self) -> &'static str {
        match self {
            SidKind::Account => "AC",
            SidKind::ApiKey => "SK",
            SidKind::OAuthClient => "OQ",
            SidKind::Application => "AP",
            SidKind::PushCredential => "CR",
            SidKind::Service => "IS",
            SidKind::Role => "RL",
            SidKind::Workspace => "WS",
            SidKind::Worker => "WK",
        }
    }

    /// What the SID names, for error messages.
    pub const fn noun(self) -> &'static str {
        match self {
            SidKind::Account => "Account SID",
            SidKind::ApiKey => "API key SID",
            SidKind::OAuthClient => "OAuth client id",
            SidKind::Application => "TwiML application SID",
            SidKind::PushCredential => "push credential SID",
            SidKind::Service => "service SID",
            SidKind::Role => "role SID",
            SidKind::Workspace => "TaskRouter workspace SID",
            SidKind::Worker => "TaskRouter worker SID",
        }
    }
}

/// Why a value is not a SID of its kind. The text completes a sentence that
/// starts with the field name, and never shows more than the value's first
/// two characters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SidError {
    /// The value is empty.
    #[error("is required: a {} ({} followed by 32 hex digits)", kind.noun(), kind.prefix())]
    Missing {
        /// The kind expected.
        kind: SidKind,
    },
    /// The value starts with another prefix.
    #[error("must be a {} starting with {}, not {seen:?}", kind.noun(), kind.prefix())]
    WrongPrefix {
        /// The kind expected.
        kind: SidKind,
        /// The value's first two characters.
        seen: String,
    },
    /// The right prefix, but not 32 hex digits after it.
    #[error(
        "must be {} followed by exactly 32 hex digits ({} characters in all); got {chars} characters",
        kind.prefix(),
        kind.prefix().len() + 32
    )]
    Malformed {
        /// The kind expected.
        kind: SidKind,
        /// The value's length in characters.
        chars: usize,
    },
}

/// Checks `value` is a SID of `kind`; on failure says what is wrong without
/// echoing more than the first two characters of the value.
pub fn check(kind: SidKind, value: &str) -> Result<(), SidError> {
    let prefix = kind.prefix();
    if value.is_empty() {
        return Err(SidError::Missing { kind });
    }
    if !value.starts_with(prefix) {
        return Err(SidError::WrongPrefix {
            kind,
            seen: value.chars().take(2).collect(),
        });
    }
    let rest = &value[prefix.len()..];
    if rest.len() != 32 || !rest.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(SidError::Malformed {
            kind,
            chars: value.chars().count(),
        });
    }
    Ok(())
}

/// True when `value` looks like any SID of `kind`.
pub fn is(kind: SidKind, value: &str) -> bool {
    check(kind, value).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_and_rejects() {
        let good = "AC0123456789abcdef0123456789ABCDEF";
        assert!(check(SidKind::Account, good).is_ok());
        for (kind, value, needle) in [
            (SidKind::Account, "", "is required"),
            (
                SidKind::Account,
                "SK0123456789abcdef0123456789abcdef",
                "starting with AC",
            ),
            (SidKind::Account, "AC0123", "exactly 32 hex digits"),
            (
                SidKind::Account,
                "AC0123456789abcdef0123456789abcdeg",
                "exactly 32 hex digits",
            ),
            (SidKind::ApiKey, good, "starting with SK"),
            (SidKind::OAuthClient, "OQ123", "exactly 32"),
        ] {
            let err = check(kind, value).expect_err(value).to_string();
            assert!(err.contains(needle), "{value}: {err}");
        }
    }
}
