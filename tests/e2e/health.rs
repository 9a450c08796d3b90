//! Issue 17: `grpc.health.v1` follows the broker's dependencies. Health turns
//! NOT_SERVING (overall and per service) while a required audit sink cannot
//! record or the storage plugin does not answer, and SERVING again once they
//! recover, with no call needed to notice the recovery.

use std::path::Path;
use std::time::{Duration, Instant};

use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use twilio_broker_api::v1 as pb;

use crate::harness::{Broker, Options};
use crate::plugins::libs::cargo_plugin;

const SERVICES: [&str; 3] = ["", "twilio.broker.v1.Broker", "twilio.broker.v1.Admin"];

fn with_config(dir: &Path, config: &str) -> Options {
    let path = dir.join("broker.toml");
    std::fs::write(&path, config).unwrap();
    Options {
        args: vec!["--config".into(), path.display().to_string()],
        ..Options::default()
    }
}

async fn statuses(channel: &tonic::transport::Channel) -> Vec<ServingStatus> {
    let mut out = Vec::new();
    for service in SERVICES {
        let answer = HealthClient::new(channel.clone())
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .expect("health answers");
        out.push(answer.into_inner().status());
    }
    out
}

/// Waits until every service reports `want` (overall and per service).
async fn wait_until(broker: &Broker, want: ServingStatus, why: &str) {
    let channel = broker.channel().await;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let now = statuses(&channel).await;
        if now.iter().all(|s| *s == want) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{why}: health is {now:?}, expected {want:?}\n{}",
            broker.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_required_audit_plugin_turns_health_not_serving_until_it_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let faults = dir.path().join("faults.json");
    std::fs::write(&faults, "{}").unwrap();
    let config = format!(
        "[[plugins]]\nkind = \"audit\"\npath = {:?}\nrequired = true\nconfig = {{ faults_file = {:?} }}\n",
        cargo_plugin("twilio_broker_test_faulty_audit")
            .display()
            .to_string(),
        faults.display().to_string()
    );
    let broker = Broker::start(with_config(dir.path(), &config));
    wait_until(&broker, ServingStatus::Serving, "at start").await;

    std::fs::write(&faults, r#"{"record": "error", "flush": "error"}"#).unwrap();
    let refused = broker
        .admin()
        .await
        .list_credentials(pb::ListCredentialsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    wait_until(
        &broker,
        ServingStatus::NotServing,
        "after the sink failed to record",
    )
    .await;
    // Still failing a few probes later: it stays NOT_SERVING.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let channel = broker.channel().await;
    assert!(
        statuses(&channel)
            .await
            .iter()
            .all(|s| *s == ServingStatus::NotServing)
    );
    assert!(
        broker.log_text().contains("health is NOT_SERVING"),
        "the log says why"
    );

    // Recovered: SERVING again without any call.
    std::fs::write(&faults, "{}").unwrap();
    wait_until(&broker, ServingStatus::Serving, "after the sink recovered").await;
    broker
        .admin()
        .await
        .list_credentials(pb::ListCredentialsRequest::default())
        .await
        .expect("served once recovered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_storage_plugin_turns_health_not_serving_until_it_answers() {
    let dir = tempfile::tempdir().unwrap();
    let faults = dir.path().join("faults.json");
    std::fs::write(&faults, "{}").unwrap();
    let config = format!(
        "[[plugins]]\nkind = \"storage\"\npath = {:?}\nconfig = {{ faults_file = {:?} }}\n",
        cargo_plugin("twilio_broker_test_faulty_storage")
            .display()
            .to_string(),
        faults.display().to_string()
    );
    let broker = Broker::start(with_config(dir.path(), &config));
    wait_until(&broker, ServingStatus::Serving, "at start").await;

    // The backend goes away: no call is needed for health to notice.
    let down: serde_json::Map<String, serde_json::Value> = [
        "get",
        "put",
        "delete",
        "list",
        "compare_and_swap",
        "wait_for_change",
    ]
    .into_iter()
    .map(|op| (op.to_owned(), "unavailable".into()))
    .collect();
    std::fs::write(&faults, serde_json::Value::Object(down).to_string()).unwrap();
    wait_until(&broker, ServingStatus::NotServing, "with the store down").await;
    assert!(
        broker.log_text().contains("the store is unreachable"),
        "the log says why"
    );

    std::fs::write(&faults, "{}").unwrap();
    wait_until(&broker, ServingStatus::Serving, "with the store back").await;
}

/// A tmpfs mounted for one test (root only); unmounted when dropped.
struct TinyDisk {
    path: std::path::PathBuf,
}

impl TinyDisk {
    /// Mounts a tmpfs of `bytes` at `path`; None where mounting is not allowed.
    fn mount(path: &Path, bytes: usize) -> Option<TinyDisk> {
        std::fs::create_dir_all(path).unwrap();
        let out = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={bytes},mode=0700"),
                "tmpfs",
            ])
            .arg(path)
            .output()
            .ok()?;
        out.status.success().then(|| TinyDisk {
            path: path.to_path_buf(),
        })
    }

    /// Writes a filler file until the disk is full.
    fn fill(&self) {
        use std::io::Write as _;
        let mut filler = std::fs::File::create(self.path.join("filler")).unwrap();
        let block = [0u8; 4096];
        while filler.write_all(&block).is_ok() {}
        let _ = filler.sync_all();
    }

    /// Frees the disk again.
    fn free(&self) {
        std::fs::remove_file(self.path.join("filler")).unwrap();
    }
}

impl Drop for TinyDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.path)
            .status();
    }
}

/// The built-in audit file (not a plugin) on a disk that fills up: the next
/// call is refused UNAVAILABLE `NOT_AUDITED` naming the file and the disk
/// error, health turns NOT_SERVING, and once space is freed health turns
/// SERVING by itself, calls are served, and the chain still verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_under_the_audit_file_turns_health_not_serving_until_freed() {
    let dir = tempfile::tempdir().unwrap();
    let Some(disk) = TinyDisk::mount(&dir.path().join("audit-disk"), 256 * 1024) else {
        assert!(
            std::env::var_os("CI").is_none(),
            "cannot mount a tmpfs under CI (the test runs as root)"
        );
        eprintln!("SKIPPED a_full_disk_under_the_audit_file...: cannot mount a tmpfs here");
        return;
    };
    let audit = disk.path.join("audit.jsonl");
    let key = crate::harness::random_master_key();
    let mut broker = Broker::start(Options {
        master_key: Some(key.clone()),
        args: vec!["--audit-file".into(), audit.display().to_string()],
        ..Options::default()
    });
    wait_until(&broker, ServingStatus::Serving, "at start").await;
    let mut admin = broker.admin().await;
    admin
        .list_credentials(pb::ListCredentialsRequest::default())
        .await
        .expect("served while the disk has room");

    disk.fill();
    // The audit file's last page may still hold a few lines: calls are
    // served until it is full, then refused.
    let mut refused = None;
    for _ in 0..200 {
        if let Err(status) = admin
            .list_credentials(pb::ListCredentialsRequest::default())
            .await
        {
            refused = Some(status);
            break;
        }
    }
    let refused = refused.expect("calls still served with the audit disk full");
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    assert_eq!(
        crate::harness::reason(&refused).as_deref(),
        Some("NOT_AUDITED")
    );
    let message = refused.message();
    assert!(
        message.contains("could not be audited")
            && message.contains("audit.jsonl")
            && message.contains("No space left on device"),
        "the message names the audit file: {message}"
    );
    wait_until(
        &broker,
        ServingStatus::NotServing,
        "with the audit disk full",
    )
    .await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(
        statuses(&broker.channel().await)
            .await
            .iter()
            .all(|s| *s == ServingStatus::NotServing),
        "SERVING again while the disk is still full"
    );

    disk.free();
    wait_until(&broker, ServingStatus::Serving, "after space was freed").await;
    admin
        .list_credentials(pb::ListCredentialsRequest::default())
        .await
        .expect("served once the disk has room again");
    assert!(broker.terminate().success());
    let verified = crate::harness::run_cli(
        &["audit", "verify", &audit.display().to_string()],
        "",
        &[("TWILIO_BROKER_MASTER_KEY", &key)],
    );
    assert!(
        verified.status.success(),
        "the chain broke across the fault: {}",
        String::from_utf8_lossy(&verified.stderr)
    );
}
