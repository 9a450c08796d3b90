//! Model checking of the single-flight token cache with `shuttle` (issue 9).
//!
//! Shuttle explores thread interleavings of its own `sync` shims; it cannot
//! see inside `papaya`, `arc_swap` or `tokio::sync::watch`, which the real
//! cache (`cache.rs`) uses. So this is a small test-only model of the same
//! algorithm, step for step: a lock-free hit on the token slot and the
//! `in_flight` flag; on a miss, under the entry mutex, re-check the token,
//! join a live flight, answer from the backoff state, or launch a flight
//! (a spawned task); the flight fetches, records its outcome under the
//! mutex (token stored, flight cleared, `in_flight` reset), then publishes
//! it on a watch channel (modelled by a mutex, a condvar and a
//! sender-alive flag). Checked: no lost wake-ups (shuttle reports a
//! deadlock if a waiter is never woken), no double refreshes (at most one
//! request in flight, exactly one per herd), every caller answered.

use shuttle::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use shuttle::sync::{Arc, Condvar, Mutex};
use shuttle::thread;

/// `tokio::sync::watch` as the cache uses it: one value, sent once.
#[derive(Default)]
struct Watch {
    value: Mutex<Option<Result<u64, ()>>>,
    changed: Condvar,
    sender_alive: AtomicBool,
}

impl Watch {
    fn new() -> Arc<Self> {
        let watch = Watch::default();
        watch.sender_alive.store(true, Ordering::SeqCst);
        Arc::new(watch)
    }

    fn send(&self, outcome: Result<u64, ()>) {
        *self.value.lock().expect("watch") = Some(outcome);
        self.changed.notify_all();
    }

    fn drop_sender(&self) {
        // Taken under the lock, as tokio's drop wakes receivers under its own.
        let _guard = self.value.lock().expect("watch");
        self.sender_alive.store(false, Ordering::SeqCst);
        self.changed.notify_all();
    }

    /// `wait_for(Option::is_some)`: the value, or an error once the sender is gone.
    fn wait(&self) -> Result<u64, ()> {
        let mut value = self.value.lock().expect("watch");
        loop {
            if let Some(outcome) = *value {
                return outcome;
            }
            if !self.sender_alive.load(Ordering::SeqCst) {
                return Err(());
            }
            value = self.changed.wait(value).expect("watch");
        }
    }
}

#[derive(Default)]
struct Flights {
    current: Option<Arc<Watch>>,
    last_failure: bool,
    quiet: bool,
}

/// One cache entry; a token is its generation number (0 = none).
#[derive(Default)]
struct Entry {
    token: Mutex<u64>,
    in_flight: AtomicBool,
    quiet: AtomicBool,
    flights: Mutex<Flights>,
    requests: AtomicUsize,
    flying_now: AtomicUsize,
    fail: bool,
    /// Tokens older than this generation are past their refresh point
    /// (`now >= token.refresh_at`); a freshly issued one is not.
    due_below: u64,
}

impl Entry {
    fn servable(&self, wanted: u64) -> Option<u64> {
        let token = *self.token.lock().expect("token");
        (token >= wanted && token > 0).then_some(token)
    }

    /// `Bearers::get` after the lookup: hit (maybe refreshing ahead) or miss.
    fn get(self: &Arc<Self>, wanted: u64) -> Result<u64, ()> {
        if let Some(token) = self.servable(wanted) {
            if token < self.due_below {
                self.refresh_ahead();
            }
            return Ok(token);
        }
        self.miss(wanted)
    }

    fn refresh_ahead(self: &Arc<Self>) {
        if self.in_flight.load(Ordering::Acquire) || self.quiet.load(Ordering::Acquire) {
            return;
        }
        let mut flights = self.flights.lock().expect("flights");
        // Re-checked under the lock: without this, a caller that read the
        // old token just before a flight ended started a second refresh.
        let still_due = *self.token.lock().expect("token") < self.due_below;
        if flights.current.is_none() && !self.quiet.load(Ordering::Acquire) && still_due {
            self.launch(&mut flights);
        }
    }

    fn miss(self: &Arc<Self>, wanted: u64) -> Result<u64, ()> {
        let receiver = {
            let mut flights = self.flights.lock().expect("flights");
            if let Some(token) = self.servable(wanted) {
                return Ok(token);
            }
            match &flights.current {
                Some(current) if current.sender_alive.load(Ordering::SeqCst) => Arc::clone(current),
                _ if flights.last_failure && flights.quiet => return Err(()),
                _ => self.launch(&mut flights),
            }
        };
        match receiver.wait() {
            Ok(token) if token >= wanted => Ok(token),
            _ => Err(()),
        }
    }

    fn launch(self: &Arc<Self>, flights: &mut Flights) -> Arc<Watch> {
        let watch = Watch::new();
        flights.current = Some(Arc::clone(&watch));
        self.in_flight.store(true, Ordering::Release);
        let entry = Arc::clone(self);
        let sender = Arc::clone(&watch);
        thread::spawn(move || entry.fly(sender));
        watch
    }

    fn fly(&self, sender: Arc<Watch>) {
        let flying = self.flying_now.fetch_add(1, Ordering::SeqCst) + 1;
        assert_eq!(flying, 1, "two upstream requests in flight for one entry");
        let generation = self.requests.fetch_add(1, Ordering::SeqCst) as u64 + 1;
        self.flying_now.fetch_sub(1, Ordering::SeqCst);
        let outcome = if self.fail { Err(()) } else { Ok(generation) };
        // record()
        {
            let mut flights = self.flights.lock().expect("flights");
            match outcome {
                Ok(token) => {
                    *self.token.lock().expect("token") = token;
                    flights.last_failure = false;
                    flights.quiet = false;
                }
                Err(()) => {
                    flights.last_failure = true;
                    flights.quiet = true;
                }
            }
            self.quiet.store(flights.quiet, Ordering::Release);
            flights.current = None;
            self.in_flight.store(false, Ordering::Release);
        }
        sender.send(outcome);
        sender.drop_sender();
    }
}

const ITERATIONS: usize = 3_000;

fn herd(callers: usize, entry: Entry, wanted: u64) -> Vec<Result<u64, ()>> {
    let entry = Arc::new(entry);
    let handles: Vec<_> = (0..callers)
        .map(|_| {
            let entry = Arc::clone(&entry);
            thread::spawn(move || entry.get(wanted))
        })
        .collect();
    handles
        .into_iter()
        .map(|h| h.join().expect("caller"))
        .collect()
}

#[test]
fn a_herd_on_an_empty_entry_makes_exactly_one_request_and_every_caller_is_woken() {
    shuttle::check_random(
        || {
            let entry = Entry::default();
            let results = herd(4, entry, 1);
            assert!(results.iter().all(|r| *r == Ok(1)), "{results:?}");
        },
        ITERATIONS,
    );
}

#[test]
fn a_failing_flight_answers_every_waiter_and_is_not_retried_while_quiet() {
    shuttle::check_random(
        || {
            let entry = Arc::new(Entry {
                fail: true,
                ..Entry::default()
            });
            let handles: Vec<_> = (0..3)
                .map(|_| {
                    let entry = Arc::clone(&entry);
                    thread::spawn(move || entry.get(1))
                })
                .collect();
            for handle in handles {
                assert_eq!(handle.join().expect("caller"), Err(()));
            }
            assert_eq!(
                entry.requests.load(Ordering::SeqCst),
                1,
                "retried while quiet"
            );
        },
        ITERATIONS,
    );
}

#[test]
fn refresh_ahead_racing_misses_never_double_refreshes() {
    shuttle::check_random(
        || {
            // Token 1 held and due for refresh; two callers hit (and trigger
            // the refresh), two need a newer token than 1 (a min_ttl miss).
            let entry = Arc::new(Entry {
                due_below: 2,
                ..Entry::default()
            });
            *entry.token.lock().expect("token") = 1;
            entry.requests.store(1, Ordering::SeqCst);
            let mut handles = Vec::new();
            for wanted in [1, 1, 2, 2] {
                let entry = Arc::clone(&entry);
                handles.push(thread::spawn(move || entry.get(wanted)));
            }
            for (handle, wanted) in handles.into_iter().zip([1, 1, 2, 2]) {
                let got = handle
                    .join()
                    .expect("caller")
                    .expect("answered with a token");
                assert!(got >= wanted);
            }
            // Each flight is alone in the air (asserted in `fly`), and the
            // refresh and the misses share one flight: token 2 serves all.
            let requests = entry.requests.load(Ordering::SeqCst) - 1;
            assert_eq!(requests, 1, "double refresh");
        },
        ITERATIONS,
    );
}

#[test]
fn the_model_finds_a_lost_wakeup_when_the_flight_never_publishes() {
    // Sanity check of the harness: a flight that records but never sends
    // nor drops its sender must be reported (a waiter is never woken).
    let result = std::panic::catch_unwind(|| {
        shuttle::check_random(
            || {
                let watch = Watch::new();
                let waiter = Arc::clone(&watch);
                let handle = thread::spawn(move || waiter.wait());
                let _ = handle.join();
            },
            10,
        )
    });
    assert!(
        result.is_err(),
        "shuttle missed a waiter that is never woken"
    );
}
