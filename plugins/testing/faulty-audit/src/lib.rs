//! Test-only audit plugin: appends events to `log_file` (if set), with
//! faults injected per call (see plugins/testing/README.md).

#![allow(missing_docs)]

#[path = "../../faults.rs"]
mod faults;

use std::io::Write as _;
use std::path::PathBuf;

use twilio_broker_plugin_sdk::serde_json::Value;
use twilio_broker_plugin_sdk::{Audit, AuditPlugin, PluginError};

pub struct FaultyAudit {
    faults: faults::Faults,
    log_file: Option<PathBuf>,
}

impl Audit for FaultyAudit {
    fn record(&self, event_json: &str) -> Result<(), PluginError> {
        self.faults.check("record")?;
        if let Some(path) = &self.log_file {
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(PluginError::unavailable)?;
            writeln!(file, "{event_json}").map_err(PluginError::unavailable)?;
        }
        Ok(())
    }

    fn flush(&self) -> Result<(), PluginError> {
        self.faults.check("flush")
    }
}

impl AuditPlugin for FaultyAudit {
    const NAME: &'static str = "faulty-audit";

    fn init(config: &Value) -> Result<Self, PluginError> {
        Ok(FaultyAudit {
            faults: faults::Faults::from_config(config)?,
            log_file: config
                .get("log_file")
                .and_then(Value::as_str)
                .map(PathBuf::from),
        })
    }

    fn close(self) -> Result<(), PluginError> {
        self.faults.check("close")
    }
}

twilio_broker_plugin_sdk::export_audit_sink!(FaultyAudit);
