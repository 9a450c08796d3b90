//! `twilio-broker token bearer|mint`: ask a running broker for tokens.

mod bearer;
mod mint;

/// Token subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Print an OAuth2 bearer token for an oauth_client credential.
    Bearer(bearer::Args),
    /// Mint a Twilio Access Token with an API key credential.
    Mint(mint::Args),
}

/// Runs a token subcommand.
pub async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Bearer(args) => bearer::run(args).await,
        Command::Mint(args) => mint::run(args).await,
    }
}
