//! Connecting the CLI to a running broker (TCP, TLS/mTLS or a Unix socket),
//! and turning gRPC statuses into sentences a person can act on.

use std::path::PathBuf;

use anyhow::Context as _;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

/// Whether a plaintext connection to `addr` is acceptable.
#[derive(Debug, PartialEq, Eq)]
enum Plaintext {
    /// TLS, or a loopback host.
    Fine,
    /// Plaintext to another host because `http://` was written out.
    Insisted(String),
    /// Plaintext to another host without that: refused.
    Refused(String),
}

fn plaintext_check(addr: &str, tls: bool) -> Plaintext {
    if tls || addr.starts_with("https://") {
        return Plaintext::Fine;
    }
    let explicit = addr.starts_with("http://");
    let authority = addr
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap_or_default();
    // host:port, [v6]:port, or a bare host.
    let host = match authority.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or_default(),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    match (loopback, explicit) {
        (true, _) => Plaintext::Fine,
        (false, true) => Plaintext::Insisted(host.to_owned()),
        (false, false) => Plaintext::Refused(host.to_owned()),
    }
}

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

    /// A connected channel to the broker.
    pub async fn channel(&self) -> anyhow::Result<Channel> {
        let unreachable = || {
            anyhow::anyhow!(
                "cannot reach the broker at {}: is `twilio-broker serve` running there? (set --addr or TWILIO_BROKER_ADDR)",
                self.addr
            )
        };
        if let Some(path) = self.addr.strip_prefix("unix:") {
            let path = PathBuf::from(path);
            let endpoint = Endpoint::from_static("http://localhost");
            return endpoint
                .connect_with_connector(tower::service_fn(move |_| {
                    let path = path.clone();
                    async move {
                        let stream = tokio::net::UnixStream::connect(path).await?;
                        Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
                    }
                }))
                .await
                .map_err(|_| unreachable());
        }
        let tls = self.tls_ca.is_some() || self.tls_cert.is_some();
        let uri = if self.addr.contains("://") {
            self.addr.clone()
        } else if tls {
            format!("https://{}", self.addr)
        } else {
            format!("http://{}", self.addr)
        };
        match plaintext_check(&self.addr, tls) {
            Plaintext::Fine => {}
            Plaintext::Insisted(host) => eprintln!(
                "warning: talking to {host} in plaintext (http:// was given): anyone on the \
                 path can read and change what is sent, secrets included"
            ),
            Plaintext::Refused(host) => anyhow::bail!(
                "refusing to talk to {host} in plaintext: it is not a loopback address. Give \
                 --tls-ca (TLS), use a unix: socket, or write http://{} to insist",
                self.addr
            ),
        }
        let mut endpoint = Endpoint::from_shared(uri)
            .map_err(|_| anyhow::anyhow!("--addr {:?} is not a valid address", self.addr))?
            .connect_timeout(std::time::Duration::from_secs(5));
        if tls {
            let mut config = ClientTlsConfig::new();
            if let Some(ca) = &self.tls_ca {
                let pem =
                    std::fs::read(ca).with_context(|| format!("cannot read {}", ca.display()))?;
                config = config.ca_certificate(Certificate::from_pem(pem));
            }
            if let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) {
                let cert = std::fs::read(cert)
                    .with_context(|| format!("cannot read {}", cert.display()))?;
                let key =
                    std::fs::read(key).with_context(|| format!("cannot read {}", key.display()))?;
                config = config.identity(Identity::from_pem(cert, key));
            }
            if let Some(name) = &self.tls_server_name {
                config = config.domain_name(name.clone());
            }
            endpoint = endpoint.tls_config(config).context("bad TLS settings")?;
        }
        endpoint.connect().await.map_err(|_| unreachable())
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
    anyhow::anyhow!(
        "{}: {}{hint}",
        crate::grpc::status::code_name(status.code()),
        status.message()
    )
}

#[cfg(test)]
mod plaintext_tests {
    use super::*;

    #[test]
    fn plaintext_only_to_loopback_unless_insisted() {
        for (addr, tls, expected) in [
            ("127.0.0.1:50051", false, Plaintext::Fine),
            ("localhost:50051", false, Plaintext::Fine),
            ("[::1]:50051", false, Plaintext::Fine),
            ("127.0.0.2:1", false, Plaintext::Fine),
            ("broker.internal:50051", true, Plaintext::Fine),
            ("https://broker.internal:50051", false, Plaintext::Fine),
            (
                "broker.internal:50051",
                false,
                Plaintext::Refused("broker.internal".into()),
            ),
            (
                "10.1.2.3:50051",
                false,
                Plaintext::Refused("10.1.2.3".into()),
            ),
            (
                "http://10.1.2.3:50051",
                false,
                Plaintext::Insisted("10.1.2.3".into()),
            ),
        ] {
            assert_eq!(plaintext_check(addr, tls), expected, "{addr}");
        }
    }
}
