//! Drives one RPC at a fixed number of requests in flight for a fixed time,
//! over several HTTP/2 connections, and prints one JSON line: requests/s,
//! latency percentiles, and counts by gRPC status (h2load only sees HTTP 2xx).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use hdrhistogram::Histogram;
use tonic::transport::{Channel, Endpoint};
use twilio_broker_api::v1 as pb;
use twilio_broker_api::v1::broker_client::BrokerClient;

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

#[derive(Clone)]
enum Call {
    Bearer(pb::GetBearerRequest),
    Mint(Box<pb::MintAccessTokenRequest>),
    Webhook(pb::ValidateWebhookRequest),
}

impl Call {
    async fn send(&self, client: &mut BrokerClient<Channel>) -> tonic::Code {
        let result = match self.clone() {
            Call::Bearer(r) => client.get_bearer(r).await.map(drop),
            Call::Mint(r) => client.mint_access_token(*r).await.map(drop),
            Call::Webhook(r) => client.validate_webhook(r).await.map(|reply| {
                assert!(
                    reply.into_inner().valid,
                    "the benchmark webhook must validate"
                );
            }),
        };
        result.err().map_or(tonic::Code::Ok, |s| s.code())
    }
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
        let mut channels = Vec::new();
        for _ in 0..args.connections.max(1) {
            channels.push(
                Endpoint::from_shared(args.target.clone())?
                    .tcp_nodelay(true)
                    .connect()
                    .await?,
            );
        }
        let measuring = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::new();
        for i in 0..args.inflight {
            let mut client = BrokerClient::new(channels[i % channels.len()].clone());
            let request = request.clone();
            let measuring = Arc::clone(&measuring);
            let stop = Arc::clone(&stop);
            tasks.push(tokio::spawn(async move {
                let mut histogram = Histogram::<u64>::new(3).expect("histogram");
                let mut codes: BTreeMap<String, u64> = BTreeMap::new();
                while !stop.load(Ordering::Relaxed) {
                    let started = Instant::now();
                    let code = request.send(&mut client).await;
                    if measuring.load(Ordering::Relaxed) {
                        let micros =
                            u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
                        let _ = histogram.record(micros.max(1));
                        *codes.entry(format!("{code:?}")).or_default() += 1;
                    }
                }
                (histogram, codes)
            }));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        measuring.store(true, Ordering::Relaxed);
        let started = Instant::now();
        tokio::time::sleep(Duration::from_secs_f64(args.seconds)).await;
        measuring.store(false, Ordering::Relaxed);
        let elapsed = started.elapsed().as_secs_f64();
        stop.store(true, Ordering::Relaxed);
        let mut histogram = Histogram::<u64>::new(3)?;
        let mut codes: BTreeMap<String, u64> = BTreeMap::new();
        for task in tasks {
            let (h, c) = task.await?;
            histogram.add(h)?;
            for (k, v) in c {
                *codes.entry(k).or_default() += v;
            }
        }
        let ok = codes.get("Ok").copied().unwrap_or(0);
        let line = serde_json::json!({
            "label": args.label,
            "rpc": args.rpc,
            "inflight": args.inflight,
            "seconds": elapsed,
            "requests": histogram.len(),
            "ok": ok,
            "rps": ok as f64 / elapsed,
            "p50_us": histogram.value_at_quantile(0.50),
            "p99_us": histogram.value_at_quantile(0.99),
            "p999_us": histogram.value_at_quantile(0.999),
            "codes": codes,
        });
        println!("{line}");
        anyhow::Ok(())
    })
}
