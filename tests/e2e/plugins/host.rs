//! The plugin host driven directly: conformance through the host's guarded
//! calls, every start-up refusal, and containment of plugins that panic,
//! hang or answer garbage.
//!
//! Tests that leave plugin calls hanging build their own runtime and drop
//! it with `shutdown_background` (a runtime otherwise waits for them).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::json;
use twilio_broker::{BlockingStore, Store, StoreError};
use twilio_broker_plugin_host::{
    self as plugin_host, Loaded, PluginAuditSink, PluginError, PluginKind, PluginSpec, PluginStore,
};
use twilio_broker_plugin_sdk::conformance::{self, Outcome};

use super::libs::{
    c_garbage, c_memory, c_memory_v2, c_memory_v2_newer, c_memory_v2_older, c_memory_v2_too_small,
    c_plugin, cargo_plugin,
};

fn spec(path: PathBuf, kind: PluginKind, config: serde_json::Value) -> PluginSpec {
    let mut spec = PluginSpec::new(path, kind);
    spec.config = Some(config);
    spec
}

async fn store(spec: &PluginSpec) -> PluginStore {
    match plugin_host::load(spec).await {
        Ok(Loaded::Storage(store)) => store,
        Ok(Loaded::Audit(_)) => panic!("an audit sink"),
        Err(err) => panic!("load failed: {err}"),
    }
}

async fn sink(spec: &PluginSpec) -> PluginAuditSink {
    match plugin_host::load(spec).await {
        Ok(Loaded::Audit(sink)) => sink,
        Ok(Loaded::Storage(_)) => panic!("a store"),
        Err(err) => panic!("load failed: {err}"),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Writes the faults file the test plugins read on every call.
fn set_faults(path: &Path, faults: serde_json::Value) {
    std::fs::write(path, faults.to_string()).unwrap();
}

/// The same C plugin as an ABI version 1 library (built against the
/// version 1 header as it shipped), as a version 2 library built against the
/// first version 2 header (smaller `struct_size`), against today's header,
/// and against a newer one (larger `struct_size`): each loads and passes the
/// storage suite through the host.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_c_plugin_passes_the_storage_suite_through_the_host() {
    let builds = [
        (c_memory(), 1, "c-memory"),
        (c_memory_v2_older(), 2, "c-memory-v2"),
        (c_memory_v2(), 2, "c-memory-v2"),
        (c_memory_v2_newer(), 2, "c-memory-v2"),
    ];
    for (path, abi, name) in builds {
        let inspected = plugin_host::inspect(path.clone(), None).await.unwrap();
        assert_eq!(inspected.abi_version, abi, "{}", path.display());
        assert_eq!(
            inspected.plugin_version, None,
            "the C plugin sets no version"
        );
        let loaded = store(&spec(path, PluginKind::Storage, json!({}))).await;
        assert_eq!(loaded.name(), name);
        let store: Arc<dyn Store> = Arc::new(loaded);
        let blocking = BlockingStore::new(store, tokio::runtime::Handle::current()).await;
        let report = tokio::task::spawn_blocking(move || conformance::storage::run(&blocking))
            .await
            .unwrap();
        report.assert_passed();
        // Every case passes, but the optional change listing (the C example
        // does not implement `changes_since`: the broker re-reads it whole).
        assert!(
            report.cases.iter().all(|c| c.outcome == Outcome::Passed
                || (c.name.starts_with("changes_since")
                    && matches!(c.outcome, Outcome::Skipped(_)))),
            "change notification must work through the host too ({name}, ABI {abi}):\n{report}"
        );
    }
}

/// A Rust plugin built with the SDK speaks version 2 and names its crate's
/// version in its table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_plugins_speak_version_2_with_their_crate_version() {
    let inspected = plugin_host::inspect(cargo_plugin("twilio_broker_audit_jsonl"), None)
        .await
        .unwrap();
    assert_eq!(inspected.abi_version, 2);
    assert_eq!(inspected.plugin_version.as_deref(), Some("0.1.0"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_refusal_is_a_clear_start_up_error() {
    let dir = tempfile::tempdir().unwrap();
    let not_a_library = dir.path().join("libnot.so");
    std::fs::write(&not_a_library, "just text").unwrap();
    let jsonl = cargo_plugin("twilio_broker_audit_jsonl");
    let faulty = cargo_plugin("twilio_broker_test_faulty_storage");
    let log = dir.path().join("audit.jsonl");
    let mut pinned = spec(jsonl.clone(), PluginKind::Audit, json!({ "path": log }));
    pinned.sha256 = Some("00".repeat(32).parse().unwrap());
    let cases: Vec<(PluginSpec, &[&str])> = vec![
        (
            spec(
                c_plugin("wrong_abi", &[], "tb_c_wrong_abi"),
                PluginKind::Storage,
                json!({}),
            ),
            &[
                "speaks plugin ABI version 999",
                "this broker loads versions 1 to 2",
            ],
        ),
        (
            spec(
                c_plugin("missing_table", &[], "tb_c_missing_table"),
                PluginKind::Storage,
                json!({}),
            ),
            &["does not export `twilio_broker_plugin_v2`"],
        ),
        (
            spec(c_memory_v2_too_small(), PluginKind::Storage, json!({})),
            &[
                "malformed plugin table",
                "TbPluginV2.struct_size is 8, smaller than the",
            ],
        ),
        (pinned, &["has sha256", "but the config pins 0000"]),
        (
            spec(jsonl.clone(), PluginKind::Storage, json!({ "path": log })),
            &["(jsonl) is of kind \"audit\"", "kind = \"storage\""],
        ),
        (
            spec(
                faulty.clone(),
                PluginKind::Storage,
                json!({ "init": "fail" }),
            ),
            &["did not start", "invalid input: init refused on purpose"],
        ),
        (
            spec(
                faulty.clone(),
                PluginKind::Storage,
                json!({ "init": "panic" }),
            ),
            &["did not start", "panicked: init panicked on purpose"],
        ),
        (
            spec(
                jsonl,
                PluginKind::Audit,
                json!({ "path": log, "sink": true }),
            ),
            &["unknown config key \"sink\""],
        ),
        (
            spec(dir.path().join("missing.so"), PluginKind::Audit, json!({})),
            &["cannot read plugin"],
        ),
        (
            spec(not_a_library, PluginKind::Audit, json!({})),
            &["cannot load plugin"],
        ),
    ];
    for (spec, expected) in cases {
        let err = match plugin_host::load(&spec).await {
            Ok(_) => panic!("{} was accepted", spec.path.display()),
            Err(err) => err.to_string(),
        };
        for needle in expected {
            assert!(err.contains(needle), "{err:?} should contain {needle:?}");
        }
    }
}

#[test]
fn a_failing_storage_plugin_is_contained_and_keeps_serving() {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let faults = dir.path().join("faults.json");
    let mut spec = spec(
        cargo_plugin("twilio_broker_test_faulty_storage"),
        PluginKind::Storage,
        json!({ "faults_file": faults }),
    );
    // Generous: a caught panic prints a backtrace, which can be slow under
    // load; only the hang case waits this long.
    spec.timeout_ms = Some(2000);
    let store = rt.block_on(store(&spec));
    let cases = [
        (
            "panic",
            "plugin \"faulty-storage\" failed in put: panicked: put panicked on purpose",
        ),
        ("error", "failed in put: error: put failed on purpose"),
        (
            "unavailable",
            "failed in put: unavailable: put: backend down on purpose",
        ),
        ("hang", "did not answer put within 2s"),
    ];
    rt.block_on(async {
        store.put("k", b"v".to_vec()).await.unwrap();
        for (fault, expected) in cases {
            set_faults(&faults, json!({ "put": fault }));
            match store.put("k", b"w".to_vec()).await {
                Err(StoreError::Unavailable(message)) => {
                    assert!(message.contains(expected), "{fault}: {message}")
                }
                other => panic!("{fault}: {other:?}"),
            }
            let still = store.get("k").await.unwrap().unwrap();
            assert_eq!(still.value, b"v", "{fault}: the store keeps serving");
        }
    });
    rt.shutdown_background();
}

#[test]
fn a_plugin_that_never_returns_cannot_take_every_thread() {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let faults = dir.path().join("faults.json");
    set_faults(&faults, json!({ "get": "hang" }));
    let mut spec = spec(
        cargo_plugin("twilio_broker_test_faulty_storage"),
        PluginKind::Storage,
        json!({ "faults_file": faults }),
    );
    spec.timeout_ms = Some(20);
    let store = rt.block_on(store(&spec));
    rt.block_on(async {
        for _ in 0..plugin_host::MAX_IN_FLIGHT {
            assert!(matches!(store.get("k").await, Err(StoreError::Unavailable(m)) if m.contains("did not answer")));
        }
        match store.put("k", b"v".to_vec()).await {
            Err(StoreError::Unavailable(message)) => assert!(
                message.contains("has 64 calls that have not returned"),
                "{message}"
            ),
            other => panic!("{other:?}"),
        }
    });
    rt.shutdown_background();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_is_refused_call_by_call_and_the_plugin_keeps_serving() {
    let store = store(&spec(c_garbage(), PluginKind::Storage, json!({}))).await;
    let unavailable = |result: Result<(), StoreError>| match result {
        Err(StoreError::Unavailable(message)) => message,
        other => panic!("{other:?}"),
    };
    let key = "credential/garbage-1";
    let cases = [
        (
            unavailable(store.get(key).await.map(drop)),
            "returned garbage from get: a null buffer of length 16",
        ),
        (
            unavailable(store.put(key, vec![1]).await.map(drop)),
            "returned garbage from put: status 42 is not a valid answer",
        ),
        (
            unavailable(store.delete(key).await.map(drop)),
            "returned garbage from delete: status 2 is not a valid answer",
        ),
        (
            unavailable(store.list("garbage/").await.map(drop)),
            "returned garbage from list: entry 0: truncated key",
        ),
        (
            unavailable(store.compare_and_swap(key, 0, vec![1]).await.map(drop)),
            "returned garbage from compare_and_swap: a swap from version 0 to version 0",
        ),
    ];
    for (message, expected) in cases {
        assert!(
            message.contains(expected),
            "{message:?} should contain {expected:?}"
        );
    }
    let version = store.put("credential/fine", vec![7]).await.unwrap();
    let fine = store.get("credential/fine").await.unwrap().unwrap();
    assert_eq!((fine.value, fine.version), (vec![7], version));
}

#[test]
fn audit_sinks_record_through_the_host_and_failures_are_contained() {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.jsonl");
    let jsonl = rt.block_on(sink(&spec(
        cargo_plugin("twilio_broker_audit_jsonl"),
        PluginKind::Audit,
        json!({ "path": log }),
    )));
    assert!(
        jsonl.required(),
        "sinks are required unless configured otherwise"
    );
    rt.block_on(async {
        jsonl
            .record_json(br#"{"type":"test","n":1}"#)
            .await
            .unwrap();
        jsonl
            .record_json(b"{\n\"type\": \"test\", \"n\": 2}")
            .await
            .unwrap();
        let invalid = jsonl.record_json(b"not json").await.unwrap_err();
        assert!(
            invalid
                .to_string()
                .contains("invalid input: the event is not valid JSON"),
            "{invalid}"
        );
        jsonl.flush().await.unwrap();
        jsonl.close().await.unwrap();
        assert!(matches!(
            jsonl.record_json(b"{}").await,
            Err(PluginError::Closed { .. })
        ));
    });
    let lines = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        lines,
        "{\"type\":\"test\",\"n\":1}\n{ \"type\": \"test\", \"n\": 2}\n"
    );

    let faults = dir.path().join("faults.json");
    let mut faulty_spec = spec(
        cargo_plugin("twilio_broker_test_faulty_audit"),
        PluginKind::Audit,
        json!({ "faults_file": faults }),
    );
    faulty_spec.timeout_ms = Some(2000);
    let faulty = rt.block_on(sink(&faulty_spec));
    rt.block_on(async {
        set_faults(&faults, json!({ "record": "panic" }));
        let panicked = faulty.record_json(b"{}").await.unwrap_err().to_string();
        assert!(
            panicked.contains("failed in record: panicked: record panicked on purpose"),
            "{panicked}"
        );
        set_faults(&faults, json!({ "record": "hang" }));
        let hung = faulty.record_json(b"{}").await.unwrap_err();
        assert!(
            matches!(hung, PluginError::TimedOut { op: "record", .. }),
            "{hung}"
        );
        set_faults(&faults, json!({}));
        faulty.record_json(b"{}").await.unwrap();
        let close = faulty.close().await.unwrap_err().to_string();
        assert!(
            close.contains("earlier calls never returned, so close was skipped"),
            "{close}"
        );
    });
    rt.shutdown_background();
}
