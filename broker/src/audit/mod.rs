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
//! - A non-required sink gets a bounded queue; what does not fit is dropped,
//!   counted, and named by a gap record in that sink's chain.
//! - Every sink's stream is a chain (`chain.rs`): SHA-256 links, a start
//!   line saying where it continues from, Ed25519-signed checkpoints; the
//!   built-in file's head is anchored in the state file.
//! - PutCredential and DeleteCredential record an intent event before the
//!   store changes; if it cannot be recorded, nothing changes.
//!
//! [`AuditSink`] is the small, stable interface sinks implement: the built-in
//! JSON-lines file, and audit plugins.

mod chain;
mod event;
mod file_sink;
#[cfg(test)]
mod model_check;
mod plugin_sink;
mod recent;
mod trail;

use std::sync::Arc;

pub use chain::{
    Chain, Gap, PublicKey, Signer, SignerRecord, VerifyKeys, hex, unhex, verify_files,
};
pub use event::{AuditEvent, Decision, cap, rfc3339};
pub use file_sink::{FileOptions, FileSink, STATE_NAME, SyncMode, on_worker_park};
pub use plugin_sink::PluginSink;
pub use recent::{Recent, Tap};
pub use trail::{AuditTrail, SinkOptions};

/// Why a sink could not record.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct AuditError(pub String);

/// Where audit events go (audit plugins, behind a worker task and a bounded
/// queue). Implementations record a batch in order and return once the
/// events are held by the sink's medium.
#[async_trait::async_trait]
pub trait AuditSink: Send + Sync + 'static {
    /// A short name for logs and metrics.
    fn name(&self) -> &str;
    /// Records serialised events (JSON objects), in order.
    async fn record(&self, batch: &[Arc<[u8]>]) -> Result<(), AuditError>;
    /// Records that `gap.dropped` events did not fit the queue. Default:
    /// nothing (a sink without a chain has no way to say it).
    async fn record_gap(&self, _gap: Gap) -> Result<(), AuditError> {
        Ok(())
    }
    /// Makes recorded events durable.
    async fn flush(&self) -> Result<(), AuditError>;
    /// Reopens the medium (log rotation on SIGHUP). Default: nothing to do.
    async fn reopen(&self) -> Result<(), AuditError> {
        Ok(())
    }
}
