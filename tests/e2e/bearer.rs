//! GetBearer end to end: the real daemon against the twilio-standin token
//! endpoint, real gRPC clients and the CLI. Herds, expiry, refresh ahead,
//! outages, rejections, wrong kinds, deleted and replaced credentials,
//! `min_ttl_seconds`, and no secret or token in any log line or error.

use std::time::{Duration, Instant};

use tonic::Code;
use tonic::transport::Channel;
use twilio_broker_api::v1 as pb;
use twilio_broker_api::v1::broker_client::BrokerClient;
use twilio_standin::{Client, Config, Standin};

use crate::harness::{Broker, Fixtures, Options, error_metadata, reason, retry_after};

const NAME: &str = "oauth";

struct Setup {
    standin: Standin,
    broker: Broker,
    f: Fixtures,
    /// Every token handed out, for the leak scan.
    tokens: Vec<String>,
    _config: tempfile::TempDir,
}

/// A stand-in knowing the fixtures' OAuth client, a broker pointed at it
/// (token URL from the environment, short time-outs from the config file)
/// and the `oauth` credential stored.
async fn setup(token_ttl_seconds: u64) -> Setup {
    let f = Fixtures::new();
    let standin = twilio_standin::start(Config {
        token_ttl_seconds,
        clients: vec![client(&f, &f.client_secret)],
        ..Config::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("broker.toml");
    std::fs::write(
        &config,
        "[oauth]\ntoken_url = \"https://unused.invalid/v2/token\"\ntimeout_seconds = 1.5\n\
         backoff_initial_seconds = 0.5\nbackoff_max_seconds = 2\nrejection_memory_seconds = 30\n",
    )
    .unwrap();
    let broker = Broker::start(Options {
        args: vec!["--config".into(), config.display().to_string()],
        env: vec![("TWILIO_BROKER_OAUTH_TOKEN_URL".into(), standin.token_url())],
        ..Options::default()
    });
    broker
        .admin()
        .await
        .put_credential(f.oauth_client(NAME))
        .await
        .unwrap();
    Setup {
        standin,
        broker,
        f,
        tokens: Vec::new(),
        _config: dir,
    }
}

fn client(f: &Fixtures, secret: &str) -> Client {
    Client {
        client_id: f.client_id.clone(),
        client_secret: secret.to_owned(),
        account_sid: f.account_sid.clone(),
    }
}

fn request(name: &str, min_ttl_seconds: u32) -> pb::GetBearerRequest {
    pb::GetBearerRequest {
        credential: name.into(),
        min_ttl_seconds,
    }
}

impl Setup {
    async fn client(&self) -> BrokerClient<Channel> {
        self.broker.broker().await
    }

    async fn bearer(&mut self, name: &str, min_ttl: u32) -> pb::GetBearerResponse {
        let response = self
            .client()
            .await
            .get_bearer(request(name, min_ttl))
            .await
            .unwrap_or_else(|status| panic!("GetBearer {name}: {status:?}"))
            .into_inner();
        self.tokens.push(response.access_token.clone());
        response
    }

    async fn token(&mut self) -> String {
        self.bearer(NAME, 0).await.access_token
    }

    async fn status(&self, name: &str, min_ttl: u32) -> tonic::Status {
        let status = self
            .client()
            .await
            .get_bearer(request(name, min_ttl))
            .await
            .expect_err("an error status");
        for secret in self.f.secrets() {
            assert!(!status.message().contains(secret), "secret in {status:?}");
        }
        status
    }

    /// No secret and no token in anything the broker logged (at TRACE).
    fn assert_clean_logs(&self) {
        let log = self.broker.log_text();
        assert!(!log.is_empty());
        for secret in self.f.secrets() {
            assert!(!log.contains(secret), "a secret reached the log");
        }
        for token in &self.tokens {
            assert!(!log.contains(token.as_str()), "a token reached the log");
            // Nor its signature alone.
            let signature = token.rsplit('.').next().unwrap();
            assert!(
                !log.contains(signature),
                "a token signature reached the log"
            );
        }
    }
}

/// Polls `check` every 50 ms until it holds or `limit` passes.
async fn eventually(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    check()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_herd_of_cold_calls_makes_one_upstream_request() {
    let mut s = setup(3600).await;
    s.standin.set_delay(Duration::from_millis(300));
    let mut channels = Vec::new();
    for _ in 0..4 {
        channels.push(s.client().await);
    }
    let calls: Vec<_> = (0..400)
        .map(|i| {
            let mut client = channels[i % channels.len()].clone();
            tokio::spawn(async move { client.get_bearer(request(NAME, 0)).await })
        })
        .collect();
    let mut responses = Vec::new();
    for call in calls {
        responses.push(call.await.unwrap().unwrap().into_inner());
    }
    assert_eq!(s.standin.token_requests(), 1, "one upstream request");
    let first = responses[0].clone();
    assert!(
        responses.iter().all(|r| *r == first),
        "everyone got the same token"
    );
    let claims = s.standin.verify(&first.access_token).unwrap();
    assert_eq!(first.token_type, "Bearer");
    assert_eq!(first.account_sid, s.f.account_sid);
    assert_eq!(claims.sub, s.f.account_sid);
    let expires_at = first.expires_at.unwrap();
    assert_eq!(
        expires_at.seconds as u64, claims.exp,
        "expiry is the exp claim"
    );
    s.tokens.push(first.access_token);
    s.assert_clean_logs();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_refreshed_ahead_and_replaced_after_expiry() {
    // 4 s tokens (4-5 s from issue): refreshed from 45-55 % of that on.
    let mut s = setup(4).await;
    let a = s.token().await;
    assert_eq!(s.token().await, a, "cached");
    assert_eq!(s.standin.token_requests(), 1);

    tokio::time::sleep(Duration::from_millis(2900)).await;
    s.standin.set_delay(Duration::from_millis(1000));
    let started = Instant::now();
    assert_eq!(s.token().await, a, "still valid: served while refreshing");
    assert!(
        started.elapsed() < Duration::from_millis(700),
        "a caller with a valid token waited for the refresh"
    );
    let standin = &s.standin;
    assert!(
        eventually(Duration::from_secs(5), || standin.tokens_issued() == 2).await,
        "no refresh ahead of expiry"
    );
    s.standin.set_delay(Duration::ZERO);
    let b = s.bearer(NAME, 0).await;
    assert_ne!(b.access_token, a);

    // Nobody asks until b has expired: the next call fetches c.
    let exp = b.expires_at.unwrap().seconds as u64;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    tokio::time::sleep(Duration::from_secs(exp + 1).saturating_sub(now)).await;
    let c = s.token().await;
    assert_ne!(c, b.access_token);
    assert_eq!(s.standin.stats().tokens_issued, 3);
    s.assert_clean_logs();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_serves_the_cached_token_until_it_expires() {
    let mut s = setup(4).await;
    let a = s.token().await;
    s.standin.set_failure(Some(503));
    tokio::time::sleep(Duration::from_millis(2900)).await;
    assert_eq!(s.token().await, a, "served through the outage");
    let standin = &s.standin;
    assert!(eventually(Duration::from_secs(3), || standin.token_requests() >= 2).await);
    assert_eq!(s.token().await, a);

    // After a has expired (its lifetime is under 5 s): UNAVAILABLE, fast.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let started = Instant::now();
    let status = s.status(NAME, 0).await;
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert_eq!(reason(&status).as_deref(), Some("TWILIO_UNREACHABLE"));
    assert_eq!(error_metadata(&status, "credential").as_deref(), Some(NAME));
    assert!(retry_after(&status).is_some(), "{status:?}");
    assert!(status.message().contains("503"), "{status:?}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );

    // Healed: within the capped backoff (2 s here) a token comes back.
    s.standin.set_failure(None);
    let mut healed = None;
    for _ in 0..40 {
        if let Ok(r) = s.client().await.get_bearer(request(NAME, 0)).await {
            healed = Some(r.into_inner().access_token);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let healed = healed.expect("a token after the outage");
    assert_ne!(healed, a);
    s.tokens.push(healed);
    s.assert_clean_logs();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_with_nothing_cached_is_unavailable_within_the_deadline() {
    let s = setup(3600).await;
    let mut admin = s.broker.admin().await;
    for name in ["slow", "deadline"] {
        admin.put_credential(s.f.oauth_client(name)).await.unwrap();
    }

    s.standin.set_failure(Some(500));
    let started = Instant::now();
    let status = s.status(NAME, 0).await;
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(status.message().contains("HTTP 500"), "{status:?}");
    assert!(started.elapsed() < Duration::from_secs(2));

    // A hung endpoint: bounded by the upstream time-out (1.5 s here).
    s.standin.set_failure(None);
    s.standin.set_delay(Duration::from_secs(30));
    let started = Instant::now();
    let status = s.status("slow", 0).await;
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(
        status.message().contains("did not answer within 1.5 s"),
        "{status:?}"
    );
    let waited = started.elapsed();
    assert!(waited < Duration::from_secs(4), "{waited:?}");

    // The caller's own deadline is shorter still: it is respected.
    let mut call = tonic::Request::new(request("deadline", 0));
    call.set_timeout(Duration::from_millis(300));
    let started = Instant::now();
    let status = s
        .client()
        .await
        .get_bearer(call)
        .await
        .expect_err("deadline");
    assert!(
        matches!(status.code(), Code::Cancelled | Code::DeadlineExceeded),
        "{status:?}"
    );
    assert!(started.elapsed() < Duration::from_millis(1200));
    s.assert_clean_logs();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_secret_is_failed_precondition_and_not_retried() {
    let s = setup(3600).await;
    s.standin.remove_client(&s.f.client_id);
    for _ in 0..5 {
        let status = s.status(NAME, 0).await;
        assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
        let text = status.message();
        assert!(text.contains(&format!("{NAME:?}")), "{text}");
        assert!(
            text.contains("20003") && text.contains("HTTP 401"),
            "{text}"
        );
        assert!(text.contains(&s.f.client_id), "{text}");
    }
    assert_eq!(
        s.standin.token_requests(),
        1,
        "the rejection was remembered"
    );
    s.assert_clean_logs();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_kinds_unknown_names_and_bad_requests_are_refused() {
    let s = setup(3600).await;
    let mut admin = s.broker.admin().await;
    admin
        .put_credential(s.f.api_key("key", pb::KeyType::Standard))
        .await
        .unwrap();
    admin.put_credential(s.f.auth_token("tok")).await.unwrap();
    admin.put_credential(s.f.test("test")).await.unwrap();
    for (name, hint) in [
        ("key", "MintAccessToken"),
        ("tok", "ValidateWebhook"),
        ("test", "magic numbers"),
    ] {
        let status = s.status(name, 0).await;
        assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
        assert_eq!(reason(&status).as_deref(), Some("WRONG_CREDENTIAL_KIND"));
        assert_eq!(error_metadata(&status, "credential").as_deref(), Some(name));
        // The message is for the operator: it says what to store instead.
        assert!(status.message().contains("oauth_client"), "{status:?}");
        assert!(status.message().contains(hint), "{status:?}");
    }
    let status = s.status("no-such-credential", 0).await;
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    assert_eq!(reason(&status).as_deref(), Some("CREDENTIAL_NOT_FOUND"));
    assert_eq!(
        error_metadata(&status, "credential").as_deref(),
        Some("no-such-credential")
    );
    for (name, min_ttl, field) in [("", 0, "credential"), (NAME, 90_000, "min_ttl_seconds")] {
        let status = s.status(name, min_ttl).await;
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        assert_eq!(error_metadata(&status, "field").as_deref(), Some(field));
        assert!(status.message().starts_with(field), "{status:?}");
    }
    assert_eq!(s.standin.token_requests(), 0);
    s.assert_clean_logs();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_or_replacing_a_credential_drops_its_token() {
    let mut s = setup(3600).await;
    let a = s.token().await;
    let mut admin = s.broker.admin().await;
    admin
        .delete_credential(pb::DeleteCredentialRequest { name: NAME.into() })
        .await
        .unwrap();
    assert_eq!(s.status(NAME, 0).await.code(), Code::NotFound);

    // Back with a rotated secret: the old one is no longer accepted.
    let rotated = crate::harness::random_secret("rotated");
    s.standin.add_client(client(&s.f, &rotated));
    let mut put = s.f.oauth_client(NAME);
    if let Some(pb::put_credential_request::Credential::OauthClient(c)) = &mut put.credential {
        c.client_secret = rotated.clone();
    }
    admin.put_credential(put.clone()).await.unwrap();
    let b = s.token().await;
    assert_ne!(a, b);
    assert_eq!(s.standin.token_requests(), 2);

    // Replaced in place (no delete): the next call fetches with the new secret.
    let again = crate::harness::random_secret("again");
    s.standin.add_client(client(&s.f, &again));
    if let Some(pb::put_credential_request::Credential::OauthClient(c)) = &mut put.credential {
        c.client_secret = again.clone();
    }
    admin.put_credential(put).await.unwrap();
    let c = s.token().await;
    assert_ne!(c, b);
    assert_eq!(s.standin.stats().tokens_issued, 3);
    assert_eq!(s.token().await, c, "and caches it");

    let log = s.broker.log_text();
    assert!(!log.contains(&rotated) && !log.contains(&again));
    s.assert_clean_logs();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn min_ttl_forces_a_fresh_token_and_refuses_the_impossible() {
    let mut s = setup(10).await;
    let a = s.token().await;
    // Tokens live 10-11 s (exp is counted from the next whole second).
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        s.bearer(NAME, 5).await.access_token,
        a,
        "7.5+ s left suffices"
    );
    let b = s.bearer(NAME, 9).await.access_token;
    assert_ne!(a, b, "under 9 s left: a fresh token");
    assert_eq!(s.standin.token_requests(), 2);
    let status = s.status(NAME, 20).await;
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert_eq!(reason(&status).as_deref(), Some("MIN_TTL_UNREACHABLE"));
    assert_eq!(error_metadata(&status, "credential").as_deref(), Some(NAME));
    assert_eq!(
        error_metadata(&status, "min_ttl_seconds").as_deref(),
        Some("20")
    );
    assert_eq!(
        s.standin.token_requests(),
        2,
        "no request for the impossible"
    );
    s.assert_clean_logs();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_prints_the_token_or_the_whole_response() {
    let mut s = setup(3600).await;
    let token = s.token().await;

    let out = s.broker.cli(&["token", "bearer", NAME], "");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8(out.stdout).unwrap().trim(), token);

    let out = s
        .broker
        .cli(&["token", "bearer", NAME, "--json", "--min-ttl", "60"], "");
    assert!(out.status.success(), "{out:?}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["access_token"], token.as_str());
    assert_eq!(json["token_type"], "Bearer");
    assert_eq!(json["account_sid"], s.f.account_sid.as_str());
    assert!(json["expires_at"].as_str().unwrap().ends_with('Z'));
    assert!(json["expires_in_seconds"].as_u64().unwrap() > 3500);

    let out = s.broker.cli(&["token", "bearer", "missing"], "");
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("NOT_FOUND") && err.contains("missing"),
        "{err}"
    );
    assert_eq!(s.standin.token_requests(), 1);
    s.assert_clean_logs();
}

/// The metrics page counts cache hits and misses and upstream requests by
/// outcome, and shows no token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_hits_misses_and_upstream_requests() {
    let f = Fixtures::new();
    let standin = twilio_standin::start(Config {
        token_ttl_seconds: 3600,
        clients: vec![client(&f, &f.client_secret)],
        ..Config::default()
    })
    .await
    .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let broker = Broker::start(Options {
        args: vec!["--metrics-listen".into(), format!("127.0.0.1:{port}")],
        env: vec![("TWILIO_BROKER_OAUTH_TOKEN_URL".into(), standin.token_url())],
        ..Options::default()
    });
    broker
        .admin()
        .await
        .put_credential(f.oauth_client(NAME))
        .await
        .unwrap();
    let mut client = BrokerClient::new(broker.channel().await);
    let mut token = String::new();
    for _ in 0..3 {
        token = client
            .get_bearer(request(NAME, 0))
            .await
            .unwrap()
            .into_inner()
            .access_token;
    }
    let page = crate::harness::scrape_metrics(port);
    for needle in [
        "twilio_broker_bearer_cache_hits_total 2",
        "twilio_broker_bearer_cache_misses_total 1",
        "twilio_broker_upstream_requests_total{outcome=\"ok\"} 1",
        "twilio_broker_upstream_seconds",
        "twilio_broker_requests_total{rpc=\"GetBearer\",code=\"OK\"} 3",
    ] {
        assert!(page.contains(needle), "{needle} missing from:\n{page}");
    }
    assert!(!page.contains(&token) && !page.contains(&f.client_secret));
}
