//! When a token expires and when to act: the `exp` claim read from the JWT
//! itself (without verifying it, as Twilio's SDKs do), the refresh point at
//! about half the lifetime with jitter, the serving margin, and the backoff
//! between failed requests. Pure functions of their inputs, so the timing
//! rules are tested without a clock.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;

/// Why no expiry could be worked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExpiryError {
    /// Neither an `exp` claim nor `expires_in`.
    Unknown,
    /// The token is already expired when received.
    AlreadyExpired,
}

/// The `exp` claim of a JWT, read without verification; `None` if the token
/// is not a JWT or carries no numeric `exp`.
pub fn jwt_exp(token: &str) -> Option<SystemTime> {
    #[derive(serde::Deserialize)]
    struct Claims {
        exp: Option<f64>,
    }
    let mut parts = token.split('.');
    let (_header, payload) = (parts.next()?, parts.next()?);
    parts.next()?;
    let payload = payload.trim_end_matches('=');
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    let exp = serde_json::from_slice::<Claims>(&bytes).ok()?.exp?;
    if !exp.is_finite() || exp < 0.0 {
        return None;
    }
    UNIX_EPOCH.checked_add(Duration::from_secs_f64(exp.floor().min(1e15)))
}

/// When the token expires: its own `exp` claim (what Twilio's SDKs trust),
/// else `now + expires_in`.
pub fn expires_at(
    token: &str,
    expires_in: Option<u64>,
    now: SystemTime,
) -> Result<SystemTime, ExpiryError> {
    let at = match (jwt_exp(token), expires_in) {
        (Some(exp), _) => exp,
        (None, Some(seconds)) => now
            .checked_add(Duration::from_secs(seconds))
            .ok_or(ExpiryError::Unknown)?,
        (None, None) => return Err(ExpiryError::Unknown),
    };
    if at <= now {
        return Err(ExpiryError::AlreadyExpired);
    }
    Ok(at)
}

/// A token within this much of its expiry is no longer handed out: a caller
/// could not use it. 10 s, or a tenth of a short lifetime.
pub fn serving_margin(lifetime: Duration) -> Duration {
    (lifetime / 10).min(Duration::from_secs(10))
}

/// How far into its lifetime a token is refreshed in the background: half
/// of it, ±10 % (`unit` in [0, 1) picks where in that band, so replicas and
/// credentials do not all refresh at once).
pub fn refresh_after(lifetime: Duration, unit: f64) -> Duration {
    let fraction = 0.5 * (0.9 + 0.2 * unit.clamp(0.0, 1.0));
    lifetime.mul_f64(fraction)
}

/// The wait after the `failures`-th failure in a row: `initial` doubled per
/// failure, capped at `max`, then scaled by a jitter in [50 %, 100 %]
/// (`unit` in [0, 1)).
pub fn backoff(failures: u32, initial: Duration, max: Duration, unit: f64) -> Duration {
    let doublings = failures.saturating_sub(1).min(30);
    let base = initial.saturating_mul(1 << doublings).min(max);
    base.mul_f64(0.5 + 0.5 * unit.clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(payload: &str) -> String {
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        format!(
            "{}.{}.sig",
            b64(r#"{"alg":"HS256","typ":"JWT"}"#),
            b64(payload)
        )
    }

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn expiry_comes_from_exp_then_expires_in() {
        let now = at(1_700_000_000);
        let cases: [(String, Option<u64>, Result<SystemTime, ExpiryError>); 8] = [
            (jwt(r#"{"exp":1700003600}"#), None, Ok(at(1_700_003_600))),
            // exp wins over a disagreeing expires_in
            (
                jwt(r#"{"exp":1700000600}"#),
                Some(3600),
                Ok(at(1_700_000_600)),
            ),
            // fractional NumericDate
            (jwt(r#"{"exp":1700000600.75}"#), None, Ok(at(1_700_000_600))),
            (jwt(r#"{"sub":"AC1"}"#), Some(60), Ok(at(1_700_000_060))),
            ("opaque-token".into(), Some(60), Ok(at(1_700_000_060))),
            ("opaque-token".into(), None, Err(ExpiryError::Unknown)),
            (jwt(r#"{"exp":"soon"}"#), None, Err(ExpiryError::Unknown)),
            (
                jwt(r#"{"exp":1600000000}"#),
                Some(60),
                Err(ExpiryError::AlreadyExpired),
            ),
        ];
        for (token, expires_in, expected) in cases {
            assert_eq!(expires_at(&token, expires_in, now), expected, "{token}");
        }
        assert_eq!(jwt_exp("a.b"), None);
        assert_eq!(jwt_exp("a.!!!.c"), None);
    }

    #[test]
    fn refresh_lands_at_half_life_plus_or_minus_ten_percent() {
        let hour = Duration::from_secs(3600);
        assert_eq!(refresh_after(hour, 0.0), Duration::from_secs(1620));
        assert_eq!(refresh_after(hour, 0.5), Duration::from_secs(1800));
        assert_eq!(refresh_after(hour, 1.0), Duration::from_secs(1980));
        for _ in 0..1000 {
            let after = refresh_after(hour, rand::random());
            assert!(after >= Duration::from_secs(1620) && after <= Duration::from_secs(1980));
        }
    }

    #[test]
    fn margins_shrink_for_short_tokens() {
        assert_eq!(
            serving_margin(Duration::from_secs(3600)),
            Duration::from_secs(10)
        );
        assert_eq!(
            serving_margin(Duration::from_secs(4)),
            Duration::from_millis(400)
        );
    }

    #[test]
    fn backoff_doubles_caps_and_jitters() {
        let (one, cap) = (Duration::from_secs(1), Duration::from_secs(60));
        let cases = [
            (1, 1.0, 1_000),
            (2, 1.0, 2_000),
            (3, 1.0, 4_000),
            (7, 1.0, 60_000),
            (1000, 1.0, 60_000),
            (1, 0.0, 500),
            (7, 0.0, 30_000),
        ];
        for (failures, unit, ms) in cases {
            assert_eq!(
                backoff(failures, one, cap, unit),
                Duration::from_millis(ms),
                "{failures} failures"
            );
        }
    }
}
