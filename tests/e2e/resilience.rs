//! Trying to lose or corrupt data: acknowledged writes across 100 `kill -9`
//! cycles, and sealed records moved, truncated or bit-flipped on disk.

use std::sync::Arc;

use tonic::Code;
use twilio_broker::{SledStore, Store};
use twilio_broker_api::v1 as pb;

use crate::harness::{Broker, Fixtures, Options, error_metadata, reason};

/// Crash cycles; each acknowledges writes then dies at once.
const CYCLES: usize = 100;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_write_survives_100_kill_9_cycles() {
    let f = Fixtures::new();
    let mut broker = Broker::start(Options::default());
    let mut acknowledged: Vec<String> = Vec::new();
    for cycle in 0..CYCLES {
        let mut admin = broker.admin().await;
        // Two writes per cycle: a new credential, and a replacement of an old one.
        let name = format!("c{cycle:03}");
        admin.put_credential(f.oauth_client(&name)).await.unwrap();
        acknowledged.push(name);
        if cycle > 0 {
            let mut replaced = f.api_key(&acknowledged[cycle / 2], pb::KeyType::Standard);
            replaced.labels.insert("cycle".into(), cycle.to_string());
            admin.put_credential(replaced).await.unwrap();
        }
        drop(admin);
        let options = broker.same_data();
        broker.kill9();
        broker = Broker::start(options);
    }
    let list = broker
        .admin()
        .await
        .list_credentials(pb::ListCredentialsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .credentials;
    let names: Vec<_> = list.iter().map(|c| c.name.clone()).collect();
    assert_eq!(names, acknowledged, "an acknowledged write was lost");
    // Every record opens (none reported unreadable) and the last replacement won.
    let log = broker.log_text();
    assert!(
        log.contains(&format!("credentials={CYCLES}")) && log.contains("unreadable=0"),
        "{log}"
    );
    let last = list
        .iter()
        .find(|c| c.name == acknowledged[(CYCLES - 1) / 2])
        .unwrap();
    assert_eq!(
        last.labels.get("cycle").map(String::as_str),
        Some(&*(CYCLES - 1).to_string())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moved_truncated_and_flipped_records_are_refused_never_served() {
    let f = Fixtures::new();
    let mut broker = Broker::start(Options::default());
    {
        let mut admin = broker.admin().await;
        for name in ["good", "victim-truncated", "victim-flipped", "source"] {
            admin.put_credential(f.oauth_client(name)).await.unwrap();
        }
    }
    let options = broker.same_data();
    broker.terminate();
    {
        let store = SledStore::open(options.data_dir.as_ref().unwrap()).unwrap();
        // Store keys are keyed hashes of the names (issue 14).
        let master =
            twilio_broker::MasterKey::from_base64(options.master_key.as_deref().unwrap(), "test")
                .unwrap();
        let key = |name: &str| twilio_broker::credential_key(&master, name);
        let sealed = store.get(&key("source")).await.unwrap().unwrap().value;
        store.put(&key("moved"), sealed).await.unwrap();
        let truncated = store
            .get(&key("victim-truncated"))
            .await
            .unwrap()
            .unwrap()
            .value;
        store
            .put(
                &key("victim-truncated"),
                truncated[..truncated.len() - 7].to_vec(),
            )
            .await
            .unwrap();
        let mut flipped = store
            .get(&key("victim-flipped"))
            .await
            .unwrap()
            .unwrap()
            .value;
        let middle = flipped.len() / 2;
        flipped[middle] ^= 0x10;
        store.put(&key("victim-flipped"), flipped).await.unwrap();
        let _: Arc<dyn Store> = Arc::new(store);
    }
    let broker = Broker::start(options);
    let mut admin = broker.admin().await;
    for name in ["moved", "victim-truncated", "victim-flipped"] {
        let refused = admin
            .get_credential(pb::GetCredentialRequest { name: name.into() })
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::FailedPrecondition, "{name}");
        assert_eq!(
            reason(&refused).as_deref(),
            Some("CREDENTIAL_UNREADABLE"),
            "{name}: {refused:?}"
        );
        assert_eq!(
            error_metadata(&refused, "credential").as_deref(),
            Some(name)
        );
        let served = broker
            .broker()
            .await
            .get_bearer(pb::GetBearerRequest {
                credential: name.into(),
                min_ttl_seconds: 0,
            })
            .await
            .unwrap_err();
        assert_eq!(served.code(), Code::FailedPrecondition, "{name} was served");
    }
    let names: Vec<_> = admin
        .list_credentials(pb::ListCredentialsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .credentials
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(names, ["good", "source"]);
    assert!(broker.log_text().contains("refusing to serve it"));
    // Putting the credential again replaces the damaged record.
    admin
        .put_credential(f.oauth_client("victim-flipped"))
        .await
        .unwrap();
    assert!(
        admin
            .get_credential(pb::GetCredentialRequest {
                name: "victim-flipped".into()
            })
            .await
            .is_ok()
    );
}
