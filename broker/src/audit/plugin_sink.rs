//! Audit plugins as [`AuditSink`]s: each event goes to the plugin as one
//! JSON document. The plugin host already bounds every call with a time-out
//! and contains panics; the trail adds the queue and the required deadline.

use std::sync::Arc;

use super::{AuditError, AuditEvent, AuditSink};
use crate::plugin_host::PluginAuditSink;

/// An audit plugin behind the [`AuditSink`] interface.
pub struct PluginSink {
    plugin: Arc<PluginAuditSink>,
    name: String,
}

impl PluginSink {
    /// Wraps a loaded audit plugin.
    pub fn new(plugin: Arc<PluginAuditSink>) -> Self {
        PluginSink {
            name: format!("plugin:{}", plugin.name()),
            plugin,
        }
    }
}

#[async_trait::async_trait]
impl AuditSink for PluginSink {
    fn name(&self) -> &str {
        &self.name
    }

    async fn record(&self, batch: &[Arc<AuditEvent>]) -> Result<(), AuditError> {
        for event in batch {
            let json = serde_json::to_vec(event.as_ref()).map_err(|e| AuditError(e.to_string()))?;
            self.plugin
                .record_json(&json)
                .await
                .map_err(|e| AuditError(e.to_string()))?;
        }
        Ok(())
    }

    async fn flush(&self) -> Result<(), AuditError> {
        self.plugin
            .flush()
            .await
            .map_err(|e| AuditError(e.to_string()))
    }
}
