//! `twilio-standin`: runs the stand-in as a process for tests in other
//! languages. Prints `twilio-standin listening on http://ADDR` on stdout once
//! ready, then serves until SIGTERM or Ctrl-C. Knobs can be changed at run
//! time through the control API (see the library's `control` module).

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;
use twilio_standin::{Client, Config};

/// A local stand-in for Twilio's OAuth token endpoint.
#[derive(Debug, Parser)]
#[command(name = "twilio-standin", version, about)]
struct Args {
    /// Listen address.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Lifetime of issued tokens, in seconds.
    #[arg(long, default_value_t = 3600)]
    token_ttl_seconds: u64,
    /// JSON file with an array of `{client_id, client_secret, account_sid}`
    /// (secrets are never taken from the command line).
    #[arg(long)]
    clients: Option<PathBuf>,
    /// Answer every token request with this HTTP status (e.g. 503).
    #[arg(long)]
    fail_status: Option<u16>,
    /// Wait this many milliseconds before answering each token request.
    #[arg(long)]
    delay_ms: Option<u64>,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let clients: Vec<Client> = match &args.clients {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            serde_json::from_str(&text)
                .with_context(|| format!("{} is not a JSON array of clients", path.display()))?
        }
        None => Vec::new(),
    };
    let standin = twilio_standin::start(Config {
        listen: args.listen,
        token_ttl_seconds: args.token_ttl_seconds,
        clients,
    })
    .await
    .with_context(|| format!("cannot listen on {}", args.listen))?;
    standin.set_failure(args.fail_status);
    if let Some(ms) = args.delay_ms {
        standin.set_delay(std::time::Duration::from_millis(ms));
    }
    println!("twilio-standin listening on {}", standin.url());
    use std::io::Write as _;
    std::io::stdout().flush()?;

    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = interrupt => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    interrupt.await?;
    Ok(())
}
