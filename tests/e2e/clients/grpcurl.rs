//! The README's grpcurl recipes, one per RPC, against the real daemon on its
//! Unix socket (with a caller policy, as in production) and the stand-in:
//! reflection, health, every Admin and Broker call, each reply checked in
//! depth (`readme.rs` runs the README's block itself, literally).

use std::path::Path;
use std::process::{Command, Stdio};

use base64::Engine as _;
use hmac::{Hmac, Mac as _};
use serde_json::{Value, json};

use super::standin;
use crate::harness::{Broker, Fixtures, Options};
use crate::oracles;

/// `grpcurl -plaintext -unix SOCKET [-d @] ARGS...` with `body` on stdin,
/// exactly as the README writes it: no `-authority`, so grpcurl 1.8 sends the
/// socket path as `:authority`, which the broker serves (vendor/h2/PATCH.md).
fn grpcurl(socket: &Path, args: &[&str], body: Option<&Value>) -> (bool, String) {
    grpcurl_with(&[], socket, args, body)
}

/// [`grpcurl`] with more `flags` (they go before the address, where grpcurl
/// reads flags).
fn grpcurl_with(
    flags: &[&str],
    socket: &Path,
    args: &[&str],
    body: Option<&Value>,
) -> (bool, String) {
    use std::io::Write as _;
    let grpcurl = oracles::tool("grpcurl").unwrap();
    let mut command = Command::new(grpcurl);
    command.args(["-plaintext", "-unix"]).args(flags);
    if body.is_some() {
        command.args(["-d", "@"]);
    }
    command
        .arg(socket)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    if let Some(body) = body {
        stdin.write_all(body.to_string().as_bytes()).unwrap();
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// A call that must succeed; its JSON reply.
fn call(socket: &Path, method: &str, body: Value) -> Value {
    let (ok, text) = grpcurl(
        socket,
        &[&format!("twilio.broker.v1.{method}")],
        Some(&body),
    );
    assert!(ok, "{method}: {text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{method}: {e}: {text}"))
}

/// Twilio's `X-Twilio-Signature`: base64(HMAC-SHA1(auth token, URL + sorted name+value)).
fn signature(auth_token: &str, url: &str, params: &[(&str, &str)]) -> String {
    let mut sorted = params.to_vec();
    sorted.sort();
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(auth_token.as_bytes()).unwrap();
    mac.update(url.as_bytes());
    for (name, value) in sorted {
        mac.update(name.as_bytes());
        mac.update(value.as_bytes());
    }
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_grpcurl_recipes_work_for_every_rpc() {
    if oracles::tool("grpcurl").is_none() {
        return;
    }
    let f = Fixtures::new();
    let standin = standin(&f).await;
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("broker.sock");
    let uid = String::from_utf8(Command::new("id").arg("-u").output().unwrap().stdout).unwrap();
    let policy = dir.path().join("policy.toml");
    let one_rule = format!(
        "[[rule]]\ncallers = [\"uid:{}\"]\nadmin = true\n",
        uid.trim()
    );
    std::fs::write(&policy, &one_rule).unwrap();
    let broker = Broker::start(Options {
        args: vec![
            "--listen".into(),
            format!("unix:{}", socket.display()),
            "--policy".into(),
            policy.display().to_string(),
        ],
        env: vec![("TWILIO_BROKER_OAUTH_TOKEN_URL".into(), standin.token_url())],
        dev: false,
        ..Options::default()
    });
    let s = socket.as_path();

    // Reflection and health.
    let (ok, listed) = grpcurl(s, &["list"], None);
    assert!(ok && listed.contains("twilio.broker.v1.Admin"), "{listed}");
    let (ok, methods) = grpcurl(s, &["list", "twilio.broker.v1.Broker"], None);
    assert!(
        ok && methods.contains("twilio.broker.v1.Broker.GetBearer"),
        "{methods}"
    );
    let (ok, described) = grpcurl(s, &["describe", "twilio.broker.v1.GetBearerRequest"], None);
    assert!(ok && described.contains("min_ttl_seconds"), "{described}");
    let (ok, health) = grpcurl(s, &["grpc.health.v1.Health/Check"], None);
    assert!(ok && health.contains("SERVING"), "{health}");

    // Admin: store one credential of each kind the other calls need.
    let put = call(
        s,
        "Admin/PutCredential",
        json!({"name": "prod-oauth", "labels": {"environment": "production"},
               "oauth_client": {"account_sid": f.account_sid, "client_id": f.client_id,
                                "client_secret": f.client_secret}}),
    );
    assert_eq!(put["credential"]["kind"], "CREDENTIAL_KIND_OAUTH_CLIENT");
    call(
        s,
        "Admin/PutCredential",
        json!({"name": "prod-video-key",
               "api_key": {"account_sid": f.account_sid, "key_sid": f.key_sid,
                           "secret": f.api_secret, "key_type": "KEY_TYPE_STANDARD"}}),
    );
    call(
        s,
        "Admin/PutCredential",
        json!({"name": "prod-webhooks",
               "auth_token": {"account_sid": f.account_sid, "auth_token": f.auth_token}}),
    );
    let got = call(s, "Admin/GetCredential", json!({"name": "prod-oauth"}));
    assert_eq!(got["credential"]["clientId"], f.client_id.as_str());
    let listed = call(s, "Admin/ListCredentials", json!({}));
    assert_eq!(listed["credentials"].as_array().unwrap().len(), 3);

    // Broker.
    let bearer = call(
        s,
        "Broker/GetBearer",
        json!({"credential": "prod-oauth", "min_ttl_seconds": 60}),
    );
    let token = bearer["accessToken"].as_str().unwrap();
    assert_eq!(standin.verify(token).unwrap().sub, f.account_sid);
    assert_eq!(bearer["accountSid"], f.account_sid.as_str());
    let minted = call(
        s,
        "Broker/MintAccessToken",
        json!({"credential": "prod-video-key", "identity": "alice", "ttl_seconds": 600,
               "video": {"room": "standup"}}),
    );
    assert!(minted["jti"].as_str().unwrap().starts_with(&f.key_sid));
    let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
    let params = [("Digits", "1234"), ("To", "+18005551212")];
    let webhook = |signature: &str| {
        json!({"credential": "prod-webhooks", "url": url,
               "params": params.iter().map(|(n, v)| json!({"name": n, "value": v})).collect::<Vec<_>>(),
               "signature": signature})
    };
    let valid = call(
        s,
        "Broker/ValidateWebhook",
        webhook(&signature(&f.auth_token, url, &params)),
    );
    assert_eq!(valid["valid"], true, "{valid}");
    let forged = call(s, "Broker/ValidateWebhook", webhook("AAAA"));
    assert!(
        forged["valid"].is_null() && forged["reason"].is_string(),
        "{forged}"
    );
    let advice = call(
        s,
        "Broker/Recommend",
        json!({"environment": "ENVIRONMENT_PRODUCTION", "side": "SIDE_SERVER",
               "needs_account_management": false, "credential": "prod-video-key"}),
    );
    assert!(advice["method"].is_string(), "{advice}");

    // Admin/ReloadPolicy picks up an edited file.
    std::fs::write(
        &policy,
        format!(
            "{one_rule}\n[[rule]]\ncallers = [\"uid:{}\"]\nrpcs = [\"Recommend\"]\n",
            uid.trim()
        ),
    )
    .unwrap();
    let reloaded = call(s, "Admin/ReloadPolicy", json!({}));
    assert_eq!(reloaded["rules"], 2, "{reloaded}");

    let deleted = call(s, "Admin/DeleteCredential", json!({"name": "prod-oauth"}));
    assert_eq!(deleted["credential"]["name"], "prod-oauth");
    let (ok, gone) = grpcurl(
        s,
        &["twilio.broker.v1.Admin/GetCredential"],
        Some(&json!({"name": "prod-oauth"})),
    );
    assert!(!ok && gone.contains("NotFound"), "{gone}");
    // Stock grpcurl shows the ErrorInfo (reflection serves google.rpc's
    // types), and with -format-error prints the status as JSON.
    assert!(
        gone.contains("\"reason\":\"CREDENTIAL_NOT_FOUND\""),
        "{gone}"
    );
    let (ok, json_error) = grpcurl_with(
        &["-format-error"],
        s,
        &["twilio.broker.v1.Admin/GetCredential"],
        Some(&json!({"name": "prod-oauth"})),
    );
    assert!(!ok, "{json_error}");
    let start = json_error.find('{').expect("a JSON status");
    let status: Value = serde_json::Deserializer::from_str(&json_error[start..])
        .into_iter::<Value>()
        .next()
        .expect("one JSON value")
        .expect("JSON");
    assert_eq!(status["code"], 5, "{status}");
    let info = &status["details"][0];
    assert_eq!(
        info["@type"], "type.googleapis.com/google.rpc.ErrorInfo",
        "{status}"
    );
    assert_eq!(info["reason"], "CREDENTIAL_NOT_FOUND", "{status}");
    assert_eq!(info["domain"], "twilio-broker", "{status}");
    assert_eq!(info["metadata"]["credential"], "prod-oauth", "{status}");
    let log = broker.log_text();
    for secret in f.secrets() {
        assert!(!log.contains(secret));
    }
}
