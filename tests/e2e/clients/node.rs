//! twilio-node 6.2's real client with `BrokerCredentialProvider`
//! (`setCredentialProvider` + `setAccountSid`) sends SMS to the stand-in with
//! a bearer from the broker, asking the broker once although twilio-node asks
//! its provider on every request; grpc-js calls the broker directly.

use serde_json::{Value, json};

use super::{MESSAGES, OAUTH, VIDEO, client_dir, run_driver, setup};
use crate::oracles;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twilio_node_sends_sms_with_a_broker_bearer_fetched_once() {
    run(None, 1).await;
}

/// Tokens living less than twice the provider's margin (an OAuth app with a
/// short `access_token_ttl`): the broker refuses the provider's `min_ttl`,
/// the provider takes what the broker has (a second call) and caches it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_lived_tokens_still_work_and_are_cached() {
    run(Some(100), 2).await;
}

/// Runs the driver with the stand-in issuing `ttl`-second tokens (default
/// 3600) and expects `broker_calls` per provider / client.
async fn run(ttl: Option<u64>, broker_calls: u64) {
    let Some(modules) = oracles::node_modules() else {
        return;
    };
    let s = setup().await;
    if let Some(ttl) = ttl {
        s.standin.set_token_ttl_seconds(ttl);
    }
    let out = run_driver(
        "node".as_ref(),
        "clients_node.js",
        &[
            ("NODE_PATH", modules),
            ("TWILIO_BROKER_NODE_CLIENT", client_dir().join("node")),
        ],
        &s.spec(),
    );

    let sms = &out["sms"];
    let messages = sms["messages"].as_array().unwrap();
    assert_eq!(messages.len() as u64, MESSAGES, "{sms}");
    let mut sids = Vec::new();
    for (i, message) in messages.iter().enumerate() {
        let sid = message["sid"].as_str().unwrap();
        assert!(sid.starts_with("SM"), "{message}");
        assert_eq!(message["status"], "queued");
        assert_eq!(message["account_sid"], s.f.account_sid.as_str());
        assert_eq!(message["to"], "+15005550006");
        assert_eq!(message["from"], "+15005550001");
        assert_eq!(message["body"], format!("hello broker {i}"));
        sids.push(sid.to_owned());
    }
    assert_eq!(sms["hosts"], json!(["api.twilio.com"]));
    assert_eq!(sms["schemes"], json!(["Bearer"]));
    assert_eq!(sms["distinct_bearers"], 1);
    // twilio-node asked the provider for every request (and a burst more);
    // the provider asked the broker once.
    assert_eq!(sms["broker_calls"], broker_calls, "{sms}");
    s.assert_messages_authorised_by_one_bearer(&sids);

    // Issue 14: plaintext to a non-loopback host only when insisted on.
    let plaintext = &out["plaintext"];
    assert!(
        plaintext["refused"]
            .as_str()
            .is_some_and(|m| m.contains("refusing plaintext to 192.0.2.1")),
        "{plaintext}"
    );
    assert_eq!(
        plaintext["warnings"],
        serde_json::json!(["TwilioBrokerPlaintextWarning"]),
        "{plaintext}"
    );
    let grpc = &out["grpc_js"];
    let mut names = vec![OAUTH, VIDEO];
    names.sort();
    assert_eq!(grpc["credentials"], json!(names));
    assert_eq!(grpc["oauth_kind"], "CREDENTIAL_KIND_OAUTH_CLIENT");
    assert_eq!(grpc["not_found"], "NOT_FOUND");
    // The client exposes the broker's ErrorInfo: decide on the reason.
    assert_eq!(grpc["not_found_reason"], "CREDENTIAL_NOT_FOUND");
    assert_eq!(
        grpc["not_found_metadata"]["credential"],
        "no-such-credential"
    );
    let minted = &grpc["minted"];
    assert_eq!(minted["jti"], minted["claim_jti"]);
    assert!(
        minted["jti"].as_str().unwrap().starts_with(&s.f.key_sid),
        "{minted}"
    );
    assert_eq!(minted["identity"], "alice");
    assert_eq!(minted["room"], "standup");
    assert_eq!(minted["exp"], minted["expires_at"]);
    let left = minted["ttl_left"].as_i64().unwrap();
    assert!((590..=600).contains(&left), "{minted}");
    assert_eq!(grpc["bearer_account_sid"], s.f.account_sid.as_str());
    assert_eq!(grpc["herd_same"], Value::Bool(true));
    // Four concurrent cold calls, one broker call.
    assert_eq!(grpc["bearer_fetches"], broker_calls);
    assert_eq!(s.standin.tokens_issued(), 1);
    s.assert_clean_logs();
}
