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

pub(crate) async fn channel(target: &str, options: &ConnectOptions) -> Result<Channel, Error> {
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
