//! Scheduled rotation (issue 18): `rotate_every` on a credential's label
//! (`rotate_every=30d`, or `off`) or in `[rotation]` for every API key with
//! a manager. A credential is due `rotate_every` after its secret was last
//! put or rotated (`updated_at`), minus a jitter in `[0, rotate_jitter)`
//! fixed per name, so keys stored together do not all rotate at once.
//!
//! **Invariants:** only Standard and Restricted API keys with a manager are
//! scheduled (an Auth Token never: rotating it breaks every API key of the
//! account, so only an operator may ask for it; a Main key cannot be created
//! through the API); a credential with a rotation under way is not due; a
//! failed scheduled rotation stopped in a known state (the rotator's
//! guarantee) and is retried with back-off (1 s doubling to 5 min, or
//! Twilio's `Retry-After`), logged, counted and audited each time.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::{RETRY_FIRST, RETRY_MAX, RotationSettings};
use crate::bearer::clock::Clock;
use crate::credential::{Credential, KeyType, Secret};
use crate::error::Error;

/// The label that sets (or, with `off`, disables) a credential's schedule.
pub const LABEL: &str = "rotate_every";
/// Shortest schedule accepted unless `[rotation] allow_short_schedules`.
pub const MIN_EVERY: Duration = Duration::from_secs(3600);
/// Longest the scheduler sleeps before looking at the credentials again
/// (new credentials, changed labels).
pub const RECHECK: Duration = Duration::from_secs(60);
/// How long the scheduler lets writes settle after being told of one
/// before it plans again (a plan is O(credentials)).
pub const CHANGE_SETTLE: Duration = Duration::from_secs(1);

/// One scheduled credential and when it is due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    /// The credential's name.
    pub name: String,
    /// When it is due (already minus its jitter).
    pub at: SystemTime,
}

/// How often `credential` is rotated: `Ok(None)` when it is not scheduled,
/// `Err` (with the reason, no secret) when its label cannot be used.
pub fn interval(
    credential: &Credential,
    settings: &RotationSettings,
) -> Result<Option<Duration>, String> {
    let Secret::ApiKey {
        key_type,
        lifecycle,
        ..
    } = &credential.secret
    else {
        return Ok(None);
    };
    if *key_type == KeyType::Main || lifecycle.manager.is_none() {
        return Ok(None);
    }
    let every = match credential.labels.get(LABEL).map(|v| v.trim()) {
        Some("off" | "never") => return Ok(None),
        Some(text) => humantime::parse_duration(text)
            .map_err(|_| format!("label {LABEL}={text:?} is not a duration such as \"30d\""))?,
        None => match settings.rotate_every {
            Some(every) => every,
            None => return Ok(None),
        },
    };
    if every < MIN_EVERY && !settings.allow_short_schedules {
        return Err(format!(
            "{LABEL} {} is shorter than the minimum of 1 hour (set [rotation] \
             allow_short_schedules = true for tests)",
            humantime::format_duration(every)
        ));
    }
    Ok(Some(every))
}

/// When `credential` is due, or None when it is not scheduled (or busy).
pub fn due(credential: &Credential, every: Duration, jitter: Duration) -> Option<SystemTime> {
    if let Secret::ApiKey { lifecycle, .. } = &credential.secret
        && lifecycle.rotation.is_some()
    {
        return None;
    }
    let jitter = jitter.min(every / 2);
    Some(credential.updated_at + every - offset(&credential.name, jitter))
}

/// A fixed offset in `[0, jitter)` for `name` (FNV-1a of the name), so a
/// restart keeps each credential's due time.
fn offset(name: &str, jitter: Duration) -> Duration {
    let nanos = u64::try_from(jitter.as_nanos()).unwrap_or(u64::MAX);
    if nanos == 0 {
        return Duration::ZERO;
    }
    let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    Duration::from_nanos(hash % nanos)
}

/// Every scheduled credential of `credentials` and when it is due; a label
/// that cannot be used is logged and skipped.
pub fn plan(credentials: &[Arc<Credential>], settings: &RotationSettings) -> Vec<Due> {
    let mut out = Vec::new();
    for credential in credentials {
        match interval(credential, settings) {
            Ok(Some(every)) => {
                if let Some(at) = due(credential, every, settings.rotate_jitter) {
                    out.push(Due {
                        name: credential.name.clone(),
                        at,
                    });
                }
            }
            Ok(None) => {}
            Err(reason) => {
                tracing::warn!(credential = %credential.name, %reason, "not rotated on a schedule");
            }
        }
    }
    out
}

/// The scheduler's loop: wakes when the next credential is due, when
/// `changed` is notified (a credential was stored) and at least every
/// [`RECHECK`] (other replicas' writes), rotates each due one through `rotate`, and backs off
/// per credential after a failure. Runs until `list` returns None (the
/// rotator is gone). Generic over the clock and the rotation, so tests drive
/// it with paused time.
pub async fn run<C, L, R, F>(
    clock: C,
    settings: RotationSettings,
    changed: Arc<tokio::sync::Notify>,
    mut list: L,
    mut rotate: R,
) where
    C: Clock,
    L: FnMut() -> Option<Vec<Arc<Credential>>>,
    R: FnMut(String) -> F,
    F: Future<Output = Result<(), Error>>,
{
    // name → (next try, current back-off)
    let mut backoff: HashMap<String, (SystemTime, Duration)> = HashMap::new();
    loop {
        let Some(credentials) = list() else {
            return;
        };
        let now = clock.now();
        let mut wake = now + RECHECK;
        for due in plan(&credentials, &settings) {
            let at = match backoff.get(&due.name) {
                Some((retry_at, _)) => due.at.max(*retry_at),
                None => due.at,
            };
            if at > now {
                wake = wake.min(at);
                continue;
            }
            tracing::info!(credential = %due.name, "scheduled rotation is due");
            match rotate(due.name.clone()).await {
                Ok(()) => {
                    backoff.remove(&due.name);
                    metrics::counter!("twilio_broker_scheduled_rotations_total", "outcome" => "ok")
                        .increment(1);
                }
                Err(err) => {
                    let delay = backoff
                        .get(&due.name)
                        .map_or(RETRY_FIRST, |(_, d)| (*d * 2).min(RETRY_MAX));
                    let wait = match &err {
                        Error::RotationUnavailable {
                            retry_after: Some(after),
                            ..
                        } => delay.max(*after),
                        _ => delay,
                    };
                    metrics::counter!("twilio_broker_scheduled_rotations_total", "outcome" => "failed")
                        .increment(1);
                    tracing::warn!(credential = %due.name, error = %err, retry_in_seconds = wait.as_secs(), "scheduled rotation failed; retrying with back-off");
                    let retry_at = clock.now() + wait;
                    backoff.insert(due.name.clone(), (retry_at, delay));
                    wake = wake.min(retry_at);
                }
            }
        }
        // Forget back-offs of credentials no longer scheduled.
        backoff.retain(|name, _| credentials.iter().any(|c| &c.name == name));
        let sleep = wake
            .duration_since(clock.now())
            .unwrap_or_default()
            .min(RECHECK);
        tokio::select! {
            () = tokio::time::sleep(sleep) => {}
            () = changed.notified() => {
                // A plan reads every credential: a burst of writes (a bulk
                // load of 100,000) re-plans once per CHANGE_SETTLE, not once
                // per write.
                tokio::time::sleep(CHANGE_SETTLE.min(sleep)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::BTreeMap;
    use std::sync::Mutex;

    use super::*;
    use crate::bearer::clock::TokioClock;
    use crate::credential::{Lifecycle, SealedSecret};

    const DAY: Duration = Duration::from_secs(86_400);

    fn key(name: &str, stored: SystemTime, label: Option<&str>, manager: bool) -> Credential {
        Credential {
            name: name.into(),
            labels: label
                .map(|l| BTreeMap::from([(LABEL.to_owned(), l.to_owned())]))
                .unwrap_or_default(),
            created_at: stored,
            updated_at: stored,
            secret: Secret::ApiKey {
                account_sid: "AC0123456789abcdef0123456789abcdef".into(),
                key_sid: "SK0123456789abcdef0123456789abcdef".into(),
                secret: SealedSecret::from("s3cr3t"),
                key_type: KeyType::Standard,
                lifecycle: Lifecycle {
                    manager: manager.then(|| "acme-token".to_owned()),
                    ..Lifecycle::default()
                },
            },
        }
    }

    fn every_30_days() -> RotationSettings {
        RotationSettings {
            rotate_every: Some(30 * DAY),
            rotate_jitter: Duration::ZERO,
            ..RotationSettings::default()
        }
    }

    #[test]
    fn labels_and_the_config_decide_who_is_scheduled() {
        let now = SystemTime::now();
        let none = RotationSettings::default();
        let config = every_30_days();
        let cases = [
            (key("plain", now, None, true), &none, Ok(None)),
            (key("plain", now, None, true), &config, Ok(Some(30 * DAY))),
            (
                key("label", now, Some("7d"), true),
                &none,
                Ok(Some(7 * DAY)),
            ),
            (
                key("label", now, Some("7d"), true),
                &config,
                Ok(Some(7 * DAY)),
            ),
            (key("off", now, Some("off"), true), &config, Ok(None)),
            (key("unmanaged", now, Some("7d"), false), &config, Ok(None)),
        ];
        for (credential, settings, want) in cases {
            assert_eq!(interval(&credential, settings), want, "{}", credential.name);
        }
        let short = key("short", now, Some("5s"), true);
        let err = interval(&short, &none).unwrap_err();
        assert!(err.contains("allow_short_schedules"), "{err}");
        let allowed = RotationSettings {
            allow_short_schedules: true,
            ..none
        };
        assert_eq!(interval(&short, &allowed), Ok(Some(Duration::from_secs(5))));
        let bad = key("bad", now, Some("monthly"), true);
        assert!(interval(&bad, &none).unwrap_err().contains("monthly"));
        // An Auth Token is never scheduled, whatever its label says.
        let mut token = key("token", now, Some("1d"), true);
        token.secret = Secret::AuthToken {
            account_sid: "AC0123456789abcdef0123456789abcdef".into(),
            auth_token: SealedSecret::from("t0k3n"),
            secondary_auth_token: None,
            rotation: None,
        };
        assert_eq!(interval(&token, &config), Ok(None));
    }

    #[test]
    fn jitter_is_fixed_per_name_and_within_bounds() {
        let jitter = Duration::from_secs(3600);
        let stored = SystemTime::UNIX_EPOCH + 1000 * DAY;
        let mut seen = std::collections::BTreeSet::new();
        for i in 0..50 {
            let credential = key(&format!("key-{i}"), stored, None, true);
            let at = due(&credential, 30 * DAY, jitter).unwrap();
            assert_eq!(at, due(&credential, 30 * DAY, jitter).unwrap(), "stable");
            let early = (stored + 30 * DAY).duration_since(at).unwrap();
            assert!(early < jitter, "{early:?}");
            seen.insert(early);
        }
        assert!(seen.len() > 40, "spread: {} distinct offsets", seen.len());
        // Never more than half the interval.
        let credential = key("key-1", stored, None, true);
        let at = due(&credential, Duration::from_secs(10), jitter).unwrap();
        assert!(at >= stored + Duration::from_secs(5));
    }

    /// The loop under paused time: nothing before the due time, one
    /// rotation at it, and a failure retried with doubling back-off.
    #[tokio::test(start_paused = true)]
    async fn a_due_key_is_rotated_once_and_a_failure_is_retried_with_back_off() {
        let clock = TokioClock::starting_at(SystemTime::UNIX_EPOCH + 1000 * DAY);
        let stored = clock.now() - 29 * DAY;
        let credentials = Arc::new(Mutex::new(vec![
            Arc::new(key("app", stored, None, true)),
            Arc::new(key(
                "flaky",
                stored + Duration::from_secs(12 * 3600),
                None,
                true,
            )),
        ]));
        let calls: Arc<Mutex<Vec<(String, SystemTime)>>> = Arc::default();
        let failures = Arc::new(Mutex::new(2_u32));
        let task = {
            let (credentials, calls, failures) = (
                Arc::clone(&credentials),
                Arc::clone(&calls),
                Arc::clone(&failures),
            );
            let listed = Arc::clone(&credentials);
            tokio::spawn(run(
                clock,
                every_30_days(),
                Arc::default(),
                move || Some(listed.lock().unwrap().clone()),
                move |name: String| {
                    let (credentials, calls, failures) = (
                        Arc::clone(&credentials),
                        Arc::clone(&calls),
                        Arc::clone(&failures),
                    );
                    async move {
                        calls.lock().unwrap().push((name.clone(), clock.now()));
                        if name == "flaky" {
                            let mut left = failures.lock().unwrap();
                            if *left > 0 {
                                *left -= 1;
                                return Err(Error::RotationUnavailable {
                                    credential: name,
                                    step: "creating the new key".into(),
                                    detail: "cannot be reached".into(),
                                    retry_after: None,
                                });
                            }
                        }
                        // Rotated: stored again now.
                        let mut list = credentials.lock().unwrap();
                        for c in list.iter_mut() {
                            if c.name == name {
                                *c = Arc::new(key(&name, clock.now(), None, true));
                            }
                        }
                        Ok(())
                    }
                },
            ))
        };
        tokio::time::sleep(DAY - Duration::from_secs(60)).await;
        assert!(
            calls.lock().unwrap().is_empty(),
            "nothing is due before 30 days"
        );
        tokio::time::sleep(Duration::from_secs(120)).await;
        {
            let calls = calls.lock().unwrap();
            assert_eq!(calls.len(), 1, "{calls:?}");
            assert_eq!(calls[0].0, "app");
            let late = calls[0].1.duration_since(stored + 30 * DAY).unwrap();
            assert!(late <= RECHECK, "rotated {late:?} after it was due");
        }
        // `flaky` is due 12 h later and fails twice: tries 1 s then 2 s apart.
        tokio::time::sleep(Duration::from_secs(12 * 3600 + 30)).await;
        let flaky: Vec<SystemTime> = calls
            .lock()
            .unwrap()
            .iter()
            .filter(|(n, _)| n == "flaky")
            .map(|(_, at)| *at)
            .collect();
        assert_eq!(flaky.len(), 3, "two failures and a success: {flaky:?}");
        let gap = |a: SystemTime, b: SystemTime| b.duration_since(a).unwrap();
        let close = |got: Duration, want: Duration| {
            assert!(
                got >= want && got < want + Duration::from_millis(10),
                "{got:?} vs {want:?}"
            );
        };
        close(gap(flaky[0], flaky[1]), RETRY_FIRST);
        close(gap(flaky[1], flaky[2]), RETRY_FIRST * 2);
        // Each rotated key is due again 30 days after its rotation, not before.
        tokio::time::sleep(DAY * 20).await;
        assert_eq!(calls.lock().unwrap().len(), 4);
        task.abort();
    }
}
