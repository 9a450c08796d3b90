//! `twilio-broker serve`: resolves configuration, opens the vault and runs the
//! server until SIGTERM or SIGINT.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use tracing_subscriber::EnvFilter;

use crate::config::{FileConfig, LogFormat};
use crate::master_key::MasterKey;
use crate::server::{self, State};
use crate::store::{SledStore, Store, Vault};

/// Arguments of `serve`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// gRPC listen address [default: 127.0.0.1:50051]. Plaintext is loopback only.
    #[arg(long, env = "TWILIO_BROKER_LISTEN")]
    listen: Option<SocketAddr>,
    /// Data directory of the embedded store.
    #[arg(long, env = "TWILIO_BROKER_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Config file (TOML; unknown keys are an error).
    #[arg(long, env = "TWILIO_BROKER_CONFIG")]
    config: Option<PathBuf>,
    /// Development mode: loopback only; without a master key, a throw-away
    /// key; without a data directory, a throw-away store.
    #[arg(long)]
    dev: bool,
    /// Log format; the level comes from RUST_LOG (default info).
    #[arg(long, value_enum)]
    log_format: Option<LogFormat>,
}

/// The master key from TWILIO_BROKER_MASTER_KEY / TWILIO_BROKER_MASTER_KEY_FILE,
/// else from the config's `master_key_file`.
pub fn master_key_from_env(config_file: Option<&Path>) -> anyhow::Result<Option<MasterKey>> {
    let inline = std::env::var("TWILIO_BROKER_MASTER_KEY").ok();
    let file = std::env::var_os("TWILIO_BROKER_MASTER_KEY_FILE").map(PathBuf::from);
    let inline = inline.map(zeroize::Zeroizing::new);
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

    let listen = args.listen.or(file.listen).unwrap_or_else(|| {
        crate::config::DEFAULT_LISTEN
            .parse()
            .unwrap_or_else(|_| unreachable!())
    });
    if !listen.ip().is_loopback() {
        anyhow::bail!(
            "refusing to serve plaintext gRPC on {listen}: only loopback addresses (127.0.0.0/8, ::1) \
             may be used without TLS"
        );
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

    let data_dir = args.data_dir.or(file.data_dir);
    let store: Arc<dyn Store> = match &data_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create the data directory {}", dir.display()))?;
            restrict_permissions(dir);
            Arc::new(SledStore::open(dir)?)
        }
        None if args.dev => {
            tracing::warn!(
                "DEV MODE: no data directory given, so credentials live in a throw-away store \
                 that is deleted at exit"
            );
            Arc::new(SledStore::temporary()?)
        }
        None => anyhow::bail!(
            "no data directory: pass --data-dir, set TWILIO_BROKER_DATA_DIR or `data_dir` in the \
             config (or use --dev for a throw-away store)"
        ),
    };
    if args.dev {
        tracing::warn!("DEV MODE: plaintext loopback listener; not for production");
    }

    let oauth = file
        .oauth
        .resolve(std::env::var("TWILIO_BROKER_OAUTH_TOKEN_URL").ok())?;
    tracing::info!(token_url = %oauth.token_url, "OAuth token endpoint");

    let vault = Arc::new(Vault::open(store, key).await?);
    let bearer = crate::bearer::Bearers::connect(Arc::clone(&vault), oauth)?;
    let _sweeper = bearer.spawn_sweeper(crate::bearer::SWEEP_PERIOD);
    let state = Arc::new(State::new(vault, bearer));
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let local = listener.local_addr()?;
    let shutdown = shutdown_signal()?;
    tracing::info!("twilio-broker listening on {local}");
    server::run(listener, state, shutdown).await?;
    tracing::info!("twilio-broker stopped");
    Ok(())
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

/// Resolves on SIGTERM or SIGINT. The handlers are installed here, before
/// the broker says it is listening, so a signal sent right after that line
/// is never met by the default action (an abrupt exit).
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    let (mut term, mut interrupt) = {
        use tokio::signal::unix::{SignalKind, signal};
        let term = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
        let interrupt = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
        (term, interrupt)
    };
    Ok(async move {
        #[cfg(unix)]
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = term.recv() => {}
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutdown requested; draining in-flight calls");
    })
}
