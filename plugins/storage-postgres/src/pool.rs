//! A few connections, each behind its own lock, reconnected on demand.
//! Calls take the next connection in turn; a call that finds its
//! connection broken reconnects and tries once more.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use postgres::{Client, NoTls};
use tokio_postgres_rustls::MakeRustlsConnect;
use twilio_broker_plugin_sdk::PluginError;

/// The connection pool.
pub struct Pool {
    connect: postgres::Config,
    tls: Option<MakeRustlsConnect>,
    slots: Vec<Mutex<Option<Client>>>,
    next: AtomicUsize,
}

/// A PostgreSQL error as a plugin error: server errors are failures (with
/// the server's message), anything else means the database is unreachable.
pub fn plugin_error(err: &postgres::Error) -> PluginError {
    match err.as_db_error() {
        Some(db) => PluginError::failed(format!(
            "PostgreSQL: {} ({})",
            db.message(),
            db.code().code()
        )),
        None => {
            // The cause (a refused certificate, say) is in the source chain.
            let mut message = format!("PostgreSQL unreachable: {err}");
            let mut source = std::error::Error::source(err);
            while let Some(cause) = source {
                message.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            PluginError::unavailable(message)
        }
    }
}

impl Pool {
    /// A pool of `size` lazily opened connections, over TLS when `tls` is given.
    pub fn new(connect: postgres::Config, tls: Option<rustls::ClientConfig>, size: usize) -> Self {
        Pool {
            connect,
            tls: tls.map(MakeRustlsConnect::new),
            slots: (0..size).map(|_| Mutex::new(None)).collect(),
            next: AtomicUsize::new(0),
        }
    }

    /// Opens a connection outside the pool.
    pub fn connect(&self) -> Result<Client, PluginError> {
        match &self.tls {
            Some(tls) => self.connect.connect(tls.clone()),
            None => self.connect.connect(NoTls),
        }
        .map_err(|e| plugin_error(&e))
    }

    /// Runs `query` on a pooled connection, retrying once on a fresh
    /// connection if the first one turns out to be broken.
    pub fn run<T>(
        &self,
        mut query: impl FnMut(&mut Client) -> Result<T, postgres::Error>,
    ) -> Result<T, PluginError> {
        let index = self.next.fetch_add(1, Ordering::Relaxed) % self.slots.len();
        let mut slot = self.slots[index]
            .lock()
            .map_err(|_| PluginError::failed("a connection lock is poisoned"))?;
        for attempt in 0..2 {
            if slot.as_ref().is_none_or(Client::is_closed) {
                *slot = Some(self.connect()?);
            }
            let Some(client) = slot.as_mut() else {
                continue;
            };
            match query(client) {
                Ok(value) => return Ok(value),
                Err(err) if client.is_closed() && attempt == 0 => {
                    *slot = None;
                    let _ = err;
                }
                Err(err) => {
                    if client.is_closed() {
                        *slot = None;
                    }
                    return Err(plugin_error(&err));
                }
            }
        }
        Err(PluginError::unavailable(
            "PostgreSQL connection lost twice in a row",
        ))
    }
}
