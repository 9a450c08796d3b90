//! [`PluginAuditSink`]: an audit plugin behind the guard. The audit layer
//! adapts it to its `AuditSink` trait; this type knows only JSON bytes.

use std::sync::Arc;

use super::PluginError;
use super::guard::Guard;
use super::raw::RawPlugin;

/// A loaded audit sink plugin.
pub struct PluginAuditSink {
    raw: Arc<RawPlugin>,
    guard: Guard,
    required: bool,
}

impl PluginAuditSink {
    pub(super) fn new(raw: RawPlugin, guard: Guard, required: bool) -> Self {
        PluginAuditSink {
            raw: Arc::new(raw),
            guard,
            required,
        }
    }

    /// The plugin's name (from its table).
    pub fn name(&self) -> &str {
        &self.raw.name
    }

    /// True when a failure of this sink must refuse the audited request.
    pub fn required(&self) -> bool {
        self.required
    }

    /// Records one event (a JSON object), contained: an error, a panic in
    /// the plugin, garbage or a time-out all come back as [`PluginError`].
    pub async fn record_json(&self, event_json: &[u8]) -> Result<(), PluginError> {
        let raw = Arc::clone(&self.raw);
        let event = event_json.to_vec();
        self.guard.call("record", move || raw.record(&event)).await
    }

    /// Makes every recorded event durable.
    pub async fn flush(&self) -> Result<(), PluginError> {
        let raw = Arc::clone(&self.raw);
        self.guard.call("flush", move || raw.flush()).await
    }

    /// Flushes and closes the sink once no call is in flight; every later
    /// call fails with [`PluginError::Closed`].
    pub async fn close(&self) -> Result<(), PluginError> {
        let raw = Arc::clone(&self.raw);
        // SAFETY: `RawPlugin::close` needs no other call running or starting
        // afterwards; the guard runs it with every permit held and refuses
        // all later calls.
        self.guard.close(move || unsafe { raw.close() }).await
    }
}
