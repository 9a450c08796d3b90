//! Scheduled rotation end to end (issue 18): a key labelled with a short
//! `rotate_every` (allowed by `[rotation] allow_short_schedules`) is rotated
//! by the daemon on its own, audited as the broker's own RotateCredential;
//! `/metrics` shows secret ages and the next rotation; `doctor --broker`
//! notes old secrets.

use std::time::Duration;

use twilio_broker_api::v1 as pb;
use twilio_standin::{Config, KeyType};

use crate::harness::{Broker, Options, free_port, run_cli, scrape_metrics};

fn twilio_env(url: &str) -> Vec<(String, String)> {
    [
        "TWILIO_BROKER_API_BASE",
        "TWILIO_BROKER_IAM_BASE",
        "TWILIO_BROKER_ACCOUNTS_BASE",
    ]
    .into_iter()
    .map(|var| (var.to_owned(), url.to_owned()))
    .collect()
}

fn parse(page: &str) -> prometheus_parse::Scrape {
    let body = page.split("\r\n\r\n").nth(1).unwrap_or_default();
    prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_owned()))).unwrap()
}

fn gauge(scrape: &prometheus_parse::Scrape, name: &str, credential: Option<&str>) -> Option<f64> {
    scrape
        .samples
        .iter()
        .find(|s| {
            s.metric == name && credential.is_none_or(|c| s.labels.get("credential") == Some(c))
        })
        .and_then(|s| match s.value {
            prometheus_parse::Value::Gauge(v) | prometheus_parse::Value::Untyped(v) => Some(v),
            _ => None,
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_with_a_short_schedule_is_rotated_by_the_daemon_on_its_own() {
    let standin = twilio_standin::start(Config::default()).await.unwrap();
    let account = format!("AC{}", twilio_standin::accounts::random_auth_token());
    let token = twilio_standin::accounts::random_auth_token();
    standin.add_account(&account, &token);
    let key = standin.add_key(&account, KeyType::Standard).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("broker.toml");
    std::fs::write(
        &config,
        "[rotation]\nallow_short_schedules = true\nrotate_jitter = \"0s\"\n\n[metrics]\nper_credential = true\n",
    )
    .unwrap();
    let audit = dir.path().join("audit.jsonl");
    let port = free_port();
    let broker = Broker::start(Options {
        env: twilio_env(&standin.url()),
        args: vec![
            "--config".into(),
            config.display().to_string(),
            "--audit-file".into(),
            audit.display().to_string(),
            "--metrics-listen".into(),
            format!("127.0.0.1:{port}"),
        ],
        ..Options::default()
    });
    let mut admin = broker.admin().await;
    admin
        .put_credential(pb::PutCredentialRequest {
            name: "acme-token".into(),
            credential: Some(pb::put_credential_request::Credential::AuthToken(
                pb::AuthTokenCredential {
                    account_sid: account.clone(),
                    auth_token: token.clone(),
                    ..Default::default()
                },
            )),
            ..Default::default()
        })
        .await
        .unwrap();
    admin
        .put_credential(pb::PutCredentialRequest {
            name: "app".into(),
            labels: [("rotate_every".to_owned(), "3s".to_owned())].into(),
            credential: Some(pb::put_credential_request::Credential::ApiKey(
                pb::ApiKeyCredential {
                    account_sid: account.clone(),
                    key_sid: key.sid.clone(),
                    secret: key.secret.clone(),
                    key_type: pb::KeyType::Standard.into(),
                },
            )),
            manager: "acme-token".into(),
        })
        .await
        .unwrap();

    // Before it is due: the metrics show its age and next rotation.
    let scrape = parse(&scrape_metrics(port));
    let next = gauge(
        &scrape,
        "twilio_broker_next_rotation_timestamp_seconds",
        Some("app"),
    )
    .expect("app has a next rotation");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        next > now - 1.0 && next < now + 4.0,
        "next {next} vs now {now}"
    );
    assert!(gauge(&scrape, "twilio_broker_secret_age_seconds", Some("app")).is_some());
    assert!(gauge(&scrape, "twilio_broker_secret_oldest_age_seconds", None).is_some());
    assert_eq!(
        gauge(
            &scrape,
            "twilio_broker_next_rotation_timestamp_seconds",
            Some("acme-token")
        ),
        None,
        "an Auth Token is never scheduled"
    );

    // The daemon rotates it on its own within the schedule (+ its recheck).
    let mut rotated = None;
    for _ in 0..150 {
        let shown = admin
            .get_credential(pb::GetCredentialRequest { name: "app".into() })
            .await
            .unwrap()
            .into_inner()
            .credential
            .unwrap();
        if shown.key_sid != key.sid {
            rotated = Some(shown);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let rotated = rotated.expect("the scheduled rotation happened");
    assert_eq!(
        rotated.previous_key_sid, key.sid,
        "the old key awaits deletion"
    );
    let page = scrape_metrics(port);
    let scrape = parse(&page);
    let ok = scrape
        .samples
        .iter()
        .find(|s| {
            s.metric == "twilio_broker_scheduled_rotations_total"
                && s.labels.get("outcome") == Some("ok")
        })
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v) => v,
            _ => 0.0,
        });
    assert_eq!(ok, Some(1.0), "{page}");
    // Audited as the broker's own step; no secret in audit or log.
    let mut audited = false;
    for _ in 0..50 {
        let text = std::fs::read_to_string(&audit).unwrap_or_default();
        audited = text.lines().any(|l| {
            l.contains("\"phase\":\"background\"")
                && l.contains("\"credential\":\"app\"")
                && l.contains("\"caller\":\"twilio-broker\"")
        });
        if audited {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(audited, "the scheduled rotation is audited");
    let text = std::fs::read_to_string(&audit).unwrap();
    for secret in [&key.secret, &token] {
        assert!(!text.contains(secret.as_str()));
        assert!(!broker.log_text().contains(secret.as_str()));
    }

    // doctor --broker notes secrets older than --max-age.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let out = run_cli(
        &[
            "doctor",
            "--no-env",
            "--broker",
            &broker.addr,
            "--max-age",
            "1s",
            "--json",
        ],
        "",
        &[],
    );
    assert!(
        out.status.success(),
        "notes do not fail doctor: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["id"] == "secret-older-than-max-age")
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"acme-token"), "{report:#}");
    let out = run_cli(
        &["doctor", "--no-env", "--broker", &broker.addr, "--json"],
        "",
        &[],
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["notes"], 0, "nothing is 90 days old: {report:#}");
}
