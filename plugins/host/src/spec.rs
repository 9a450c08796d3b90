//! One `[[plugins]]` entry of the config file.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// The two plugin kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PluginKind {
    /// Receives audit events.
    Audit,
    /// Stores the sealed credential records (replaces the sled data directory).
    Storage,
}

impl fmt::Display for PluginKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PluginKind::Audit => "audit",
            PluginKind::Storage => "storage",
        })
    }
}

/// A SHA-256 digest the library file must have, as 64 hex digits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sha256Pin(pub [u8; 32]);

impl std::str::FromStr for Sha256Pin {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let bad = || {
            format!(
                "sha256 must be 64 hex digits, got {} characters",
                text.len()
            )
        };
        if text.len() != 64 || !text.is_ascii() {
            return Err(bad());
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
        }
        Ok(Sha256Pin(out))
    }
}

impl fmt::Display for Sha256Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl<'de> serde::Deserialize<'de> for Sha256Pin {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

fn yes() -> bool {
    true
}

/// A `[[plugins]]` entry.
///
/// ```toml
/// [[plugins]]
/// kind = "storage"
/// path = "/usr/lib/twilio-broker/libtwilio_broker_storage_postgres.so"
/// sha256 = "…64 hex digits…"   # optional: refuse any other file
/// required = true              # audit sinks: fail closed when it fails
/// timeout_ms = 5000            # per call
/// config = { url = "host=127.0.0.1 user=broker dbname=broker" }
/// ```
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginSpec {
    /// The shared library.
    pub path: PathBuf,
    /// What the library must be.
    pub kind: PluginKind,
    /// The file's SHA-256; when set, any other file is refused before loading.
    #[serde(default)]
    pub sha256: Option<Sha256Pin>,
    /// Audit sinks: when true (the default), a failing sink refuses the
    /// audited request (fail closed); when false, the failure is logged.
    /// Storage is always required.
    #[serde(default = "yes")]
    pub required: bool,
    /// Per-call time-out in milliseconds (default 5000).
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// `init` time-out in milliseconds (default 30000).
    #[serde(default)]
    pub init_timeout_ms: Option<u64>,
    /// The plugin's own settings, handed to its `init` as JSON.
    #[serde(default)]
    pub config: Option<serde_json::Value>,
}

impl PluginSpec {
    /// A spec for `path` with defaults (for `plugin check`).
    pub fn new(path: PathBuf, kind: PluginKind) -> Self {
        PluginSpec {
            path,
            kind,
            sha256: None,
            required: true,
            timeout_ms: None,
            init_timeout_ms: None,
            config: None,
        }
    }

    /// The per-call time-out.
    pub fn timeout(&self) -> Duration {
        self.timeout_ms
            .map_or(super::DEFAULT_TIMEOUT, Duration::from_millis)
    }

    /// The `init` time-out.
    pub fn init_timeout(&self) -> Duration {
        self.init_timeout_ms
            .map_or(super::DEFAULT_INIT_TIMEOUT, Duration::from_millis)
    }

    /// The config as JSON text (`{}` when absent).
    pub fn config_json(&self) -> String {
        self.config
            .as_ref()
            .map_or_else(|| "{}".to_owned(), serde_json::Value::to_string)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_pins_parse_and_print() {
        let hex = "00ff".repeat(16);
        let pin: Sha256Pin = hex.parse().expect("valid");
        assert_eq!(pin.to_string(), hex);
        for bad in ["", "abc", &"zz".repeat(32), &"é".repeat(32)] {
            assert!(bad.parse::<Sha256Pin>().is_err(), "{bad:?}");
        }
    }
}
