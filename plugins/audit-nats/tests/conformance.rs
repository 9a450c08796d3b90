//! The SDK's audit conformance suite against a real NATS JetStream, reading
//! the stream back to check that every event was stored exactly once.
//!
//! NATS comes from TWILIO_BROKER_TEST_NATS (default nats://127.0.0.1:4222).
//! Without a server the tests skip loudly; under CI=true they fail. Each
//! test uses its own stream and deletes it afterwards.

use async_nats::jetstream;
use twilio_broker_audit_nats::NatsSink;
use twilio_broker_plugin_sdk::serde_json::json;
use twilio_broker_plugin_sdk::{AuditPlugin as _, conformance};

fn url() -> String {
    std::env::var("TWILIO_BROKER_TEST_NATS").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// A JetStream context, or a loud skip.
fn jetstream(rt: &tokio::runtime::Runtime) -> Option<jetstream::Context> {
    // `jetstream::new` spawns a task: it must run inside the runtime.
    match rt.block_on(async { async_nats::connect(url()).await.map(jetstream::new) }) {
        Ok(context) => Some(context),
        Err(err) => {
            let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
            assert!(!ci, "NATS is not reachable ({err}); CI must start it");
            eprintln!("\n!!!!!!!! SKIPPED: NATS is not reachable ({err}) !!!!!!!!\n");
            None
        }
    }
}

fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{prefix}{}_{nanos}", std::process::id())
}

#[test]
fn passes_the_audit_suite_and_stores_every_event_once() {
    let rt = runtime();
    let Some(js) = jetstream(&rt) else { return };
    let stream = unique("TB_TEST_");
    let subject = format!("{}.audit", unique("tb-test."));
    let sink = NatsSink::init(&json!({ "url": url(), "subject": subject, "stream": stream }))
        .expect("init");
    let readback = || -> Result<Vec<String>, String> {
        rt.block_on(async {
            let mut handle = js.get_stream(&stream).await.map_err(|e| e.to_string())?;
            let last = handle
                .info()
                .await
                .map_err(|e| e.to_string())?
                .state
                .last_sequence;
            let mut events = Vec::new();
            for seq in 1..=last {
                let message = handle
                    .get_raw_message(seq)
                    .await
                    .map_err(|e| e.to_string())?;
                events.push(String::from_utf8_lossy(&message.payload).into_owned());
            }
            Ok(events)
        })
    };
    let report = conformance::audit::run(&sink, Some(&readback));
    sink.close().expect("close");
    let _ = rt.block_on(js.delete_stream(&stream));
    report.assert_passed();
}

#[test]
fn refuses_a_subject_no_stream_captures() {
    let rt = runtime();
    if jetstream(&rt).is_none() {
        return;
    }
    let subject = format!("{}.nowhere", unique("tb-test."));
    let err = NatsSink::init(&json!({ "url": url(), "subject": subject }))
        .err()
        .expect("refused");
    assert!(
        err.message.contains("no JetStream stream captures"),
        "{err}"
    );
}

#[test]
fn refuses_bad_config_and_an_unreachable_server() {
    let cases = [
        (json!({}), "config.subject is required"),
        (
            json!({"subject": "a", "stram": "X"}),
            "unknown config key \"stram\"",
        ),
        (
            json!({"subject": "a", "ack_timeout_ms": 0}),
            "config.ack_timeout_ms",
        ),
        (
            json!({"subject": "a", "url": "nats://127.0.0.1:1", "connect_timeout_ms": 500}),
            "cannot connect to NATS",
        ),
    ];
    for (config, expected) in cases {
        let err = NatsSink::init(&config).err().expect("refused");
        assert!(err.message.contains(expected), "{config}: {err}");
    }
}
