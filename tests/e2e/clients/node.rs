//! twilio-node 6.2's real client with `BrokerCredentialProvider`
//! (`setCredentialProvider` + `setAccountSid`) sends SMS to the stand-in with
//! a bearer from the broker, asking the broker once although twilio-node asks
//! its provider on every request; grpc-js calls the broker directly.

use serde_json::Value;

use super::{client_dir, run_driver, setup};
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

    s.assert_sms(&out["sms"], broker_calls);

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
    s.assert_direct_calls(grpc, broker_calls);
    // Four concurrent cold calls, one broker call (bearer_fetches above).
    assert_eq!(grpc["herd_same"], Value::Bool(true));
    assert_eq!(s.standin.tokens_issued(), 1);
    s.assert_clean_logs();
}
