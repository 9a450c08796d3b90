//! Slow upstream and slow audit sink (issue 9): callers with deadlines
//! (`grpc-timeout`) are answered within them (plus a small slack) however
//! long the token endpoint or a non-required audit sink hangs, and the
//! daemon's resident memory (VmRSS) stays bounded over thousands of calls.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tonic::Code;
use twilio_broker_api::v1 as pb;
use twilio_standin::{Client, Config};

use crate::harness::{Broker, Fixtures, Options};

/// Answer time allowed beyond a caller's deadline: a debug build on two
/// cores shared with the rest of the suite (load average 6 seen) answers
/// within 0.1 s when idle, but one scheduling stall must not fail CI.
const SLACK: Duration = Duration::from_millis(1000);
/// Growth of VmRSS allowed between warm-up and the end of a run.
const RSS_GROWTH_KIB: u64 = 24 * 1024;

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS in {status}"))
}

/// Runs `calls` calls of `call`, `in_flight` at a time, each with
/// `deadline`; returns the slowest answer and the codes seen.
async fn hammer<F, Fut>(
    calls: usize,
    in_flight: usize,
    deadline: Duration,
    call: F,
) -> (Duration, Vec<Code>)
where
    F: Fn(Duration) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = (Code, String)> + Send,
{
    let gate = Arc::new(Semaphore::new(in_flight));
    let mut tasks = Vec::with_capacity(calls);
    for _ in 0..calls {
        let permit = Arc::clone(&gate).acquire_owned().await.unwrap();
        let call = call.clone();
        tasks.push(tokio::spawn(async move {
            let started = Instant::now();
            let code = call(deadline).await;
            drop(permit);
            (started.elapsed(), code)
        }));
    }
    let mut slowest = Duration::ZERO;
    let mut codes = Vec::new();
    let mut samples = std::collections::BTreeMap::new();
    for task in tasks {
        let (elapsed, (code, message)) = task.await.unwrap();
        slowest = slowest.max(elapsed);
        codes.push(code);
        samples.entry(format!("{code:?}")).or_insert(message);
    }
    eprintln!("one message per code: {samples:#?}");
    (slowest, codes)
}

fn count(codes: &[Code], code: Code) -> usize {
    codes.iter().filter(|c| **c == code).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_endpoint_slower_than_the_timeout_never_holds_a_caller_past_its_deadline() {
    let f = Fixtures::new();
    let standin = twilio_standin::start(Config {
        clients: vec![Client {
            client_id: f.client_id.clone(),
            client_secret: f.client_secret.clone(),
            account_sid: f.account_sid.clone(),
        }],
        ..Config::default()
    })
    .await
    .unwrap();
    standin.set_delay(Duration::from_secs(5));
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("broker.toml");
    std::fs::write(
        &config,
        "[oauth]\ntoken_url = \"https://unused.invalid/v2/token\"\ntimeout_seconds = 1\n\
         backoff_initial_seconds = 0.3\nbackoff_max_seconds = 1\n",
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
        .put_credential(f.oauth_client("slow"))
        .await
        .unwrap();
    let client = broker.broker().await;
    let call = move |deadline: Duration| {
        let mut client = client.clone();
        async move {
            let mut request = tonic::Request::new(pb::GetBearerRequest {
                credential: "slow".into(),
                min_ttl_seconds: 0,
            });
            request.set_timeout(deadline);
            match client.get_bearer(request).await {
                Ok(_) => (Code::Ok, String::new()),
                Err(status) => (status.code(), status.message().to_owned()),
            }
        }
    };
    let deadline = Duration::from_millis(150);
    let (warm_slowest, _) = hammer(200, 32, deadline, call.clone()).await;
    let warm = rss_kib(broker.pid());
    let (slowest, codes) = hammer(3_000, 64, deadline, call).await;
    let end = rss_kib(broker.pid());
    eprintln!(
        "slow upstream: slowest {:?} (warm-up {warm_slowest:?}), VmRSS {warm} -> {end} KiB, \
         {} deadline exceeded, {} unavailable, {} other",
        slowest,
        count(&codes, Code::DeadlineExceeded) + count(&codes, Code::Cancelled),
        count(&codes, Code::Unavailable),
        codes.len()
            - count(&codes, Code::DeadlineExceeded)
            - count(&codes, Code::Cancelled)
            - count(&codes, Code::Unavailable),
    );
    assert!(
        slowest.max(warm_slowest) <= deadline + SLACK,
        "a call took {slowest:?}"
    );
    assert_eq!(
        count(&codes, Code::Ok),
        0,
        "the endpoint never answers in time"
    );
    // Seen and left open: after about a thousand calls end at their deadline
    // on one HTTP/2 connection, the connection goes down with
    // ENHANCE_YOUR_CALM (h2's local-reset limit, 1024 by default; tonic
    // turns it off on the server, so most likely the client's), and the
    // calls then in flight fail with RESOURCE_EXHAUSTED "h2 protocol error"
    // or UNKNOWN "transport error" -- still within their deadline.
    let connection_lost = count(&codes, Code::ResourceExhausted) + count(&codes, Code::Unknown);
    eprintln!("slow upstream: {connection_lost} calls lost with their connection");
    assert!(
        codes.iter().all(|c| matches!(
            c,
            Code::DeadlineExceeded
                | Code::Cancelled
                | Code::Unavailable
                | Code::ResourceExhausted
                | Code::Unknown
        )),
        "unexpected codes (messages above)"
    );
    assert!(
        end <= warm + RSS_GROWTH_KIB,
        "VmRSS grew {warm} -> {end} KiB"
    );
    // The herd still shares flights: far fewer upstream requests than calls.
    assert!(
        standin.token_requests() < 100,
        "{} upstream requests",
        standin.token_requests()
    );
}
