//! The audit trail end to end: events field by field, the hash chain and
//! `audit verify`, rotation on SIGHUP, required sinks that fail or hang
//! (fail closed within the deadline), a non-required sink that drops, and
//! the metrics page.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tonic::Code;
use twilio_broker_api::v1 as pb;
use twilio_broker_api::v1::admin_client::AdminClient;
use twilio_broker_api::v1::broker_client::BrokerClient;

use crate::callers::uds_channel;
use crate::harness::{Broker, Fixtures, Options, free_port, reason, run_cli, uid};

fn lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The answered-call events (not records, not intents).
fn events(path: &Path) -> Vec<serde_json::Value> {
    lines(path)
        .into_iter()
        .filter(|l| l.get("record").is_none() && l.get("phase").is_none())
        .collect()
}

/// Waits until the file's last line is a signed checkpoint.
pub(crate) async fn wait_for_checkpoint(path: &Path) {
    for _ in 0..100 {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text
            .lines()
            .last()
            .is_some_and(|l| l.contains("\"record\":\"checkpoint\""))
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no checkpoint was signed at the end of {}", path.display());
}

pub(crate) fn verify(path: &Path, key: &str) -> std::process::Output {
    run_cli(
        &["audit", "verify", path.to_str().unwrap()],
        "",
        &[("TWILIO_BROKER_MASTER_KEY", key)],
    )
}

struct Audited {
    broker: Broker,
    socket: PathBuf,
    audit: PathBuf,
    _dir: tempfile::TempDir,
}

fn start_audited(top_level: &str, audit_extra: &str, audit_file: Option<PathBuf>) -> Audited {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("broker.sock");
    let audit = audit_file.unwrap_or_else(|| dir.path().join("audit.jsonl"));
    let policy = dir.path().join("policy.toml");
    std::fs::write(
        &policy,
        format!(
            "[[rule]]\ncallers = [\"uid:{}\"]\nadmin = true\n\n[[rule]]\ncallers = [\"*\"]\neffect = \"deny\"\ncredentials = [\"forbidden-*\"]\n",
            uid()
        ),
    )
    .unwrap();
    let config = dir.path().join("broker.toml");
    std::fs::write(
        &config,
        format!(
            "{top_level}\n[audit]\nfile = \"{}\"\n{audit_extra}",
            audit.display()
        ),
    )
    .unwrap();
    let broker = Broker::start(Options {
        args: vec![
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--listen".into(),
            format!("unix:{}", socket.display()),
            "--policy".into(),
            policy.display().to_string(),
            "--config".into(),
            config.display().to_string(),
        ],
        dev: false,
        ..Options::default()
    });
    Audited {
        broker,
        socket,
        audit,
        _dir: dir,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_event_per_rpc_field_by_field_chained_and_verifiable() {
    let f = Fixtures::new();
    let a = start_audited("", "", None);
    let channel = uds_channel(&a.socket).await;
    let mut admin = AdminClient::new(channel.clone());
    let mut broker = BrokerClient::new(channel);
    admin
        .put_credential(f.api_key("prod-key", pb::KeyType::Standard))
        .await
        .unwrap();
    let missing = admin
        .get_credential(pb::GetCredentialRequest {
            name: "nope".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    let denied = admin
        .get_credential(pb::GetCredentialRequest {
            name: "forbidden-key".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    admin
        .list_credentials(pb::ListCredentialsRequest::default())
        .await
        .unwrap();
    let _ = broker.recommend(pb::RecommendRequest::default()).await;
    // Anonymous plaintext caller: denied, and audited too.
    let anonymous = AdminClient::new(a.broker.channel().await)
        .list_credentials(pb::ListCredentialsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(anonymous.code(), Code::Unauthenticated);

    let all = lines(&a.audit);
    assert_eq!(all[0]["record"], "start", "{all:#?}");
    assert_eq!(all[0]["continues"], "genesis");
    // The intent of the mutation comes before the store changed, and before its answer.
    assert_eq!(all[1]["rpc"], "PutCredential");
    assert_eq!(all[1]["phase"], "intent");
    assert_eq!(all[1]["status"], "PENDING");
    assert_eq!(all[2]["rpc"], "PutCredential");
    assert!(all[2].get("phase").is_none());
    let events = events(&a.audit);
    assert_eq!(events.len(), 6, "{events:#?}");
    let me = format!("uid:{}", uid());
    let expect = [
        (
            "PutCredential",
            "allow",
            "OK",
            Some("prod-key"),
            me.as_str(),
            "unix",
        ),
        (
            "GetCredential",
            "allow",
            "NOT_FOUND",
            Some("nope"),
            me.as_str(),
            "unix",
        ),
        (
            "GetCredential",
            "deny",
            "PERMISSION_DENIED",
            Some("forbidden-key"),
            me.as_str(),
            "unix",
        ),
        ("ListCredentials", "allow", "OK", None, me.as_str(), "unix"),
        ("Recommend", "allow", "", None, me.as_str(), "unix"),
        (
            "ListCredentials",
            "deny",
            "UNAUTHENTICATED",
            None,
            "anonymous",
            "plaintext",
        ),
    ];
    for (i, (event, (rpc, decision, status, credential, caller, transport))) in
        events.iter().zip(expect).enumerate()
    {
        assert_eq!(event["seq"], i as u64 + 2);
        assert_eq!(event["rpc"], rpc, "{event}");
        assert_eq!(event["decision"], decision, "{event}");
        if !status.is_empty() {
            assert_eq!(event["status"], status, "{event}");
        }
        assert_eq!(event["credential"].as_str(), credential, "{event}");
        assert_eq!(event["caller"], caller, "{event}");
        assert_eq!(event["transport"], transport, "{event}");
        assert_eq!(event["request_id"].as_str().unwrap().len(), 36, "{event}");
        assert!(event["time"].as_str().unwrap().ends_with('Z'), "{event}");
        assert!(event["duration_us"].is_u64());
        assert_eq!(event["hash"].as_str().unwrap().len(), 64);
    }
    assert_eq!(events[1]["prev"], events[0]["hash"]);
    let text = std::fs::read_to_string(&a.audit).unwrap();
    for secret in f.secrets() {
        assert!(!text.contains(secret), "a secret reached the audit file");
    }
    let mode = std::fs::metadata(&a.audit).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
        0o600
    );

    wait_for_checkpoint(&a.audit).await;
    let text = std::fs::read_to_string(&a.audit).unwrap();
    let key = a.broker.master_key.clone().unwrap();
    let ok = verify(&a.audit, &key);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let out = String::from_utf8_lossy(&ok.stdout).to_string();
    assert!(out.contains("OK, 7 events"), "{out}");
    assert!(out.contains("covered by a checkpoint"), "{out}");

    // Tampering: an edited line, then a removed one.
    let original: Vec<&str> = text.lines().collect();
    let deny_line = original
        .iter()
        .position(|l| l.contains("\"decision\":\"deny\""))
        .unwrap()
        + 1;
    let tampered =
        original
            .join("\n")
            .replacen("\"decision\":\"deny\"", "\"decision\":\"allow\"", 1);
    let copy = a.audit.with_extension("tampered");
    std::fs::write(&copy, tampered + "\n").unwrap();
    let broken = verify(&copy, &key);
    assert!(!broken.status.success());
    assert!(
        String::from_utf8_lossy(&broken.stderr).contains(&format!("BROKEN at line {deny_line}")),
        "{}",
        String::from_utf8_lossy(&broken.stderr)
    );
    let mut removed = original.clone();
    removed.remove(2);
    std::fs::write(&copy, removed.join("\n") + "\n").unwrap();
    let missing = verify(&copy, &key);
    let err = String::from_utf8_lossy(&missing.stderr).to_string();
    assert!(
        !missing.status.success() && err.contains("line 3") && err.contains("missing link"),
        "{err}"
    );
    // Another broker's key did not sign these checkpoints.
    let other_key = crate::harness::random_master_key();
    let foreign = verify(&a.audit, &other_key);
    assert!(!foreign.status.success());
    assert!(
        String::from_utf8_lossy(&foreign.stderr).contains("signature does not verify"),
        "{}",
        String::from_utf8_lossy(&foreign.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reopens_for_rotation_and_the_chain_continues() {
    let a = start_audited("", "", None);
    let mut admin = AdminClient::new(uds_channel(&a.socket).await);
    admin
        .list_credentials(pb::ListCredentialsRequest::default())
        .await
        .unwrap();
    let rotated = a.audit.with_extension("1");
    std::fs::rename(&a.audit, &rotated).unwrap();
    let pid = a.broker.pid().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success()
    );
    let mut reopened = false;
    for _ in 0..50 {
        admin
            .list_credentials(pb::ListCredentialsRequest::default())
            .await
            .unwrap();
        if a.audit.exists() {
            reopened = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(reopened, "no new audit file after SIGHUP");
    let key = a.broker.master_key.clone().unwrap();
    let new = verify(&a.audit, &key);
    assert!(
        new.status.success(),
        "{}",
        String::from_utf8_lossy(&new.stderr)
    );
    assert!(String::from_utf8_lossy(&new.stdout).contains("continues the chain"));
    assert!(verify(&rotated, &key).status.success());
    // The new file begins with a start line continuing the rotated one; in
    // order they verify as one chain, out of order they do not.
    assert_eq!(lines(&a.audit)[0]["record"], "start");
    let both = run_cli(
        &[
            "audit",
            "verify",
            rotated.to_str().unwrap(),
            a.audit.to_str().unwrap(),
        ],
        "",
        &[("TWILIO_BROKER_MASTER_KEY", &key)],
    );
    assert!(
        both.status.success(),
        "{}",
        String::from_utf8_lossy(&both.stderr)
    );
    assert!(String::from_utf8_lossy(&both.stdout).contains("from the genesis"));
    let swapped = run_cli(
        &[
            "audit",
            "verify",
            a.audit.to_str().unwrap(),
            rotated.to_str().unwrap(),
        ],
        "",
        &[("TWILIO_BROKER_MASTER_KEY", &key)],
    );
    assert!(!swapped.status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_required_sink_fails_closed_and_the_daemon_keeps_serving() {
    let a = start_audited("", "", Some(PathBuf::from("/dev/full")));
    let mut admin = AdminClient::new(uds_channel(&a.socket).await);
    let f = Fixtures::new();
    let refused = admin.put_credential(f.auth_token("t")).await.unwrap_err();
    assert_eq!(refused.code(), Code::Unavailable);
    assert_eq!(
        reason(&refused).as_deref(),
        Some("NOT_AUDITED"),
        "{refused:?}"
    );
    let health = tonic_health::pb::health_client::HealthClient::new(a.broker.channel().await)
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await;
    assert!(health.is_ok(), "the daemon stopped serving");
}

fn mkfifo(path: &Path) {
    assert!(
        std::process::Command::new("mkfifo")
            .arg(path)
            .status()
            .unwrap()
            .success()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_required_sink_fails_requests_within_the_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("audit.fifo");
    mkfifo(&fifo);
    // Nobody reads the pipe: once its buffer is full, every write hangs.
    let a = start_audited("", "deadline_ms = 300\n", Some(fifo));
    let mut admin = AdminClient::new(uds_channel(&a.socket).await);
    let mut unavailable = 0;
    for _ in 0..400 {
        let started = Instant::now();
        let result = admin
            .list_credentials(pb::ListCredentialsRequest::default())
            .await;
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "a request stalled past its deadline"
        );
        if let Err(status) = result {
            assert_eq!(status.code(), Code::Unavailable);
            assert!(
                status.message().contains("did not record within 300 ms"),
                "{}",
                status.message()
            );
            unavailable += 1;
            if unavailable >= 3 {
                break;
            }
        }
    }
    assert!(unavailable >= 3, "the hung sink never failed a request");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_optional_sink_drops_and_counts_but_never_blocks_and_metrics_show_it() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("audit.fifo");
    mkfifo(&fifo);
    let port = free_port();
    let a = start_audited(
        &format!("metrics_listen = \"127.0.0.1:{port}\""),
        "required = false\nqueue = 16\n",
        Some(fifo),
    );
    let f = Fixtures::new();
    let mut admin = AdminClient::new(uds_channel(&a.socket).await);
    admin.put_credential(f.oauth_client("o")).await.unwrap();
    let started = Instant::now();
    for _ in 0..600 {
        admin
            .list_credentials(pb::ListCredentialsRequest::default())
            .await
            .unwrap();
    }
    assert!(started.elapsed() < Duration::from_secs(30));
    let _ = admin
        .get_credential(pb::GetCredentialRequest {
            name: "forbidden-x".into(),
        })
        .await;

    let page = crate::harness::scrape_metrics(port);
    let dropped: f64 = page
        .lines()
        .find(|l| l.starts_with("twilio_broker_audit_dropped_total"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no drop counter in:\n{page}"));
    assert!(dropped > 0.0, "{page}");
    assert!(
        page.contains("twilio_broker_requests_total{rpc=\"ListCredentials\",code=\"OK\"} 600"),
        "{page}"
    );
    assert!(
        page.contains("twilio_broker_policy_denials_total{rpc=\"GetCredential\"} 1"),
        "{page}"
    );
    for secret in f.secrets() {
        assert!(!page.contains(secret));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mint_is_audited_with_jti_expiry_grants_and_identity_but_never_the_token() {
    let f = Fixtures::new();
    let a = start_audited("", "", None);
    let channel = uds_channel(&a.socket).await;
    AdminClient::new(channel.clone())
        .put_credential(f.api_key("web-key", pb::KeyType::Standard))
        .await
        .unwrap();
    let minted = BrokerClient::new(channel)
        .mint_access_token(pb::MintAccessTokenRequest {
            credential: "web-key".into(),
            identity: "alice".into(),
            ttl_seconds: 600,
            video: Some(pb::VideoGrant {
                room: "standup".into(),
            }),
            voice: Some(pb::VoiceGrant {
                incoming_allow: true,
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let events = lines(&a.audit);
    let event = events
        .iter()
        .find(|e| e["rpc"] == "MintAccessToken")
        .unwrap();
    assert_eq!(event["jti"], minted.jti.as_str());
    assert_eq!(event["identity"], "alice");
    assert_eq!(event["ttl_seconds"], 600);
    assert_eq!(event["grants"], serde_json::json!(["voice", "video"]));
    assert_eq!(event["credential"], "web-key");
    let expires = event["expires_at"].as_str().unwrap();
    assert!(
        expires.starts_with(&minted.expires_at.unwrap().to_string()[..16]),
        "{expires}"
    );
    let text = std::fs::read_to_string(&a.audit).unwrap();
    assert!(
        !text.contains(&minted.token),
        "a token reached the audit file"
    );
    let signature = minted.token.rsplit('.').next().unwrap();
    assert!(!text.contains(signature));
    assert!(!text.contains(&f.api_secret));
}
