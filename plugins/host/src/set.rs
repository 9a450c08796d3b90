//! [`Plugins`]: every plugin of the config, loaded at start-up, closed at
//! shutdown.

use std::sync::Arc;

use super::{Loaded, PluginAuditSink, PluginKind, PluginSpec, PluginStore, load};

/// The loaded plugins, by role.
#[derive(Default)]
pub struct Plugins {
    /// The storage backend, when one is configured (it replaces sled).
    pub storage: Option<Arc<PluginStore>>,
    /// The audit sinks, in config order.
    pub audit: Vec<Arc<PluginAuditSink>>,
}

impl Plugins {
    /// Loads every `[[plugins]]` entry in order; the first refusal stops
    /// start-up with its message.
    pub async fn load_all(specs: &[PluginSpec]) -> anyhow::Result<Self> {
        let storage_entries = specs
            .iter()
            .filter(|s| s.kind == PluginKind::Storage)
            .count();
        if storage_entries > 1 {
            anyhow::bail!(
                "{storage_entries} [[plugins]] entries have kind = \"storage\"; at most one store \
                 can hold the credentials"
            );
        }
        let mut plugins = Plugins::default();
        for spec in specs {
            match load(spec).await? {
                Loaded::Storage(store) => plugins.storage = Some(Arc::new(store)),
                Loaded::Audit(sink) => plugins.audit.push(Arc::new(sink)),
            }
        }
        Ok(plugins)
    }

    /// Flushes and closes every plugin (each once no call of it is in
    /// flight), logging what fails.
    pub async fn close(&self) {
        for sink in &self.audit {
            if let Err(err) = sink.close().await {
                tracing::warn!(error = %err, "audit plugin did not close cleanly");
            }
        }
        if let Some(store) = &self.storage
            && let Err(err) = store.close().await
        {
            tracing::warn!(error = %err, "storage plugin did not close cleanly");
        }
    }
}
