//! The token cache: one entry per credential, a lock-free read on a hit,
//! one upstream request in flight per credential however many callers miss,
//! refresh ahead of expiry in the background, backoff while Twilio is down.
//!
//! **Architecture invariants:**
//! - A hit takes no lock: a `papaya` map lookup, an `ArcSwap` load and two
//!   clock comparisons. Locks (a per-entry `Mutex`) are taken only on a miss
//!   or to start a refresh, never across an `.await`.
//! - A flight is a spawned task: a caller that gives up (deadline, cancel)
//!   does not cancel the request the others wait on.
//! - An entry belongs to one `Arc<Credential>`; a replaced credential is a
//!   different `Arc`, so its old token is never served, and a deleted one
//!   loses its entry on the next lookup or sweep.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwapOption;
use tokio::sync::watch;

use super::clock::Clock;
use super::expiry;
use super::token::{Bearer, Token};
use super::upstream::{Failure, Upstream};
use super::{Settings, errors};
use crate::credential::{Credential, Secret};
use crate::error::Result;
use crate::store::Vault;

type Outcome = std::result::Result<Arc<Token>, Failure>;

/// The slow-path state of an entry, behind its mutex.
#[derive(Default)]
struct Flights {
    /// The request in flight, if any; waiters clone the receiver.
    current: Option<watch::Receiver<Option<Outcome>>>,
    /// Failures in a row, for the backoff.
    failures: u32,
    /// The last failure, answered to misses until `quiet_until`.
    last_failure: Option<Failure>,
    /// No new request starts before this (backoff or a remembered rejection).
    quiet_until: Option<SystemTime>,
}

struct Entry {
    /// The credential this entry's tokens were issued for.
    credential: Arc<Credential>,
    token: ArcSwapOption<Token>,
    /// Mirrors `flights.current.is_some()` so a hit can skip the mutex.
    in_flight: AtomicBool,
    /// Mirrors `flights.quiet_until` (unix ms, 0 = none) for the same reason.
    quiet_until_ms: AtomicU64,
    flights: Mutex<Flights>,
}

impl Entry {
    fn new(credential: Arc<Credential>) -> Self {
        Entry {
            credential,
            token: ArcSwapOption::empty(),
            in_flight: AtomicBool::new(false),
            quiet_until_ms: AtomicU64::new(0),
            flights: Mutex::new(Flights::default()),
        }
    }

    fn flights(&self) -> MutexGuard<'_, Flights> {
        self.flights.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn servable(&self, now: SystemTime, min_ttl: Duration) -> Option<Arc<Token>> {
        let token = self.token.load();
        let token = token.as_ref()?;
        token.lasts(now, min_ttl).then(|| Arc::clone(token))
    }

    fn quiet_at(&self, now: SystemTime) -> bool {
        unix_ms(now) < self.quiet_until_ms.load(Ordering::Acquire)
    }
}

/// `twilio_broker_bearer_cache_hits_total`, registered once (a lookup per
/// hit otherwise; the daemon installs its recorder before serving).
fn cache_hits() -> &'static metrics::Counter {
    static HITS: std::sync::OnceLock<metrics::Counter> = std::sync::OnceLock::new();
    HITS.get_or_init(|| metrics::counter!("twilio_broker_bearer_cache_hits_total"))
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Bearer tokens for every `oauth_client` credential in the vault.
#[derive(Clone)]
pub struct Bearers {
    inner: Arc<Inner>,
}

struct Inner {
    vault: Arc<Vault>,
    upstream: Arc<dyn Upstream>,
    clock: Arc<dyn Clock>,
    settings: Settings,
    entries: papaya::HashMap<String, Arc<Entry>>,
}

impl Bearers {
    /// A cache over `vault` that fetches from `upstream` and reads `clock`.
    pub fn new(
        vault: Arc<Vault>,
        upstream: Arc<dyn Upstream>,
        clock: Arc<dyn Clock>,
        settings: Settings,
    ) -> Self {
        Bearers {
            inner: Arc::new(Inner {
                vault,
                upstream,
                clock,
                settings,
                entries: papaya::HashMap::new(),
            }),
        }
    }

    /// A token for credential `name` that stays valid at least `min_ttl`.
    pub async fn get(&self, name: &str, min_ttl: Duration) -> Result<Bearer> {
        let inner = &self.inner;
        let credential = match inner.vault.lookup(name) {
            Ok(credential) => credential,
            Err(err) => {
                inner.entries.pin().remove(name);
                return Err(err);
            }
        };
        if !matches!(credential.secret, Secret::OAuthClient { .. }) {
            return Err(errors::wrong_kind(&credential));
        }
        let entry = inner.entry(name, &credential);
        let now = inner.clock.now();
        if let Some(token) = entry.servable(now, min_ttl) {
            cache_hits().increment(1);
            if now >= token.refresh_at {
                inner.refresh_ahead(&entry, now);
            }
            return Ok(Bearer {
                token,
                credential: Arc::clone(&entry.credential),
            });
        }
        metrics::counter!("twilio_broker_bearer_cache_misses_total").increment(1);
        inner.miss(entry, now, min_ttl).await
    }

    /// Drops the entries of deleted or replaced credentials (and so their
    /// tokens). Hits and misses already ignore them; this frees the memory.
    pub fn sweep(&self) {
        let entries = self.inner.entries.pin();
        for (name, entry) in entries.iter() {
            let current = self.inner.vault.get(name);
            if !current.is_some_and(|c| Arc::ptr_eq(&c, &entry.credential)) {
                let _ = entries.remove_if(name, |_, e| Arc::ptr_eq(e, entry));
            }
        }
    }

    /// Sweeps every `period` until the cache is dropped.
    pub fn spawn_sweeper(&self, period: Duration) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(period);
            ticks.tick().await;
            loop {
                ticks.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                Bearers { inner }.sweep();
            }
        })
    }

    /// How many credentials have an entry (for tests and metrics).
    pub fn len(&self) -> usize {
        self.inner.entries.len()
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The times of every cached token, soonest expiry first (the metrics
    /// page). Names and times only: the token itself never leaves the entry.
    pub fn token_times(&self) -> Vec<TokenTimes> {
        let entries = self.inner.entries.pin();
        let mut times: Vec<TokenTimes> = entries
            .iter()
            .filter_map(|(name, entry)| {
                let token = entry.token.load();
                let token = token.as_ref()?;
                Some(TokenTimes {
                    credential: name.clone(),
                    expires_at: token.expires_at,
                    received_at: token
                        .expires_at
                        .checked_sub(token.lifetime)
                        .unwrap_or(UNIX_EPOCH),
                })
            })
            .collect();
        times.sort_by_key(|t| t.expires_at);
        times
    }
}

/// What the operator console shows of one credential's cache entry: times
/// and the last upstream outcome, never the token or Twilio's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryState {
    /// When the cached token expires; None when none is cached.
    pub expires_at: Option<SystemTime>,
    /// When the cached token was received (its last refresh).
    pub received_at: Option<SystemTime>,
    /// A token request is in flight.
    pub refreshing: bool,
    /// The last upstream outcome.
    pub last: LastOutcome,
}

/// The last answer of the token endpoint for one credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LastOutcome {
    /// A token was issued (or nothing failed since).
    Ok,
    /// Twilio refused the client: its HTTP status and error code.
    Rejected {
        /// HTTP status.
        status: u16,
        /// Twilio's error code, when the body had one.
        code: Option<u64>,
    },
    /// The endpoint could not be used; the next request waits until `retry_at`.
    Unavailable {
        /// When the next token request may start.
        retry_at: Option<SystemTime>,
    },
}

impl Bearers {
    /// The cache entry of credential `name`, if a token was ever requested
    /// for it. Takes the entry's slow-path lock briefly (never
    /// on the GetBearer path).
    pub fn entry_state(&self, name: &str) -> Option<EntryState> {
        let entries = self.inner.entries.pin();
        let entry = entries.get(name)?;
        let token = entry.token.load();
        let flights = entry.flights();
        let last = match &flights.last_failure {
            None => LastOutcome::Ok,
            Some(Failure::Rejected { status, code, .. }) => LastOutcome::Rejected {
                status: *status,
                code: *code,
            },
            Some(Failure::Unavailable(_)) => LastOutcome::Unavailable {
                retry_at: flights.quiet_until,
            },
        };
        Some(EntryState {
            expires_at: token.as_ref().map(|t| t.expires_at),
            received_at: token
                .as_ref()
                .map(|t| t.expires_at.checked_sub(t.lifetime).unwrap_or(UNIX_EPOCH)),
            refreshing: flights.current.is_some(),
            last,
        })
    }
}

/// When one cached token expires and when it was received.
#[derive(Debug, Clone)]
pub struct TokenTimes {
    /// The credential's name (metadata, never a secret).
    pub credential: String,
    /// When Twilio stops accepting the token.
    pub expires_at: SystemTime,
    /// When the broker received it (its last refresh).
    pub received_at: SystemTime,
}

impl Inner {
    /// The entry for this exact credential, creating it (once, however many
    /// callers race) when missing or built for an older credential.
    fn entry(&self, name: &str, credential: &Arc<Credential>) -> Arc<Entry> {
        let entries = self.entries.pin();
        if let Some(entry) = entries.get(name)
            && Arc::ptr_eq(&entry.credential, credential)
        {
            return Arc::clone(entry);
        }
        let mut fresh: Option<Arc<Entry>> = None;
        let computed = entries.compute(name.to_owned(), |existing| match existing {
            Some((_, e))
                if Arc::ptr_eq(&e.credential, credential)
                    || e.credential.updated_at > credential.updated_at =>
            {
                papaya::Operation::Abort(Arc::clone(e))
            }
            _ => papaya::Operation::Insert(Arc::clone(
                fresh.get_or_insert_with(|| Arc::new(Entry::new(Arc::clone(credential)))),
            )),
        });
        match computed {
            papaya::Compute::Inserted(_, e) | papaya::Compute::Updated { new: (_, e), .. } => {
                Arc::clone(e)
            }
            papaya::Compute::Aborted(e) => e,
            papaya::Compute::Removed(..) => Arc::new(Entry::new(Arc::clone(credential))),
        }
    }

    /// Starts a background refresh unless one is running or Twilio is in
    /// backoff. Callers keep the valid token they already have.
    fn refresh_ahead(self: &Arc<Self>, entry: &Arc<Entry>, now: SystemTime) {
        if entry.in_flight.load(Ordering::Acquire) || entry.quiet_at(now) {
            return;
        }
        let mut flights = entry.flights();
        // The token this caller saw may have been replaced by a flight that
        // ended since: refresh only if the token now held is still due
        // (found by the shuttle model in `model_check.rs`: a double refresh).
        let still_due = entry
            .token
            .load()
            .as_ref()
            .is_none_or(|token| now >= token.refresh_at);
        if flights.current.is_none() && !entry.quiet_at(now) && still_due {
            tracing::debug!(credential = %entry.credential.name, "refreshing bearer token ahead of expiry");
            self.launch(entry, &mut flights);
        }
    }

    /// No usable token: join the flight, start one, or answer from the
    /// backoff state at once.
    async fn miss(
        self: &Arc<Self>,
        entry: Arc<Entry>,
        now: SystemTime,
        min_ttl: Duration,
    ) -> Result<Bearer> {
        let name = &entry.credential.name;
        if let Some(known) = entry.token.load_full()
            && min_ttl + known.margin >= known.lifetime
        {
            return Err(errors::min_ttl_unmet(name, min_ttl, known.lifetime));
        }
        let receiver = {
            let mut flights = entry.flights();
            let now = self.clock.now().max(now);
            if let Some(token) = entry.servable(now, min_ttl) {
                return Ok(Bearer {
                    token,
                    credential: Arc::clone(&entry.credential),
                });
            }
            match (&flights.current, &flights.last_failure, flights.quiet_until) {
                // A live flight (its sender still there): join it.
                (Some(current), _, _) if current.has_changed().is_ok() => current.clone(),
                (_, Some(failure), Some(until)) if now < until => {
                    let wait = until.duration_since(now).unwrap_or_default();
                    return Err(errors::from_failure(&entry.credential, failure, Some(wait)));
                }
                _ => self.launch(&entry, &mut flights),
            }
        };
        let outcome = wait(receiver).await;
        match outcome {
            Ok(token) if token.lasts(self.clock.now(), min_ttl) => Ok(Bearer {
                token,
                credential: Arc::clone(&entry.credential),
            }),
            Ok(token) => Err(errors::min_ttl_unmet(name, min_ttl, token.lifetime)),
            Err(failure) => {
                let wait = entry
                    .flights()
                    .quiet_until
                    .and_then(|until| until.duration_since(self.clock.now()).ok());
                Err(errors::from_failure(&entry.credential, &failure, wait))
            }
        }
    }

    /// Starts the one upstream request for `entry`. Called with its mutex held.
    fn launch(
        self: &Arc<Self>,
        entry: &Arc<Entry>,
        flights: &mut Flights,
    ) -> watch::Receiver<Option<Outcome>> {
        let (sender, receiver) = watch::channel(None);
        flights.current = Some(receiver.clone());
        entry.in_flight.store(true, Ordering::Release);
        let inner = Arc::clone(self);
        let entry = Arc::clone(entry);
        tokio::spawn(async move { inner.fly(entry, sender).await });
        receiver
    }

    /// The flight: one request, its outcome recorded in the entry, then
    /// shared with every waiter.
    async fn fly(self: Arc<Self>, entry: Arc<Entry>, sender: watch::Sender<Option<Outcome>>) {
        let credential = &entry.credential;
        let outcome = match &credential.secret {
            Secret::OAuthClient {
                client_id,
                client_secret,
                ..
            } => {
                tracing::debug!(credential = %credential.name, %client_id, "requesting a bearer token");
                let timeout = self.settings.timeout + Duration::from_millis(100);
                let started = std::time::Instant::now();
                let reply =
                    tokio::time::timeout(timeout, self.upstream.fetch(client_id, client_secret))
                        .await
                        .unwrap_or_else(|_| {
                            Err(Failure::Unavailable(format!(
                                "did not answer within {:.1} s",
                                self.settings.timeout.as_secs_f64()
                            )))
                        });
                let outcome = match &reply {
                    Ok(_) => "ok",
                    Err(Failure::Unavailable(_)) => "unavailable",
                    Err(_) => "rejected",
                };
                metrics::histogram!("twilio_broker_upstream_seconds")
                    .record(started.elapsed().as_secs_f64());
                metrics::counter!("twilio_broker_upstream_requests_total", "outcome" => outcome)
                    .increment(1);
                reply.and_then(|r| Token::from_reply(r, self.clock.now(), rand::random()))
            }
            _ => Err(Failure::Unavailable(
                "the credential is not an OAuth client".into(),
            )),
        };
        let outcome = outcome.map(Arc::new);
        self.record(&entry, &outcome);
        let _ = sender.send(Some(outcome));
    }

    /// Stores a flight's result: the new token, or the failure and the quiet
    /// time that follows it. Ends the flight.
    fn record(&self, entry: &Entry, outcome: &Outcome) {
        let name = &entry.credential.name;
        let now = self.clock.now();
        let mut flights = entry.flights();
        match outcome {
            Ok(token) => {
                entry.token.store(Some(Arc::clone(token)));
                flights.failures = 0;
                flights.last_failure = None;
                flights.quiet_until = None;
                tracing::info!(
                    credential = %name,
                    lifetime_seconds = token.lifetime.as_secs(),
                    refresh_in_seconds = token.refresh_at.duration_since(now).unwrap_or_default().as_secs(),
                    "bearer token issued"
                );
            }
            Err(failure) => {
                let wait = match failure {
                    Failure::Rejected { .. } => self.settings.rejection_memory,
                    Failure::Unavailable(_) => {
                        flights.failures = flights.failures.saturating_add(1);
                        expiry::backoff(
                            flights.failures,
                            self.settings.backoff_initial,
                            self.settings.backoff_max,
                            rand::random(),
                        )
                    }
                };
                let still_valid = entry.servable(now, Duration::ZERO).is_some();
                tracing::warn!(
                    credential = %name,
                    error = %errors::from_failure(&entry.credential, failure, Some(wait)),
                    failures_in_a_row = flights.failures,
                    serving_cached_token = still_valid,
                    "token request failed"
                );
                flights.last_failure = Some(failure.clone());
                flights.quiet_until = Some(now + wait);
            }
        }
        entry.quiet_until_ms.store(
            flights.quiet_until.map(unix_ms).unwrap_or(0),
            Ordering::Release,
        );
        flights.current = None;
        entry.in_flight.store(false, Ordering::Release);
    }
}

async fn wait(mut receiver: watch::Receiver<Option<Outcome>>) -> Outcome {
    match receiver.wait_for(Option::is_some).await {
        Ok(outcome) => outcome.clone().unwrap_or_else(|| {
            Err(Failure::Unavailable(
                "the token request ended without an answer".into(),
            ))
        }),
        Err(_) => Err(Failure::Unavailable(
            "the token request ended without an answer".into(),
        )),
    }
}
