//! twilio-python 9.13's real `Client` with `BrokerCredentialProvider` sends
//! SMS to the stand-in with a bearer from the broker, asking the broker once;
//! grpcio calls the broker directly through `twilio_broker.BrokerClient`.

use serde_json::Value;

use super::{client_dir, run_driver, setup};
use crate::oracles;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twilio_python_sends_sms_with_a_broker_bearer_fetched_once() {
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
    let Some(python) = oracles::python() else {
        return;
    };
    let s = setup().await;
    if let Some(ttl) = ttl {
        s.standin.set_token_ttl_seconds(ttl);
    }
    let out = run_driver(
        &python,
        "clients_python.py",
        &[("PYTHONPATH", client_dir().join("python"))],
        &s.spec(),
    );

    s.assert_sms(&out["sms"], broker_calls);
    let grpcio = &out["grpcio"];
    s.assert_direct_calls(grpcio, broker_calls);
    assert_eq!(grpcio["bearer_repr_redacted"], Value::Bool(true));
    assert_eq!(grpcio["cached_bearer_same"], Value::Bool(true));

    // The asyncio client: same answers, one broker call for a herd of tasks.
    // Issue 14: plaintext to a non-loopback host only when insisted on.
    let plaintext = &out["plaintext"];
    assert!(
        plaintext["refused"]
            .as_str()
            .is_some_and(|m| m.contains("refusing plaintext to 192.0.2.1")),
        "{plaintext}"
    );
    let warned = plaintext["warnings"].as_array().unwrap();
    assert_eq!(warned.len(), 1, "{plaintext}");
    assert!(
        warned[0]
            .as_str()
            .unwrap()
            .contains("PLAINTEXT to 192.0.2.1")
    );
    let aio = &out["aio"];
    assert_eq!(aio["credentials"], grpcio["credentials"]);
    assert_eq!(aio["not_found"], "NOT_FOUND");
    assert_eq!(aio["not_found_reason"], "CREDENTIAL_NOT_FOUND");
    assert_eq!(
        aio["not_found_metadata"]["credential"],
        "no-such-credential"
    );
    assert_eq!(aio["herd_same"], Value::Bool(true));
    assert_eq!(aio["bearer_account_sid"], s.f.account_sid.as_str());
    assert_eq!(aio["bearer_fetches"], broker_calls, "{aio}");
    assert_eq!(s.standin.tokens_issued(), 1);
    s.assert_clean_logs();
}
