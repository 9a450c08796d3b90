//! The plaintext form of a credential record, before sealing and after opening.
//!
//! JSON with a schema version; the buffers holding it are zeroized.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use zeroize::Zeroizing;

use crate::credential::{Credential, KeyType, Kind, SealedSecret, Secret};

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordV1<'a> {
    v: u32,
    name: std::borrow::Cow<'a, str>,
    kind: Kind,
    account_sid: std::borrow::Cow<'a, str>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    key_sid: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    key_type: Option<KeyType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    client_id: Option<std::borrow::Cow<'a, str>>,
    secret: std::borrow::Cow<'a, str>,
    /// An `auth_token` credential's secondary Auth Token (issue 18). Absent
    /// in records written before it existed, and whenever there is none, so
    /// those records read and write exactly as before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    secondary: Option<std::borrow::Cow<'a, str>>,
    labels: BTreeMap<String, String>,
    created_ms: u64,
    updated_ms: u64,
}

fn to_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn from_ms(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

/// Serialises a credential, secret included, into a zeroizing buffer.
pub(crate) fn encode(credential: &Credential) -> Zeroizing<Vec<u8>> {
    use std::borrow::Cow::Borrowed;
    let s = &credential.secret;
    let (key_sid, key_type, client_id) = match s {
        Secret::ApiKey {
            key_sid, key_type, ..
        } => (Some(Borrowed(key_sid.as_str())), Some(*key_type), None),
        Secret::OAuthClient { client_id, .. } => (None, None, Some(Borrowed(client_id.as_str()))),
        _ => (None, None, None),
    };
    // The one moment a stored secret is in clear on the way to the store.
    let secret = s.secret_value().open();
    let secondary = match s {
        Secret::AuthToken {
            secondary_auth_token: Some(secondary),
            ..
        } => Some(secondary.open()),
        _ => None,
    };
    let record = RecordV1 {
        v: 1,
        name: Borrowed(&credential.name),
        kind: s.kind(),
        account_sid: Borrowed(s.account_sid()),
        key_sid,
        key_type,
        client_id,
        secret: Borrowed(secret.as_str()),
        secondary: secondary.as_ref().map(|s| Borrowed(s.as_str())),
        labels: credential.labels.clone(),
        created_ms: to_ms(credential.created_at),
        updated_ms: to_ms(credential.updated_at),
    };
    // Serialising plain strings and maps cannot fail.
    Zeroizing::new(serde_json::to_vec(&record).unwrap_or_default())
}

/// Why an opened record is not a credential. Never includes record content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum DecodeError {
    /// Not the record's JSON.
    #[error("record does not parse (line {line}, column {column})")]
    Parse {
        /// Where the parser stopped.
        line: usize,
        /// Where the parser stopped.
        column: usize,
    },
    /// A schema version this broker does not read.
    #[error("record schema version {0} is not supported")]
    Version(u64),
    /// A field its kind needs is absent.
    #[error("record of kind {kind} lacks {field}")]
    Missing {
        /// The record's kind.
        kind: &'static str,
        /// The absent field.
        field: &'static str,
    },
}

/// Parses an opened record. The error never includes record content.
pub(crate) fn decode(plaintext: &[u8]) -> Result<Credential, DecodeError> {
    let mut record: RecordV1<'_> =
        serde_json::from_slice(plaintext).map_err(|e| DecodeError::Parse {
            line: e.line(),
            column: e.column(),
        })?;
    if record.v != 1 {
        return Err(DecodeError::Version(u64::from(record.v)));
    }
    let missing = |field: &'static str| DecodeError::Missing {
        kind: record.kind.as_str(),
        field,
    };
    let account_sid = record.account_sid.clone().into_owned();
    // A secret without JSON escapes is borrowed from the (zeroizing) plaintext
    // and sealed without another copy; an escaped one is unescaped into a
    // `String` that `SealedSecret::from` zeroizes.
    let secret_value = match std::mem::take(&mut record.secret) {
        std::borrow::Cow::Borrowed(text) => SealedSecret::new(text),
        std::borrow::Cow::Owned(text) => SealedSecret::from(text),
    };
    let secret = match record.kind {
        Kind::AuthToken => Secret::AuthToken {
            account_sid,
            auth_token: secret_value,
            secondary_auth_token: record.secondary.take().map(|text| match text {
                std::borrow::Cow::Borrowed(text) => SealedSecret::new(text),
                std::borrow::Cow::Owned(text) => SealedSecret::from(text),
            }),
        },
        Kind::Test => Secret::Test {
            account_sid,
            auth_token: secret_value,
        },
        Kind::ApiKey => Secret::ApiKey {
            account_sid,
            key_sid: record
                .key_sid
                .clone()
                .ok_or_else(|| missing("key_sid"))?
                .into_owned(),
            secret: secret_value,
            key_type: record.key_type.ok_or_else(|| missing("key_type"))?,
        },
        Kind::OAuthClient => Secret::OAuthClient {
            account_sid,
            client_id: record
                .client_id
                .clone()
                .ok_or_else(|| missing("client_id"))?
                .into_owned(),
            client_secret: secret_value,
        },
    };
    Ok(Credential {
        name: record.name.into_owned(),
        labels: record.labels,
        created_at: from_ms(record.created_ms),
        updated_at: from_ms(record.updated_ms),
        secret,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn random_token() -> String {
        let mut bytes = [0u8; 16];
        rand::fill(&mut bytes);
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn a_record_without_a_secondary_reads_and_writes_as_before() {
        let token = random_token();
        // A record as written before the secondary existed.
        let old = format!(
            r#"{{"v":1,"name":"hooks","kind":"auth_token","account_sid":"AC{}","secret":"{token}","labels":{{}},"created_ms":1,"updated_ms":2}}"#,
            "0".repeat(32)
        );
        let credential = decode(old.as_bytes()).unwrap();
        let Secret::AuthToken {
            auth_token,
            secondary_auth_token,
            ..
        } = &credential.secret
        else {
            panic!("not an auth_token")
        };
        assert_eq!(*auth_token.open(), token);
        assert!(secondary_auth_token.is_none());
        assert_eq!(&*encode(&credential), old.as_bytes());
    }

    #[test]
    fn a_secondary_auth_token_survives_the_round_trip() {
        let (primary, secondary) = (random_token(), random_token());
        let credential = Credential {
            name: "hooks".into(),
            labels: BTreeMap::new(),
            created_at: from_ms(1),
            updated_at: from_ms(2),
            secret: Secret::AuthToken {
                account_sid: format!("AC{}", "0".repeat(32)),
                auth_token: SealedSecret::from(primary.clone()),
                secondary_auth_token: Some(SealedSecret::from(secondary.clone())),
            },
        };
        let bytes = encode(&credential);
        let back = decode(&bytes).unwrap();
        let Secret::AuthToken {
            auth_token,
            secondary_auth_token: Some(second),
            ..
        } = &back.secret
        else {
            panic!("secondary lost")
        };
        assert_eq!(
            (auth_token.open().as_str(), second.open().as_str()),
            (primary.as_str(), secondary.as_str())
        );
        assert!(String::from_utf8_lossy(&bytes).contains(r#""secondary":""#));
    }
}
