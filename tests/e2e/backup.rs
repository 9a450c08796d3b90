//! Issue 17, backup and restore: `twilio-broker backup --out FILE` takes a
//! consistent snapshot through the Admin API while writes keep coming;
//! `twilio-broker restore FILE` loads it into an empty data directory, where
//! a daemon serves every write acknowledged before the snapshot; a restore
//! over a broker's own state file is a deliberate rollback (no
//! `--accept-rollback` needed, an audit event says so); a snapshot of
//! another master key, a damaged one and a non-empty directory are refused.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use hmac::Mac as _;
use twilio_broker_api::v1 as pb;

use crate::harness::{Broker, Fixtures, Options, contains, random_master_key, run_cli};

/// Every name acknowledged by PutCredential, with when the answer arrived.
type Acks = Arc<Mutex<Vec<(String, Instant)>>>;

/// Puts credentials from `writers` tasks until `stop` is set.
fn start_load(
    broker: &Broker,
    writers: usize,
    stop: &Arc<std::sync::atomic::AtomicBool>,
) -> (Acks, Vec<tokio::task::JoinHandle<()>>) {
    let acks: Acks = Arc::default();
    let tasks = (0..writers)
        .map(|w| {
            let (acks, stop, url) = (Arc::clone(&acks), Arc::clone(stop), broker.url.clone());
            tokio::spawn(async move {
                let f = Fixtures::new();
                let channel = tonic::transport::Channel::from_shared(url)
                    .unwrap()
                    .connect()
                    .await
                    .unwrap();
                let mut admin = pb::admin_client::AdminClient::new(channel);
                let mut i = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let name = format!("load-{w}-{i}");
                    admin.put_credential(f.test(&name)).await.unwrap();
                    acks.lock().unwrap().push((name, Instant::now()));
                    i += 1;
                }
            })
        })
        .collect();
    (acks, tasks)
}

/// Waits until `count` writes were acknowledged (at most a minute).
async fn wait_for_acks(acks: &Acks, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while acks.lock().unwrap().len() < count {
        assert!(
            Instant::now() < deadline,
            "fewer than {count} writes in a minute"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every credential name a broker serves (all pages).
async fn all_names(broker: &Broker) -> BTreeSet<String> {
    let mut admin = broker.admin().await;
    let (mut names, mut token) = (BTreeSet::new(), String::new());
    loop {
        let page = admin
            .list_credentials(pb::ListCredentialsRequest {
                page_token: token,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        names.extend(page.credentials.into_iter().map(|c| c.name));
        token = page.next_page_token;
        if token.is_empty() {
            return names;
        }
    }
}

fn cli(args: &[&str], key: &str) -> std::process::Output {
    run_cli(args, "", &[("TWILIO_BROKER_MASTER_KEY", key)])
}

fn text(output: &std::process::Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Twilio's webhook signature: base64(HMAC-SHA1(token, url + sorted k+v)).
fn webhook_signature(token: &str, url: &str, params: &[(&str, &str)]) -> String {
    let mut sorted = params.to_vec();
    sorted.sort();
    let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(token.as_bytes()).unwrap();
    mac.update(url.as_bytes());
    for (k, v) in sorted {
        mac.update(k.as_bytes());
        mac.update(v.as_bytes());
    }
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// True when `jwt` is signed (HS256) with `secret`.
fn signed_with(jwt: &str, secret: &str) -> bool {
    let Some((signed, signature)) = jwt.rsplit_once('.') else {
        return false;
    };
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(signed.as_bytes());
    let expected =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    expected == signature
}

/// The restored credentials work: a mint signed with the stored key secret,
/// a webhook checked with the stored Auth Token.
async fn assert_usable(broker: &Broker, f: &Fixtures) {
    let mut client = broker.broker().await;
    let token = client
        .mint_access_token(pb::MintAccessTokenRequest {
            credential: "minter".into(),
            identity: "alice".into(),
            video: Some(pb::VideoGrant {
                room: "room-1".into(),
            }),
            ..Default::default()
        })
        .await
        .expect("mint with the restored key")
        .into_inner();
    assert!(
        signed_with(&token.token, &f.api_secret),
        "not signed with the stored secret"
    );
    let url = "https://example.com/hook";
    let params = [("From", "+15005550006"), ("Body", "restored")];
    let answer = client
        .validate_webhook(pb::ValidateWebhookRequest {
            credential: "hook".into(),
            url: url.into(),
            params: params
                .iter()
                .map(|(name, value)| pb::FormParam {
                    name: (*name).into(),
                    value: (*value).into(),
                })
                .collect(),
            signature: webhook_signature(&f.auth_token, url, &params),
            ..Default::default()
        })
        .await
        .expect("validate with the restored Auth Token")
        .into_inner();
    assert!(answer.valid, "the restored Auth Token did not validate");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backup_under_load_restores_every_acknowledged_write() {
    let f = Fixtures::new();
    let key = random_master_key();
    let work = tempfile::tempdir().unwrap();
    let audit = work.path().join("audit.jsonl");
    let data = work.path().join("data");
    let options = Options {
        data_dir: Some(data.clone()),
        master_key: Some(key.clone()),
        args: vec!["--audit-file".into(), audit.display().to_string()],
        ..Options::default()
    };
    let mut broker = Broker::start(options.clone());
    let mut admin = broker.admin().await;
    admin
        .put_credential(f.api_key("minter", pb::KeyType::Standard))
        .await
        .unwrap();
    admin.put_credential(f.auth_token("hook")).await.unwrap();

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (acks, writers) = start_load(&broker, 4, &stop);
    // Under load: some writes acknowledged before the backup, some during
    // and after it (counted, not timed: a busy machine writes slowly).
    wait_for_acks(&acks, 20).await;
    let snapshot = work.path().join("broker.snapshot");
    let backup_started = Instant::now();
    let (addr, out) = (broker.addr.clone(), snapshot.display().to_string());
    let output = tokio::task::spawn_blocking(move || {
        run_cli(
            &["backup", "--out", &out],
            "",
            &[("TWILIO_BROKER_ADDR", &addr)],
        )
    })
    .await
    .unwrap();
    let backup_done = Instant::now();
    let acked_by_then = acks.lock().unwrap().len();
    wait_for_acks(&acks, acked_by_then + 4).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for writer in writers {
        writer.await.unwrap();
    }
    assert!(output.status.success(), "{}", text(&output));
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("backup written to"),
        "{}",
        text(&output)
    );
    let acks = acks.lock().unwrap().clone();
    let before: BTreeSet<String> = acks
        .iter()
        .filter(|(_, at)| *at < backup_started)
        .map(|(name, _)| name.clone())
        .collect();
    let after = acks.iter().filter(|(_, at)| *at > backup_done).count();
    assert!(
        before.len() >= 20 && after >= 4,
        "the backup was not taken under load: {} writes before it, {after} after",
        before.len()
    );

    // The snapshot holds sealed records only, and the backup was audited.
    let bytes = std::fs::read(&snapshot).unwrap();
    for secret in f.secrets() {
        assert!(
            !contains(&bytes, secret),
            "a secret in clear in the snapshot"
        );
    }
    assert!(!contains(&bytes, "minter") && !contains(&bytes, &f.account_sid));
    let mode = std::fs::metadata(&snapshot).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
        0o600
    );
    let audited = std::fs::read_to_string(&audit).unwrap();
    assert!(
        audited.contains(r#""rpc":"Backup""#),
        "no Backup event in the audit file"
    );

    // Restore into a fresh directory: every write acknowledged before the
    // snapshot is served, and the data is usable.
    let fresh = work.path().join("fresh");
    let fresh_audit = work.path().join("fresh-audit.jsonl");
    let restored = cli(
        &[
            "restore",
            &snapshot.display().to_string(),
            "--data-dir",
            &fresh.display().to_string(),
            "--audit-file",
            &fresh_audit.display().to_string(),
        ],
        &key,
    );
    assert!(restored.status.success(), "{}", text(&restored));
    let second = Broker::start(Options {
        data_dir: Some(fresh.clone()),
        master_key: Some(key.clone()),
        args: vec!["--audit-file".into(), fresh_audit.display().to_string()],
        ..Options::default()
    });
    let served = all_names(&second).await;
    let lost: Vec<_> = before.difference(&served).collect();
    assert!(lost.is_empty(), "acknowledged writes lost: {lost:?}");
    let acked: BTreeSet<String> = acks.iter().map(|(n, _)| n.clone()).collect();
    for name in &served {
        assert!(
            acked.contains(name) || name == "minter" || name == "hook",
            "{name} was never written"
        );
    }
    assert_usable(&second, &f).await;
    let events = std::fs::read_to_string(&fresh_audit).unwrap();
    assert!(
        events.contains(r#""rpc":"Restore""#) && events.contains("deliberate rollback"),
        "no restore event in {events}"
    );
    assert!(
        events.contains(r#""phase":"intent""#),
        "no intent before the store changed"
    );
    let verified = cli(
        &["audit", "verify", &fresh_audit.display().to_string()],
        &key,
    );
    assert!(verified.status.success(), "{}", text(&verified));
    drop(second);

    // A restore is a deliberate rollback: over the first broker's own state
    // file (its mark is past the snapshot) and audit file, it starts with
    // no --accept-rollback, and the rollback is in its audit chain.
    broker.terminate();
    std::fs::rename(&data, work.path().join("data.before-restore")).unwrap();
    let over = cli(
        &[
            "restore",
            &snapshot.display().to_string(),
            "--data-dir",
            &data.display().to_string(),
            "--audit-file",
            &audit.display().to_string(),
        ],
        &key,
    );
    assert!(over.status.success(), "{}", text(&over));
    let rolled_back = Broker::start(options);
    assert_eq!(all_names(&rolled_back).await, served);
    assert_usable(&rolled_back, &f).await;
    let events = std::fs::read_to_string(&audit).unwrap();
    assert!(events.contains(r#""rpc":"Restore""#), "no restore event");
    let state = format!("{}.state", data.display());
    let verified = cli(
        &[
            "audit",
            "verify",
            &audit.display().to_string(),
            "--state-file",
            &state,
        ],
        &key,
    );
    assert!(verified.status.success(), "{}", text(&verified));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_key_a_damaged_snapshot_and_a_full_directory_are_refused() {
    let f = Fixtures::new();
    let key = random_master_key();
    let work = tempfile::tempdir().unwrap();
    let broker = Broker::start(Options {
        master_key: Some(key.clone()),
        ..Options::default()
    });
    broker
        .admin()
        .await
        .put_credential(f.auth_token("hook"))
        .await
        .unwrap();
    let snapshot = work.path().join("s.snapshot");
    let out = broker.cli(&["backup", "--out", &snapshot.display().to_string()], "");
    assert!(out.status.success(), "{}", text(&out));
    let again = broker.cli(&["backup", "--out", &snapshot.display().to_string()], "");
    assert!(!again.status.success());
    assert!(
        text(&again).contains("never overwrites"),
        "{}",
        text(&again)
    );

    let target = work.path().join("target");
    let restore = |file: &Path, key: &str| {
        cli(
            &[
                "restore",
                &file.display().to_string(),
                "--data-dir",
                &target.display().to_string(),
            ],
            key,
        )
    };
    let other = restore(&snapshot, &random_master_key());
    assert!(!other.status.success());
    let message = text(&other);
    assert!(
        message.contains("sealed under master key id") && message.contains("nothing was restored"),
        "{message}"
    );
    assert!(
        !target.exists(),
        "a refused restore created {}",
        target.display()
    );

    let mut bytes = std::fs::read(&snapshot).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 1;
    let damaged = work.path().join("damaged.snapshot");
    std::fs::write(&damaged, &bytes).unwrap();
    let refused = restore(&damaged, &key);
    assert!(!refused.status.success());
    assert!(text(&refused).contains("damaged"), "{}", text(&refused));
    let cut = work.path().join("cut.snapshot");
    std::fs::write(&cut, &bytes[..middle]).unwrap();
    assert!(!restore(&cut, &key).status.success());

    // Backup reads every record: an admin limited to some credentials may
    // not take one.
    let policy = work.path().join("scoped.toml");
    std::fs::write(
        &policy,
        "version = 2\n[[rule]]\ncallers = [\"anonymous\"]\nadmin = true\ncredentials = [\"hook\"]\n",
    )
    .unwrap();
    let scoped = Broker::start(Options {
        args: vec!["--policy".into(), policy.display().to_string()],
        ..Options::default()
    });
    let mut admin = scoped.admin().await;
    let denied = admin.backup(pb::BackupRequest {}).await.unwrap_err();
    assert_eq!(denied.code(), tonic::Code::PermissionDenied, "{denied:?}");
    let allowed = admin
        .get_credential(pb::GetCredentialRequest {
            name: "hook".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(allowed.code(), tonic::Code::NotFound, "the rule applies");
    drop(scoped);

    std::fs::create_dir_all(&target).unwrap();
    std::fs::write(target.join("db"), b"something").unwrap();
    let full = restore(&snapshot, &key);
    assert!(!full.status.success());
    assert!(text(&full).contains("is not empty"), "{}", text(&full));
    assert_eq!(std::fs::read(target.join("db")).unwrap(), b"something");
}
