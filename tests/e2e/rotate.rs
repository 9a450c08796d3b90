//! `credential rotate` end to end (issue 18): the real daemon rotating API
//! keys at the twilio-standin through a manager, while callers keep minting
//! Access Tokens that the stand-in checks against the keys it holds; a
//! `kill -9` between the switch and the deletion; a rate-limited rotation.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use twilio_broker_api::v1 as pb;
use twilio_standin::{Config, KeyType, Standin};

use crate::harness::{Broker, Options, reason, retry_after};

struct Setup {
    standin: Standin,
    broker: Broker,
    account: String,
    /// The key stored as `app`: (sid, secret).
    old: (String, String),
}

fn twilio_env(standin: &Standin) -> Vec<(String, String)> {
    [
        "TWILIO_BROKER_API_BASE",
        "TWILIO_BROKER_IAM_BASE",
        "TWILIO_BROKER_ACCOUNTS_BASE",
    ]
    .into_iter()
    .map(|var| (var.to_owned(), standin.url()))
    .collect()
}

/// A broker holding the account's Auth Token (`acme-token`, the manager)
/// and a key of `key_type` stored as `app` through the CLI with `--manager`.
async fn setup(key_type: KeyType) -> Setup {
    let standin = twilio_standin::start(Config::default()).await.unwrap();
    let account = format!("AC{}", twilio_standin::accounts::random_auth_token());
    let auth_token = twilio_standin::accounts::random_auth_token();
    standin.add_account(&account, &auth_token);
    let key = match key_type {
        KeyType::Restricted => standin
            .add_restricted_key(
                &account,
                serde_json::json!({"allow": ["/twilio/messaging/messages/create"]}),
            )
            .unwrap(),
        other => standin.add_key(&account, other).unwrap(),
    };
    let broker = Broker::start(Options {
        env: twilio_env(&standin),
        ..Options::default()
    });
    let type_arg = match key_type {
        KeyType::Restricted => "restricted",
        KeyType::Main => "main",
        _ => "standard",
    };
    let added = cli(
        &broker,
        &[
            "credential",
            "add",
            "acme-token",
            "--auth-token",
            "--account-sid",
            &account,
            "--secret-stdin",
        ],
        &auth_token,
    )
    .await;
    assert!(added.status.success(), "{}", stderr(&added));
    let added = cli(
        &broker,
        &[
            "credential",
            "add",
            "app",
            "--api-key",
            "--account-sid",
            &account,
            "--key-sid",
            &key.sid,
            "--key-type",
            type_arg,
            "--manager",
            "acme-token",
            "--secret-stdin",
        ],
        &key.secret,
    )
    .await;
    assert!(added.status.success(), "{}", stderr(&added));
    Setup {
        standin,
        broker,
        account,
        old: (key.sid, key.secret),
    }
}

async fn cli(broker: &Broker, args: &[&str], stdin: &str) -> std::process::Output {
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    let stdin = stdin.to_owned();
    let addr = broker.addr.clone();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        crate::harness::run_cli(&args, &stdin, &[("TWILIO_BROKER_ADDR", &addr)])
    })
    .await
    .unwrap()
}

/// Rotates `app` through the Admin API with an overlap of `seconds`.
async fn rotate(broker: &Broker, seconds: u32) -> pb::RotateCredentialResponse {
    broker
        .admin()
        .await
        .rotate_credential(pb::RotateCredentialRequest {
            name: "app".into(),
            overlap_seconds: Some(seconds),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
}

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

async fn app_key(broker: &Broker) -> pb::CredentialMetadata {
    broker
        .admin()
        .await
        .get_credential(pb::GetCredentialRequest { name: "app".into() })
        .await
        .unwrap()
        .into_inner()
        .credential
        .unwrap()
}

async fn until(what: &str, seconds: u64, mut done: impl FnMut() -> bool) {
    for _ in 0..seconds * 20 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out after {seconds} s waiting until {what}");
}

/// Callers minting in a loop, each token checked by the stand-in at once
/// against the keys it holds then.
struct Minters {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    failed: Arc<std::sync::Mutex<Vec<String>>>,
    signers: Arc<std::sync::Mutex<std::collections::BTreeSet<String>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Minters {
    async fn start(broker: &Broker, standin: &Arc<Standin>, callers: usize) -> Minters {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(std::sync::Mutex::new(Vec::new()));
        let signers = Arc::new(std::sync::Mutex::new(std::collections::BTreeSet::new()));
        let mut tasks = Vec::new();
        for caller in 0..callers {
            let mut client = broker.broker().await;
            let (stop, ok, failed, signers, standin) = (
                Arc::clone(&stop),
                Arc::clone(&ok),
                Arc::clone(&failed),
                Arc::clone(&signers),
                Arc::clone(standin),
            );
            tasks.push(tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let minted = client
                        .mint_access_token(pb::MintAccessTokenRequest {
                            credential: "app".into(),
                            identity: format!("caller-{caller}"),
                            ttl_seconds: 60,
                            video: Some(pb::VideoGrant { room: "r".into() }),
                            ..Default::default()
                        })
                        .await;
                    match minted {
                        Ok(answer) => match standin.verify_access_token(&answer.get_ref().token) {
                            Ok(claims) => {
                                let iss = claims["iss"].as_str().unwrap_or_default().to_owned();
                                signers.lock().unwrap().insert(iss);
                                ok.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(why) => failed.lock().unwrap().push(format!("{why:?}")),
                        },
                        Err(status) => failed.lock().unwrap().push(format!("{status:?}")),
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }));
        }
        Minters {
            stop,
            ok,
            failed,
            signers,
            tasks,
        }
    }

    /// Stops the callers; returns (successful calls, failures, signing key SIDs).
    async fn finish(self) -> (u64, Vec<String>, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            task.await.unwrap();
        }
        (
            self.ok.load(Ordering::Relaxed),
            self.failed.lock().unwrap().clone(),
            self.signers.lock().unwrap().iter().cloned().collect(),
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standard_key_rotates_under_load_and_the_old_key_dies_after_the_overlap() {
    let Setup {
        standin,
        broker,
        account,
        old,
    } = setup(KeyType::Standard).await;
    let standin = Arc::new(standin);
    let minters = Minters::start(&broker, &standin, 4).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rotated = cli(
        &broker,
        &["credential", "rotate", "app", "--overlap", "2"],
        "",
    )
    .await;
    assert!(rotated.status.success(), "{}", stderr(&rotated));
    let shown = app_key(&broker).await;
    assert_ne!(
        shown.key_sid, old.0,
        "the new key is current when the command returns"
    );
    assert_eq!(shown.previous_key_sid, old.0);
    assert_eq!(shown.manager, "acme-token");
    let new_sid = shown.key_sid.clone();
    assert!(
        standin.authenticates(&old.0, &old.1),
        "the old key stays alive during the overlap"
    );
    until("the old key is deleted at Twilio", 20, || {
        !standin.authenticates(&old.0, &old.1)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (ok, failed, signers) = minters.finish().await;
    assert!(
        failed.is_empty(),
        "failed calls during the rotation: {failed:?}"
    );
    assert!(ok > 20, "callers kept minting ({ok} calls)");
    assert_eq!(signers, {
        let mut both = vec![old.0.clone(), new_sid.clone()];
        both.sort();
        both
    });
    let keys = standin.account(&account).unwrap().keys;
    assert!(!keys.contains_key(&old.0));
    assert_eq!(keys[&new_sid].key_type, KeyType::Standard);
    let mut forgotten = false;
    for _ in 0..100 {
        if app_key(&broker).await.previous_key_sid.is_empty() {
            forgotten = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        forgotten,
        "the previous key is forgotten after its deletion"
    );
    let log = broker.log_text();
    assert!(!log.contains(&old.1), "the old secret is never logged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restricted_key_rotates_with_its_policy() {
    let Setup {
        standin,
        broker,
        account,
        old,
    } = setup(KeyType::Restricted).await;
    let policy = standin.account(&account).unwrap().keys[&old.0]
        .policy
        .clone();
    assert!(policy.is_some());
    // Restricted keys cannot sign Access Tokens; the callers here read the
    // credential throughout instead.
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let mut admin = broker.admin().await;
        let stop = Arc::clone(&stop);
        tokio::spawn(async move {
            let mut calls = 0u64;
            while !stop.load(Ordering::Relaxed) {
                admin
                    .get_credential(pb::GetCredentialRequest { name: "app".into() })
                    .await
                    .unwrap();
                calls += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            calls
        })
    };
    let rotated = rotate(&broker, 1).await;
    assert_eq!(rotated.previous_key_sid, old.0);
    let new_sid = rotated.credential.unwrap().key_sid;
    let held = standin.account(&account).unwrap().keys[&new_sid].clone();
    assert_eq!(held.key_type, KeyType::Restricted);
    assert_eq!(held.policy, policy, "the successor has the same Policy");
    until("the old key is deleted at Twilio", 20, || {
        !standin.authenticates(&old.0, &old.1)
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    assert!(reader.await.unwrap() > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_9_after_the_switch_is_finished_at_the_next_start() {
    let Setup {
        standin,
        mut broker,
        old,
        ..
    } = setup(KeyType::Standard).await;
    let rotated = rotate(&broker, 2).await;
    let new_sid = rotated.credential.unwrap().key_sid;
    // Switched, not yet deleted: kill -9.
    let options = Options {
        env: twilio_env(&standin),
        ..broker.same_data()
    };
    broker.kill9();
    assert!(
        standin.authenticates(&old.0, &old.1),
        "the old key outlives the crash"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        standin.authenticates(&old.0, &old.1),
        "nothing deleted it while the broker was down"
    );
    let broker = Broker::start(options);
    until(
        "the overdue old key is deleted after the restart",
        20,
        || !standin.authenticates(&old.0, &old.1),
    )
    .await;
    let shown = app_key(&broker).await;
    assert_eq!(shown.key_sid, new_sid, "the new key survived the crash");
    let minted = broker
        .broker()
        .await
        .mint_access_token(pb::MintAccessTokenRequest {
            credential: "app".into(),
            identity: "after-crash".into(),
            video: Some(pb::VideoGrant { room: "r".into() }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let claims = standin.verify_access_token(&minted.token).unwrap();
    assert_eq!(claims["iss"].as_str(), Some(new_sid.as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limited_rotation_is_reported_unchanged_and_retried() {
    let Setup {
        standin,
        broker,
        account,
        old,
    } = setup(KeyType::Standard).await;
    standin.set_rate_limit(1, 9);
    let err = broker
        .admin()
        .await
        .rotate_credential(pb::RotateCredentialRequest {
            name: "app".into(),
            overlap_seconds: Some(0),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unavailable, "{err:?}");
    assert_eq!(reason(&err).as_deref(), Some("ROTATION_UNAVAILABLE"));
    assert_eq!(retry_after(&err), Some(Duration::from_secs(9)));
    let shown = app_key(&broker).await;
    assert_eq!(shown.key_sid, old.0, "nothing changed");
    assert!(shown.previous_key_sid.is_empty());
    assert_eq!(standin.account(&account).unwrap().keys.len(), 1);
    let audit_like = broker.log_text();
    assert!(
        audit_like.contains("rotation stopped"),
        "the stop is logged"
    );
    // The CLI says the reason too, then a retry works.
    let retried = cli(
        &broker,
        &["credential", "rotate", "app", "--overlap", "0"],
        "",
    )
    .await;
    assert!(retried.status.success(), "{}", stderr(&retried));
    until("the old key is deleted at Twilio", 20, || {
        !standin.authenticates(&old.0, &old.1)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manager_must_be_stored_and_of_the_same_account() {
    let Setup {
        broker,
        account,
        old,
        ..
    } = setup(KeyType::Standard).await;
    let put = |manager: &str| pb::PutCredentialRequest {
        name: "other".into(),
        labels: Default::default(),
        credential: Some(pb::put_credential_request::Credential::ApiKey(
            pb::ApiKeyCredential {
                account_sid: account.clone(),
                key_sid: old.0.clone(),
                secret: old.1.clone(),
                key_type: pb::KeyType::Standard.into(),
            },
        )),
        manager: manager.into(),
    };
    let mut admin = broker.admin().await;
    for manager in ["absent", "app"] {
        let err = admin.put_credential(put(manager)).await.unwrap_err();
        assert_eq!(
            err.code(),
            tonic::Code::FailedPrecondition,
            "{manager}: {err:?}"
        );
        assert_eq!(reason(&err).as_deref(), Some("MANAGER_UNUSABLE"));
        assert!(!err.message().contains(&old.1));
    }
    let err = admin.put_credential(put("bad name!")).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    // No manager: not rotatable, and the CLI says why.
    admin.put_credential(put("")).await.unwrap();
    let err = admin
        .rotate_credential(pb::RotateCredentialRequest {
            name: "other".into(),
            overlap_seconds: None,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&err).as_deref(), Some("NOT_ROTATABLE"));
}
