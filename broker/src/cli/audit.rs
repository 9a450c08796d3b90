//! `twilio-broker audit verify FILE`: checks an audit file's hash chain.

use std::path::PathBuf;

use crate::audit::{ChainKey, verify_file};

/// Audit subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Verify every link of an audit file (needs the broker's master key in
    /// TWILIO_BROKER_MASTER_KEY or TWILIO_BROKER_MASTER_KEY_FILE). Exits non-zero
    /// at the first broken or missing link.
    Verify {
        /// The JSON-lines audit file.
        file: PathBuf,
    },
}

/// Runs an audit subcommand.
pub async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Verify { file } => {
            let key = super::serve::master_key_from_env(None)?
                .ok_or(crate::master_key::MasterKeyError::Missing)?;
            let report = verify_file(&ChainKey::derive(&key), &file)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?;
            if let Some((line, reason)) = report.broken {
                anyhow::bail!(
                    "{}: BROKEN at line {line}: {reason} ({} events before it are intact)",
                    file.display(),
                    report.events
                );
            }
            let range = report
                .seq_range
                .map(|(a, b)| format!(", seq {a}..={b}"))
                .unwrap_or_default();
            let continues = if report.continues_earlier_file {
                " (continues the chain of an earlier, rotated file)"
            } else {
                ""
            };
            println!(
                "{}: OK, {} events{range}, chain intact{continues}",
                file.display(),
                report.events
            );
            Ok(())
        }
    }
}
