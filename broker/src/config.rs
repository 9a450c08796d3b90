//! The daemon's config file: TOML, unknown keys are an error. Flags and
//! environment variables are layered on top of it in one place,
//! `settings.rs` (flag, environment variable, config file, default).

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
    /// The sealed state file (audit chain anchors; later the store's
    /// high-water mark). Default `<data_dir>.state`; required with a storage plugin.
    pub state_file: Option<PathBuf>,
    /// File holding the base64 master key (instead of TWILIO_BROKER_MASTER_KEY_FILE).
    pub master_key_file: Option<PathBuf>,
    /// Log format.
    pub log_format: Option<LogFormat>,
    /// Log level or filter (`info`, `warn,twilio_broker=debug`);
    /// `TWILIO_BROKER_LOG_LEVEL` and `RUST_LOG` override it.
    pub log_level: Option<String>,
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
    /// Address of the operator console (issue 19), loopback only; off when unset.
    pub console_listen: Option<SocketAddr>,
    /// `[metrics]`: opt-in per-credential token series and their cap.
    #[serde(default)]
    pub metrics: crate::telemetry::MetricsConfig,
    /// The OAuth token endpoint client (GetBearer).
    #[serde(default)]
    pub oauth: crate::bearer::OAuthConfig,
    /// Twilio's REST hosts for key and Auth Token management (`[twilio]`:
    /// `api_base`, `iam_base`, `accounts_base`; env `TWILIO_BROKER_*_BASE`).
    #[serde(default)]
    pub twilio: crate::twilio_api::TwilioConfig,
    /// `[rotation]`: review age warnings and Auth Token rotation timing.
    #[serde(default)]
    pub rotation: crate::rotation::RotationConfig,
    /// Seconds the daemon keeps answering after SIGTERM while its health is
    /// NOT_SERVING (so load balancers move away first); default 0.
    #[serde(default)]
    pub shutdown_grace_seconds: Option<u64>,
    /// Connection and HTTP/2 limits (`[limits]`); every field has a safe default.
    #[serde(default)]
    pub limits: crate::transport::Limits,
    /// Plugin libraries (`[[plugins]]`): audit sinks and at most one storage backend.
    #[serde(default)]
    pub plugins: Vec<crate::plugin_host::PluginSpec>,
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
    /// `batch` (default: an answer leaves once its event is written; `fsync`
    /// within 100 ms) or `always` (an answer waits for `fsync`).
    #[serde(default)]
    pub sync: crate::audit::SyncMode,
    /// A signed checkpoint at least every this many lines.
    #[serde(default = "default_checkpoint_events")]
    pub checkpoint_events: u64,
    /// And at least every this many milliseconds while events flow.
    #[serde(default = "default_checkpoint_ms")]
    pub checkpoint_ms: u64,
}

// The defaults are the audit module's own (one place for each number).
fn default_true() -> bool {
    crate::audit::SinkOptions::default().required
}
fn default_deadline_ms() -> u64 {
    u64::try_from(crate::audit::SinkOptions::default().deadline.as_millis()).unwrap_or(u64::MAX)
}
fn default_queue() -> usize {
    crate::audit::SinkOptions::default().queue
}
fn default_checkpoint_events() -> u64 {
    crate::audit::FileOptions::default().checkpoint_events
}
fn default_checkpoint_ms() -> u64 {
    u64::try_from(
        crate::audit::FileOptions::default()
            .checkpoint_interval
            .as_millis(),
    )
    .unwrap_or(u64::MAX)
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            file: None,
            required: default_true(),
            deadline_ms: default_deadline_ms(),
            queue: default_queue(),
            sync: crate::audit::SyncMode::default(),
            checkpoint_events: default_checkpoint_events(),
            checkpoint_ms: default_checkpoint_ms(),
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
    fn plugin_entries_parse_strictly() {
        let text = r#"
            [[plugins]]
            kind = "storage"
            path = "/usr/lib/libx.so"
            sha256 = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
            timeout_ms = 250
            config = { url = "host=127.0.0.1", pool = 4, nested = { a = [1, 2] } }

            [[plugins]]
            kind = "audit"
            path = "/usr/lib/liby.so"
            required = false
        "#;
        let parsed = FileConfig::parse(text).expect("valid");
        assert_eq!(parsed.plugins.len(), 2);
        let storage = &parsed.plugins[0];
        assert_eq!(storage.kind, crate::plugin_host::PluginKind::Storage);
        assert!(storage.required && !parsed.plugins[1].required);
        assert_eq!(storage.timeout(), std::time::Duration::from_millis(250));
        assert_eq!(
            storage.config_json(),
            r#"{"nested":{"a":[1,2]},"pool":4,"url":"host=127.0.0.1"}"#
        );
        assert_eq!(parsed.plugins[1].config_json(), "{}");

        let cases = [
            (
                "[[plugins]]\nkind = \"audit\"\npath = \"x\"\nsha265 = \"\"\n",
                "sha265",
            ),
            ("[[plugins]]\nkind = \"cache\"\npath = \"x\"\n", "cache"),
            (
                "[[plugins]]\nkind = \"audit\"\npath = \"x\"\nsha256 = \"abc\"\n",
                "64 hex digits",
            ),
            ("[[plugins]]\nkind = \"audit\"\n", "path"),
        ];
        for (text, expected) in cases {
            let err = FileConfig::parse(text).expect_err(expected);
            assert!(format!("{err:#}").contains(expected), "{err:#}");
        }
    }

    #[test]
    fn the_twilio_section_names_the_three_hosts_and_nothing_else() {
        let parsed = FileConfig::parse(
            "[twilio]\napi_base = \"http://127.0.0.1:1\"\naccounts_base = \"https://a.example\"\n",
        )
        .expect("valid");
        let endpoints = parsed.twilio.resolve(|_| None).expect("valid hosts");
        assert_eq!(endpoints.api_base.as_str(), "http://127.0.0.1:1/");
        assert_eq!(endpoints.iam_base.as_str(), "https://iam.twilio.com/");
        assert_eq!(endpoints.accounts_base.as_str(), "https://a.example/");
        let err = FileConfig::parse("[twilio]\nbase = \"x\"\n").expect_err("unknown key");
        assert!(
            format!("{err:#}").contains("unknown field `base`"),
            "{err:#}"
        );
    }

    #[test]
    fn the_example_config_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../twilio-broker.example.toml");
        FileConfig::load(&path).expect("example config parses");
    }
}
