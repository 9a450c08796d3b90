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
    /// The OAuth token endpoint client (GetBearer).
    #[serde(default)]
    pub oauth: crate::bearer::OAuthConfig,
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
