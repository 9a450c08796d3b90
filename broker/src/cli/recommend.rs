//! `twilio-broker recommend`.

/// Arguments of `recommend`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `recommend`.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let _ = args;
    anyhow::bail!("recommend is not built yet")
}
