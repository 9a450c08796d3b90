//! Audit plugins as [`AuditSink`]s. Each plugin gets its own chain: every
//! document handed to it is a chained line exactly like a line of the
//! built-in file (`seq`, `prev`, `hash`, a start line, signed checkpoints,
//! gap records), so a plugin's stream, exported as JSON lines, verifies with
//! `twilio-broker audit verify`. The plugin host already bounds every call
//! with a time-out and contains panics; the trail adds the queue and the
//! required deadline.

use std::sync::Arc;
use std::time::Duration;

use super::chain::{Chain, Gap, Signer};
use super::{AuditError, AuditSink};
use crate::plugin_host::PluginAuditSink;
use crate::state_file::StateFile;

struct Stream {
    chain: Chain,
    started: bool,
}

/// An audit plugin behind the [`AuditSink`] interface.
pub struct PluginSink {
    plugin: Arc<PluginAuditSink>,
    name: String,
    signer: Signer,
    stream: tokio::sync::Mutex<Stream>,
    state: Option<Arc<StateFile>>,
    checkpoint_events: u64,
    checkpoint_interval: Duration,
}

impl PluginSink {
    /// Wraps a loaded audit plugin; its chain continues from the head
    /// anchored in `state` (genesis without one).
    pub fn new(
        plugin: Arc<PluginAuditSink>,
        master: &crate::master_key::MasterKey,
        state: Option<Arc<StateFile>>,
        options: &super::FileOptions,
    ) -> Self {
        let name = format!("plugin:{}", plugin.name());
        let anchor = state.as_ref().and_then(|s| s.anchor(&name));
        PluginSink {
            plugin,
            signer: Signer::derive(master),
            stream: tokio::sync::Mutex::new(Stream {
                chain: Chain::after(anchor.as_ref()),
                started: false,
            }),
            state,
            name,
            checkpoint_events: options.checkpoint_events,
            checkpoint_interval: options.checkpoint_interval,
        }
    }

    /// Sends one chained line; the chain advances only when the plugin took it.
    async fn send(
        &self,
        stream: &mut Stream,
        build: impl FnOnce(&mut Chain, &mut Vec<u8>),
    ) -> Result<(), AuditError> {
        let mut next = stream.chain.clone();
        let mut line = Vec::new();
        build(&mut next, &mut line);
        let line = std::str::from_utf8(&line)
            .map_err(|e| AuditError(e.to_string()))?
            .trim_end();
        self.plugin
            .record_json(line.as_bytes())
            .await
            .map_err(|e| AuditError(e.to_string()))?;
        stream.chain = next;
        Ok(())
    }

    async fn start(&self, stream: &mut Stream) -> Result<(), AuditError> {
        if !stream.started {
            let signer = &self.signer;
            self.send(stream, |c, out| c.push_start(out, signer))
                .await?;
            stream.started = true;
        }
        Ok(())
    }

    async fn checkpoint(&self, stream: &mut Stream) -> Result<(), AuditError> {
        let signer = &self.signer;
        self.send(stream, |c, out| c.push_checkpoint(out, signer))
            .await
    }
}

#[async_trait::async_trait]
impl AuditSink for PluginSink {
    fn name(&self) -> &str {
        &self.name
    }

    async fn record(&self, batch: &[Arc<[u8]>]) -> Result<(), AuditError> {
        let mut stream = self.stream.lock().await;
        self.start(&mut stream).await?;
        for event in batch {
            self.send(&mut stream, |c, out| c.push(out, event)).await?;
            if stream.chain.unsigned() >= self.checkpoint_events
                || stream.chain.since_checkpoint() >= self.checkpoint_interval
            {
                self.checkpoint(&mut stream).await?;
            }
        }
        Ok(())
    }

    async fn record_gap(&self, gap: Gap) -> Result<(), AuditError> {
        let mut stream = self.stream.lock().await;
        self.start(&mut stream).await?;
        self.send(&mut stream, |c, out| c.push_gap(out, &gap)).await
    }

    async fn flush(&self) -> Result<(), AuditError> {
        let mut stream = self.stream.lock().await;
        if stream.started && stream.chain.unsigned() > 0 {
            self.checkpoint(&mut stream).await?;
        }
        self.plugin
            .flush()
            .await
            .map_err(|e| AuditError(e.to_string()))?;
        if let (Some(state), Some(head)) = (&self.state, stream.chain.head()) {
            let (state, name) = (Arc::clone(state), self.name.clone());
            tokio::task::spawn_blocking(move || state.set_anchor(&name, head))
                .await
                .map_err(|e| AuditError(e.to_string()))?
                .map_err(|e| AuditError(e.to_string()))?;
        }
        Ok(())
    }
}
