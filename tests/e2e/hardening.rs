//! Issue 14 (Trust III) around the process, end to end: the master key
//! leaves the daemon's environment block, the daemon refuses core dumps and
//! ptrace, a key file others may read is refused, and revoked client
//! certificates fail the handshake.

use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};

use tonic::Code;
use twilio_broker_api::v1 as pb;
use twilio_broker_api::v1::admin_client::AdminClient;

use crate::callers::tls_channel;
use crate::harness::{Broker, Fixtures, Options, random_master_key, uid};
use crate::pki::Pki;

/// The uid the daemon runs as in this test: `nobody` when the test runs as
/// root (so that "not dumpable" shows as /proc/PID files owned by root).
const NOBODY: u32 = 65534;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_master_key_leaves_the_environment_and_the_daemon_is_not_dumpable() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let key = random_master_key();
    let run_as = (uid() == 0).then_some(NOBODY);
    let broker = Broker::start(Options {
        data_dir: Some(dir.path().join("data")),
        master_key: Some(key.clone()),
        run_as,
        ..Options::default()
    });
    let pid = broker.pid();

    // The key still works: it was read before it was scrubbed.
    let fixtures = Fixtures::new();
    let mut admin = broker.admin().await;
    admin
        .put_credential(fixtures.api_key("k", pb::KeyType::Standard))
        .await
        .unwrap();

    let environ = std::fs::read(format!("/proc/{pid}/environ"));
    match &environ {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(bytes);
            assert!(
                !text.contains(&key),
                "the master key is in /proc/{pid}/environ"
            );
            assert!(
                !text.contains("TWILIO_BROKER_MASTER_KEY="),
                "the variable is still in the environment block"
            );
            assert!(
                text.contains("RUST_LOG="),
                "read the wrong environment block: {text}"
            );
        }
        // Not root and not dumpable: only root may read it at all.
        Err(err) => assert_eq!(err.kind(), std::io::ErrorKind::PermissionDenied),
    }

    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let core = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .unwrap();
    let fields: Vec<&str> = core.split_whitespace().collect();
    assert_eq!(&fields[4..6], ["0", "0"], "{core}");

    // A non-dumpable process's /proc files belong to root, not to its user.
    let owner = std::fs::metadata(format!("/proc/{pid}/environ"))
        .unwrap()
        .uid();
    let daemon_uid = run_as.unwrap_or_else(uid);
    assert_ne!(daemon_uid, 0, "the daemon must run as a non-root user here");
    assert_eq!(owner, 0, "the daemon (uid {daemon_uid}) is dumpable");
}

#[test]
fn a_master_key_file_others_can_read_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("master.key");
    std::fs::write(&file, random_master_key()).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let env = vec![(
        "TWILIO_BROKER_MASTER_KEY_FILE".to_owned(),
        file.display().to_string(),
    )];
    let failure = Broker::try_start(Options {
        master_key: None,
        env: env.clone(),
        data_dir: Some(dir.path().join("data")),
        ..Options::default()
    })
    .err()
    .expect("a readable key file is refused");
    assert!(
        failure.log.contains("chmod 600") && failure.log.contains("0644"),
        "{}",
        failure.log
    );
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let broker = Broker::start(Options {
        master_key: None,
        env,
        data_dir: Some(dir.path().join("data")),
        ..Options::default()
    });
    drop(broker);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_client_certificates_fail_the_handshake() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.toml");
    std::fs::write(
        &policy,
        "version = 2\n[[rule]]\ncallers = [\"spiffe://test.example/*\"]\nadmin = true\n",
    )
    .unwrap();
    let mut args = pki.serve_args();
    args.extend([
        "--tls-crl".into(),
        pki.crl(&[7]).display().to_string(),
        "--policy".into(),
        policy.display().to_string(),
    ]);
    let broker = Broker::start(Options {
        args,
        dev: false,
        ..Options::default()
    });
    let list = |channel| async move {
        AdminClient::new(channel)
            .list_credentials(pb::ListCredentialsRequest::default())
            .await
            .err()
            .map_or(Code::Ok, |s| s.code())
    };
    let good = pki.client_with_serial("spiffe://test.example/ops", 8);
    assert_eq!(
        list(tls_channel(&broker.addr, &pki, Some(&good)).await).await,
        Code::Ok
    );
    let revoked = pki.client_with_serial("spiffe://test.example/ops", 7);
    let endpoint = tonic::transport::Endpoint::from_shared(format!("https://{}", broker.addr))
        .unwrap()
        .tls_config(
            tonic::transport::ClientTlsConfig::new()
                .ca_certificate(tonic::transport::Certificate::from_pem(
                    std::fs::read(&pki.ca_cert).unwrap(),
                ))
                .domain_name("localhost")
                .identity(tonic::transport::Identity::from_pem(&revoked.0, &revoked.1)),
        )
        .unwrap()
        .connect_lazy();
    let code = list(endpoint).await;
    assert!(
        matches!(code, Code::Unavailable | Code::Cancelled | Code::Unknown),
        "a revoked certificate got an answer: {code:?}"
    );
    // The client may see the reset before the daemon has logged why: wait
    // for the line (up to 5 s) rather than race it.
    let logged = |log: &str| log.contains("TLS handshake failed") && log.contains("Revoked");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !logged(&broker.log_text()) && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let log = broker.log_text();
    assert!(logged(&log), "{log}");
}
