//! Listener specifications: parsed from `--listen` and `[[listeners]]`,
//! checked (plaintext only on loopback), then bound.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;

use super::{Bound, TlsReloader};

/// TLS material of a TCP listener.
#[derive(Debug, Clone, serde::Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TlsSettings {
    /// PEM certificate chain of the server.
    pub cert: PathBuf,
    /// PEM private key of the server.
    pub key: PathBuf,
    /// PEM CA bundle for client certificates. When set, clients must present
    /// a certificate signed by it (mutual TLS).
    #[serde(default)]
    pub client_ca: Option<PathBuf>,
    /// With `client_ca`: `"required"` (the default) refuses a handshake
    /// without a client certificate; `"optional"` serves such clients as
    /// `anonymous-tls`, a principal no `anonymous` rule matches.
    #[serde(default)]
    pub client_auth: Option<ClientAuth>,
    /// PEM certificate revocation lists of the client CA: a revoked client
    /// certificate fails the handshake. Read at start-up.
    #[serde(default)]
    pub crl: Option<PathBuf>,
}

/// Whether a TLS listener with a client CA requires a client certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ClientAuth {
    /// No certificate, no connection (the default).
    #[default]
    Required,
    /// Clients without a certificate connect as `anonymous-tls`.
    Optional,
}

/// One listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenerSpec {
    /// TCP, plaintext (loopback only) or TLS.
    Tcp {
        /// Address to bind.
        addr: SocketAddr,
        /// TLS, when given.
        tls: Option<TlsSettings>,
    },
    /// A Unix domain socket; callers are identified by the kernel.
    Unix {
        /// Socket path.
        path: PathBuf,
        /// File mode of the socket (default 0o660).
        mode: u32,
    },
}

/// Default mode of a Unix socket: owner and group may connect.
pub const DEFAULT_UNIX_MODE: u32 = 0o660;

/// A `[[listeners]]` entry in the config file.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerConfig {
    /// `HOST:PORT` or `unix:/path`.
    pub address: String,
    /// TLS for a TCP listener.
    #[serde(default)]
    pub tls: Option<TlsSettings>,
    /// Octal file mode for a Unix socket, e.g. "0660".
    #[serde(default)]
    pub mode: Option<String>,
}

impl ListenerSpec {
    /// Parses `HOST:PORT` or `unix:/path`, with optional TLS for TCP.
    pub fn parse(
        address: &str,
        tls: Option<TlsSettings>,
        mode: Option<&str>,
    ) -> anyhow::Result<Self> {
        if let Some(path) = address.strip_prefix("unix:") {
            if tls.is_some() {
                anyhow::bail!("listener {address}: TLS applies to TCP listeners, not Unix sockets");
            }
            let mode = match mode {
                Some(text) => u32::from_str_radix(text.trim_start_matches("0o"), 8)
                    .ok()
                    .filter(|m| *m <= 0o777)
                    .with_context(|| {
                        format!(
                            "listener {address}: mode {text:?} is not an octal file mode like 0660"
                        )
                    })?,
                None => DEFAULT_UNIX_MODE,
            };
            return Ok(ListenerSpec::Unix {
                path: PathBuf::from(path),
                mode,
            });
        }
        if mode.is_some() {
            anyhow::bail!("listener {address}: mode applies to Unix sockets only");
        }
        let addr: SocketAddr = address
            .parse()
            .with_context(|| format!("listener {address:?} is neither HOST:PORT nor unix:/path"))?;
        Ok(ListenerSpec::Tcp { addr, tls })
    }

    /// Checks the transport rules: plaintext TCP only on loopback, and with
    /// `dev` every TCP listener on loopback.
    pub fn check(&self, dev: bool) -> anyhow::Result<()> {
        if let ListenerSpec::Tcp { addr, tls } = self {
            if let Some(settings) = tls
                && (settings.client_auth.is_some() || settings.crl.is_some())
                && settings.client_ca.is_none()
            {
                anyhow::bail!(
                    "listener {addr}: client_auth and crl need client_ca (the CA that signs \
                     client certificates); without client_ca every TLS caller is anonymous-tls"
                );
            }
            if tls.is_none() && !addr.ip().is_loopback() {
                anyhow::bail!(
                    "refusing to serve plaintext gRPC on {addr}: only loopback addresses \
                     (127.0.0.0/8, ::1) may be used without TLS; give the listener a TLS \
                     certificate and key"
                );
            }
            if dev && !addr.ip().is_loopback() {
                anyhow::bail!("--dev listens on loopback only; {addr} is not a loopback address");
            }
        }
        Ok(())
    }

    /// Binds the listener.
    pub async fn bind(&self) -> anyhow::Result<Bound> {
        match self {
            ListenerSpec::Tcp { addr, tls: None } => Ok(Bound::Plaintext(
                tokio::net::TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("cannot listen on {addr}"))?,
            )),
            ListenerSpec::Tcp {
                addr,
                tls: Some(settings),
            } => {
                let reloader = TlsReloader::load(format!("{addr} (tls)"), settings.clone())
                    .with_context(|| format!("TLS listener {addr}"))?;
                let listener = tokio::net::TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("cannot listen on {addr}"))?;
                Ok(Bound::Tls(listener, reloader))
            }
            ListenerSpec::Unix { path, mode } => bind_unix(path, *mode).await,
        }
    }
}

/// Binds a Unix socket with no window in which it is more open than `mode`
/// (created under a umask that leaves exactly `mode`), replacing only a
/// stale *socket*: a live socket, or any other kind of file, is refused.
async fn bind_unix(path: &std::path::Path, mode: u32) -> anyhow::Result<Bound> {
    use std::os::unix::fs::{FileTypeExt as _, PermissionsExt as _};
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            anyhow::bail!(
                "{} exists and is not a socket; refusing to replace it (remove it yourself \
                 if it is yours, or choose another path)",
                path.display()
            );
        }
        // A socket left by a crashed broker is removed; a live one is not.
        if tokio::net::UnixStream::connect(path).await.is_ok() {
            anyhow::bail!("{} is in use by a running process", path.display());
        }
        std::fs::remove_file(path)
            .with_context(|| format!("cannot remove the stale socket {}", path.display()))?;
    }
    let listener =
        twilio_broker_system::with_umask(!mode & 0o777, || tokio::net::UnixListener::bind(path))
            .with_context(|| format!("cannot listen on unix:{}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("cannot set mode {mode:o} on {}", path.display()))?;
    Ok(Bound::Unix(listener, path.to_path_buf()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn only_a_stale_socket_is_replaced_and_the_mode_is_exact() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().expect("dir");
        let file = dir.path().join("not-a-socket");
        std::fs::write(&file, "keep me").expect("write");
        let err = bind_unix(&file, 0o600).await.err().expect("refused");
        assert!(format!("{err:#}").contains("not a socket"), "{err:#}");
        assert_eq!(std::fs::read_to_string(&file).expect("kept"), "keep me");

        let socket = dir.path().join("b.sock");
        let live = bind_unix(&socket, 0o600).await.expect("binds");
        let mode = std::fs::metadata(&socket)
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let err = bind_unix(&socket, 0o600).await.err().expect("in use");
        assert!(format!("{err:#}").contains("in use"), "{err:#}");
        drop(live);
        bind_unix(&socket, 0o660)
            .await
            .expect("a stale socket is replaced");
    }

    #[test]
    fn parses_and_checks() {
        let unix = ListenerSpec::parse("unix:/run/b.sock", None, Some("0600")).expect("unix");
        assert_eq!(
            unix,
            ListenerSpec::Unix {
                path: "/run/b.sock".into(),
                mode: 0o600
            }
        );
        let loopback = ListenerSpec::parse("127.0.0.1:50051", None, None).expect("tcp");
        assert!(loopback.check(false).is_ok() && loopback.check(true).is_ok());
        let open = ListenerSpec::parse("0.0.0.0:50051", None, None).expect("tcp");
        assert!(
            format!("{:#}", open.check(false).expect_err("plaintext")).contains("only loopback")
        );
        let tls = TlsSettings {
            cert: "c".into(),
            key: "k".into(),
            client_ca: None,
            client_auth: None,
            crl: None,
        };
        let open_tls = ListenerSpec::parse("0.0.0.0:50051", Some(tls), None).expect("tls");
        assert!(open_tls.check(false).is_ok());
        assert!(open_tls.check(true).is_err());
        assert!(ListenerSpec::parse("unix:/x", None, Some("999")).is_err());
        assert!(ListenerSpec::parse("nonsense", None, None).is_err());
    }
}
