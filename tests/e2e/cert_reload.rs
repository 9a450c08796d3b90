//! Issue 17: certificates without restarts. A change of the TLS files on
//! disk, or SIGHUP, makes new connections see the new certificate; a broken
//! file keeps the old one serving and the log says why.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

use crate::callers::tls_channel;
use crate::harness::{Broker, Options};
use crate::pki::Pki;

/// The leaf certificate (DER) a new TLS connection to `addr` is shown;
/// either test CA is trusted.
async fn presented(addr: &str, cas: &[&Pki]) -> Vec<u8> {
    let mut roots = rustls::RootCertStore::empty();
    for pki in cas {
        roots
            .add(CertificateDer::from_pem_file(&pki.ca_cert).unwrap())
            .unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let tls = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .expect("TLS handshake");
    tls.get_ref().1.peer_certificates().unwrap()[0]
        .as_ref()
        .to_vec()
}

fn der(path: &Path) -> Vec<u8> {
    CertificateDer::from_pem_file(path)
        .unwrap()
        .as_ref()
        .to_vec()
}

/// Replaces `to` with `from` by rename, as certificate tools do.
fn replace(from: &Path, to: &Path) {
    let tmp = to.with_extension("tmp");
    std::fs::copy(from, &tmp).unwrap();
    std::fs::rename(&tmp, to).unwrap();
}

async fn wait_for_certificate(broker: &Broker, cas: &[&Pki], want: &[u8], why: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while presented(&broker.addr, cas).await != want {
        assert!(
            Instant::now() < deadline,
            "{why}: the new certificate was not served\n{}",
            broker.log_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn healthy_over_tls(broker: &Broker, pki: &Pki) {
    let channel = tls_channel(&broker.addr, pki, None).await;
    HealthClient::new(channel)
        .check(HealthCheckRequest::default())
        .await
        .expect("a call over TLS is served");
}

fn hangup(broker: &Broker) {
    let sent = std::process::Command::new("kill")
        .args(["-HUP", &broker.pid().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_connections_see_a_reloaded_certificate_and_a_broken_file_keeps_the_old_one() {
    let (old, new) = (Pki::new(), Pki::new());
    let dir = tempfile::tempdir().unwrap();
    let cert: PathBuf = dir.path().join("server.pem");
    let key: PathBuf = dir.path().join("server.key");
    std::fs::copy(&old.server_cert, &cert).unwrap();
    std::fs::copy(&old.server_key, &key).unwrap();
    let broker = Broker::start(Options {
        args: vec![
            "--tls-cert".into(),
            cert.display().to_string(),
            "--tls-key".into(),
            key.display().to_string(),
        ],
        ..Options::default()
    });
    let both = [&old, &new];
    assert_eq!(presented(&broker.addr, &both).await, der(&old.server_cert));
    healthy_over_tls(&broker, &old).await;

    // A certificate tool replaces the files: no signal, no restart.
    replace(&new.server_key, &key);
    replace(&new.server_cert, &cert);
    wait_for_certificate(
        &broker,
        &both,
        &der(&new.server_cert),
        "after a file change",
    )
    .await;
    assert_ne!(der(&new.server_cert), der(&old.server_cert));
    healthy_over_tls(&broker, &new).await;

    // A broken key, then SIGHUP: refused, the log names the file, and the
    // certificate that was serving keeps serving.
    std::fs::write(&key, "-----BEGIN PRIVATE KEY-----\nbroken\n").unwrap();
    hangup(&broker);
    let deadline = Instant::now() + Duration::from_secs(15);
    while !broker.log_text().contains("TLS reload refused") {
        assert!(Instant::now() < deadline, "{}", broker.log_text());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let log = broker.log_text();
    let refusal = log
        .lines()
        .find(|l| l.contains("TLS reload refused"))
        .unwrap();
    assert!(
        refusal.contains(&key.display().to_string()),
        "the log says which file: {refusal}"
    );
    assert_eq!(presented(&broker.addr, &both).await, der(&new.server_cert));
    healthy_over_tls(&broker, &new).await;

    // Fixed, and SIGHUP: the old CA's certificate is back.
    std::fs::copy(&old.server_key, &key).unwrap();
    std::fs::copy(&old.server_cert, &cert).unwrap();
    hangup(&broker);
    wait_for_certificate(&broker, &both, &der(&old.server_cert), "after SIGHUP").await;
    healthy_over_tls(&broker, &old).await;
}
