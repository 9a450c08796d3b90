//! Credentials as the broker understands them: what kinds exist, what each
//! holds, and the rules a credential must meet before it is stored.
//!
//! **Invariant:** secrets live only in [`SealedSecret`] fields: sealed in
//! memory under the process's memory key, printed as `[sealed]`, and read
//! only through `open()` / `with_plaintext()` at the moment of use, which is
//! rare and greppable.

use std::collections::BTreeMap;
use std::time::SystemTime;

use crate::error::{Error, Result};
pub use crate::sealed_secret::SealedSecret;
use crate::sid::{self, SidKind};

/// The type of a Twilio API key (all share the `SK` prefix).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyType {
    /// Full account access, including /Accounts and /Keys.
    Main,
    /// Everything except /Accounts and /Keys.
    Standard,
    /// Only its policy's permissions; cannot sign Access Tokens.
    Restricted,
}

impl KeyType {
    /// Lower-case name as used by the CLI and labels.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyType::Main => "main",
            KeyType::Standard => "standard",
            KeyType::Restricted => "restricted",
        }
    }
}

/// The kind of a stored credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Account SID + Auth Token.
    AuthToken,
    /// API key SID + secret.
    ApiKey,
    /// OAuth client id + secret.
    OAuthClient,
    /// Test Account SID + test Auth Token.
    Test,
}

impl Kind {
    /// Name as used in the proto oneof and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::AuthToken => "auth_token",
            Kind::ApiKey => "api_key",
            Kind::OAuthClient => "oauth_client",
            Kind::Test => "test",
        }
    }
}

/// The secret-bearing part of a credential, one variant per kind.
#[derive(Debug, Clone)]
pub enum Secret {
    /// Account SID + Auth Token.
    AuthToken {
        /// `AC...`
        account_sid: String,
        /// The Auth Token.
        auth_token: SealedSecret,
        /// A secondary Auth Token, while one exists (issue 18: during a
        /// rotation Twilio may sign with either, so webhooks validate with
        /// both).
        secondary_auth_token: Option<SealedSecret>,
        /// An Auth Token rotation that has not finished (issue 18); None
        /// for every record written without one.
        rotation: Option<TokenRotation>,
    },
    /// An API key.
    ApiKey {
        /// `AC...`
        account_sid: String,
        /// `SK...`
        key_sid: String,
        /// The key secret.
        secret: SealedSecret,
        /// Main, Standard or Restricted.
        key_type: KeyType,
        /// Manager, minted lifetimes and a rotation in progress (issue 18).
        /// Kept beside the key it describes, so every stored record of
        /// other kinds reads and writes exactly as before.
        lifecycle: Lifecycle,
    },
    /// An OAuth app's client credentials.
    OAuthClient {
        /// `AC...`
        account_sid: String,
        /// `OQ...`
        client_id: String,
        /// The client secret.
        client_secret: SealedSecret,
    },
    /// Test credentials.
    Test {
        /// The test `AC...`
        account_sid: String,
        /// The test Auth Token.
        auth_token: SealedSecret,
    },
}

impl Secret {
    /// Which kind this is.
    pub fn kind(&self) -> Kind {
        match self {
            Secret::AuthToken { .. } => Kind::AuthToken,
            Secret::ApiKey { .. } => Kind::ApiKey,
            Secret::OAuthClient { .. } => Kind::OAuthClient,
            Secret::Test { .. } => Kind::Test,
        }
    }

    /// The Account SID, present in every kind.
    pub fn account_sid(&self) -> &str {
        match self {
            Secret::AuthToken { account_sid, .. }
            | Secret::ApiKey { account_sid, .. }
            | Secret::OAuthClient { account_sid, .. }
            | Secret::Test { account_sid, .. } => account_sid,
        }
    }

    /// The secret value itself, whatever the kind.
    pub fn secret_value(&self) -> &SealedSecret {
        match self {
            Secret::AuthToken { auth_token, .. } | Secret::Test { auth_token, .. } => auth_token,
            Secret::ApiKey { secret, .. } => secret,
            Secret::OAuthClient { client_secret, .. } => client_secret,
        }
    }
}

/// A stored credential: its name, labels, times and secret.
#[derive(Debug, Clone)]
pub struct Credential {
    /// Unique name, checked by [`check_name`].
    pub name: String,
    /// Operator labels; `environment` is read by Recommend's review.
    pub labels: BTreeMap<String, String>,
    /// When first stored.
    pub created_at: SystemTime,
    /// When last replaced.
    pub updated_at: SystemTime,
    /// The kind-specific, secret-bearing part.
    pub secret: Secret,
}

/// What the broker keeps about an API key besides its secret, for
/// rotation (issue 18). The default (no manager, nothing minted, no
/// rotation) is what every credential stored before issue 18 reads as.
#[derive(Debug, Clone, Default)]
pub struct Lifecycle {
    /// The stored credential (a Main key or the Auth Token of the same
    /// account) that creates and deletes this credential's keys at Twilio.
    pub manager: Option<String>,
    /// The longest lifetime of an Access Token minted with the current key,
    /// as recorded in the store (written with each rotation step).
    pub recorded_max_ttl_seconds: u64,
    /// The longest lifetime minted with this stored version since it was
    /// loaded: raised by every mint without a lock (the minting invariant).
    pub minted: MintedTtl,
    /// A rotation that has not finished, so a restart can finish it.
    pub rotation: Option<Rotation>,
}

impl Lifecycle {
    /// The longest lifetime known to be minted with the current key.
    pub fn max_ttl_seconds(&self) -> u64 {
        self.recorded_max_ttl_seconds.max(self.minted.get())
    }
}

/// The longest TTL minted with one stored version of a credential: an
/// atomic maximum, so minting stays lock-free. Cloning copies the value.
#[derive(Debug, Default)]
pub struct MintedTtl(std::sync::atomic::AtomicU64);

impl MintedTtl {
    /// Raises the maximum to `seconds`.
    pub fn note(&self, seconds: u64) {
        self.0
            .fetch_max(seconds, std::sync::atomic::Ordering::Relaxed);
    }
    /// The maximum so far (0: nothing minted).
    pub fn get(&self) -> u64 {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Clone for MintedTtl {
    fn clone(&self) -> Self {
        MintedTtl(std::sync::atomic::AtomicU64::new(self.get()))
    }
}

/// Where an unfinished rotation stands, as the sealed record says.
///
/// **Invariant:** the record names a step before the step's Twilio call
/// can leave something behind: `Creating` is stored before the key is
/// created, `Retiring` (new key current, old key kept) in the same write
/// that makes the new key current. A start-up therefore always knows both
/// keys, or knows that a created key may be orphaned and reports it.
#[derive(Debug, Clone)]
pub enum Rotation {
    /// A new key is being created at Twilio under this friendly name; the
    /// current key is still the old one. Found at start-up, the rotation is
    /// rolled back (the marker cleared) and the possible orphan reported.
    Creating {
        /// The `FriendlyName` the new key gets at Twilio.
        friendly_name: String,
    },
    /// The new key is current; the previous one stays alive until
    /// `delete_after`, then is deleted at Twilio and forgotten.
    Retiring {
        /// The previous key (`Secret::ApiKey`).
        previous: Box<Secret>,
        /// When every token minted with it has expired.
        delete_after: SystemTime,
    },
}

/// Where an unfinished Auth Token rotation stands, as the sealed record
/// says (`rotation/token.rs` drives it).
///
/// **Invariant:** as for [`Rotation`], the record names a step before its
/// Twilio call can leave something behind: `Creating` before the secondary
/// is created, `Promoting` (with the secondary stored) before it is
/// promoted, `Draining` in the write that makes the promoted token the
/// primary. While a secondary exists at Twilio the record holds it, so
/// webhooks signed with either token validate throughout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenRotation {
    /// A secondary Auth Token is being created at Twilio; none is stored
    /// yet. Found at start-up, the rotation is rolled back: the secondary
    /// is deleted at Twilio (with the primary) and the marker cleared.
    Creating,
    /// The new token is stored as `secondary_auth_token`; Twilio promotes it
    /// after `promote_after`, then the old primary is kept as the secondary
    /// for `overlap`.
    Promoting {
        /// When the promotion may happen (after the propagation delay).
        promote_after: SystemTime,
        /// How long the old token keeps validating webhooks afterwards.
        overlap: std::time::Duration,
    },
    /// Promoted: the new token is the primary (the old one no longer works
    /// at Twilio) and the old one is the secondary, for webhooks signed
    /// before the promotion, until `drop_after`, when the broker forgets it.
    Draining {
        /// When the old token is forgotten.
        drop_after: SystemTime,
    },
}

impl Credential {
    /// The value of the `environment` label, if any.
    pub fn environment_label(&self) -> Option<&str> {
        self.labels.get("environment").map(String::as_str)
    }
}

/// Longest accepted credential name.
pub const MAX_NAME_LEN: usize = 128;
/// Longest accepted secret, in bytes.
pub const MAX_SECRET_LEN: usize = 4096;
/// Most labels on one credential.
pub const MAX_LABELS: usize = 64;

/// Checks a credential name: 1 to 128 characters of `[A-Za-z0-9._:/-]`,
/// starting with a letter or digit.
pub fn check_name(field: &str, name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(Error::invalid(field, "is required"));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(Error::invalid(
            field,
            format!(
                "is {} characters long; the limit is {MAX_NAME_LEN}",
                name.len()
            ),
        ));
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/' | ':');
    if !name.starts_with(|c: char| c.is_ascii_alphanumeric()) || !name.chars().all(allowed) {
        return Err(Error::invalid(
            field,
            "must start with a letter or digit and use only letters, digits and . _ - / :",
        ));
    }
    Ok(())
}

fn check_labels(labels: &BTreeMap<String, String>) -> Result<()> {
    if labels.len() > MAX_LABELS {
        return Err(Error::invalid(
            "labels",
            format!("has {} entries; the limit is {MAX_LABELS}", labels.len()),
        ));
    }
    for (key, value) in labels {
        let key_ok = !key.is_empty()
            && key.len() <= 63
            && key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/'));
        if !key_ok {
            return Err(Error::invalid(
                "labels",
                format!("key {key:?} must be 1 to 63 characters of letters, digits and . _ - /"),
            ));
        }
        if value.len() > 256 || value.chars().any(char::is_control) {
            return Err(Error::invalid(
                format!("labels[{key}]"),
                "must be at most 256 characters with no control characters",
            ));
        }
    }
    Ok(())
}

/// Checks a secret's shape without ever putting its value into the error.
fn check_secret(field: &str, secret: &SealedSecret) -> Result<()> {
    let value = secret.open();
    if value.is_empty() {
        return Err(Error::invalid(field, "is required"));
    }
    if value.len() > MAX_SECRET_LEN {
        return Err(Error::invalid(
            field,
            format!("is longer than {MAX_SECRET_LEN} bytes"),
        ));
    }
    if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Error::invalid(
            field,
            "contains whitespace or control characters (a common copy-paste mistake Twilio rejects with 20003)",
        ));
    }
    Ok(())
}

fn check_sid(field: &str, kind: SidKind, value: &str) -> Result<()> {
    sid::check(kind, value).map_err(|reason| Error::invalid(field, reason.to_string()))
}

/// Checks a whole credential before it is stored. `prefix` is the proto field
/// of the credential (e.g. `api_key`) so errors name `api_key.key_sid`.
pub fn validate(credential: &Credential) -> Result<()> {
    check_name("name", &credential.name)?;
    check_labels(&credential.labels)?;
    let secret = &credential.secret;
    let prefix = secret.kind().as_str();
    let field = |name: &str| format!("{prefix}.{name}");
    check_sid(
        &field("account_sid"),
        SidKind::Account,
        secret.account_sid(),
    )?;
    match secret {
        Secret::AuthToken {
            auth_token,
            secondary_auth_token: Some(secondary),
            ..
        } => {
            check_secret(&field("auth_token"), auth_token)?;
            check_secret(&field("secondary_auth_token"), secondary)?;
            if *auth_token.open() == *secondary.open() {
                return Err(Error::invalid(
                    field("secondary_auth_token"),
                    "is the same as auth_token; leave it empty unless the account has a \
                     second Auth Token",
                ));
            }
        }
        Secret::AuthToken { .. } | Secret::Test { .. } => {
            check_secret(&field("auth_token"), secret.secret_value())?;
        }
        Secret::ApiKey { key_sid, .. } => {
            check_sid(&field("key_sid"), SidKind::ApiKey, key_sid)?;
            check_secret(&field("secret"), secret.secret_value())?;
        }
        Secret::OAuthClient { client_id, .. } => {
            check_sid(&field("client_id"), SidKind::OAuthClient, client_id)?;
            check_secret(&field("client_secret"), secret.secret_value())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const AC: &str = "AC0123456789abcdef0123456789abcdef";
    const SK: &str = "SKfedcba9876543210fedcba9876543210";

    fn api_key(name: &str, key_sid: &str, secret: &str) -> Credential {
        Credential {
            name: name.into(),
            labels: BTreeMap::new(),
            created_at: SystemTime::now(),
            updated_at: SystemTime::now(),
            secret: Secret::ApiKey {
                account_sid: AC.into(),
                key_sid: key_sid.into(),
                secret: SealedSecret::from(secret),
                key_type: KeyType::Standard,
                lifecycle: Default::default(),
            },
        }
    }

    #[test]
    fn validation_names_the_field_and_never_the_secret() {
        let cases = [
            (api_key("", SK, "s3cr3t"), "name"),
            (api_key("-bad", SK, "s3cr3t"), "name"),
            (api_key("ok", "SK1", "s3cr3t"), "api_key.key_sid"),
            (api_key("ok", AC, "s3cr3t"), "api_key.key_sid"),
            (api_key("ok", SK, ""), "api_key.secret"),
            (api_key("ok", SK, "has space-s3cr3t"), "api_key.secret"),
        ];
        for (credential, field) in cases {
            let err = validate(&credential).expect_err(field).to_string();
            assert!(err.starts_with(field), "{err}");
            assert!(!err.contains("s3cr3t"), "secret echoed: {err}");
        }
        assert!(validate(&api_key("prod/key-1", SK, "s3cr3t")).is_ok());
    }

    #[test]
    fn debug_redacts_secrets() {
        let shown = format!("{:?}", api_key("k", SK, "hunter2-secret"));
        assert!(!shown.contains("hunter2-secret"), "{shown}");
    }
}
