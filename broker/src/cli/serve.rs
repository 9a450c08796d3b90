//! `twilio-broker serve`: resolves configuration, opens the vault and runs the
//! server until SIGTERM or SIGINT.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use tracing_subscriber::EnvFilter;

use crate::audit::{AuditTrail, FileOptions, FileSink, PluginSink, SinkOptions};
use crate::config::{FileConfig, LogFormat};
use crate::master_key::MasterKey;
use crate::plugin_host::Plugins;
use crate::policy::{PolicyEngine, Source};
use crate::server::{self, State};
use crate::state_file::StateFile;
use crate::store::{SledStore, Store, Vault};
use crate::transport::{ListenerSpec, TlsSettings};

/// Arguments of `serve`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Listener, repeatable: HOST:PORT (plaintext on loopback only, or TLS
    /// with --tls-cert) or unix:/path [default: 127.0.0.1:50051].
    #[arg(long, env = "TWILIO_BROKER_LISTEN", value_delimiter = ',')]
    listen: Vec<String>,
    /// PEM certificate chain: serve TCP listeners given with --listen over TLS.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// PEM CA bundle: require client certificates signed by it (mutual TLS).
    #[arg(long, requires = "tls_cert", env = "TWILIO_BROKER_TLS_CLIENT_CA")]
    tls_client_ca: Option<PathBuf>,
    /// With --tls-client-ca: `required` (default) refuses clients without a
    /// certificate; `optional` serves them as `anonymous-tls`.
    #[arg(long, value_enum, requires = "tls_client_ca")]
    tls_client_auth: Option<crate::transport::ClientAuth>,
    /// With --tls-client-ca: PEM certificate revocation lists; a revoked
    /// client certificate fails the handshake.
    #[arg(long, requires = "tls_client_ca", env = "TWILIO_BROKER_TLS_CRL")]
    tls_crl: Option<PathBuf>,
    /// Caller policy file (TOML). Required unless --dev.
    #[arg(long, env = "TWILIO_BROKER_POLICY")]
    policy: Option<PathBuf>,
    /// Audit trail file (JSON lines, hash-chained).
    #[arg(long, env = "TWILIO_BROKER_AUDIT_FILE")]
    audit_file: Option<PathBuf>,
    /// The sealed state file (audit chain anchors, the store's high-water
    /// mark) [default: <data-dir>.state].
    #[arg(long, env = "TWILIO_BROKER_STATE_FILE")]
    state_file: Option<PathBuf>,
    /// Start even though the store is older than the state file's
    /// high-water mark (a restored backup); the mark is lowered to it.
    #[arg(long)]
    accept_rollback: bool,
    /// Start even though the audit file ends before the head anchored in the
    /// state file (lines were cut); the acceptance is recorded in the chain.
    #[arg(long)]
    accept_audit_truncation: bool,
    /// Prometheus metrics listener, e.g. 127.0.0.1:9464.
    #[arg(long, env = "TWILIO_BROKER_METRICS_LISTEN")]
    metrics_listen: Option<SocketAddr>,
    /// Data directory of the embedded store.
    #[arg(long, env = "TWILIO_BROKER_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Config file (TOML; unknown keys are an error).
    #[arg(long, env = "TWILIO_BROKER_CONFIG")]
    config: Option<PathBuf>,
    /// Development mode: loopback only, every caller allowed (unless --policy);
    /// without a master key, a throw-away key; without a data directory, a
    /// throw-away store.
    #[arg(long)]
    dev: bool,
    /// Seconds to keep answering after SIGTERM with health NOT_SERVING
    /// (config `shutdown_grace_seconds`; default 0).
    #[arg(long, env = "TWILIO_BROKER_SHUTDOWN_GRACE_SECONDS")]
    shutdown_grace_seconds: Option<u64>,
    /// Log format; the level comes from RUST_LOG (default info).
    #[arg(long, value_enum)]
    log_format: Option<LogFormat>,
}

/// The master key from TWILIO_BROKER_MASTER_KEY / TWILIO_BROKER_MASTER_KEY_FILE,
/// else from the config's `master_key_file`.
pub fn master_key_from_env(config_file: Option<&Path>) -> anyhow::Result<Option<MasterKey>> {
    let inline = crate::master_key::env_value();
    let file = std::env::var_os("TWILIO_BROKER_MASTER_KEY_FILE").map(PathBuf::from);
    let from_env =
        MasterKey::from_env_values(inline.as_deref().map(String::as_str), file.as_deref())?;
    match (from_env, config_file) {
        (Some(key), _) => Ok(Some(key)),
        (None, Some(path)) => Ok(Some(MasterKey::from_file(path)?)),
        (None, None) => Ok(None),
    }
}

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
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
    let file = match &args.config {
        Some(path) => FileConfig::load(path)?,
        None => FileConfig::default(),
    };
    init_logging(args.log_format.or(file.log_format).unwrap_or_default());

    let listeners = listener_specs(&args, &file)?;
    for listener in &listeners {
        listener.check(args.dev)?;
    }

    let key = match master_key_from_env(file.master_key_file.as_deref())? {
        Some(key) => key,
        None if args.dev => {
            tracing::warn!(
                "DEV MODE: no master key given, so a throw-away key was generated. Anything stored \
                 now cannot be opened after a restart. Never run production like this."
            );
            MasterKey::generate()
        }
        None => return Err(crate::master_key::MasterKeyError::Missing.into()),
    };

    let data_dir = args.data_dir.clone().or(file.data_dir.clone());
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
        (None, None) if args.dev => {
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
    let policy = match args.policy.clone().or(file.policy.clone()) {
        Some(path) => PolicyEngine::load(Source::File(path))?,
        None if args.dev => {
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

    if let Some(addr) = args.metrics_listen.or(file.metrics_listen) {
        crate::telemetry::install(addr)?;
        tracing::info!("metrics on http://{addr}/metrics");
    }

    let oauth = file
        .oauth
        .resolve(std::env::var("TWILIO_BROKER_OAUTH_TOKEN_URL").ok())?;
    tracing::info!(token_url = %oauth.token_url, "OAuth token endpoint");
    crate::store::vault::check_master_key(store.as_ref(), &key).await?;
    let state_file = open_state_file(&args, &file, data_dir.as_deref(), &key)?;
    let audit = audit_trail(&args, &file, &key, &plugins, state_file.as_ref()).await?;
    let options = crate::store::vault::VaultOptions {
        state_file,
        accept_rollback: args.accept_rollback,
    };
    let vault = Arc::new(Vault::open_with(Arc::clone(&store), key, options).await?);
    // Replicas sharing a store (a storage plugin) follow each other's writes.
    let follower = Arc::clone(&vault).follow(store.change_feed().await);
    let bearer = crate::bearer::Bearers::connect(Arc::clone(&vault), oauth)?;
    let _sweeper = bearer.spawn_sweeper(crate::bearer::SWEEP_PERIOD);
    file.limits.check()?;
    let grace = args
        .shutdown_grace_seconds
        .or(file.shutdown_grace_seconds)
        .unwrap_or(0);
    let state = Arc::new(
        State::new(vault, policy, audit, bearer)
            .with_limits(file.limits)
            .with_shutdown_grace(std::time::Duration::from_secs(grace)),
    );
    let shutdown = shutdown_signal()?;
    let bound = crate::transport::bind_all(&listeners).await?;
    for listener in &bound {
        tracing::info!("twilio-broker listening on {}", listener.describe());
    }
    crate::notify::ready();
    let _watchdog = crate::notify::spawn_watchdog();
    tokio::spawn(reload_on_sighup(Arc::clone(&state)));
    tokio::spawn(forget_idle_callers(Arc::clone(&state)));
    let served = server::run(bound, state, shutdown).await;
    follower.abort();
    plugins.close().await;
    served?;
    tracing::info!("twilio-broker stopped");
    Ok(())
}

/// The state file: `--state-file`, `state_file`, else `<data-dir>.state`
/// (with a storage plugin too: it only needs to be outside the database).
/// None only for a throw-away store.
fn open_state_file(
    args: &Args,
    file: &FileConfig,
    data_dir: Option<&Path>,
    key: &MasterKey,
) -> anyhow::Result<Option<Arc<crate::state_file::StateFile>>> {
    let path = match (
        args.state_file.clone().or(file.state_file.clone()),
        data_dir,
    ) {
        (Some(path), _) => path,
        (None, Some(dir)) => crate::state_file::default_path(dir),
        (None, None) if args.dev => {
            tracing::warn!(
                "DEV MODE: no state file, so a rolled-back store would not be noticed at start-up"
            );
            return Ok(None);
        }
        (None, None) => anyhow::bail!(
            "no state file: pass --state-file, set TWILIO_BROKER_STATE_FILE or `state_file` in \
             the config (a path outside the data directory and the database)"
        ),
    };
    Ok(Some(Arc::new(crate::state_file::StateFile::open(
        &path,
        key.clone(),
    )?)))
}

fn listener_specs(args: &Args, file: &FileConfig) -> anyhow::Result<Vec<ListenerSpec>> {
    if !args.listen.is_empty() {
        let tls = match (&args.tls_cert, &args.tls_key) {
            (Some(cert), Some(key)) => Some(TlsSettings {
                cert: cert.clone(),
                key: key.clone(),
                client_ca: args.tls_client_ca.clone(),
                client_auth: args.tls_client_auth,
                crl: args.tls_crl.clone(),
            }),
            _ => None,
        };
        return args
            .listen
            .iter()
            .map(|address| {
                let tls = if address.starts_with("unix:") {
                    None
                } else {
                    tls.clone()
                };
                ListenerSpec::parse(address, tls, None)
            })
            .collect();
    }
    let mut specs = Vec::new();
    if let Some(addr) = file.listen {
        specs.push(ListenerSpec::Tcp { addr, tls: None });
    }
    for listener in &file.listeners {
        specs.push(ListenerSpec::parse(
            &listener.address,
            listener.tls.clone(),
            listener.mode.as_deref(),
        )?);
    }
    if specs.is_empty() {
        specs.push(ListenerSpec::parse(
            crate::config::DEFAULT_LISTEN,
            None,
            None,
        )?);
    }
    Ok(specs)
}

async fn audit_trail(
    args: &Args,
    file: &FileConfig,
    key: &MasterKey,
    plugins: &Plugins,
    state: Option<&Arc<StateFile>>,
) -> anyhow::Result<AuditTrail> {
    let mut trail = AuditTrail::disabled();
    let file_options = FileOptions {
        sync: file.audit.sync,
        checkpoint_events: file.audit.checkpoint_events.max(1),
        checkpoint_interval: std::time::Duration::from_millis(file.audit.checkpoint_ms),
        accept_truncation: args.accept_audit_truncation,
        queue: file.audit.queue,
    };
    for sink in &plugins.audit {
        let options = SinkOptions {
            required: sink.required(),
            deadline: std::time::Duration::from_millis(file.audit.deadline_ms),
            queue: file.audit.queue,
        };
        let chained = PluginSink::new(Arc::clone(sink), key, state.cloned(), &file_options);
        trail.add(Arc::new(chained), options);
        tracing::info!(
            plugin = sink.name(),
            required = options.required,
            "audit plugin on"
        );
    }
    if let Some(path) = args.audit_file.clone().or(file.audit.file.clone()) {
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
            required: file.audit.required,
            deadline: std::time::Duration::from_millis(file.audit.deadline_ms),
            queue: file.audit.queue,
        };
        trail.add_file(sink, options);
        tracing::info!(file = %path.display(), required = options.required,
            sync = ?file.audit.sync, "audit trail on");
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

/// SIGHUP: reload the policy (a broken file keeps the old one) and reopen
/// audit files (log rotation).
async fn reload_on_sighup(state: Arc<State>) {
    let Ok(mut hangup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
    else {
        return;
    };
    while hangup.recv().await.is_some() {
        tracing::info!("SIGHUP: reloading the policy and reopening audit files");
        let _ = state.policy().reload();
        state.audit().reopen().await;
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
