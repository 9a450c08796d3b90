//! Issue 12 (Trust I), end to end against the real daemon: one test per way
//! the security review talked its way around the policy or flooded the
//! broker. Each test failed on the broker before the fix.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rcgen::SanType;
use tonic::Code;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use twilio_broker_api::v1 as pb;
use twilio_broker_api::v1::admin_client::AdminClient;
use twilio_broker_api::v1::broker_client::BrokerClient;

use crate::callers::{tls_channel, uds_channel};
use crate::harness::{Broker, Fixtures, Options, reason, run_cli, uid};
use crate::pki::Pki;

/// A broker with a policy (and optionally a config), a Unix socket and a
/// plaintext loopback listener, plus its audit file.
struct Guarded {
    broker: Broker,
    socket: PathBuf,
    audit: PathBuf,
    dir: tempfile::TempDir,
}

fn start(policy: &str, config: &str, extra: &[String]) -> Guarded {
    start_on(None, policy, config, extra)
}

fn start_on(data: Option<Options>, policy: &str, config: &str, extra: &[String]) -> Guarded {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("broker.sock");
    let audit = dir.path().join("audit.jsonl");
    let policy_path = dir.path().join("policy.toml");
    std::fs::write(&policy_path, policy).unwrap();
    let config_path = dir.path().join("broker.toml");
    std::fs::write(
        &config_path,
        format!("{config}\n[audit]\nfile = \"{}\"\n", audit.display()),
    )
    .unwrap();
    let mut args: Vec<String> = vec![
        "--listen".into(),
        "127.0.0.1:0".into(),
        "--listen".into(),
        format!("unix:{}", socket.display()),
    ];
    args.extend(extra.iter().cloned());
    args.extend([
        "--policy".into(),
        policy_path.display().to_string(),
        "--config".into(),
        config_path.display().to_string(),
    ]);
    let options = data.unwrap_or_default();
    let broker = Broker::start(Options {
        args,
        dev: false,
        ..options
    });
    Guarded {
        broker,
        socket,
        audit,
        dir,
    }
}

fn audit_lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn code<T>(result: Result<T, tonic::Status>) -> Code {
    result.err().map_or(Code::Ok, |s| s.code())
}

/// Item 1: a `playback_json` is a player grant, judged and audited as one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grants_are_judged_on_the_token_that_would_be_signed() {
    let me = uid();
    let g = start(
        &format!(
            r#"version = 2
[[rule]]
callers = ["uid:{me}"]
admin = true

[[rule]]
name = "video only"
callers = ["uid:{me}"]
rpcs = ["MintAccessToken"]
grants = ["video", "voice"]

[[rule]]
name = "never playback"
callers = ["uid:{me}"]
effect = "deny"
grants = ["playback"]
"#
        ),
        "",
        &[],
    );
    let channel = uds_channel(&g.socket).await;
    let fixtures = Fixtures::new();
    AdminClient::new(channel.clone())
        .put_credential(fixtures.api_key("signer", pb::KeyType::Standard))
        .await
        .unwrap();
    let mut broker = BrokerClient::new(channel);
    let video = pb::MintAccessTokenRequest {
        credential: "signer".into(),
        identity: "user-1".into(),
        video: Some(pb::VideoGrant::default()),
        ..Default::default()
    };
    assert_eq!(
        code(broker.mint_access_token(video.clone()).await),
        Code::Ok
    );
    let smuggled = pb::MintAccessTokenRequest {
        playback_json: r#"{"requestCredentials":null,"playbackUrl":"https://x","playerStreamerSid":"VJ0123456789abcdef0123456789abcdef"}"#.into(),
        ..video.clone()
    };
    let denied = broker.mint_access_token(smuggled).await.unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied, "{denied:?}");
    assert!(
        denied.message().contains("playback"),
        "{}",
        denied.message()
    );

    let events = audit_lines(&g.audit);
    let last = events.last().unwrap();
    assert_eq!(last["rpc"], "MintAccessToken");
    assert_eq!(last["decision"], "deny");
    let grants: Vec<&str> = last["grants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g.as_str().unwrap())
        .collect();
    assert_eq!(grants, ["video", "playback"], "{last}");
}

/// Item 2: a certificate named `uid:0` (CN or URI SAN) is refused, never
/// matched against kernel identities; a deny on any certificate name applies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_cannot_pose_as_unix_users_or_anonymous() {
    let pki = Pki::new();
    let me = uid();
    let g = start(
        &format!(
            r#"version = 2
[[rule]]
callers = ["uid:0", "uid:{me}", "anonymous", "spiffe://test.example/*"]
admin = true

[[rule]]
callers = ["dns:revoked.test.example"]
effect = "deny"
"#
        ),
        "",
        &pki.serve_args()[2..],
    );
    // The TLS listener is the harness's first --listen (127.0.0.1:0) with TLS.
    let addr = &g.broker.addr;
    let uri = |u: &str| SanType::URI(u.try_into().unwrap());
    let dns = |d: &str| SanType::DnsName(d.try_into().unwrap());
    for (sans, cn) in [
        (vec![], "uid:0"),
        (vec![uri("uid:0")], "client"),
        (vec![dns("gid:0")], "client"),
        (vec![], "anonymous"),
    ] {
        let cert = pki.client_with(sans.clone(), cn);
        let mut admin = AdminClient::new(tls_channel(addr, &pki, Some(&cert)).await);
        let refused = admin
            .list_credentials(pb::ListCredentialsRequest::default())
            .await
            .unwrap_err();
        assert_eq!(
            refused.code(),
            Code::Unauthenticated,
            "{sans:?} {cn}: {refused:?}"
        );
        assert_eq!(
            reason(&refused).as_deref(),
            Some("CLIENT_CERTIFICATE_REFUSED"),
            "{sans:?} {cn}: {refused:?}"
        );
    }
    let good = pki.client_with(vec![uri("spiffe://test.example/ops")], "ops");
    let mut admin = AdminClient::new(tls_channel(addr, &pki, Some(&good)).await);
    assert_eq!(
        code(
            admin
                .list_credentials(pb::ListCredentialsRequest::default())
                .await
        ),
        Code::Ok
    );
    let revoked = pki.client_with(
        vec![
            uri("spiffe://test.example/ops"),
            dns("revoked.test.example"),
        ],
        "ops",
    );
    let mut admin = AdminClient::new(tls_channel(addr, &pki, Some(&revoked)).await);
    assert_eq!(
        code(
            admin
                .list_credentials(pb::ListCredentialsRequest::default())
                .await
        ),
        Code::PermissionDenied,
        "a deny on any of the certificate's names applies"
    );
}

/// Item 3: a deny `*` covers anonymous callers; with `client_ca`, a client
/// certificate is required, and the opt-out is `anonymous-tls`, which an
/// `anonymous` rule does not match.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_means_one_thing() {
    let policy = r#"version = 2
[[rule]]
name = "local tools"
callers = ["anonymous"]
rpcs = ["Recommend", "GetCredential"]
admin = true

[[rule]]
name = "nobody touches break-glass"
callers = ["*"]
effect = "deny"
credentials = ["break-glass"]
"#;
    let pki = Pki::new();
    let plain = start(policy, "", &[]);
    let mut admin = AdminClient::new(plain.broker.channel().await);
    let get = |name: &str| pb::GetCredentialRequest { name: name.into() };
    assert_eq!(
        code(admin.get_credential(get("ordinary")).await),
        Code::NotFound,
        "anonymous is allowed GetCredential"
    );
    assert_eq!(
        code(admin.get_credential(get("break-glass")).await),
        Code::PermissionDenied,
        "the deny * applies to anonymous callers"
    );

    // TLS with a client CA: no certificate, no connection.
    let required = start(policy, "", &pki.serve_args()[2..]);
    let endpoint = Endpoint::from_shared(format!("https://{}", required.broker.addr))
        .unwrap()
        .tls_config(
            ClientTlsConfig::new()
                .ca_certificate(Certificate::from_pem(std::fs::read(&pki.ca_cert).unwrap()))
                .domain_name("localhost"),
        )
        .unwrap();
    let refused = match endpoint.connect().await {
        Err(_) => Code::Unavailable,
        Ok(channel) => code(
            BrokerClient::new(channel)
                .recommend(pb::RecommendRequest::default())
                .await,
        ),
    };
    // The handshake fails (TLS 1.3 reports it on the first call): a
    // transport error, never an answer of the broker's own.
    assert!(
        matches!(refused, Code::Unavailable | Code::Cancelled | Code::Unknown),
        "a certless client got an answer: {refused:?}"
    );
    assert!(
        audit_lines(&required.audit)
            .iter()
            .all(|line| line.get("rpc").is_none()),
        "a certless client reached the guard"
    );

    // The explicit opt-out: anonymous-tls, not anonymous.
    let mut args = pki.serve_args()[2..].to_vec();
    args.extend(["--tls-client-auth".into(), "optional".into()]);
    let optional = start(policy, "", &args);
    let channel = tls_channel(&optional.broker.addr, &pki, None).await;
    let status = BrokerClient::new(channel)
        .recommend(pb::RecommendRequest::default())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    let events = audit_lines(&optional.audit);
    assert_eq!(events.last().unwrap()["caller"], "anonymous-tls");

    // `policy check --config` flags the anonymous rule beside a TLS listener.
    let config = optional.dir.path().join("tls.toml");
    std::fs::write(
        &config,
        format!(
            "[[listeners]]\naddress = \"127.0.0.1:0\"\ntls = {{ cert = \"{}\", key = \"{}\" }}\n",
            pki.server_cert.display(),
            pki.server_key.display()
        ),
    )
    .unwrap();
    let policy_path = optional.dir.path().join("policy.toml");
    let check = run_cli(
        &[
            "policy",
            "check",
            "--config",
            config.to_str().unwrap(),
            policy_path.to_str().unwrap(),
        ],
        "",
        &[],
    );
    let out = String::from_utf8_lossy(&check.stdout);
    assert!(check.status.success(), "{out}");
    assert!(
        out.contains("warning: local tools") && out.contains("anonymous-tls"),
        "{out}"
    );
}

/// `policy check` shows the migration of a version-1 file: bare
/// certificate names in the new spelling, and the widened deny `*`.
#[test]
fn policy_check_flags_old_semantics_with_the_new_spelling() {
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("old.toml");
    std::fs::write(
        &old,
        "[[rule]]\nname = \"web\"\ncallers = [\"web.acme.internal\"]\nrpcs = [\"GetBearer\"]\n\n\
         [[rule]]\nname = \"freeze\"\ncallers = [\"*\"]\neffect = \"deny\"\ncredentials = [\"x\"]\n",
    )
    .unwrap();
    let check = run_cli(&["policy", "check", old.to_str().unwrap()], "", &[]);
    let out = String::from_utf8_lossy(&check.stdout);
    assert!(check.status.success(), "{out}");
    assert!(out.contains("\"dns:web.acme.internal\""), "{out}");
    assert!(out.contains("warning: freeze"), "{out}");
    let strict = dir.path().join("v2.toml");
    std::fs::write(
        &strict,
        "version = 2\n[[rule]]\ncallers = [\"web.acme.internal\"]\n",
    )
    .unwrap();
    let check = run_cli(&["policy", "check", strict.to_str().unwrap()], "", &[]);
    assert!(!check.status.success());
    assert!(String::from_utf8_lossy(&check.stderr).contains("dns:web.acme.internal"));
}

/// Item 4: a scoped admin lists only its credentials and cannot reload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scoped_admins_see_and_do_only_their_share() {
    // Load both teams' credentials with a dev broker, then restart with a policy.
    let seed = Broker::start(Options::default());
    let fixtures = Fixtures::new();
    let mut admin = seed.admin().await;
    for name in ["team-a-key", "team-b-key"] {
        admin
            .put_credential(fixtures.api_key(name, pb::KeyType::Standard))
            .await
            .unwrap();
    }
    let data = seed.same_data();
    drop(admin);
    let mut seed = seed;
    assert!(seed.terminate().success());
    let g = start_on(
        Some(data),
        &format!(
            "version = 2\n[[rule]]\ncallers = [\"uid:{}\"]\nadmin = true\ncredentials = [\"team-a-*\"]\n",
            uid()
        ),
        "",
        &[],
    );
    let mut admin = AdminClient::new(uds_channel(&g.socket).await);
    let listed: Vec<String> = admin
        .list_credentials(pb::ListCredentialsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .credentials
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(listed, ["team-a-key"]);
    assert_eq!(
        code(admin.reload_policy(pb::ReloadPolicyRequest {}).await),
        Code::PermissionDenied
    );
    assert_eq!(
        code(
            admin
                .get_credential(pb::GetCredentialRequest {
                    name: "team-b-key".into()
                })
                .await
        ),
        Code::PermissionDenied
    );
}

/// A channel from a chosen loopback source address (127.0.0.2 is another
/// source than 127.0.0.1 for the per-source limits).
async fn channel_from(addr: &str, source: &str) -> Channel {
    Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .local_address(Some(source.parse().unwrap()))
        .connect()
        .await
        .unwrap()
}

/// Item 5: every covering limiter is charged whatever the rule order, and
/// refusals are limited per source without limiting another source.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_are_order_free_and_refusals_are_limited_per_source() {
    let me = uid();
    for (first, second) in [("open", "limited"), ("limited", "open")] {
        let rule = |which: &str| {
            match which {
            "open" => format!("[[rule]]\ncallers = [\"uid:{me}\"]\nrpcs = [\"Recommend\"]\n"),
            _ => "[[rule]]\ncallers = [\"uid:*\"]\nrpcs = [\"Recommend\"]\nrate_limit = { per_second = 1, burst = 2 }\n".to_owned(),
        }
        };
        let g = start(
            &format!("version = 2\n{}\n{}", rule(first), rule(second)),
            "",
            &[],
        );
        let mut client = BrokerClient::new(uds_channel(&g.socket).await);
        let mut codes = Vec::new();
        for _ in 0..5 {
            codes.push(code(
                client.recommend(pb::RecommendRequest::default()).await,
            ));
        }
        assert!(
            codes.contains(&Code::ResourceExhausted),
            "order {first}, {second}: {codes:?}"
        );
    }

    let g = start(
        "version = 2\ndenial_rate_limit = { per_second = 1, burst = 5 }\n[[rule]]\ncallers = [\"uid:0\"]\nrpcs = [\"Recommend\"]\n",
        "",
        &[],
    );
    let mut flood = BrokerClient::new(channel_from(&g.broker.addr, "127.0.0.1").await);
    let mut codes = Vec::new();
    let mut reasons = Vec::new();
    for _ in 0..20 {
        let answer = flood.recommend(pb::RecommendRequest::default()).await;
        reasons.push(answer.as_ref().err().and_then(reason));
        codes.push(code(answer));
    }
    assert_eq!(codes[0], Code::Unauthenticated, "{codes:?}");
    assert_eq!(
        reasons[0].as_deref(),
        Some("IDENTITY_REQUIRED"),
        "{reasons:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|r| r.as_deref() == Some("TOO_MANY_REFUSALS")),
        "{reasons:?}"
    );
    assert!(codes.contains(&Code::ResourceExhausted), "{codes:?}");
    let mut other = BrokerClient::new(channel_from(&g.broker.addr, "127.0.0.2").await);
    assert_eq!(
        code(other.recommend(pb::RecommendRequest::default()).await),
        Code::Unauthenticated,
        "another source is not limited by the flood"
    );
}

/// Item 6: huge names are refused before the policy and audited capped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_fields_cannot_amplify_into_the_audit_trail() {
    let g = start("version = 2\n", "", &[]);
    let mut anonymous = BrokerClient::new(g.broker.channel().await);
    let before = std::fs::metadata(&g.audit).map(|m| m.len()).unwrap_or(0);
    let huge = "a".repeat(400 * 1024);
    for _ in 0..3 {
        let status = anonymous
            .mint_access_token(pb::MintAccessTokenRequest {
                credential: huge.clone(),
                identity: huge.clone(),
                video: Some(pb::VideoGrant::default()),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        assert!(status.message().len() < 1024, "the answer echoes the name");
    }
    let grown = std::fs::metadata(&g.audit).unwrap().len() - before;
    assert!(
        grown < 3 * 2048,
        "{grown} bytes of audit for 3 refused calls"
    );
    let events = audit_lines(&g.audit);
    let last = events.last().unwrap();
    let credential = last["credential"].as_str().unwrap();
    assert!(
        credential.ends_with(&format!("[cut: {} bytes]", huge.len())),
        "{credential}"
    );
    // A request over the size limit is refused by the transport, and the
    // daemon keeps serving.
    let over = "b".repeat(2 * 1024 * 1024);
    let status = anonymous
        .recommend(pb::RecommendRequest {
            credential: over,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_ne!(status.code(), Code::Ok);
    let status = anonymous
        .recommend(pb::RecommendRequest::default())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
}

/// Item 7: JSON objects are capped in size and members with a clear
/// INVALID_ARGUMENT naming the field (the review's 60,000-key object).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grant_json_is_capped() {
    let broker = Broker::start(Options::default());
    let fixtures = Fixtures::new();
    broker
        .admin()
        .await
        .put_credential(fixtures.api_key("signer", pb::KeyType::Standard))
        .await
        .unwrap();
    let mut client = broker.broker().await;
    let object = |n: usize| {
        let members: Vec<String> = (0..n).map(|i| format!("\"k{i}\":{i}")).collect();
        format!("{{{}}}", members.join(","))
    };
    let mint = |json: String| pb::MintAccessTokenRequest {
        credential: "signer".into(),
        identity: "user-1".into(),
        voice: Some(pb::VoiceGrant {
            outgoing_application_sid: format!("AP{}", "0".repeat(32)),
            outgoing_application_params_json: json,
            ..Default::default()
        }),
        ..Default::default()
    };
    for (json, needle) in [
        (object(60_000), "limit is 16384"),
        (object(300), "more than 256 members"),
    ] {
        let status = client.mint_access_token(mint(json)).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(
            status
                .message()
                .contains("voice.outgoing_application_params_json")
                && status.message().contains(needle),
            "{}",
            status.message()
        );
    }
    assert_eq!(
        code(client.mint_access_token(mint(object(200))).await),
        Code::Ok
    );
}

/// Opens a raw HTTP/2 connection (no gRPC client) to `addr`.
async fn raw_h2(
    addr: &str,
    source: &str,
) -> Option<(
    h2::client::SendRequest<bytes::Bytes>,
    tokio::task::JoinHandle<Result<(), h2::Error>>,
)> {
    let socket = tokio::net::TcpSocket::new_v4().ok()?;
    socket.bind(format!("{source}:0").parse().unwrap()).ok()?;
    let stream = socket.connect(addr.parse().unwrap()).await.ok()?;
    let (send, mut connection) = h2::client::handshake(stream).await.ok()?;
    let mut ping = connection.ping_pong()?;
    let connection = tokio::spawn(connection);
    // The server's SETTINGS come before its PING ack: once the pong is
    // back, its limits are known to this client.
    tokio::time::timeout(Duration::from_secs(2), ping.ping(h2::Ping::opaque()))
        .await
        .ok()?
        .ok()?;
    Some((send, connection))
}

/// Item 8: the server advertises MAX_CONCURRENT_STREAMS, one source cannot
/// take every connection slot, streams left open on one connection do not
/// stop other callers, and idle connections are closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_and_connection_limits_protect_other_callers() {
    let g = start(
        "version = 2\n[[rule]]\ncallers = [\"anonymous\"]\nrpcs = [\"Recommend\"]\n",
        "[limits]\nmax_connections_per_source = 8\nidle_timeout_seconds = 2\nmax_concurrent_streams = 16\n",
        &[],
    );
    let addr = g.broker.addr.clone();

    // One source fills its slots; further connections from it are closed,
    // another source is served.
    let mut held = Vec::new();
    for _ in 0..8 {
        held.push(raw_h2(&addr, "127.0.0.1").await.expect("within the limit"));
    }
    let (mut first, _) = held.pop().unwrap();
    first = first.ready().await.unwrap();
    // The server's SETTINGS arrived with the handshake's first exchange.
    let request = http::Request::post(format!("http://{addr}/grpc.health.v1.Health/Check"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .unwrap();
    let mut open_streams = Vec::new();
    for _ in 0..16 {
        first = first.ready().await.unwrap();
        let (response, stream) = first.send_request(request.clone(), false).unwrap();
        open_streams.push((response, stream));
    }
    // A complete health check on the same connection cannot open while the
    // server holds 16 streams (MAX_CONCURRENT_STREAMS): no answer comes.
    first = first.ready().await.unwrap();
    let (response, mut body) = first.send_request(request.clone(), false).unwrap();
    body.send_data(bytes::Bytes::from_static(&[0, 0, 0, 0, 0]), true)
        .unwrap();
    let seventeenth = tokio::time::timeout(Duration::from_millis(700), response).await;
    assert!(
        seventeenth.is_err(),
        "the server did not limit concurrent streams"
    );
    let refused = raw_h2(&addr, "127.0.0.1").await;
    let refused_served = match refused {
        None => false,
        Some((send, _)) => tokio::time::timeout(Duration::from_secs(2), send.ready())
            .await
            .is_ok_and(|r| r.is_ok()),
    };
    assert!(
        !refused_served,
        "a 9th connection from one source was served"
    );
    let mut other = BrokerClient::new(channel_from(&addr, "127.0.0.2").await);
    let served = other.recommend(pb::RecommendRequest::default()).await;
    assert_eq!(
        code(served),
        Code::InvalidArgument,
        "another source is served (and told what its request lacks) while the first holds its slots"
    );
    drop(open_streams);

    // Idle connections are closed by the server (idle_timeout_seconds = 2).
    // The client keeps its handle, so only the server can end the connection.
    let (_keep, connection) = held.pop().unwrap();
    let closed = tokio::time::timeout(Duration::from_secs(10), connection).await;
    assert!(closed.is_ok(), "an idle connection stayed open");
}
