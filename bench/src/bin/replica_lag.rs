//! Replica lag (issue 20): with several broker replicas sharing one store
//! (PostgreSQL), puts at a fixed rate, each through the next replica in
//! turn, and measures for each put the time from its acknowledgement until
//! every replica serves the new version (GetCredential polled on each).
//! Prints one JSON line: the 50th and 99th percentile and the maximum of
//! that time (the slowest replica per put), the same per replica, and the
//! rate achieved.
//!
//! Puts rotate over `--names` credentials (`lag-0000`, ...), each carrying
//! the label `lag-seq` = the put's sequence number; a replica serves put N
//! of a name when its GetCredential shows `lag-seq` ≥ N.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use clap::Parser;
use hdrhistogram::Histogram;
use tonic::transport::{Channel, Endpoint};
use twilio_broker_api::v1 as pb;
use twilio_broker_api::v1::admin_client::AdminClient;

#[derive(Parser)]
struct Args {
    /// The replicas, http://host:port each (comma-separated; --dev brokers).
    #[arg(long, value_delimiter = ',', required = true)]
    targets: Vec<String>,
    /// Puts per second (all replicas together).
    #[arg(long, default_value_t = 100.0)]
    rate: f64,
    /// How long to put.
    #[arg(long, default_value_t = 60.0)]
    seconds: f64,
    /// How many credentials the puts rotate over.
    #[arg(long, default_value_t = 1000)]
    names: usize,
    /// How often each replica is asked again while it lags.
    #[arg(long, default_value_t = 2)]
    poll_ms: u64,
    /// A put not served everywhere after this long counts as lost.
    #[arg(long, default_value_t = 10.0)]
    give_up_seconds: f64,
}

const LABEL: &str = "lag-seq";

fn request(name: &str, seq: u64) -> pb::PutCredentialRequest {
    pb::PutCredentialRequest {
        manager: String::new(),
        name: name.to_owned(),
        labels: [(LABEL.to_owned(), seq.to_string())].into(),
        credential: Some(pb::put_credential_request::Credential::Test(
            pb::TestCredential {
                account_sid: "AC00112233445566778899aabbccddeeff".into(),
                auth_token: format!("{:032x}", seq ^ 0x5eed),
            },
        )),
    }
}

/// Polls `replica` until it serves put `seq` of `name`; the time since
/// `acked`, or `None` after `give_up`.
async fn served(
    mut replica: AdminClient<Channel>,
    name: String,
    seq: u64,
    acked: Instant,
    poll: Duration,
    give_up: Duration,
) -> Option<Duration> {
    loop {
        let reply = replica
            .get_credential(pb::GetCredentialRequest { name: name.clone() })
            .await;
        let seen = reply.ok().and_then(|r| {
            r.into_inner()
                .credential?
                .labels
                .get(LABEL)?
                .parse::<u64>()
                .ok()
        });
        if seen.is_some_and(|s| s >= seq) {
            return Some(acked.elapsed());
        }
        if acked.elapsed() > give_up {
            return None;
        }
        tokio::time::sleep(poll).await;
    }
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("histogram bounds")
}

fn figures(h: &Histogram<u64>) -> serde_json::Value {
    let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    serde_json::json!({
        "p50_ms": ms(0.5),
        "p99_ms": ms(0.99),
        "max_ms": h.max() as f64 / 1000.0,
        "count": h.len(),
    })
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(args.rate > 0.0, "--rate must be positive");
    anyhow::ensure!(args.names > 0, "--names must be positive");
    tokio::runtime::Runtime::new()?.block_on(async move {
        let mut replicas = Vec::new();
        for target in &args.targets {
            let channel = Endpoint::from_shared(target.clone())?.connect().await?;
            replicas.push(AdminClient::new(channel));
        }
        let names: Vec<String> = (0..args.names).map(|i| format!("lag-{i:04}")).collect();
        // Create every name first (sequence 0), outside the measurement.
        for name in &names {
            replicas[0].clone().put_credential(request(name, 0)).await?;
        }
        let (poll, give_up) = (
            Duration::from_millis(args.poll_ms),
            Duration::from_secs_f64(args.give_up_seconds),
        );
        let interval = Duration::from_secs_f64(1.0 / args.rate);
        let started = Instant::now();
        let mut tasks = Vec::new();
        let mut seq = 0u64;
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        while started.elapsed().as_secs_f64() < args.seconds {
            ticker.tick().await;
            seq += 1;
            let name = names[(seq as usize - 1) % names.len()].clone();
            let mut writer = replicas[(seq as usize - 1) % replicas.len()].clone();
            let readers = replicas.clone();
            tasks.push(tokio::spawn(async move {
                writer.put_credential(request(&name, seq)).await?;
                let acked = Instant::now();
                let waits = readers.into_iter().map(|replica| {
                    tokio::spawn(served(replica, name.clone(), seq, acked, poll, give_up))
                });
                let mut lags = Vec::new();
                for wait in waits.collect::<Vec<_>>() {
                    lags.push(wait.await?);
                }
                anyhow::Ok(lags)
            }));
        }
        let put_seconds = started.elapsed().as_secs_f64();
        let mut all = histogram();
        let mut each: Vec<Histogram<u64>> = args.targets.iter().map(|_| histogram()).collect();
        let (mut lost, mut failed) = (0u64, 0u64);
        for task in tasks {
            match task.await? {
                Ok(lags) => {
                    let mut slowest = Duration::ZERO;
                    let mut complete = true;
                    for (r, lag) in lags.iter().enumerate() {
                        match lag {
                            Some(lag) => {
                                each[r].record(lag.as_micros().max(1) as u64)?;
                                slowest = slowest.max(*lag);
                            }
                            None => complete = false,
                        }
                    }
                    if complete {
                        all.record(slowest.as_micros().max(1) as u64)?;
                    } else {
                        lost += 1;
                    }
                }
                Err(_) => failed += 1,
            }
        }
        let per_replica: BTreeMap<String, serde_json::Value> = args
            .targets
            .iter()
            .zip(&each)
            .map(|(t, h)| (t.clone(), figures(h)))
            .collect();
        println!(
            "{}",
            serde_json::json!({
                "replica_lag": "until_every_replica_serves",
                "replicas": args.targets.len(),
                "puts": seq,
                "puts_per_second": seq as f64 / put_seconds,
                "target_rate": args.rate,
                "failed_puts": failed,
                "not_served_within_give_up": lost,
                "poll_ms": args.poll_ms,
                "every_replica": figures(&all),
                "per_replica": per_replica,
            })
        );
        anyhow::Ok(())
    })
}
