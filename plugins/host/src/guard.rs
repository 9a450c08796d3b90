//! Every call into a plugin goes through a [`Guard`]: it runs on tokio's
//! blocking pool (never on an executor thread), is abandoned after a
//! time-out, and counts against a limit of calls in flight so a plugin that
//! never returns cannot take every thread.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::Semaphore;

use super::{MAX_IN_FLIGHT, PluginError};

/// Time-out, in-flight limit and closed state of one plugin.
pub(super) struct Guard {
    plugin: String,
    timeout: Duration,
    /// One permit per call in flight; a call abandoned after its time-out
    /// keeps its permit until the plugin returns.
    permits: Arc<Semaphore>,
    /// Set once `close` has run (or been given up): no call may follow.
    closed: AtomicBool,
}

impl Guard {
    /// A guard for `plugin` with a per-call `timeout`.
    pub(super) fn new(plugin: &str, timeout: Duration) -> Self {
        Guard {
            plugin: plugin.to_owned(),
            timeout,
            permits: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
            closed: AtomicBool::new(false),
        }
    }

    /// The per-call time-out.
    pub(super) fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Runs `call` off the executor with the guard's time-out.
    pub(super) async fn call<T: Send + 'static>(
        &self,
        op: &'static str,
        call: impl FnOnce() -> Result<T, PluginError> + Send + 'static,
    ) -> Result<T, PluginError> {
        self.call_within(op, self.timeout, call).await
    }

    /// Runs `call` off the executor, abandoning it after `timeout`.
    pub(super) async fn call_within<T: Send + 'static>(
        &self,
        op: &'static str,
        timeout: Duration,
        call: impl FnOnce() -> Result<T, PluginError> + Send + 'static,
    ) -> Result<T, PluginError> {
        let closed = || PluginError::Closed {
            plugin: self.plugin.clone(),
        };
        if self.closed.load(Ordering::Acquire) {
            return Err(closed());
        }
        let permit =
            Arc::clone(&self.permits)
                .try_acquire_owned()
                .map_err(|_| PluginError::Saturated {
                    plugin: self.plugin.clone(),
                })?;
        // `close` sets the flag while holding every permit: a call that got
        // a permit after that sees it here.
        if self.closed.load(Ordering::Acquire) {
            return Err(closed());
        }
        let task = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            call()
        });
        match tokio::time::timeout(timeout, task).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(PluginError::Failed {
                plugin: self.plugin.clone(),
                op,
                reason: "the broker's side of the call panicked (a bug; see the log)".into(),
            }),
            Err(_) => {
                tracing::warn!(plugin = %self.plugin, op, timeout_ms = timeout.as_millis() as u64,
                    "plugin call timed out; abandoning it");
                Err(PluginError::TimedOut {
                    plugin: self.plugin.clone(),
                    op,
                    after: timeout,
                })
            }
        }
    }

    /// Runs `close` once no other call is in flight, and refuses every call
    /// afterwards. When earlier calls are still stuck after the time-out,
    /// `close` is skipped (calling it would free a handle in use).
    pub(super) async fn close(
        &self,
        close: impl FnOnce() -> Result<(), PluginError> + Send + 'static,
    ) -> Result<(), PluginError> {
        let all = u32::try_from(MAX_IN_FLIGHT).unwrap_or(u32::MAX);
        let permits = Arc::clone(&self.permits);
        let Ok(Ok(held)) =
            tokio::time::timeout(self.timeout, permits.acquire_many_owned(all)).await
        else {
            self.closed.store(true, Ordering::Release);
            return Err(PluginError::Failed {
                plugin: self.plugin.clone(),
                op: "close",
                reason: "earlier calls never returned, so close was skipped".into(),
            });
        };
        if self.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let task = tokio::task::spawn_blocking(move || {
            let _held = held;
            close()
        });
        match tokio::time::timeout(self.timeout, task).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) | Err(_) => Err(PluginError::TimedOut {
                plugin: self.plugin.clone(),
                op: "close",
                after: self.timeout,
            }),
        }
    }
}
