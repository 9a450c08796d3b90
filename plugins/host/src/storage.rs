//! [`PluginStore`]: a storage plugin as the broker's [`Store`], behind the
//! guard. Every failure becomes [`StoreError::Unavailable`] (UNAVAILABLE to
//! a caller) naming the plugin and the call.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::PluginError;
use super::guard::Guard;
use super::raw::RawPlugin;
use twilio_broker_store_api::{Cas, ChangeFeed, Changes, Store, StoreError, Versioned};

/// How long one `wait_for_change` call may block in the plugin.
const WAIT_MS: u32 = 1_000;
/// How often to re-read a plugin store that cannot report changes.
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// Pause after a failed `wait_for_change` before the next.
const WAIT_RETRY: Duration = Duration::from_secs(1);

/// A loaded storage plugin.
pub struct PluginStore {
    raw: Arc<RawPlugin>,
    guard: Arc<Guard>,
}

fn unavailable(err: PluginError) -> StoreError {
    StoreError::Unavailable(err.to_string())
}

impl PluginStore {
    pub(super) fn new(raw: RawPlugin, guard: Guard) -> Self {
        PluginStore {
            raw: Arc::new(raw),
            guard: Arc::new(guard),
        }
    }

    /// The plugin's name (from its table).
    pub fn name(&self) -> &str {
        &self.raw.name
    }

    async fn call<T: Send + 'static>(
        &self,
        op: &'static str,
        call: impl FnOnce(&RawPlugin) -> Result<T, PluginError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let raw = Arc::clone(&self.raw);
        self.guard
            .call(op, move || call(&raw))
            .await
            .map_err(unavailable)
    }

    /// Closes the plugin once no call is in flight.
    pub async fn close(&self) -> Result<(), PluginError> {
        let raw = Arc::clone(&self.raw);
        // SAFETY: `RawPlugin::close` needs no other call running or starting
        // afterwards; the guard runs it with every permit held and refuses
        // all later calls.
        self.guard.close(move || unsafe { raw.close() }).await
    }

    /// Long-polls `wait_for_change` and publishes each new generation until
    /// nobody listens.
    async fn watch(raw: Arc<RawPlugin>, guard: Arc<Guard>, tx: watch::Sender<u64>) {
        let mut generation = *tx.borrow();
        let within = Duration::from_millis(u64::from(WAIT_MS)) + guard.timeout();
        while !tx.is_closed() {
            let call_raw = Arc::clone(&raw);
            let answer = guard
                .call_within("wait_for_change", within, move || {
                    call_raw.wait_for_change(generation, WAIT_MS)
                })
                .await;
            match answer {
                Ok(Some(now)) => {
                    if now != generation {
                        generation = now;
                        tx.send_replace(now);
                    }
                }
                Ok(None) => {
                    tracing::warn!(plugin = %raw.name, "storage plugin stopped reporting changes");
                    return;
                }
                Err(PluginError::Closed { .. }) => return,
                Err(err) => {
                    tracing::warn!(error = %err, "cannot wait for store changes; retrying");
                    // Changes may have been missed: make followers re-read.
                    generation = generation.wrapping_add(1);
                    tx.send_replace(generation);
                    tokio::time::sleep(WAIT_RETRY).await;
                }
            }
        }
    }
}

#[async_trait::async_trait]
impl Store for PluginStore {
    async fn get(&self, key: &str) -> Result<Option<Versioned>, StoreError> {
        let key = key.to_owned();
        self.call("get", move |raw| raw.get(&key)).await
    }

    async fn put(&self, key: &str, value: Vec<u8>) -> Result<u64, StoreError> {
        let key = key.to_owned();
        self.call("put", move |raw| raw.put(&key, &value)).await
    }

    async fn delete(&self, key: &str) -> Result<bool, StoreError> {
        let key = key.to_owned();
        self.call("delete", move |raw| raw.delete(&key)).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<(String, Versioned)>, StoreError> {
        let prefix = prefix.to_owned();
        self.call("list", move |raw| raw.list(&prefix)).await
    }

    async fn compare_and_swap(
        &self,
        key: &str,
        expected: u64,
        value: Vec<u8>,
    ) -> Result<Cas, StoreError> {
        let key = key.to_owned();
        self.call("compare_and_swap", move |raw| {
            raw.compare_and_swap(&key, expected, &value)
        })
        .await
    }

    async fn changes_since(
        &self,
        prefix: &str,
        cursor: u64,
    ) -> Result<Option<Changes>, StoreError> {
        let prefix = prefix.to_owned();
        self.call("changes_since", move |raw| {
            raw.changes_since(&prefix, cursor)
        })
        .await
    }

    async fn replace_all(
        &self,
        _prefix: &str,
        _entries: Vec<(String, Vec<u8>)>,
    ) -> Result<(), StoreError> {
        Err(StoreError::Backend(format!(
            "storage plugin {:?} cannot replace records atomically, so `rekey` is not \
             available for it",
            self.raw.name
        )))
    }

    async fn change_feed(&self) -> ChangeFeed {
        if !self.raw.can_wait() {
            return ChangeFeed::Poll(POLL_INTERVAL);
        }
        let probe = self
            .call("wait_for_change", |raw| raw.wait_for_change(u64::MAX, 0))
            .await;
        match probe {
            Ok(Some(generation)) => {
                let (tx, rx) = watch::channel(generation);
                tokio::spawn(Self::watch(
                    Arc::clone(&self.raw),
                    Arc::clone(&self.guard),
                    tx,
                ));
                ChangeFeed::Notified(rx)
            }
            Ok(None) => ChangeFeed::Poll(POLL_INTERVAL),
            Err(err) => {
                tracing::warn!(error = %err, "storage plugin cannot report changes; re-reading on a timer");
                ChangeFeed::Poll(POLL_INTERVAL)
            }
        }
    }
}
