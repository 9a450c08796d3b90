//! Conversions between generated proto types and domain types.
//!
//! Inbound conversions validate and name the offending field; outbound ones
//! carry metadata only, never a secret.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use twilio_broker_api::v1 as pb;

use crate::credential::{
    self, Credential, KeyType, Kind, Lifecycle, Rotation, SealedSecret, Secret, TokenRotation,
};
use crate::error::{Error, Result};

/// A `SystemTime` as a protobuf timestamp.
pub fn timestamp(t: SystemTime) -> prost_types::Timestamp {
    let (seconds, nanos) = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => (
            i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            i32::try_from(d.subsec_nanos()).unwrap_or(0),
        ),
        Err(_) => (0, 0),
    };
    prost_types::Timestamp { seconds, nanos }
}

fn key_type_from_pb(field: &str, value: i32) -> Result<KeyType> {
    match pb::KeyType::try_from(value) {
        Ok(pb::KeyType::Main) => Ok(KeyType::Main),
        Ok(pb::KeyType::Standard) => Ok(KeyType::Standard),
        Ok(pb::KeyType::Restricted) => Ok(KeyType::Restricted),
        Ok(pb::KeyType::Unspecified) => Err(Error::invalid(
            field,
            "is required: KEY_TYPE_MAIN, KEY_TYPE_STANDARD or KEY_TYPE_RESTRICTED",
        )),
        Err(_) => Err(Error::invalid(field, format!("has unknown value {value}"))),
    }
}

/// The proto value of a domain key type.
pub fn key_type_to_pb(key_type: KeyType) -> pb::KeyType {
    match key_type {
        KeyType::Main => pb::KeyType::Main,
        KeyType::Standard => pb::KeyType::Standard,
        KeyType::Restricted => pb::KeyType::Restricted,
    }
}

fn kind_to_pb(kind: Kind) -> pb::CredentialKind {
    match kind {
        Kind::AuthToken => pb::CredentialKind::AuthToken,
        Kind::ApiKey => pb::CredentialKind::ApiKey,
        Kind::OAuthClient => pb::CredentialKind::OauthClient,
        Kind::Test => pb::CredentialKind::Test,
    }
}

fn secret(value: String) -> SealedSecret {
    // `From<String>` zeroizes the request's copy.
    SealedSecret::from(value)
}

/// A validated domain credential from a PutCredential request.
pub fn credential_from_put(
    request: pb::PutCredentialRequest,
    now: SystemTime,
) -> Result<Credential> {
    use pb::put_credential_request::Credential as Pb;
    // An Auth Token is its own manager (Twilio authenticates its secondary
    // Auth Token API with it): naming itself is accepted, and changes nothing.
    let own =
        matches!(request.credential, Some(Pb::AuthToken(_))) && request.manager == request.name;
    if !request.manager.is_empty()
        && !own
        && !matches!(request.credential, Some(Pb::ApiKey(_)) | None)
    {
        return Err(Error::invalid(
            "manager",
            "is only for api_key credentials: an Auth Token is its own manager (leave manager \
             empty or name the credential itself)",
        ));
    }
    let secret = match request.credential {
        None => {
            return Err(Error::invalid(
                "credential",
                "is required: one of auth_token, api_key, oauth_client or test",
            ));
        }
        Some(Pb::AuthToken(c)) => Secret::AuthToken {
            account_sid: c.account_sid,
            auth_token: secret(c.auth_token),
            secondary_auth_token: Some(c.secondary_auth_token)
                .filter(|s| !s.is_empty())
                .map(secret),
            rotation: None,
        },
        Some(Pb::ApiKey(c)) => Secret::ApiKey {
            key_type: key_type_from_pb("api_key.key_type", c.key_type)?,
            lifecycle: Lifecycle {
                manager: match request.manager.as_str() {
                    "" => None,
                    manager => {
                        credential::check_name("manager", manager)?;
                        Some(request.manager.clone())
                    }
                },
                ..Lifecycle::default()
            },
            account_sid: c.account_sid,
            key_sid: c.key_sid,
            secret: secret(c.secret),
        },
        Some(Pb::OauthClient(c)) => Secret::OAuthClient {
            account_sid: c.account_sid,
            client_id: c.client_id,
            client_secret: secret(c.client_secret),
        },
        Some(Pb::Test(c)) => Secret::Test {
            account_sid: c.account_sid,
            auth_token: secret(c.auth_token),
        },
    };
    let credential = Credential {
        name: request.name,
        labels: request.labels.into_iter().collect::<BTreeMap<_, _>>(),
        created_at: now,
        updated_at: now,
        secret,
    };
    credential::validate(&credential)?;
    Ok(credential)
}

/// The metadata of a credential, as the Admin API shows it. No secret.
pub fn metadata(credential: &Credential) -> pb::CredentialMetadata {
    let s = &credential.secret;
    let mut out = pb::CredentialMetadata {
        name: credential.name.clone(),
        kind: kind_to_pb(s.kind()).into(),
        account_sid: s.account_sid().to_owned(),
        labels: credential.labels.clone().into_iter().collect(),
        created_at: Some(timestamp(credential.created_at)),
        updated_at: Some(timestamp(credential.updated_at)),
        ..Default::default()
    };
    match s {
        Secret::ApiKey {
            key_sid,
            key_type,
            lifecycle,
            ..
        } => {
            out.key_sid = key_sid.clone();
            out.key_type = key_type_to_pb(*key_type).into();
            out.manager = lifecycle.manager.clone().unwrap_or_default();
            if let Some(Rotation::Retiring {
                previous,
                delete_after,
            }) = &lifecycle.rotation
                && let Secret::ApiKey { key_sid, .. } = previous.as_ref()
            {
                out.previous_key_sid = key_sid.clone();
                out.previous_deleted_after = Some(timestamp(*delete_after));
            }
            match &lifecycle.rotation {
                Some(Rotation::Creating { .. }) => out.rotation_step = "creating".into(),
                Some(Rotation::Retiring { delete_after, .. }) => {
                    out.rotation_step = "retiring".into();
                    out.rotation_step_after = Some(timestamp(*delete_after));
                }
                None => {}
            }
        }
        Secret::OAuthClient { client_id, .. } => out.client_id = client_id.clone(),
        Secret::AuthToken {
            secondary_auth_token,
            rotation,
            ..
        } => {
            out.has_secondary_auth_token = secondary_auth_token.is_some();
            let (step, after) = match rotation {
                None => ("", None),
                Some(TokenRotation::Creating) => ("creating", None),
                Some(TokenRotation::Promoting { promote_after, .. }) => {
                    ("promoting", Some(*promote_after))
                }
                Some(TokenRotation::Draining { drop_after }) => {
                    out.previous_deleted_after = Some(timestamp(*drop_after));
                    ("draining", Some(*drop_after))
                }
            };
            out.rotation_step = step.into();
            out.rotation_step_after = after.map(timestamp);
        }
        Secret::Test { .. } => {}
    }
    out
}
