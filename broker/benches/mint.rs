//! MintAccessToken throughput and latency through the real gRPC stack, beside
//! the ceiling (the bench crate's do-nothing tonic service, answering a token
//! the broker minted) measured in the same run with the same load loop
//! (`twilio_broker_bench::load`), and beside
//! twilio-python's and twilio-node's in-process AccessToken rates (issue 4).
//!
//! Run: `cargo bench -p twilio-broker --bench mint` (release build).
//! Knobs (environment): `MINT_BENCH_SECONDS` per measurement (default 3),
//! `MINT_BENCH_ROUNDS` (default 2, baseline and broker interleaved),
//! `MINT_BENCH_INFLIGHT` (default `1,16,64`), `MINT_BENCH_SDK_TOKENS`
//! (default 20000 for Python, a tenth for Node), `TWILIO_BROKER_TEST_PYTHON`
//! and `TWILIO_BROKER_TEST_NODE_MODULES` (defaults: `target/test-deps/venv`
//! and `tests/oracles/node_modules`).
//!
//! Both servers are tonic servers in this process on their own 2-thread
//! runtime, with the broker's own `twilio_broker::run` (health, reflection, vault
//! lookup, rules, signing) for the broker; the load comes from tonic clients
//! on a separate runtime over 4 loopback connections. Client and servers share
//! the machine's cores, so compare ratios within one run, not across runs.

#![allow(missing_docs, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use twilio_broker::State;
use twilio_broker::{Credential, KeyType, Secret};
use twilio_broker::{SledStore, Vault};
use twilio_broker_api::v1 as pb;
use twilio_broker_bench::ceiling::Ceiling;
use twilio_broker_bench::load::{self, Call, Shape};

const ACCOUNT: &str = "AC0123456789abcdef0123456789abcdef";
const KEY: &str = "SKfedcba9876543210fedcba9876543210";
const SECRET: &str = "benchsecret0123456789abcdefABCDEF";
const APP: &str = "AP00112233445566778899aabbccddeeff";
const CONNECTIONS: usize = 4;

/// The request every measurement sends: the grants the SDK benchmarks use.
fn request() -> pb::MintAccessTokenRequest {
    pb::MintAccessTokenRequest {
        credential: "bench".into(),
        identity: "user-123".into(),
        ttl_seconds: 3600,
        voice: Some(pb::VoiceGrant {
            incoming_allow: true,
            outgoing_application_sid: APP.into(),
            ..Default::default()
        }),
        video: Some(pb::VideoGrant {
            room: "room-1".into(),
        }),
        ..Default::default()
    }
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn sdk_rate(
    program: &Path,
    script: &str,
    n: u64,
    node_path: Option<&Path>,
) -> Option<serde_json::Value> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut command = std::process::Command::new(program);
    command
        .arg(root.join("tests/oracles").join(script))
        .arg(n.to_string());
    if let Some(path) = node_path {
        command.env("NODE_PATH", path);
    }
    let output = command.output().ok()?;
    if !output.status.success() {
        eprintln!("{script}: {}", String::from_utf8_lossy(&output.stderr));
        return None;
    }
    serde_json::from_slice(&output.stdout).ok()
}

fn main() {
    let seconds: f64 = env_or("MINT_BENCH_SECONDS", 3.0);
    let rounds: usize = env_or("MINT_BENCH_ROUNDS", 2);
    let inflights: Vec<usize> = std::env::var("MINT_BENCH_INFLIGHT")
        .unwrap_or_else(|_| "1,16,64".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let sdk_tokens: u64 = env_or("MINT_BENCH_SDK_TOKENS", 20_000);

    let domain = twilio_broker::TokenRequest {
        identity: "user-123".into(),
        ttl_seconds: 3600,
        grants: twilio_broker::Grants {
            voice: Some(twilio_broker::VoiceGrant {
                incoming_allow: true,
                outgoing_application_sid: APP.into(),
                ..Default::default()
            }),
            video: Some(twilio_broker::VideoGrant {
                room: "room-1".into(),
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let servers = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("server")
        .enable_all()
        .build()
        .unwrap();
    let (broker_addr, baseline_addr, vault) = servers.block_on(async {
        let vault = Vault::open(
            Arc::new(SledStore::temporary().unwrap()),
            twilio_broker::MasterKey::generate(),
        )
        .await
        .unwrap();
        vault
            .put(Credential {
                name: "bench".into(),
                labels: BTreeMap::new(),
                created_at: SystemTime::now(),
                updated_at: SystemTime::now(),
                secret: Secret::ApiKey {
                    account_sid: ACCOUNT.into(),
                    key_sid: KEY.into(),
                    secret: SECRET.into(),
                    key_type: KeyType::Standard,
                    lifecycle: Default::default(),
                },
            })
            .await
            .unwrap();
        let policy =
            twilio_broker::PolicyEngine::load(twilio_broker::PolicySource::DevAllowAll).unwrap();
        let vault = Arc::new(vault);
        let bearer = twilio_broker::Bearers::connect(
            Arc::clone(&vault),
            twilio_broker::OAuthConfig::default().resolve(None).unwrap(),
        )
        .unwrap();
        let state = Arc::new(State::new(
            Arc::clone(&vault),
            policy,
            twilio_broker::AuditTrail::disabled(),
            bearer,
        ));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let broker_addr = listener.local_addr().unwrap();
        tokio::spawn(twilio_broker::run(
            vec![twilio_broker::Bound::Plaintext(listener)],
            Arc::clone(&state),
            std::future::pending(),
        ));

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let baseline_addr = listener.local_addr().unwrap();
        // The baseline answers with a real token, so both reply with the same bytes.
        let credential = vault.get("bench").unwrap();
        let minted = twilio_broker::Minter::new()
            .mint(&credential, domain.check().unwrap(), SystemTime::now())
            .unwrap();
        let canned = pb::MintAccessTokenResponse {
            token: minted.token,
            expires_at: Some(prost_types::Timestamp {
                seconds: minted.expires_at,
                nanos: 0,
            }),
            jti: minted.jti,
        };
        let ceiling = Ceiling::new(pb::GetBearerResponse::default(), canned);
        tokio::spawn(ceiling.serve(listener));
        (broker_addr, baseline_addr, vault)
    });

    // The signing step alone, in process, for reference.
    let credential = vault.get("bench").unwrap();
    let minter = twilio_broker::Minter::new();
    let n = 200_000;
    let started = Instant::now();
    let mut bytes = 0;
    for _ in 0..n {
        let checked = domain.check().unwrap();
        bytes = minter
            .mint(&credential, checked, SystemTime::now())
            .unwrap()
            .token
            .len();
    }
    let per = started.elapsed().as_secs_f64() / f64::from(n);
    println!(
        "in-process broker mint (rules + claims + HS256), 1 thread: {:.0} tokens/s, {:.2} us/token, token {bytes} bytes",
        1.0 / per,
        per * 1e6
    );

    let clients = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("client")
        .enable_all()
        .build()
        .unwrap();
    let (broker_channels, baseline_channels) = clients.block_on(async {
        let connect = |addr| async move {
            load::connect(&format!("http://{addr}"), CONNECTIONS)
                .await
                .unwrap()
        };
        (connect(broker_addr).await, connect(baseline_addr).await)
    });
    let call = Call::Mint(Box::new(request()));
    println!(
        "\ngRPC, {CONNECTIONS} connections, {seconds} s per measurement, {rounds} rounds interleaved"
    );
    println!(
        "{:>9} {:>9} {:>12} {:>10} {:>10} {:>7}",
        "in-flight", "target", "req/s", "p50 us", "p99 us", "errors"
    );
    let mut best: BTreeMap<usize, (f64, f64, f64, f64)> = BTreeMap::new();
    for &inflight in &inflights {
        let mut base_rates = Vec::new();
        let mut mint_rates = Vec::new();
        let mut base_p99 = Vec::new();
        let mut mint_p99 = Vec::new();
        for _ in 0..rounds {
            for (target, channels) in [("baseline", &baseline_channels), ("mint", &broker_channels)]
            {
                let shape = Shape {
                    inflight,
                    connections: CONNECTIONS,
                    warmup: Duration::from_millis(500),
                    measure: Duration::from_secs_f64(seconds),
                };
                let run = clients
                    .block_on(load::run_on(channels, &call, shape))
                    .unwrap();
                let (rate, p50, p99) = (
                    run.rps(),
                    run.quantile_us(0.50) as f64,
                    run.quantile_us(0.99) as f64,
                );
                println!(
                    "{inflight:>9} {target:>9} {rate:>12.0} {p50:>10.1} {p99:>10.1} {:>7}",
                    run.errors()
                );
                if target == "baseline" {
                    base_rates.push(rate);
                    base_p99.push(p99);
                } else {
                    mint_rates.push(rate);
                    mint_p99.push(p99);
                }
            }
        }
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        best.insert(
            inflight,
            (
                mean(&base_rates),
                mean(&mint_rates),
                mean(&base_p99),
                mean(&mint_p99),
            ),
        );
    }
    println!("\nsummary (means over rounds)");
    for (inflight, (base, mint, base_p99, mint_p99)) in &best {
        println!(
            "  in-flight {inflight:>3}: mint {mint:>8.0} req/s = {:>5.1}% of baseline {base:>8.0}; p99 {mint_p99:.0} us vs {base_p99:.0} us",
            100.0 * mint / base
        );
    }

    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let python = std::env::var_os("TWILIO_BROKER_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target/test-deps/venv/bin/python"));
    let modules = std::env::var_os("TWILIO_BROKER_TEST_NODE_MODULES")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("tests/oracles/node_modules"));
    let best_mint = best.values().map(|v| v.1).fold(0.0, f64::max);
    println!(
        "\nSDKs in process (one thread, AccessToken + VoiceGrant + VideoGrant + to_jwt per token)"
    );
    for (label, result) in [
        (
            "twilio-python 9.13",
            python
                .exists()
                .then(|| sdk_rate(&python, "mint_bench.py", sdk_tokens, None))
                .flatten(),
        ),
        (
            "twilio-node 6.2",
            modules
                .join("twilio")
                .exists()
                .then(|| {
                    sdk_rate(
                        Path::new("node"),
                        "mint_bench.js",
                        sdk_tokens / 10,
                        Some(&modules),
                    )
                })
                .flatten(),
        ),
    ] {
        match result {
            Some(r) => {
                let rate = r["tokens_per_second"].as_f64().unwrap_or(f64::NAN);
                println!(
                    "  {label}: {rate:.0} tokens/s (p50 {:.1} us); broker's best gRPC rate is {:.1}x",
                    r["p50_us"].as_f64().unwrap_or(f64::NAN),
                    best_mint / rate
                );
            }
            None => println!("  {label}: not installed (run scripts/setup-test-deps)"),
        }
    }
    drop(clients);
    drop(servers);
}
