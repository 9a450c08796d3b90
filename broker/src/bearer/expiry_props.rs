//! Property tests of the bearer cache's timing rules (issue 9): the refresh
//! point, the serving margin and the backoff hold for every lifetime and
//! jitter, not only the table cases in `expiry.rs`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use proptest::prelude::*;

use super::expiry::{ExpiryError, backoff, expires_at, refresh_after, serving_margin};

fn lifetimes() -> impl Strategy<Value = Duration> {
    (1u64..=7 * 86_400_000).prop_map(Duration::from_millis)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    /// The refresh point is half the lifetime ±10 %, so always before expiry,
    /// and grows with the jitter.
    #[test]
    fn refresh_is_within_ten_percent_of_half_life(life in lifetimes(), unit in 0.0f64..1.0, other in 0.0f64..1.0) {
        let after = refresh_after(life, unit);
        let half = life.as_secs_f64() / 2.0;
        let tolerance = 1e-6 + half * 1e-9;
        prop_assert!(after.as_secs_f64() >= half * 0.9 - tolerance, "{after:?} of {life:?}");
        prop_assert!(after.as_secs_f64() <= half * 1.1 + tolerance, "{after:?} of {life:?}");
        prop_assert!(after < life, "refresh never at or after expiry");
        let (lo, hi) = if unit <= other { (unit, other) } else { (other, unit) };
        prop_assert!(refresh_after(life, lo) <= refresh_after(life, hi));
    }

    /// Out-of-range jitter is clamped, never pushing the refresh past expiry.
    #[test]
    fn refresh_clamps_wild_jitter(life in lifetimes(), unit in prop::num::f64::ANY) {
        let after = refresh_after(life, if unit.is_nan() { 0.5 } else { unit });
        prop_assert!(after <= life.mul_f64(0.55) && after >= life.mul_f64(0.45).saturating_sub(Duration::from_nanos(1)));
    }

    /// A token is served until expiry minus a margin of at most 10 s and at
    /// most a tenth of its life, and the refresh point comes before that.
    #[test]
    fn the_margin_leaves_room_for_the_refresh(life in lifetimes(), unit in 0.0f64..1.0) {
        let margin = serving_margin(life);
        prop_assert!(margin <= Duration::from_secs(10));
        prop_assert!(margin <= life / 10);
        prop_assert!(refresh_after(life, unit) <= life - margin);
    }

    /// `expires_in` alone: expiry is exactly now + expires_in, after now;
    /// zero is refused as already expired.
    #[test]
    fn expires_in_is_relative_to_now(now_s in 0u64..4_000_000_000, expires_in in 0u64..10_000_000) {
        let now = UNIX_EPOCH + Duration::from_secs(now_s);
        let got = expires_at("opaque", Some(expires_in), now);
        if expires_in == 0 {
            prop_assert_eq!(got, Err(ExpiryError::AlreadyExpired));
        } else {
            prop_assert_eq!(got, Ok(now + Duration::from_secs(expires_in)));
        }
    }

    /// Whatever the token text, an accepted expiry is strictly in the future.
    #[test]
    fn accepted_expiry_is_after_now(token in ".{0,200}", expires_in in prop::option::of(0u64..100_000)) {
        let now = SystemTime::now();
        if let Ok(at) = expires_at(&token, expires_in, now) {
            prop_assert!(at > now);
        }
    }

    /// Backoff never exceeds the cap, never drops under half the initial
    /// wait, and does not shrink as failures accumulate (same jitter).
    #[test]
    fn backoff_is_bounded_and_monotonic(failures in 0u32..10_000, initial_ms in 1u64..10_000, max_ms in 1u64..600_000, unit in 0.0f64..1.0) {
        let (initial, max) = (Duration::from_millis(initial_ms), Duration::from_millis(max_ms));
        let wait = backoff(failures, initial, max, unit);
        prop_assert!(wait <= max);
        prop_assert!(wait >= initial.min(max) / 2 - Duration::from_nanos(1).min(initial.min(max) / 2));
        prop_assert!(backoff(failures + 1, initial, max, unit) >= wait);
    }
}
