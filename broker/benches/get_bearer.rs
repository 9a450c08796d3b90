//! GetBearer on a warm cache through the real gRPC stack (`twilio_broker::run`:
//! the daemon's services, health, reflection), beside the ceiling (the bench
//! crate's do-nothing tonic service, answering the broker's own reply), in
//! the same run and under the same load loop (`twilio_broker_bench::load`).
//! Prints requests/s, p50 and p99 for each and the ratios.
//!
//! A benchmark, not a test: run it in release mode on a quiet machine.
//!
//! ```text
//! cargo bench -p twilio-broker --bench get_bearer -- [--in-flight 64] [--seconds 3] [--connections 4] [--rounds 2]
//! ```

#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use twilio_broker::MasterKey;
use twilio_broker::State;
use twilio_broker::{Bearers, OAuthConfig};
use twilio_broker::{Credential, Secret};
use twilio_broker::{SledStore, Vault};
use twilio_broker_api::v1 as pb;
use twilio_broker_api::v1::broker_client::BrokerClient;
use twilio_broker_bench::ceiling::Ceiling;
use twilio_broker_bench::load::{self, Call, Figures, Shape};

const ACCOUNT: &str = "AC0123456789abcdef0123456789abcdef";
const CLIENT_ID: &str = "OQ0123456789abcdef0123456789abcdef";

struct Args {
    in_flight: usize,
    seconds: f64,
    connections: usize,
    rounds: usize,
}

fn args() -> Args {
    let mut out = Args {
        in_flight: 64,
        seconds: 3.0,
        connections: 4,
        rounds: 2,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .and_then(|v| v.parse::<f64>().ok())
                .expect("a number")
        };
        match flag.as_str() {
            "--in-flight" => out.in_flight = value() as usize,
            "--seconds" => out.seconds = value(),
            "--connections" => out.connections = value() as usize,
            "--rounds" => out.rounds = value() as usize,
            _ => {} // cargo bench passes --bench
        }
    }
    out
}

fn show(name: &str, f: &Figures) {
    println!(
        "  {name:<22} {:>9.0} req/s   p50 {:>7} µs   p99 {:>7} µs   errors {}",
        f.rps(),
        f.quantile_us(0.50),
        f.quantile_us(0.99),
        f.errors()
    );
}

fn main() {
    let args = args();
    // The servers get their own 2-worker runtime, as the daemon has on 2 cores;
    // the load generator runs on another. Both share the machine's cores.
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    let (broker_url, nothing_url, token, _standin) = server_rt.block_on(async {
        let mut secret = [0u8; 16];
        rand::fill(&mut secret);
        let secret: String = secret.iter().map(|b| format!("{b:02x}")).collect();
        let standin = twilio_standin::start(twilio_standin::Config {
            clients: vec![twilio_standin::Client {
                client_id: CLIENT_ID.into(),
                client_secret: secret.clone(),
                account_sid: ACCOUNT.into(),
            }],
            ..Default::default()
        })
        .await
        .unwrap();
        let vault = Arc::new(
            Vault::open(
                Arc::new(SledStore::temporary().unwrap()),
                MasterKey::generate(),
            )
            .await
            .unwrap(),
        );
        let credential = Credential {
            name: "bench".into(),
            labels: Default::default(),
            created_at: std::time::SystemTime::now(),
            updated_at: std::time::SystemTime::now(),
            secret: Secret::OAuthClient {
                account_sid: ACCOUNT.into(),
                client_id: CLIENT_ID.into(),
                client_secret: secret.into(),
            },
        };
        vault.put(credential).await.unwrap();
        let settings = OAuthConfig::default()
            .resolve(Some(standin.token_url()))
            .unwrap();
        let bearer = Bearers::connect(Arc::clone(&vault), settings).unwrap();
        let policy =
            twilio_broker::PolicyEngine::load(twilio_broker::PolicySource::DevAllowAll).unwrap();
        let audit = twilio_broker::AuditTrail::disabled();
        let state = Arc::new(State::new(vault, policy, audit, bearer));

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let broker_url = format!("http://{}", listener.local_addr().unwrap());
        let listeners = vec![twilio_broker::Bound::Plaintext(listener)];
        tokio::spawn(twilio_broker::run(listeners, state, std::future::pending()));

        // Warm the cache and take its token for the canned response.
        let mut client = BrokerClient::connect(broker_url.clone()).await.unwrap();
        let warm = client
            .get_bearer(pb::GetBearerRequest {
                credential: "bench".into(),
                min_ttl_seconds: 0,
            })
            .await
            .unwrap()
            .into_inner();

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let nothing_url = format!("http://{}", listener.local_addr().unwrap());
        // The ceiling answers the broker's own reply: the same bytes.
        let ceiling = Ceiling::new(warm.clone(), pb::MintAccessTokenResponse::default());
        tokio::spawn(ceiling.serve(listener));
        (broker_url, nothing_url, warm.access_token, standin)
    });
    println!(
        "GetBearer, warm cache, {} s per measurement, {} in flight over {} connections; token {} bytes",
        args.seconds,
        args.in_flight,
        args.connections,
        token.len()
    );

    client_rt.block_on(async {
        let call = Call::Bearer(pb::GetBearerRequest {
            credential: "bench".into(),
            min_ttl_seconds: 0,
        });
        let shape = Shape {
            inflight: args.in_flight,
            connections: args.connections,
            warmup: Duration::from_millis(500),
            measure: Duration::from_secs_f64(args.seconds),
        };
        let measure = |url: &str| {
            let url = url.to_owned();
            let call = call.clone();
            async move { load::run(&url, &call, shape).await.unwrap() }
        };
        let (mut ratios, mut p99s) = (Vec::new(), Vec::new());
        for round in 1..=args.rounds {
            println!("round {round}:");
            // Alternate which goes first, so drift does not favour one.
            let (nothing, broker) = if round % 2 == 1 {
                let n = measure(&nothing_url).await;
                let b = measure(&broker_url).await;
                (n, b)
            } else {
                let b = measure(&broker_url).await;
                let n = measure(&nothing_url).await;
                (n, b)
            };
            assert_eq!(broker.errors(), 0, "the broker failed calls: {:?}", broker.codes);
            show("do-nothing tonic", &nothing);
            show("GetBearer (broker)", &broker);
            let ratio = broker.rps() / nothing.rps();
            let p99 = broker.quantile_us(0.99) as f64 / nothing.quantile_us(0.99) as f64;
            let p50 = broker.quantile_us(0.50) as f64 - nothing.quantile_us(0.50) as f64;
            println!(
                "  ratio: throughput {:.1} %   p99 {:.2}x   p50 difference {:+.1} µs",
                ratio * 100.0,
                p99,
                p50
            );
            ratios.push(ratio);
            p99s.push(p99);
        }
        let median = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        println!(
            "median of {} rounds: throughput {:.1} % of do-nothing (target >= 80 %), p99 {:.2}x (target <= 1.3x)",
            args.rounds,
            median(&mut ratios) * 100.0,
            median(&mut p99s)
        );
    });
}
