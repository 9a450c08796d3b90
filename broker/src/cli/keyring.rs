//! `twilio-broker keyring add|list|retire`: the master keys in the keyring
//! file (issue 18; the format is `crate::keyring`'s). The daemon takes a
//! changed keyring on SIGHUP.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::master_key::MasterKey;

/// Keyring subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Generate a new master key and put it first in the keyring file. Once
    /// the broker reloads (SIGHUP), new writes are sealed under it and every
    /// record is re-sealed in the background.
    Add {
        /// The keyring file (the broker's `master_key_file`).
        #[arg(long, env = "TWILIO_BROKER_MASTER_KEY_FILE")]
        file: PathBuf,
    },
    /// List the keyring's key ids, newest first, with how many records the
    /// broker's last re-seal pass found under each (from its state file).
    List {
        /// The keyring file (the broker's `master_key_file`).
        #[arg(long, env = "TWILIO_BROKER_MASTER_KEY_FILE")]
        file: PathBuf,
        /// The broker's state file.
        #[arg(long, env = "TWILIO_BROKER_STATE_FILE")]
        state_file: Option<PathBuf>,
    },
    /// Remove key ID from the keyring; refused while the broker's state file
    /// does not report a complete re-seal pass with nothing under it.
    Retire {
        /// The key id (16 hex digits, from `keyring list`).
        id: String,
        /// The keyring file (the broker's `master_key_file`).
        #[arg(long, env = "TWILIO_BROKER_MASTER_KEY_FILE")]
        file: PathBuf,
        /// The broker's state file (where its re-seal task reports).
        #[arg(long, env = "TWILIO_BROKER_STATE_FILE")]
        state_file: PathBuf,
    },
}

fn read_ring(file: &Path) -> anyhow::Result<MasterKey> {
    if !file.exists() {
        anyhow::bail!(
            "no keyring at {}: start one with `twilio-broker keygen > {0}` (mode 600)",
            file.display()
        );
    }
    Ok(MasterKey::from_file(file)?)
}

fn usage(
    ring: &MasterKey,
    state_file: &Path,
) -> anyhow::Result<Option<crate::state_file::KeyringUse>> {
    Ok(crate::state_file::read(state_file, ring)?.and_then(|data| data.keyring))
}

/// Runs a keyring subcommand.
pub fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Add { file } => {
            let ring = read_ring(&file)?;
            let key = MasterKey::generate();
            let id = key.id();
            let ring = crate::keyring::add(&ring, key);
            crate::keyring::write_file(&file, &ring)
                .with_context(|| format!("cannot write the keyring {}", file.display()))?;
            println!(
                "added key id {id} as the newest of {} key(s) in {}; reload the broker (SIGHUP) \
                 to seal new writes under it and re-seal every record",
                ring.ring().count(),
                file.display()
            );
            Ok(())
        }
        Command::List { file, state_file } => {
            let ring = read_ring(&file)?;
            let usage = match &state_file {
                Some(path) => usage(&ring, path)?,
                None => None,
            };
            for (n, key) in ring.ring().enumerate() {
                let role = if n == 0 {
                    "newest (seals new writes)"
                } else {
                    "older (opens only)"
                };
                let records = usage
                    .as_ref()
                    .filter(|u| u.newest == ring.id().to_string())
                    .map(|u| {
                        let count = u
                            .sealed_under
                            .get(&key.id().to_string())
                            .copied()
                            .unwrap_or(0);
                        format!(", {count} record(s) sealed under it")
                    })
                    .unwrap_or_default();
                println!("{} {role}{records}", key.id());
            }
            if let Some(usage) = usage.filter(|u| u.newest == ring.id().to_string()) {
                if usage.complete {
                    println!("re-seal: complete");
                } else {
                    println!("re-seal: in progress");
                }
            }
            Ok(())
        }
        Command::Retire {
            id,
            file,
            state_file,
        } => {
            let ring = read_ring(&file)?;
            let id = crate::keyring::parse_id(&id).ok_or_else(|| {
                anyhow::anyhow!("{id:?} is not a key id (16 hex digits, from `keyring list`)")
            })?;
            let usage = usage(&ring, &state_file)?;
            let retired = crate::keyring::retire(&ring, id, usage.as_ref())?;
            crate::keyring::write_file(&file, &retired)
                .with_context(|| format!("cannot write the keyring {}", file.display()))?;
            println!(
                "retired key id {id}; {} key(s) left in {}; reload the broker (SIGHUP)",
                retired.ring().count(),
                file.display()
            );
            Ok(())
        }
    }
}
