//! The audit sink kind: receives one JSON event per call and makes it
//! durable (a file, a log pipeline, a message bus).

use crate::PluginError;

/// The operations of an audit sink. `record` may be called from many
/// threads at once.
pub trait Audit: Send + Sync {
    /// Records one event, a JSON object (already checked to be valid JSON).
    /// On `Ok` the event must survive a broker crash (written and synced, or
    /// acknowledged by a durable system), or `flush` must make it so.
    fn record(&self, event_json: &str) -> Result<(), PluginError>;
    /// Makes every event recorded so far durable.
    fn flush(&self) -> Result<(), PluginError>;
}

/// An audit sink the broker can load: [`Audit`] plus its life cycle.
/// Export it with [`export_audit_sink!`](crate::export_audit_sink).
pub trait AuditPlugin: Audit + Sized + 'static {
    /// A short name for logs and errors, e.g. `jsonl`.
    const NAME: &'static str;
    /// Builds the sink from the `config` table of its `[[plugins]]` entry.
    fn init(config: &serde_json::Value) -> Result<Self, PluginError>;
    /// Flushes and releases resources at shutdown.
    fn close(self) -> Result<(), PluginError> {
        self.flush()
    }
}
