//! `twilio-broker doctor`.

/// Arguments of `doctor`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `doctor`.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let _ = args;
    anyhow::bail!("doctor is not built yet")
}
