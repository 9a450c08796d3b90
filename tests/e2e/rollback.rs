//! Issue 14, items 1, 5 and 10: a restored (older) data directory is refused
//! at start-up unless `--accept-rollback`; names never appear in the data
//! directory after `compact`; a data directory written by the release before
//! issue 14 (`tests/fixtures/store-v1`) opens, migrates and keeps working.

use std::path::Path;

use twilio_broker_api::v1 as pb;

use crate::harness::{Broker, Fixtures, Options, contains, read_tree, reason, run_cli};

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn labelled(mut request: pb::PutCredentialRequest, version: &str) -> pb::PutCredentialRequest {
    request.labels.insert("version".into(), version.into());
    request
}

async fn label_of(broker: &Broker, name: &str) -> Result<String, tonic::Status> {
    let credential = broker
        .admin()
        .await
        .get_credential(pb::GetCredentialRequest { name: name.into() })
        .await?
        .into_inner();
    Ok(credential
        .credential
        .and_then(|c| c.labels.get("version").cloned())
        .unwrap_or_default())
}

async fn names(broker: &Broker) -> Vec<String> {
    broker
        .admin()
        .await
        .list_credentials(pb::ListCredentialsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .credentials
        .into_iter()
        .map(|c| c.name)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restored_data_directory_is_refused_unless_accepted() {
    let f = Fixtures::new();
    let mut broker = Broker::start(Options::default());
    let mut admin = broker.admin().await;
    admin
        .put_credential(labelled(f.auth_token("main"), "old"))
        .await
        .unwrap();
    admin.put_credential(f.test("deleted-later")).await.unwrap();
    let options = broker.same_data();
    broker.terminate();
    let data_dir = options.data_dir.clone().unwrap();
    let backup = tempfile::tempdir().unwrap();
    copy_dir(&data_dir, backup.path());

    let mut broker = Broker::start(options.clone());
    let mut admin = broker.admin().await;
    admin
        .put_credential(labelled(f.auth_token("main"), "rotated"))
        .await
        .unwrap();
    admin
        .delete_credential(pb::DeleteCredentialRequest {
            name: "deleted-later".into(),
        })
        .await
        .unwrap();
    broker.terminate();

    // The attacker (or a careless restore) puts the old directory back.
    std::fs::remove_dir_all(&data_dir).unwrap();
    copy_dir(backup.path(), &data_dir);
    let Err(failure) = Broker::try_start(options.clone()) else {
        panic!("a rolled-back data directory was served");
    };
    assert!(matches!(failure.status, Some(s) if !s.success()));
    assert!(
        failure.log.contains("rolled back") && failure.log.contains("--accept-rollback"),
        "{}",
        failure.log
    );

    // Accepted deliberately: the old state is served, and the mark follows.
    let mut accepted = options.clone();
    accepted.args.push("--accept-rollback".into());
    let mut broker = Broker::start(accepted);
    assert_eq!(label_of(&broker, "main").await.unwrap(), "old");
    assert!(broker.log_text().contains("ACCEPTED ROLLBACK"));
    broker.terminate();
    let broker = Broker::start(options);
    assert_eq!(
        names(&broker).await,
        ["deleted-later".to_owned(), "main".to_owned()]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_replayed_record_is_never_served() {
    let f = Fixtures::new();
    let mut broker = Broker::start(Options::default());
    let mut admin = broker.admin().await;
    admin
        .put_credential(labelled(f.auth_token("main"), "old"))
        .await
        .unwrap();
    admin.put_credential(f.test("gone")).await.unwrap();
    let options = broker.same_data();
    broker.terminate();
    let data_dir = options.data_dir.clone().unwrap();
    let old_records: Vec<(sled::IVec, sled::IVec)> = {
        let db = sled::open(&data_dir).unwrap();
        let tree = db.open_tree("versioned-records").unwrap();
        tree.scan_prefix("c/").map(Result::unwrap).collect()
    };
    assert_eq!(old_records.len(), 2);
    for (key, _) in &old_records {
        let key = String::from_utf8_lossy(key);
        assert!(!key.contains("main") && !key.contains("gone"), "{key}");
    }

    let mut broker = Broker::start(options.clone());
    let mut admin = broker.admin().await;
    admin
        .put_credential(labelled(f.auth_token("main"), "rotated"))
        .await
        .unwrap();
    admin
        .delete_credential(pb::DeleteCredentialRequest {
            name: "gone".into(),
        })
        .await
        .unwrap();
    admin.put_credential(f.test("other")).await.unwrap();
    broker.terminate();

    // Only the two records go back; the manifest and the state file stay.
    {
        let db = sled::open(&data_dir).unwrap();
        let tree = db.open_tree("versioned-records").unwrap();
        for (key, value) in &old_records {
            tree.insert(key, value).unwrap();
        }
        db.flush().unwrap();
    }
    let broker = Broker::start(options);
    for name in ["main", "gone"] {
        let refused = label_of(&broker, name).await.unwrap_err();
        assert_eq!(refused.code(), tonic::Code::FailedPrecondition, "{name}");
        assert_eq!(
            reason(&refused).as_deref(),
            Some("CREDENTIAL_UNREADABLE"),
            "{refused:?}"
        );
        // The operator reads why: the record is a replay.
        assert!(refused.message().contains("replay refused"), "{refused:?}");
    }
    assert_eq!(names(&broker).await, ["other".to_owned()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_previous_release_s_data_directory_migrates_and_compact_drops_names() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/store-v1");
    let key = std::fs::read_to_string(fixture.join("master-key.TEST-ONLY")).unwrap();
    let temp = tempfile::tempdir().unwrap();
    let data_dir = temp.path().join("data");
    copy_dir(&fixture.join("data"), &data_dir);
    let before = read_tree(&data_dir);
    assert!(
        before.iter().any(|(_, bytes)| contains(bytes, "main-auth")),
        "the fixture holds names in clear"
    );
    let options = Options {
        data_dir: Some(data_dir.clone()),
        master_key: Some(key.trim().to_owned()),
        ..Options::default()
    };
    let mut broker = Broker::start(options.clone());
    assert_eq!(
        names(&broker).await,
        ["api-std".to_owned(), "main-auth".to_owned()]
    );
    assert!(broker.log_text().contains("migrated credential records"));
    let gone = label_of(&broker, "gone-later").await.unwrap_err();
    assert_eq!(gone.code(), tonic::Code::NotFound);
    // A webhook signature made with the fixture's Auth Token still validates:
    // the secret came through the migration.
    let out = broker.cli(
        &[
            "webhook",
            "verify",
            "--json",
            "main-auth",
            "--url",
            "https://example.com/hook",
            "--signature",
            &signature(
                "fixture-auth-token-old-0123456789ab",
                "https://example.com/hook",
            ),
        ],
        "",
    );
    assert!(
        serde_json::from_slice::<serde_json::Value>(&out.stdout)
            .map(|v| v["valid"] == serde_json::Value::Bool(true))
            .unwrap_or(false),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let f = Fixtures::new();
    broker
        .admin()
        .await
        .put_credential(f.test("new-after-migration"))
        .await
        .unwrap();
    broker.terminate();

    let out = run_cli(
        &["compact", "--data-dir", data_dir.to_str().unwrap()],
        "",
        &[("TWILIO_BROKER_MASTER_KEY", key.trim())],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for name in ["main-auth", "api-std", "gone-later", "new-after-migration"] {
        for (path, bytes) in read_tree(&data_dir) {
            assert!(!contains(&bytes, name), "{name} in {}", path.display());
        }
    }
    let broker = Broker::start(options);
    assert_eq!(
        names(&broker).await,
        [
            "api-std".to_owned(),
            "main-auth".to_owned(),
            "new-after-migration".to_owned()
        ]
    );
}

/// Twilio's signature of a POST without parameters: base64(HMAC-SHA1(token, url)).
fn signature(token: &str, url: &str) -> String {
    use base64::Engine as _;
    use hmac::Mac as _;
    let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(token.as_bytes()).unwrap();
    mac.update(url.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Issue 14, item 5: a credential's name never reaches the data directory
/// (store keys are keyed hashes), so nothing of it survives its deletion
/// either, without `compact`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credential_names_never_reach_the_data_directory() {
    let f = Fixtures::new();
    let mut broker = Broker::start(Options::default());
    let kept = crate::harness::random_secret("kept-name-");
    let deleted = crate::harness::random_secret("deleted-name-");
    let mut admin = broker.admin().await;
    admin.put_credential(f.test(&kept)).await.unwrap();
    admin.put_credential(f.test(&deleted)).await.unwrap();
    admin
        .delete_credential(pb::DeleteCredentialRequest {
            name: deleted.clone(),
        })
        .await
        .unwrap();
    let options = broker.same_data();
    broker.terminate();
    let data_dir = options.data_dir.clone().unwrap();
    let files = read_tree(&data_dir);
    assert!(!files.is_empty());
    for name in [&kept, &deleted] {
        for (path, bytes) in &files {
            assert!(!contains(bytes, name), "{name} in {}", path.display());
        }
    }
    let broker = Broker::start(options);
    assert_eq!(names(&broker).await, [kept]);
}

/// Issue 14, item 10: a data directory in the formats of the release before
/// this one (`tests/fixtures/store-v2`: TBS2 records, one sealed manifest)
/// opens with today's broker: its credentials are served with their
/// secrets, the deleted one stays deleted, and a write and a restart work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_release_s_data_directory_opens_and_keeps_working() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/store-v2");
    let key = std::fs::read_to_string(fixture.join("master-key.TEST-ONLY")).unwrap();
    let temp = tempfile::tempdir().unwrap();
    let data_dir = temp.path().join("data");
    copy_dir(&fixture.join("data"), &data_dir);
    let options = Options {
        data_dir: Some(data_dir.clone()),
        master_key: Some(key.trim().to_owned()),
        ..Options::default()
    };
    let mut broker = Broker::start(options.clone());
    assert_eq!(
        names(&broker).await,
        ["api-std".to_owned(), "main-auth".to_owned()]
    );
    let gone = label_of(&broker, "gone-later").await.unwrap_err();
    assert_eq!(reason(&gone).as_deref(), Some("CREDENTIAL_NOT_FOUND"));
    // The stored Auth Token opens: a signature made with it validates.
    let url = "https://example.com/hook";
    let signature = {
        use base64::Engine as _;
        use hmac::Mac as _;
        let mut mac =
            hmac::Hmac::<sha1::Sha1>::new_from_slice(b"fixture-auth-token-v2-0123456789ab")
                .unwrap();
        mac.update(url.as_bytes());
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    };
    let verdict = broker
        .broker()
        .await
        .validate_webhook(pb::ValidateWebhookRequest {
            credential: "main-auth".into(),
            url: url.into(),
            signature,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(verdict.valid, "{}", verdict.reason);
    let f = Fixtures::new();
    broker
        .admin()
        .await
        .put_credential(f.auth_token("after-upgrade"))
        .await
        .unwrap();
    assert!(broker.terminate().success());
    let broker = Broker::start(options);
    assert_eq!(
        names(&broker).await,
        [
            "after-upgrade".to_owned(),
            "api-std".to_owned(),
            "main-auth".to_owned()
        ]
    );
}
