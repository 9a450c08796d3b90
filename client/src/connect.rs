//! Making a channel: TCP, TLS/mTLS, or a Unix socket.

use std::path::PathBuf;
use std::time::Duration;

use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use crate::Error;

/// TLS material (PEM bytes).
#[derive(Debug, Clone, Default)]
pub struct TlsOptions {
    /// CA bundle that signed the broker's certificate.
    pub ca_pem: Option<Vec<u8>>,
    /// Client certificate and key for mutual TLS.
    pub identity_pem: Option<(Vec<u8>, Vec<u8>)>,
    /// Name to check in the broker's certificate (default: the host).
    pub server_name: Option<String>,
}

/// How to connect.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// TLS, for `https://` targets.
    pub tls: Option<TlsOptions>,
    /// A cached bearer token with less than this left is replaced.
    pub bearer_safety_margin: Duration,
    /// Connection time-out.
    pub connect_timeout: Duration,
    /// Deadline of each call ([`DEFAULT_CALL_TIMEOUT`], as the Python and
    /// Node clients); `None` for none.
    pub call_timeout: Option<Duration>,
}

/// The default deadline of each call: 10 s, as the Python and Node clients.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(10);

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            tls: None,
            bearer_safety_margin: crate::DEFAULT_SAFETY_MARGIN,
            connect_timeout: Duration::from_secs(5),
            call_timeout: Some(DEFAULT_CALL_TIMEOUT),
        }
    }
}

/// The host of a TCP target (`host:port`, `[v6]:port`, `http://...`).
fn host_of(target: &str) -> &str {
    let authority = target
        .split_once("://")
        .map_or(target, |(_, rest)| rest)
        .split('/')
        .next()
        .unwrap_or_default();
    match authority.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or_default(),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    }
}

/// True for `localhost` and loopback addresses.
pub(crate) fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Plaintext to a non-loopback host is refused unless `http://` is written
/// out, which is allowed with a loud warning on standard error.
fn check_plaintext(target: &str, tls: bool) -> Result<(), Error> {
    if tls || target.starts_with("https://") {
        return Ok(());
    }
    let host = host_of(target);
    if is_loopback(host) {
        return Ok(());
    }
    if target.starts_with("http://") {
        eprintln!(
            "WARNING: twilio-broker client: speaking PLAINTEXT to {host} because the address \
             says http://; bearer tokens and credentials cross the network unencrypted"
        );
        return Ok(());
    }
    Err(Error::Connect(format!(
        "{target}: refusing plaintext to {host}, which is not this machine: use \
         https://{target} with TLS options (the broker's CA), or write http://{target} to \
         insist on plaintext"
    )))
}

/// A connected channel to the broker at `target` (`host:port`,
/// `https://host:port` or `unix:/path`): TLS when `options.tls` is set,
/// plaintext only to a loopback host (or when `http://` is written out,
/// with a warning), Unix sockets with `localhost` as authority. The raw
/// channel for callers that build their own stubs (the `twilio-broker`
/// command line); [`crate::Client`] wraps it.
pub async fn channel(target: &str, options: &ConnectOptions) -> Result<Channel, Error> {
    let connect_error = |e: tonic::transport::Error| Error::Connect(format!("{target}: {e}"));
    if let Some(path) = target.strip_prefix("unix:") {
        let path = PathBuf::from(path);
        // `localhost` as `:authority`, as grpc-go and grpc-js send on a
        // Unix socket; the broker gives the authority no meaning.
        return Endpoint::from_static("http://localhost")
            .connect_timeout(options.connect_timeout)
            .connect_with_connector(tower::service_fn(move |_| {
                let path = path.clone();
                async move {
                    let stream = tokio::net::UnixStream::connect(path).await?;
                    Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
                }
            }))
            .await
            .map_err(connect_error);
    }
    check_plaintext(target, options.tls.is_some())?;
    let uri = if target.contains("://") {
        target.to_owned()
    } else if options.tls.is_some() {
        format!("https://{target}")
    } else {
        format!("http://{target}")
    };
    let mut endpoint = Endpoint::from_shared(uri)
        .map_err(|_| Error::Connect(format!("{target:?} is not a valid address")))?
        .connect_timeout(options.connect_timeout)
        .tcp_nodelay(true);
    if let Some(tls) = &options.tls {
        let mut config = ClientTlsConfig::new();
        if let Some(ca) = &tls.ca_pem {
            config = config.ca_certificate(Certificate::from_pem(ca));
        }
        if let Some((cert, key)) = &tls.identity_pem {
            config = config.identity(Identity::from_pem(cert, key));
        }
        if let Some(name) = &tls.server_name {
            config = config.domain_name(name.clone());
        }
        endpoint = endpoint.tls_config(config).map_err(connect_error)?;
    }
    endpoint.connect().await.map_err(connect_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plaintext_only_to_loopback_unless_insisted() {
        for fine in [
            "127.0.0.1:50051",
            "localhost:1",
            "[::1]:50051",
            "http://127.0.0.1:1",
            "https://broker.internal:443",
            "http://broker.internal:50051",
        ] {
            assert!(check_plaintext(fine, false).is_ok(), "{fine}");
        }
        for refused in ["broker.internal:50051", "10.0.0.5:50051", "[2001:db8::1]:1"] {
            let err = check_plaintext(refused, false).expect_err(refused);
            assert!(err.to_string().contains("refusing plaintext"), "{err}");
            assert!(err.to_string().contains("http://"), "{err}");
            assert!(check_plaintext(refused, true).is_ok(), "{refused} with TLS");
        }
    }
}
