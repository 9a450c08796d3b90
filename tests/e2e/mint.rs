//! MintAccessToken through the real daemon: the vectors, Twilio's rules with
//! their status codes, and live cross-checks against twilio-python 9.13 and
//! twilio-node 6.2 on random inputs covering every grant type.

use std::path::Path;
use std::process::{Command, Stdio};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use tonic::Code;
use twilio_broker_api::v1 as pb;

use crate::harness::{Broker, Fixtures, Options, Refusal, check_refusals, random_sid};
use crate::oracles;

const VECTORS: &str = include_str!("../fixtures/twilio-vectors.json");
const AP: &str = "AP00112233445566778899aabbccddeeff";
const CR: &str = "CR00112233445566778899aabbccddeeff";
const IS: &str = "IS00112233445566778899aabbccddeeff";
const RL: &str = "RL00112233445566778899aabbccddeeff";
const WS: &str = "WS00112233445566778899aabbccddeeff";
const WK: &str = "WK00112233445566778899aabbccddeeff";

/// Runs an oracle script with `input` on stdin and parses its stdout.
pub fn oracle_json(program: &Path, script: &str, input: &Value, node_path: Option<&Path>) -> Value {
    use std::io::Write as _;
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/oracles")
        .join(script);
    let mut command = Command::new(program);
    command
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(path) = node_path {
        command.env("NODE_PATH", path);
    }
    let mut child = command.spawn().expect("spawn oracle");
    let stdin = child.stdin.take().unwrap();
    let text = input.to_string();
    let writer = std::thread::spawn(move || {
        let mut stdin = stdin;
        stdin.write_all(text.as_bytes()).unwrap();
    });
    let output = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(
        output.status.success(),
        "{} failed:\n{}",
        script.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("oracle output is JSON")
}

/// The Node interpreter and the node_modules it should resolve from.
pub fn node() -> Option<(std::path::PathBuf, std::path::PathBuf)> {
    let modules = oracles::node_modules()?;
    Some((std::path::PathBuf::from("node"), modules))
}

fn segment(token: &str, index: usize) -> String {
    let part = token.split('.').nth(index).expect("segment");
    String::from_utf8(URL_SAFE_NO_PAD.decode(part).expect("base64url")).expect("utf-8")
}

fn video(room: &str) -> Option<pb::VideoGrant> {
    Some(pb::VideoGrant { room: room.into() })
}

/// The broker request reproducing a vector (by name without library prefix);
/// None for vectors outside Twilio's rules (no identity, no grant, no nbf).
fn vector_request(name: &str, inputs: &Value) -> Option<pb::MintAccessTokenRequest> {
    let identity = match &inputs["identity"] {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    let ttl = match inputs["valid_until"].as_i64() {
        Some(until) => until - inputs["now"].as_i64().unwrap(),
        None => inputs["ttl"].as_i64().unwrap(),
    };
    let mut request = pb::MintAccessTokenRequest {
        credential: "vector-key".into(),
        identity,
        ttl_seconds: u32::try_from(ttl).unwrap(),
        not_before: inputs["nbf"]
            .as_i64()
            .map(|seconds| prost_types::Timestamp { seconds, nanos: 0 }),
        region: inputs["region"].as_str().unwrap_or_default().into(),
        video: video("room-1"),
        ..Default::default()
    };
    let voice_out = pb::VoiceGrant {
        outgoing_application_sid: AP.into(),
        ..Default::default()
    };
    match name {
        "voice_full" => {
            request.video = None;
            request.voice = Some(pb::VoiceGrant {
                incoming_allow: true,
                outgoing_application_params_json: r#"{"foo": "bar", "n": 1}"#.into(),
                push_credential_sid: CR.into(),
                endpoint_id: "ep-1".into(),
                ..voice_out
            });
        }
        "voice_outgoing_only" => {
            request.video = None;
            request.voice = Some(voice_out);
        }
        "video_empty" => request.video = video(""),
        "chat_full" => {
            request.video = None;
            request.chat = Some(pb::ChatGrant {
                service_sid: IS.into(),
                endpoint_id: "app:user-123:dev1".into(),
                deployment_role_sid: RL.into(),
                push_credential_sid: CR.into(),
            });
        }
        "sync" => {
            request.video = None;
            request.sync = Some(pb::SyncGrant {
                service_sid: IS.into(),
                endpoint_id: "sync-ep".into(),
            });
        }
        "taskrouter" => {
            request.video = None;
            request.task_router = Some(pb::TaskRouterGrant {
                workspace_sid: WS.into(),
                worker_sid: WK.into(),
                role: "worker".into(),
            });
        }
        "playback" => {
            request.video = None;
            request.playback_json = r#"{"requestCredentials":null,"playbackUrl":"https://example.com/p","playerStreamerSid":"VJ00112233445566778899aabbccddeeff"}"#.into();
        }
        "all_grants" => {
            request.voice = Some(pb::VoiceGrant {
                incoming_allow: true,
                ..voice_out
            });
            request.chat = Some(pb::ChatGrant {
                service_sid: IS.into(),
                ..Default::default()
            });
            request.sync = Some(pb::SyncGrant {
                service_sid: IS.into(),
                ..Default::default()
            });
            request.task_router = Some(pb::TaskRouterGrant {
                workspace_sid: WS.into(),
                ..Default::default()
            });
        }
        "unicode_identity" => request.video = video("café"),
        "no_grants_identity_only" | "no_identity" | "nbf_none" => return None,
        _ => {}
    }
    Some(request)
}

async fn put_api_key(
    broker: &Broker,
    name: &str,
    account_sid: &str,
    key_sid: &str,
    secret: &str,
    key_type: pb::KeyType,
) {
    broker
        .admin()
        .await
        .put_credential(pb::PutCredentialRequest {
            manager: String::new(),
            name: name.into(),
            labels: Default::default(),
            credential: Some(pb::put_credential_request::Credential::ApiKey(
                pb::ApiKeyCredential {
                    account_sid: account_sid.into(),
                    key_sid: key_sid.into(),
                    secret: secret.into(),
                    key_type: key_type.into(),
                },
            )),
        })
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_vector_comes_back_through_grpc() {
    let broker = Broker::start(Options::default());
    let all: Value = serde_json::from_str(VECTORS).unwrap();
    let fixed = &all["fixed_inputs"];
    let secret = fixed["api_key_secret"].as_str().unwrap();
    put_api_key(
        &broker,
        "vector-key",
        fixed["account_sid"].as_str().unwrap(),
        fixed["api_key_sid"].as_str().unwrap(),
        secret,
        pb::KeyType::Main,
    )
    .await;
    let mut client = broker.broker().await;
    let mut checked = 0;
    for (library, prefix) in [("twilio-python", "py_"), ("twilio-node", "node_")] {
        for vector in all["access_tokens"][library].as_array().unwrap() {
            let name = vector["name"].as_str().unwrap();
            let Some(request) = vector_request(name.trim_start_matches(prefix), &vector["inputs"])
            else {
                continue;
            };
            let minted = client
                .mint_access_token(request)
                .await
                .unwrap_or_else(|s| panic!("{name}: {s:?}"))
                .into_inner();
            let payload_text = segment(&minted.token, 1);
            let ours: Value = serde_json::from_str(&payload_text).unwrap();
            let expected_text = vector["payload_json"].as_str().unwrap();
            let theirs: Value = serde_json::from_str(expected_text).unwrap();
            if library == "twilio-python" {
                // Byte for byte, once the clock-dependent claims are the broker's.
                assert_eq!(
                    segment(&minted.token, 0),
                    vector["header_json"].as_str().unwrap(),
                    "{name}"
                );
                let expected = expected_text
                    .replace(
                        &format!("\"jti\":{}", theirs["jti"]),
                        &format!("\"jti\":{}", ours["jti"]),
                    )
                    .replace(
                        &format!("\"exp\":{}", theirs["exp"]),
                        &format!("\"exp\":{}", ours["exp"]),
                    )
                    .replace(
                        &format!("\"nbf\":{}", theirs["nbf"]),
                        &format!("\"nbf\":{}", ours["nbf"]),
                    );
                assert_eq!(payload_text, expected, "{name}");
            } else {
                assert_eq!(ours["grants"], theirs["grants"], "{name}");
                assert_eq!(ours["iss"], theirs["iss"], "{name}");
                assert_eq!(ours["sub"], theirs["sub"], "{name}");
            }
            // Lifetime and nbf as asked; jti keeps the SDK prefix.
            let issued = minted
                .jti
                .split('-')
                .nth(1)
                .unwrap()
                .parse::<i64>()
                .unwrap();
            let ttl = theirs["exp"].as_i64().unwrap() - 1_700_000_000;
            assert_eq!(ours["exp"].as_i64().unwrap(), issued + ttl, "{name}");
            let nbf = vector["inputs"]["nbf"].as_i64().unwrap_or(issued);
            assert_eq!(ours["nbf"].as_i64().unwrap(), nbf, "{name}");
            assert!(
                minted
                    .jti
                    .starts_with(&format!("{}-", fixed["api_key_sid"].as_str().unwrap()))
            );
            assert_eq!(minted.expires_at.unwrap().seconds, issued + ttl);
            let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
            validation.validate_nbf = true;
            jsonwebtoken::decode::<Value>(
                &minted.token,
                &jsonwebtoken::DecodingKey::from_secret(secret.as_bytes()),
                &validation,
            )
            .unwrap_or_else(|e| panic!("{name}: {e}"));
            checked += 1;
        }
    }
    assert_eq!(checked, 13 + 13);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twilio_rules_come_back_with_their_status_codes() {
    let broker = Broker::start(Options::default());
    let f = Fixtures::new();
    let mut admin = broker.admin().await;
    for put in [
        f.api_key("main", pb::KeyType::Main),
        f.api_key("restricted", pb::KeyType::Restricted),
        f.auth_token("tok"),
        f.oauth_client("oauth"),
        f.test("test"),
    ] {
        admin.put_credential(put).await.unwrap();
    }
    let ok = pb::MintAccessTokenRequest {
        credential: "main".into(),
        identity: "alice".into(),
        video: video(""),
        ..Default::default()
    };
    let with = |change: &dyn Fn(&mut pb::MintAccessTokenRequest)| {
        let mut request = ok.clone();
        change(&mut request);
        request
    };
    let cases: Vec<Refusal<pb::MintAccessTokenRequest>> = vec![
        (
            "unknown credential",
            with(&|r| r.credential = "nope".into()),
            Code::NotFound,
            "nope",
        ),
        (
            "no credential",
            with(&|r| r.credential.clear()),
            Code::InvalidArgument,
            "credential",
        ),
        (
            "auth token",
            with(&|r| r.credential = "tok".into()),
            Code::FailedPrecondition,
            "api_key",
        ),
        (
            "oauth client",
            with(&|r| r.credential = "oauth".into()),
            Code::FailedPrecondition,
            "api_key",
        ),
        (
            "test credentials",
            with(&|r| r.credential = "test".into()),
            Code::FailedPrecondition,
            "api_key",
        ),
        (
            "restricted key",
            with(&|r| r.credential = "restricted".into()),
            Code::FailedPrecondition,
            "restricted",
        ),
        (
            "no identity",
            with(&|r| r.identity.clear()),
            Code::InvalidArgument,
            "identity",
        ),
        (
            "ttl over 24 h",
            with(&|r| r.ttl_seconds = 86_401),
            Code::InvalidArgument,
            "ttl_seconds",
        ),
        (
            "no grant",
            with(&|r| r.video = None),
            Code::InvalidArgument,
            "grants",
        ),
        (
            "voice app SID",
            with(&|r| {
                r.voice = Some(pb::VoiceGrant {
                    outgoing_application_sid: CR.into(),
                    ..Default::default()
                })
            }),
            Code::InvalidArgument,
            "voice.outgoing_application_sid",
        ),
        (
            "voice push SID",
            with(&|r| {
                r.voice = Some(pb::VoiceGrant {
                    push_credential_sid: "CR123".into(),
                    ..Default::default()
                })
            }),
            Code::InvalidArgument,
            "voice.push_credential_sid",
        ),
        (
            "chat role SID",
            with(&|r| {
                r.chat = Some(pb::ChatGrant {
                    deployment_role_sid: IS.into(),
                    ..Default::default()
                })
            }),
            Code::InvalidArgument,
            "chat.deployment_role_sid",
        ),
        (
            "chat service SID",
            with(&|r| {
                r.chat = Some(pb::ChatGrant {
                    service_sid: RL.into(),
                    ..Default::default()
                })
            }),
            Code::InvalidArgument,
            "chat.service_sid",
        ),
        (
            "sync service SID",
            with(&|r| {
                r.sync = Some(pb::SyncGrant {
                    service_sid: "IS-not-hex".into(),
                    ..Default::default()
                })
            }),
            Code::InvalidArgument,
            "sync.service_sid",
        ),
        (
            "workspace SID",
            with(&|r| {
                r.task_router = Some(pb::TaskRouterGrant {
                    workspace_sid: WK.into(),
                    ..Default::default()
                })
            }),
            Code::InvalidArgument,
            "task_router.workspace_sid",
        ),
        (
            "worker SID",
            with(&|r| {
                r.task_router = Some(pb::TaskRouterGrant {
                    worker_sid: WS.into(),
                    ..Default::default()
                })
            }),
            Code::InvalidArgument,
            "task_router.worker_sid",
        ),
        (
            "region",
            with(&|r| r.region = "AU 1".into()),
            Code::InvalidArgument,
            "region",
        ),
        (
            "playback JSON",
            with(&|r| r.playback_json = "{\"a\":".into()),
            Code::InvalidArgument,
            "playback_json",
        ),
        (
            "never valid",
            with(&|r| {
                r.ttl_seconds = 60;
                r.not_before = Some(prost_types::Timestamp {
                    seconds: 4_102_444_800,
                    nanos: 0,
                });
            }),
            Code::InvalidArgument,
            "not_before",
        ),
        (
            // The "never valid" rule needs only the request and the clock:
            // it is checked before the credential is looked up.
            "never valid before unknown credential",
            with(&|r| {
                r.credential = "nope".into();
                r.ttl_seconds = 60;
                r.not_before = Some(prost_types::Timestamp {
                    seconds: 4_102_444_800,
                    nanos: 0,
                });
            }),
            Code::InvalidArgument,
            "not_before",
        ),
        (
            "bad request before unknown credential",
            with(&|r| {
                r.credential = "nope".into();
                r.ttl_seconds = 90_000;
            }),
            Code::InvalidArgument,
            "ttl_seconds",
        ),
    ];
    let client = broker.broker().await;
    check_refusals(cases, &f.secrets(), |request| {
        let mut client = client.clone();
        async move { client.mint_access_token(request).await.map(drop) }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttls_are_honoured_exactly_and_jtis_are_unique() {
    let broker = Broker::start(Options::default());
    let f = Fixtures::new();
    broker
        .admin()
        .await
        .put_credential(f.api_key("key", pb::KeyType::Standard))
        .await
        .unwrap();
    let mut client = broker.broker().await;
    let mut jtis = std::collections::HashSet::new();
    for (ttl, lifetime) in [(0, 3600), (1, 1), (59, 59), (3599, 3599), (86_400, 86_400)] {
        for _ in 0..20 {
            let minted = client
                .mint_access_token(pb::MintAccessTokenRequest {
                    credential: "key".into(),
                    identity: "alice".into(),
                    ttl_seconds: ttl,
                    video: video("r"),
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            let payload: Value = serde_json::from_str(&segment(&minted.token, 1)).unwrap();
            let nbf = payload["nbf"].as_i64().unwrap();
            assert_eq!(
                payload["exp"].as_i64().unwrap() - nbf,
                lifetime,
                "ttl {ttl}"
            );
            assert_eq!(payload["jti"], minted.jti.as_str());
            let parts: Vec<&str> = minted.jti.split('-').collect();
            assert_eq!(parts.len(), 3, "{}", minted.jti);
            assert_eq!(parts[0], f.key_sid);
            assert_eq!(parts[1].parse::<i64>().unwrap(), nbf);
            assert_eq!(parts[2].len(), 16);
            assert!(jtis.insert(minted.jti), "duplicate jti");
        }
    }
    let log = broker.log_text();
    assert!(
        !log.contains(&f.api_secret),
        "the key secret reached the log"
    );
}

/// One random case: the broker request and the oracle's view of it.
struct Case {
    request: pb::MintAccessTokenRequest,
    oracle: Value,
}

fn random_text(rng: &mut StdRng, allow_empty: bool) -> String {
    const PIECES: &[&str] = &[
        "a", "Z", "0", "-", "_", " ", ".", "é", "ß", "漢", "😀", "\"", "\\", "/", "\n", "\t",
        "\u{1}", "\u{7f}", "\u{2028}", "<", "&", "'", "~", "+", "=", "%20",
    ];
    let len = rng.random_range(if allow_empty { 0 } else { 1 }..12);
    (0..len)
        .map(|_| PIECES[rng.random_range(0..PIECES.len())])
        .collect()
}

fn maybe_sid(rng: &mut StdRng, prefix: &str) -> String {
    if rng.random_bool(0.7) {
        random_sid(prefix)
    } else {
        String::new()
    }
}

fn random_json_value(rng: &mut StdRng, depth: u32) -> String {
    match rng.random_range(0..if depth > 2 { 6 } else { 8 }) {
        0 => "null".into(),
        1 => if rng.random_bool(0.5) {
            "true"
        } else {
            "false"
        }
        .into(),
        2 => rng.random_range(-1_000_000_i64..1_000_000).to_string(),
        3 => {
            const FLOATS: &[f64] = &[
                1.5, 0.1, -2.25, 1e-7, 1e20, 123.456, 1e16, 0.0001, 1.0, 3.0e-5,
            ];
            format!("{:?}", FLOATS[rng.random_range(0..FLOATS.len())])
        }
        4 | 5 => serde_json::to_string(&random_text(rng, true)).unwrap(),
        6 => {
            let items: Vec<String> = (0..rng.random_range(0..4))
                .map(|_| random_json_value(rng, depth + 1))
                .collect();
            format!("[{}]", items.join(", "))
        }
        _ => random_json_object(rng, depth + 1),
    }
}

fn random_json_object(rng: &mut StdRng, depth: u32) -> String {
    let members: Vec<String> = (0..rng.random_range(0..5))
        .map(|i| {
            let key = format!("{}{i}", random_text(rng, true));
            format!(
                "{}: {}",
                serde_json::to_string(&key).unwrap(),
                random_json_value(rng, depth)
            )
        })
        .collect();
    format!("{{{}}}", members.join(", "))
}

fn random_case(rng: &mut StdRng, f: &Fixtures, credential: &str, now_hint: i64) -> Case {
    // Every case carries at least one grant; each grant type appears often.
    let mut request = pb::MintAccessTokenRequest {
        credential: credential.into(),
        identity: random_text(rng, false),
        // Short ttls are covered above; these outlive the oracles' expiry checks.
        ttl_seconds: [0, 300, 600, 3600, 7200, 86_400][rng.random_range(0..6)],
        region: ["", "", "au1", "ie1", "us1", "jp1"][rng.random_range(0..6)].into(),
        ..Default::default()
    };
    if rng.random_bool(0.3) {
        request.not_before = Some(prost_types::Timestamp {
            seconds: now_hint - rng.random_range(0..5000),
            nanos: 0,
        });
    }
    let mut grants = json!({});
    let kind_count = 6;
    let wanted: Vec<bool> = {
        let mut w: Vec<bool> = (0..kind_count).map(|_| rng.random_bool(0.35)).collect();
        let forced = rng.random_range(0..kind_count);
        w[forced] = true;
        w
    };
    if wanted[0] {
        let app = maybe_sid(rng, "AP");
        let mut voice = pb::VoiceGrant {
            incoming_allow: rng.random_bool(0.5),
            outgoing_application_sid: app.clone(),
            push_credential_sid: maybe_sid(rng, "CR"),
            endpoint_id: random_text(rng, true),
            ..Default::default()
        };
        let mut params_json = Value::Null;
        if !app.is_empty() && rng.random_bool(0.6) {
            if rng.random_bool(0.5) {
                let text = random_json_object(rng, 1);
                voice.outgoing_application_params_json = text.clone();
                if text != "{}" {
                    params_json = Value::String(text);
                } else {
                    voice.outgoing_application_params_json.clear();
                }
            } else {
                let mut pairs: Vec<(String, String)> = (0..rng.random_range(1..4))
                    .map(|i| {
                        (
                            format!("{}{i}", random_text(rng, true)),
                            random_text(rng, true),
                        )
                    })
                    .collect();
                voice.outgoing_application_params = pairs.iter().cloned().collect();
                pairs.sort();
                let members: Vec<String> = pairs
                    .iter()
                    .map(|(k, v)| {
                        format!(
                            "{}:{}",
                            serde_json::to_string(k).unwrap(),
                            serde_json::to_string(v).unwrap()
                        )
                    })
                    .collect();
                params_json = Value::String(format!("{{{}}}", members.join(",")));
            }
        }
        grants["voice"] = json!({
            "incoming_allow": voice.incoming_allow,
            "outgoing_application_sid": voice.outgoing_application_sid,
            "params_json": params_json,
            "push_credential_sid": voice.push_credential_sid,
            "endpoint_id": voice.endpoint_id,
        });
        request.voice = Some(voice);
    }
    if wanted[1] {
        let room = if rng.random_bool(0.2) {
            random_sid("RM")
        } else {
            random_text(rng, true)
        };
        grants["video"] = json!({ "room": room });
        request.video = video(&room);
    }
    if wanted[2] {
        let chat = pb::ChatGrant {
            service_sid: maybe_sid(rng, "IS"),
            endpoint_id: random_text(rng, true),
            deployment_role_sid: maybe_sid(rng, "RL"),
            push_credential_sid: maybe_sid(rng, "CR"),
        };
        grants["chat"] = json!({
            "service_sid": chat.service_sid, "endpoint_id": chat.endpoint_id,
            "deployment_role_sid": chat.deployment_role_sid, "push_credential_sid": chat.push_credential_sid,
        });
        request.chat = Some(chat);
    }
    if wanted[3] {
        let sync = pb::SyncGrant {
            service_sid: maybe_sid(rng, "IS"),
            endpoint_id: random_text(rng, true),
        };
        grants["sync"] =
            json!({ "service_sid": sync.service_sid, "endpoint_id": sync.endpoint_id });
        request.sync = Some(sync);
    }
    if wanted[4] {
        let task_router = pb::TaskRouterGrant {
            workspace_sid: maybe_sid(rng, "WS"),
            worker_sid: maybe_sid(rng, "WK"),
            role: random_text(rng, true),
        };
        grants["task_router"] = json!({
            "workspace_sid": task_router.workspace_sid, "worker_sid": task_router.worker_sid,
            "role": task_router.role,
        });
        request.task_router = Some(task_router);
    }
    if wanted[5] {
        let text = random_json_object(rng, 0);
        grants["playback_json"] = Value::String(text.clone());
        request.playback_json = text;
    }
    let ttl = if request.ttl_seconds == 0 {
        3600
    } else {
        request.ttl_seconds
    };
    let oracle = json!({
        "account_sid": f.account_sid,
        "key_sid": f.key_sid,
        "secret": f.api_secret,
        "identity": request.identity,
        "ttl": ttl,
        "region": request.region,
        "grants": grants,
    });
    Case { request, oracle }
}

/// JavaScript has one number type (1.0 prints as 1): compare numbers by value.
fn numbers_as_floats(value: &Value) -> Value {
    match value {
        Value::Number(n) => json!(n.as_f64().unwrap()),
        Value::Array(items) => Value::Array(items.iter().map(numbers_as_floats).collect()),
        Value::Object(members) => Value::Object(
            members
                .iter()
                .map(|(k, v)| (k.clone(), numbers_as_floats(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_tokens_match_twilio_python_and_node() {
    let python = oracles::python();
    let node = node();
    if python.is_none() && node.is_none() {
        return;
    }
    let broker = Broker::start(Options::default());
    let f = Fixtures::new();
    broker
        .admin()
        .await
        .put_credential(f.api_key("key", pb::KeyType::Main))
        .await
        .unwrap();
    let seed: u64 = rand::random();
    eprintln!("random_tokens_match_twilio_python_and_node: seed {seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let now_hint = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let mut client = broker.broker().await;
    let mut oracle_cases = Vec::new();
    let mut tokens = Vec::new();
    let mut kinds_seen = std::collections::BTreeSet::new();
    for _ in 0..120 {
        let case = random_case(&mut rng, &f, "key", now_hint);
        let minted = client
            .mint_access_token(case.request.clone())
            .await
            .unwrap_or_else(|s| panic!("seed {seed}: {:?}: {s:?}", case.request))
            .into_inner();
        let payload: Value = serde_json::from_str(&segment(&minted.token, 1)).unwrap();
        for key in payload["grants"].as_object().unwrap().keys() {
            kinds_seen.insert(key.clone());
        }
        let issued: i64 = minted.jti.split('-').nth(1).unwrap().parse().unwrap();
        let mut oracle = case.oracle;
        oracle["now"] = json!(issued);
        oracle["nbf"] = payload["nbf"].clone();
        oracle["broker_token"] = json!(minted.token);
        oracle_cases.push(oracle);
        tokens.push(minted);
    }
    for kind in [
        "voice",
        "video",
        "chat",
        "data_sync",
        "task_router",
        "player",
        "identity",
    ] {
        assert!(kinds_seen.contains(kind), "seed {seed}: no case had {kind}");
    }
    let input = json!({ "cases": oracle_cases });

    if let Some(python) = &python {
        let results = oracle_json(python, "mint_oracle.py", &input, None);
        for ((result, minted), case) in results
            .as_array()
            .unwrap()
            .iter()
            .zip(&tokens)
            .zip(&oracle_cases)
        {
            assert_eq!(
                result["accepted"], true,
                "seed {seed}: PY from_jwt refused {case}: {}",
                result["error"]
            );
            assert_eq!(
                segment(&minted.token, 0),
                result["header_json"].as_str().unwrap(),
                "seed {seed}: header of {case}"
            );
            let py_payload = result["payload_json"].as_str().unwrap();
            let py_jti = format!("\"jti\":\"{}-{}\"", f.key_sid, case["now"]);
            assert!(py_payload.contains(&py_jti), "{py_payload}");
            let expected = py_payload.replacen(&py_jti, &format!("\"jti\":\"{}\"", minted.jti), 1);
            assert_eq!(
                segment(&minted.token, 1),
                expected,
                "seed {seed}: payload of {case}"
            );
        }
    }
    if let Some((node, modules)) = &node {
        let results = oracle_json(node, "mint_oracle.js", &input, Some(modules));
        for ((result, minted), case) in results
            .as_array()
            .unwrap()
            .iter()
            .zip(&tokens)
            .zip(&oracle_cases)
        {
            assert_eq!(
                result["verified"], true,
                "seed {seed}: node refused {case}: {}",
                result["error"]
            );
            let ours: Value = serde_json::from_str(&segment(&minted.token, 1)).unwrap();
            let theirs = &result["claims"];
            for claim in ["grants", "iss", "sub", "exp", "nbf"] {
                assert_eq!(
                    numbers_as_floats(&ours[claim]),
                    numbers_as_floats(&theirs[claim]),
                    "seed {seed}: {claim} of {case}"
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_mints_and_explains_refusals() {
    let broker = Broker::start(Options::default());
    let f = Fixtures::new();
    let mut admin = broker.admin().await;
    admin
        .put_credential(f.api_key("web", pb::KeyType::Standard))
        .await
        .unwrap();
    admin
        .put_credential(f.api_key("limited", pb::KeyType::Restricted))
        .await
        .unwrap();
    let app = random_sid("AP");
    let out = broker.cli(
        &[
            "token",
            "mint",
            "web",
            "--identity",
            "alice",
            "--ttl",
            "30m",
            "--video-room",
            "standup",
            "--voice-outgoing-app",
            &app,
            "--voice-incoming",
            "--voice-param",
            "to=+15005550006",
            "--chat-service",
            IS,
            "--sync-service",
            IS,
            "--grant",
            "task-router",
            "--region",
            "ie1",
            "--playback-json",
            r#"{"playbackUrl": "https://example.com/p"}"#,
            "--json",
        ],
        "",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    let token = printed["token"].as_str().unwrap();
    let header: Value = serde_json::from_str(&segment(token, 0)).unwrap();
    assert_eq!(header["twr"], "ie1");
    let payload: Value = serde_json::from_str(&segment(token, 1)).unwrap();
    assert_eq!(
        payload["exp"].as_i64().unwrap() - payload["nbf"].as_i64().unwrap(),
        1800
    );
    assert_eq!(printed["jti"], payload["jti"]);
    assert_eq!(printed["expires_at_unix"], payload["exp"]);
    assert_eq!(
        payload["grants"],
        json!({
            "voice": {"incoming": {"allow": true}, "outgoing": {"application_sid": app, "params": {"to": "+15005550006"}}},
            "video": {"room": "standup"},
            "chat": {"service_sid": IS},
            "data_sync": {"service_sid": IS},
            "task_router": {},
            "player": {"playbackUrl": "https://example.com/p"},
            "identity": "alice",
        })
    );

    let plain = broker.cli(
        &[
            "token",
            "mint",
            "web",
            "--identity",
            "bob",
            "--grant",
            "video",
        ],
        "",
    );
    assert!(plain.status.success());
    assert_eq!(
        String::from_utf8_lossy(&plain.stdout)
            .trim()
            .split('.')
            .count(),
        3
    );

    let refused = broker.cli(
        &[
            "token",
            "mint",
            "limited",
            "--identity",
            "bob",
            "--grant",
            "video",
        ],
        "",
    );
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("FAILED_PRECONDITION") && stderr.contains("restricted"),
        "{stderr}"
    );

    let too_long = broker.cli(
        &[
            "token",
            "mint",
            "web",
            "--identity",
            "bob",
            "--ttl",
            "25h",
            "--grant",
            "video",
        ],
        "",
    );
    assert!(!too_long.status.success());
    assert!(String::from_utf8_lossy(&too_long.stderr).contains("ttl_seconds"));
}
