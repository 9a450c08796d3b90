//! ValidateWebhook through the real daemon: the vectors, malformed input vs
//! invalid signatures, and live cross-checks against twilio-python 9.13's
//! RequestValidator and twilio-node 6.2's validateRequest /
//! validateRequestWithBody on random requests (repeated params, port
//! variants, bodySHA256 JSON bodies, HMAC-SHA256 shared-key mode).

use base64::Engine as _;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use sha2::Digest as _;
use tonic::Code;
use twilio_broker_api::v1 as pb;

use crate::harness::{Broker, Fixtures, Options, Refusal, check_refusals, random_secret};
use crate::mint::{node, oracle_json};
use crate::oracles;

const VECTORS: &str = include_str!("../fixtures/twilio-vectors.json");
const SHA256_SETTINGS: &str = "key=webhooks_sharedkey_0123456789,algorithm=HMAC_SHA256";

fn auth_token(name: &str, account_sid: &str, token: &str) -> pb::PutCredentialRequest {
    pb::PutCredentialRequest {
        manager: String::new(),
        name: name.into(),
        labels: Default::default(),
        credential: Some(pb::put_credential_request::Credential::AuthToken(
            pb::AuthTokenCredential {
                account_sid: account_sid.into(),
                auth_token: token.into(),
                ..Default::default()
            },
        )),
    }
}

fn params_of(vector: &Value) -> Vec<pb::FormParam> {
    let mut out = Vec::new();
    for (name, value) in vector["params"].as_object().unwrap() {
        let values = match value {
            Value::Array(values) => values.clone(),
            v => vec![v.clone()],
        };
        for v in values {
            out.push(pb::FormParam {
                name: name.clone(),
                value: v.as_str().unwrap().into(),
            });
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_vector_validates_through_grpc_and_tampering_does_not() {
    let broker = Broker::start(Options::default());
    let f = Fixtures::new();
    let all: Value = serde_json::from_str(VECTORS).unwrap();
    let vectors = all["webhook_signatures"].as_array().unwrap();
    let mut admin = broker.admin().await;
    let mut client = broker.broker().await;
    for (i, vector) in vectors.iter().enumerate() {
        let name = vector["name"].as_str().unwrap();
        let credential = format!("vector-{i}");
        admin
            .put_credential(auth_token(
                &credential,
                &f.account_sid,
                vector["auth_token"].as_str().unwrap(),
            ))
            .await
            .unwrap();
        let request = pb::ValidateWebhookRequest {
            credential,
            url: vector["url"].as_str().unwrap().into(),
            params: params_of(vector),
            body: vector["body"].as_str().unwrap_or_default().into(),
            signature: vector["expected_signature"].as_str().unwrap().into(),
            signature_settings: if vector["algorithm"] == "HMAC_SHA256" {
                SHA256_SETTINGS.into()
            } else {
                String::new()
            },
        };
        let verdict = client
            .validate_webhook(request.clone())
            .await
            .unwrap()
            .into_inner();
        assert!(verdict.valid, "{name}: {}", verdict.reason);
        assert!(verdict.reason.is_empty());

        let mut tampered = request.clone();
        match tampered.params.first_mut() {
            Some(param) => param.value.push('x'),
            None if !tampered.body.is_empty() => tampered.body.push(' '),
            None => tampered.url.push_str("&y=2"),
        }
        let verdict = client
            .validate_webhook(tampered)
            .await
            .unwrap()
            .into_inner();
        assert!(!verdict.valid, "{name}: tampered request accepted");
        assert!(!verdict.reason.is_empty());
    }
    // The cross-port checks: sig2's signature on sig6's URL and back.
    let by_name = |n: &str| vectors.iter().position(|v| v["name"] == n).unwrap();
    let (two, six) = (
        by_name("sig2_url_with_port_443"),
        by_name("sig6_port_removed_variant"),
    );
    for (url_of, signature_of) in [(two, six), (six, two)] {
        let verdict = client
            .validate_webhook(pb::ValidateWebhookRequest {
                credential: format!("vector-{url_of}"),
                url: vectors[url_of]["url"].as_str().unwrap().into(),
                params: params_of(&vectors[url_of]),
                signature: vectors[signature_of]["expected_signature"]
                    .as_str()
                    .unwrap()
                    .into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(verdict.valid, "{}", verdict.reason);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_and_wrong_kinds_have_their_status_codes() {
    let broker = Broker::start(Options::default());
    let f = Fixtures::new();
    let mut admin = broker.admin().await;
    for put in [
        f.auth_token("tok"),
        f.test("test"),
        f.api_key("key", pb::KeyType::Main),
        f.oauth_client("oauth"),
    ] {
        admin.put_credential(put).await.unwrap();
    }
    let ok = pb::ValidateWebhookRequest {
        credential: "tok".into(),
        url: "https://example.com/hook".into(),
        params: vec![pb::FormParam {
            name: "From".into(),
            value: "+15005550006".into(),
        }],
        signature: "AAAAAAAAAAAAAAAAAAAAAAAAAAA=".into(),
        ..Default::default()
    };
    let with = |change: &dyn Fn(&mut pb::ValidateWebhookRequest)| {
        let mut request = ok.clone();
        change(&mut request);
        request
    };
    let cases: Vec<Refusal<pb::ValidateWebhookRequest>> = vec![
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
            "api key",
            with(&|r| r.credential = "key".into()),
            Code::FailedPrecondition,
            "auth_token",
        ),
        (
            "oauth client",
            with(&|r| r.credential = "oauth".into()),
            Code::FailedPrecondition,
            "auth_token",
        ),
        (
            "no url",
            with(&|r| r.url.clear()),
            Code::InvalidArgument,
            "url",
        ),
        (
            "relative url",
            with(&|r| r.url = "/hook".into()),
            Code::InvalidArgument,
            "url",
        ),
        (
            "ftp url",
            with(&|r| r.url = "ftp://example.com/x".into()),
            Code::InvalidArgument,
            "url",
        ),
        (
            "bad port",
            with(&|r| r.url = "https://example.com:99999/x".into()),
            Code::InvalidArgument,
            "url",
        ),
        (
            "no signature",
            with(&|r| r.signature.clear()),
            Code::InvalidArgument,
            "signature",
        ),
        (
            "body without bodySHA256",
            with(&|r| r.body = "{}".into()),
            Code::InvalidArgument,
            "body",
        ),
        (
            "params with bodySHA256",
            with(&|r| r.url = "https://example.com/hook?bodySHA256=abc".into()),
            Code::InvalidArgument,
            "params",
        ),
        (
            "malformed before unknown",
            with(&|r| {
                r.credential = "nope".into();
                r.url.clear();
            }),
            Code::InvalidArgument,
            "url",
        ),
    ];
    let mut client = broker.broker().await;
    let shared = client.clone();
    check_refusals(cases, &f.secrets(), |request| {
        let mut client = shared.clone();
        async move { client.validate_webhook(request).await.map(drop) }
    })
    .await;
    // Well formed but wrong: a verdict, not an error, for both usable kinds.
    for credential in ["tok", "test"] {
        let verdict = client
            .validate_webhook(with(&|r| r.credential = credential.into()))
            .await
            .unwrap()
            .into_inner();
        assert!(
            !verdict.valid && verdict.reason.contains("does not match"),
            "{verdict:?}"
        );
    }
    let unknown_algorithm = client
        .validate_webhook(with(&|r| {
            r.signature_settings = "key=k,algorithm=HMAC_MD5".into()
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(!unknown_algorithm.valid && unknown_algorithm.reason.contains("HMAC_MD5"));
}

/// The parts of a random URL, so both port forms can be built.
struct UrlParts {
    scheme: &'static str,
    host: &'static str,
    port: Option<u16>,
    rest: String,
}

impl UrlParts {
    fn with_port(&self, port: Option<u16>) -> String {
        match port {
            Some(p) => format!("{}://{}:{p}{}", self.scheme, self.host, self.rest),
            None => format!("{}://{}{}", self.scheme, self.host, self.rest),
        }
    }
    fn default_port(&self) -> u16 {
        if self.scheme == "https" { 443 } else { 80 }
    }
}

fn random_value(rng: &mut StdRng) -> String {
    // No characters in U+E000..U+FFFF: PY sorts by code point, ND by UTF-16 unit.
    const PIECES: &[&str] = &[
        "a", "Z", "0", " ", "+", "&", "=", "%", "é", "漢", "😀", "\"", "\n", "'", "-", "_", ".",
    ];
    (0..rng.random_range(0..10))
        .map(|_| PIECES[rng.random_range(0..PIECES.len())])
        .collect()
}

fn random_url(rng: &mut StdRng) -> UrlParts {
    const HOSTS: &[&str] = &[
        "example.com",
        "hooks.example.org",
        "127.0.0.1",
        "my-app.ngrok.io",
    ];
    const SEGMENTS: &[&str] = &[
        "twilio",
        "voice",
        "sms",
        "status-callback",
        "v1",
        "a_b",
        "x.php",
        "~u",
    ];
    let scheme = if rng.random_bool(0.7) {
        "https"
    } else {
        "http"
    };
    let port = match rng.random_range(0..10) {
        0..5 => None,
        5..7 => Some(if scheme == "https" { 443 } else { 80 }),
        _ => Some(rng.random_range(1024..65535)),
    };
    let mut rest: String = (0..rng.random_range(0..4))
        .map(|_| format!("/{}", SEGMENTS[rng.random_range(0..SEGMENTS.len())]))
        .collect();
    if rest.is_empty() && rng.random_bool(0.5) {
        rest.push('/');
    }
    if rng.random_bool(0.5) {
        let pairs: Vec<String> = (0..rng.random_range(1..4))
            .map(|i| format!("q{i}={}", rng.random_range(0..1000)))
            .collect();
        rest.push('?');
        rest.push_str(&pairs.join("&"));
    }
    UrlParts {
        scheme,
        host: HOSTS[rng.random_range(0..HOSTS.len())],
        port,
        rest,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_requests_get_the_same_verdict_as_twilio_python_and_node() {
    let python = oracles::python();
    let node = node();
    if python.is_none() && node.is_none() {
        return;
    }
    let broker = Broker::start(Options::default());
    let f = Fixtures::new();
    let shared_secret = random_secret("sharedkey");
    let test_token = random_secret("");
    let mut admin = broker.admin().await;
    admin.put_credential(f.auth_token("tok")).await.unwrap();
    admin
        .put_credential(auth_token("shared-key", &f.account_sid, &shared_secret))
        .await
        .unwrap();
    admin
        .put_credential(pb::PutCredentialRequest {
            manager: String::new(),
            name: "test-creds".into(),
            labels: Default::default(),
            credential: Some(pb::put_credential_request::Credential::Test(
                pb::TestCredential {
                    account_sid: f.account_sid.clone(),
                    auth_token: test_token.clone(),
                },
            )),
        })
        .await
        .unwrap();

    let seed: u64 = rand::random();
    eprintln!("random_requests_get_the_same_verdict_as_twilio_python_and_node: seed {seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let mut cases = Vec::new();
    let mut requests = Vec::new();
    // (wrong key: the broker must say invalid whatever the oracles say)
    let mut wrong_key = Vec::new();
    for _ in 0..150 {
        let parts = random_url(&mut rng);
        let url = parts.with_port(parts.port);
        // Twilio signed one of the two forms.
        let sign_url = if rng.random_bool(0.5) {
            parts.with_port(None)
        } else {
            parts.with_port(Some(parts.port.unwrap_or(parts.default_port())))
        };
        let (credential, token, algorithm) = match rng.random_range(0..10) {
            0..6 => ("tok", f.auth_token.clone(), "HMAC_SHA1"),
            6..8 => ("test-creds", test_token.clone(), "HMAC_SHA1"),
            _ => ("shared-key", shared_secret.clone(), "HMAC_SHA256"),
        };
        let json_body = rng.random_bool(0.25);
        let (url, sign_url, params, body) = if json_body {
            let body = json!({ "property": random_value(&mut rng), "n": rng.random_range(0..100) })
                .to_string();
            let hash: String = sha2::Sha256::digest(body.as_bytes())
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            let add = |u: &str| {
                let sep = if u.contains('?') { '&' } else { '?' };
                format!("{u}{sep}bodySHA256={hash}")
            };
            (add(&url), add(&sign_url), Vec::new(), Some(body))
        } else {
            let names = [
                "From", "To", "Body", "CallSid", "Digits", "x", "é", "Zeta", "A b",
            ];
            let params: Vec<(String, String)> = (0..rng.random_range(0..7))
                .map(|_| {
                    (
                        names[rng.random_range(0..names.len())].to_owned(),
                        random_value(&mut rng),
                    )
                })
                .collect();
            (url, sign_url, params, None)
        };
        // A third of the cases are forgeries of one kind or another.
        let (signature, validate_body, oracle_token, forged_key) = match rng.random_range(0..9) {
            0 => {
                let mut bytes = [0u8; 20];
                rng.fill(&mut bytes);
                (
                    Some(base64::engine::general_purpose::STANDARD.encode(bytes)),
                    body.clone(),
                    token.clone(),
                    false,
                )
            }
            1 if body.is_some() => (
                None,
                body.as_ref().map(|b| format!("{b} ")),
                token.clone(),
                false,
            ),
            2 => (None, body.clone(), random_secret("forger"), true),
            _ => (None, body.clone(), token.clone(), false),
        };
        cases.push(json!({
            "token": oracle_token,
            "algorithm": algorithm,
            "sign_url": sign_url,
            "url": url,
            "params": params,
            "body": validate_body,
            "signature": signature,
        }));
        wrong_key.push(forged_key);
        requests.push(pb::ValidateWebhookRequest {
            credential: credential.into(),
            url,
            params: params
                .iter()
                .map(|(name, value)| pb::FormParam {
                    name: name.clone(),
                    value: value.clone(),
                })
                .collect(),
            body: validate_body.unwrap_or_default(),
            signature: String::new(),
            signature_settings: if algorithm == "HMAC_SHA256" {
                SHA256_SETTINGS.into()
            } else {
                String::new()
            },
        });
    }
    let input = json!({ "cases": cases });
    // The signatures come from twilio-python (or twilio-node for SHA1 if PY is absent).
    let py = python
        .as_ref()
        .map(|p| oracle_json(p, "webhook_oracle.py", &input, None));
    let nd = node
        .as_ref()
        .map(|(n, m)| oracle_json(n, "webhook_oracle.js", &input, Some(m)));
    let mut client = broker.broker().await;
    let (mut valid, mut invalid) = (0, 0);
    for (i, mut request) in requests.into_iter().enumerate() {
        let case = &cases[i];
        let sha256 = case["algorithm"] == "HMAC_SHA256";
        let py_result = py.as_ref().map(|r| r[i].clone());
        let nd_result = if sha256 {
            None
        } else {
            nd.as_ref().map(|r| r[i].clone())
        };
        let computed = match (&py_result, &nd_result) {
            (Some(p), _) => p["signature"].as_str().unwrap().to_owned(),
            (None, Some(n)) => n["signature"].as_str().unwrap().to_owned(),
            (None, None) => continue,
        };
        if let (Some(p), Some(n)) = (&py_result, &nd_result) {
            assert_eq!(
                p["signature"], n["signature"],
                "seed {seed}: PY and ND disagree on {case}"
            );
        }
        request.signature = case["signature"].as_str().map_or(computed, str::to_owned);
        let verdict = client.validate_webhook(request).await.unwrap().into_inner();
        if wrong_key[i] {
            assert!(
                !verdict.valid,
                "seed {seed}: a forged signature passed: {case}"
            );
        } else {
            for (library, result) in [("python", &py_result), ("node", &nd_result)] {
                if let Some(result) = result {
                    assert_eq!(
                        verdict.valid, result["valid"],
                        "seed {seed}: broker and twilio-{library} disagree on {case}: {}",
                        verdict.reason
                    );
                }
            }
        }
        if verdict.valid {
            valid += 1
        } else {
            invalid += 1
        }
    }
    assert!(
        valid > 50 && invalid > 20,
        "seed {seed}: {valid} valid, {invalid} invalid"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_verifies_a_captured_webhook() {
    let broker = Broker::start(Options::default());
    let f = Fixtures::new();
    let all: Value = serde_json::from_str(VECTORS).unwrap();
    let vector = &all["webhook_signatures"][0];
    broker
        .admin()
        .await
        .put_credential(auth_token(
            "docs",
            &f.account_sid,
            vector["auth_token"].as_str().unwrap(),
        ))
        .await
        .unwrap();
    let url = vector["url"].as_str().unwrap();
    let mut args = vec![
        "webhook".to_owned(),
        "verify".into(),
        "docs".into(),
        "--url".into(),
        url.into(),
    ];
    for p in params_of(vector) {
        args.push("--param".into());
        args.push(format!("{}={}", p.name, p.value));
    }
    let run = |signature: &str| {
        let mut all = args.clone();
        all.push("--signature".into());
        all.push(signature.into());
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        broker.cli(&refs, "")
    };
    let good = run(vector["expected_signature"].as_str().unwrap());
    assert!(
        good.status.success(),
        "{}",
        String::from_utf8_lossy(&good.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&good.stdout).trim(), "valid");
    let bad = run("0/KCTR6DLpKmkAf8muzZqo1nDgQ");
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("not the length"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );

    // A JSON webhook, body from stdin.
    let json_vector = &all["webhook_signatures"][2];
    broker
        .admin()
        .await
        .put_credential(auth_token(
            "json",
            &f.account_sid,
            json_vector["auth_token"].as_str().unwrap(),
        ))
        .await
        .unwrap();
    let out = broker.cli(
        &[
            "webhook",
            "verify",
            "json",
            "--url",
            json_vector["url"].as_str().unwrap(),
            "--signature",
            json_vector["expected_signature"].as_str().unwrap(),
            "--body-file",
            "-",
            "--json",
        ],
        json_vector["body"].as_str().unwrap(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(printed["valid"], true);
}
