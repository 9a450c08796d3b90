//! The plugin's `config` table, checked strictly: unknown keys and bad
//! values stop the broker at start-up with a message naming the key.

use std::time::Duration;

use twilio_broker_plugin_sdk::PluginError;
use twilio_broker_plugin_sdk::serde_json::Value;

use crate::tls::{self, SslMode};

const KNOWN: [&str; 7] = [
    "url",
    "schema",
    "pool_size",
    "connect_timeout_ms",
    "statement_timeout_ms",
    "sslmode",
    "sslrootcert",
];

/// Validated settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// How to connect (libpq key=value string or postgresql:// URL).
    pub connect: postgres::Config,
    /// The schema holding the table, sequence and trigger.
    pub schema: String,
    /// Connections for calls (the change listener has its own).
    pub pool_size: usize,
    /// How long a connection attempt may take.
    pub connect_timeout: Duration,
    /// How the connection is protected (`sslmode`).
    pub ssl_mode: SslMode,
    /// The TLS client configuration (None for `disable`).
    pub tls: Option<rustls::ClientConfig>,
}

/// True when every host of `config` is this machine (a Unix socket, `localhost`
/// or a loopback address): the only case where plaintext is the default.
pub fn is_loopback(config: &postgres::Config) -> bool {
    let hosts = config.get_hosts();
    let addrs = config.get_hostaddrs();
    !hosts.is_empty()
        && hosts.iter().all(|host| match host {
            postgres::config::Host::Unix(_) => true,
            postgres::config::Host::Tcp(name) => {
                name == "localhost"
                    || name
                        .trim_matches(|c| c == '[' || c == ']')
                        .parse::<std::net::IpAddr>()
                        .is_ok_and(|ip| ip.is_loopback())
            }
        })
        && addrs.iter().all(std::net::IpAddr::is_loopback)
}

fn invalid(message: impl std::fmt::Display) -> PluginError {
    PluginError::invalid(message)
}

fn number(config: &Value, key: &str, default: u64, range: (u64, u64)) -> Result<u64, PluginError> {
    let Some(value) = config.get(key) else {
        return Ok(default);
    };
    value
        .as_u64()
        .filter(|n| (range.0..=range.1).contains(n))
        .ok_or_else(|| {
            invalid(format!(
                "config.{key} must be a number from {} to {}",
                range.0, range.1
            ))
        })
}

/// True for a plain lower-case SQL identifier that needs no quoting.
fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

impl Settings {
    /// Parses the `config` table.
    pub fn parse(config: &Value) -> Result<Self, PluginError> {
        let object = config
            .as_object()
            .ok_or_else(|| invalid("config must be a table"))?;
        if let Some(unknown) = object.keys().find(|k| !KNOWN.contains(&k.as_str())) {
            return Err(invalid(format!(
                "unknown config key {unknown:?} (known: {})",
                KNOWN.join(", ")
            )));
        }
        let url = config.get("url").and_then(Value::as_str).ok_or_else(|| {
            invalid("config.url is required, e.g. \"host=127.0.0.1 user=broker dbname=broker\"")
        })?;
        // The parser's message may quote the string, which may hold a password.
        let mut connect: postgres::Config = url
            .parse()
            .map_err(|_| invalid("config.url is not a valid PostgreSQL connection string"))?;
        let schema = match config.get("schema") {
            None => "twilio_broker".to_owned(),
            Some(value) => value
                .as_str()
                .filter(|s| is_identifier(s) && s.len() <= 40)
                .ok_or_else(|| {
                    invalid(
                        "config.schema must be a lower-case identifier of at most 40 characters",
                    )
                })?
                .to_owned(),
        };
        let pool_size = number(config, "pool_size", 4, (1, 64))? as usize;
        let connect_timeout = number(config, "connect_timeout_ms", 5_000, (1, 600_000))?;
        let statement_timeout = number(config, "statement_timeout_ms", 4_000, (1, 600_000))?;
        // A statement time-out shorter than the broker's call time-out makes
        // a stuck query an error here rather than an abandoned call there.
        let options = match connect.get_options() {
            Some(given) => format!("{given} -c statement_timeout={statement_timeout}"),
            None => format!("-c statement_timeout={statement_timeout}"),
        };
        connect
            .connect_timeout(Duration::from_millis(connect_timeout))
            .options(&options)
            .application_name("twilio-broker");
        let ssl_mode = match config.get("sslmode") {
            None if is_loopback(&connect) => SslMode::Disable,
            None => SslMode::VerifyFull,
            Some(value) => value.as_str().and_then(SslMode::parse).ok_or_else(|| {
                invalid(
                    "config.sslmode must be \"disable\", \"require\", \"verify-ca\" or \"verify-full\"",
                )
            })?,
        };
        let root_cert = match config.get("sslrootcert") {
            None => None,
            Some(value) => Some(std::path::PathBuf::from(value.as_str().ok_or_else(
                || invalid("config.sslrootcert must be the path of a PEM CA file"),
            )?)),
        };
        let tls = tls::client_config(ssl_mode, root_cert.as_deref()).map_err(|mut err| {
            if config.get("sslmode").is_none() {
                err.message.push_str(
                    " (TLS with verify-full is the default for a database that is not on this \
                     machine; set config.sslrootcert, or config.sslmode explicitly)",
                );
            }
            err
        })?;
        // The connector decides: the URL's own sslmode is overridden.
        connect.ssl_mode(if tls.is_some() {
            postgres::config::SslMode::Require
        } else {
            postgres::config::SslMode::Disable
        });
        Ok(Settings {
            connect,
            schema,
            pool_size,
            connect_timeout: Duration::from_millis(connect_timeout),
            ssl_mode,
            tls,
        })
    }

    /// The NOTIFY channel of this schema.
    pub fn channel(&self) -> String {
        format!("twilio_broker_{}", self.schema)
    }
}

#[cfg(test)]
mod tests {
    use twilio_broker_plugin_sdk::serde_json::json;

    use super::*;

    #[test]
    fn refuses_bad_settings_by_name() {
        let cases = [
            (json!({}), "config.url is required"),
            (
                json!({"url": "host=x", "shema": "a"}),
                "unknown config key \"shema\"",
            ),
            (
                json!({"url": "host=x", "schema": "Bad-Name"}),
                "config.schema",
            ),
            (json!({"url": "host=x", "pool_size": 0}), "config.pool_size"),
            (
                json!({"url": "postgresql://u:secretpw@h:notaport/db"}),
                "not a valid",
            ),
        ];
        for (config, expected) in cases {
            let err = Settings::parse(&config).expect_err(expected);
            assert!(err.message.contains(expected), "{config}: {err}");
            assert!(!err.message.contains("secretpw"), "{err}");
        }
        let ok = Settings::parse(&json!({"url": "host=127.0.0.1 user=postgres", "schema": "t_1"}))
            .expect("valid");
        assert_eq!((ok.schema.as_str(), ok.pool_size), ("t_1", 4));
        assert_eq!(ok.channel(), "twilio_broker_t_1");
        assert_eq!(
            ok.ssl_mode,
            SslMode::Disable,
            "loopback: plaintext by default"
        );
    }

    #[test]
    fn a_remote_database_gets_verified_tls_by_default() {
        let remote = Settings::parse(&json!({"url": "host=db.example.com user=broker"}))
            .expect_err("no CA file");
        assert!(remote.message.contains("config.sslrootcert"), "{remote}");
        assert!(
            remote.message.contains("verify-full is the default"),
            "{remote}"
        );
        let explicit = Settings::parse(
            &json!({"url": "host=db.example.com user=broker", "sslmode": "require"}),
        )
        .expect("require needs no CA");
        assert_eq!(explicit.ssl_mode, SslMode::Require);
        assert!(explicit.tls.is_some());
        let plain =
            Settings::parse(&json!({"url": "host=10.1.2.3 user=broker", "sslmode": "disable"}))
                .expect("explicit disable");
        assert!(plain.tls.is_none());
        let bad =
            Settings::parse(&json!({"url": "host=x", "sslmode": "prefer"})).expect_err("prefer");
        assert!(bad.message.contains("config.sslmode"), "{bad}");
        for (url, loopback) in [
            ("host=127.0.0.1", true),
            ("host=localhost", true),
            ("host=/var/run/postgresql", true),
            ("postgresql://u@[::1]/db", true),
            ("host=127.0.0.1,db.example.com", false),
            ("host=10.0.0.1", false),
        ] {
            let config: postgres::Config = url.parse().expect(url);
            assert_eq!(is_loopback(&config), loopback, "{url}");
        }
    }
}
