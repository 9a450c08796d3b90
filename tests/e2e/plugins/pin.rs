//! Issue 14, item 6: the plugin pin cannot race. The host copies the
//! library into a sealed memfd, hashes the copy and loads the copy; this
//! test rewrites the library file in place at the moment between hashing
//! and loading (through `load_with`'s hook) and shows that the hashed
//! library is what runs, and that the copy being loaded cannot be written.

use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::json;
use sha2::Digest as _;
use twilio_broker_plugin_host::{self as plugin_host, Loaded, PluginKind, PluginSpec, Sha256Pin};

use super::libs::cargo_plugin;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rewriting_the_library_between_hashing_and_loading_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let library = dir.path().join("plugin.so");
    std::fs::copy(cargo_plugin("twilio_broker_audit_jsonl"), &library).unwrap();
    let replacement = std::fs::read(cargo_plugin("twilio_broker_test_faulty_storage")).unwrap();
    let pin = Sha256Pin(sha2::Sha256::digest(std::fs::read(&library).unwrap()).into());
    let mut spec = PluginSpec::new(library.clone(), PluginKind::Audit);
    spec.sha256 = Some(pin.clone());
    spec.config = Some(json!({ "path": dir.path().join("events.jsonl") }));

    let rewritten = Arc::new(AtomicBool::new(false));
    let (target, done) = (library.clone(), Arc::clone(&rewritten));
    let hook: plugin_host::BeforeLoad = Box::new(move |load_path| {
        // In place: same inode, other bytes (the other plugin).
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&target)
            .unwrap();
        file.write_all(&replacement).unwrap();
        file.sync_all().unwrap();
        // What is about to be loaded cannot be written at all.
        let write = std::fs::OpenOptions::new()
            .write(true)
            .open(load_path)
            .and_then(|mut f| f.write_all(b"\x7fELF overwritten"));
        assert!(write.is_err(), "{} was writable", load_path.display());
        done.store(true, Ordering::SeqCst);
    });
    let loaded = plugin_host::load_with(&spec, Some(hook)).await;
    assert!(rewritten.load(Ordering::SeqCst), "the hook ran");
    assert_ne!(
        sha2::Sha256::digest(std::fs::read(&library).unwrap()).as_slice(),
        pin.0.as_slice(),
        "the file on disk was rewritten"
    );
    match loaded {
        Ok(Loaded::Audit(sink)) => assert_eq!(sink.name(), "jsonl"),
        Ok(Loaded::Storage(_)) => panic!("the rewritten library was loaded"),
        Err(err) => panic!("load failed: {err}"),
    }
}
