//! The one load loop: a fixed number of calls in flight over several HTTP/2
//! connections, for a warm-up and then a fixed time, with an HDR latency
//! histogram and counts by gRPC status (h2load only sees HTTP 2xx). The
//! `loadgen` binary prints it as a JSON line for `scripts/bench`; the
//! benches in `broker/benches` call [`run`] in process.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tonic::transport::{Channel, Endpoint};
use twilio_broker_api::v1 as pb;
use twilio_broker_api::v1::broker_client::BrokerClient;

/// One RPC with its request, sent again and again.
#[derive(Debug, Clone)]
pub enum Call {
    /// GetBearer.
    Bearer(pb::GetBearerRequest),
    /// MintAccessToken.
    Mint(Box<pb::MintAccessTokenRequest>),
    /// ValidateWebhook; a reply that does not validate is a broken setup.
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

/// How to load a target.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    /// Calls in flight (one task each).
    pub inflight: usize,
    /// HTTP/2 connections the calls share.
    pub connections: usize,
    /// Time before measuring (connections, allocator, caches).
    pub warmup: Duration,
    /// Time measured.
    pub measure: Duration,
}

/// What one run measured.
#[derive(Debug)]
pub struct Figures {
    /// The measured time.
    pub elapsed: Duration,
    /// Latency of every measured call, in µs.
    pub latency_us: Histogram<u64>,
    /// Measured calls by gRPC status (`"Ok"`, `"Unavailable"`, ...).
    pub codes: BTreeMap<String, u64>,
}

impl Figures {
    /// Calls answered OK.
    pub fn ok(&self) -> u64 {
        self.codes.get("Ok").copied().unwrap_or(0)
    }

    /// Calls answered with any other status.
    pub fn errors(&self) -> u64 {
        self.codes.values().sum::<u64>() - self.ok()
    }

    /// OK answers per second.
    pub fn rps(&self) -> f64 {
        self.ok() as f64 / self.elapsed.as_secs_f64()
    }

    /// The latency at quantile `q` (0.5 for the median), in µs.
    pub fn quantile_us(&self, q: f64) -> u64 {
        self.latency_us.value_at_quantile(q)
    }
}

/// Opens `connections` HTTP/2 connections to `target` (`http://host:port`).
pub async fn connect(target: &str, connections: usize) -> anyhow::Result<Vec<Channel>> {
    let mut channels = Vec::new();
    for _ in 0..connections.max(1) {
        channels.push(
            Endpoint::from_shared(target.to_owned())?
                .tcp_nodelay(true)
                .connect()
                .await?,
        );
    }
    Ok(channels)
}

/// Sends `call` to `target` in the given shape and measures it.
pub async fn run(target: &str, call: &Call, shape: Shape) -> anyhow::Result<Figures> {
    let channels = connect(target, shape.connections).await?;
    run_on(&channels, call, shape).await
}

/// [`run`] over connections already open (reused between rounds).
pub async fn run_on(channels: &[Channel], call: &Call, shape: Shape) -> anyhow::Result<Figures> {
    anyhow::ensure!(!channels.is_empty(), "no connection to load");
    let measuring = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for i in 0..shape.inflight.max(1) {
        let mut client = BrokerClient::new(channels[i % channels.len()].clone());
        let call = call.clone();
        let measuring = Arc::clone(&measuring);
        let stop = Arc::clone(&stop);
        tasks.push(tokio::spawn(async move {
            let mut histogram = Histogram::<u64>::new(3).expect("3 significant digits is valid");
            let mut codes: BTreeMap<String, u64> = BTreeMap::new();
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                let code = call.send(&mut client).await;
                if measuring.load(Ordering::Relaxed) {
                    let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
                    let _ = histogram.record(micros.max(1));
                    *codes.entry(format!("{code:?}")).or_default() += 1;
                }
            }
            (histogram, codes)
        }));
    }
    tokio::time::sleep(shape.warmup).await;
    measuring.store(true, Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(shape.measure).await;
    measuring.store(false, Ordering::Relaxed);
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let mut latency_us = Histogram::<u64>::new(3)?;
    let mut codes: BTreeMap<String, u64> = BTreeMap::new();
    for task in tasks {
        let (h, c) = task.await?;
        latency_us.add(h)?;
        for (k, v) in c {
            *codes.entry(k).or_default() += v;
        }
    }
    Ok(Figures {
        elapsed,
        latency_us,
        codes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ceiling::Ceiling;

    /// The loop against the ceiling: every call is counted, by status.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn measures_the_ceiling() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let target = format!("http://{}", listener.local_addr().expect("address"));
        tokio::spawn(Ceiling::padded(None, None).serve(listener));
        let shape = Shape {
            inflight: 4,
            connections: 2,
            warmup: Duration::from_millis(100),
            measure: Duration::from_millis(300),
        };
        let call = Call::Bearer(pb::GetBearerRequest {
            credential: "bench".into(),
            min_ttl_seconds: 0,
        });
        let figures = run(&target, &call, shape).await.expect("a run");
        assert!(figures.ok() > 0, "{:?}", figures.codes);
        assert_eq!(figures.errors(), 0, "{:?}", figures.codes);
        assert_eq!(figures.latency_us.len(), figures.ok());
        assert!(figures.rps() > 0.0);
    }
}
