//! Drives one RPC at a fixed number of requests in flight for a fixed time,
//! over several HTTP/2 connections ([`twilio_broker_bench::load`]), and
//! prints one JSON line: requests/s, latency percentiles, and counts by gRPC
//! status (h2load only sees HTTP 2xx).

use std::time::Duration;

use clap::Parser;
use twilio_broker_api::v1 as pb;
use twilio_broker_bench::load::{self, Call, Shape};

#[derive(Parser)]
struct Args {
    /// Target, http://host:port.
    #[arg(long)]
    target: String,
    /// get-bearer, mint, validate-webhook.
    #[arg(long)]
    rpc: String,
    /// Credential name.
    #[arg(long)]
    credential: String,
    /// Requests in flight.
    #[arg(long)]
    inflight: usize,
    /// Seconds of measurement (after one second of warm-up).
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// HTTP/2 connections.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// A label for the JSON line.
    #[arg(long, default_value = "")]
    label: String,
    /// Webhook URL/signature for validate-webhook.
    #[arg(long, default_value = "")]
    webhook_url: String,
    /// Webhook signature for validate-webhook.
    #[arg(long, default_value = "")]
    webhook_signature: String,
}

fn call(args: &Args) -> anyhow::Result<Call> {
    Ok(match args.rpc.as_str() {
        "get-bearer" => Call::Bearer(pb::GetBearerRequest {
            credential: args.credential.clone(),
            min_ttl_seconds: 0,
        }),
        "mint" => Call::Mint(Box::new(pb::MintAccessTokenRequest {
            credential: args.credential.clone(),
            identity: "user-123".into(),
            ttl_seconds: 3600,
            video: Some(pb::VideoGrant {
                room: "room-1".into(),
            }),
            voice: Some(pb::VoiceGrant {
                incoming_allow: true,
                outgoing_application_sid: "AP00112233445566778899aabbccddeeff".into(),
                ..Default::default()
            }),
            ..Default::default()
        })),
        "validate-webhook" => Call::Webhook(pb::ValidateWebhookRequest {
            credential: args.credential.clone(),
            url: args.webhook_url.clone(),
            params: vec![
                pb::FormParam {
                    name: "CallSid".into(),
                    value: "CA1234567890ABCDE".into(),
                },
                pb::FormParam {
                    name: "Caller".into(),
                    value: "+12349013030".into(),
                },
                pb::FormParam {
                    name: "Digits".into(),
                    value: "1234".into(),
                },
                pb::FormParam {
                    name: "From".into(),
                    value: "+12349013030".into(),
                },
                pb::FormParam {
                    name: "To".into(),
                    value: "+18005551212".into(),
                },
            ],
            signature: args.webhook_signature.clone(),
            ..Default::default()
        }),
        other => anyhow::bail!("unknown rpc {other}"),
    })
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let request = call(&args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let shape = Shape {
            inflight: args.inflight,
            connections: args.connections,
            warmup: Duration::from_secs(1),
            measure: Duration::from_secs_f64(args.seconds),
        };
        let figures = load::run(&args.target, &request, shape).await?;
        let line = serde_json::json!({
            "label": args.label,
            "rpc": args.rpc,
            "inflight": args.inflight,
            "seconds": figures.elapsed.as_secs_f64(),
            "requests": figures.latency_us.len(),
            "ok": figures.ok(),
            "rps": figures.rps(),
            "p50_us": figures.quantile_us(0.50),
            "p99_us": figures.quantile_us(0.99),
            "p999_us": figures.quantile_us(0.999),
            "codes": figures.codes,
        });
        println!("{line}");
        anyhow::Ok(())
    })
}
