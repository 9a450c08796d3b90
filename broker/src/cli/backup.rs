//! `twilio-broker backup --out FILE` (through a running broker's Admin API)
//! and `twilio-broker restore FILE` (offline, into an empty data directory
//! or storage plugin). The file format is `crate::snapshot`'s.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use twilio_broker_api::v1 as pb;
use twilio_broker_api::v1::admin_client::AdminClient;

use super::connect::{AddrArgs, status_error};
use crate::audit::{AuditEvent, Decision};
use crate::config::FileConfig;
use crate::master_key::{MasterKey, MasterKeyError};
use crate::plugin_host::Plugins;
use crate::settings::{Flags, ProcessEnv, Settings, config_path};
use crate::snapshot::{self, Snapshot};
use crate::state_file::StateFile;
use crate::store::vault::VaultOptions;
use crate::store::{SledStore, Store, Vault};

/// Arguments of `backup`.
#[derive(Debug, clap::Args)]
pub struct BackupArgs {
    /// Where to write the snapshot (refused if it exists; written to
    /// FILE.partial, checked, then renamed, mode 0600).
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    addr: AddrArgs,
}

/// Arguments of `restore`: the snapshot, and where the broker keeps its
/// data, resolved as `serve` resolves them (flag, variable, config file).
#[derive(Debug, clap::Args)]
pub struct RestoreArgs {
    /// The snapshot file `twilio-broker backup` wrote.
    file: PathBuf,
    /// The config file `serve` uses [env: TWILIO_BROKER_CONFIG]: its
    /// data_dir, state_file, [audit], storage plugin and master_key_file.
    #[arg(long)]
    config: Option<PathBuf>,
    /// The data directory to restore into: absent or empty [env:
    /// TWILIO_BROKER_DATA_DIR].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// The broker's state file [env: TWILIO_BROKER_STATE_FILE] [default: <data-dir>.state].
    #[arg(long)]
    state_file: Option<PathBuf>,
    /// The audit file the restore's event is written to [env: TWILIO_BROKER_AUDIT_FILE].
    #[arg(long)]
    audit_file: Option<PathBuf>,
}

/// Takes a snapshot through the Admin API and writes it to `--out`.
pub async fn backup(args: BackupArgs) -> anyhow::Result<()> {
    if args.out.exists() {
        anyhow::bail!(
            "{} exists; choose a new file name (a backup never overwrites one)",
            args.out.display()
        );
    }
    let started = Instant::now();
    let mut client = AdminClient::new(args.addr.channel().await?);
    let mut stream = client
        .backup(pb::BackupRequest {})
        .await
        .map_err(status_error)?
        .into_inner();
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.message().await.map_err(status_error)? {
        bytes.extend_from_slice(&chunk.data);
    }
    let snapshot = snapshot::decode(&bytes).context("the broker sent a damaged snapshot")?;
    write_new(&args.out, &bytes)?;
    println!(
        "backup written to {}: {} credential record(s) at generation {}, sealed under key id {} \
         ({} bytes, {:.1} s)",
        args.out.display(),
        snapshot.header.credentials,
        snapshot.header.generation,
        snapshot.header.key_id,
        bytes.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Writes `bytes` to `path` (which must not exist) through `path.partial`:
/// mode 0600, fsynced, renamed, directory fsynced.
fn write_new(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut partial = path.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&partial)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::hard_link(&partial, path)?;
        std::fs::remove_file(&partial)?;
        let dir = path.parent().filter(|p| !p.as_os_str().is_empty());
        std::fs::File::open(dir.unwrap_or(Path::new(".")))?.sync_all()
    };
    write().map_err(|err| {
        let _ = std::fs::remove_file(&partial);
        anyhow::anyhow!("cannot write {}: {err}", path.display())
    })
}

/// Loads a snapshot into an empty store: checks the file and its key id,
/// writes every sealed entry in one atomic store write, resets the state
/// file's anchors (a deliberate rollback), opens the result as `serve`
/// would, and records the restore in the audit trail (an intent event
/// before the store changes, the outcome after).
pub async fn restore(args: RestoreArgs) -> anyhow::Result<()> {
    let flags = Flags {
        config: args.config.clone(),
        data_dir: args.data_dir.clone(),
        state_file: args.state_file.clone(),
        audit_file: args.audit_file.clone(),
        ..Flags::default()
    };
    let file = match config_path(&flags, &ProcessEnv) {
        Some(path) => FileConfig::load(&path)?,
        None => FileConfig::default(),
    };
    let settings = Settings::resolve(&flags, &ProcessEnv, &file)?;
    let key = MasterKey::from_environment(settings.master_key_file.as_deref())?
        .ok_or(MasterKeyError::Missing)?;
    let bytes = std::fs::read(&args.file)
        .with_context(|| format!("cannot read the snapshot {}", args.file.display()))?;
    let snapshot = snapshot::decode(&bytes)
        .with_context(|| format!("cannot restore {}", args.file.display()))?;
    check_key(&snapshot, &key)?;
    let plugins = Plugins::load_all(&file.plugins).await?;
    let store = empty_store(&plugins, settings.data_dir.as_deref()).await?;
    let state_path = settings.state_file.clone().ok_or_else(|| {
        anyhow::anyhow!(
            "no state file: pass --state-file, set TWILIO_BROKER_STATE_FILE or `state_file` in \
             the config (required with a storage plugin)"
        )
    })?;
    let state = Arc::new(StateFile::open(&state_path, key.clone()).with_context(|| {
        format!(
            "the state file {} cannot be reset; if it belongs to a broker whose store this \
             restore replaces, move it aside and run the restore again",
            state_path.display()
        )
    })?);
    let generation = snapshot.header.generation;
    // The deliberate rollback: the mark follows the snapshot, and audit
    // anchors of the replaced broker no longer bind the files.
    state.reset_after_restore(generation)?;
    let trail = super::serve::audit_trail(&settings, &key, &plugins, Some(&state)).await?;
    let started = Instant::now();
    let summary = format!(
        "deliberate rollback: restored a snapshot taken {} at generation {generation} ({} \
         credentials); the state file's rollback mark is now {generation} and its audit anchors \
         were reset",
        snapshot.header.taken_at, snapshot.header.credentials
    );
    let event = restore_event(&summary);
    let mut intent = event.clone();
    intent.phase = Some("intent");
    intent.status = "PENDING";
    trail
        .record(intent)
        .await
        .context("the restore cannot be audited, so nothing was restored")?;
    let outcome = load(store, &key, &state, snapshot).await;
    let mut done = event;
    done.duration_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
    if let Err(err) = &outcome {
        done.status = "FAILED_PRECONDITION";
        done.message = Some(crate::audit::cap(&format!("restore failed: {err:#}")));
    }
    let recorded = trail.record(done).await;
    trail.flush().await;
    plugins.close().await;
    let served = outcome?;
    recorded.context("restored, but the audit trail did not record the outcome")?;
    println!(
        "restored {served} credential(s) from {} at generation {generation}; {summary}. Start \
         the broker as usual",
        args.file.display()
    );
    Ok(())
}

/// Refuses a snapshot sealed under another master key, before anything
/// is written.
fn check_key(snapshot: &Snapshot, key: &MasterKey) -> anyhow::Result<()> {
    let configured = key.id().to_string();
    if snapshot.header.key_id != configured {
        anyhow::bail!(
            "this snapshot is sealed under master key id {}, but the configured master key has \
             id {configured}: nothing was restored. Restore it with the key the backup was taken \
             under (TWILIO_BROKER_MASTER_KEY_FILE or master_key_file), then run `twilio-broker \
             rekey` if the key is to change",
            snapshot.header.key_id
        );
    }
    Ok(())
}

/// The store to restore into: the storage plugin, or sled in the data
/// directory; either must hold nothing yet.
async fn empty_store(plugins: &Plugins, data_dir: Option<&Path>) -> anyhow::Result<Arc<dyn Store>> {
    let store: Arc<dyn Store> = match (&plugins.storage, data_dir) {
        (Some(plugin), _) => Arc::clone(plugin) as Arc<dyn Store>,
        (None, Some(dir)) => {
            let occupied = std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_some());
            if occupied {
                anyhow::bail!(
                    "the data directory {} is not empty: a restore only fills an empty one \
                     (stop the broker, move the directory aside, and run the restore again)",
                    dir.display()
                );
            }
            use std::os::unix::fs::DirBuilderExt as _;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .with_context(|| format!("cannot create the data directory {}", dir.display()))?;
            Arc::new(SledStore::open(dir)?)
        }
        (None, None) => anyhow::bail!(
            "no data directory: pass --data-dir, set TWILIO_BROKER_DATA_DIR or `data_dir` in the \
             config (or configure the storage plugin to restore into)"
        ),
    };
    if !store.list("").await?.is_empty() {
        anyhow::bail!(
            "the storage plugin's store is not empty: a restore only fills an empty one (stop \
             every broker using it and empty it first)"
        );
    }
    Ok(store)
}

/// Writes the snapshot's entries in one atomic store write, then opens the
/// result as `serve` will (key check, manifest, every record against it).
/// Returns how many credentials it serves.
async fn load(
    store: Arc<dyn Store>,
    key: &MasterKey,
    state: &Arc<StateFile>,
    snapshot: Snapshot,
) -> anyhow::Result<usize> {
    let expected = snapshot.header.credentials;
    store.replace_all("", snapshot.entries).await?;
    let options = VaultOptions {
        state_file: Some(Arc::clone(state)),
        accept_rollback: false,
    };
    let vault = Vault::open_with(store, key.clone(), options).await?;
    if vault.len() as u64 != expected {
        anyhow::bail!(
            "the restored store serves {} of the snapshot's {expected} credential records; the \
             broker's log names the records it refused",
            vault.len()
        );
    }
    Ok(vault.len())
}

/// The audit event of a restore, by the operator who ran it.
fn restore_event(summary: &str) -> AuditEvent {
    use std::os::unix::fs::MetadataExt as _;
    let caller = std::fs::metadata("/proc/self")
        .map(|m| format!("uid:{}", m.uid()))
        .unwrap_or_else(|_| "uid:unknown".to_owned());
    AuditEvent {
        time: crate::audit::rfc3339(std::time::SystemTime::now()),
        request_id: uuid::Uuid::new_v4().to_string(),
        rpc: "Restore",
        caller,
        transport: "local",
        peer: "twilio-broker restore".to_owned(),
        decision: Decision::Allow,
        status: "OK",
        message: Some(crate::audit::cap(summary)),
        credential: None,
        grants: Vec::new(),
        identity: None,
        ttl_seconds: None,
        jti: None,
        expires_at: None,
        duration_us: 0,
        phase: None,
    }
}
