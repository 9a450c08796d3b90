//! Connection and HTTP/2 limits: how much one peer may hold open, and when
//! an idle connection is closed.
//!
//! **Invariant:** a connection counts against the global and its source's
//! limit from `accept` (before any TLS handshake) until it is dropped, so a
//! flood of connections or slow handshakes from one source cannot take the
//! slots another source needs.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;

use crate::caller::Source;

/// `[limits]` in the config file; every field has a safe default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Open connections in all, across listeners.
    pub max_connections: u32,
    /// Open connections from one source (a uid on a Unix socket, an IP on TCP).
    pub max_connections_per_source: u32,
    /// A connection with no call in flight for this long is closed.
    pub idle_timeout_seconds: u64,
    /// HTTP/2 `MAX_CONCURRENT_STREAMS` advertised to each connection.
    pub max_concurrent_streams: u32,
    /// Largest request message accepted, in bytes (tonic's default is 4 MiB).
    pub max_request_bytes: usize,
    /// HTTP/2 PING interval for dead-peer detection, in seconds (0: off).
    pub keepalive_interval_seconds: u64,
    /// How long a PING may go unanswered before the connection is closed.
    pub keepalive_timeout_seconds: u64,
    /// Streams a peer may reset before the server answers them; past this
    /// the connection is closed (the HTTP/2 "rapid reset" defence).
    pub max_pending_reset_streams: usize,
    /// Streams the server may reset because of a peer's protocol errors
    /// before it closes the connection.
    pub max_local_error_reset_streams: usize,
    /// How long a TLS handshake may take, in seconds.
    pub handshake_timeout_seconds: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 4096,
            max_connections_per_source: 256,
            idle_timeout_seconds: 300,
            max_concurrent_streams: 256,
            max_request_bytes: 1024 * 1024,
            keepalive_interval_seconds: 30,
            keepalive_timeout_seconds: 10,
            max_pending_reset_streams: 32,
            max_local_error_reset_streams: 32,
            handshake_timeout_seconds: 10,
        }
    }
}

impl Limits {
    /// Checks that every limit is usable (non-zero where zero would refuse everything).
    pub fn check(&self) -> anyhow::Result<()> {
        for (name, value) in [
            ("max_connections", u64::from(self.max_connections)),
            (
                "max_connections_per_source",
                u64::from(self.max_connections_per_source),
            ),
            ("idle_timeout_seconds", self.idle_timeout_seconds),
            (
                "max_concurrent_streams",
                u64::from(self.max_concurrent_streams),
            ),
            ("max_request_bytes", self.max_request_bytes as u64),
            ("handshake_timeout_seconds", self.handshake_timeout_seconds),
        ] {
            if value == 0 {
                anyhow::bail!("[limits] {name} must be at least 1");
            }
        }
        if self.max_request_bytes < 4096 {
            anyhow::bail!(
                "[limits] max_request_bytes must be at least 4096: smaller would refuse ordinary calls"
            );
        }
        Ok(())
    }

    /// The idle timeout as a duration.
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.idle_timeout_seconds)
    }

    /// The keepalive interval, `None` when off.
    pub fn keepalive_interval(&self) -> Option<Duration> {
        (self.keepalive_interval_seconds > 0)
            .then(|| Duration::from_secs(self.keepalive_interval_seconds))
    }
}

/// Counts open connections, globally and per source.
pub struct Gate {
    limits: Limits,
    open: Mutex<GateCounts>,
}

#[derive(Default)]
struct GateCounts {
    total: u32,
    per_source: HashMap<Source, u32>,
}

/// Why a connection was turned away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `max_connections` reached.
    Global,
    /// `max_connections_per_source` reached for this source.
    PerSource,
}

impl Refusal {
    /// Label for metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Global => "max_connections",
            Refusal::PerSource => "max_connections_per_source",
        }
    }
}

impl Gate {
    /// A gate enforcing `limits`.
    pub fn new(limits: Limits) -> Arc<Self> {
        Arc::new(Gate {
            limits,
            open: Mutex::new(GateCounts::default()),
        })
    }

    /// Takes a slot for a connection from `source`, or says why not.
    pub fn admit(self: &Arc<Self>, source: &Source) -> Result<Permit, Refusal> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if open.total >= self.limits.max_connections {
            return Err(Refusal::Global);
        }
        let count = open.per_source.entry(source.clone()).or_insert(0);
        if *count >= self.limits.max_connections_per_source {
            return Err(Refusal::PerSource);
        }
        *count += 1;
        open.total += 1;
        metrics::gauge!("twilio_broker_connections_open").set(open.total);
        Ok(Permit {
            gate: Arc::clone(self),
            source: source.clone(),
        })
    }

    /// Open connections now.
    #[cfg(test)]
    fn open(&self) -> u32 {
        self.open.lock().unwrap_or_else(|e| e.into_inner()).total
    }

    fn release(&self, source: &Source) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.total = open.total.saturating_sub(1);
        metrics::gauge!("twilio_broker_connections_open").set(open.total);
        if let Some(count) = open.per_source.get_mut(source) {
            *count -= 1;
            if *count == 0 {
                open.per_source.remove(source);
            }
        }
    }
}

/// A connection's slot; released when dropped.
pub struct Permit {
    gate: Arc<Gate>,
    source: Source,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.gate.release(&self.source);
    }
}

/// What a connection is doing: calls in flight and the time of the last
/// call, so that an idle connection can be closed.
#[derive(Debug, Default)]
pub struct Activity {
    in_flight: AtomicU32,
    last_call_ms: AtomicU64,
}

/// The clock's origin: tokio's clock (so tests can pause it), read as
/// milliseconds since the first use.
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn now_ms() -> u64 {
    u64::try_from(epoch().elapsed().as_millis()).unwrap_or(u64::MAX)
}

impl Activity {
    /// A fresh connection counts as active now.
    pub fn new() -> Arc<Self> {
        let activity = Activity::default();
        activity.last_call_ms.store(now_ms(), Ordering::Relaxed);
        Arc::new(activity)
    }

    /// A call started; the returned guard ends it.
    pub fn begin(self: &Arc<Self>) -> CallGuard {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.last_call_ms.store(now_ms(), Ordering::Relaxed);
        CallGuard(Arc::clone(self))
    }

    /// When the connection becomes idle if nothing happens, or `None` while
    /// a call is in flight.
    fn idle_at(&self, timeout: Duration) -> Option<Instant> {
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            return None;
        }
        let last = Duration::from_millis(self.last_call_ms.load(Ordering::Relaxed));
        Some(epoch() + last + timeout)
    }
}

/// Ends a call on drop.
pub struct CallGuard(Arc<Activity>);

impl Drop for CallGuard {
    fn drop(&mut self) {
        self.0.last_call_ms.store(now_ms(), Ordering::Relaxed);
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The idle timer of one connection, polled from its reads.
///
/// The sleep is polled outside tokio's cooperative budget: it is polled on
/// every read, and charging the budget for it made the connection task yield
/// twice as often under load.
pub struct IdleTimer {
    activity: Arc<Activity>,
    timeout: Duration,
    sleep: Pin<Box<tokio::task::Unconstrained<tokio::time::Sleep>>>,
}

impl IdleTimer {
    /// A timer closing the connection after `timeout` without calls.
    pub fn new(activity: Arc<Activity>, timeout: Duration) -> Self {
        let at = tokio::time::Instant::now() + timeout;
        IdleTimer {
            activity,
            timeout,
            sleep: Box::pin(tokio::task::unconstrained(tokio::time::sleep_until(at))),
        }
    }

    /// `Ready` once the connection has been idle for the whole timeout;
    /// otherwise re-arms itself and registers the waker.
    pub fn poll_expired(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            if self.sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            let next = match self.activity.idle_at(self.timeout) {
                Some(at) if at <= Instant::now() => return Poll::Ready(()),
                Some(at) => at,
                // A call is in flight: look again after another timeout.
                None => tokio::time::Instant::now() + self.timeout,
            };
            self.sleep = Box::pin(tokio::task::unconstrained(tokio::time::sleep_until(next)));
        }
    }
}

/// The tower layer that marks each call on its connection's [`Activity`].
#[derive(Clone, Copy, Debug, Default)]
pub struct ActivityLayer;

impl<S> tower::Layer<S> for ActivityLayer {
    type Service = ActivityService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        ActivityService { inner }
    }
}

/// See [`ActivityLayer`].
#[derive(Clone, Debug)]
pub struct ActivityService<S> {
    inner: S,
}

impl<S, B> tower::Service<http::Request<B>> for ActivityService<S>
where
    S: tower::Service<http::Request<B>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let guard = request
            .extensions()
            .get::<super::PeerInfo>()
            .map(|peer| peer.activity.begin());
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await;
            drop(guard);
            response
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_source_cannot_take_another_sources_slots() {
        let gate = Gate::new(Limits {
            max_connections: 5,
            max_connections_per_source: 2,
            ..Limits::default()
        });
        let a = Source::Uid(1);
        let b = Source::Ip("127.0.0.2".parse().expect("ip"));
        let held: Vec<_> = (0..2).map(|_| gate.admit(&a).expect("slot")).collect();
        assert_eq!(gate.admit(&a).err(), Some(Refusal::PerSource));
        let b1 = gate.admit(&b).expect("b is not limited by a");
        drop(held);
        assert_eq!(gate.open(), 1);
        let _again = gate.admit(&a).expect("slots come back on drop");
        drop(b1);
        let many: Vec<_> = (0..4)
            .map(|i| gate.admit(&Source::Uid(100 + i)).expect("slot"))
            .collect();
        assert_eq!(gate.admit(&Source::Uid(999)).err(), Some(Refusal::Global));
        drop(many);
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_connection_expires_but_not_during_a_call() {
        let activity = Activity::new();
        let mut timer = IdleTimer::new(Arc::clone(&activity), Duration::from_secs(10));
        let call = activity.begin();
        tokio::time::advance(Duration::from_secs(30)).await;
        let expired = std::future::poll_fn(|cx| Poll::Ready(timer.poll_expired(cx))).await;
        assert!(expired.is_pending(), "a call is in flight");
        drop(call);
        tokio::time::advance(Duration::from_secs(5)).await;
        let expired = std::future::poll_fn(|cx| Poll::Ready(timer.poll_expired(cx))).await;
        assert!(expired.is_pending());
        tokio::time::advance(Duration::from_secs(6)).await;
        let expired = std::future::poll_fn(|cx| Poll::Ready(timer.poll_expired(cx))).await;
        assert!(expired.is_ready(), "10 s without a call");
    }
}
