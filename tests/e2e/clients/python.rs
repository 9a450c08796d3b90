//! twilio-python 9.13's real `Client` with `BrokerCredentialProvider` sends
//! SMS to the stand-in with a bearer from the broker, asking the broker once;
//! grpcio calls the broker directly through `twilio_broker.BrokerClient`.

use serde_json::Value;

use super::{MESSAGES, OAUTH, VIDEO, client_dir, run_driver, setup};
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
    // twilio-python aimed at Twilio itself and sent a bearer, never Basic.
    assert_eq!(sms["hosts"], serde_json::json!(["api.twilio.com"]));
    assert_eq!(sms["schemes"], serde_json::json!(["Bearer"]));
    assert_eq!(sms["distinct_bearers"], 1);
    // The provider's cache: one broker call for all the messages.
    assert_eq!(sms["broker_calls"], broker_calls, "{sms}");
    s.assert_messages_authorised_by_one_bearer(&sids);

    let grpcio = &out["grpcio"];
    let mut names = vec![OAUTH, VIDEO];
    names.sort();
    assert_eq!(grpcio["credentials"], serde_json::json!(names));
    assert_eq!(grpcio["oauth_kind"], "CREDENTIAL_KIND_OAUTH_CLIENT");
    assert_eq!(grpcio["not_found"], "NOT_FOUND");
    // The client exposes the broker's ErrorInfo: decide on the reason.
    assert_eq!(grpcio["not_found_reason"], "CREDENTIAL_NOT_FOUND");
    assert_eq!(
        grpcio["not_found_metadata"]["credential"],
        "no-such-credential"
    );
    let minted = &grpcio["minted"];
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
    assert_eq!(grpcio["bearer_account_sid"], s.f.account_sid.as_str());
    assert_eq!(grpcio["bearer_repr_redacted"], Value::Bool(true));
    assert_eq!(grpcio["cached_bearer_same"], Value::Bool(true));
    assert_eq!(grpcio["bearer_fetches"], broker_calls);

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
