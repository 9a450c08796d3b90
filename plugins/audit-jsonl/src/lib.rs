//! An audit sink that appends each event as one JSON line to a file.
//!
//! A complete example for plugin authors: read it top to bottom (start your
//! own with `twilio-broker plugin new`). A plugin is a type implementing two
//! traits from the SDK ([`Audit`]: what the broker calls for each event;
//! [`AuditPlugin`]: how it is built and shut down) and one macro call that
//! exports it. There is no `unsafe` here: the
//! SDK owns the C boundary, catches panics there, and checks that each event
//! is valid JSON before it reaches [`Audit::record`].
//!
//! Configuration (the `config` table of the `[[plugins]]` entry):
//! ```toml
//! [[plugins]]
//! kind = "audit"
//! path = "/usr/lib/twilio-broker/libtwilio_broker_audit_jsonl.so"
//! config = { path = "/var/log/twilio-broker/audit.jsonl", sync = true }
//! ```

// Forbid `unsafe` in this crate: the export macro needs none of it here.
#![forbid(unsafe_code)]

// Standard library only: a file behind a lock.
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};

// From the SDK: the two traits, the error type, and serde_json (re-exported
// so the config is parsed with the same version the SDK uses).
use twilio_broker_plugin_sdk::serde_json::Value;
use twilio_broker_plugin_sdk::{Audit, AuditPlugin, PluginError};

/// The sink: an append-only file. The broker calls `record` from many
/// threads at once, so the file sits behind a mutex (one line at a time, no
/// interleaving).
pub struct JsonlSink {
    /// The open file, in append mode.
    file: Mutex<File>,
    /// True: `sync_data` after every event, so an event is on disk before
    /// the broker answers the request it audits. False: only on `flush`.
    sync: bool,
}

impl JsonlSink {
    /// Locks the file. A poisoned lock means an earlier call panicked while
    /// writing; report it rather than panic again.
    fn file(&self) -> Result<MutexGuard<'_, File>, PluginError> {
        self.file
            .lock()
            .map_err(|_| PluginError::failed("an earlier write panicked; restart the broker"))
    }
}

// How the broker builds and shuts down the sink.
impl AuditPlugin for JsonlSink {
    // The name the broker shows in logs and errors.
    const NAME: &'static str = "jsonl";

    // `config` is the plugin's `config` table as JSON. Validate everything
    // here: an error stops the broker at start-up with this message, which
    // is the best time for an operator to learn about a typo.
    fn init(config: &Value) -> Result<Self, PluginError> {
        // Refuse keys we do not know (a misspelt `sync` must not be ignored).
        if let Some(object) = config.as_object() {
            if let Some(unknown) = object.keys().find(|k| *k != "path" && *k != "sync") {
                return Err(PluginError::invalid(format!(
                    "unknown config key {unknown:?} (known: path, sync)"
                )));
            }
        } else {
            return Err(PluginError::invalid("config must be a table"));
        }
        // `path` is required.
        let path = config
            .get("path")
            .and_then(Value::as_str)
            .map(PathBuf::from)
            .ok_or_else(|| PluginError::invalid("config.path (the log file) is required"))?;
        // `sync` defaults to true: durability first.
        let sync = match config.get("sync") {
            None => true,
            Some(value) => value
                .as_bool()
                .ok_or_else(|| PluginError::invalid("config.sync must be true or false"))?,
        };
        // Open for append, creating it readable by the broker's user only.
        let mut options = OpenOptions::new();
        options.create(true).append(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let file = options.open(&path).map_err(|e| {
            PluginError::invalid(format!("cannot open {} for appending: {e}", path.display()))
        })?;
        Ok(JsonlSink {
            file: Mutex::new(file),
            sync,
        })
    }

    // `close` runs once at shutdown; the default would just call `flush`,
    // which is all a file needs, so it is spelled out only as an example.
    fn close(self) -> Result<(), PluginError> {
        self.flush()
    }
}

// What the broker calls for each event.
impl Audit for JsonlSink {
    fn record(&self, event_json: &str) -> Result<(), PluginError> {
        // One event per line. Valid JSON can hold a raw line break only as
        // whitespace between tokens (inside strings it is escaped), so
        // turning line breaks into spaces keeps the event's meaning.
        let mut line = event_json.replace(['\n', '\r'], " ");
        line.push('\n');
        let mut file = self.file()?;
        // One `write_all` per line under the lock: lines never interleave.
        // Disk errors are "unavailable": the broker may retry or fail closed.
        file.write_all(line.as_bytes())
            .map_err(|e| PluginError::unavailable(format!("cannot append the event: {e}")))?;
        if self.sync {
            file.sync_data()
                .map_err(|e| PluginError::unavailable(format!("cannot sync the log file: {e}")))?;
        }
        Ok(())
    }

    fn flush(&self) -> Result<(), PluginError> {
        // `append` writes go straight to the OS; syncing makes them durable.
        self.file()?
            .sync_data()
            .map_err(|e| PluginError::unavailable(format!("cannot sync the log file: {e}")))
    }
}

// The one line that makes this crate a plugin: it defines the ABI version
// symbol and the table of C functions that call the traits above.
twilio_broker_plugin_sdk::export_audit_sink!(JsonlSink);
