//! `twilio-broker plugin check PATH [--config JSON]`: loads a plugin library
//! the way `serve` would, reports what it is, and runs the SDK's conformance
//! suite for its kind against it, through the same guarded host calls the
//! daemon uses.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use tokio::runtime::Handle;
use twilio_broker_plugin_sdk::abi::{TB_ABI_VERSION, TB_ABI_VERSION_OLDEST};
use twilio_broker_plugin_sdk::{Audit, PluginError, conformance};

use crate::plugin_host::{self, Loaded, PluginAuditSink, PluginSpec, Sha256Pin};
use crate::store::{BlockingStore, Store};

/// Plugin subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Load a plugin library, report its kind and ABI version, and run the
    /// conformance suite of its kind against it. A storage suite writes and
    /// then deletes keys under `conformance/`; an audit suite records events
    /// of type `plugin.conformance`: point the plugin at a test backend.
    Check(CheckArgs),
}

/// Arguments of `plugin check`.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// The shared library (.so / .dylib).
    path: PathBuf,
    /// The plugin's configuration as JSON: what `config = {...}` holds in
    /// its [[plugins]] entry.
    #[arg(long, default_value = "{}")]
    config: String,
    /// Refuse the file unless its SHA-256 is this (64 hex digits).
    #[arg(long)]
    sha256: Option<Sha256Pin>,
    /// Per-call time-out in milliseconds [default: 5000].
    #[arg(long)]
    timeout_ms: Option<u64>,
}

/// Runs a plugin subcommand.
pub async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Check(args) => check(args).await,
    }
}

async fn check(args: CheckArgs) -> anyhow::Result<()> {
    let config: serde_json::Value =
        serde_json::from_str(&args.config).context("--config is not valid JSON")?;
    let inspected = plugin_host::inspect(args.path.clone(), args.sha256.clone()).await?;
    println!("plugin:       {}", args.path.display());
    println!("sha256:       {}", inspected.sha256);
    println!(
        "ABI version:  {} (this broker loads {TB_ABI_VERSION_OLDEST} to {TB_ABI_VERSION})",
        inspected.abi_version
    );
    println!("kind:         {}", inspected.kind);
    println!("name:         {}", inspected.name);
    println!(
        "version:      {}",
        inspected.plugin_version.as_deref().unwrap_or("(none)")
    );
    let mut spec = PluginSpec::new(args.path, inspected.kind);
    spec.config = Some(config);
    spec.timeout_ms = args.timeout_ms;
    let loaded = plugin_host::init(&spec, inspected).await?;
    println!("init:         ok");
    let runtime = Handle::current();
    let report = match loaded {
        Loaded::Storage(store) => {
            let store: Arc<dyn Store> = Arc::new(store);
            let blocking = BlockingStore::new(store, runtime).await;
            tokio::task::spawn_blocking(move || conformance::storage::run(&blocking)).await?
        }
        Loaded::Audit(sink) => {
            let sink = Arc::new(sink);
            let blocking = BlockingAudit {
                sink: Arc::clone(&sink),
                runtime,
            };
            let report =
                tokio::task::spawn_blocking(move || conformance::audit::run(&blocking, None))
                    .await?;
            sink.close().await?;
            report
        }
    };
    println!("{report}");
    if !report.passed() {
        anyhow::bail!("the plugin does not conform (see FAIL above)");
    }
    Ok(())
}

/// A [`PluginAuditSink`] driven from the conformance suite's threads.
struct BlockingAudit {
    sink: Arc<PluginAuditSink>,
    runtime: Handle,
}

fn sdk_error(err: plugin_host::PluginError) -> PluginError {
    PluginError::failed(err)
}

impl Audit for BlockingAudit {
    fn record(&self, event_json: &str) -> Result<(), PluginError> {
        self.runtime
            .block_on(self.sink.record_json(event_json.as_bytes()))
            .map_err(sdk_error)
    }

    fn flush(&self) -> Result<(), PluginError> {
        self.runtime.block_on(self.sink.flush()).map_err(sdk_error)
    }
}
