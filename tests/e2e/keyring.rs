//! Online master key rotation end to end (issue 18): a daemon whose
//! `master_key_file` is a keyring serves GetBearer, MintAccessToken and
//! ValidateWebhook in a loop while `keyring add` and a SIGHUP bring in a new
//! key; every record is re-sealed under it with zero failed calls, the old
//! key is retired, the daemon restarts with the new key alone, and `audit
//! verify` passes on the file spanning the change, with the old public key
//! or the new one. On sled and on the PostgreSQL storage plugin.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use hmac::Mac as _;
use twilio_broker_api::v1 as pb;
use twilio_standin::{Client, Config};

use crate::harness::{
    Broker, Fixtures, Options, free_port, random_master_key, run_cli, scrape_metrics,
};

/// Filler credentials beside the three the callers use, so that the re-seal
/// runs over several batches while the calls go on.
const FILLER: usize = 200;

/// Where the rotation's files live.
struct Files {
    dir: tempfile::TempDir,
}

impl Files {
    fn new(first_key: &str) -> Files {
        let files = Files {
            dir: tempfile::tempdir().unwrap(),
        };
        std::fs::write(files.keyring(), format!("{first_key}\n")).unwrap();
        std::fs::set_permissions(
            files.keyring(),
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .unwrap();
        files
    }
    fn keyring(&self) -> PathBuf {
        self.dir.path().join("master.key")
    }
    fn state(&self) -> PathBuf {
        self.dir.path().join("broker.state")
    }
    fn audit(&self) -> PathBuf {
        self.dir.path().join("audit.jsonl")
    }
    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }
    fn config(&self, extra: &str) -> PathBuf {
        let path = self.dir.path().join("broker.toml");
        std::fs::write(&path, format!("[audit]\ncheckpoint_events = 50\n{extra}")).unwrap();
        path
    }
}

fn cli(files: &Files, args: &[&str]) -> (bool, String) {
    let keyring = files.keyring().display().to_string();
    let out = run_cli(args, "", &[("TWILIO_BROKER_MASTER_KEY_FILE", &keyring)]);
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn arg(path: &Path) -> String {
    path.display().to_string()
}

fn twilio_signature(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    let mut sorted = params.to_vec();
    sorted.sort();
    let mut data = url.to_owned();
    for (name, value) in &sorted {
        data.push_str(name);
        data.push_str(value);
    }
    let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(auth_token.as_bytes()).unwrap();
    mac.update(data.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Callers of the three hot RPCs in a loop; every answer is checked.
struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    failed: Arc<std::sync::Mutex<Vec<String>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    async fn start(broker: &Broker, f: &Fixtures) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        let url = "https://example.com/hook".to_owned();
        let params = vec![("From".to_owned(), "+15005550006".to_owned())];
        let signature = twilio_signature(&f.auth_token, &url, &params);
        for rpc in 0..3 {
            let mut client = broker.broker().await;
            let (stop, ok, failed) = (Arc::clone(&stop), Arc::clone(&ok), Arc::clone(&failed));
            let (url, params, signature) = (url.clone(), params.clone(), signature.clone());
            tasks.push(tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let outcome = match rpc {
                        0 => client
                            .get_bearer(pb::GetBearerRequest {
                                credential: "oauth".into(),
                                min_ttl_seconds: 0,
                            })
                            .await
                            .map(|r| !r.into_inner().access_token.is_empty()),
                        1 => client
                            .mint_access_token(pb::MintAccessTokenRequest {
                                credential: "app".into(),
                                identity: "caller".into(),
                                ttl_seconds: 60,
                                video: Some(pb::VideoGrant { room: "r".into() }),
                                ..Default::default()
                            })
                            .await
                            .map(|r| !r.into_inner().token.is_empty()),
                        _ => client
                            .validate_webhook(pb::ValidateWebhookRequest {
                                credential: "hook".into(),
                                url: url.clone(),
                                params: params
                                    .iter()
                                    .map(|(name, value)| pb::FormParam {
                                        name: name.clone(),
                                        value: value.clone(),
                                    })
                                    .collect(),
                                signature: signature.clone(),
                                ..Default::default()
                            })
                            .await
                            .map(|r| r.into_inner().valid),
                    };
                    match outcome {
                        Ok(true) => {
                            ok.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(false) => failed.lock().unwrap().push(format!("rpc {rpc}: refused")),
                        Err(status) => failed
                            .lock()
                            .unwrap()
                            .push(format!("rpc {rpc}: {status:?}")),
                    }
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }));
        }
        Load {
            stop,
            ok,
            failed,
            tasks,
        }
    }

    fn ok(&self) -> u64 {
        self.ok.load(Ordering::Relaxed)
    }

    async fn finish(self) -> (u64, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            task.await.unwrap();
        }
        (
            self.ok.load(Ordering::Relaxed),
            self.failed.lock().unwrap().clone(),
        )
    }
}

fn metric(page: &str, name: &str) -> Option<f64> {
    page.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

fn sighup(broker: &Broker) {
    let status = std::process::Command::new("kill")
        .args(["-HUP", &broker.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// The key id (16 hex digits) a sealed value names, if it is one.
fn sealed_under(value: &[u8]) -> Option<String> {
    (value.len() > 12 && (&value[..4] == b"TBS2" || &value[..4] == b"TBS1"))
        .then(|| value[4..12].iter().map(|b| format!("{b:02x}")).collect())
}

fn key_id(files: &Files, newest_only: bool) -> Vec<String> {
    let (ok, out) = cli(
        files,
        &["keyring", "list", "--file", &arg(&files.keyring())],
    );
    assert!(ok, "{out}");
    let ids: Vec<String> = out
        .lines()
        .filter(|l| {
            l.contains("(seals new writes)") || (!newest_only && l.contains("(opens only)"))
        })
        .map(|l| l[..16].to_owned())
        .collect();
    ids
}

/// The whole rotation on one daemon. `plugin_config`: the storage plugin's
/// `[[plugins]]` table (PostgreSQL), or none for sled.
async fn rotate_under_load(plugin_config: Option<String>) -> Files {
    let first = random_master_key();
    let files = Files::new(&first);
    let f = Fixtures::new();
    let standin = twilio_standin::start(Config {
        clients: vec![Client {
            client_id: f.client_id.clone(),
            client_secret: f.client_secret.clone(),
            account_sid: f.account_sid.clone(),
        }],
        ..Config::default()
    })
    .await
    .unwrap();
    let config = files.config(plugin_config.as_deref().unwrap_or_default());
    let port = free_port();
    let options = Options {
        master_key: None,
        data_dir: Some(files.data()),
        args: vec![
            "--config".into(),
            arg(&config),
            "--state-file".into(),
            arg(&files.state()),
            "--audit-file".into(),
            arg(&files.audit()),
            "--metrics-listen".into(),
            format!("127.0.0.1:{port}"),
        ],
        env: vec![
            (
                "TWILIO_BROKER_MASTER_KEY_FILE".into(),
                arg(&files.keyring()),
            ),
            ("TWILIO_BROKER_OAUTH_TOKEN_URL".into(), standin.token_url()),
        ],
        ..Options::default()
    };
    let mut broker = Broker::start(options.clone());
    let mut admin = broker.admin().await;
    admin.put_credential(f.oauth_client("oauth")).await.unwrap();
    admin
        .put_credential(f.api_key("app", pb::KeyType::Standard))
        .await
        .unwrap();
    admin.put_credential(f.auth_token("hook")).await.unwrap();
    for n in 0..FILLER {
        admin
            .put_credential(f.test(&format!("filler-{n:03}")))
            .await
            .unwrap();
    }
    let old_id = key_id(&files, true).remove(0);
    let (ok, old_pub) = cli(&files, &["audit", "pubkey"]);
    assert!(ok, "{old_pub}");
    let old_pub = old_pub.trim().to_owned();

    let load = Load::start(&broker, &f).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (ok, out) = cli(
        &files,
        &["keyring", "add", "--file", &arg(&files.keyring())],
    );
    assert!(ok && out.contains("added key id"), "{out}");
    let new_id = key_id(&files, true).remove(0);
    assert_ne!(new_id, old_id);
    // Before the broker has re-sealed under the new key, the old key stays.
    let (ok, out) = cli(
        &files,
        &[
            "keyring",
            "retire",
            &old_id,
            "--file",
            &arg(&files.keyring()),
            "--state-file",
            &arg(&files.state()),
        ],
    );
    assert!(!ok && out.contains("has not finished re-sealing"), "{out}");
    let calls_before = load.ok();
    sighup(&broker);
    let started = Instant::now();
    loop {
        let page = scrape_metrics(port);
        let old = metric(
            &page,
            &format!("twilio_broker_keyring_records{{key_id=\"{old_id}\"}}"),
        );
        let new = metric(
            &page,
            &format!("twilio_broker_keyring_records{{key_id=\"{new_id}\"}}"),
        );
        let remaining = metric(&page, "twilio_broker_keyring_reseal_remaining");
        if old == Some(0.0)
            && remaining == Some(0.0)
            && new.is_some_and(|n| n >= (FILLER + 3) as f64)
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "not re-sealed after 60 s: old {old:?}, new {new:?}, remaining {remaining:?}\n{}",
            broker.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "re-sealed {} records in {:?}",
        FILLER + 3,
        started.elapsed()
    );
    let page = scrape_metrics(port);
    assert!(
        metric(&page, "twilio_broker_keyring_resealed_total")
            .is_some_and(|n| n >= (FILLER + 3) as f64),
        "{page}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (calls, failed) = load.finish().await;
    assert!(
        failed.is_empty(),
        "failed calls during the rotation: {failed:?}"
    );
    assert!(
        calls > calls_before + 30,
        "callers kept calling throughout ({calls_before} then {calls})"
    );

    // The state file reports the finished pass; the old key retires.
    let (ok, out) = cli(
        &files,
        &[
            "keyring",
            "list",
            "--file",
            &arg(&files.keyring()),
            "--state-file",
            &arg(&files.state()),
        ],
    );
    assert!(
        ok && out.contains("re-seal: complete")
            && out.contains(&format!("{old_id} older (opens only), 0 record(s)")),
        "{out}"
    );
    let (ok, out) = cli(
        &files,
        &[
            "keyring",
            "retire",
            &old_id,
            "--file",
            &arg(&files.keyring()),
            "--state-file",
            &arg(&files.state()),
        ],
    );
    assert!(ok, "{out}");
    assert_eq!(key_id(&files, false), vec![new_id.clone()]);
    sighup(&broker);
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Still serving, and the audit file spans both keys.
    let mut client = broker.broker().await;
    client
        .get_bearer(pb::GetBearerRequest {
            credential: "oauth".into(),
            min_ttl_seconds: 0,
        })
        .await
        .unwrap();
    let log = broker.log_text();
    assert!(!log.contains("keyring not reloaded"), "{log}");
    let keyring_text = std::fs::read_to_string(files.keyring()).unwrap();
    for line in keyring_text.lines().filter(|l| !l.starts_with('#')) {
        assert!(!log.contains(line.trim()), "a master key reached the log");
    }
    assert!(
        !log.contains(first.trim()),
        "the old master key reached the log"
    );
    broker.terminate();

    // Restarted with the new key alone: everything opens.
    let broker = Broker::start(options);
    let listed = broker
        .admin()
        .await
        .list_credentials(pb::ListCredentialsRequest {
            page_size: 1000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.credentials.len(), FILLER + 3);
    let mut client = broker.broker().await;
    client
        .mint_access_token(pb::MintAccessTokenRequest {
            credential: "app".into(),
            identity: "after".into(),
            ttl_seconds: 60,
            video: Some(pb::VideoGrant { room: "r".into() }),
            ..Default::default()
        })
        .await
        .unwrap();
    drop(client);
    let mut broker = broker;
    broker.terminate();

    let audit = arg(&files.audit());
    for (what, args) in [
        (
            "the old public key",
            vec![
                "audit",
                "verify",
                "--pubkey",
                old_pub.as_str(),
                audit.as_str(),
            ],
        ),
        ("the keyring", vec!["audit", "verify", audit.as_str()]),
    ] {
        let (ok, out) = cli(&files, &args);
        assert!(
            ok && out.contains("OK,") && out.contains("chain intact"),
            "{what}: {out}"
        );
        assert!(!out.contains("UNSIGNED"), "{what}: {out}");
    }
    let lines = std::fs::read_to_string(files.audit()).unwrap();
    assert!(
        lines.contains("\"record\":\"signer\""),
        "no handover in the audit file"
    );
    std::fs::write(files.dir.path().join("new-id"), new_id).unwrap();
    files
}

fn new_id(files: &Files) -> String {
    std::fs::read_to_string(files.dir.path().join("new-id")).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_key_rotates_on_sled_under_load_with_zero_failed_calls() {
    let files = rotate_under_load(None).await;
    let new_id = new_id(&files);
    let store = twilio_broker::SledStore::open(&files.data()).unwrap();
    let mut seen = 0;
    for (key, stored) in twilio_broker::Store::list(&store, "").await.unwrap() {
        if let Some(id) = sealed_under(&stored.value) {
            assert_eq!(id, new_id, "{key} is not under the new key");
            seen += 1;
        }
    }
    assert!(seen > FILLER + 3, "{seen} sealed records");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_key_rotates_on_postgres_under_load_with_zero_failed_calls() {
    let Some(schema) = crate::plugins::services::PgSchema::new().await else {
        return;
    };
    let plugin = format!(
        "[[plugins]]\nkind = \"storage\"\npath = {:?}\nconfig = {}\n",
        crate::plugins::libs::cargo_plugin("twilio_broker_storage_postgres")
            .display()
            .to_string(),
        schema.plugin_config()
    );
    let files = rotate_under_load(Some(plugin)).await;
    let new_id = new_id(&files);
    let rows = schema.values().await;
    assert!(rows.len() > FILLER + 3, "{} rows", rows.len());
    for (key, value) in rows {
        assert_eq!(
            sealed_under(&value).as_deref(),
            Some(new_id.as_str()),
            "{key}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_chain_verifies_across_an_offline_rekey() {
    let dir = tempfile::tempdir().unwrap();
    let (audit, state) = (dir.path().join("audit.jsonl"), dir.path().join("b.state"));
    let args = vec![
        "--audit-file".to_owned(),
        arg(&audit),
        "--state-file".to_owned(),
        arg(&state),
    ];
    let old = random_master_key();
    let mut broker = Broker::start(Options {
        master_key: Some(old.clone()),
        args: args.clone(),
        ..Options::default()
    });
    let f = Fixtures::new();
    broker
        .admin()
        .await
        .put_credential(f.test("before"))
        .await
        .unwrap();
    let data = broker.data_dir.clone();
    let mut same = broker.same_data();
    broker.terminate();
    let old_pub = run_cli(
        &["audit", "pubkey"],
        "",
        &[("TWILIO_BROKER_MASTER_KEY", &old)],
    );
    let old_pub = String::from_utf8_lossy(&old_pub.stdout).trim().to_owned();
    let new = random_master_key();
    let new_file = dir.path().join("new.key");
    std::fs::write(&new_file, format!("{new}\n")).unwrap();
    std::fs::set_permissions(
        &new_file,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let rekeyed = run_cli(
        &[
            "rekey",
            "--data-dir",
            &arg(&data),
            "--state-file",
            &arg(&state),
            "--new-key-file",
            &arg(&new_file),
        ],
        "",
        &[("TWILIO_BROKER_MASTER_KEY", &old)],
    );
    assert!(
        rekeyed.status.success(),
        "{}",
        String::from_utf8_lossy(&rekeyed.stderr)
    );
    same.master_key = Some(new.clone());
    same.args = args;
    let mut broker = Broker::start(same);
    broker
        .admin()
        .await
        .put_credential(f.test("after"))
        .await
        .unwrap();
    broker.terminate();
    let text = std::fs::read_to_string(&audit).unwrap();
    assert!(
        text.contains("\"handover\""),
        "the rekey's handover is in the chain"
    );
    for (what, args, env) in [
        (
            "the old public key",
            vec!["audit", "verify", "--pubkey", old_pub.as_str()],
            None,
        ),
        (
            "the new master key",
            vec!["audit", "verify"],
            Some(new.as_str()),
        ),
    ] {
        let mut args = args;
        let audit_arg = arg(&audit);
        args.push(&audit_arg);
        let env: Vec<(&str, &str)> = env
            .map(|k| ("TWILIO_BROKER_MASTER_KEY", k))
            .into_iter()
            .collect();
        let out = run_cli(&args, "", &env);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success() && text.contains("chain intact"),
            "{what}: {text}"
        );
    }
}
