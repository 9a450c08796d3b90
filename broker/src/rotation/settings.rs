//! `[rotation]` in the config file: how old a secret may get before
//! reviews warn, and the timing of Auth Token rotations. Durations are
//! humantime strings (`90d`, `10s`, `5m`).

use std::time::Duration;

use anyhow::Context as _;

/// Default age past which Recommend's review warns about a secret.
pub const DEFAULT_WARN_AGE: Duration = Duration::from_secs(90 * 86_400);
/// Default wait between storing a new secondary Auth Token and promoting
/// it, so that every replica sharing the store holds it before Twilio signs
/// with it.
pub const DEFAULT_PROPAGATION_DELAY: Duration = Duration::from_secs(10);
/// Default time the old Auth Token still validates webhooks after the
/// promotion (requests Twilio signed before it are still in flight).
pub const DEFAULT_TOKEN_OVERLAP: Duration = Duration::from_secs(300);
/// Default jitter of scheduled rotations.
pub const DEFAULT_JITTER: Duration = Duration::from_secs(3600);
/// Longest propagation delay or overlap accepted (one day).
pub const MAX_WAIT: Duration = Duration::from_secs(86_400);

/// `[rotation]` as written in the config file. Every key is optional.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotationConfig {
    /// Reviews warn about a secret stored longer than this (default `90d`).
    pub warn_age: Option<String>,
    /// Wait before promoting a new secondary Auth Token (default `10s`).
    pub propagation_delay: Option<String>,
    /// How long the old Auth Token keeps validating webhooks after the
    /// promotion, unless `--overlap` says (default `5m`).
    pub token_overlap: Option<String>,
    /// Rotate every API key with a manager this often (a credential's
    /// `rotate_every` label wins; `off` opts out). Default: no schedule.
    pub rotate_every: Option<String>,
    /// Scheduled rotations come up to this much early, by a fixed amount per
    /// credential, so keys stored together do not rotate together (default
    /// `1h`, at most half the interval).
    pub rotate_jitter: Option<String>,
    /// Accept schedules shorter than one hour (tests and development only).
    #[serde(default)]
    pub allow_short_schedules: bool,
}

/// `[rotation]`, resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RotationSettings {
    /// See [`RotationConfig::warn_age`].
    pub warn_age: Duration,
    /// See [`RotationConfig::propagation_delay`].
    pub propagation_delay: Duration,
    /// See [`RotationConfig::token_overlap`].
    pub token_overlap: Duration,
    /// See [`RotationConfig::rotate_every`].
    pub rotate_every: Option<Duration>,
    /// See [`RotationConfig::rotate_jitter`].
    pub rotate_jitter: Duration,
    /// See [`RotationConfig::allow_short_schedules`].
    pub allow_short_schedules: bool,
}

impl Default for RotationSettings {
    fn default() -> Self {
        RotationSettings {
            warn_age: DEFAULT_WARN_AGE,
            propagation_delay: DEFAULT_PROPAGATION_DELAY,
            token_overlap: DEFAULT_TOKEN_OVERLAP,
            rotate_every: None,
            rotate_jitter: DEFAULT_JITTER,
            allow_short_schedules: false,
        }
    }
}

impl RotationConfig {
    /// Fills in defaults and checks every value, naming the key at fault.
    pub fn resolve(&self) -> anyhow::Result<RotationSettings> {
        let one = |value: &Option<String>, key: &str, default: Duration, max: Option<Duration>| {
            let Some(text) = value else {
                return Ok(default);
            };
            let parsed = humantime::parse_duration(text).with_context(|| {
                format!("[rotation] {key} = {text:?} is not a duration such as \"90d\" or \"10s\"")
            })?;
            if let Some(max) = max
                && parsed > max
            {
                anyhow::bail!(
                    "[rotation] {key} = {text:?} is longer than {}",
                    humantime::format_duration(max)
                );
            }
            Ok(parsed)
        };
        let warn_age = one(&self.warn_age, "warn_age", DEFAULT_WARN_AGE, None)?;
        if warn_age.is_zero() {
            anyhow::bail!("[rotation] warn_age must be more than zero");
        }
        let rotate_every = match &self.rotate_every {
            None => None,
            Some(_) => Some(one(
                &self.rotate_every,
                "rotate_every",
                Duration::ZERO,
                None,
            )?),
        };
        if let Some(every) = rotate_every
            && every < super::schedule::MIN_EVERY
            && !self.allow_short_schedules
        {
            anyhow::bail!(
                "[rotation] rotate_every = {:?} is shorter than the minimum of 1 hour (set \
                 allow_short_schedules = true for tests)",
                self.rotate_every.as_deref().unwrap_or_default()
            );
        }
        Ok(RotationSettings {
            warn_age,
            propagation_delay: one(
                &self.propagation_delay,
                "propagation_delay",
                DEFAULT_PROPAGATION_DELAY,
                Some(MAX_WAIT),
            )?,
            token_overlap: one(
                &self.token_overlap,
                "token_overlap",
                DEFAULT_TOKEN_OVERLAP,
                Some(MAX_WAIT),
            )?,
            rotate_every,
            rotate_jitter: one(&self.rotate_jitter, "rotate_jitter", DEFAULT_JITTER, None)?,
            allow_short_schedules: self.allow_short_schedules,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn defaults_parse_and_bad_values_name_their_key() {
        assert_eq!(
            RotationConfig::default().resolve().unwrap(),
            RotationSettings::default()
        );
        let set = RotationConfig {
            warn_age: Some("30d".into()),
            propagation_delay: Some("2s".into()),
            token_overlap: Some("1m".into()),
            rotate_every: Some("30d".into()),
            rotate_jitter: Some("2h".into()),
            allow_short_schedules: false,
        }
        .resolve()
        .unwrap();
        assert_eq!(set.warn_age, Duration::from_secs(30 * 86_400));
        assert_eq!(set.propagation_delay, Duration::from_secs(2));
        assert_eq!(set.token_overlap, Duration::from_secs(60));
        assert_eq!(set.rotate_every, Some(Duration::from_secs(30 * 86_400)));
        assert_eq!(set.rotate_jitter, Duration::from_secs(7200));
        let short = RotationConfig {
            rotate_every: Some("5s".into()),
            ..Default::default()
        };
        let err = format!("{:#}", short.resolve().unwrap_err());
        assert!(err.contains("allow_short_schedules"), "{err}");
        let allowed = RotationConfig {
            allow_short_schedules: true,
            ..short
        };
        assert_eq!(
            allowed.resolve().unwrap().rotate_every,
            Some(Duration::from_secs(5))
        );
        for (config, key) in [
            (
                RotationConfig {
                    warn_age: Some("soon".into()),
                    ..Default::default()
                },
                "warn_age",
            ),
            (
                RotationConfig {
                    warn_age: Some("0s".into()),
                    ..Default::default()
                },
                "warn_age",
            ),
            (
                RotationConfig {
                    propagation_delay: Some("2d".into()),
                    ..Default::default()
                },
                "propagation_delay",
            ),
            (
                RotationConfig {
                    token_overlap: Some("-1s".into()),
                    ..Default::default()
                },
                "token_overlap",
            ),
        ] {
            let err = format!("{:#}", config.resolve().unwrap_err());
            assert!(err.contains(key), "{err}");
        }
    }
}
