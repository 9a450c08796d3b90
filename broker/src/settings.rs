//! What `twilio-broker serve` runs with, resolved in one place.
//!
//! **Precedence, highest first: flag, environment variable, config file,
//! default.** [`Settings::resolve`] is the only place that applies it: a pure
//! function of the flags, a view of the environment and the parsed config
//! file, so every row of the table below is a unit test.
//!
//! | Setting | Flag | Environment | Config file | Default |
//! |---|---|---|---|---|
//! | listeners | `--listen` (repeatable) | `TWILIO_BROKER_LISTEN` (comma-separated) | `listen`, `[[listeners]]` | `127.0.0.1:50051` |
//! | TLS of `--listen` | `--tls-cert`, `--tls-key` | `TWILIO_BROKER_TLS_CERT`, `TWILIO_BROKER_TLS_KEY` | per `[[listeners]]` | plaintext |
//! | client certificates | `--tls-client-ca`, `--tls-client-auth`, `--tls-crl` | `TWILIO_BROKER_TLS_CLIENT_CA`, `TWILIO_BROKER_TLS_CLIENT_AUTH`, `TWILIO_BROKER_TLS_CRL` | per `[[listeners]]` | none |
//! | data directory | `--data-dir` | `TWILIO_BROKER_DATA_DIR` | `data_dir` | none (`--dev`: a throw-away store) |
//! | state file | `--state-file` | `TWILIO_BROKER_STATE_FILE` | `state_file` | `<data-dir>.state` |
//! | policy | `--policy` | `TWILIO_BROKER_POLICY` | `policy` | none (`--dev`: allow all) |
//! | audit file | `--audit-file` | `TWILIO_BROKER_AUDIT_FILE` | `[audit] file` | none |
//! | metrics | `--metrics-listen` | `TWILIO_BROKER_METRICS_LISTEN` | `metrics_listen` | off |
//! | operator console | `--console-listen` | `TWILIO_BROKER_CONSOLE_LISTEN` | `console_listen` | off |
//! | shutdown grace | `--shutdown-grace-seconds` | `TWILIO_BROKER_SHUTDOWN_GRACE_SECONDS` | `shutdown_grace_seconds` | 0 |
//! | log format | `--log-format` | `TWILIO_BROKER_LOG_FORMAT` | `log_format` | `human` |
//! | log level | `--log-level` | `TWILIO_BROKER_LOG_LEVEL`, then `RUST_LOG` | `log_level` | `info` |
//! | master key file | – | `TWILIO_BROKER_MASTER_KEY_FILE` | `master_key_file` | none |
//! | OAuth token URL | – | `TWILIO_BROKER_OAUTH_TOKEN_URL` | `[oauth] token_url` | Twilio's |
//!
//! The config file itself is `--config` or `TWILIO_BROKER_CONFIG`
//! ([`config_path`]). `--dev`, `--accept-rollback` and
//! `--accept-audit-truncation` exist only as flags: each is a decision an
//! operator makes on one command line, never one inherited from an
//! environment. The inline master key (`TWILIO_BROKER_MASTER_KEY`) is taken
//! out of the environment before anything else runs (`master_key.rs`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;

use crate::config::{AuditConfig, DEFAULT_LISTEN, FileConfig, LogFormat};
use crate::transport::{ClientAuth, ListenerSpec, TlsSettings};

/// A view of the process environment (a map in tests).
pub(crate) trait Env {
    /// The value of `name`, if set and not empty.
    fn var(&self, name: &str) -> Option<String>;
}

/// The real environment.
pub(crate) struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }
}

impl Env for [(&str, &str)] {
    fn var(&self, name: &str) -> Option<String> {
        self.iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| (*value).to_owned())
            .filter(|v| !v.is_empty())
    }
}

/// The flags of `serve` (clap), before resolution.
#[derive(Debug, Default, clap::Args)]
pub(crate) struct Flags {
    /// Listener, repeatable: HOST:PORT (plaintext on loopback only, or TLS
    /// with --tls-cert) or unix:/path [env: TWILIO_BROKER_LISTEN, comma-separated]
    /// [default: 127.0.0.1:50051].
    #[arg(long, value_delimiter = ',')]
    pub listen: Vec<String>,
    /// PEM certificate chain: serve TCP listeners given with --listen over
    /// TLS [env: TWILIO_BROKER_TLS_CERT].
    #[arg(long)]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert [env: TWILIO_BROKER_TLS_KEY].
    #[arg(long)]
    pub tls_key: Option<PathBuf>,
    /// PEM CA bundle: require client certificates signed by it (mutual TLS)
    /// [env: TWILIO_BROKER_TLS_CLIENT_CA].
    #[arg(long)]
    pub tls_client_ca: Option<PathBuf>,
    /// With --tls-client-ca: `required` (default) refuses clients without a
    /// certificate; `optional` serves them as `anonymous-tls`
    /// [env: TWILIO_BROKER_TLS_CLIENT_AUTH].
    #[arg(long, value_enum)]
    pub tls_client_auth: Option<ClientAuth>,
    /// With --tls-client-ca: PEM certificate revocation lists; a revoked
    /// client certificate fails the handshake [env: TWILIO_BROKER_TLS_CRL].
    #[arg(long)]
    pub tls_crl: Option<PathBuf>,
    /// Caller policy file (TOML). Required unless --dev [env: TWILIO_BROKER_POLICY].
    #[arg(long)]
    pub policy: Option<PathBuf>,
    /// Audit trail file (JSON lines, hash-chained) [env: TWILIO_BROKER_AUDIT_FILE].
    #[arg(long)]
    pub audit_file: Option<PathBuf>,
    /// The sealed state file (audit chain anchors, the store's high-water
    /// mark) [env: TWILIO_BROKER_STATE_FILE] [default: <data-dir>.state].
    #[arg(long)]
    pub state_file: Option<PathBuf>,
    /// Start even though the store is older than the state file's
    /// high-water mark (a restored backup); the mark is lowered to it.
    #[arg(long)]
    pub accept_rollback: bool,
    /// Start even though the audit file ends before the head anchored in the
    /// state file (lines were cut); the acceptance is recorded in the chain.
    #[arg(long)]
    pub accept_audit_truncation: bool,
    /// Prometheus metrics listener, e.g. 127.0.0.1:9464
    /// [env: TWILIO_BROKER_METRICS_LISTEN].
    #[arg(long)]
    pub metrics_listen: Option<SocketAddr>,
    /// Operator console listener, loopback only, e.g. 127.0.0.1:8443; log
    /// in with `twilio-broker console open` [env: TWILIO_BROKER_CONSOLE_LISTEN].
    #[arg(long)]
    pub console_listen: Option<SocketAddr>,
    /// Data directory of the embedded store [env: TWILIO_BROKER_DATA_DIR].
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Config file (TOML; unknown keys are an error) [env: TWILIO_BROKER_CONFIG].
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Development mode: loopback only, every caller allowed (unless --policy);
    /// without a master key, a throw-away key; without a data directory, a
    /// throw-away store.
    #[arg(long)]
    pub dev: bool,
    /// Seconds to keep answering after SIGTERM with health NOT_SERVING
    /// [env: TWILIO_BROKER_SHUTDOWN_GRACE_SECONDS] [default: 0].
    #[arg(long)]
    pub shutdown_grace_seconds: Option<u64>,
    /// Log format [env: TWILIO_BROKER_LOG_FORMAT] [default: human].
    #[arg(long, value_enum)]
    pub log_format: Option<LogFormat>,
    /// Log level or filter, e.g. `info` or `warn,twilio_broker=debug`
    /// [env: TWILIO_BROKER_LOG_LEVEL, then RUST_LOG] [default: info].
    #[arg(long)]
    pub log_level: Option<String>,
}

/// The config file to read: `--config`, else `TWILIO_BROKER_CONFIG`.
pub(crate) fn config_path(flags: &Flags, env: &(impl Env + ?Sized)) -> Option<PathBuf> {
    flags
        .config
        .clone()
        .or_else(|| env.var("TWILIO_BROKER_CONFIG").map(PathBuf::from))
}

/// Everything `serve` needs, resolved and checked.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// Where to listen.
    pub listeners: Vec<ListenerSpec>,
    /// `--dev`.
    pub dev: bool,
    /// The embedded store's directory.
    pub data_dir: Option<PathBuf>,
    /// The state file: the one given, else `<data-dir>.state`.
    pub state_file: Option<PathBuf>,
    /// The caller policy.
    pub policy: Option<PathBuf>,
    /// `[audit]`, with `file` resolved from the flag and environment too.
    pub audit: AuditConfig,
    /// `--accept-rollback`.
    pub accept_rollback: bool,
    /// `--accept-audit-truncation`.
    pub accept_audit_truncation: bool,
    /// The Prometheus listener.
    pub metrics_listen: Option<SocketAddr>,
    /// The operator console's listener.
    pub console_listen: Option<SocketAddr>,
    /// How long to keep answering after SIGTERM.
    pub shutdown_grace: Duration,
    /// Log format.
    pub log_format: LogFormat,
    /// Log filter (`tracing_subscriber::EnvFilter` syntax).
    pub log_filter: String,
    /// The config file's `master_key_file`: used when neither
    /// `TWILIO_BROKER_MASTER_KEY` nor `TWILIO_BROKER_MASTER_KEY_FILE` is set
    /// ([`crate::master_key::MasterKey::from_environment`] reads those).
    pub master_key_file: Option<PathBuf>,
    /// The OAuth token endpoint override from the environment.
    pub oauth_token_url: Option<String>,
}

/// The value of `name`, parsed; the error names the variable.
fn parsed<T: std::str::FromStr>(env: &(impl Env + ?Sized), name: &str) -> anyhow::Result<Option<T>>
where
    T::Err: std::fmt::Display,
{
    env.var(name)
        .map(|text| {
            text.parse::<T>()
                .map_err(|err| anyhow::anyhow!("{name}={text:?} is not valid: {err}"))
        })
        .transpose()
}

/// A clap value enum read from the environment; the error lists the choices.
fn value_enum<T: clap::ValueEnum>(
    env: &(impl Env + ?Sized),
    name: &str,
) -> anyhow::Result<Option<T>> {
    env.var(name)
        .map(|text| {
            T::from_str(&text, true).map_err(|_| {
                let choices: Vec<String> = T::value_variants()
                    .iter()
                    .filter_map(|v| v.to_possible_value().map(|p| p.get_name().to_owned()))
                    .collect();
                anyhow::anyhow!("{name}={text:?} is not one of: {}", choices.join(", "))
            })
        })
        .transpose()
}

impl Settings {
    /// Applies flag > environment > config file > default to every setting.
    /// Pure: the same inputs give the same settings.
    pub fn resolve(
        flags: &Flags,
        env: &(impl Env + ?Sized),
        file: &FileConfig,
    ) -> anyhow::Result<Settings> {
        let path = |flag: &Option<PathBuf>, name: &str, from_file: &Option<PathBuf>| {
            flag.clone()
                .or_else(|| env.var(name).map(PathBuf::from))
                .or_else(|| from_file.clone())
        };
        let data_dir = path(&flags.data_dir, "TWILIO_BROKER_DATA_DIR", &file.data_dir);
        let state_file = path(
            &flags.state_file,
            "TWILIO_BROKER_STATE_FILE",
            &file.state_file,
        )
        .or_else(|| data_dir.as_deref().map(crate::state_file::default_path));
        let mut audit = file.audit.clone();
        audit.file = path(
            &flags.audit_file,
            "TWILIO_BROKER_AUDIT_FILE",
            &file.audit.file,
        );
        let log_filter = flags
            .log_level
            .clone()
            .or_else(|| env.var("TWILIO_BROKER_LOG_LEVEL"))
            .or_else(|| env.var("RUST_LOG"))
            .or_else(|| file.log_level.clone())
            .unwrap_or_else(|| "info".to_owned());
        Ok(Settings {
            listeners: listeners(flags, env, file)?,
            dev: flags.dev,
            data_dir,
            state_file,
            policy: path(&flags.policy, "TWILIO_BROKER_POLICY", &file.policy),
            audit,
            accept_rollback: flags.accept_rollback,
            accept_audit_truncation: flags.accept_audit_truncation,
            metrics_listen: match flags.metrics_listen {
                Some(addr) => Some(addr),
                None => parsed(env, "TWILIO_BROKER_METRICS_LISTEN")?.or(file.metrics_listen),
            },
            console_listen: match flags.console_listen {
                Some(addr) => Some(addr),
                None => parsed(env, "TWILIO_BROKER_CONSOLE_LISTEN")?.or(file.console_listen),
            },
            shutdown_grace: Duration::from_secs(
                match flags.shutdown_grace_seconds {
                    Some(seconds) => Some(seconds),
                    None => parsed(env, "TWILIO_BROKER_SHUTDOWN_GRACE_SECONDS")?
                        .or(file.shutdown_grace_seconds),
                }
                .unwrap_or(0),
            ),
            log_format: match flags.log_format {
                Some(format) => format,
                None => value_enum(env, "TWILIO_BROKER_LOG_FORMAT")?
                    .or(file.log_format)
                    .unwrap_or_default(),
            },
            log_filter,
            master_key_file: file.master_key_file.clone(),
            oauth_token_url: env.var("TWILIO_BROKER_OAUTH_TOKEN_URL"),
        })
    }
}

/// `--listen` (or `TWILIO_BROKER_LISTEN`) with the TLS flags; else the
/// file's `listen` and `[[listeners]]`; else the default address.
fn listeners(
    flags: &Flags,
    env: &(impl Env + ?Sized),
    file: &FileConfig,
) -> anyhow::Result<Vec<ListenerSpec>> {
    let addresses: Vec<String> = if flags.listen.is_empty() {
        env.var("TWILIO_BROKER_LISTEN")
            .map(|list| {
                list.split(',')
                    .map(str::trim)
                    .filter(|a| !a.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    } else {
        flags.listen.clone()
    };
    let flag_or_env = |flag: &Option<PathBuf>, name: &str| {
        flag.clone().or_else(|| env.var(name).map(PathBuf::from))
    };
    let cert = flag_or_env(&flags.tls_cert, "TWILIO_BROKER_TLS_CERT");
    let key = flag_or_env(&flags.tls_key, "TWILIO_BROKER_TLS_KEY");
    let client_ca = flag_or_env(&flags.tls_client_ca, "TWILIO_BROKER_TLS_CLIENT_CA");
    let crl = flag_or_env(&flags.tls_crl, "TWILIO_BROKER_TLS_CRL");
    let client_auth = match flags.tls_client_auth {
        Some(auth) => Some(auth),
        None => value_enum(env, "TWILIO_BROKER_TLS_CLIENT_AUTH")?,
    };
    if addresses.is_empty() {
        if cert.is_some() || key.is_some() || client_ca.is_some() {
            anyhow::bail!(
                "--tls-cert, --tls-key and --tls-client-ca (or their TWILIO_BROKER_TLS_* \
                 variables) apply to --listen addresses; give --listen, or configure TLS per \
                 [[listeners]] in the config file"
            );
        }
        return file_listeners(file);
    }
    let tls = match (cert, key) {
        (Some(cert), Some(key)) => Some(TlsSettings {
            cert,
            key,
            client_ca,
            client_auth,
            crl,
        }),
        (None, None) => {
            if client_ca.is_some() || client_auth.is_some() || crl.is_some() {
                anyhow::bail!(
                    "--tls-client-ca, --tls-client-auth and --tls-crl need --tls-cert and \
                     --tls-key (the server's own certificate)"
                );
            }
            None
        }
        _ => anyhow::bail!("--tls-cert and --tls-key go together: give both or neither"),
    };
    if let Some(tls) = &tls
        && tls.client_ca.is_none()
        && (tls.client_auth.is_some() || tls.crl.is_some())
    {
        anyhow::bail!("--tls-client-auth and --tls-crl need --tls-client-ca");
    }
    addresses
        .iter()
        .map(|address| {
            let tls = if address.starts_with("unix:") {
                None
            } else {
                tls.clone()
            };
            ListenerSpec::parse(address, tls, None).with_context(|| format!("listener {address:?}"))
        })
        .collect()
}

fn file_listeners(file: &FileConfig) -> anyhow::Result<Vec<ListenerSpec>> {
    let mut specs = Vec::new();
    if let Some(addr) = file.listen {
        specs.push(ListenerSpec::Tcp { addr, tls: None });
    }
    for listener in &file.listeners {
        specs.push(ListenerSpec::parse(
            &listener.address,
            listener.tls.clone(),
            listener.mode.as_deref(),
        )?);
    }
    if specs.is_empty() {
        specs.push(ListenerSpec::parse(DEFAULT_LISTEN, None, None)?);
    }
    Ok(specs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> FileConfig {
        FileConfig::parse(text).expect("config parses")
    }

    fn resolve(flags: &Flags, env: &[(&str, &str)], text: &str) -> Settings {
        Settings::resolve(flags, env, &file(text)).expect("resolves")
    }

    fn tcp(spec: &ListenerSpec) -> (String, bool) {
        match spec {
            ListenerSpec::Tcp { addr, tls } => (addr.to_string(), tls.is_some()),
            other => panic!("not TCP: {other:?}"),
        }
    }

    /// Flag > environment > file > default, for every path setting.
    #[test]
    fn each_path_setting_takes_flag_then_env_then_file_then_default() {
        type Pick = fn(&Settings) -> Option<PathBuf>;
        type SetFlag = fn(&mut Flags, PathBuf);
        type Row<'a> = (&'a str, &'a str, &'a str, Pick, SetFlag);
        let rows: [Row<'_>; 4] = [
            (
                "TWILIO_BROKER_DATA_DIR",
                "data_dir",
                "",
                |s| s.data_dir.clone(),
                |f, p| f.data_dir = Some(p),
            ),
            (
                "TWILIO_BROKER_POLICY",
                "policy",
                "",
                |s| s.policy.clone(),
                |f, p| f.policy = Some(p),
            ),
            (
                "TWILIO_BROKER_STATE_FILE",
                "state_file",
                "",
                |s| s.state_file.clone(),
                |f, p| f.state_file = Some(p),
            ),
            (
                "TWILIO_BROKER_AUDIT_FILE",
                "file",
                "[audit]\n",
                |s| s.audit.file.clone(),
                |f, p| f.audit_file = Some(p),
            ),
        ];
        for (var, key, section, pick, set_flag) in rows {
            let in_file = format!("{section}{key} = \"/from/file\"\n");
            let env = [(var, "/from/env")];
            let mut flags = Flags::default();
            assert_eq!(pick(&resolve(&flags, &[], "")), None, "{var}: default");
            assert_eq!(
                pick(&resolve(&flags, &[], &in_file)),
                Some(PathBuf::from("/from/file")),
                "{var}: file"
            );
            assert_eq!(
                pick(&resolve(&flags, &env, &in_file)),
                Some(PathBuf::from("/from/env")),
                "{var}: env over file"
            );
            set_flag(&mut flags, PathBuf::from("/from/flag"));
            assert_eq!(
                pick(&resolve(&flags, &env, &in_file)),
                Some(PathBuf::from("/from/flag")),
                "{var}: flag over env"
            );
        }
    }

    #[test]
    fn the_console_address_takes_flag_then_env_then_file_and_is_off_by_default() {
        let addr = |text: &str| Some(text.parse::<SocketAddr>().expect("an address"));
        let in_file = "console_listen = \"127.0.0.1:8001\"\n";
        assert_eq!(resolve(&Flags::default(), &[], "").console_listen, None);
        assert_eq!(
            resolve(&Flags::default(), &[], in_file).console_listen,
            addr("127.0.0.1:8001")
        );
        let env = [("TWILIO_BROKER_CONSOLE_LISTEN", "127.0.0.1:8002")];
        assert_eq!(
            resolve(&Flags::default(), &env, in_file).console_listen,
            addr("127.0.0.1:8002")
        );
        let flags = Flags {
            console_listen: addr("127.0.0.1:8003"),
            ..Flags::default()
        };
        assert_eq!(
            resolve(&flags, &env, in_file).console_listen,
            addr("127.0.0.1:8003")
        );
    }

    #[test]
    fn the_state_file_defaults_next_to_the_data_directory() {
        let flags = Flags {
            data_dir: Some(PathBuf::from("/var/lib/tb/data")),
            ..Flags::default()
        };
        assert_eq!(
            resolve(&flags, &[], "").state_file,
            Some(PathBuf::from("/var/lib/tb/data.state"))
        );
    }

    #[test]
    fn scalar_settings_take_flag_then_env_then_file_then_default() {
        let in_file = "metrics_listen = \"127.0.0.1:9001\"\nshutdown_grace_seconds = 7\n\
                       log_format = \"json\"\nlog_level = \"debug\"\n";
        let none = resolve(&Flags::default(), &[], "");
        assert_eq!(none.metrics_listen, None);
        assert_eq!(none.shutdown_grace, Duration::ZERO);
        assert_eq!(none.log_format, LogFormat::Human);
        assert_eq!(none.log_filter, "info");

        let from_file = resolve(&Flags::default(), &[], in_file);
        assert_eq!(
            from_file.metrics_listen,
            Some("127.0.0.1:9001".parse().expect("an address"))
        );
        assert_eq!(from_file.shutdown_grace, Duration::from_secs(7));
        assert_eq!(from_file.log_format, LogFormat::Json);
        assert_eq!(from_file.log_filter, "debug");

        let env = [
            ("TWILIO_BROKER_METRICS_LISTEN", "127.0.0.1:9002"),
            ("TWILIO_BROKER_SHUTDOWN_GRACE_SECONDS", "8"),
            ("TWILIO_BROKER_LOG_FORMAT", "human"),
            ("RUST_LOG", "warn"),
        ];
        let from_env = resolve(&Flags::default(), &env, in_file);
        assert_eq!(
            from_env.metrics_listen,
            Some("127.0.0.1:9002".parse().expect("an address"))
        );
        assert_eq!(from_env.shutdown_grace, Duration::from_secs(8));
        assert_eq!(from_env.log_format, LogFormat::Human);
        assert_eq!(from_env.log_filter, "warn");
        let ours_first = [("RUST_LOG", "warn"), ("TWILIO_BROKER_LOG_LEVEL", "trace")];
        assert_eq!(
            resolve(&Flags::default(), &ours_first, "").log_filter,
            "trace"
        );

        let flags = Flags {
            metrics_listen: Some("127.0.0.1:9003".parse().expect("an address")),
            shutdown_grace_seconds: Some(9),
            log_format: Some(LogFormat::Json),
            log_level: Some("error".into()),
            ..Flags::default()
        };
        let from_flags = resolve(&flags, &env, in_file);
        assert_eq!(
            from_flags.metrics_listen,
            Some("127.0.0.1:9003".parse().expect("an address"))
        );
        assert_eq!(from_flags.shutdown_grace, Duration::from_secs(9));
        assert_eq!(from_flags.log_format, LogFormat::Json);
        assert_eq!(from_flags.log_filter, "error");
    }

    #[test]
    fn listeners_take_flags_then_env_then_file_then_the_default() {
        let none = resolve(&Flags::default(), &[], "");
        assert_eq!(none.listeners.len(), 1);
        assert_eq!(tcp(&none.listeners[0]), (DEFAULT_LISTEN.to_owned(), false));

        let in_file = "listen = \"127.0.0.1:7001\"\n";
        let from_file = resolve(&Flags::default(), &[], in_file);
        assert_eq!(tcp(&from_file.listeners[0]).0, "127.0.0.1:7001");

        let env = [("TWILIO_BROKER_LISTEN", "127.0.0.1:7002, unix:/tmp/tb.sock")];
        let from_env = resolve(&Flags::default(), &env, in_file);
        assert_eq!(from_env.listeners.len(), 2);
        assert_eq!(tcp(&from_env.listeners[0]).0, "127.0.0.1:7002");
        assert!(matches!(from_env.listeners[1], ListenerSpec::Unix { .. }));

        let flags = Flags {
            listen: vec!["127.0.0.1:7003".into()],
            ..Flags::default()
        };
        let from_flags = resolve(&flags, &env, in_file);
        assert_eq!(from_flags.listeners.len(), 1);
        assert_eq!(tcp(&from_flags.listeners[0]).0, "127.0.0.1:7003");
    }

    #[test]
    fn tls_settings_come_from_flags_or_env_and_must_be_whole() {
        let env = [
            ("TWILIO_BROKER_LISTEN", "0.0.0.0:7443"),
            ("TWILIO_BROKER_TLS_CERT", "/etc/tb/cert.pem"),
            ("TWILIO_BROKER_TLS_KEY", "/etc/tb/key.pem"),
            ("TWILIO_BROKER_TLS_CLIENT_CA", "/etc/tb/ca.pem"),
            ("TWILIO_BROKER_TLS_CLIENT_AUTH", "optional"),
        ];
        let settings = resolve(&Flags::default(), &env, "");
        match &settings.listeners[0] {
            ListenerSpec::Tcp { tls: Some(tls), .. } => {
                assert_eq!(tls.cert, PathBuf::from("/etc/tb/cert.pem"));
                assert_eq!(tls.client_ca, Some(PathBuf::from("/etc/tb/ca.pem")));
                assert_eq!(tls.client_auth, Some(ClientAuth::Optional));
            }
            other => panic!("expected TLS: {other:?}"),
        }
        let errors: [(&[(&str, &str)], &str); 4] = [
            (
                &[
                    ("TWILIO_BROKER_LISTEN", "0.0.0.0:7443"),
                    ("TWILIO_BROKER_TLS_CERT", "/c"),
                ],
                "go together",
            ),
            (
                &[
                    ("TWILIO_BROKER_TLS_CERT", "/c"),
                    ("TWILIO_BROKER_TLS_KEY", "/k"),
                ],
                "apply to --listen",
            ),
            (
                &[
                    ("TWILIO_BROKER_LISTEN", "127.0.0.1:1"),
                    ("TWILIO_BROKER_TLS_CRL", "/crl"),
                ],
                "need --tls-cert",
            ),
            (
                &[
                    ("TWILIO_BROKER_TLS_CLIENT_AUTH", "sometimes"),
                    ("TWILIO_BROKER_LISTEN", "127.0.0.1:1"),
                ],
                "not one of: required, optional",
            ),
        ];
        for (env, expected) in errors {
            let err = Settings::resolve(&Flags::default(), env, &FileConfig::default())
                .expect_err(expected);
            assert!(format!("{err:#}").contains(expected), "{err:#}");
        }
    }

    #[test]
    fn a_bad_environment_value_names_its_variable() {
        let env = [("TWILIO_BROKER_SHUTDOWN_GRACE_SECONDS", "soon")];
        let err = Settings::resolve(&Flags::default(), &env[..], &FileConfig::default())
            .expect_err("not a number");
        assert!(
            err.to_string()
                .contains("TWILIO_BROKER_SHUTDOWN_GRACE_SECONDS=\"soon\""),
            "{err}"
        );
        let env = [("TWILIO_BROKER_METRICS_LISTEN", "everywhere")];
        assert!(Settings::resolve(&Flags::default(), &env[..], &FileConfig::default()).is_err());
    }

    #[test]
    fn the_config_file_is_the_flag_then_the_environment() {
        let env = [("TWILIO_BROKER_CONFIG", "/etc/tb/env.toml")];
        assert_eq!(
            config_path(&Flags::default(), &env[..]),
            Some("/etc/tb/env.toml".into())
        );
        let flags = Flags {
            config: Some("/etc/tb/flag.toml".into()),
            ..Flags::default()
        };
        assert_eq!(
            config_path(&flags, &env[..]),
            Some("/etc/tb/flag.toml".into())
        );
        assert_eq!(config_path(&Flags::default(), &[][..]), None);
    }

    #[test]
    fn the_master_key_file_and_token_url_are_carried_through() {
        let in_file = "master_key_file = \"/etc/tb/file.key\"\n";
        let env = [(
            "TWILIO_BROKER_OAUTH_TOKEN_URL",
            "http://127.0.0.1:9/v2/token",
        )];
        let settings = resolve(&Flags::default(), &env, in_file);
        assert_eq!(settings.master_key_file, Some("/etc/tb/file.key".into()));
        assert_eq!(
            settings.oauth_token_url.as_deref(),
            Some("http://127.0.0.1:9/v2/token")
        );
        assert_eq!(resolve(&Flags::default(), &[], "").oauth_token_url, None);
    }
}
