//! The Rust client crate: its bearer cache asks the broker once for many
//! concurrent and sequential calls, the bearers it hands out pass Twilio's
//! (the stand-in's) check, and the `send_sms` example sends an SMS through
//! the real broker to the stand-in.

use std::path::PathBuf;
use std::process::Command;

use twilio_broker_client::{Client, Error};

use super::{MESSAGES, OAUTH, setup};

const TO: &str = "+15005550006";
const FROM: &str = "+15005550001";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bearer_cache_asks_the_broker_once_for_many_calls() {
    let s = setup().await;
    let client = Client::connect(&s.broker.url).await.unwrap();
    // A cold herd from many tasks, then a steady stream: one broker call.
    let herd: Vec<_> = (0..100)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.bearer(OAUTH).await.unwrap() })
        })
        .collect();
    let mut tokens = Vec::new();
    for task in herd {
        tokens.push(task.await.unwrap().access_token);
    }
    for _ in 0..1000 {
        tokens.push(client.bearer(OAUTH).await.unwrap().access_token);
    }
    assert!(tokens.iter().all(|t| *t == tokens[0]));
    assert_eq!(client.bearer_fetches(), 1);
    assert_eq!(s.standin.token_requests(), 1);

    // Each REST call with a cached bearer passes the stand-in's check.
    let http = reqwest::Client::new();
    let mut sids = Vec::new();
    for i in 0..MESSAGES {
        let bearer = client.bearer(OAUTH).await.unwrap();
        assert_eq!(bearer.account_sid, s.f.account_sid);
        assert!(!format!("{bearer:?}").contains(&bearer.access_token));
        let url = format!(
            "{}/2010-04-01/Accounts/{}/Messages.json",
            s.standin.url(),
            bearer.account_sid
        );
        let response = http
            .post(url)
            .header("Authorization", bearer.authorization())
            .form(&[("To", TO), ("From", FROM), ("Body", &format!("hi {i}"))])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        let reply: serde_json::Value =
            serde_json::from_str(&response.text().await.unwrap()).unwrap();
        sids.push(reply["sid"].as_str().unwrap().to_owned());
    }
    assert_eq!(client.bearer_fetches(), 1);
    s.assert_messages_authorised_by_one_bearer(&sids);

    // Wrong kind and unknown names are matchable errors, not cached.
    let wrong_kind = client.bearer(super::VIDEO).await;
    assert!(
        matches!(wrong_kind, Err(Error::FailedPrecondition(_))),
        "{wrong_kind:?}"
    );
    assert_eq!(
        wrong_kind.as_ref().err().and_then(Error::reason),
        Some("WRONG_CREDENTIAL_KIND")
    );
    let missing = client.bearer("nope").await;
    assert!(matches!(missing, Err(Error::NotFound(_))), "{missing:?}");
    let missing = missing.err().unwrap();
    assert_eq!(missing.reason(), Some("CREDENTIAL_NOT_FOUND"));
    assert_eq!(missing.metadata("credential"), Some("nope"));
    s.assert_clean_logs();
}

/// Builds the example (cargo is idle while tests run) and returns its path.
fn example_binary() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = Command::new(cargo)
        .args([
            "build",
            "--offline",
            "-p",
            "twilio-broker-client",
            "--example",
            "send_sms",
            "--message-format",
            "short",
        ])
        .current_dir(&root)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cannot build the example:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    target.join("debug/examples/send_sms")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_send_sms_example_sends_through_the_broker_and_the_standin() {
    let s = setup().await;
    let binary = example_binary();
    let run = |credential: &str| {
        Command::new(&binary)
            .args([TO, FROM, "hello from the example"])
            .env("TWILIO_BROKER_ADDR", &s.broker.url)
            .env("TWILIO_BROKER_CREDENTIAL", credential)
            .env("TWILIO_API_BASE", s.standin.url())
            .output()
            .unwrap()
    };

    let out = run(OAUTH);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let messages = s.standin.messages();
    assert_eq!(messages.len(), 1);
    assert_eq!(stdout.trim(), format!("sent {} (queued)", messages[0].sid));
    assert_eq!(messages[0].to, TO);
    assert_eq!(messages[0].from, FROM);
    assert_eq!(messages[0].body, "hello from the example");
    assert_eq!(messages[0].account_sid, s.f.account_sid);
    assert_eq!(s.standin.stats().rest_rejected, 0);

    // An unknown credential: the broker's NOT_FOUND, exit 1, nothing sent.
    let out = run("nope");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("broker:") && stderr.contains("nope"),
        "{stderr}"
    );
    assert_eq!(s.standin.messages().len(), 1);

    // No token and no secret in anything the example printed.
    let token_id = &messages[0].token_id;
    for out in [&stdout, &stderr] {
        assert!(!out.contains("eyJ"), "a token was printed: {out}");
        assert!(!out.contains(token_id.as_str()));
        for secret in s.f.secrets() {
            assert!(!out.contains(secret));
        }
    }
    s.assert_clean_logs();
}

/// An OAuth app with a short `access_token_ttl`: the broker refuses the
/// client's `min_ttl` (twice its margin); the client takes what the broker
/// has and caches it for half its life instead of failing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_lived_tokens_still_work_and_are_cached() {
    let s = setup().await;
    s.standin.set_token_ttl_seconds(100);
    let client = Client::connect(&s.broker.url).await.unwrap();
    let first = client.bearer(OAUTH).await.unwrap();
    for _ in 0..100 {
        let again = client.bearer(OAUTH).await.unwrap();
        assert_eq!(again.access_token, first.access_token);
    }
    assert_eq!(
        client.bearer_fetches(),
        2,
        "refused min_ttl, then min_ttl 0"
    );
    assert_eq!(s.standin.tokens_issued(), 1);
    assert!(s.standin.verify(&first.access_token).is_ok());
}

/// Every call has a deadline by default (10 s, as the Python and Node
/// clients), overridable per client: a broker stuck on a slow Twilio does
/// not hang the caller past it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_have_a_default_deadline_that_can_be_overridden() {
    use std::time::{Duration, Instant};
    use twilio_broker_client::{ConnectOptions, DEFAULT_CALL_TIMEOUT};

    assert_eq!(DEFAULT_CALL_TIMEOUT, Duration::from_secs(10));
    assert_eq!(
        ConnectOptions::default().call_timeout,
        Some(DEFAULT_CALL_TIMEOUT)
    );
    let s = setup().await;
    s.standin.set_delay(Duration::from_secs(4));
    let options = ConnectOptions {
        call_timeout: Some(Duration::from_millis(300)),
        ..ConnectOptions::default()
    };
    let client = Client::connect_with(&s.broker.url, options).await.unwrap();
    let started = Instant::now();
    let late = client.bearer(OAUTH).await;
    assert!(matches!(late, Err(Error::DeadlineExceeded(_))), "{late:?}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );

    // The same connection without a deadline waits for the slow answer.
    let patient = client.with_call_timeout(None);
    let bearer = patient.get_bearer(OAUTH, Duration::ZERO).await.unwrap();
    assert_eq!(bearer.account_sid, s.f.account_sid);
}
