//! The audit trail: one structured event per RPC, allowed or denied, fanned
//! out to sinks.
//!
//! **Invariants:**
//! - An event never holds a secret or a token: it is built from the request's
//!   names and the response's `jti` and expiry only ([`AuditEvent`] has no
//!   field that could carry one).
//! - A required sink that cannot record an event within its deadline fails
//!   the request (UNAVAILABLE): the broker never acts unaudited. A slow or
//!   hung sink never stalls a request past that deadline.
//! - A non-required sink gets a bounded queue; what does not fit is dropped
//!   and counted.
//!
//! [`AuditSink`] is the small, stable interface sinks implement: the built-in
//! JSON-lines file, and audit plugins.

mod chain;
mod event;
mod file_sink;
#[cfg(test)]
mod model_check;
mod plugin_sink;
mod trail;

use std::sync::Arc;

pub use chain::{ChainKey, VerifyReport, verify_file};
pub use event::{AuditEvent, Decision, MAX_AUDITED_LEN, cap, rfc3339};
pub use file_sink::FileSink;
pub use plugin_sink::PluginSink;
pub use trail::{AuditTrail, SinkOptions};

/// Why a sink could not record.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct AuditError(pub String);

/// Where audit events go. Implementations record a batch in order and return
/// once the events are held by the sink's medium.
#[async_trait::async_trait]
pub trait AuditSink: Send + Sync + 'static {
    /// A short name for logs and metrics.
    fn name(&self) -> &str;
    /// Records events, in order.
    async fn record(&self, batch: &[Arc<AuditEvent>]) -> Result<(), AuditError>;
    /// Makes recorded events durable.
    async fn flush(&self) -> Result<(), AuditError>;
    /// Reopens the medium (log rotation on SIGHUP). Default: nothing to do.
    async fn reopen(&self) -> Result<(), AuditError> {
        Ok(())
    }
}
