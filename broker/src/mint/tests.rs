//! Every access-token vector in `tests/fixtures/twilio-vectors.json`
//! (produced by twilio-python 9.13 and twilio-node 6.2) reproduced from its
//! inputs at the vectors' fixed clock, plus the rules enforced before signing.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

use super::json::Json;
use super::*;
use crate::credential::{Credential, KeyType, Secret};

const VECTORS: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../tests/fixtures/twilio-vectors.json"
));
const NOW: i64 = 1_700_000_000;
const AP: &str = "AP00112233445566778899aabbccddeeff";
const CR: &str = "CR00112233445566778899aabbccddeeff";
const IS: &str = "IS00112233445566778899aabbccddeeff";
const RL: &str = "RL00112233445566778899aabbccddeeff";
const WS: &str = "WS00112233445566778899aabbccddeeff";
const WK: &str = "WK00112233445566778899aabbccddeeff";

fn vectors(library: &str) -> Vec<Value> {
    let all: Value = serde_json::from_str(VECTORS).expect("vectors parse");
    all["access_tokens"][library]
        .as_array()
        .expect("vector list")
        .clone()
}

fn video(room: &str) -> Grants {
    Grants {
        video: Some(VideoGrant { room: room.into() }),
        ..Grants::default()
    }
}

/// The grants each vector was generated with (its inputs beside the
/// fixed ones), by vector name without the library prefix.
fn grants_of(name: &str) -> Grants {
    let voice_out = |params: Vec<(String, Json)>| VoiceGrant {
        outgoing_application_sid: AP.into(),
        outgoing_application_params: params,
        ..VoiceGrant::default()
    };
    match name {
        "voice_full" => Grants {
            voice: Some(VoiceGrant {
                incoming_allow: true,
                push_credential_sid: CR.into(),
                endpoint_id: "ep-1".into(),
                ..voice_out(vec![
                    ("foo".into(), Json::Str("bar".into())),
                    ("n".into(), Json::Int(1)),
                ])
            }),
            ..Grants::default()
        },
        "voice_outgoing_only" => Grants {
            voice: Some(voice_out(Vec::new())),
            ..Grants::default()
        },
        "video_empty" => Grants {
            video: Some(VideoGrant::default()),
            ..Grants::default()
        },
        "chat_full" => Grants {
            chat: Some(ChatGrant {
                service_sid: IS.into(),
                endpoint_id: "app:user-123:dev1".into(),
                deployment_role_sid: RL.into(),
                push_credential_sid: CR.into(),
            }),
            ..Grants::default()
        },
        "sync" => Grants {
            sync: Some(SyncGrant {
                service_sid: IS.into(),
                endpoint_id: "sync-ep".into(),
            }),
            ..Grants::default()
        },
        "taskrouter" => Grants {
            task_router: Some(TaskRouterGrant {
                workspace_sid: WS.into(),
                worker_sid: WK.into(),
                role: "worker".into(),
            }),
            ..Grants::default()
        },
        "playback" => Grants {
            playback: Some(
                json::parse_object(
                    r#"{"requestCredentials": null, "playbackUrl": "https://example.com/p",
                        "playerStreamerSid": "VJ00112233445566778899aabbccddeeff"}"#,
                )
                .expect("playback"),
            ),
            ..Grants::default()
        },
        "all_grants" => Grants {
            voice: Some(VoiceGrant {
                incoming_allow: true,
                ..voice_out(Vec::new())
            }),
            chat: Some(ChatGrant {
                service_sid: IS.into(),
                ..ChatGrant::default()
            }),
            sync: Some(SyncGrant {
                service_sid: IS.into(),
                ..SyncGrant::default()
            }),
            task_router: Some(TaskRouterGrant {
                workspace_sid: WS.into(),
                ..TaskRouterGrant::default()
            }),
            ..video("room-1")
        },
        "no_grants_identity_only" => Grants::default(),
        "no_identity" => video("r"),
        "unicode_identity" => video("café"),
        // video_room, region_au1, explicit_nbf_ttl600, nbf_none, valid_until,
        // hs512, numeric_identity
        _ => video("room-1"),
    }
}

struct Inputs {
    account_sid: String,
    key_sid: String,
    secret: crate::credential::SealedSecret,
    identity: Option<String>,
    ttl: u32,
    nbf: Option<Option<i64>>,
    valid_until: Option<i64>,
    region: Option<String>,
}

fn inputs(vector: &Value) -> Inputs {
    let i = &vector["inputs"];
    let text = |k: &str| i[k].as_str().map(str::to_owned);
    assert_eq!(i["now"].as_i64(), Some(NOW));
    Inputs {
        account_sid: text("account_sid").expect("account_sid"),
        key_sid: text("signing_key_sid").expect("key"),
        secret: crate::credential::SealedSecret::from(text("secret").expect("secret")),
        identity: match &i["identity"] {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        },
        ttl: u32::try_from(i["ttl"].as_u64().expect("ttl")).expect("ttl fits"),
        nbf: i.get("nbf").map(Value::as_i64),
        valid_until: i["valid_until"].as_i64(),
        region: text("region"),
    }
}

fn request(inputs: &Inputs, grants: Grants) -> TokenRequest {
    TokenRequest {
        identity: inputs.identity.clone().unwrap_or_default(),
        ttl_seconds: match inputs.valid_until {
            Some(until) => u32::try_from(until - NOW).expect("ttl"),
            None => inputs.ttl,
        },
        not_before: inputs.nbf.flatten(),
        region: inputs.region.clone().unwrap_or_default(),
        grants,
    }
}

fn decode_segment(segment: &str) -> String {
    String::from_utf8(URL_SAFE_NO_PAD.decode(segment).expect("base64url")).expect("utf-8")
}

#[test]
fn every_python_vector_is_reproduced_byte_for_byte_by_the_claims_writer() {
    let list = vectors("twilio-python");
    assert_eq!(list.len(), 16);
    for vector in list {
        let name = vector["name"].as_str().expect("name");
        let inputs = inputs(&vector);
        let grants = grants_of(name.trim_start_matches("py_"));
        let jti = format!("{}-{NOW}", inputs.key_sid);
        let claims = Claims {
            account_sid: &inputs.account_sid,
            key_sid: &inputs.key_sid,
            jti: &jti,
            identity: inputs.identity.as_deref(),
            grants: &grants,
            exp: inputs.valid_until.unwrap_or(NOW + i64::from(inputs.ttl)),
            nbf: inputs.nbf.unwrap_or(Some(NOW)),
            region: inputs.region.as_deref(),
        };
        let token = claims.sign(&inputs.secret).expect("sign");
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(
            decode_segment(parts[0]),
            vector["header_json"].as_str().expect("header"),
            "{name} header"
        );
        assert_eq!(
            decode_segment(parts[1]),
            vector["payload_json"].as_str().expect("payload"),
            "{name} payload"
        );
        assert_eq!(token, vector["jwt"].as_str().expect("jwt"), "{name} jwt");
    }
}

#[test]
fn python_vectors_within_twilio_rules_come_out_of_the_minter_unchanged() {
    let minter = Minter::sdk_compatible();
    let mut minted = 0;
    for vector in vectors("twilio-python") {
        let name = vector["name"].as_str().expect("name");
        let inputs = inputs(&vector);
        let request = request(&inputs, grants_of(name.trim_start_matches("py_")));
        let key = SigningKey {
            account_sid: &inputs.account_sid,
            key_sid: &inputs.key_sid,
            secret: &inputs.secret,
        };
        match name {
            // The broker requires an identity and a grant, and always sets nbf.
            "py_no_identity" => assert_field(request.check().map(|_| ()), "identity"),
            "py_no_grants_identity_only" => assert_field(request.check().map(|_| ()), "grants"),
            "py_nbf_none" => {}
            _ => {
                let checked = request.check().expect(name);
                let token = minter.mint_at(key, checked, NOW).expect(name);
                assert_eq!(token.token, vector["jwt"].as_str().expect("jwt"), "{name}");
                assert_eq!(token.jti, format!("{}-{NOW}", inputs.key_sid));
                minted += 1;
            }
        }
    }
    assert_eq!(minted, 13);
}

fn assert_field(result: Result<()>, field: &str) {
    match result {
        Err(Error::InvalidField { field: got, .. }) => assert_eq!(got, field),
        other => panic!("expected INVALID_ARGUMENT on {field}, got {other:?}"),
    }
}

#[test]
fn node_vectors_decode_to_the_same_claims() {
    let minter = Minter::sdk_compatible();
    for vector in vectors("twilio-node") {
        let name = vector["name"].as_str().expect("name");
        let inputs = inputs(&vector);
        let request = request(&inputs, grants_of(name.trim_start_matches("node_")));
        let key = SigningKey {
            account_sid: &inputs.account_sid,
            key_sid: &inputs.key_sid,
            secret: &inputs.secret,
        };
        if name == "node_no_grants_identity_only" {
            assert_field(request.check().map(|_| ()), "grants");
            continue;
        }
        let token = minter
            .mint_at(key, request.check().expect(name), NOW)
            .expect(name);
        let ours: Value = serde_json::from_str(&decode_segment(
            token.token.split('.').nth(1).expect("payload"),
        ))
        .expect("our payload");
        let theirs: Value = serde_json::from_str(vector["payload_json"].as_str().expect("payload"))
            .expect("node payload");
        for claim in ["jti", "grants", "iss", "sub", "exp"] {
            assert_eq!(ours[claim], theirs[claim], "{name}: {claim}");
        }
        // Node adds iat and writes nbf only when asked; PY (and the broker) always write nbf.
        let nbf = theirs.get("nbf").cloned().unwrap_or(theirs["iat"].clone());
        assert_eq!(ours["nbf"], nbf, "{name}: nbf");
        let header: Value =
            serde_json::from_str(vector["header_json"].as_str().expect("header")).expect("header");
        let ours_header: Value = serde_json::from_str(&decode_segment(
            token.token.split('.').next().expect("header"),
        ))
        .expect("our header");
        assert_eq!(ours_header["cty"], header["cty"], "{name}");
        assert_eq!(ours_header.get("twr"), header.get("twr"), "{name}");
    }
}

fn api_key(key_type: KeyType) -> Credential {
    Credential {
        name: "key".into(),
        labels: BTreeMap::new(),
        created_at: SystemTime::now(),
        updated_at: SystemTime::now(),
        secret: Secret::ApiKey {
            account_sid: "AC0123456789abcdef0123456789abcdef".into(),
            key_sid: "SKfedcba9876543210fedcba9876543210".into(),
            secret: crate::credential::SealedSecret::from("s3cr3t-value"),
            key_type,
            lifecycle: Default::default(),
        },
    }
}

fn at(seconds: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(u64::try_from(seconds).expect("positive"))
}

#[test]
fn ttl_rules_are_twilios_and_honoured_exactly() {
    let minter = Minter::new();
    let key = api_key(KeyType::Standard);
    for (ttl, expected) in [
        (0, Some(3600)),
        (1, Some(1)),
        (59, Some(59)),
        (3600, Some(3600)),
        (86_400, Some(86_400)),
        (86_401, None),
        (u32::MAX, None),
    ] {
        let request = TokenRequest {
            identity: "alice".into(),
            ttl_seconds: ttl,
            grants: video(""),
            ..TokenRequest::default()
        };
        match (request.check(), expected) {
            (Ok(checked), Some(lifetime)) => {
                let token = minter.mint(&key, checked, at(NOW)).expect("mint");
                assert_eq!(token.expires_at, NOW + lifetime, "ttl {ttl}");
            }
            (Err(err), None) => assert_field(Err(err), "ttl_seconds"),
            (result, _) => panic!("ttl {ttl}: unexpected {:?}", result.map(|_| ())),
        }
    }
}

#[test]
fn only_main_and_standard_keys_mint() {
    let request = TokenRequest {
        identity: "alice".into(),
        grants: video("r"),
        ..TokenRequest::default()
    };
    let checked = request.check().expect("valid");
    let minter = Minter::new();
    let token_secret = crate::credential::SealedSecret::from("tok");
    let others = [
        Secret::AuthToken {
            account_sid: "AC0123456789abcdef0123456789abcdef".into(),
            auth_token: token_secret.clone(),
            secondary_auth_token: None,
            rotation: None,
        },
        Secret::Test {
            account_sid: "AC0123456789abcdef0123456789abcdef".into(),
            auth_token: token_secret.clone(),
        },
        Secret::OAuthClient {
            account_sid: "AC0123456789abcdef0123456789abcdef".into(),
            client_id: "OQ0123456789abcdef0123456789abcdef".into(),
            client_secret: token_secret,
        },
    ];
    for key_type in [KeyType::Main, KeyType::Standard] {
        assert!(minter.mint(&api_key(key_type), checked, at(NOW)).is_ok());
    }
    let restricted = minter.mint(&api_key(KeyType::Restricted), checked, at(NOW));
    assert!(
        matches!(&restricted, Err(Error::RestrictedKey { .. })),
        "{restricted:?}"
    );
    for secret in others {
        let kind = secret.kind().as_str();
        let credential = Credential {
            secret,
            ..api_key(KeyType::Main)
        };
        let result = minter.mint(&credential, checked, at(NOW));
        assert!(
            matches!(&result, Err(Error::WrongCredentialKind { kind: k, .. }) if *k == kind)
                && result
                    .as_ref()
                    .err()
                    .is_some_and(|e| e.to_string().contains("api_key")),
            "{kind}: {result:?}"
        );
    }
}

#[test]
fn request_rules_name_the_field() {
    let ok = TokenRequest {
        identity: "alice".into(),
        grants: video("r"),
        ..TokenRequest::default()
    };
    let cases: Vec<(TokenRequest, &str)> = vec![
        (
            TokenRequest {
                identity: String::new(),
                ..ok.clone()
            },
            "identity",
        ),
        (
            TokenRequest {
                grants: Grants::default(),
                ..ok.clone()
            },
            "grants",
        ),
        (
            TokenRequest {
                region: "AU1".into(),
                ..ok.clone()
            },
            "region",
        ),
        (
            TokenRequest {
                region: "au1\"".into(),
                ..ok.clone()
            },
            "region",
        ),
        (
            TokenRequest {
                grants: Grants {
                    chat: Some(ChatGrant {
                        service_sid: "ZZ00112233445566778899aabbccddeeff".into(),
                        ..ChatGrant::default()
                    }),
                    ..Grants::default()
                },
                ..ok.clone()
            },
            "chat.service_sid",
        ),
    ];
    for (request, field) in cases {
        assert_field(request.check().map(|_| ()), field);
    }
}

#[test]
fn not_before_is_honoured_and_must_precede_expiry() {
    let minter = Minter::new();
    let key = api_key(KeyType::Main);
    let mut request = TokenRequest {
        identity: "alice".into(),
        ttl_seconds: 600,
        not_before: Some(NOW + 599),
        grants: video("r"),
        ..TokenRequest::default()
    };
    let token = minter
        .mint(&key, request.check().expect("ok"), at(NOW))
        .expect("mint");
    let payload: Value = serde_json::from_str(&decode_segment(
        token.token.split('.').nth(1).expect("payload"),
    ))
    .expect("json");
    assert_eq!(payload["nbf"], NOW + 599);
    assert_eq!(payload["exp"], NOW + 600);
    request.not_before = Some(NOW + 600);
    let err = minter.mint(&key, request.check().expect("shape ok"), at(NOW));
    assert_field(err.map(|_| ()), "not_before");
}

#[test]
fn jti_is_unique_within_one_second_and_keeps_the_sdk_prefix() {
    let minter = Minter::new();
    let key = api_key(KeyType::Standard);
    let request = TokenRequest {
        identity: "alice".into(),
        grants: video("r"),
        ..TokenRequest::default()
    };
    let checked = request.check().expect("ok");
    let mut seen = std::collections::HashSet::new();
    for _ in 0..1000 {
        let token = minter.mint(&key, checked, at(NOW)).expect("mint");
        let (prefix, suffix) = token.jti.rsplit_once('-').expect("suffix");
        assert_eq!(prefix, format!("SKfedcba9876543210fedcba9876543210-{NOW}"));
        assert_eq!(suffix.len(), 16);
        assert!(
            suffix
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        assert!(token.token.contains('.'));
        assert!(seen.insert(token.jti), "duplicate jti");
    }
}

#[test]
fn tokens_verify_with_jsonwebtoken_and_never_carry_the_secret() {
    use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode};
    let minter = Minter::new();
    let key = api_key(KeyType::Standard);
    let request = TokenRequest {
        identity: "ålice \"quoted\" 😀".into(),
        grants: video("r"),
        region: "ie1".into(),
        ..TokenRequest::default()
    };
    let token = minter
        .mint(&key, request.check().expect("ok"), SystemTime::now())
        .expect("mint");
    assert!(!token.token.contains("s3cr3t"));
    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_required_spec_claims(&["exp", "nbf", "iss", "sub"]);
    let decoded = decode::<Value>(
        &token.token,
        &DecodingKey::from_secret(b"s3cr3t-value"),
        &validation,
    )
    .expect("verifies");
    assert_eq!(decoded.claims["grants"]["identity"], "ålice \"quoted\" 😀");
    assert_eq!(decoded.header.cty.as_deref(), Some("twilio-fpa;v=1"));
}
