//! `twilio-broker audit verify FILE...` (checks an audit chain across
//! rotated files, or a plugin's JSON-lines export) and `audit pubkey`
//! (prints the key that verifies checkpoints).

use std::path::PathBuf;

use crate::audit::{PublicKey, Signer, VerifyKeys, hex, verify_files};

/// Audit subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Verify an audit chain: every link, every signed checkpoint, and that
    /// each file continues the previous one (give rotated files oldest
    /// first). Keys: --pubkey alone checks links and signatures (anyone may
    /// hold it); the master key (TWILIO_BROKER_MASTER_KEY or
    /// TWILIO_BROKER_MASTER_KEY_FILE) also checks format-1 (HMAC) files and
    /// opens --state-file. Exits non-zero on a broken link, a bad signature,
    /// a cut head or a truncation.
    Verify {
        /// The JSON-lines files of one chain, oldest first.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// A trusted checkpoint public key (64 hex digits, from `audit
        /// pubkey`); repeat it for several. Keys the chain hands over to
        /// (a master key rotation) are trusted through their handover.
        #[arg(long)]
        pubkey: Vec<String>,
        /// The broker's state file: report a chain that ends before its
        /// anchored head (needs the master key).
        #[arg(long)]
        state_file: Option<PathBuf>,
        /// Which chain of the state file: `file` (the built-in file,
        /// default) or `plugin:<name>`.
        #[arg(long, default_value = crate::audit::STATE_NAME)]
        sink: String,
    },
    /// Print the public key that verifies audit checkpoints (needs the
    /// master key; with a keyring, the newest key's); give it to whoever
    /// verifies audit files.
    Pubkey {
        /// Print the public key of every key of the keyring, newest first.
        #[arg(long)]
        all: bool,
    },
}

/// Runs an audit subcommand.
pub async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Pubkey { all } => {
            let key = crate::master_key::MasterKey::from_environment(None)?
                .ok_or(crate::master_key::MasterKeyError::Missing)?;
            for key in key.ring().take(if all { usize::MAX } else { 1 }) {
                println!("{}", Signer::derive(key).public().to_hex());
            }
            Ok(())
        }
        Command::Verify {
            files,
            pubkey,
            state_file,
            sink,
        } => verify(files, pubkey, state_file, &sink),
    }
}

fn verify(
    files: Vec<PathBuf>,
    pubkey: Vec<String>,
    state_file: Option<PathBuf>,
    sink: &str,
) -> anyhow::Result<()> {
    let master = if pubkey.is_empty() || state_file.is_some() {
        Some(
            crate::master_key::MasterKey::from_environment(None)?.ok_or_else(|| {
                anyhow::anyhow!(
                    "{} (or pass --pubkey to verify with the public key only)",
                    crate::master_key::MasterKeyError::Missing
                )
            })?,
        )
    } else {
        None
    };
    let mut keys = master
        .as_ref()
        .map(VerifyKeys::from_master)
        .unwrap_or_default();
    if !pubkey.is_empty() {
        keys.public = pubkey
            .iter()
            .map(|text| {
                PublicKey::parse(text).ok_or_else(|| {
                    anyhow::anyhow!(
                        "--pubkey {text:?} is not an Ed25519 public key (64 hex digits)"
                    )
                })
            })
            .collect::<anyhow::Result<_>>()?;
    }
    let anchor = match (&state_file, &master) {
        (Some(path), Some(key)) => {
            let state = crate::state_file::read(path, key)?.ok_or_else(|| {
                anyhow::anyhow!("the state file {} does not exist", path.display())
            })?;
            Some(state.audit.get(sink).cloned().ok_or_else(|| {
                anyhow::anyhow!(
                    "the state file {} anchors no chain named {sink}",
                    path.display()
                )
            })?)
        }
        _ => None,
    };
    let report = verify_files(&keys, &files, anchor.as_ref())
        .map_err(|e| anyhow::anyhow!("cannot read the audit files: {e}"))?;
    let names = files
        .iter()
        .map(|f| f.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    if let Some(broken) = &report.broken {
        anyhow::bail!(
            "{}: BROKEN at line {}: {} ({} lines before it are intact)",
            broken.file.display(),
            broken.line,
            broken.reason,
            report.lines
        );
    }
    if let Some(truncated) = &report.truncated {
        anyhow::bail!("{names}: TRUNCATED: {truncated}");
    }
    let range = report
        .seq_range
        .map(|(a, b)| format!(", seq {a}..={b}"))
        .unwrap_or_default();
    let continues = match report.continues_from {
        Some(hash) => format!(
            " (continues the chain of an earlier, rotated file ending in hash {})",
            hex(&hash)
        ),
        None => " (from the genesis of the chain)".to_owned(),
    };
    println!(
        "{names}: OK, {} events{range}, chain intact{continues}",
        report.events
    );
    match report.signed_through {
        Some(seq) => println!("signed: every line up to seq {seq} is covered by a checkpoint"),
        None if report.legacy_lines > 0 => {}
        None => println!("signed: no checkpoint verified"),
    }
    if report.unsigned_tail > 0 {
        println!(
            "UNSIGNED TAIL: {} lines after the last checkpoint are linked but not signed yet \
             (the broker signs at least every second while events flow, and at shutdown)",
            report.unsigned_tail
        );
    }
    if report.legacy_lines > 0 {
        println!(
            "format 1: {} HMAC-chained lines checked with the master key",
            report.legacy_lines
        );
    }
    for gap in &report.gaps {
        println!(
            "GAP: {} events were dropped by this sink (trail events {}..={})",
            gap.dropped, gap.first_event, gap.last_event
        );
    }
    for seq in &report.accepted_truncations {
        println!(
            "TRUNCATION ACCEPTED: the operator restarted past a file cut before seq {seq} \
             (--accept-audit-truncation)"
        );
    }
    if let Some(anchor) = &anchor {
        match report.seq_range {
            Some((first, _)) if first > anchor.seq => println!(
                "anchored: the state file's head seq {} lies in an earlier file (not given)",
                anchor.seq
            ),
            _ => println!(
                "anchored: the state file's head seq {} is present and matches",
                anchor.seq
            ),
        }
    }
    Ok(())
}
