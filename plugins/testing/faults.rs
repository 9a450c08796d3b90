//! Fault injection shared by the test plugins: what a call should do wrong,
//! read from the JSON file named by `faults_file` on every call.

use std::path::PathBuf;

use twilio_broker_plugin_sdk::PluginError;
use twilio_broker_plugin_sdk::serde_json::{self, Value};

/// Where the faults come from.
pub struct Faults {
    file: Option<PathBuf>,
}

impl Faults {
    /// Reads `faults_file` from the config and applies its `init` fault.
    pub fn from_config(config: &Value) -> Result<Self, PluginError> {
        match config.get("init").and_then(Value::as_str) {
            Some("fail") => return Err(PluginError::invalid("init refused on purpose (test)")),
            Some("panic") => panic!("init panicked on purpose (test)"),
            _ => {}
        }
        Ok(Faults {
            file: config
                .get("faults_file")
                .and_then(Value::as_str)
                .map(PathBuf::from),
        })
    }

    /// Misbehaves as the faults file says for `op`, or returns `Ok`.
    pub fn check(&self, op: &str) -> Result<(), PluginError> {
        let Some(file) = &self.file else {
            return Ok(());
        };
        let faults: Value = std::fs::read(file)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or(Value::Null);
        match faults.get(op).and_then(Value::as_str) {
            Some("panic") => panic!("{op} panicked on purpose (test)"),
            Some("hang") => loop {
                std::thread::sleep(std::time::Duration::from_secs(3600));
            },
            Some("error") => Err(PluginError::failed(format!(
                "{op} failed on purpose (test)"
            ))),
            Some("unavailable") => Err(PluginError::unavailable(format!(
                "{op}: backend down on purpose (test)"
            ))),
            _ => Ok(()),
        }
    }
}
