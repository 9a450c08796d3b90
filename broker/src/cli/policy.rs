//! `twilio-broker policy check FILE` and `twilio-broker policy reload`.

use std::path::PathBuf;

use twilio_broker_api::v1 as pb;
use twilio_broker_api::v1::admin_client::AdminClient;

use super::connect::{AddrArgs, status_error};

/// Policy subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Parse and compile a policy file without installing it, and warn
    /// about rules written for the old identity semantics (bare certificate
    /// names, a deny `*` that now also covers anonymous callers, an allow
    /// `anonymous` rule beside a TLS listener).
    Check {
        /// The daemon's config file: its listeners are checked against the policy.
        #[arg(long, env = "TWILIO_BROKER_CONFIG")]
        config: Option<PathBuf>,
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
        Command::Check { config, file } => {
            let policy = crate::policy::check_file(&file)?;
            let mut warnings: Vec<String> = policy
                .warnings()
                .iter()
                .map(|w| format!("{}: {}", w.rule, w.message))
                .collect();
            if let Some(config) = config {
                let config = crate::config::FileConfig::load(&config)?;
                let tls = config.listeners.iter().any(|l| l.tls.is_some());
                if tls {
                    for rule in policy.anonymous_allow_rules() {
                        warnings.push(format!(
                            "{rule}: allows `anonymous`, which names only plaintext loopback \
                             callers; TLS callers without a certificate are `anonymous-tls` \
                             (and refused unless a listener sets client_auth = \"optional\")"
                        ));
                    }
                }
            }
            println!("{}: OK, {} rule(s)", file.display(), policy.len());
            for warning in &warnings {
                println!("warning: {warning}");
            }
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
