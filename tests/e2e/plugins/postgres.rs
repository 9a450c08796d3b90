//! Scale-out on PostgreSQL: two real broker processes share one database
//! (a schema made for the test). A credential put through one is served by
//! the other, deletes follow, concurrent writers never lose a write, both
//! restart without loss, and the table never holds a secret in clear.

use std::time::{Duration, Instant};

use tonic::Code;
use twilio_broker_api::v1 as pb;

use super::libs::cargo_plugin;
use super::services::PgSchema;
use crate::harness::{Broker, Fixtures, Options, contains, random_master_key};

/// How long a replica may take to serve another's write in this test
/// (LISTEN/NOTIFY usually takes milliseconds).
const PROPAGATION_LIMIT: Duration = Duration::from_secs(5);

fn replica_options(dir: &std::path::Path, schema: &PgSchema, key: &str) -> Options {
    let path = dir.join("broker.toml");
    let config = format!(
        "[[plugins]]\nkind = \"storage\"\npath = {:?}\nconfig = {}\n",
        cargo_plugin("twilio_broker_storage_postgres")
            .display()
            .to_string(),
        schema.plugin_config()
    );
    std::fs::write(&path, config).unwrap();
    Options {
        master_key: Some(key.to_owned()),
        args: vec!["--config".into(), path.display().to_string()],
        ..Options::default()
    }
}

async fn get(broker: &Broker, name: &str) -> Result<pb::CredentialMetadata, tonic::Status> {
    broker
        .admin()
        .await
        .get_credential(pb::GetCredentialRequest { name: name.into() })
        .await
        .map(|r| r.into_inner().credential.unwrap())
}

/// Polls `broker` until `done` holds for `name`; returns how long it took.
async fn wait_until(
    broker: &Broker,
    name: &str,
    done: impl Fn(&Result<pb::CredentialMetadata, tonic::Status>) -> bool,
) -> Duration {
    let started = Instant::now();
    loop {
        if done(&get(broker, name).await) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < PROPAGATION_LIMIT,
            "{name}: not seen within {PROPAGATION_LIMIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn names(broker: &Broker) -> Vec<String> {
    let listed = broker
        .admin()
        .await
        .list_credentials(pb::ListCredentialsRequest::default())
        .await
        .unwrap()
        .into_inner();
    listed.credentials.into_iter().map(|c| c.name).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_brokers_on_one_postgres_serve_each_others_credentials() {
    let Some(schema) = PgSchema::new().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let key = random_master_key();
    let options = replica_options(dir.path(), &schema, &key);
    let mut a = Broker::start(options.clone());
    let mut b = Broker::start(options.clone());
    let f = Fixtures::new();

    a.admin()
        .await
        .put_credential(f.oauth_client("shared"))
        .await
        .unwrap();
    let seen = wait_until(&b, "shared", Result::is_ok).await;
    eprintln!("a put through replica A was seen on replica B after {seen:?}");
    let mut times = Vec::new();
    for round in 0..10 {
        let name = format!("timed-{round}");
        let mut admin_a = a.admin().await;
        let mut admin_b = b.admin().await;
        admin_a.put_credential(f.test(&name)).await.unwrap();
        let started = Instant::now();
        while admin_b
            .get_credential(pb::GetCredentialRequest { name: name.clone() })
            .await
            .is_err()
        {
            assert!(started.elapsed() < PROPAGATION_LIMIT, "{name} not seen");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        times.push(started.elapsed());
        admin_a
            .delete_credential(pb::DeleteCredentialRequest { name })
            .await
            .unwrap();
    }
    times.sort();
    eprintln!(
        "replica B served A's writes after (of 10, polling every 1 ms): median {:?}, max {:?}",
        times[5], times[9]
    );

    b.admin()
        .await
        .delete_credential(pb::DeleteCredentialRequest {
            name: "shared".into(),
        })
        .await
        .unwrap();
    let gone = wait_until(
        &a,
        "shared",
        |r| matches!(r, Err(status) if status.code() == Code::NotFound),
    )
    .await;
    eprintln!("a delete through replica B reached replica A after {gone:?}");

    // Writers on both replicas at once: compare-and-swap makes each put
    // land whole, and both replicas end up serving the same last write.
    let mut writes = Vec::new();
    for round in 0..8 {
        for (replica, broker) in [("a", &a), ("b", &b)] {
            let mut request = f.api_key("contended", pb::KeyType::Standard);
            request
                .labels
                .insert("writer".into(), format!("{replica}-{round}"));
            let mut admin = broker.admin().await;
            writes.push(tokio::spawn(
                async move { admin.put_credential(request).await },
            ));
        }
    }
    for write in writes {
        write.await.unwrap().unwrap();
    }
    let started = Instant::now();
    loop {
        let (on_a, on_b) = (
            get(&a, "contended").await.unwrap(),
            get(&b, "contended").await.unwrap(),
        );
        if on_a.labels == on_b.labels {
            break;
        }
        assert!(
            started.elapsed() < PROPAGATION_LIMIT,
            "replicas disagree: {on_a:?} / {on_b:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    for name in ["one", "two", "three"] {
        a.admin()
            .await
            .put_credential(f.auth_token(name))
            .await
            .unwrap();
    }
    wait_until(&b, "three", Result::is_ok).await;

    // The table holds only sealed bytes.
    let values = schema.values().await;
    assert!(values.len() >= 5, "{} records", values.len());
    for (key, value) in &values {
        for secret in f.secrets().into_iter().chain([f.account_sid.as_str()]) {
            assert!(
                !contains(value, secret),
                "{key} holds a secret or SID in clear"
            );
        }
    }

    // Both restart (one killed hard) without losing anything.
    a.kill9();
    b.terminate();
    let a = Broker::start(options.clone());
    let b = Broker::start(options);
    let expected = ["contended", "one", "three", "two"];
    assert_eq!(names(&a).await, expected);
    assert_eq!(names(&b).await, expected);

    // A replica started with another master key is refused.
    let mut wrong = replica_options(dir.path(), &schema, &random_master_key());
    wrong.master_key = Some(random_master_key());
    let Err(failure) = Broker::try_start(wrong) else {
        panic!("a replica with another master key started");
    };
    assert!(
        failure.log.contains("master key does not match"),
        "{}",
        failure.log
    );
    drop((a, b));
}

/// Issue 14, item 1: a row copied back into PostgreSQL (an older record of
/// a rotated credential) is refused by the running replica and after a
/// restart; copying the manifest row back too (the whole table restored) is
/// refused at start-up as a rollback.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copied_back_postgres_row_is_refused() {
    let Some(schema) = PgSchema::new().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let key = random_master_key();
    let options = replica_options(dir.path(), &schema, &key);
    let state_file = dir.path().join("replica.state");
    let mut options = Options {
        args: [
            options.args.clone(),
            vec!["--state-file".into(), state_file.display().to_string()],
        ]
        .concat(),
        ..options
    };
    let mut broker = Broker::start(options.clone());
    options.data_dir = Some(broker.data_dir.clone());
    options.keep = broker.same_data().keep;
    let f = Fixtures::new();
    let mut old = f.auth_token("main");
    old.labels.insert("version".into(), "old".into());
    broker.admin().await.put_credential(old).await.unwrap();
    let before = schema.values().await;
    let mut rotated = f.auth_token("main");
    rotated.labels.insert("version".into(), "rotated".into());
    broker.admin().await.put_credential(rotated).await.unwrap();
    let (record_key, old_record) = before
        .iter()
        .find(|(k, _)| k.starts_with("c/"))
        .cloned()
        .unwrap();
    assert!(!record_key.contains("main"), "{record_key}");
    schema.overwrite(&record_key, &old_record).await;
    let refused = |r: &Result<pb::CredentialMetadata, tonic::Status>| {
        matches!(r, Err(s) if s.code() == Code::FailedPrecondition
            && s.message().contains("replay refused"))
    };
    wait_until(&broker, "main", refused).await;
    broker.terminate();
    let broker = Broker::start(options.clone());
    assert!(refused(&get(&broker, "main").await));
    drop(broker);

    // The whole table as it was: the manifest row goes back too.
    for (k, v) in &before {
        schema.overwrite(k, v).await;
    }
    let Err(failure) = Broker::try_start(options) else {
        panic!("a rolled-back database was served");
    };
    assert!(failure.log.contains("--accept-rollback"), "{}", failure.log);
}

/// Issue 20: a replica whose LISTEN connection is killed (so it misses the
/// notifications of writes made meanwhile) catches up once its listener is
/// back, and its resynchronisation reads only the records that changed, not
/// the table (the replica's own `re-read` log lines say how many it read).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_missed_notifications_catches_up_reading_only_changes() {
    const STORED: usize = 150;
    let Some(schema) = PgSchema::new().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let key = random_master_key();
    let options = replica_options(dir.path(), &schema, &key);
    let a = Broker::start(options.clone());
    let f = Fixtures::new();
    let mut admin_a = a.admin().await;
    for i in 0..STORED {
        admin_a
            .put_credential(f.test(&format!("stored-{i:03}")))
            .await
            .unwrap();
    }
    let b = Broker::start(options);
    wait_until(&b, &format!("stored-{:03}", STORED - 1), Result::is_ok).await;
    let seen_before = b.log_text().lines().count();

    let (client, connection) =
        tokio_postgres::connect(&super::services::postgres_url(), tokio_postgres::NoTls)
            .await
            .unwrap();
    tokio::spawn(connection);
    let killed = client
        .query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query = $1",
            &[&format!("LISTEN twilio_broker_{}", schema.name)],
        )
        .await
        .unwrap()
        .len();
    assert!(killed >= 2, "{killed} listening connections found");
    for name in ["missed-1", "missed-2", "missed-3"] {
        admin_a.put_credential(f.test(name)).await.unwrap();
    }
    admin_a
        .delete_credential(pb::DeleteCredentialRequest {
            name: "stored-007".into(),
        })
        .await
        .unwrap();
    let caught_up = wait_until(&b, "missed-3", Result::is_ok).await;
    eprintln!("replica B served the missed writes {caught_up:?} after the last one");
    wait_until(
        &b,
        "stored-007",
        |r| matches!(r, Err(status) if status.code() == Code::NotFound),
    )
    .await;
    assert!(get(&b, "missed-1").await.is_ok() && get(&b, "missed-2").await.is_ok());

    let log = without_ansi(&b.log_text());
    let rereads: Vec<(usize, u64)> = log
        .lines()
        .skip(seen_before)
        .filter(|l| l.contains("re-read the store's credential records"))
        .map(|l| {
            let field = |name: &str| {
                l.split_whitespace()
                    .find_map(|w| w.strip_prefix(name))
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or_else(|| panic!("no {name} in {l}"))
            };
            (field("read=") as usize, field("since_cursor="))
        })
        .collect();
    assert!(!rereads.is_empty(), "replica B logged no re-read");
    for (read, since) in &rereads {
        assert!(*since > 0, "a re-read listed the whole table: {rereads:?}");
        assert!(
            *read <= 12,
            "a re-read read {read} of {STORED} records: {rereads:?}"
        );
    }
}

/// `text` without ANSI colour sequences (`ESC [ ... m`), which the human log
/// format puts around field names.
fn without_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
