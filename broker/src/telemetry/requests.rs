//! The metrics every call records, as handles looked up once per
//! (RPC, status) pair instead of once per call.
//!
//! `metrics::counter!("…", "rpc" => …, "code" => …)` builds a key, hashes it
//! and asks the recorder for a handle on every call; on the request path
//! that is three lookups a call. Here each pair's handles are registered the
//! first time the pair is seen and kept for the life of the process (a
//! bounded set: RPC names × status names, both `&'static str`).
//!
//! **Invariant:** a handle is registered only after the daemon has
//! installed its recorder (`telemetry::install` runs before any listener
//! accepts), so a cached handle never points at the no-op recorder of a
//! process that exports metrics.

use std::sync::OnceLock;

use metrics::{Counter, Histogram};

/// The handles one (RPC, status) pair records into.
pub(crate) struct CallMetrics {
    /// `twilio_broker_requests_total{rpc, code}`.
    pub requests: Counter,
    /// `twilio_broker_request_duration_seconds{rpc, code}`.
    pub duration: Histogram,
}

type Pairs = papaya::HashMap<(&'static str, &'static str), &'static CallMetrics>;

fn pairs() -> &'static Pairs {
    static PAIRS: OnceLock<Pairs> = OnceLock::new();
    PAIRS.get_or_init(Pairs::new)
}

/// The handles for calls of `rpc` answered with status `code`.
pub(crate) fn call(rpc: &'static str, code: &'static str) -> &'static CallMetrics {
    let pairs = pairs().pin();
    if let Some(&found) = pairs.get(&(rpc, code)) {
        return found;
    }
    // A bounded set of pairs, each leaked once (a lost race leaks one more).
    let made: &'static CallMetrics = Box::leak(Box::new(CallMetrics {
        requests: metrics::counter!("twilio_broker_requests_total", "rpc" => rpc, "code" => code),
        duration: metrics::histogram!(
            "twilio_broker_request_duration_seconds", "rpc" => rpc, "code" => code
        ),
    }));
    let &registered = pairs.get_or_insert((rpc, code), made);
    registered
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_pair_is_registered_once_and_pairs_stay_apart() {
        let first = call("GetBearer", "OK");
        let again = call("GetBearer", "OK");
        assert!(
            std::ptr::eq(first, again),
            "the same pair reuses its handles"
        );
        let other = call("GetBearer", "NOT_FOUND");
        assert!(!std::ptr::eq(first, other), "another status has its own");
        let other_rpc = call("MintAccessToken", "OK");
        assert!(!std::ptr::eq(first, other_rpc), "another RPC has its own");
    }
}
