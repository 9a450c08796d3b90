//! `{{name}}`: a twilio-broker audit sink.
//!
//! The broker hands it one event per RPC (a JSON object; its fields are
//! described by `audit-event.schema.json` in the SDK) and waits until
//! `record` returns before it answers the RPC. As generated, it appends each
//! event as one line to a file; replace the body of `record` (and the fields
//! of the struct) with your SIEM or log pipeline client.
//!
//! Configuration (the `config` table of the broker's `[[plugins]]` entry):
//! ```toml
//! [[plugins]]
//! kind = "audit"
//! path = "/usr/lib/twilio-broker/lib{{crate}}.so"
//! config = { path = "/var/log/twilio-broker/{{name}}.jsonl" }
//! ```

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::sync::{Mutex, MutexGuard};

// The SDK re-exports serde_json, so the config is parsed with its version.
use twilio_broker_plugin_sdk::serde_json::Value;
use twilio_broker_plugin_sdk::{Audit, AuditPlugin, PluginError};

/// The sink. The broker calls `record` from many threads at once, so
/// anything mutable sits behind a lock (or is otherwise thread-safe).
pub struct {{Type}} {
    /// The output file, opened for appending.
    file: Mutex<File>,
}

impl {{Type}} {
    /// Locks the file; a poisoned lock (an earlier call panicked) is an
    /// error, never a second panic.
    fn file(&self) -> Result<MutexGuard<'_, File>, PluginError> {
        self.file
            .lock()
            .map_err(|_| PluginError::failed("an earlier write panicked"))
    }
}

/// How the broker builds and shuts down the sink.
impl AuditPlugin for {{Type}} {
    /// The name the broker shows in logs, errors and `plugin check`.
    const NAME: &'static str = "{{name}}";

    /// Builds the sink from its `config` table (as JSON). Check everything
    /// here: an error stops the broker at start-up with this message, which
    /// is when an operator wants to hear about a typo.
    fn init(config: &Value) -> Result<Self, PluginError> {
        let object = config
            .as_object()
            .ok_or_else(|| PluginError::invalid("config must be a table"))?;
        if let Some(unknown) = object.keys().find(|k| *k != "path") {
            return Err(PluginError::invalid(format!(
                "unknown config key {unknown:?} (known: path)"
            )));
        }
        let path = object
            .get("path")
            .and_then(Value::as_str)
            .ok_or_else(|| PluginError::invalid("config.path (the output file) is required"))?;
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| PluginError::invalid(format!("cannot open {path}: {e}")))?;
        Ok({{Type}} {
            file: Mutex::new(file),
        })
    }

    /// Runs once at shutdown, when no other call is running. The default
    /// calls `flush`; release connections here.
    fn close(self) -> Result<(), PluginError> {
        self.flush()
    }
}

/// What the broker calls for each event.
impl Audit for {{Type}} {
    /// Records one event. When this returns `Ok`, the event must survive a
    /// broker crash (written and synced, or acknowledged by a durable
    /// system). Return promptly: the broker abandons the call after the
    /// entry's `timeout_ms` (5 s by default). `PluginError::unavailable`
    /// says "down, retry later"; the event never holds a secret.
    fn record(&self, event_json: &str) -> Result<(), PluginError> {
        // The event is valid JSON (the SDK checked it); raw line breaks can
        // only be whitespace between tokens, so one event stays one line.
        let mut line = event_json.replace(['\n', '\r'], " ");
        line.push('\n');
        let mut file = self.file()?;
        file.write_all(line.as_bytes())
            .and_then(|()| file.sync_data())
            .map_err(|e| PluginError::unavailable(format!("cannot write the event: {e}")))
    }

    /// Makes every event recorded so far durable.
    fn flush(&self) -> Result<(), PluginError> {
        self.file()?
            .sync_data()
            .map_err(|e| PluginError::unavailable(format!("cannot sync: {e}")))
    }
}

// The one line that makes this crate a plugin: it exports the ABI symbols
// and the table of C functions that call the traits above (no `unsafe` here).
twilio_broker_plugin_sdk::export_audit_sink!({{Type}});
