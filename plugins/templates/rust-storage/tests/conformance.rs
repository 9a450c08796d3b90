//! The SDK's storage conformance suite against this backend: versions,
//! compare-and-swap, listing, concurrency, exact bytes.

use twilio_broker_plugin_sdk::serde_json::json;
use twilio_broker_plugin_sdk::{StoragePlugin as _, conformance};
use {{crate}}::{{Type}};

#[test]
fn passes_the_storage_conformance_suite() {
    let store = {{Type}}::init(&json!({})).expect("init");
    let report = conformance::storage::run(&store);
    println!("{report}");
    report.assert_passed();
}

#[test]
fn refuses_a_bad_config_with_a_clear_message() {
    let err = {{Type}}::init(&json!({ "url": "x" })).err().expect("refused");
    assert!(err.message.contains("unknown config key"), "{err}");
}
