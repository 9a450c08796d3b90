//! `twilio-broker keygen`, `twilio-broker rekey` and `twilio-broker compact`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;

use crate::audit::{Signer, SignerRecord};
use crate::master_key::MasterKey;
use crate::state_file::StateFile;
use crate::store::vault::VaultOptions;
use crate::store::{SledStore, Store, Vault};

/// Arguments of `rekey`. The current key comes from the usual variables.
#[derive(Debug, clap::Args)]
pub struct RekeyArgs {
    /// The data directory (the broker must be stopped).
    #[arg(long, env = "TWILIO_BROKER_DATA_DIR")]
    data_dir: PathBuf,
    /// The broker's state file [default: <data-dir>.state].
    #[arg(long, env = "TWILIO_BROKER_STATE_FILE")]
    state_file: Option<PathBuf>,
    /// File holding the new base64 master key (make one with `twilio-broker keygen`).
    #[arg(long)]
    new_key_file: PathBuf,
}

/// Arguments of `compact`. The key comes from the usual variables.
#[derive(Debug, clap::Args)]
pub struct CompactArgs {
    /// The data directory (the broker must be stopped).
    #[arg(long, env = "TWILIO_BROKER_DATA_DIR")]
    data_dir: PathBuf,
    /// The broker's state file [default: <data-dir>.state].
    #[arg(long, env = "TWILIO_BROKER_STATE_FILE")]
    state_file: Option<PathBuf>,
}

/// Prints a fresh master key.
pub fn keygen() -> anyhow::Result<()> {
    println!("{}", MasterKey::generate().to_base64().as_str());
    Ok(())
}

fn state_file(
    data_dir: &Path,
    explicit: Option<&Path>,
    key: &MasterKey,
) -> anyhow::Result<Arc<StateFile>> {
    let path = explicit.map_or_else(
        || crate::state_file::default_path(data_dir),
        Path::to_path_buf,
    );
    Ok(Arc::new(StateFile::open(&path, key.clone())?))
}

fn current_key() -> anyhow::Result<MasterKey> {
    Ok(crate::master_key::MasterKey::from_environment(None)?
        .ok_or(crate::master_key::MasterKeyError::Missing)?)
}

/// Re-seals a data directory under a new key.
pub async fn rekey(args: RekeyArgs) -> anyhow::Result<()> {
    let old = current_key()?;
    let new = MasterKey::from_file(&args.new_key_file)?;
    if new.id() == old.id() {
        anyhow::bail!("the new key is the key already in use");
    }
    let store = Arc::new(SledStore::open(&args.data_dir)?);
    let options = VaultOptions {
        state_file: Some(state_file(
            &args.data_dir,
            args.state_file.as_deref(),
            &old,
        )?),
        accept_rollback: false,
    };
    let vault = Vault::open_with(store, old.clone(), options).await?;
    let count = vault.rekey(&new).await?;
    // The state file follows the new key.
    let path = args
        .state_file
        .clone()
        .unwrap_or_else(|| crate::state_file::default_path(&args.data_dir));
    if let Some(mut data) = crate::state_file::read(&path, &old)? {
        data.version = crate::state_file::FORMAT_VERSION;
        // The audit chain continues: the old checkpoint key hands over to
        // the new one, written into the chain at the broker's next start.
        let (from, to) = (Signer::derive(&old), Signer::derive(&new));
        data.audit_handover = Some(SignerRecord::new(
            from.public(),
            to.public(),
            Some(from.handover(&to.public())),
        ));
        crate::state_file::write(&path, &new, &data)?;
    }
    println!(
        "re-sealed {count} credential(s) under key id {}; start the broker with the new key",
        new.id()
    );
    Ok(())
}

/// Rewrites a data directory from scratch: every record re-sealed (fresh
/// nonces) into a new sled directory that replaces the old one. sled never
/// compacts on request, so until this runs the old directory's files may
/// still hold the bytes of deleted records and of the first format's keys
/// (credential names in clear, for a directory migrated from it).
pub async fn compact(args: CompactArgs) -> anyhow::Result<()> {
    let key = current_key()?;
    let state = state_file(&args.data_dir, args.state_file.as_deref(), &key)?;
    let (entries, generation) = {
        let store = Arc::new(SledStore::open(&args.data_dir)?);
        let options = VaultOptions {
            state_file: Some(Arc::clone(&state)),
            accept_rollback: false,
        };
        let vault = Vault::open_with(store, key, options).await?;
        vault.export_resealed()?
    };
    let count = entries
        .iter()
        .filter(|(k, _)| k.starts_with(crate::store::vault::CREDENTIAL_PREFIX))
        .count();
    let dir = &args.data_dir;
    let sibling = |suffix: &str| {
        let mut name = dir.as_os_str().to_owned();
        name.push(suffix);
        PathBuf::from(name)
    };
    let (fresh, old) = (sibling(".compacting"), sibling(".before-compact"));
    for leftover in [&fresh, &old] {
        if leftover.exists() {
            std::fs::remove_dir_all(leftover)
                .with_context(|| format!("cannot remove {}", leftover.display()))?;
        }
    }
    {
        use std::os::unix::fs::DirBuilderExt as _;
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&fresh)
            .with_context(|| format!("cannot create {}", fresh.display()))?;
        let store = SledStore::open(&fresh)?;
        store.replace_all("", entries).await?;
    }
    std::fs::rename(dir, &old).with_context(|| format!("cannot move {}", dir.display()))?;
    std::fs::rename(&fresh, dir).with_context(|| format!("cannot move {}", fresh.display()))?;
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::File::open(parent)?.sync_all()?;
    }
    std::fs::remove_dir_all(&old).with_context(|| format!("cannot remove {}", old.display()))?;
    state.set_store_generation(generation, false)?;
    println!(
        "compacted {}: {count} credential(s) re-sealed into a fresh data directory",
        dir.display()
    );
    Ok(())
}
