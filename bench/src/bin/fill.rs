//! Loads N API-key credentials (random secrets) into a broker through the
//! Admin API, for the memory measurement with 10,000 credentials.

use clap::Parser;
use twilio_broker_api::v1 as pb;
use twilio_broker_api::v1::admin_client::AdminClient;

#[derive(Parser)]
struct Args {
    /// Target, http://host:port (a --dev broker).
    #[arg(long)]
    target: String,
    /// How many credentials.
    #[arg(long, default_value_t = 10_000)]
    count: usize,
    /// Concurrent puts.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
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
        let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..args.concurrency {
            let mut admin = AdminClient::new(channel.clone());
            let next = std::sync::Arc::clone(&next);
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
                }
            }));
        }
        for task in tasks {
            task.await??;
        }
        println!("stored {} credentials", args.count);
        anyhow::Ok(())
    })
}
