//! The SDK's audit conformance suite against this sink, reading its output
//! back to check that every event arrived exactly once, unchanged.

use twilio_broker_plugin_sdk::serde_json::json;
use twilio_broker_plugin_sdk::{AuditPlugin as _, conformance};
use {{crate}}::{{Type}};

#[test]
fn passes_the_audit_conformance_suite() {
    let path = std::env::temp_dir().join(format!("{{crate}}-{}.jsonl", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let sink = {{Type}}::init(&json!({ "path": path })).expect("init");
    let readback = || {
        let text = std::fs::read_to_string(&path).map_err(|e| e.to_string())?;
        Ok(text.lines().map(str::to_owned).collect())
    };
    let report = conformance::audit::run(&sink, Some(&readback));
    sink.close().expect("close");
    let _ = std::fs::remove_file(&path);
    println!("{report}");
    report.assert_passed();
}

#[test]
fn refuses_a_bad_config_with_a_clear_message() {
    for (config, expected) in [
        (json!({}), "config.path"),
        (json!({ "path": "/tmp/x", "pth": 1 }), "unknown config key"),
        (json!({ "path": "/nonexistent-dir/x.jsonl" }), "cannot open"),
    ] {
        let err = {{Type}}::init(&config).err().expect("refused");
        assert!(err.message.contains(expected), "{config}: {err}");
    }
}
