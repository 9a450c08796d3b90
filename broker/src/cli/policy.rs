//! `twilio-broker policy check FILE` and `twilio-broker policy reload`.

use std::path::PathBuf;

use twilio_broker_api::v1 as pb;
use twilio_broker_api::v1::admin_client::AdminClient;

use super::connect::{AddrArgs, status_error};

/// Policy subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Parse and compile a policy file without installing it.
    Check {
        /// The policy file.
        file: PathBuf,
    },
    /// Ask a running broker to re-read its policy file (like SIGHUP).
    Reload {
        #[command(flatten)]
        addr: AddrArgs,
    },
}

/// Runs a policy subcommand.
pub async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Check { file } => {
            let rules = crate::policy::check_file(&file)?;
            println!("{}: OK, {rules} rule(s)", file.display());
        }
        Command::Reload { addr } => {
            let mut client = AdminClient::new(addr.channel().await?);
            let loaded = client
                .reload_policy(pb::ReloadPolicyRequest {})
                .await
                .map_err(status_error)?
                .into_inner();
            println!(
                "policy reloaded from {}: {} rule(s)",
                loaded.source, loaded.rules
            );
        }
    }
    Ok(())
}
