//! Issue 17: the metrics an SRE expects. Process metrics, the number of
//! cached bearer tokens and the opt-in, capped per-credential series parse
//! as Prometheus text; the shipped alert rules pass `promtool check rules`;
//! every metric the shipped Grafana dashboard queries is on the page.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use twilio_broker_api::v1 as pb;
use twilio_standin::{Client, Config};

use crate::harness::{Broker, Fixtures, Options, scrape_metrics};

fn deploy(file: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy")
        .join(file)
}

fn parse(page: &str) -> prometheus_parse::Scrape {
    let body = page.split("\r\n\r\n").nth(1).unwrap_or_default();
    prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_owned()))).unwrap()
}

fn gauges<'a>(scrape: &'a prometheus_parse::Scrape, name: &str) -> Vec<(&'a str, f64)> {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name)
        .map(|s| match s.value {
            prometheus_parse::Value::Gauge(v) | prometheus_parse::Value::Untyped(v) => {
                (s.labels.get("credential").unwrap_or(""), v)
            }
            ref other => panic!("{name} is not a gauge: {other:?}"),
        })
        .collect()
}

/// Metric names in a PromQL expression: `twilio_broker_*` and `process_*`.
fn metric_names(expr: &str) -> Vec<String> {
    expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter(|t| t.starts_with("twilio_broker_") || t.starts_with("process_"))
        .map(|t| t.trim_end_matches("_bucket").to_owned())
        .collect()
}

fn exprs(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("expr" | "query", serde_json::Value::String(e)) => out.push(e.clone()),
                    _ => exprs(v, out),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| exprs(v, out)),
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_token_and_capped_per_credential_series_and_the_dashboard_metrics_exist() {
    let f = Fixtures::new();
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
    let config = dir.path().join("broker.toml");
    std::fs::write(
        &config,
        format!(
            "[audit]\nfile = {:?}\n[metrics]\nper_credential = true\nmax_credential_series = 2\n",
            dir.path().join("audit.jsonl").display().to_string()
        ),
    )
    .unwrap();
    let port = crate::harness::free_port();
    let broker = Broker::start(Options {
        args: vec![
            "--config".into(),
            config.display().to_string(),
            "--metrics-listen".into(),
            format!("127.0.0.1:{port}"),
        ],
        env: vec![("TWILIO_BROKER_OAUTH_TOKEN_URL".into(), standin.token_url())],
        ..Options::default()
    });
    let before = SystemTime::now();
    let mut admin = broker.admin().await;
    let mut client = broker.broker().await;
    let mut tokens = Vec::new();
    for name in ["oauth-a", "oauth-b", "oauth-c"] {
        admin.put_credential(f.oauth_client(name)).await.unwrap();
        let bearer = client
            .get_bearer(pb::GetBearerRequest {
                credential: name.into(),
                min_ttl_seconds: 0,
            })
            .await
            .unwrap()
            .into_inner();
        tokens.push(bearer.access_token);
    }
    // A refused call, so the denial family has a series.
    let _ = client
        .get_bearer(pb::GetBearerRequest {
            credential: String::new(),
            min_ttl_seconds: 0,
        })
        .await;

    let page = scrape_metrics(port);
    for secret in f
        .secrets()
        .into_iter()
        .chain(tokens.iter().map(String::as_str))
    {
        assert!(
            !page.contains(secret),
            "a secret or token on the metrics page"
        );
    }
    let scrape = parse(&page);
    for sample in &scrape.samples {
        let family = sample
            .metric
            .trim_end_matches("_sum")
            .trim_end_matches("_count");
        assert!(
            scrape.docs.get(family).is_some_and(|h| !h.is_empty()),
            "{family} has no HELP"
        );
    }
    let one = |name: &str| {
        let found = gauges(&scrape, name);
        assert_eq!(found.len(), 1, "{name}: {found:?}");
        found[0].1
    };
    assert!(one("process_resident_memory_bytes") > 1_000_000.0);
    let open = one("process_open_fds");
    assert!(open >= 3.0 && open <= one("process_max_fds"), "{open}");
    assert_eq!(one("twilio_broker_bearer_tokens_cached"), 3.0);
    assert_eq!(one("twilio_broker_bearer_token_series_omitted"), 1.0);

    let expiring = gauges(&scrape, "twilio_broker_bearer_token_expires_in_seconds");
    assert_eq!(
        expiring.len(),
        2,
        "capped at max_credential_series: {expiring:?}"
    );
    for (credential, left) in &expiring {
        assert!(credential.starts_with("oauth-"), "{credential}");
        // The exp claim is whole seconds: up to one more than the lifetime.
        assert!(*left > 3000.0 && *left <= 3601.0, "{credential}: {left}");
    }
    let refreshed = gauges(
        &scrape,
        "twilio_broker_bearer_token_refreshed_timestamp_seconds",
    );
    assert_eq!(refreshed.len(), 2);
    let since = |t: SystemTime| t.duration_since(UNIX_EPOCH).unwrap().as_secs_f64();
    for (credential, at) in &refreshed {
        assert!(
            *at >= since(before) - 5.0 && *at <= since(SystemTime::now()) + 5.0,
            "{credential}: {at}"
        );
    }

    // Every metric the shipped dashboard queries is on the page.
    let on_page: BTreeSet<&str> = scrape.samples.iter().map(|s| s.metric.as_str()).collect();
    let dashboard: serde_json::Value =
        serde_json::from_slice(&std::fs::read(deploy("grafana-dashboard.json")).unwrap()).unwrap();
    assert!(
        dashboard["panels"]
            .as_array()
            .is_some_and(|p| p.len() >= 10)
    );
    let mut queries = Vec::new();
    exprs(&dashboard, &mut queries);
    let queried: BTreeSet<String> = queries.iter().flat_map(|e| metric_names(e)).collect();
    assert!(queried.len() >= 15, "{queried:?}");
    let missing: Vec<&String> = queried
        .iter()
        .filter(|n| !on_page.contains(n.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "dashboard metrics not exported: {missing:?}\n{page}"
    );
    // And so is every metric the alert rules use.
    let rules = std::fs::read_to_string(deploy("prometheus-alerts.yml")).unwrap();
    let alerted: BTreeSet<String> = metric_names(&rules).into_iter().collect();
    let missing: Vec<&String> = alerted
        .iter()
        .filter(|n| !on_page.contains(n.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "alerted metrics not exported: {missing:?}"
    );
    drop(standin);
}

/// The shipped alert rules pass `promtool check rules` and their unit tests
/// (`promtool test rules`; Debian package `prometheus`, installed by
/// scripts/setup-test-deps).
#[test]
fn the_alert_rules_pass_promtool() {
    let Some(promtool) = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("promtool"))
            .find(|p| p.is_file())
    }) else {
        assert!(
            std::env::var_os("CI").is_none(),
            "promtool is missing under CI (scripts/setup-test-deps installs it)"
        );
        eprintln!("SKIPPED the_alert_rules_pass_promtool: no promtool on this machine");
        return;
    };
    let out = std::process::Command::new(&promtool)
        .args(["check", "rules"])
        .arg(deploy("prometheus-alerts.yml"))
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{said}");
    assert!(said.contains("SUCCESS: 6 rules found"), "{said}");
    // And the alerts fire when they should (and not before): promtool's
    // rule unit tests in deploy/prometheus-alerts.test.yml.
    let out = std::process::Command::new(&promtool)
        .args(["test", "rules", "prometheus-alerts.test.yml"])
        .current_dir(deploy(""))
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success() && said.contains("SUCCESS"), "{said}");
}
