//! systemd socket activation: the sockets systemd bound for the daemon
//! (`LISTEN_FDS`, `LISTEN_PID`, `LISTEN_FDNAMES`) serve the listeners whose
//! address or path they hold, with those listeners' settings (TLS, client
//! CA). The descriptors are taken in `twilio-broker-system` (the `unsafe`
//! lives there); here they are only told apart, safely, by their address.
//!
//! **Invariant:** a passed socket that no listener names stops start-up: the
//! daemon never serves a socket with settings nobody wrote down (a TCP
//! socket off loopback without TLS, say).

use std::os::fd::OwnedFd;

use anyhow::Context as _;

use super::{Bound, ListenerSpec, TlsReloader};

/// The passed listening sockets, by kind.
#[derive(Debug, Default)]
pub struct Passed {
    tcp: Vec<std::net::TcpListener>,
    unix: Vec<std::os::unix::net::UnixListener>,
}

impl Passed {
    /// The sockets systemd passed to this process (none without activation).
    pub fn take() -> anyhow::Result<Passed> {
        let sockets =
            twilio_broker_system::take_listen_fds().context("socket activation (LISTEN_FDS)")?;
        let mut passed = Passed::default();
        for socket in sockets {
            passed.add(socket.fd, socket.name.as_deref().unwrap_or("unnamed"))?;
        }
        Ok(passed)
    }

    /// Files a TCP or Unix listener, told apart by its local address's family.
    fn add(&mut self, fd: OwnedFd, name: &str) -> anyhow::Result<()> {
        let tcp = std::net::TcpListener::from(fd);
        if tcp.local_addr().is_ok() {
            tcp.set_nonblocking(true)?;
            self.tcp.push(tcp);
            return Ok(());
        }
        let unix = std::os::unix::net::UnixListener::from(OwnedFd::from(tcp));
        if unix.local_addr().is_err() {
            anyhow::bail!(
                "socket activation passed descriptor {name:?}, which is neither a TCP nor a \
                 Unix stream socket"
            );
        }
        unix.set_nonblocking(true)?;
        self.unix.push(unix);
        Ok(())
    }

    /// Takes the passed socket that `spec` names, if any, and serves it with
    /// the spec's settings.
    pub fn adopt(&mut self, spec: &ListenerSpec) -> anyhow::Result<Option<Bound>> {
        match spec {
            ListenerSpec::Tcp { addr, tls } => {
                let Some(at) = self
                    .tcp
                    .iter()
                    .position(|l| l.local_addr().ok() == Some(*addr))
                else {
                    return Ok(None);
                };
                let listener = tokio::net::TcpListener::from_std(self.tcp.swap_remove(at))
                    .with_context(|| format!("socket activation for {addr}"))?;
                Ok(Some(match tls {
                    None => Bound::Plaintext(listener),
                    Some(settings) => Bound::Tls(
                        listener,
                        TlsReloader::load(format!("{addr} (tls)"), settings.clone())
                            .with_context(|| format!("TLS listener {addr}"))?,
                    ),
                }))
            }
            ListenerSpec::Unix { path, .. } => {
                let Some(at) = self.unix.iter().position(|l| {
                    l.local_addr()
                        .ok()
                        .is_some_and(|a| a.as_pathname() == Some(path.as_path()))
                }) else {
                    return Ok(None);
                };
                let listener = tokio::net::UnixListener::from_std(self.unix.swap_remove(at))
                    .with_context(|| format!("socket activation for unix:{}", path.display()))?;
                Ok(Some(Bound::Unix(listener, path.clone())))
            }
        }
    }

    /// The first passed socket no listener took, described.
    pub fn left_over(&self) -> Option<String> {
        self.tcp
            .first()
            .map(|l| match l.local_addr() {
                Ok(addr) => format!("TCP socket {addr}"),
                Err(_) => "a TCP socket".to_owned(),
            })
            .or_else(|| {
                self.unix.first().map(|l| {
                    match l
                        .local_addr()
                        .ok()
                        .and_then(|a| a.as_pathname().map(|p| p.display().to_string()))
                    {
                        Some(path) => format!("Unix socket {path}"),
                        None => "an unnamed Unix socket".to_owned(),
                    }
                })
            })
    }
}
