//! `twilio-broker keygen` and `twilio-broker rekey`.

use std::path::PathBuf;
use std::sync::Arc;

use crate::master_key::MasterKey;
use crate::store::{SledStore, Vault};

/// Arguments of `rekey`. The current key comes from the usual variables.
#[derive(Debug, clap::Args)]
pub struct RekeyArgs {
    /// The data directory (the broker must be stopped).
    #[arg(long, env = "TWILIO_BROKER_DATA_DIR")]
    data_dir: PathBuf,
    /// File holding the new base64 master key (make one with `twilio-broker keygen`).
    #[arg(long)]
    new_key_file: PathBuf,
}

/// Prints a fresh master key.
pub fn keygen() -> anyhow::Result<()> {
    println!("{}", MasterKey::generate().to_base64().as_str());
    Ok(())
}

/// Re-seals a data directory under a new key.
pub async fn rekey(args: RekeyArgs) -> anyhow::Result<()> {
    let old = super::serve::master_key_from_env(None)?
        .ok_or(crate::master_key::MasterKeyError::Missing)?;
    let new = MasterKey::from_file(&args.new_key_file)?;
    if new.id() == old.id() {
        anyhow::bail!("the new key is the key already in use");
    }
    let store = Arc::new(SledStore::open(&args.data_dir)?);
    let vault = Vault::open(store, old).await?;
    let count = vault.rekey(&new).await?;
    println!(
        "re-sealed {count} credential(s) under key id {}; start the broker with the new key",
        new.id()
    );
    Ok(())
}
