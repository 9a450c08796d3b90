//! The daemon's configuration: a TOML file (unknown keys are an error) with
//! command-line flags and environment variables layered on top.
//!
//! Precedence, highest first: flag, environment variable, config file, default.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

/// The default gRPC listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:50051";

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Human,
    /// One JSON object per line.
    Json,
}

/// The contents of the config file. Every field is optional.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// gRPC listen address (loopback only for plaintext).
    pub listen: Option<SocketAddr>,
    /// Data directory of the embedded sled store.
    pub data_dir: Option<PathBuf>,
    /// File holding the base64 master key (instead of TWILIO_BROKER_MASTER_KEY_FILE).
    pub master_key_file: Option<PathBuf>,
    /// Log format.
    pub log_format: Option<LogFormat>,
    /// Listeners (TCP with TLS, Unix sockets, plaintext loopback); `listen`
    /// is a shorthand for one plaintext listener.
    #[serde(default)]
    pub listeners: Vec<crate::transport::ListenerConfig>,
    /// The caller policy file (TOML). Required unless `--dev`.
    pub policy: Option<PathBuf>,
    /// Audit trail settings.
    #[serde(default)]
    pub audit: AuditConfig,
    /// Address of the Prometheus metrics listener (e.g. 127.0.0.1:9464).
    pub metrics_listen: Option<SocketAddr>,
    /// The OAuth token endpoint client (GetBearer).
    #[serde(default)]
    pub oauth: crate::bearer::OAuthConfig,
}

/// `[audit]`: the built-in JSON-lines file sink.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// The JSON-lines file; no file, no built-in sink.
    pub file: Option<PathBuf>,
    /// Refuse requests that cannot be recorded (fail closed). Default true.
    #[serde(default = "default_true")]
    pub required: bool,
    /// How long a request waits for a required sink, in milliseconds.
    #[serde(default = "default_deadline_ms")]
    pub deadline_ms: u64,
    /// Queue length of the sink.
    #[serde(default = "default_queue")]
    pub queue: usize,
}

fn default_true() -> bool {
    true
}
fn default_deadline_ms() -> u64 {
    2000
}
fn default_queue() -> usize {
    10_000
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            file: None,
            required: default_true(),
            deadline_ms: default_deadline_ms(),
            queue: default_queue(),
        }
    }
}

impl FileConfig {
    /// Reads and parses a config file; unknown keys are reported with their place.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("invalid config file {}", path.display()))
    }

    /// Parses config text.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        Ok(toml::from_str(text)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_are_errors() {
        let err = FileConfig::parse("listen = \"127.0.0.1:1\"\nlisten_adress = \"x\"\n")
            .expect_err("unknown key");
        assert!(format!("{err:#}").contains("listen_adress"), "{err:#}");
        let ok =
            FileConfig::parse("listen = \"127.0.0.1:1\"\nlog_format = \"json\"\n").expect("valid");
        assert_eq!(ok.log_format, Some(LogFormat::Json));
    }

    #[test]
    fn the_example_config_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../twilio-broker.example.toml");
        FileConfig::load(&path).expect("example config parses");
    }
}
