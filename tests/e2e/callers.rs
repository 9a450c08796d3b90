//! Caller identity and policy end to end: each RPC × (no identity, wrong
//! identity, allowed identity) over a Unix socket and over mutual TLS;
//! policy reload (Admin call and SIGHUP, good and broken); rate limits.

use std::path::{Path, PathBuf};

use tonic::Code;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use twilio_broker_api::v1 as pb;
use twilio_broker_api::v1::admin_client::AdminClient;
use twilio_broker_api::v1::broker_client::BrokerClient;

use crate::harness::{Broker, Options, error_metadata, reason, run_cli, uid};
use crate::pki::Pki;

const ALLOWED: &str = "spiffe://test.example/allowed";
const OTHER: &str = "spiffe://test.example/other";

pub async fn uds_channel(path: &Path) -> Channel {
    let path = path.to_path_buf();
    Endpoint::from_static("http://broker.local")
        .connect_with_connector(tower::service_fn(move |_| {
            let path = path.clone();
            async move {
                let stream = tokio::net::UnixStream::connect(path).await?;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
            }
        }))
        .await
        .unwrap()
}

pub async fn tls_channel(addr: &str, pki: &Pki, client: Option<&(String, String)>) -> Channel {
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(std::fs::read(&pki.ca_cert).unwrap()))
        .domain_name("localhost");
    let endpoint = |tls| {
        Endpoint::from_shared(format!("https://{addr}"))
            .unwrap()
            .tls_config(tls)
            .unwrap()
    };
    match client {
        Some((cert, key)) => endpoint(tls.identity(Identity::from_pem(cert, key)))
            .connect()
            .await
            .unwrap(),
        // Without a certificate the server may refuse the handshake: any
        // failure shows on the first call.
        None => endpoint(tls).connect_lazy(),
    }
}

fn write_policy(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("policy.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Calls every RPC once and returns its status code.
async fn every_rpc(channel: Channel) -> Vec<(&'static str, Code)> {
    let mut broker = BrokerClient::new(channel.clone());
    let mut admin = AdminClient::new(channel);
    let code = |r: Result<(), tonic::Status>| r.err().map_or(Code::Ok, |s| s.code());
    vec![
        (
            "GetBearer",
            code(
                broker
                    .get_bearer(pb::GetBearerRequest {
                        credential: "c".into(),
                        min_ttl_seconds: 0,
                    })
                    .await
                    .map(drop),
            ),
        ),
        (
            "MintAccessToken",
            code(
                broker
                    .mint_access_token(pb::MintAccessTokenRequest {
                        credential: "c".into(),
                        identity: "user-1".into(),
                        video: Some(pb::VideoGrant::default()),
                        ..Default::default()
                    })
                    .await
                    .map(drop),
            ),
        ),
        (
            "Recommend",
            code(
                broker
                    .recommend(pb::RecommendRequest::default())
                    .await
                    .map(drop),
            ),
        ),
        (
            "ValidateWebhook",
            code(
                broker
                    .validate_webhook(pb::ValidateWebhookRequest {
                        credential: "c".into(),
                        ..Default::default()
                    })
                    .await
                    .map(drop),
            ),
        ),
        (
            "GetCredential",
            code(
                admin
                    .get_credential(pb::GetCredentialRequest { name: "c".into() })
                    .await
                    .map(drop),
            ),
        ),
        (
            "ListCredentials",
            code(
                admin
                    .list_credentials(pb::ListCredentialsRequest::default())
                    .await
                    .map(drop),
            ),
        ),
        (
            "DeleteCredential",
            code(
                admin
                    .delete_credential(pb::DeleteCredentialRequest { name: "c".into() })
                    .await
                    .map(drop),
            ),
        ),
        (
            "ReloadPolicy",
            code(
                admin
                    .reload_policy(pb::ReloadPolicyRequest {})
                    .await
                    .map(drop),
            ),
        ),
    ]
}

fn assert_all(results: &[(&str, Code)], expect: &str, context: &str) {
    for (rpc, code) in results {
        let ok = match expect {
            "allowed" => !matches!(code, Code::Unauthenticated | Code::PermissionDenied),
            // The TLS handshake itself fails: no answer of the broker's own.
            "refused" => matches!(code, Code::Unavailable | Code::Cancelled | Code::Unknown),
            "denied" => *code == Code::PermissionDenied,
            "unauthenticated" => *code == Code::Unauthenticated,
            _ => unreachable!(),
        };
        assert!(ok, "{context}: {rpc} answered {code:?}, expected {expect}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn matrix_over_unix_socket_and_mutual_tls() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("broker.sock");
    let allowed_policy = write_policy(
        dir.path(),
        &format!(
            "[[rule]]\ncallers = [\"{ALLOWED}\", \"uid:{}\"]\nadmin = true\n",
            uid()
        ),
    );
    let mut args = pki.serve_args();
    args.extend(["--listen".into(), format!("unix:{}", socket.display())]);
    args.extend(["--policy".into(), allowed_policy.display().to_string()]);
    let broker = Broker::start(Options {
        args,
        dev: false,
        ..Options::default()
    });
    let allowed_cert = pki.client(ALLOWED);
    let other_cert = pki.client(OTHER);

    let mode = std::fs::metadata(&socket).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
        0o660
    );

    let tls_allowed = every_rpc(tls_channel(&broker.addr, &pki, Some(&allowed_cert)).await).await;
    assert_all(&tls_allowed, "allowed", "mTLS allowed identity");
    let tls_other = every_rpc(tls_channel(&broker.addr, &pki, Some(&other_cert)).await).await;
    assert_all(&tls_other, "denied", "mTLS wrong identity");
    // With a client CA, a certificate is required (issue 12).
    let tls_none = every_rpc(tls_channel(&broker.addr, &pki, None).await).await;
    assert_all(&tls_none, "refused", "TLS without a client certificate");
    let uds_allowed = every_rpc(uds_channel(&socket).await).await;
    assert_all(&uds_allowed, "allowed", "Unix socket, allowed uid");

    // The same test uid against a policy that names another uid.
    let dir2 = tempfile::tempdir().unwrap();
    let socket2 = dir2.path().join("b.sock");
    let other_policy = write_policy(
        dir2.path(),
        "[[rule]]\ncallers = [\"uid:4242\"]\nadmin = true\n",
    );
    let broker2 = Broker::start(Options {
        args: vec![
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--listen".into(),
            format!("unix:{}", socket2.display()),
            "--policy".into(),
            other_policy.display().to_string(),
        ],
        dev: false,
        ..Options::default()
    });
    let uds_other = every_rpc(uds_channel(&socket2).await).await;
    assert_all(&uds_other, "denied", "Unix socket, wrong uid");
    let plaintext = every_rpc(broker2.channel().await).await;
    assert_all(&plaintext, "unauthenticated", "plaintext loopback");

    // Denials say what was denied, not the policy's internals.
    let denied = BrokerClient::new(tls_channel(&broker.addr, &pki, Some(&other_cert)).await)
        .get_bearer(pb::GetBearerRequest {
            credential: "prod-oauth".into(),
            min_ttl_seconds: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&denied).as_deref(), Some("DENIED"), "{denied:?}");
    assert!(
        error_metadata(&denied, "caller").is_some_and(|c| c.contains(OTHER)),
        "{denied:?}"
    );
    assert!(
        denied.message().contains(OTHER) && denied.message().contains("prod-oauth"),
        "{}",
        denied.message()
    );
    assert!(
        !denied.message().contains("uid:"),
        "leaks policy internals: {}",
        denied.message()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_reload_by_admin_call_and_sighup_keeps_old_policy_when_broken() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("broker.sock");
    let me = uid();
    let admin_only = format!(
        "[[rule]]\ncallers = [\"uid:{me}\"]\nadmin = true\nrpcs = [\"ReloadPolicy\", \"ListCredentials\"]\n"
    );
    let policy = write_policy(dir.path(), &admin_only);
    let broker = Broker::start(Options {
        args: vec![
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--listen".into(),
            format!("unix:{}", socket.display()),
            "--policy".into(),
            policy.display().to_string(),
        ],
        dev: false,
        ..Options::default()
    });
    let channel = uds_channel(&socket).await;
    let mut broker_api = BrokerClient::new(channel.clone());
    let mut admin = AdminClient::new(channel);
    let recommend = broker_api
        .recommend(pb::RecommendRequest::default())
        .await
        .unwrap_err();
    assert_eq!(recommend.code(), Code::PermissionDenied);

    // Good file through the Admin call.
    std::fs::write(
        &policy,
        format!("{admin_only}\n[[rule]]\ncallers = [\"uid:{me}\"]\nrpcs = [\"Recommend\"]\n"),
    )
    .unwrap();
    let reloaded = admin
        .reload_policy(pb::ReloadPolicyRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reloaded.rules, 2);
    let after = broker_api.recommend(pb::RecommendRequest::default()).await;
    assert!(
        !matches!(
            after.as_ref().map_err(|s| s.code()),
            Err(Code::PermissionDenied)
        ),
        "{after:?}"
    );

    // Broken file: refused with the reason; the old policy stays.
    std::fs::write(
        &policy,
        "[[rule]]\ncallers = [\"x\"]\nrpcs = [\"NoSuchRpc\"]\n",
    )
    .unwrap();
    let broken = admin
        .reload_policy(pb::ReloadPolicyRequest {})
        .await
        .unwrap_err();
    assert_eq!(broken.code(), Code::FailedPrecondition);
    assert_eq!(reason(&broken).as_deref(), Some("POLICY_NOT_RELOADED"));
    // The operator reads which rule is wrong.
    assert!(
        broken.message().contains("NoSuchRpc"),
        "{}",
        broken.message()
    );
    assert!(
        broker_api
            .recommend(pb::RecommendRequest::default())
            .await
            .err()
            .map(|s| s.code())
            != Some(Code::PermissionDenied)
    );

    // SIGHUP with a good file that takes Recommend away again.
    std::fs::write(&policy, &admin_only).unwrap();
    let pid = broker.pid();
    assert!(
        std::process::Command::new("kill")
            .args(["-HUP", &pid.to_string()])
            .status()
            .unwrap()
            .success()
    );
    let mut denied = false;
    for _ in 0..50 {
        if broker_api
            .recommend(pb::RecommendRequest::default())
            .await
            .err()
            .map(|s| s.code())
            == Some(Code::PermissionDenied)
        {
            denied = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(denied, "SIGHUP did not reload the policy");

    // The CLI reload and check.
    let cli = run_cli(
        &["policy", "reload"],
        "",
        &[("TWILIO_BROKER_ADDR", &format!("unix:{}", socket.display()))],
    );
    assert!(
        cli.status.success(),
        "{}",
        String::from_utf8_lossy(&cli.stderr)
    );
    let check = run_cli(&["policy", "check", policy.to_str().unwrap()], "", &[]);
    assert!(String::from_utf8_lossy(&check.stdout).contains("OK, 1 rule"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_answers_resource_exhausted_per_caller() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("broker.sock");
    let policy = write_policy(
        dir.path(),
        &format!(
            "[[rule]]\ncallers = [\"uid:{}\"]\nrpcs = [\"Recommend\"]\nrate_limit = {{ per_second = 1, burst = 3 }}\n",
            uid()
        ),
    );
    let _broker = Broker::start(Options {
        args: vec![
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--listen".into(),
            format!("unix:{}", socket.display()),
            "--policy".into(),
            policy.display().to_string(),
        ],
        dev: false,
        ..Options::default()
    });
    let mut client = BrokerClient::new(uds_channel(&socket).await);
    let mut codes = Vec::new();
    let mut limited = None;
    for _ in 0..6 {
        let err = client
            .recommend(pb::RecommendRequest::default())
            .await
            .err();
        codes.push(err.as_ref().map(|s| s.code()));
        if let Some(status) = err.filter(|s| s.code() == Code::ResourceExhausted) {
            limited = Some(status);
        }
    }
    assert!(codes.contains(&Some(Code::ResourceExhausted)), "{codes:?}");
    assert_ne!(codes[0], Some(Code::ResourceExhausted), "{codes:?}");
    // The client learns why and when to come back, without reading the text.
    let limited = limited.expect("a limited call");
    assert_eq!(
        reason(&limited).as_deref(),
        Some("RATE_LIMITED"),
        "{limited:?}"
    );
    let wait = crate::harness::retry_after(&limited).expect("RetryInfo");
    assert!(wait <= std::time::Duration::from_secs(1), "{wait:?}");
    assert!(
        error_metadata(&limited, "retry_after_seconds").is_some(),
        "{limited:?}"
    );
}
