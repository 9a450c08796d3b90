//! Clients in every language against the real daemon and the twilio-standin:
//! the Rust crate and its SMS example, twilio-python with
//! `BrokerCredentialProvider` over grpcio, twilio-node with its provider over
//! grpc-js, each sending SMS through Twilio's REST API (the stand-in) with a
//! bearer from the broker and counting broker calls to prove its cache; and
//! the README's grpcurl recipe for every RPC.

mod authority;
mod breaking;
mod go;
mod grpcurl;
mod node;
mod packages;
mod python;
mod readme;
mod rust;
mod users;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;
use twilio_broker_api::v1 as pb;
use twilio_standin::{Client, Config, Standin};

use crate::harness::{Broker, Fixtures, Options};

/// The oauth_client credential the services use.
pub const OAUTH: &str = "prod-oauth";
/// A standard API key, for MintAccessToken.
pub const VIDEO: &str = "video-key";
/// How many SMS each client sends.
pub const MESSAGES: u64 = 5;

/// A stand-in knowing the fixtures' OAuth client, a broker whose token URL
/// points at it, and both credentials stored.
pub struct Setup {
    pub standin: Standin,
    pub broker: Broker,
    pub f: Fixtures,
}

pub async fn setup() -> Setup {
    let f = Fixtures::new();
    let standin = standin(&f).await;
    let broker = Broker::start(Options {
        env: vec![("TWILIO_BROKER_OAUTH_TOKEN_URL".into(), standin.token_url())],
        ..Options::default()
    });
    let mut admin = broker.admin().await;
    admin.put_credential(f.oauth_client(OAUTH)).await.unwrap();
    admin
        .put_credential(f.api_key(VIDEO, pb::KeyType::Standard))
        .await
        .unwrap();
    Setup { standin, broker, f }
}

/// A stand-in accepting the fixtures' OAuth client.
pub async fn standin(f: &Fixtures) -> Standin {
    twilio_standin::start(Config {
        clients: vec![Client {
            client_id: f.client_id.clone(),
            client_secret: f.client_secret.clone(),
            account_sid: f.account_sid.clone(),
        }],
        ..Config::default()
    })
    .await
    .unwrap()
}

impl Setup {
    /// The driver scripts' input.
    pub fn spec(&self) -> Value {
        serde_json::json!({
            "broker": self.broker.url,
            "credential": OAUTH,
            "account_sid": self.f.account_sid,
            "api_base": self.standin.url(),
            "messages": MESSAGES,
            "mint": {
                "credential": VIDEO,
                "identity": "alice",
                "room": "standup",
                "secret": self.f.api_secret,
            },
        })
    }

    /// What every client test asserts of the stand-in afterwards: `MESSAGES`
    /// messages, each authorised by a bearer the stand-in verified (issued by
    /// it, unexpired, for the account), all one token, fetched upstream once.
    pub fn assert_messages_authorised_by_one_bearer(&self, sids: &[String]) {
        let stats = self.standin.stats();
        assert_eq!(stats.rest_rejected, 0, "{stats:?}");
        assert_eq!(stats.rest_requests, MESSAGES, "{stats:?}");
        assert_eq!(stats.messages_created, MESSAGES, "{stats:?}");
        assert_eq!(stats.tokens_issued, 1, "the broker fetched more than once");
        let messages = self.standin.messages();
        let got: Vec<&str> = messages.iter().map(|m| m.sid.as_str()).collect();
        let want: Vec<&str> = sids.iter().map(String::as_str).collect();
        assert_eq!(got, want);
        for message in &messages {
            assert_eq!(message.account_sid, self.f.account_sid);
            assert_eq!(message.token_id, messages[0].token_id);
        }
    }

    /// The `sms` part of a Python or Node driver's answer (one shape for
    /// both): `MESSAGES` messages sent through Twilio's own library to
    /// api.twilio.com with a bearer, `broker_calls` broker calls, all
    /// authorised by one bearer.
    pub fn assert_sms(&self, sms: &Value, broker_calls: u64) {
        let messages = sms["messages"].as_array().unwrap();
        assert_eq!(messages.len() as u64, MESSAGES, "{sms}");
        let mut sids = Vec::new();
        for (i, message) in messages.iter().enumerate() {
            let sid = message["sid"].as_str().unwrap();
            assert!(sid.starts_with("SM"), "{message}");
            assert_eq!(message["status"], "queued");
            assert_eq!(message["account_sid"], self.f.account_sid.as_str());
            assert_eq!(message["to"], "+15005550006");
            assert_eq!(message["from"], "+15005550001");
            assert_eq!(message["body"], format!("hello broker {i}"));
            sids.push(sid.to_owned());
        }
        // The library aimed at Twilio itself and sent a bearer, never Basic.
        assert_eq!(sms["hosts"], serde_json::json!(["api.twilio.com"]));
        assert_eq!(sms["schemes"], serde_json::json!(["Bearer"]));
        assert_eq!(sms["distinct_bearers"], 1);
        // The library asked its provider for every request; the provider's
        // cache asked the broker `broker_calls` times.
        assert_eq!(sms["broker_calls"], broker_calls, "{sms}");
        self.assert_messages_authorised_by_one_bearer(&sids);
    }

    /// The direct gRPC calls of a Python or Node driver (one shape for
    /// both): the credentials listed, the OAuth kind, NOT_FOUND with its
    /// reason and metadata, a minted Video token, and the bearer cache.
    pub fn assert_direct_calls(&self, calls: &Value, broker_calls: u64) {
        let mut names = vec![OAUTH, VIDEO];
        names.sort();
        assert_eq!(calls["credentials"], serde_json::json!(names));
        assert_eq!(calls["oauth_kind"], "CREDENTIAL_KIND_OAUTH_CLIENT");
        assert_eq!(calls["not_found"], "NOT_FOUND");
        // The client exposes the broker's ErrorInfo: decide on the reason.
        assert_eq!(calls["not_found_reason"], "CREDENTIAL_NOT_FOUND");
        assert_eq!(
            calls["not_found_metadata"]["credential"],
            "no-such-credential"
        );
        let minted = &calls["minted"];
        assert_eq!(minted["jti"], minted["claim_jti"]);
        assert!(
            minted["jti"].as_str().unwrap().starts_with(&self.f.key_sid),
            "{minted}"
        );
        assert_eq!(minted["identity"], "alice");
        assert_eq!(minted["room"], "standup");
        assert_eq!(minted["exp"], minted["expires_at"]);
        let left = minted["ttl_left"].as_i64().unwrap();
        assert!((590..=600).contains(&left), "{minted}");
        assert_eq!(calls["bearer_account_sid"], self.f.account_sid.as_str());
        assert_eq!(calls["bearer_fetches"], broker_calls);
    }

    /// No secret in anything the broker logged.
    pub fn assert_clean_logs(&self) {
        let log = self.broker.log_text();
        for secret in self.f.secrets() {
            assert!(!log.contains(secret), "a secret reached the log");
        }
    }
}

/// Runs a driver script under `tests/oracles/` with `input` on stdin and
/// `env` set; parses its stdout as JSON. Panics with its stderr on failure.
pub fn run_driver(program: &Path, script: &str, env: &[(&str, PathBuf)], input: &Value) -> Value {
    use std::io::Write as _;
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut command = Command::new(program);
    command
        .arg(root.join("tests/oracles").join(script))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (name, value) in env {
        command.env(name, value);
    }
    let mut child = command.spawn().expect("spawn driver");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input.to_string().as_bytes()).unwrap();
    drop(stdin);
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{script} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "{script} printed no JSON ({e}):\n{}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

/// The repository's `client/` folder.
pub fn client_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../client")
}
