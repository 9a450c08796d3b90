//! The Prometheus exposition: one catalogue of every metric with its HELP
//! text, real histograms (with buckets) for durations, and `build_info`;
//! and, computed at scrape time, process metrics (`process.rs`), the number
//! of cached bearer tokens and, opt-in (`[metrics] per_credential`), each
//! cached token's expiry and last refresh.
//!
//! **Invariant:** no label or value carries a secret or a token; labels are
//! RPC names, status codes, outcomes, sink names, master key ids (public
//! fingerprints) and (opt-in) credential names. Per-credential series are capped (`max_credential_series`) and
//! computed per scrape, so a deleted credential's series goes away with it.

mod process;
mod requests;

pub(crate) use requests::call;

use std::convert::Infallible;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::bearer::Bearers;

/// `[metrics]` in the config file.
#[derive(Debug, Clone, Copy, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Export, per credential holding a cached token, the seconds until it
    /// expires and the time of its last refresh. Off by default: a store may
    /// hold 100,000 credentials.
    #[serde(default)]
    pub per_credential: bool,
    /// Most credentials with per-credential series (the soonest to expire
    /// first); the rest are counted in
    /// `twilio_broker_bearer_token_series_omitted`.
    #[serde(default = "default_max_credential_series")]
    pub max_credential_series: usize,
}

fn default_max_credential_series() -> usize {
    100
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            per_credential: false,
            max_credential_series: default_max_credential_series(),
        }
    }
}

/// The installed recorder and the bound `/metrics` listener, served once the
/// bearer cache exists ([`Exporter::serve`]).
pub struct Exporter {
    handle: PrometheusHandle,
    listener: tokio::net::TcpListener,
    /// Secret ages and scheduled rotations (issue 18), when wired.
    ages: Option<crate::rotation::Ages>,
}

/// Installs the recorder and binds `addr` (errors at start-up, before the
/// daemon says it is ready); nothing is served until [`Exporter::serve`].
pub async fn install(addr: SocketAddr) -> anyhow::Result<Exporter> {
    let recorder = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &SECONDS_BUCKETS)
        .context("histogram buckets")?
        .build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder).context("a metrics recorder is already installed")?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot serve metrics on {addr}"))?;
    describe();
    Ok(Exporter {
        handle,
        listener,
        ages: None,
    })
}

impl Exporter {
    /// The same exporter, also showing the stored secrets' ages and their
    /// next scheduled rotations (computed per scrape).
    pub fn with_ages(mut self, ages: crate::rotation::Ages) -> Self {
        self.ages = Some(ages);
        self
    }

    /// Serves the exposition on every path of the listener (HTTP/1.1 and 2).
    pub fn serve(self, bearers: Bearers, config: MetricsConfig) -> tokio::task::JoinHandle<()> {
        let scrape = Arc::new(Scrape {
            handle: self.handle.clone(),
            bearers,
            config,
            ages: self.ages,
        });
        let handle = self.handle;
        let listener = self.listener;
        // The recorder's upkeep (histogram maintenance) between scrapes.
        tokio::spawn(async move {
            let mut every = tokio::time::interval(std::time::Duration::from_secs(5));
            loop {
                every.tick().await;
                handle.run_upkeep();
            }
        });
        tokio::spawn(async move {
            loop {
                let stream = match listener.accept().await {
                    Ok((stream, _)) => stream,
                    Err(err) => {
                        tracing::warn!(%err, "metrics accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let scrape = Arc::clone(&scrape);
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |_request| {
                        let body = scrape.render();
                        async move {
                            let mut response = hyper::Response::new(http_body_util::Full::new(
                                bytes::Bytes::from(body),
                            ));
                            response.headers_mut().insert(
                                hyper::header::CONTENT_TYPE,
                                hyper::header::HeaderValue::from_static(
                                    "text/plain; version=0.0.4",
                                ),
                            );
                            Ok::<_, Infallible>(response)
                        }
                    });
                    let served = hyper_util::server::conn::auto::Builder::new(
                        hyper_util::rt::TokioExecutor::new(),
                    )
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
                    if let Err(err) = served {
                        tracing::debug!(%err, "metrics connection ended");
                    }
                });
            }
        })
    }
}

/// What one scrape reads.
struct Scrape {
    handle: PrometheusHandle,
    bearers: Bearers,
    config: MetricsConfig,
    ages: Option<crate::rotation::Ages>,
}

impl Scrape {
    fn render(&self) -> String {
        let mut out = self.handle.render();
        process::render(&mut out);
        self.render_tokens(&mut out, SystemTime::now());
        if let Some(ages) = &self.ages {
            render_ages(
                &mut out,
                &ages.at(SystemTime::now()),
                ages.warn_age(),
                self.config,
            );
        }
        out
    }

    fn render_tokens(&self, out: &mut String, now: SystemTime) {
        let times = self.bearers.token_times();
        gauge_header(
            out,
            "twilio_broker_bearer_tokens_cached",
            "Bearer tokens held in the cache now.",
        );
        let _ = writeln!(out, "twilio_broker_bearer_tokens_cached {}", times.len());
        if !self.config.per_credential {
            return;
        }
        let shown = &times[..times.len().min(self.config.max_credential_series)];
        gauge_header(
            out,
            "twilio_broker_bearer_token_expires_in_seconds",
            "Seconds until the cached bearer token of a credential expires (soonest first, capped by max_credential_series).",
        );
        for t in shown {
            let left = match t.expires_at.duration_since(now) {
                Ok(left) => left.as_secs_f64(),
                Err(past) => -past.duration().as_secs_f64(),
            };
            let _ = writeln!(
                out,
                "twilio_broker_bearer_token_expires_in_seconds{{credential=\"{}\"}} {left}",
                escape(&t.credential)
            );
        }
        gauge_header(
            out,
            "twilio_broker_bearer_token_refreshed_timestamp_seconds",
            "Unix time at which a credential's cached bearer token was received (its last refresh).",
        );
        for t in shown {
            let at = t
                .received_at
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0);
            let _ = writeln!(
                out,
                "twilio_broker_bearer_token_refreshed_timestamp_seconds{{credential=\"{}\"}} {at}",
                escape(&t.credential)
            );
        }
        gauge_header(
            out,
            "twilio_broker_bearer_token_series_omitted",
            "Credentials with a cached token left out of the per-credential series by max_credential_series.",
        );
        let _ = writeln!(
            out,
            "twilio_broker_bearer_token_series_omitted {}",
            times.len() - shown.len()
        );
    }
}

/// Secret ages (`ages` oldest first): the oldest and how many are past
/// `warn_age` always; opt-in and capped like the token series, each
/// credential's age and next scheduled rotation.
fn render_ages(
    out: &mut String,
    ages: &[crate::rotation::Age],
    warn_age: std::time::Duration,
    config: MetricsConfig,
) {
    gauge_header(
        out,
        "twilio_broker_secret_oldest_age_seconds",
        "Seconds since the oldest stored secret was put or rotated.",
    );
    let oldest = ages.first().map_or(0.0, |a| a.age.as_secs_f64());
    let _ = writeln!(out, "twilio_broker_secret_oldest_age_seconds {oldest}");
    gauge_header(
        out,
        "twilio_broker_secrets_over_warn_age",
        "Stored secrets older than [rotation] warn_age (Recommend's review warns about them).",
    );
    let old = ages.iter().filter(|a| a.age > warn_age).count();
    let _ = writeln!(out, "twilio_broker_secrets_over_warn_age {old}");
    if !config.per_credential {
        return;
    }
    let shown = &ages[..ages.len().min(config.max_credential_series)];
    gauge_header(
        out,
        "twilio_broker_secret_age_seconds",
        "Seconds since a credential's secret was put or rotated (oldest first, capped by max_credential_series).",
    );
    for a in shown {
        let _ = writeln!(
            out,
            "twilio_broker_secret_age_seconds{{credential=\"{}\"}} {}",
            escape(&a.credential),
            a.age.as_secs_f64()
        );
    }
    gauge_header(
        out,
        "twilio_broker_next_rotation_timestamp_seconds",
        "Unix time at which a credential's next scheduled rotation is due (scheduled credentials among the shown ones).",
    );
    for a in shown {
        if let Some(at) = a.next_rotation {
            let at = at
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0);
            let _ = writeln!(
                out,
                "twilio_broker_next_rotation_timestamp_seconds{{credential=\"{}\"}} {at}",
                escape(&a.credential)
            );
        }
    }
    gauge_header(
        out,
        "twilio_broker_secret_age_series_omitted",
        "Credentials left out of the per-credential age series by max_credential_series.",
    );
    let _ = writeln!(
        out,
        "twilio_broker_secret_age_series_omitted {}",
        ages.len() - shown.len()
    );
}

fn gauge_header(out: &mut String, name: &str, help: &str) {
    let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n");
}

/// A label value in the text format: backslash, quote and newline escaped.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Bucket bounds for every `*_seconds` histogram: 100 µs to 10 s.
const SECONDS_BUCKETS: [f64; 15] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    10.0,
];

/// HELP text for every metric the daemon exports, and `build_info`.
fn describe() {
    describe_counter!(
        "twilio_broker_requests_total",
        "RPCs answered, by RPC and gRPC status code."
    );
    describe_histogram!(
        "twilio_broker_request_duration_seconds",
        Unit::Seconds,
        "Time to answer an RPC (policy, handler and audit), by RPC and status code."
    );
    describe_counter!(
        "twilio_broker_policy_denials_total",
        "Calls refused before their handler ran (policy, identity or invalid input), by RPC."
    );
    describe_counter!(
        "twilio_broker_audit_failures_total",
        "Calls refused because a required audit sink could not record them."
    );
    describe_counter!(
        "twilio_broker_audit_dropped_total",
        "Audit events a non-required sink dropped on a full queue, by sink."
    );
    describe_counter!(
        "twilio_broker_bearer_cache_hits_total",
        "GetBearer calls answered from the token cache."
    );
    describe_counter!(
        "twilio_broker_bearer_cache_misses_total",
        "GetBearer calls that waited for a token from Twilio."
    );
    describe_counter!(
        "twilio_broker_upstream_requests_total",
        "Token requests to Twilio's OAuth endpoint, by outcome (ok, rejected, unavailable)."
    );
    describe_histogram!(
        "twilio_broker_upstream_seconds",
        Unit::Seconds,
        "Duration of token requests to Twilio's OAuth endpoint."
    );
    describe_gauge!(
        "twilio_broker_connections_open",
        "Client connections open now, across listeners."
    );
    describe_counter!(
        "twilio_broker_connections_refused_total",
        "Connections closed at accept by a connection limit, by limit."
    );
    describe_counter!(
        "twilio_broker_tls_reloads_total",
        "TLS certificate reloads (SIGHUP or a file change), by outcome (ok, refused: the old certificate keeps serving)."
    );
    describe_gauge!(
        "twilio_broker_serving",
        "1 while grpc.health.v1 says SERVING; 0 while a required audit sink or the store fails, and from the start of a drain."
    );
    describe_counter!(
        "twilio_broker_scheduled_rotations_total",
        "Rotations the broker started on a schedule (rotate_every), by outcome (ok, failed: retried with back-off)."
    );
    for outcome in ["ok", "failed"] {
        metrics::counter!("twilio_broker_scheduled_rotations_total", "outcome" => outcome)
            .increment(0);
    }
    describe_gauge!(
        "twilio_broker_keyring_records",
        "Records sealed under each master key of the keyring, by key id (a public fingerprint), as the last re-seal pass counted them (the state file included)."
    );
    describe_gauge!(
        "twilio_broker_keyring_reseal_remaining",
        "Records not yet re-sealed under the keyring's newest key; 0 once an older key may be retired."
    );
    describe_gauge!(
        "twilio_broker_keyring_unreadable_records",
        "Records the re-seal task cannot open (never re-sealed; they keep `keyring retire` refusing)."
    );
    describe_counter!(
        "twilio_broker_keyring_resealed_total",
        "Records re-sealed under the keyring's newest key since start-up."
    );
    describe_gauge!(
        "twilio_broker_build_info",
        "Always 1; the labels say which build is running."
    );
    // Counters that alerts take `increase()` of exist from the start at 0,
    // so their first event is an increase and dashboards show 0, not "no data".
    metrics::counter!("twilio_broker_audit_failures_total").increment(0);
    metrics::counter!("twilio_broker_bearer_cache_hits_total").increment(0);
    metrics::counter!("twilio_broker_bearer_cache_misses_total").increment(0);
    metrics::counter!("twilio_broker_keyring_resealed_total").increment(0);
    for outcome in ["ok", "rejected", "unavailable"] {
        metrics::counter!("twilio_broker_upstream_requests_total", "outcome" => outcome)
            .increment(0);
    }
    for outcome in ["ok", "refused"] {
        metrics::counter!("twilio_broker_tls_reloads_total", "outcome" => outcome).increment(0);
    }
    for reason in ["max_connections", "max_connections_per_source"] {
        metrics::counter!("twilio_broker_connections_refused_total", "reason" => reason)
            .increment(0);
    }
    metrics::gauge!("twilio_broker_connections_open").increment(0.0);
    metrics::gauge!(
        "twilio_broker_build_info",
        "version" => env!("CARGO_PKG_VERSION"),
        "commit" => option_env!("TWILIO_BROKER_COMMIT").unwrap_or("unknown"),
    )
    .set(1.0);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    #[test]
    fn secret_ages_parse_as_prometheus_text_and_per_credential_series_are_capped() {
        use std::time::{Duration, SystemTime};
        let due = SystemTime::UNIX_EPOCH + Duration::from_secs(2_000_000_000);
        let ages: Vec<crate::rotation::Age> = (0..3)
            .map(|i| crate::rotation::Age {
                credential: format!("key-{i}"),
                age: Duration::from_secs(100 * 86_400 - i * 86_400 * 20),
                next_rotation: (i == 0).then_some(due),
            })
            .collect();
        let warn = Duration::from_secs(90 * 86_400);
        let parse = |text: &str| {
            prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap()
        };
        let value = |scrape: &prometheus_parse::Scrape, name: &str, credential: Option<&str>| {
            scrape
                .samples
                .iter()
                .find(|s| {
                    s.metric == name
                        && credential.is_none_or(|c| s.labels.get("credential") == Some(c))
                })
                .map(|s| match s.value {
                    prometheus_parse::Value::Gauge(v) | prometheus_parse::Value::Untyped(v) => v,
                    _ => f64::NAN,
                })
        };
        // Off by default: the aggregates only.
        let mut out = String::new();
        super::render_ages(&mut out, &ages, warn, super::MetricsConfig::default());
        let scrape = parse(&out);
        assert_eq!(
            value(&scrape, "twilio_broker_secret_oldest_age_seconds", None),
            Some(8_640_000.0)
        );
        assert_eq!(
            value(&scrape, "twilio_broker_secrets_over_warn_age", None),
            Some(1.0)
        );
        assert_eq!(
            value(&scrape, "twilio_broker_secret_age_seconds", None),
            None
        );
        // Opt-in, capped at two: the two oldest, the rest counted.
        let config = super::MetricsConfig {
            per_credential: true,
            max_credential_series: 2,
        };
        let mut out = String::new();
        super::render_ages(&mut out, &ages, warn, config);
        let scrape = parse(&out);
        assert_eq!(
            value(&scrape, "twilio_broker_secret_age_seconds", Some("key-0")),
            Some(8_640_000.0)
        );
        assert!(value(&scrape, "twilio_broker_secret_age_seconds", Some("key-1")).is_some());
        assert_eq!(
            value(&scrape, "twilio_broker_secret_age_seconds", Some("key-2")),
            None
        );
        assert_eq!(
            value(&scrape, "twilio_broker_secret_age_series_omitted", None),
            Some(1.0)
        );
        assert_eq!(
            value(
                &scrape,
                "twilio_broker_next_rotation_timestamp_seconds",
                Some("key-0")
            ),
            Some(2_000_000_000.0)
        );
        assert_eq!(
            value(
                &scrape,
                "twilio_broker_next_rotation_timestamp_seconds",
                Some("key-1")
            ),
            None
        );
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(
            super::escape(
                r#"a"b\c
d"#
            ),
            r#"a\"b\\c\nd"#
        );
    }
}
