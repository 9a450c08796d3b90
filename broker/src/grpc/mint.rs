//! MintAccessToken at the edge: proto request to [`TokenRequest`] (naming the
//! bad field), request rules before the credential lookup, then the minter.
//!
//! Order of checks: INVALID_ARGUMENT (the request alone), then NOT_FOUND (the
//! credential), then FAILED_PRECONDITION (its kind or key type).

use std::time::SystemTime;

use prost_types::value::Kind as ValueKind;
use twilio_broker_api::v1 as pb;

use super::Services;
use crate::error::{Error, Result};
use crate::mint::json::{self, Json, Object};
use crate::mint::{self, Grants, TokenRequest};

/// A mint request converted into the token it will produce (what the guard
/// checks, authorizes and hands to [`mint_access_token`]).
pub(crate) struct CheckedMint {
    /// The credential that signs.
    pub credential: String,
    /// The token's content.
    pub token: TokenRequest,
}

/// Serves one MintAccessToken call, already converted and checked by the
/// guard (the request rules come before the credential lookup).
pub(super) fn mint_access_token(
    state: &Services,
    request: CheckedMint,
) -> Result<pb::MintAccessTokenResponse> {
    let checked = request.token.check()?;
    let now = SystemTime::now();
    // The request alone decides "never valid": before the lookup, so an
    // impossible request is INVALID_ARGUMENT whether or not the credential exists.
    checked.check_window(now)?;
    let credential = state.vault.lookup(&request.credential)?;
    let minted = state.minter.mint(&credential, checked, now)?;
    // The longest lifetime minted with this key sets the default overlap of
    // its rotation; an atomic maximum, so minting stays lock-free.
    if let crate::credential::Secret::ApiKey { lifecycle, .. } = &credential.secret {
        let issued = now
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let ttl = u64::try_from(minted.expires_at)
            .unwrap_or(0)
            .saturating_sub(issued);
        lifecycle.minted.note(ttl);
    }
    Ok(pb::MintAccessTokenResponse {
        token: minted.token,
        expires_at: Some(prost_types::Timestamp {
            seconds: minted.expires_at,
            nanos: 0,
        }),
        jti: minted.jti,
    })
}

/// The credential name and the domain request.
pub(crate) fn token_request(request: pb::MintAccessTokenRequest) -> Result<(String, TokenRequest)> {
    let not_before = match request.not_before {
        None => None,
        Some(t) if (0..1_000_000_000).contains(&t.nanos) => Some(t.seconds),
        Some(_) => {
            return Err(Error::invalid(
                "not_before",
                "has nanos outside 0..999999999",
            ));
        }
    };
    let playback = match (request.playback, request.playback_json.is_empty()) {
        (Some(_), false) => {
            return Err(Error::invalid(
                "playback_json",
                "set playback or playback_json, not both",
            ));
        }
        (Some(s), true) => Some(object_from_struct("playback", s)?),
        (None, false) => Some(
            json::parse_object(&request.playback_json)
                .map_err(|reason| Error::invalid("playback_json", reason.to_string()))?,
        ),
        (None, true) => None,
    };
    let grants = Grants {
        voice: request.voice.map(voice).transpose()?,
        video: request.video.map(|v| mint::VideoGrant { room: v.room }),
        chat: request.chat.map(|c| mint::ChatGrant {
            service_sid: c.service_sid,
            endpoint_id: c.endpoint_id,
            deployment_role_sid: c.deployment_role_sid,
            push_credential_sid: c.push_credential_sid,
        }),
        sync: request.sync.map(|s| mint::SyncGrant {
            service_sid: s.service_sid,
            endpoint_id: s.endpoint_id,
        }),
        task_router: request.task_router.map(|t| mint::TaskRouterGrant {
            workspace_sid: t.workspace_sid,
            worker_sid: t.worker_sid,
            role: t.role,
        }),
        playback,
    };
    Ok((
        request.credential,
        TokenRequest {
            identity: request.identity,
            ttl_seconds: request.ttl_seconds,
            not_before,
            region: request.region,
            grants,
        },
    ))
}

fn voice(v: pb::VoiceGrant) -> Result<mint::VoiceGrant> {
    let params = match (
        v.outgoing_application_params.is_empty(),
        v.outgoing_application_params_json.is_empty(),
    ) {
        (false, false) => {
            return Err(Error::invalid(
                "voice.outgoing_application_params_json",
                "set outgoing_application_params or outgoing_application_params_json, not both",
            ));
        }
        (true, false) => {
            json::parse_object(&v.outgoing_application_params_json).map_err(|reason| {
                Error::invalid("voice.outgoing_application_params_json", reason.to_string())
            })?
        }
        (false, true) => {
            if v.outgoing_application_params.len() > json::MAX_JSON_KEYS {
                return Err(Error::invalid(
                    "voice.outgoing_application_params",
                    format!(
                        "has {} entries; the limit is {}",
                        v.outgoing_application_params.len(),
                        json::MAX_JSON_KEYS
                    ),
                ));
            }
            // A proto map has no order: emit it sorted by name.
            let mut params: Vec<_> = v
                .outgoing_application_params
                .into_iter()
                .map(|(k, value)| (k, Json::Str(value)))
                .collect();
            params.sort_unstable_by(|a, b| a.0.cmp(&b.0));
            params
        }
        (true, true) => Vec::new(),
    };
    Ok(mint::VoiceGrant {
        incoming_allow: v.incoming_allow,
        outgoing_application_sid: v.outgoing_application_sid,
        outgoing_application_params: params,
        push_credential_sid: v.push_credential_sid,
        endpoint_id: v.endpoint_id,
    })
}

/// A Struct as a JSON object; its keys arrive sorted (protobuf maps have no order).
fn object_from_struct(field: &str, s: prost_types::Struct) -> Result<Object> {
    if s.fields.len() > json::MAX_JSON_KEYS {
        return Err(Error::invalid(
            field,
            format!(
                "has {} members; the limit is {}",
                s.fields.len(),
                json::MAX_JSON_KEYS
            ),
        ));
    }
    s.fields
        .into_iter()
        .map(|(key, value)| {
            let value = json_from_value(&format!("{field}.{key}"), value)?;
            Ok((key, value))
        })
        .collect()
}

fn json_from_value(field: &str, value: prost_types::Value) -> Result<Json> {
    Ok(match value.kind {
        None | Some(ValueKind::NullValue(_)) => Json::Null,
        Some(ValueKind::BoolValue(b)) => Json::Bool(b),
        Some(ValueKind::StringValue(s)) => Json::Str(s),
        Some(ValueKind::NumberValue(n)) => mint::grants::number(n)
            .ok_or_else(|| Error::invalid(field, "is not a finite number"))?,
        Some(ValueKind::StructValue(s)) => Json::Object(object_from_struct(field, s)?),
        Some(ValueKind::ListValue(list)) => Json::Array(
            list.values
                .into_iter()
                .enumerate()
                .map(|(i, v)| json_from_value(&format!("{field}[{i}]"), v))
                .collect::<Result<_>>()?,
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> pb::MintAccessTokenRequest {
        pb::MintAccessTokenRequest {
            credential: "key".into(),
            identity: "alice".into(),
            ..Default::default()
        }
    }

    #[test]
    fn conversion_errors_name_the_proto_field() {
        let number = |n: f64| prost_types::Value {
            kind: Some(ValueKind::NumberValue(n)),
        };
        let cases = [
            (
                pb::MintAccessTokenRequest {
                    not_before: Some(prost_types::Timestamp {
                        seconds: 1,
                        nanos: -1,
                    }),
                    ..base()
                },
                "not_before",
            ),
            (
                pb::MintAccessTokenRequest {
                    playback: Some(prost_types::Struct::default()),
                    playback_json: "{}".into(),
                    ..base()
                },
                "playback_json",
            ),
            (
                pb::MintAccessTokenRequest {
                    playback_json: "[1]".into(),
                    ..base()
                },
                "playback_json",
            ),
            (
                pb::MintAccessTokenRequest {
                    playback: Some(prost_types::Struct {
                        fields: [("n".to_owned(), number(f64::INFINITY))].into(),
                    }),
                    ..base()
                },
                "playback.n",
            ),
            (
                pb::MintAccessTokenRequest {
                    voice: Some(pb::VoiceGrant {
                        outgoing_application_params: [("a".to_owned(), "b".to_owned())].into(),
                        outgoing_application_params_json: "{}".into(),
                        ..Default::default()
                    }),
                    ..base()
                },
                "voice.outgoing_application_params_json",
            ),
        ];
        for (request, field) in cases {
            match token_request(request) {
                Err(Error::InvalidField { field: got, .. }) => assert_eq!(got, field),
                other => panic!("{field}: expected INVALID_ARGUMENT, got {other:?}"),
            }
        }
    }

    #[test]
    fn maps_are_sorted_and_structs_become_ordered_objects() {
        let request = pb::MintAccessTokenRequest {
            voice: Some(pb::VoiceGrant {
                outgoing_application_sid: "AP00112233445566778899aabbccddeeff".into(),
                outgoing_application_params: [
                    ("z".to_owned(), "1".to_owned()),
                    ("a".to_owned(), "2".to_owned()),
                ]
                .into(),
                ..Default::default()
            }),
            playback: Some(prost_types::Struct {
                fields: [
                    (
                        "b".to_owned(),
                        prost_types::Value {
                            kind: Some(ValueKind::NumberValue(2.0)),
                        },
                    ),
                    ("a".to_owned(), prost_types::Value { kind: None }),
                ]
                .into(),
            }),
            ..base()
        };
        let (_, request) = token_request(request).expect("converts");
        let mut out = String::new();
        request.grants.write(&mut out);
        assert_eq!(
            out,
            r#""voice":{"outgoing":{"application_sid":"AP00112233445566778899aabbccddeeff","params":{"a":"2","z":"1"}}},"player":{"a":null,"b":2}"#
        );
    }
}
