//! GetBearer on a warm cache through the real gRPC stack (`server::run`: the
//! daemon's services, health, reflection), beside a do-nothing tonic service
//! answering the same RPC with a canned response, in the same run and under
//! the same load. Prints requests/s, p50 and p99 for each and the ratios.
//!
//! A benchmark, not a test: run it in release mode on a quiet machine.
//!
//! ```text
//! cargo bench -p twilio-broker --bench get_bearer -- [--in-flight 64] [--requests 200000] [--connections 4] [--rounds 2]
//! ```

#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use tonic::transport::{Channel, Server};
use tonic::{Request, Response, Status};
use twilio_broker::bearer::{Bearers, OAuthConfig};
use twilio_broker::credential::{Credential, Secret};
use twilio_broker::master_key::MasterKey;
use twilio_broker::server::{self, State};
use twilio_broker::store::{SledStore, Vault};
use twilio_broker_api::v1 as pb;
use twilio_broker_api::v1::broker_client::BrokerClient;
use twilio_broker_api::v1::broker_server::{Broker, BrokerServer};

const ACCOUNT: &str = "AC0123456789abcdef0123456789abcdef";
const CLIENT_ID: &str = "OQ0123456789abcdef0123456789abcdef";

struct Args {
    in_flight: usize,
    requests: usize,
    connections: usize,
    rounds: usize,
}

fn args() -> Args {
    let mut out = Args {
        in_flight: 64,
        requests: 200_000,
        connections: 4,
        rounds: 2,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().and_then(|v| v.parse().ok()).expect("a number");
        match flag.as_str() {
            "--in-flight" => out.in_flight = value(),
            "--requests" => out.requests = value(),
            "--connections" => out.connections = value(),
            "--rounds" => out.rounds = value(),
            _ => {} // cargo bench passes --bench
        }
    }
    out
}

/// The do-nothing service: GetBearer answers a canned response.
struct Nothing(pb::GetBearerResponse);

#[tonic::async_trait]
impl Broker for Nothing {
    async fn get_bearer(
        &self,
        _: Request<pb::GetBearerRequest>,
    ) -> Result<Response<pb::GetBearerResponse>, Status> {
        Ok(Response::new(self.0.clone()))
    }
    async fn mint_access_token(
        &self,
        _: Request<pb::MintAccessTokenRequest>,
    ) -> Result<Response<pb::MintAccessTokenResponse>, Status> {
        Err(Status::unimplemented(""))
    }
    async fn recommend(
        &self,
        _: Request<pb::RecommendRequest>,
    ) -> Result<Response<pb::RecommendResponse>, Status> {
        Err(Status::unimplemented(""))
    }
    async fn validate_webhook(
        &self,
        _: Request<pb::ValidateWebhookRequest>,
    ) -> Result<Response<pb::ValidateWebhookResponse>, Status> {
        Err(Status::unimplemented(""))
    }
}

struct Figures {
    rps: f64,
    p50: Duration,
    p99: Duration,
}

async fn load(url: &str, in_flight: usize, requests: usize, connections: usize) -> Figures {
    let mut channels = Vec::new();
    for _ in 0..connections.max(1) {
        let channel = Channel::from_shared(url.to_owned())
            .unwrap()
            .tcp_nodelay(true)
            .connect()
            .await
            .unwrap();
        channels.push(BrokerClient::new(channel));
    }
    let per_task = requests / in_flight;
    let started = Instant::now();
    let tasks: Vec<_> = (0..in_flight)
        .map(|i| {
            let mut client = channels[i % channels.len()].clone();
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(per_task);
                for _ in 0..per_task {
                    let request = pb::GetBearerRequest {
                        credential: "bench".into(),
                        min_ttl_seconds: 0,
                    };
                    let t = Instant::now();
                    let response = client.get_bearer(request).await.unwrap().into_inner();
                    latencies.push(t.elapsed());
                    assert!(!response.access_token.is_empty());
                }
                latencies
            })
        })
        .collect();
    let mut all = Vec::with_capacity(requests);
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    let elapsed = started.elapsed();
    all.sort_unstable();
    let at = |q: f64| all[((all.len() as f64 * q) as usize).min(all.len() - 1)];
    Figures {
        rps: all.len() as f64 / elapsed.as_secs_f64(),
        p50: at(0.50),
        p99: at(0.99),
    }
}

fn show(name: &str, f: &Figures) {
    println!(
        "  {name:<22} {:>9.0} req/s   p50 {:>7.1} µs   p99 {:>7.1} µs",
        f.rps,
        f.p50.as_secs_f64() * 1e6,
        f.p99.as_secs_f64() * 1e6
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
            twilio_broker::policy::PolicyEngine::load(twilio_broker::policy::Source::DevAllowAll)
                .unwrap();
        let audit = twilio_broker::audit::AuditTrail::disabled();
        let state = Arc::new(State::new(vault, policy, audit, bearer));

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let broker_url = format!("http://{}", listener.local_addr().unwrap());
        let listeners = vec![twilio_broker::transport::Bound::Plaintext(listener)];
        tokio::spawn(server::run(listeners, state, std::future::pending()));

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
        let nothing = BrokerServer::new(Nothing(warm.clone()));
        tokio::spawn(
            Server::builder()
                .tcp_nodelay(true)
                .add_service(nothing)
                .serve_with_incoming(
                    tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
                ),
        );
        (broker_url, nothing_url, warm.access_token, standin)
    });
    println!(
        "GetBearer, warm cache, {} requests, {} in flight over {} connections; token {} bytes",
        args.requests,
        args.in_flight,
        args.connections,
        token.len()
    );

    client_rt.block_on(async {
        // Warm-up of both paths (connections, allocator, caches).
        load(&nothing_url, args.in_flight, args.requests / 10, args.connections).await;
        load(&broker_url, args.in_flight, args.requests / 10, args.connections).await;
        let (mut ratios, mut p99s) = (Vec::new(), Vec::new());
        for round in 1..=args.rounds {
            println!("round {round}:");
            // Alternate which goes first, so drift does not favour one.
            let (nothing, broker) = if round % 2 == 1 {
                let n = load(&nothing_url, args.in_flight, args.requests, args.connections).await;
                let b = load(&broker_url, args.in_flight, args.requests, args.connections).await;
                (n, b)
            } else {
                let b = load(&broker_url, args.in_flight, args.requests, args.connections).await;
                let n = load(&nothing_url, args.in_flight, args.requests, args.connections).await;
                (n, b)
            };
            show("do-nothing tonic", &nothing);
            show("GetBearer (broker)", &broker);
            let ratio = broker.rps / nothing.rps;
            let p99 = broker.p99.as_secs_f64() / nothing.p99.as_secs_f64();
            let p50 = (broker.p50.as_secs_f64() - nothing.p50.as_secs_f64()) * 1e6;
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
