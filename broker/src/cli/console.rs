//! `twilio-broker console open`: asks the running broker (Admin/OpenConsole)
//! for a one-time login link to its operator console, bound to this
//! caller's identity, and prints it.

use twilio_broker_api::v1 as pb;
use twilio_broker_api::v1::admin_client::AdminClient;

use super::connect::{AddrArgs, status_error};

/// Console subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Print a one-time login link to the broker's operator console (valid
    /// for a minute, once), for the identity this command connects as: over
    /// the Unix socket, your uid.
    Open {
        #[command(flatten)]
        addr: AddrArgs,
    },
}

/// Runs a console subcommand.
pub async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Open { addr } => {
            let mut client = AdminClient::new(addr.channel().await?);
            let link = client
                .open_console(pb::OpenConsoleRequest {})
                .await
                .map_err(status_error)?
                .into_inner();
            // The link goes to stdout only (the one copy); the note to stderr.
            println!("{}", link.login_url);
            eprintln!(
                "Open this link in a browser on this host within a minute; it works once and \
                 logs the browser in as the caller that asked."
            );
        }
    }
    Ok(())
}
