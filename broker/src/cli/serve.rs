//! `twilio-broker serve`: resolves configuration, opens the vault and runs the
//! server until SIGTERM or SIGINT.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use tracing_subscriber::EnvFilter;

use crate::audit::{AuditTrail, FileOptions, FileSink, PluginSink, SinkOptions};
use crate::config::{FileConfig, LogFormat};
use crate::master_key::MasterKey;
use crate::plugin_host::Plugins;
use crate::policy::{PolicyEngine, Source};
use crate::server::{self, State};
use crate::settings::{Flags, ProcessEnv, Settings, config_path};
use crate::state_file::StateFile;
use crate::store::{SledStore, Store, Vault};

/// Arguments of `serve`: the flags of `settings::Flags` (each with its
/// environment variable and config key; `settings.rs` has the table).
pub type Args = Flags;

fn init_logging(format: LogFormat, filter: &str) {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|err| {
        eprintln!("twilio-broker: log level {filter:?} is not understood ({err}); using info");
        EnvFilter::new("info")
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second initialisation (in-process tests) keeps the first subscriber.
    let _ = match format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// Runs the daemon.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let file = match config_path(&args, &ProcessEnv) {
        Some(path) => FileConfig::load(&path)?,
        None => FileConfig::default(),
    };
    let settings = Settings::resolve(&args, &ProcessEnv, &file)?;
    init_logging(settings.log_format, &settings.log_filter);

    let listeners = settings.listeners.clone();
    for listener in &listeners {
        listener.check(settings.dev)?;
    }

    let key = match MasterKey::from_environment(settings.master_key_file.as_deref())? {
        Some(key) => key,
        None if settings.dev => {
            tracing::warn!(
                "DEV MODE: no master key given, so a throw-away key was generated. Anything stored \
                 now cannot be opened after a restart. Never run production like this."
            );
            MasterKey::generate()
        }
        None => return Err(crate::master_key::MasterKeyError::Missing.into()),
    };

    let data_dir = settings.data_dir.clone();
    // Plugins load before anything is served: a refused plugin stops start-up.
    let plugins = Plugins::load_all(&file.plugins).await?;
    let store: Arc<dyn Store> = match (&plugins.storage, &data_dir) {
        (Some(plugin), _) => {
            if let Some(dir) = &data_dir {
                tracing::warn!(data_dir = %dir.display(), plugin = plugin.name(),
                    "credentials are kept by the storage plugin; the data directory is not used");
            }
            Arc::clone(plugin) as Arc<dyn Store>
        }
        (None, Some(dir)) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create the data directory {}", dir.display()))?;
            restrict_permissions(dir);
            Arc::new(SledStore::open(dir)?)
        }
        (None, None) if settings.dev => {
            tracing::warn!(
                "DEV MODE: no data directory given, so credentials live in a throw-away store \
                 that is deleted at exit"
            );
            Arc::new(SledStore::temporary()?)
        }
        (None, None) => anyhow::bail!(
            "no data directory: pass --data-dir, set TWILIO_BROKER_DATA_DIR or `data_dir` in the \
             config, configure a storage plugin (or use --dev for a throw-away store)"
        ),
    };
    let policy = match settings.policy.clone() {
        Some(path) => PolicyEngine::load(Source::File(path))?,
        None if settings.dev => {
            tracing::warn!(
                "DEV MODE: no policy file, so EVERY caller may call EVERY RPC on every credential. \
                 Never run production like this."
            );
            PolicyEngine::load(Source::DevAllowAll)?
        }
        None => anyhow::bail!(
            "no caller policy: pass --policy FILE, set TWILIO_BROKER_POLICY or `policy` in the \
             config (policy.example.toml is a start), or use --dev to allow every local caller"
        ),
    };
    tracing::info!(source = %policy.describe(), rules = policy.rules(), "policy loaded");

    let exporter = match settings.metrics_listen {
        Some(addr) => {
            let exporter = crate::telemetry::install(addr).await?;
            tracing::info!("metrics on http://{addr}/metrics");
            Some(exporter)
        }
        None => None,
    };

    let oauth = file.oauth.resolve(settings.oauth_token_url.clone())?;
    tracing::info!(token_url = %oauth.token_url, "OAuth token endpoint");
    // `[twilio]` is checked now (https, or http to loopback only), so a bad
    // host fails at start-up rather than at the first rotation.
    let twilio = file.twilio.resolve_from_env()?;
    tracing::debug!(twilio = ?twilio, "Twilio REST hosts");
    let rotation = file.rotation.resolve()?;
    crate::store::vault::check_master_key(store.as_ref(), &key).await?;
    let state_file = open_state_file(&settings, &key)?;
    let mut audit = audit_trail(&settings, &key, &plugins, state_file.as_ref()).await?;
    let mut console = match settings.console_listen {
        Some(addr) => Some(crate::console::Bound::bind(addr).await?),
        None => None,
    };
    if let Some(console) = &mut console
        && audit.is_enabled()
    {
        console.watch_audit(&mut audit);
    }
    let options = crate::store::vault::VaultOptions {
        state_file: state_file.clone(),
        accept_rollback: settings.accept_rollback,
    };
    let vault = Arc::new(Vault::open_with(Arc::clone(&store), key, options).await?);
    // Moves every record to the keyring's newest key (issue 18).
    let resealer = crate::store::vault::reseal::spawn(Arc::clone(&vault), state_file);
    let keyring =
        MasterKey::keyring_file(settings.master_key_file.as_deref()).map(|path| KeyringReload {
            path,
            vault: Arc::clone(&vault),
        });
    // Replicas sharing a store (a storage plugin) follow each other's writes.
    let follower = Arc::clone(&vault).follow(store.change_feed().await);
    let bearer = crate::bearer::Bearers::connect(Arc::clone(&vault), oauth)?;
    let _sweeper = bearer.spawn_sweeper(crate::bearer::SWEEP_PERIOD);
    let ages = crate::rotation::Ages::new(Arc::clone(&vault), rotation);
    let _metrics = exporter.map(|e| e.with_ages(ages).serve(bearer.clone(), file.metrics));
    file.limits.check()?;
    let mut state = State::new(vault, policy, audit, bearer);
    // Before `with_twilio`, whose rotation task holds a reference to the
    // services from then on.
    if let Some(console) = &console {
        state = state.with_console(console)?;
    }
    let state = Arc::new(
        state
            .with_twilio(twilio, rotation)?
            .with_limits(file.limits)
            .with_shutdown_grace(settings.shutdown_grace)
            .with_store_probe(Arc::clone(&store)),
    );
    let shutdown = shutdown_signal()?;
    let bound = crate::transport::bind_all(&listeners).await?;
    for listener in &bound {
        tracing::info!("twilio-broker listening on {}", listener.describe());
    }
    let console = console.map(|mut console| {
        console.set_facts(console_facts(&bound, &plugins, data_dir.as_deref()));
        if let Ok(addr) = console.local_addr() {
            tracing::info!(
                "operator console on http://{addr}/ (log in with `twilio-broker console open`)"
            );
        }
        server::spawn_console(console, &state)
    });
    let tls: Vec<_> = bound
        .iter()
        .filter_map(crate::transport::Bound::tls_reloader)
        .collect();
    crate::notify::ready();
    let _watchdog = crate::notify::spawn_watchdog();
    tokio::spawn(crate::transport::watch_files(
        tls.clone(),
        crate::transport::WATCH_INTERVAL,
    ));
    tokio::spawn(reload_on_sighup(Arc::clone(&state), tls, keyring));
    tokio::spawn(forget_idle_callers(Arc::clone(&state)));
    let served = server::run(bound, state, shutdown).await;
    if let Some(console) = console {
        console.abort();
    }
    follower.abort();
    resealer.abort();
    plugins.close().await;
    served?;
    tracing::info!("twilio-broker stopped");
    Ok(())
}

/// What the console's health view says about this daemon.
fn console_facts(
    bound: &[crate::transport::Bound],
    plugins: &Plugins,
    data_dir: Option<&Path>,
) -> crate::console::Facts {
    let storage = match (&plugins.storage, data_dir) {
        (Some(plugin), _) => format!("storage plugin {}", plugin.name()),
        (None, Some(dir)) => format!("sled at {}", dir.display()),
        (None, None) => "sled, temporary (--dev)".to_owned(),
    };
    let audit = plugins.audit.iter().map(|p| format!("audit: {}", p.name()));
    let store = plugins
        .storage
        .iter()
        .map(|p| format!("storage: {}", p.name()));
    crate::console::Facts {
        listeners: bound
            .iter()
            .map(crate::transport::Bound::describe)
            .collect(),
        console: String::new(),
        storage,
        plugins: audit.chain(store).collect(),
    }
}

/// The state file the settings name (`--state-file`, `state_file`, else
/// `<data-dir>.state`; with a storage plugin too: it only needs to be
/// outside the database). None only for a throw-away store.
fn open_state_file(
    settings: &Settings,
    key: &MasterKey,
) -> anyhow::Result<Option<Arc<crate::state_file::StateFile>>> {
    let path = match &settings.state_file {
        Some(path) => path.clone(),
        None if settings.dev => {
            tracing::warn!(
                "DEV MODE: no state file, so a rolled-back store would not be noticed at start-up"
            );
            return Ok(None);
        }
        None => anyhow::bail!(
            "no state file: pass --state-file, set TWILIO_BROKER_STATE_FILE or `state_file` in \
             the config (a path outside the data directory and the database)"
        ),
    };
    Ok(Some(Arc::new(crate::state_file::StateFile::open(
        &path,
        key.clone(),
    )?)))
}

/// The audit trail the settings describe (plugins, then the file), also
/// used by `restore` to record itself.
pub(super) async fn audit_trail(
    settings: &Settings,
    key: &MasterKey,
    plugins: &Plugins,
    state: Option<&Arc<StateFile>>,
) -> anyhow::Result<AuditTrail> {
    let audit = &settings.audit;
    let mut trail = AuditTrail::disabled();
    let file_options = FileOptions {
        sync: audit.sync,
        checkpoint_events: audit.checkpoint_events.max(1),
        checkpoint_interval: std::time::Duration::from_millis(audit.checkpoint_ms),
        accept_truncation: settings.accept_audit_truncation,
        queue: audit.queue,
    };
    for sink in &plugins.audit {
        let options = SinkOptions {
            required: sink.required(),
            deadline: std::time::Duration::from_millis(audit.deadline_ms),
            queue: audit.queue,
        };
        let chained = PluginSink::new(Arc::clone(sink), key, state.cloned(), &file_options);
        trail.add(Arc::new(chained), options);
        tracing::info!(
            plugin = sink.name(),
            required = options.required,
            "audit plugin on"
        );
    }
    if let Some(path) = audit.file.clone() {
        let (path2, key2, state2, options2) = (
            path.clone(),
            key.clone(),
            state.cloned(),
            file_options.clone(),
        );
        // Start-up reads the file's tail: off the executor.
        let sink =
            tokio::task::spawn_blocking(move || FileSink::open(&path2, &key2, state2, options2))
                .await??;
        let options = SinkOptions {
            required: audit.required,
            deadline: std::time::Duration::from_millis(audit.deadline_ms),
            queue: audit.queue,
        };
        trail.add_file(sink, options);
        tracing::info!(file = %path.display(), required = options.required,
            sync = ?audit.sync, "audit trail on");
    } else if !trail.is_enabled() {
        tracing::warn!("no audit sink configured: decisions are not recorded (set [audit] file)");
    }
    Ok(trail)
}

/// Once a minute, drops the rate-limit buckets of callers and sources that
/// are idle again (bounded memory however many sources come and go).
async fn forget_idle_callers(state: Arc<State>) {
    let mut every = tokio::time::interval(std::time::Duration::from_secs(60));
    loop {
        every.tick().await;
        state.policy().forget_idle_callers();
    }
}

/// The keyring file SIGHUP reloads, and the vault that takes it.
struct KeyringReload {
    path: std::path::PathBuf,
    vault: Arc<Vault>,
}

impl KeyringReload {
    /// Reads the keyring again; the vault takes it unless it lacks a key
    /// still in use, and the audit files hand their chain over to the new
    /// checkpoint key. A broken file keeps the current keyring.
    async fn reload(&self, audit: &AuditTrail) {
        let path = self.path.clone();
        let read = tokio::task::spawn_blocking(move || MasterKey::from_file(&path)).await;
        let ring = match read {
            Ok(Ok(ring)) => ring,
            Ok(Err(err)) => {
                tracing::error!(error = %err, "cannot reload the keyring; keeping the current one");
                return;
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot reload the keyring; keeping the current one");
                return;
            }
        };
        let newest = ring.id();
        let changed = newest != self.vault.key_id();
        match self.vault.set_keyring(ring.clone()).await {
            Ok(()) if changed => {
                audit.set_signer(&ring).await;
                tracing::info!(newest = %newest,
                    "new master key: new writes are sealed under it; re-sealing every record");
            }
            Ok(()) => {}
            Err(err) => tracing::error!(error = %err, "keyring not reloaded"),
        }
    }
}

/// SIGHUP: reload the policy, the TLS certificates and the keyring (a
/// broken file keeps the old ones) and reopen audit files (log rotation).
async fn reload_on_sighup(
    state: Arc<State>,
    tls: Vec<Arc<crate::transport::TlsReloader>>,
    keyring: Option<KeyringReload>,
) {
    let Ok(mut hangup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
    else {
        return;
    };
    while hangup.recv().await.is_some() {
        tracing::info!("SIGHUP: reloading the policy and TLS certificates, reopening audit files");
        let _ = state.policy().reload();
        for reloader in &tls {
            let reloader = Arc::clone(reloader);
            let _ = tokio::task::spawn_blocking(move || reloader.reload()).await;
        }
        state.audit().reopen().await;
        if let Some(keyring) = &keyring {
            keyring.reload(state.audit()).await;
        }
    }
}

#[cfg(unix)]
fn restrict_permissions(dir: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    if let Err(err) = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)) {
        tracing::warn!(dir = %dir.display(), %err, "cannot restrict the data directory to its owner");
    }
}

#[cfg(not(unix))]
fn restrict_permissions(_dir: &Path) {}

/// Installs SIGTERM/SIGINT handlers now (before the daemon says it is
/// listening, so an early signal is never missed) and resolves on either.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = interrupt.recv() => {}
        }
        tracing::info!("shutdown requested; draining in-flight calls");
    })
}
