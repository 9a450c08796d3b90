//! Change notification: a listener thread holds its own connection, runs
//! `LISTEN` on the schema's channel (a trigger on the table notifies it on
//! every write), and bumps a generation counter that `wait_for_change`
//! waits on. After a reconnect it bumps too, since notifications may have
//! been missed while it was away.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use postgres::fallible_iterator::FallibleIterator as _;
use twilio_broker_plugin_sdk::PluginError;

use crate::pool::Pool;

/// How long the listener blocks before checking whether to stop.
const TICK: Duration = Duration::from_millis(250);
/// Pause between reconnection attempts.
const RECONNECT: Duration = Duration::from_secs(1);

/// The generation counter and its listener.
pub struct Changes {
    generation: Mutex<u64>,
    changed: Condvar,
    stop: AtomicBool,
}

impl Changes {
    /// Starts the listener thread on `channel` and waits (up to `ready`)
    /// until it listens, so no write after `init` goes unnoticed.
    pub fn start(pool: Arc<Pool>, channel: String, ready: Duration) -> Arc<Self> {
        let changes = Arc::new(Changes {
            generation: Mutex::new(1),
            changed: Condvar::new(),
            stop: AtomicBool::new(false),
        });
        let listener = Arc::clone(&changes);
        std::thread::Builder::new()
            .name("pg-listen".into())
            .spawn(move || listener.listen(&pool, &channel))
            .map(drop)
            .unwrap_or_else(|_| changes.bump());
        // The first successful LISTEN moves the generation from 1 to 2.
        let _ = changes.wait(1, ready);
        changes
    }

    /// Asks the listener to stop (within one tick).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Release);
    }

    fn bump(&self) {
        if let Ok(mut generation) = self.generation.lock() {
            *generation = generation.wrapping_add(1).max(1);
            self.changed.notify_all();
        }
    }

    fn listen(&self, pool: &Pool, channel: &str) {
        while !self.stop.load(Ordering::Acquire) {
            let mut client = match pool.connect() {
                Ok(client) => client,
                Err(_) => {
                    std::thread::sleep(RECONNECT);
                    continue;
                }
            };
            // The channel is a checked identifier (see `Settings`).
            if client.batch_execute(&format!("LISTEN {channel}")).is_err() {
                std::thread::sleep(RECONNECT);
                continue;
            }
            self.bump();
            while !self.stop.load(Ordering::Acquire) {
                let next = client.notifications().timeout_iter(TICK).next();
                match next {
                    Ok(Some(_)) => {
                        // Coalesce whatever else is already queued.
                        while let Ok(Some(_)) = client.notifications().iter().next() {}
                        self.bump();
                    }
                    Ok(None) if !client.is_closed() => {}
                    Ok(None) | Err(_) => break,
                }
            }
        }
    }

    /// Waits until the generation differs from `after` or `timeout` passes.
    pub fn wait(&self, after: u64, timeout: Duration) -> Result<u64, PluginError> {
        let deadline = Instant::now() + timeout;
        let poisoned = || PluginError::failed("the change counter's lock is poisoned");
        let mut generation = self.generation.lock().map_err(|_| poisoned())?;
        while *generation == after {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            generation = self
                .changed
                .wait_timeout(generation, left)
                .map_err(|_| poisoned())?
                .0;
        }
        Ok(*generation)
    }
}
