//! `twilio-broker token bearer`.

use crate::cli::connect::AddrArgs;

/// Arguments of `token bearer`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The credential's name.
    name: String,
    #[command(flatten)]
    addr: AddrArgs,
}

/// Runs `token bearer`.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let _ = (&args.name, &args.addr);
    anyhow::bail!("token bearer is not built yet")
}
