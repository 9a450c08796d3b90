//! Listeners and connections: Unix sockets, TLS/mTLS and plaintext loopback,
//! merged into one stream of connections that each carry their [`Caller`].
//!
//! TLS handshakes run in their own tasks so a slow client never holds up the
//! accept loop.

mod spec;
mod tls;

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::mpsc;
use tonic::transport::server::Connected;

pub use spec::{ListenerConfig, ListenerSpec, TlsSettings};

use crate::caller::{Caller, Identity, Transport};

trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// An accepted connection and who is on the other end.
pub struct Conn {
    io: Box<dyn Io>,
    caller: Arc<Caller>,
}

/// What tonic puts in each request's extensions for this connection.
#[derive(Clone, Debug)]
pub struct PeerInfo(pub Arc<Caller>);

impl Connected for Conn {
    type ConnectInfo = PeerInfo;
    fn connect_info(&self) -> PeerInfo {
        PeerInfo(Arc::clone(&self.caller))
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

/// A bound listener, ready to accept.
pub enum Bound {
    /// Plaintext TCP (loopback only).
    Plaintext(tokio::net::TcpListener),
    /// TLS over TCP.
    Tls(tokio::net::TcpListener, tokio_rustls::TlsAcceptor),
    /// A Unix domain socket.
    Unix(tokio::net::UnixListener, std::path::PathBuf),
}

impl Bound {
    /// Where it listens, for the "listening on" log line.
    pub fn describe(&self) -> String {
        match self {
            Bound::Plaintext(l) => l
                .local_addr()
                .map(|a| a.to_string())
                .unwrap_or_else(|_| "?".into()),
            Bound::Tls(l, _) => format!(
                "{} (tls)",
                l.local_addr()
                    .map(|a| a.to_string())
                    .unwrap_or_else(|_| "?".into())
            ),
            Bound::Unix(_, path) => format!("unix:{}", path.display()),
        }
    }
}

/// Binds every listener; errors name the listener.
pub async fn bind_all(specs: &[ListenerSpec]) -> anyhow::Result<Vec<Bound>> {
    let mut bound = Vec::with_capacity(specs.len());
    for spec in specs {
        bound.push(spec.bind().await?);
    }
    Ok(bound)
}

/// Accepts on every listener and yields connections with their callers.
pub fn incoming(listeners: Vec<Bound>) -> tokio_stream::wrappers::ReceiverStream<io::Result<Conn>> {
    let (tx, rx) = mpsc::channel(256);
    for listener in listeners {
        let tx = tx.clone();
        tokio::spawn(accept_loop(listener, tx));
    }
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

async fn accept_loop(listener: Bound, tx: mpsc::Sender<io::Result<Conn>>) {
    loop {
        let conn = match &listener {
            Bound::Plaintext(l) => match l.accept().await {
                Ok((stream, addr)) => {
                    let _ = stream.set_nodelay(true);
                    Some(Conn {
                        io: Box::new(stream),
                        caller: Arc::new(Caller::new(Transport::Plaintext, None, addr.to_string())),
                    })
                }
                Err(err) => {
                    tracing::warn!(%err, "accept failed");
                    None
                }
            },
            Bound::Unix(l, path) => match l.accept().await {
                Ok((stream, _)) => {
                    let identity = stream.peer_cred().ok().map(|cred| Identity::Unix {
                        uid: cred.uid(),
                        gid: cred.gid(),
                    });
                    Some(Conn {
                        io: Box::new(stream),
                        caller: Arc::new(Caller::new(
                            Transport::Unix,
                            identity,
                            format!("unix:{}", path.display()),
                        )),
                    })
                }
                Err(err) => {
                    tracing::warn!(%err, "accept failed");
                    None
                }
            },
            Bound::Tls(l, acceptor) => match l.accept().await {
                Ok((stream, addr)) => {
                    let _ = stream.set_nodelay(true);
                    let acceptor = acceptor.clone();
                    let tx = tx.clone();
                    tokio::spawn(async move {
                        let handshake = tokio::time::timeout(
                            std::time::Duration::from_secs(10),
                            acceptor.accept(stream),
                        )
                        .await;
                        match handshake {
                            Ok(Ok(tls)) => {
                                let identity = tls::client_identity(tls.get_ref().1);
                                let conn = Conn {
                                    io: Box::new(tls),
                                    caller: Arc::new(Caller::new(
                                        Transport::Tls,
                                        identity,
                                        addr.to_string(),
                                    )),
                                };
                                let _ = tx.send(Ok(conn)).await;
                            }
                            Ok(Err(err)) => {
                                tracing::debug!(peer = %addr, %err, "TLS handshake failed")
                            }
                            Err(_) => tracing::debug!(peer = %addr, "TLS handshake timed out"),
                        }
                    });
                    None
                }
                Err(err) => {
                    tracing::warn!(%err, "accept failed");
                    None
                }
            },
        };
        match conn {
            Some(conn) => {
                if tx.send(Ok(conn)).await.is_err() {
                    return;
                }
            }
            // An accept error (e.g. out of file descriptors) must not spin.
            None if tx.is_closed() => return,
            None => tokio::time::sleep(std::time::Duration::from_millis(5)).await,
        }
    }
}
