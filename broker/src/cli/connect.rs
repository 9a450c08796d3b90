//! Connecting the CLI to a running broker (TCP, TLS/mTLS or a Unix socket),
//! and turning gRPC statuses into sentences a person can act on.

use std::path::PathBuf;

use anyhow::Context as _;
use tonic::transport::Channel;
use twilio_broker_client::{ConnectOptions, Error as ClientError, TlsOptions};

/// The connection flags shared by client commands.
#[derive(Debug, Clone, clap::Args)]
pub struct AddrArgs {
    /// Address of the broker: host:port, https://host:port or unix:/path.
    #[arg(long, env = "TWILIO_BROKER_ADDR", default_value = crate::config::DEFAULT_LISTEN)]
    pub addr: String,
    /// PEM CA bundle that signed the broker's certificate (turns on TLS).
    #[arg(long, env = "TWILIO_BROKER_TLS_CA")]
    pub tls_ca: Option<PathBuf>,
    /// PEM client certificate for mutual TLS.
    #[arg(long, env = "TWILIO_BROKER_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM client key for mutual TLS.
    #[arg(long, env = "TWILIO_BROKER_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Server name to check in the broker's certificate (default: the host).
    #[arg(long, env = "TWILIO_BROKER_TLS_SERVER_NAME")]
    pub tls_server_name: Option<String>,
}

impl AddrArgs {
    /// Connection settings for `addr`, with TLS material from the
    /// `TWILIO_BROKER_TLS_*` variables (for commands with their own address flag).
    pub fn from_addr(addr: String) -> Self {
        let var = |name: &str| std::env::var_os(name).map(PathBuf::from);
        AddrArgs {
            addr,
            tls_ca: var("TWILIO_BROKER_TLS_CA"),
            tls_cert: var("TWILIO_BROKER_TLS_CERT"),
            tls_key: var("TWILIO_BROKER_TLS_KEY"),
            tls_server_name: std::env::var("TWILIO_BROKER_TLS_SERVER_NAME").ok(),
        }
    }

    /// A connected channel to the broker, made by the client crate
    /// (`twilio_broker_client::channel`): the same Unix-socket connector,
    /// TLS and refusal of plaintext off loopback as every Rust client.
    pub async fn channel(&self) -> anyhow::Result<Channel> {
        let read = |path: &PathBuf| {
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
        };
        let tls = if self.tls_ca.is_some() || self.tls_cert.is_some() {
            Some(TlsOptions {
                ca_pem: self.tls_ca.as_ref().map(read).transpose()?,
                identity_pem: match (&self.tls_cert, &self.tls_key) {
                    (Some(cert), Some(key)) => Some((read(cert)?, read(key)?)),
                    _ => None,
                },
                server_name: self.tls_server_name.clone(),
            })
        } else {
            None
        };
        let options = ConnectOptions {
            tls,
            ..ConnectOptions::default()
        };
        twilio_broker_client::channel(&self.addr, &options)
            .await
            .map_err(|err| match err {
                // Refused before dialling (plaintext off loopback, a bad
                // address): the client's message says what to do.
                ClientError::Connect(reason)
                    if reason.contains("refusing plaintext")
                        || reason.contains("not a valid address") =>
                {
                    anyhow::anyhow!("{reason} (set --addr or TWILIO_BROKER_ADDR)")
                }
                _ => anyhow::anyhow!(
                    "cannot reach the broker at {}: is `twilio-broker serve` running there? \
                     (set --addr or TWILIO_BROKER_ADDR)",
                    self.addr
                ),
            })
    }
}

/// A gRPC status as an error a person can act on.
pub fn status_error(status: tonic::Status) -> anyhow::Error {
    let hint = match status.code() {
        tonic::Code::NotFound => " (list names with `twilio-broker credential list`)",
        tonic::Code::Unavailable => " (the broker or a service it needs is down; retry later)",
        tonic::Code::Unauthenticated | tonic::Code::PermissionDenied => {
            " (check the broker's policy for this caller)"
        }
        _ => "",
    };
    // The reason (`google.rpc.ErrorInfo`) is what scripts should match on;
    // it is printed beside the code, the message stays for people.
    let reason = tonic_types::StatusExt::get_details_error_info(&status)
        .map(|info| format!(" [{}]", info.reason))
        .unwrap_or_default();
    anyhow::anyhow!(
        "{}{reason}: {}{hint}",
        crate::grpc::status::code_name(status.code()),
        status.message()
    )
}
