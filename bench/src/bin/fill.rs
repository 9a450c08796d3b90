//! Loads N API-key credentials (random secrets) into a broker through the
//! Admin API (`--first` continues an earlier run's names), for the memory
//! measurement with 10,000 credentials, and
//! reports the load rate as the store grows (issue 20): one JSON line per
//! `--report-at` mark, the puts/s of the last `--window` puts before it.
//! With `--list-pages`, instead pages through ListCredentials and reports
//! page latencies (p50, p99, max) as one JSON line.

use clap::Parser;
use twilio_broker_api::v1 as pb;
use twilio_broker_api::v1::admin_client::AdminClient;

#[derive(Parser)]
struct Args {
    /// Target, http://host:port (a --dev broker).
    #[arg(long)]
    target: String,
    /// How many credentials are stored when done (names `fill-00000` up).
    #[arg(long, default_value_t = 10_000)]
    count: usize,
    /// How many are already stored (by an earlier run): start at this name.
    #[arg(long, default_value_t = 0)]
    first: usize,
    /// Concurrent puts.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Stored counts at which to report the load rate (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "1000,10000,100000")]
    report_at: Vec<usize>,
    /// How many puts before a mark its rate is measured over.
    #[arg(long, default_value_t = 500)]
    window: usize,
    /// Only list: page through ListCredentials (this page size) and report
    /// page latencies.
    #[arg(long)]
    list_pages: Option<i32>,
}

/// Pages through ListCredentials; prints p50/p99/max page latency (ms).
async fn list_pages(channel: tonic::transport::Channel, page_size: i32) -> anyhow::Result<()> {
    let mut admin = AdminClient::new(channel).max_decoding_message_size(64 << 20);
    let (mut token, mut latencies, mut listed) = (String::new(), Vec::new(), 0usize);
    loop {
        let started = std::time::Instant::now();
        let page = admin
            .list_credentials(pb::ListCredentialsRequest {
                page_size,
                page_token: token,
                ..Default::default()
            })
            .await?
            .into_inner();
        latencies.push(started.elapsed().as_secs_f64() * 1e3);
        listed += page.credentials.len();
        token = page.next_page_token;
        if token.is_empty() {
            break;
        }
    }
    latencies.sort_by(f64::total_cmp);
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize];
    println!(
        "{{\"list\":\"ListCredentials\",\"page_size\":{page_size},\"pages\":{},\"credentials\":{listed},\"p50_ms\":{:.3},\"p99_ms\":{:.3},\"max_ms\":{:.3}}}",
        latencies.len(),
        at(0.5),
        at(0.99),
        at(1.0)
    );
    Ok(())
}

fn hex(n: usize, salt: u64) -> String {
    format!(
        "{:016x}{:016x}",
        n as u64 ^ salt,
        (n as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ salt.rotate_left(17)
    )
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let salt = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_nanos() as u64;
    tokio::runtime::Runtime::new()?.block_on(async move {
        let channel = tonic::transport::Endpoint::from_shared(args.target.clone())?
            .connect()
            .await?;
        if let Some(page_size) = args.list_pages {
            return list_pages(channel, page_size).await;
        }
        let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(args.first));
        // Stored so far (earlier runs included), and when each report window
        // started and ended.
        let done = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(args.first));
        let window = args.window;
        // Only marks whose whole window this run loads.
        let marks: Vec<usize> = args
            .report_at
            .iter()
            .copied()
            .filter(|m| *m > args.first && *m <= args.count)
            .filter(|m| m.saturating_sub(window.min(*m)) >= args.first)
            .collect();
        // When the put a window starts after completed (the first: the start).
        let started = std::sync::Arc::new(std::sync::Mutex::new(
            std::collections::HashMap::<usize, std::time::Instant>::from([(
                args.first,
                std::time::Instant::now(),
            )]),
        ));
        let mut tasks = Vec::new();
        for _ in 0..args.concurrency {
            let mut admin = AdminClient::new(channel.clone());
            let next = std::sync::Arc::clone(&next);
            let done = std::sync::Arc::clone(&done);
            let started = std::sync::Arc::clone(&started);
            let marks = marks.clone();
            let count = args.count;
            tasks.push(tokio::spawn(async move {
                loop {
                    let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if n >= count {
                        return anyhow::Ok(());
                    }
                    let request = pb::PutCredentialRequest {
                        manager: String::new(),
                        name: format!("fill-{n:05}"),
                        labels: [("environment".to_owned(), "production".to_owned())].into(),
                        credential: Some(pb::put_credential_request::Credential::ApiKey(
                            pb::ApiKeyCredential {
                                account_sid: format!("AC{}", hex(n, salt)),
                                key_sid: format!("SK{}", hex(n, !salt)),
                                secret: format!("secret{}", hex(n, salt ^ 0x5555)),
                                key_type: pb::KeyType::Standard.into(),
                            },
                        )),
                    };
                    admin.put_credential(request).await?;
                    let stored = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                    for &mark in &marks {
                        let from = mark.saturating_sub(window.min(mark));
                        if stored == from {
                            let mut started = started.lock().expect("lock");
                            started.entry(from).or_insert_with(std::time::Instant::now);
                        }
                        if stored == mark {
                            let since = started.lock().expect("lock").get(&from).copied();
                            if let Some(since) = since {
                                let puts = (mark - from) as f64;
                                println!(
                                    "{{\"load\":\"puts_per_second\",\"stored\":{mark},\"window\":{},\"puts_per_second\":{:.1}}}",
                                    mark - from,
                                    puts / since.elapsed().as_secs_f64().max(1e-9)
                                );
                            }
                        }
                    }
                }
            }));
        }
        for task in tasks {
            task.await??;
        }
        println!("stored {} credentials ({} by this run)", args.count, args.count.saturating_sub(args.first));
        anyhow::Ok(())
    })
}
