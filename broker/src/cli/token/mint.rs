//! `twilio-broker token mint`.

use crate::cli::connect::AddrArgs;

/// Arguments of `token mint`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The credential's name.
    name: String,
    #[command(flatten)]
    addr: AddrArgs,
}

/// Runs `token mint`.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let _ = (&args.name, &args.addr);
    anyhow::bail!("token mint is not built yet")
}
