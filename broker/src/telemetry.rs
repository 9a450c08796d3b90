//! The Prometheus exposition: one catalogue of every metric with its HELP
//! text, real histograms (with buckets) for durations, and `build_info`.
//!
//! **Invariant:** no label or value carries a secret or a token; labels are
//! RPC names, status codes, outcomes and sink names.

use std::net::SocketAddr;

use anyhow::Context as _;
use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};

/// Bucket bounds for every `*_seconds` histogram: 100 µs to 10 s.
const SECONDS_BUCKETS: [f64; 15] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    10.0,
];

/// Serves `/metrics` on `addr` and describes every metric.
pub fn install(addr: SocketAddr) -> anyhow::Result<()> {
    PrometheusBuilder::new()
        .with_http_listener(addr)
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &SECONDS_BUCKETS)
        .context("histogram buckets")?
        .install()
        .with_context(|| format!("cannot serve metrics on {addr}"))?;
    describe();
    Ok(())
}

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
    describe_gauge!(
        "twilio_broker_build_info",
        "Always 1; the labels say which build is running."
    );
    metrics::gauge!(
        "twilio_broker_build_info",
        "version" => env!("CARGO_PKG_VERSION"),
        "commit" => option_env!("TWILIO_BROKER_COMMIT").unwrap_or("unknown"),
    )
    .set(1.0);
}
