//! `credential rotate` on an Auth Token end to end (issue 18): the real
//! daemon creating, storing and promoting a secondary Auth Token at the
//! twilio-standin while callers validate webhooks signed with whatever
//! Twilio's primary is at that moment (zero failures); the acknowledgement
//! the CLI and the RPC require; a `kill -9` with the secondary stored,
//! finished by the next start; the audit event of the background end.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use base64::Engine as _;
use hmac::Mac as _;
use twilio_broker_api::v1 as pb;
use twilio_standin::{Config, Standin};

use crate::harness::{Broker, Options, reason};

struct Setup {
    standin: Arc<Standin>,
    broker: Broker,
    account: String,
    /// The Auth Token stored as `acme-token`.
    old: String,
    /// The broker's audit file.
    audit: std::path::PathBuf,
    _dir: tempfile::TempDir,
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

/// A broker (with an audit file) holding the account's Auth Token as
/// `acme-token`, stored through the CLI.
async fn setup() -> Setup {
    let standin = Arc::new(twilio_standin::start(Config::default()).await.unwrap());
    let account = format!("AC{}", twilio_standin::accounts::random_auth_token());
    let old = twilio_standin::accounts::random_auth_token();
    standin.add_account(&account, &old);
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    let broker = Broker::start(Options {
        env: twilio_env(&standin),
        args: vec!["--audit-file".into(), audit.display().to_string()],
        ..Options::default()
    });
    let added = broker.cli(
        &[
            "credential",
            "add",
            "acme-token",
            "--auth-token",
            "--account-sid",
            &account,
            "--secret-stdin",
        ],
        &old,
    );
    assert!(added.status.success(), "{}", stderr(&added));
    Setup {
        standin,
        broker,
        account,
        old,
        audit,
        _dir: dir,
    }
}

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

async fn cli(broker: &Broker, args: &[&str]) -> std::process::Output {
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    let addr = broker.addr.clone();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        crate::harness::run_cli(&args, "", &[("TWILIO_BROKER_ADDR", &addr)])
    })
    .await
    .unwrap()
}

const URL: &str = "https://mycompany.com/myapp.php?foo=1&bar=2";

/// Twilio's signature of the test webhook with `token` (HMAC-SHA1 over the
/// URL and the sorted parameters).
fn sign(token: &str) -> String {
    let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(token.as_bytes()).unwrap();
    mac.update(format!("{URL}Digits1234").as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

async fn validate(
    client: &mut twilio_broker_api::v1::broker_client::BrokerClient<tonic::transport::Channel>,
    signature: String,
) -> Result<bool, tonic::Status> {
    client
        .validate_webhook(pb::ValidateWebhookRequest {
            credential: "acme-token".into(),
            url: URL.into(),
            params: vec![pb::FormParam {
                name: "Digits".into(),
                value: "1234".into(),
            }],
            signature,
            ..Default::default()
        })
        .await
        .map(|r| r.into_inner().valid)
}

async fn shown(broker: &Broker) -> pb::CredentialMetadata {
    broker
        .admin()
        .await
        .get_credential(pb::GetCredentialRequest {
            name: "acme-token".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .credential
        .unwrap()
}

async fn until(what: &str, seconds: u64, mut done: impl AsyncFnMut() -> bool) {
    for _ in 0..seconds * 10 {
        if done().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting until {what}");
}

fn primary_at_twilio(standin: &Standin, account: &str) -> String {
    standin.account(account).unwrap().auth_token
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_auth_token_rotates_without_a_failed_webhook_check_and_the_old_one_dies() {
    let s = setup().await;
    // Without the acknowledgement: refused by the CLI's server and by the
    // RPC itself, nothing created.
    let refused = cli(&s.broker, &["credential", "rotate", "acme-token"]).await;
    assert!(!refused.status.success());
    let text = stderr(&refused);
    assert!(text.contains("NOT_ROTATABLE"), "{text}");
    assert!(text.contains("--yes-i-know-api-keys-break"), "{text}");
    let err = s
        .broker
        .admin()
        .await
        .rotate_credential(pb::RotateCredentialRequest {
            name: "acme-token".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
    assert_eq!(reason(&err).as_deref(), Some("NOT_ROTATABLE"));
    assert!(
        s.standin
            .account(&s.account)
            .unwrap()
            .secondary_auth_token
            .is_none()
    );

    // Callers validate webhooks signed with Twilio's current primary, all
    // through the rotation.
    let stop = Arc::new(AtomicBool::new(false));
    let (checked, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut callers = Vec::new();
    for _ in 0..2 {
        let mut client = s.broker.broker().await;
        let (standin, account) = (Arc::clone(&s.standin), s.account.clone());
        let (stop, checked, failed) =
            (Arc::clone(&stop), Arc::clone(&checked), Arc::clone(&failed));
        callers.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let signature = sign(&primary_at_twilio(&standin, &account));
                if !matches!(validate(&mut client, signature).await, Ok(true)) {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
                checked.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let rotated = cli(
        &s.broker,
        &[
            "credential",
            "rotate",
            "acme-token",
            "--yes-i-know-api-keys-break",
            "--propagation-delay",
            "1",
            "--overlap",
            "3",
        ],
    )
    .await;
    assert!(rotated.status.success(), "{}", stderr(&rotated));
    let out = String::from_utf8_lossy(&rotated.stdout);
    assert!(out.contains("invalidated the API keys"), "{out}");
    assert!(
        stderr(&rotated).contains("EVERY API KEY"),
        "the CLI warns loudly"
    );
    // Returned: the new token is in use at Twilio and in the broker.
    let new = primary_at_twilio(&s.standin, &s.account);
    assert_ne!(new, s.old);
    assert!(
        !s.standin.authenticates(&s.account, &s.old),
        "old token unusable at Twilio"
    );
    let meta = shown(&s.broker).await;
    assert_eq!(meta.rotation_step, "draining");
    assert!(
        meta.has_secondary_auth_token,
        "the old token kept for webhooks in flight"
    );
    let mut client = s.broker.broker().await;
    assert!(
        validate(&mut client, sign(&s.old)).await.unwrap(),
        "in-flight old signatures"
    );
    until("the old token is forgotten", 20, async || {
        let meta = shown(&s.broker).await;
        !meta.has_secondary_auth_token && meta.rotation_step.is_empty()
    })
    .await;
    assert!(!validate(&mut client, sign(&s.old)).await.unwrap());
    assert!(validate(&mut client, sign(&new)).await.unwrap());
    stop.store(true, Ordering::Relaxed);
    for caller in callers {
        caller.await.unwrap();
    }
    assert!(checked.load(Ordering::Relaxed) > 10);
    assert_eq!(failed.load(Ordering::Relaxed), 0, "no failed webhook check");

    // The background end is audited as the broker's own RotateCredential,
    // and no token appears in the audit or the log.
    until("the background end is audited", 10, async || {
        std::fs::read_to_string(&s.audit)
            .unwrap_or_default()
            .lines()
            .any(|line| line.contains("\"phase\":\"background\"") && line.contains("acme-token"))
    })
    .await;
    let audit = std::fs::read_to_string(&s.audit).unwrap();
    let log = s.broker.log_text();
    for token in [&s.old, &new] {
        assert!(!audit.contains(token.as_str()), "token in the audit");
        assert!(!log.contains(token.as_str()), "token in the log");
    }
    let background = audit
        .lines()
        .find(|line| line.contains("\"phase\":\"background\""))
        .unwrap();
    let event: serde_json::Value = serde_json::from_str(background).unwrap();
    assert_eq!(event["rpc"], "RotateCredential");
    assert_eq!(event["caller"], "twilio-broker");
    assert_eq!(event["transport"], "internal");
    assert_eq!(event["status"], "OK");
    // Every record, the background one included, fits the published schema.
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../plugins/sdk/schema/audit-event.schema.json");
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let validator = jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .unwrap();
    for line in audit.lines() {
        let record: serde_json::Value = serde_json::from_str(line).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&record)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{record} is invalid: {errors:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_9_with_the_secondary_stored_is_promoted_at_the_next_start() {
    let Setup {
        standin,
        mut broker,
        account,
        old,
        ..
    } = setup().await;
    // A long propagation delay: the CLI waits, the broker dies meanwhile.
    let addr = broker.addr.clone();
    let rotating = tokio::task::spawn_blocking(move || {
        crate::harness::run_cli(
            &[
                "credential",
                "rotate",
                "acme-token",
                "--yes-i-know-api-keys-break",
                "--propagation-delay",
                "3",
                "--overlap",
                "1",
            ],
            "",
            &[("TWILIO_BROKER_ADDR", &addr)],
        )
    });
    until("the secondary is stored", 20, async || {
        shown(&broker).await.rotation_step == "promoting"
    })
    .await;
    let secondary = standin
        .account(&account)
        .unwrap()
        .secondary_auth_token
        .expect("created at Twilio");
    let options = Options {
        env: twilio_env(&standin),
        ..broker.same_data()
    };
    broker.kill9();
    assert!(
        !rotating.await.unwrap().status.success(),
        "the CLI saw the crash"
    );
    assert_eq!(
        primary_at_twilio(&standin, &account),
        old,
        "not promoted yet"
    );
    let broker = Broker::start(options);
    until("promoted after the restart", 20, async || {
        primary_at_twilio(&standin, &account) == secondary
    })
    .await;
    until("finished", 20, async || {
        let meta = shown(&broker).await;
        meta.rotation_step.is_empty() && !meta.has_secondary_auth_token
    })
    .await;
    assert!(!standin.authenticates(&account, &old));
    let mut client = broker.broker().await;
    assert!(validate(&mut client, sign(&secondary)).await.unwrap());
    assert!(!validate(&mut client, sign(&old)).await.unwrap());
}
