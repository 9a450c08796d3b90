//! The SDK's storage conformance suite against a real PostgreSQL, plus two
//! instances sharing one schema (as two broker replicas would).
//!
//! PostgreSQL comes from TWILIO_BROKER_TEST_POSTGRES (default
//! `host=127.0.0.1 user=postgres dbname=test`). Without a server the tests
//! skip loudly; under CI=true they fail instead. Each test works in its own
//! schema and drops it afterwards.

use std::time::{Duration, Instant};

use twilio_broker_plugin_sdk::serde_json::json;
use twilio_broker_plugin_sdk::{Cas, Storage as _, StoragePlugin as _, conformance};
use twilio_broker_storage_postgres::PgStorage;

fn url() -> String {
    std::env::var("TWILIO_BROKER_TEST_POSTGRES")
        .unwrap_or_else(|_| "host=127.0.0.1 port=5432 user=postgres dbname=test".into())
}

/// A schema that exists for one test and is dropped afterwards.
struct Schema {
    name: String,
}

impl Schema {
    fn new() -> Option<Schema> {
        let mut client = match postgres::Client::connect(&url(), postgres::NoTls) {
            Ok(client) => client,
            Err(err) => {
                let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
                assert!(!ci, "PostgreSQL is not reachable ({err}); CI must start it");
                eprintln!("\n!!!!!!!! SKIPPED: PostgreSQL is not reachable ({err}) !!!!!!!!\n");
                return None;
            }
        };
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let name = format!("tb_test_{}_{nanos}", std::process::id());
        client
            .batch_execute(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"))
            .expect("clean schema");
        Some(Schema { name })
    }

    fn storage(&self) -> PgStorage {
        PgStorage::init(&json!({ "url": url(), "schema": self.name })).expect("init")
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        if let Ok(mut client) = postgres::Client::connect(&url(), postgres::NoTls) {
            let _ = client.batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name));
        }
    }
}

#[test]
fn passes_the_storage_conformance_suite() {
    let Some(schema) = Schema::new() else { return };
    let store = schema.storage();
    conformance::storage::run(&store).assert_passed();
    store.close().expect("close");
}

#[test]
fn two_instances_on_one_schema_see_each_other_at_once() {
    let Some(schema) = Schema::new() else { return };
    let (a, b) = (schema.storage(), schema.storage());
    let before = b
        .wait_for_change(u64::MAX, Duration::ZERO)
        .expect("probe")
        .expect("supported");
    let idle = b
        .wait_for_change(before, Duration::from_millis(300))
        .expect("wait");
    assert_eq!(
        idle,
        Some(before),
        "a change was reported with nothing written"
    );
    let written = a.put("credential/x", b"sealed").expect("put");
    let committed = Instant::now();
    let after = b
        .wait_for_change(before, Duration::from_secs(5))
        .expect("wait")
        .expect("supported");
    assert_ne!(after, before, "no change seen within 5 s");
    eprintln!(
        "write seen by the other instance {:?} after it committed",
        committed.elapsed()
    );
    let seen = b.get("credential/x").expect("get").expect("present");
    assert_eq!(
        (seen.value.as_slice(), seen.version),
        (&b"sealed"[..], written)
    );
    assert_eq!(
        b.compare_and_swap("credential/x", written, b"by b")
            .expect("cas"),
        Cas::Swapped {
            version: b
                .get("credential/x")
                .expect("get")
                .expect("present")
                .version
        }
    );
    assert!(matches!(
        a.compare_and_swap("credential/x", written, b"stale")
            .expect("cas"),
        Cas::Conflict { .. }
    ));
    drop(a);
    let reopened = schema.storage();
    assert_eq!(
        reopened
            .get("credential/x")
            .expect("get")
            .expect("kept")
            .value,
        b"by b"
    );
}

/// A replica whose LISTEN connection was killed (so it missed the
/// notifications of writes made meanwhile) notices once its listener is
/// back, and its resynchronisation reads only the rows that changed, not
/// the table (issue 20).
#[test]
fn a_replica_that_missed_notifications_reads_only_what_changed() {
    const STORED: usize = 300;
    let Some(schema) = Schema::new() else { return };
    let (a, b) = (schema.storage(), schema.storage());
    for i in 0..STORED {
        a.put(&format!("c/{i:04}"), b"sealed").expect("put");
    }
    let first = b.changes_since("c/", 0).expect("read").expect("supported");
    assert_eq!(first.entries.len(), STORED, "cursor 0 reads everything");
    let generation = b
        .wait_for_change(u64::MAX, Duration::ZERO)
        .expect("probe")
        .expect("supported");

    let mut admin = postgres::Client::connect(&url(), postgres::NoTls).expect("connect");
    let killed = admin
        .query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query = $1",
            &[&format!("LISTEN twilio_broker_{}", schema.name)],
        )
        .expect("terminate the listeners")
        .len();
    assert!(
        killed >= 2,
        "{killed} listening connections found, not both"
    );
    let written = a.put("c/new", b"new").expect("put");
    let changed = a.put("c/0007", b"changed").expect("put");
    assert!(a.delete("c/0100").expect("delete"));

    let started = Instant::now();
    let after = b
        .wait_for_change(generation, Duration::from_secs(10))
        .expect("wait")
        .expect("supported");
    assert_ne!(after, generation, "the missed writes were never signalled");
    eprintln!("missed writes signalled after {:?}", started.elapsed());

    let next = b
        .changes_since("c/", first.cursor)
        .expect("read")
        .expect("supported");
    let found = |key: &str| next.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v);
    assert_eq!(
        found("c/new")
            .and_then(|v| v.as_ref())
            .map(|v| (v.value.as_slice(), v.version)),
        Some((&b"new"[..], written))
    );
    assert_eq!(
        found("c/0007")
            .and_then(|v| v.as_ref())
            .map(|v| (v.value.as_slice(), v.version)),
        Some((&b"changed"[..], changed))
    );
    assert_eq!(found("c/0100"), Some(&None), "the removal is reported");
    assert!(
        next.entries.len() <= 10,
        "the resynchronisation read {} rows of {STORED} (a transaction left open elsewhere on \
         this server holds the cursor back)",
        next.entries.len()
    );
    let idle = b
        .changes_since("c/", next.cursor)
        .expect("read")
        .expect("supported");
    assert!(
        idle.entries.len() <= 3,
        "nothing changed, yet {} rows were read",
        idle.entries.len()
    );
    // A truncation leaves no tombstone: the next read says "read everything".
    admin
        .batch_execute(&format!("TRUNCATE {}.records", schema.name))
        .expect("truncate");
    assert!(
        b.changes_since("c/", idle.cursor).expect("read").is_none(),
        "a truncation went unnoticed"
    );
}
