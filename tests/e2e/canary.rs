//! The canary (issue 9): random secrets of every credential kind stored at
//! start, then a broad run through the real daemon (Unix socket, policy,
//! audit file, metrics listener, TRACE logs) over every RPC, failing ones
//! included; then every log line, the audit file, the metrics page and
//! every file in the data directory are scanned for each canary secret and
//! for every bearer and access token issued: zero hits. Tokens may appear
//! only in responses.

use std::path::Path;

use base64::Engine as _;
use hmac::{Hmac, Mac as _};
use tonic::Code;
use twilio_broker_api::v1 as pb;
use twilio_broker_api::v1::admin_client::AdminClient;
use twilio_broker_api::v1::broker_client::BrokerClient;
use twilio_standin::{Client, Config};

use crate::callers::uds_channel;
use crate::harness::{Broker, Fixtures, Options, contains, read_tree};

fn uid() -> u32 {
    let out = std::process::Command::new("id").arg("-u").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn scrape(port: u16) -> String {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut page = String::new();
    stream.read_to_string(&mut page).unwrap();
    page
}

/// Twilio's webhook signature: base64(HMAC-SHA1(auth token, url + sorted name+value)).
fn sign(auth_token: &str, url: &str, params: &[pb::FormParam]) -> String {
    let mut sorted: Vec<_> = params.iter().collect();
    sorted.sort_by(|a, b| (&a.name, &a.value).cmp(&(&b.name, &b.value)));
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(auth_token.as_bytes()).unwrap();
    mac.update(url.as_bytes());
    for p in sorted {
        mac.update(p.name.as_bytes());
        mac.update(p.value.as_bytes());
    }
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Every place a secret could leak to, as (what, bytes).
fn leak_surfaces(broker: &Broker, audit: &Path, page: &str) -> Vec<(String, Vec<u8>)> {
    let mut surfaces = vec![
        ("daemon log".to_owned(), broker.log_text().into_bytes()),
        ("audit file".to_owned(), std::fs::read(audit).unwrap()),
        ("metrics page".to_owned(), page.as_bytes().to_vec()),
    ];
    for (path, bytes) in read_tree(&broker.data_dir) {
        surfaces.push((path.display().to_string(), bytes));
    }
    surfaces
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_canary_secret_or_issued_token_escapes_into_logs_audit_metrics_or_data() {
    // One random canary per credential kind (the test credential gets its own).
    let f = Fixtures::new();
    let g = Fixtures::new();
    let standin = twilio_standin::start(Config {
        token_ttl_seconds: 3600,
        clients: vec![Client {
            client_id: f.client_id.clone(),
            client_secret: f.client_secret.clone(),
            account_sid: f.account_sid.clone(),
        }],
        ..Config::default()
    })
    .await
    .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("broker.sock");
    let audit = dir.path().join("audit.jsonl");
    let policy = dir.path().join("policy.toml");
    std::fs::write(
        &policy,
        format!(
            "[[rule]]\ncallers = [\"uid:{}\"]\nadmin = true\n\n\
             [[rule]]\ncallers = [\"*\"]\neffect = \"deny\"\ncredentials = [\"forbidden-*\"]\n",
            uid()
        ),
    )
    .unwrap();
    let config = dir.path().join("broker.toml");
    std::fs::write(
        &config,
        format!(
            "[oauth]\ntoken_url = \"https://unused.invalid/v2/token\"\ntimeout_seconds = 1.5\n\
             [audit]\nfile = \"{}\"\n",
            audit.display()
        ),
    )
    .unwrap();
    let port = free_port();
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
            "--metrics-listen".into(),
            format!("127.0.0.1:{port}"),
        ],
        env: vec![("TWILIO_BROKER_OAUTH_TOKEN_URL".into(), standin.token_url())],
        dev: false,
        ..Options::default()
    });
    let channel = uds_channel(&socket).await;
    let mut admin = AdminClient::new(channel.clone());
    let mut rpc = BrokerClient::new(channel);

    // Admin: every kind stored, read back, listed; failing calls too.
    for put in [
        f.api_key("key-std", pb::KeyType::Standard),
        f.api_key("key-main", pb::KeyType::Main),
        f.auth_token("auth"),
        f.oauth_client("oauth"),
        g.test("test"),
    ] {
        admin.put_credential(put).await.unwrap();
    }
    for name in ["key-std", "key-main", "auth", "oauth", "test"] {
        admin
            .get_credential(pb::GetCredentialRequest { name: name.into() })
            .await
            .unwrap();
    }
    admin
        .list_credentials(pb::ListCredentialsRequest::default())
        .await
        .unwrap();
    let mut bad = f.api_key("bad name!", pb::KeyType::Standard);
    assert!(admin.put_credential(bad.clone()).await.is_err());
    bad.name = "forbidden-x".into();
    assert_eq!(
        admin.put_credential(bad).await.unwrap_err().code(),
        Code::PermissionDenied
    );
    assert_eq!(
        admin
            .get_credential(pb::GetCredentialRequest {
                name: "nope".into()
            })
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );
    admin
        .reload_policy(pb::ReloadPolicyRequest {})
        .await
        .unwrap();

    // Issued tokens: may appear only in responses.
    let mut tokens = Vec::new();
    for min_ttl in [0, 60, 3000] {
        let bearer = rpc
            .get_bearer(pb::GetBearerRequest {
                credential: "oauth".into(),
                min_ttl_seconds: min_ttl,
            })
            .await
            .unwrap()
            .into_inner();
        tokens.push(bearer.access_token);
    }
    for (name, min_ttl) in [("key-std", 0), ("nope", 0), ("oauth", 999_999)] {
        assert!(
            rpc.get_bearer(pb::GetBearerRequest {
                credential: name.into(),
                min_ttl_seconds: min_ttl,
            })
            .await
            .is_err(),
            "GetBearer {name}"
        );
    }
    for (credential, ttl) in [
        ("key-std", 600),
        ("key-main", 60),
        ("auth", 60),
        ("nope", 60),
    ] {
        let minted = rpc
            .mint_access_token(pb::MintAccessTokenRequest {
                credential: credential.into(),
                identity: "alice".into(),
                ttl_seconds: ttl,
                video: Some(pb::VideoGrant {
                    room: "standup".into(),
                }),
                ..Default::default()
            })
            .await;
        match credential {
            "key-std" | "key-main" => tokens.push(minted.unwrap().into_inner().token),
            _ => assert!(minted.is_err(), "mint with {credential}"),
        }
    }

    // Webhooks: valid, invalid, wrong kind, missing.
    let url = "https://example.com/hook?x=1";
    let params = vec![
        pb::FormParam {
            name: "CallSid".into(),
            value: "CA123".into(),
        },
        pb::FormParam {
            name: "From".into(),
            value: "+15550001".into(),
        },
    ];
    let good = sign(&f.auth_token, url, &params);
    for (credential, signature, valid) in [
        ("auth", good.clone(), Some(true)),
        (
            "auth",
            "AAAAAAAAAAAAAAAAAAAAAAAAAAA=".to_owned(),
            Some(false),
        ),
        ("oauth", good.clone(), None),
        ("nope", good.clone(), None),
    ] {
        let got = rpc
            .validate_webhook(pb::ValidateWebhookRequest {
                credential: credential.into(),
                url: url.into(),
                params: params.clone(),
                signature,
                ..Default::default()
            })
            .await;
        match valid {
            Some(expected) => assert_eq!(got.unwrap().into_inner().valid, expected),
            None => assert!(got.is_err(), "webhook with {credential}"),
        }
    }

    // Recommend, with and without a credential review.
    for credential in ["", "key-main", "auth", "test", "oauth", "nope"] {
        let _ = rpc
            .recommend(pb::RecommendRequest {
                environment: pb::Environment::Production.into(),
                side: pb::Side::Client.into(),
                credential: credential.into(),
                ..Default::default()
            })
            .await;
    }

    // Delete, then a delete that fails.
    admin
        .delete_credential(pb::DeleteCredentialRequest {
            name: "key-main".into(),
        })
        .await
        .unwrap();
    assert!(
        admin
            .delete_credential(pb::DeleteCredentialRequest {
                name: "key-main".into()
            })
            .await
            .is_err()
    );

    let page = scrape(port);
    assert!(page.contains("twilio_broker_requests_total"), "{page}");
    let log = broker.log_text();
    assert!(
        log.contains("TRACE") || log.contains("trace"),
        "logs not at TRACE"
    );
    let mut canaries: Vec<(&str, &str)> = vec![
        ("api key secret", &f.api_secret),
        ("auth token", &f.auth_token),
        ("oauth client secret", &f.client_secret),
        ("test credential token", &g.auth_token),
    ];
    assert!(tokens.len() >= 5);
    let signatures: Vec<String> = tokens
        .iter()
        .map(|t| t.rsplit('.').next().unwrap().to_owned())
        .collect();
    for (token, signature) in tokens.iter().zip(&signatures) {
        canaries.push(("issued token", token));
        canaries.push(("issued token signature", signature));
    }
    let surfaces = leak_surfaces(&broker, &audit, &page);
    assert!(surfaces.len() > 4, "data dir has files");
    let mut hits = Vec::new();
    for (what, bytes) in &surfaces {
        for (kind, canary) in &canaries {
            if contains(bytes, canary) {
                hits.push(format!("{kind} found in {what}"));
            }
        }
    }
    assert!(hits.is_empty(), "leaks: {hits:#?}");
}
