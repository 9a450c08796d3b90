//! The SDK's audit conformance suite against the jsonl sink, reading the
//! file back to check every event arrived exactly once.

use twilio_broker_audit_jsonl::JsonlSink;
use twilio_broker_plugin_sdk::serde_json::json;
use twilio_broker_plugin_sdk::{AuditPlugin as _, conformance};

#[test]
fn passes_the_audit_suite_and_writes_one_line_per_event() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("audit.jsonl");
    let sink = JsonlSink::init(&json!({ "path": path })).expect("init");
    let readback = || {
        let text = std::fs::read_to_string(&path).map_err(|e| e.to_string())?;
        Ok(text.lines().map(str::to_owned).collect())
    };
    conformance::audit::run(&sink, Some(&readback)).assert_passed();
    sink.close().expect("close");
}

#[test]
fn refuses_bad_config_with_a_clear_message() {
    let cases = [
        (json!({}), "config.path"),
        (
            json!({ "path": "/tmp/x", "synk": true }),
            "unknown config key \"synk\"",
        ),
        (json!({ "path": "/tmp/x", "sync": "yes" }), "config.sync"),
        (json!({ "path": "/nonexistent-dir/x.jsonl" }), "cannot open"),
        (json!("path"), "must be a table"),
    ];
    for (config, expected) in cases {
        let err = JsonlSink::init(&config).err().expect("refused");
        assert!(err.message.contains(expected), "{config}: {err}");
    }
}
