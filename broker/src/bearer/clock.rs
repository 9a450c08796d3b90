//! The wall clock the cache reads, behind a trait so tests can drive it with
//! tokio's paused time. Token expiry (`exp`) is wall-clock time, so the
//! production clock is `SystemTime`, not a monotonic one.

use std::time::SystemTime;

/// Where the cache gets "now".
pub trait Clock: Send + Sync + 'static {
    /// The current wall-clock time.
    fn now(&self) -> SystemTime;
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A wall clock that advances with tokio's clock, so `tokio::time::pause`
/// and `advance` move it too. For tests.
#[cfg(test)]
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    base: SystemTime,
    start: tokio::time::Instant,
}

#[cfg(test)]
impl TokioClock {
    /// A clock that reads `base` now and moves with tokio time from here.
    pub fn starting_at(base: SystemTime) -> Self {
        TokioClock {
            base,
            start: tokio::time::Instant::now(),
        }
    }
}

#[cfg(test)]
impl Clock for TokioClock {
    fn now(&self) -> SystemTime {
        self.base + self.start.elapsed()
    }
}
