//! Issue 17 (operations), end to end: systemd's notify protocol, health and
//! a graceful drain on SIGTERM, shell completions and the man page.

use std::time::{Duration, Instant};

use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::harness::{Broker, Options, run_cli};

/// Reads notify datagrams until one contains `needle` (or the time is up).
fn wait_for(socket: &std::os::unix::net::UnixDatagram, needle: &str, seen: &mut Vec<String>) {
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut buf = [0u8; 512];
    while Instant::now() < deadline {
        if let Ok(n) = socket.recv(&mut buf) {
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            let found = text.lines().any(|l| l == needle);
            seen.push(text);
            if found {
                return;
            }
        }
    }
    panic!("no {needle} from the daemon; got {seen:?}");
}

#[test]
fn notify_protocol_ready_watchdog_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify.sock");
    let socket = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut broker = Broker::start(Options {
        env: vec![
            ("NOTIFY_SOCKET".into(), path.display().to_string()),
            ("WATCHDOG_USEC".into(), "400000".into()),
        ],
        ..Options::default()
    });
    let mut seen = Vec::new();
    wait_for(&socket, "READY=1", &mut seen);
    // READY=1 is sent right after the listeners are bound: a call works.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let served = runtime.block_on(async {
        let channel = broker.channel().await;
        health(channel, "").await
    });
    assert_eq!(served, Some(ServingStatus::Serving));
    wait_for(&socket, "WATCHDOG=1", &mut seen);
    let status = broker.terminate();
    wait_for(&socket, "STOPPING=1", &mut seen);
    assert!(status.success(), "{status:?}");
}

async fn health(channel: tonic::transport::Channel, service: &str) -> Option<ServingStatus> {
    HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: service.into(),
        })
        .await
        .ok()
        .map(|r| r.into_inner().status())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_turns_health_not_serving_then_drains_and_exits_zero() {
    let mut broker = Broker::start(Options {
        args: vec!["--shutdown-grace-seconds".into(), "3".into()],
        ..Options::default()
    });
    let channel = broker.channel().await;
    for service in ["", "twilio.broker.v1.Broker", "twilio.broker.v1.Admin"] {
        assert_eq!(
            health(channel.clone(), service).await,
            Some(ServingStatus::Serving)
        );
    }
    let pid = broker.pid().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    // Within the grace period: NOT_SERVING, and calls are still answered.
    let mut not_serving = false;
    for _ in 0..40 {
        if health(channel.clone(), "").await == Some(ServingStatus::NotServing) {
            not_serving = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(not_serving, "health did not turn NOT_SERVING on SIGTERM");
    assert_eq!(
        health(channel.clone(), "twilio.broker.v1.Broker").await,
        Some(ServingStatus::NotServing)
    );
    let mut client = twilio_broker_api::v1::broker_client::BrokerClient::new(channel.clone());
    let answered = client
        .recommend(twilio_broker_api::v1::RecommendRequest::default())
        .await;
    assert_eq!(
        answered.err().map(|s| s.code()),
        Some(tonic::Code::InvalidArgument),
        "a call during the grace period is still answered"
    );
    let status = broker.terminate();
    assert!(status.success(), "{status:?}");
    assert!(broker.log_text().contains("NOT_SERVING"));
}

#[test]
fn completions_and_man_page() {
    let bash = run_cli(&["completions", "bash"], "", &[]);
    assert!(bash.status.success());
    let script = String::from_utf8_lossy(&bash.stdout);
    assert!(
        script.contains("_twilio__broker()") && script.contains("credential"),
        "{script}"
    );
    let zsh = run_cli(&["completions", "zsh"], "", &[]);
    assert!(String::from_utf8_lossy(&zsh.stdout).contains("#compdef twilio-broker"));
    let man = run_cli(&["man"], "", &[]);
    let page = String::from_utf8_lossy(&man.stdout);
    assert!(man.status.success());
    assert!(
        page.contains(".TH twilio-broker 1") && page.contains("serve"),
        "{page}"
    );
}

/// The shipped systemd unit passes `systemd-analyze verify` (with the
/// binary path pointed at the one under test).
#[test]
fn the_systemd_unit_verifies() {
    let Ok(analyze) = which("systemd-analyze") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "systemd-analyze is missing under CI"
        );
        eprintln!("SKIPPED the_systemd_unit_verifies: no systemd-analyze on this machine");
        return;
    };
    let unit = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/twilio-broker.service"),
    )
    .unwrap();
    assert!(unit.contains("Type=notify") && unit.contains("LoadCredential=master.key"));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("twilio-broker.service");
    let local: String = unit
        .replace(
            "/usr/bin/twilio-broker",
            env!("CARGO_BIN_EXE_twilio-broker"),
        )
        .lines()
        // The man page is installed by the package, not here.
        .filter(|l| !l.starts_with("Documentation="))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&path, local).unwrap();
    let out = std::process::Command::new(analyze)
        .args(["verify", path.to_str().unwrap()])
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success() && said.trim().is_empty(), "{said}");
}

fn which(tool: &str) -> Result<std::path::PathBuf, ()> {
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|p| p.join(tool))
                .find(|p| p.is_file())
        })
        .ok_or(())
}

/// The metrics page parses as Prometheus text: every family has HELP,
/// durations are histograms with buckets, build_info names the version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_as_prometheus_text_with_help_and_histograms() {
    let port = crate::harness::free_port();
    let broker = Broker::start(Options {
        args: vec!["--metrics-listen".into(), format!("127.0.0.1:{port}")],
        ..Options::default()
    });
    let mut client = broker.broker().await;
    for _ in 0..3 {
        let _ = client
            .recommend(twilio_broker_api::v1::RecommendRequest::default())
            .await;
    }
    let page = crate::harness::scrape_metrics(port);
    let body = page.split("\r\n\r\n").nth(1).unwrap_or_default();
    let scrape = prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_owned()))).unwrap();
    let names: std::collections::BTreeSet<&str> = scrape
        .samples
        .iter()
        .map(|s| s.metric.as_str())
        .filter(|m| m.starts_with("twilio_broker_"))
        .collect();
    for name in &names {
        let family = name
            .trim_end_matches("_bucket")
            .trim_end_matches("_sum")
            .trim_end_matches("_count");
        assert!(
            scrape.docs.get(family).is_some_and(|help| !help.is_empty()),
            "{family} has no HELP"
        );
    }
    let duration = scrape
        .samples
        .iter()
        .find(|s| {
            s.metric == "twilio_broker_request_duration_seconds"
                && s.labels.get("rpc") == Some("Recommend")
        })
        .expect("request duration of Recommend");
    match &duration.value {
        prometheus_parse::Value::Histogram(buckets) => {
            assert!(buckets.len() >= 10, "{buckets:?}");
            assert_eq!(buckets.last().unwrap().count, 3.0, "{buckets:?}");
        }
        other => panic!("not a histogram: {other:?}"),
    }
    let build = scrape
        .samples
        .iter()
        .find(|s| s.metric == "twilio_broker_build_info")
        .expect("build_info");
    assert_eq!(build.labels.get("version"), Some(env!("CARGO_PKG_VERSION")));
    assert!(matches!(build.value, prometheus_parse::Value::Gauge(v) if v == 1.0));
}
