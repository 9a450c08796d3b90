//! The `ceiling` binary: [`twilio_broker_bench::ceiling::Ceiling`] on a TCP
//! port, with replies padded to the broker's sizes, for `scripts/bench`.

use std::net::SocketAddr;

use clap::Parser;
use twilio_broker_bench::ceiling::Ceiling;

/// The daemon's allocator (see `broker/src/main.rs`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
struct Args {
    /// Listen address.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Size of the encoded GetBearer reply (default: a 400-byte token).
    #[arg(long)]
    bearer_reply_bytes: Option<usize>,
    /// Size of the encoded MintAccessToken reply (default: a 440-byte token).
    #[arg(long)]
    mint_reply_bytes: Option<usize>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let ceiling = Ceiling::padded(args.bearer_reply_bytes, args.mint_reply_bytes);
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = args.threads {
        runtime.worker_threads(threads);
    }
    runtime.enable_all().build()?.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.listen).await?;
        println!("ceiling listening on {}", listener.local_addr()?);
        ceiling.serve(listener).await
    })
}
