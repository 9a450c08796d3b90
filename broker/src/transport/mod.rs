//! Listeners and connections: Unix sockets, TLS/mTLS and plaintext loopback,
//! merged into one stream of connections that each carry their [`Caller`].
//!
//! TLS handshakes run in their own tasks so a slow client never holds up the
//! accept loop. Every connection passes the [`limits::Gate`] at accept time
//! and is closed after [`Limits::idle_timeout_seconds`] without a call.

mod activation;
mod limits;
mod reload;
mod spec;
mod tls;

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::mpsc;

pub use limits::{ActivityLayer, Limits};
pub use reload::{TlsReloader, WATCH_INTERVAL, watch_files};
pub use spec::{ClientAuth, ListenerConfig, ListenerSpec, TlsSettings};

use crate::caller::{Caller, Identity, Source, Transport};
use limits::{Activity, Gate, IdleTimer, Permit};

trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// An accepted connection and who is on the other end.
pub struct Conn {
    io: Box<dyn Io>,
    peer: PeerInfo,
    idle: IdleTimer,
    _permit: Permit,
}

/// What the server puts in each request's extensions for this connection
/// (`server.rs` hands it to tonic through `Connected`, so this module never
/// names tonic).
#[derive(Clone, Debug)]
pub struct PeerInfo {
    /// Who is calling.
    pub caller: Arc<Caller>,
    /// Calls in flight on the connection, for its idle timeout.
    activity: Arc<Activity>,
}

impl Conn {
    fn new(io: Box<dyn Io>, caller: Caller, permit: Permit, limits: &Limits) -> Self {
        let activity = Activity::new();
        Conn {
            io,
            idle: IdleTimer::new(Arc::clone(&activity), limits.idle_timeout()),
            peer: PeerInfo {
                caller: Arc::new(caller),
                activity,
            },
            _permit: permit,
        }
    }
}

impl Conn {
    /// Who is on the other end, and the connection's call activity.
    pub fn peer(&self) -> &PeerInfo {
        &self.peer
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        // An idle connection reads as closed: the server then drops it.
        if self.idle.poll_expired(cx).is_ready() {
            tracing::debug!(peer = %self.peer.caller.peer, "closing an idle connection");
            return Poll::Ready(Ok(()));
        }
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
    /// TLS over TCP, with its reloadable certificate.
    Tls(tokio::net::TcpListener, Arc<TlsReloader>),
    /// A Unix domain socket.
    Unix(tokio::net::UnixListener, std::path::PathBuf),
}

impl Bound {
    /// The TLS material to reload on SIGHUP, for a TLS listener.
    pub fn tls_reloader(&self) -> Option<Arc<TlsReloader>> {
        match self {
            Bound::Tls(_, reloader) => Some(Arc::clone(reloader)),
            _ => None,
        }
    }

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

/// Binds every listener; errors name the listener. Sockets passed by
/// systemd socket activation (`activation.rs`) serve the listeners whose
/// address or path they hold instead of a new bind; a passed socket that no
/// listener names stops start-up.
pub async fn bind_all(specs: &[ListenerSpec]) -> anyhow::Result<Vec<Bound>> {
    let mut passed = activation::Passed::take()?;
    let mut bound = Vec::with_capacity(specs.len());
    for spec in specs {
        match passed.adopt(spec)? {
            Some(adopted) => {
                tracing::info!("serving a socket passed by systemd (LISTEN_FDS)");
                bound.push(adopted);
            }
            None => bound.push(spec.bind().await?),
        }
    }
    if let Some(left) = passed.left_over() {
        anyhow::bail!(
            "socket activation passed {left}, which no listener names: add it with --listen or \
             [[listeners]] (with its TLS settings) so the broker knows how to serve it"
        );
    }
    Ok(bound)
}

/// Accepts on every listener and yields connections with their callers,
/// within `limits`.
pub fn incoming(
    listeners: Vec<Bound>,
    limits: Limits,
) -> tokio_stream::wrappers::ReceiverStream<io::Result<Conn>> {
    let (tx, rx) = mpsc::channel(256);
    let gate = Gate::new(limits);
    for listener in listeners {
        tokio::spawn(accept_loop(listener, tx.clone(), Arc::clone(&gate), limits));
    }
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

/// Takes a slot for `source`, or logs and counts why not (the caller then
/// drops the stream, closing the connection).
fn admit(gate: &Arc<Gate>, source: &Source) -> Option<Permit> {
    match gate.admit(source) {
        Ok(permit) => Some(permit),
        Err(refusal) => {
            metrics::counter!("twilio_broker_connections_refused_total", "reason" => refusal.as_str())
                .increment(1);
            tracing::debug!(%source, reason = refusal.as_str(), "connection refused");
            None
        }
    }
}

async fn accept_loop(
    listener: Bound,
    tx: mpsc::Sender<io::Result<Conn>>,
    gate: Arc<Gate>,
    limits: Limits,
) {
    loop {
        let accepted = match &listener {
            Bound::Plaintext(l) => l.accept().await.map(|(stream, addr)| {
                let _ = stream.set_nodelay(true);
                let source = Source::Ip(addr.ip());
                admit(&gate, &source).map(|permit| {
                    let caller = Caller::new(
                        Transport::Plaintext,
                        Identity::Anonymous,
                        addr.to_string(),
                        source,
                    );
                    Conn::new(Box::new(stream), caller, permit, &limits)
                })
            }),
            Bound::Unix(l, path) => l.accept().await.map(|(stream, _)| {
                let peer = format!("unix:{}", path.display());
                match stream.peer_cred() {
                    Ok(cred) => {
                        let source = Source::Uid(cred.uid());
                        admit(&gate, &source).map(|permit| {
                            let identity = Identity::Unix {
                                uid: cred.uid(),
                                gid: cred.gid(),
                            };
                            let caller = Caller::new(Transport::Unix, identity, peer, source);
                            Conn::new(Box::new(stream), caller, permit, &limits)
                        })
                    }
                    Err(err) => {
                        tracing::warn!(%err, "no peer credentials on a Unix connection; closing it");
                        None
                    }
                }
            }),
            Bound::Tls(l, reloader) => l.accept().await.map(|(stream, addr)| {
                let _ = stream.set_nodelay(true);
                let source = Source::Ip(addr.ip());
                // The slot is taken before the handshake, which runs in its
                // own task so that a slow client never holds up this loop.
                if let Some(permit) = admit(&gate, &source) {
                    tokio::spawn(handshake(
                        reloader.acceptor(),
                        stream,
                        addr,
                        source,
                        permit,
                        limits,
                        tx.clone(),
                    ));
                }
                None
            }),
        };
        match accepted {
            Ok(Some(conn)) => {
                if tx.send(Ok(conn)).await.is_err() {
                    return;
                }
            }
            Ok(None) if tx.is_closed() => return,
            Ok(None) => {}
            Err(err) => {
                tracing::warn!(%err, "accept failed");
                if tx.is_closed() {
                    return;
                }
                // An accept error (e.g. out of file descriptors) must not spin.
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        }
    }
}

async fn handshake(
    acceptor: tokio_rustls::TlsAcceptor,
    stream: tokio::net::TcpStream,
    addr: std::net::SocketAddr,
    source: Source,
    permit: Permit,
    limits: Limits,
    tx: mpsc::Sender<io::Result<Conn>>,
) {
    let timeout = std::time::Duration::from_secs(limits.handshake_timeout_seconds);
    match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => {
            let caller = match tls::client_identity(tls.get_ref().1) {
                Ok(identity) => Caller::new(Transport::Tls, identity, addr.to_string(), source),
                Err(reason) => {
                    tracing::warn!(peer = %addr, %reason, "client certificate refused");
                    Caller::refused(Transport::Tls, addr.to_string(), source, reason.to_string())
                }
            };
            let _ = tx
                .send(Ok(Conn::new(Box::new(tls), caller, permit, &limits)))
                .await;
        }
        Ok(Err(err)) => tracing::debug!(peer = %addr, %err, "TLS handshake failed"),
        Err(_) => tracing::debug!(peer = %addr, "TLS handshake timed out"),
    }
}
