//! The plaintext form of a credential record, before sealing and after opening.
//!
//! JSON with a schema version; the buffers holding it are zeroized.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use zeroize::Zeroizing;

use crate::credential::{
    Credential, KeyType, Kind, Lifecycle, Rotation, SealedSecret, Secret, TokenRotation,
};

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
    /// An `api_key` credential's manager (issue 18); absent when none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    manager: Option<std::borrow::Cow<'a, str>>,
    /// The longest TTL minted with an `api_key` credential's current key;
    /// absent when none is known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_ttl_s: Option<u64>,
    /// An unfinished rotation; absent when none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rotation: Option<RotationRecord<'a>>,
    labels: BTreeMap<String, String>,
    created_ms: u64,
    updated_ms: u64,
}

/// The stored form of [`Rotation`]: `step` says which.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, tag = "step", rename_all = "snake_case")]
enum RotationRecord<'a> {
    /// The new key is being created at Twilio under this name.
    Creating {
        friendly_name: std::borrow::Cow<'a, str>,
    },
    /// The new key is current; the previous one is deleted after `delete_after_ms`.
    Retiring {
        previous_key_sid: std::borrow::Cow<'a, str>,
        previous_secret: std::borrow::Cow<'a, str>,
        delete_after_ms: u64,
    },
    /// An `auth_token` credential: a secondary Auth Token is being created.
    CreatingSecondary,
    /// An `auth_token` credential: the secondary (stored in `secondary`) is
    /// promoted after `promote_after_ms`; the old token then validates
    /// webhooks for `overlap_ms` more.
    Promoting {
        promote_after_ms: u64,
        overlap_ms: u64,
    },
    /// An `auth_token` credential: promoted; the old token (in `secondary`)
    /// is forgotten after `drop_after_ms`.
    Draining { drop_after_ms: u64 },
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
    let lifecycle = match s {
        Secret::ApiKey { lifecycle, .. } => Some(lifecycle),
        _ => None,
    };
    // The previous key's secret, in clear only on its way to the store.
    let previous = lifecycle.and_then(|l| match &l.rotation {
        Some(Rotation::Retiring {
            previous,
            delete_after,
        }) => match previous.as_ref() {
            Secret::ApiKey {
                key_sid, secret, ..
            } => Some((key_sid.as_str(), secret.open(), *delete_after)),
            _ => None,
        },
        _ => None,
    });
    let rotation = lifecycle.and_then(|l| match &l.rotation {
        Some(Rotation::Creating { friendly_name }) => Some(RotationRecord::Creating {
            friendly_name: Borrowed(friendly_name.as_str()),
        }),
        Some(Rotation::Retiring { .. }) => {
            previous
                .as_ref()
                .map(|(sid, secret, after)| RotationRecord::Retiring {
                    previous_key_sid: Borrowed(sid),
                    previous_secret: Borrowed(secret.as_str()),
                    delete_after_ms: to_ms(*after),
                })
        }
        None => None,
    });
    let rotation = match s {
        Secret::AuthToken {
            rotation: Some(step),
            ..
        } => Some(match step {
            TokenRotation::Creating => RotationRecord::CreatingSecondary,
            TokenRotation::Promoting {
                promote_after,
                overlap,
            } => RotationRecord::Promoting {
                promote_after_ms: to_ms(*promote_after),
                overlap_ms: u64::try_from(overlap.as_millis()).unwrap_or(u64::MAX),
            },
            TokenRotation::Draining { drop_after } => RotationRecord::Draining {
                drop_after_ms: to_ms(*drop_after),
            },
        }),
        _ => rotation,
    };
    let record = RecordV1 {
        v: 1,
        manager: lifecycle.and_then(|l| l.manager.as_deref().map(Borrowed)),
        max_ttl_s: lifecycle
            .map(Lifecycle::max_ttl_seconds)
            .filter(|ttl| *ttl > 0),
        rotation,
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
            rotation: match record.rotation.take() {
                None => None,
                Some(RotationRecord::CreatingSecondary) => Some(TokenRotation::Creating),
                Some(RotationRecord::Promoting {
                    promote_after_ms,
                    overlap_ms,
                }) => Some(TokenRotation::Promoting {
                    promote_after: from_ms(promote_after_ms),
                    overlap: Duration::from_millis(overlap_ms),
                }),
                Some(RotationRecord::Draining { drop_after_ms }) => Some(TokenRotation::Draining {
                    drop_after: from_ms(drop_after_ms),
                }),
                Some(_) => return Err(missing("an Auth Token rotation step")),
            },
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
            lifecycle: Lifecycle {
                manager: record.manager.take().map(std::borrow::Cow::into_owned),
                recorded_max_ttl_seconds: record.max_ttl_s.unwrap_or(0),
                minted: Default::default(),
                rotation: match record.rotation.take() {
                    None => None,
                    Some(RotationRecord::Creating { friendly_name }) => Some(Rotation::Creating {
                        friendly_name: friendly_name.into_owned(),
                    }),
                    Some(RotationRecord::Retiring {
                        previous_key_sid,
                        previous_secret,
                        delete_after_ms,
                    }) => Some(Rotation::Retiring {
                        previous: Box::new(Secret::ApiKey {
                            account_sid: record.account_sid.clone().into_owned(),
                            key_sid: previous_key_sid.into_owned(),
                            secret: match previous_secret {
                                std::borrow::Cow::Borrowed(text) => SealedSecret::new(text),
                                std::borrow::Cow::Owned(text) => SealedSecret::from(text),
                            },
                            key_type: record.key_type.ok_or_else(|| missing("key_type"))?,
                            lifecycle: Lifecycle::default(),
                        }),
                        delete_after: from_ms(delete_after_ms),
                    }),
                    Some(_) => return Err(missing("an API key rotation step")),
                },
            },
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
                rotation: None,
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

    #[test]
    fn an_api_key_record_keeps_its_manager_ttl_and_rotation_and_old_records_read_as_before() {
        let account = format!("AC{}", "0".repeat(32));
        let (current, previous) = (random_token(), random_token());
        // A record as written before issue 18.
        let old = format!(
            r#"{{"v":1,"name":"app","kind":"api_key","account_sid":"{account}","key_sid":"SK{}","key_type":"standard","secret":"{current}","labels":{{}},"created_ms":1,"updated_ms":2}}"#,
            "1".repeat(32)
        );
        let credential = decode(old.as_bytes()).unwrap();
        let Secret::ApiKey { lifecycle, .. } = &credential.secret else {
            panic!("not an api_key")
        };
        assert!(lifecycle.manager.is_none() && lifecycle.rotation.is_none());
        assert_eq!(&*encode(&credential), old.as_bytes());

        let delete_after = from_ms(1_900_000_000_000);
        let mut rotating = credential.clone();
        if let Secret::ApiKey { lifecycle, .. } = &mut rotating.secret {
            lifecycle.manager = Some("acme-token".into());
            lifecycle.minted.note(3600);
            lifecycle.rotation = Some(Rotation::Retiring {
                previous: Box::new(Secret::ApiKey {
                    account_sid: account.clone(),
                    key_sid: format!("SK{}", "2".repeat(32)),
                    secret: SealedSecret::from(previous.clone()),
                    key_type: KeyType::Standard,
                    lifecycle: Lifecycle::default(),
                }),
                delete_after,
            });
        }
        let back = decode(&encode(&rotating)).unwrap();
        let Secret::ApiKey { lifecycle, .. } = &back.secret else {
            panic!("not an api_key")
        };
        assert_eq!(lifecycle.manager.as_deref(), Some("acme-token"));
        assert_eq!(lifecycle.recorded_max_ttl_seconds, 3600);
        let Some(Rotation::Retiring {
            previous: kept,
            delete_after: when,
        }) = &lifecycle.rotation
        else {
            panic!("rotation lost")
        };
        assert_eq!(*when, delete_after);
        assert_eq!(kept.secret_value().open().as_str(), previous);

        let mut creating = credential;
        if let Secret::ApiKey { lifecycle, .. } = &mut creating.secret {
            lifecycle.rotation = Some(Rotation::Creating {
                friendly_name: "twilio-broker app".into(),
            });
        }
        let back = decode(&encode(&creating)).unwrap();
        let Secret::ApiKey { lifecycle, .. } = &back.secret else {
            panic!("not an api_key")
        };
        assert!(
            matches!(&lifecycle.rotation, Some(Rotation::Creating { friendly_name }) if friendly_name == "twilio-broker app")
        );
    }

    #[test]
    fn every_auth_token_rotation_step_survives_the_round_trip() {
        let (primary, secondary) = (random_token(), random_token());
        let steps = [
            TokenRotation::Creating,
            TokenRotation::Promoting {
                promote_after: from_ms(1_900_000_000_000),
                overlap: Duration::from_millis(300_000),
            },
            TokenRotation::Draining {
                drop_after: from_ms(1_900_000_500_000),
            },
        ];
        for step in steps {
            let credential = Credential {
                name: "hooks".into(),
                labels: BTreeMap::new(),
                created_at: from_ms(1),
                updated_at: from_ms(2),
                secret: Secret::AuthToken {
                    account_sid: format!("AC{}", "0".repeat(32)),
                    auth_token: SealedSecret::from(primary.clone()),
                    secondary_auth_token: Some(SealedSecret::from(secondary.clone())),
                    rotation: Some(step.clone()),
                },
            };
            let bytes = encode(&credential);
            let back = decode(&bytes).unwrap();
            let Secret::AuthToken {
                rotation,
                secondary_auth_token: Some(second),
                ..
            } = &back.secret
            else {
                panic!("lost")
            };
            assert_eq!(rotation.as_ref(), Some(&step));
            assert_eq!(second.open().as_str(), secondary);
        }
        // A step of the other kind is refused, not misread.
        let wrong = format!(
            r#"{{"v":1,"name":"app","kind":"api_key","account_sid":"AC{}","key_sid":"SK{}","key_type":"standard","secret":"s","rotation":{{"step":"draining","drop_after_ms":1}},"labels":{{}},"created_ms":1,"updated_ms":2}}"#,
            "0".repeat(32),
            "1".repeat(32)
        );
        assert!(matches!(
            decode(wrong.as_bytes()),
            Err(DecodeError::Missing { .. })
        ));
    }
}
