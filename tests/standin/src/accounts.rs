//! Twilio accounts as the key and Auth Token APIs see them: each account has
//! a primary Auth Token, at most one secondary Auth Token and API keys (Main,
//! Standard, Restricted), and HTTP Basic credentials are checked against them
//! exactly as WIRE.md section 6 says (`AC…` + an Auth Token, or `SK…` + the
//! key's secret).
//!
//! Invariant: a credential authenticates only while it is in this table. A
//! promoted-away primary, a deleted secondary and a deleted key are removed
//! from it, so they stop working for REST calls and for Access Token checks
//! ([`crate::Standin::verify_access_token`]) at the same moment.

use std::collections::BTreeMap;
use std::time::SystemTime;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use subtle::ConstantTimeEq as _;

/// The three kinds of API key (WIRE.md 4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyType {
    /// Everything, key and Auth Token management included; Console only.
    Main,
    /// Everything but the Accounts and Keys resources.
    Standard,
    /// A fine-grained `Policy`; created through IAM v1 only.
    Restricted,
}

/// An API key as the stand-in keeps it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ApiKey {
    /// `SK…`
    pub sid: String,
    /// The key's secret (Twilio shows it only at creation).
    pub secret: String,
    /// Its type.
    pub key_type: KeyType,
    /// `FriendlyName`, if given.
    pub friendly_name: Option<String>,
    /// The IAM `Policy` of a restricted key.
    pub policy: Option<serde_json::Value>,
    /// When it was created.
    #[serde(skip, default = "SystemTime::now")]
    pub created: SystemTime,
}

/// One account: its Auth Tokens and its keys.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Account {
    /// `AC…`
    pub account_sid: String,
    /// The primary Auth Token.
    pub auth_token: String,
    /// The secondary Auth Token, while one exists.
    pub secondary_auth_token: Option<String>,
    /// Keys by SID.
    pub keys: BTreeMap<String, ApiKey>,
}

/// Who a Basic `Authorization` header proved to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// `AC…` with the primary or the secondary Auth Token.
    AuthToken {
        /// The account.
        account_sid: String,
    },
    /// `SK…` with the key's secret.
    Key {
        /// The account owning the key.
        account_sid: String,
        /// The key's type.
        key_type: KeyType,
    },
}

impl Principal {
    /// The account the credential belongs to.
    pub fn account_sid(&self) -> &str {
        match self {
            Principal::AuthToken { account_sid } | Principal::Key { account_sid, .. } => {
                account_sid
            }
        }
    }

    /// Whether it may manage keys and Auth Tokens (a Main key or the Auth
    /// Token, WIRE.md 4.1).
    pub fn may_manage(&self) -> bool {
        matches!(
            self,
            Principal::AuthToken { .. }
                | Principal::Key {
                    key_type: KeyType::Main,
                    ..
                }
        )
    }
}

fn same(a: &str, b: &str) -> bool {
    bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// Checks a username and password against `accounts`.
pub fn authenticate(
    accounts: &BTreeMap<String, Account>,
    username: &str,
    password: &str,
) -> Option<Principal> {
    if username.starts_with("AC") {
        let account = accounts.get(username)?;
        let primary = same(&account.auth_token, password);
        let secondary = account
            .secondary_auth_token
            .as_deref()
            .is_some_and(|s| same(s, password));
        return (primary || secondary).then(|| Principal::AuthToken {
            account_sid: username.to_owned(),
        });
    }
    accounts.values().find_map(|account| {
        let key = account.keys.get(username)?;
        same(&key.secret, password).then(|| Principal::Key {
            account_sid: account.account_sid.clone(),
            key_type: key.key_type,
        })
    })
}

/// Splits `Basic base64(user:pass)` into its two halves.
pub fn basic_credentials(header: &str) -> Option<(String, String)> {
    let encoded = header.strip_prefix("Basic ")?;
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (user, pass) = decoded.split_once(':')?;
    Some((user.to_owned(), pass.to_owned()))
}

/// A random secret of 32 mixed-case alphanumerics, like Twilio's key secrets.
pub fn random_secret() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut bytes = [0u8; 32];
    rand::fill(&mut bytes);
    bytes
        .iter()
        .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
        .collect()
}

/// A random Auth Token: 32 lowercase hex digits.
pub fn random_auth_token() -> String {
    let mut bytes = [0u8; 16];
    rand::fill(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A random SID: `prefix` + 32 lowercase hex digits.
pub fn random_sid(prefix: &str) -> String {
    format!("{prefix}{}", random_auth_token())
}

/// Why an Access Token was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessTokenError {
    /// Not a compact JWS with JSON header and claims, `iss`, `sub` and `exp`.
    Malformed,
    /// `iss` names no key of the account in `sub` (never created, or deleted).
    UnknownKey,
    /// `iss` is a Restricted key, which cannot sign Access Tokens.
    RestrictedKey,
    /// The signature does not match the key's secret.
    BadSignature,
    /// `exp` has passed.
    Expired,
}

/// Checks an Access Token (WIRE.md section 1) as Twilio's SDK backends do:
/// HS256 under the secret of the key named by `iss`, a key of the account
/// named by `sub`, not yet expired. Returns the claims.
pub fn verify_access_token(
    accounts: &BTreeMap<String, Account>,
    token: &str,
    now_unix: u64,
) -> Result<serde_json::Value, AccessTokenError> {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use hmac::Mac as _;
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(AccessTokenError::Malformed);
    };
    let decode = |part: &str| -> Result<serde_json::Value, AccessTokenError> {
        let bytes = URL_SAFE_NO_PAD
            .decode(part)
            .map_err(|_| AccessTokenError::Malformed)?;
        serde_json::from_slice(&bytes).map_err(|_| AccessTokenError::Malformed)
    };
    let head = decode(header)?;
    let claims = decode(payload)?;
    if head["alg"] != "HS256" {
        return Err(AccessTokenError::Malformed);
    }
    let (Some(iss), Some(sub), Some(exp)) = (
        claims["iss"].as_str(),
        claims["sub"].as_str(),
        claims["exp"].as_u64(),
    ) else {
        return Err(AccessTokenError::Malformed);
    };
    let key = accounts
        .get(sub)
        .and_then(|account| account.keys.get(iss))
        .ok_or(AccessTokenError::UnknownKey)?;
    if key.key_type == KeyType::Restricted {
        return Err(AccessTokenError::RestrictedKey);
    }
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|_| AccessTokenError::Malformed)?;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key.secret.as_bytes())
        .map_err(|_| AccessTokenError::BadSignature)?;
    mac.update(header.as_bytes());
    mac.update(b".");
    mac.update(payload.as_bytes());
    mac.verify_slice(&signature)
        .map_err(|_| AccessTokenError::BadSignature)?;
    if exp <= now_unix {
        return Err(AccessTokenError::Expired);
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> (BTreeMap<String, Account>, ApiKey) {
        let key = ApiKey {
            sid: random_sid("SK"),
            secret: random_secret(),
            key_type: KeyType::Standard,
            friendly_name: None,
            policy: None,
            created: SystemTime::now(),
        };
        let account = Account {
            account_sid: "AC1".into(),
            auth_token: "primary".into(),
            secondary_auth_token: Some("secondary".into()),
            keys: [(key.sid.clone(), key.clone())].into(),
        };
        ([("AC1".to_owned(), account)].into(), key)
    }

    #[test]
    fn tokens_and_keys_authenticate_and_nothing_else_does() {
        let (accounts, key) = table();
        let token = Some(Principal::AuthToken {
            account_sid: "AC1".into(),
        });
        assert_eq!(authenticate(&accounts, "AC1", "primary"), token);
        assert_eq!(authenticate(&accounts, "AC1", "secondary"), token);
        assert_eq!(authenticate(&accounts, "AC1", "wrong"), None);
        assert_eq!(authenticate(&accounts, "AC2", "primary"), None);
        let by_key = authenticate(&accounts, &key.sid, &key.secret).expect("the key authenticates");
        assert!(!by_key.may_manage());
        assert_eq!(by_key.account_sid(), "AC1");
        assert_eq!(authenticate(&accounts, &key.sid, "primary"), None);
        assert_eq!(
            basic_credentials(&format!("Basic {}", STANDARD.encode("a:b:c"))),
            Some(("a".into(), "b:c".into()))
        );
        assert_eq!(basic_credentials("Bearer x"), None);
        assert_eq!(random_secret().len(), 32);
    }
}
