//! Secrets a running broker has held too long (`doctor --broker ADDR`):
//! from each stored credential's name and `updated_at` (the Admin API's
//! metadata, never a secret), a note per secret older than `--max-age`.

use std::time::{Duration, SystemTime};

use super::Finding;
use super::rules::finding;

/// A note for each `(name, last put or rotated)` older than `max_age` at
/// `now`; `location` says which broker.
pub fn old_secrets(
    stored: &[(String, SystemTime)],
    now: SystemTime,
    max_age: Duration,
    location: &str,
) -> Vec<Finding> {
    stored
        .iter()
        .filter_map(|(name, since)| {
            let age = now.duration_since(*since).ok()?;
            (age > max_age).then(|| {
                let mut found = finding(
                    "secret-older-than-max-age",
                    location.to_owned(),
                    None,
                    format!(
                        "credential {name:?} has held the same secret for {} days (since {}), \
                         longer than {} days",
                        age.as_secs() / 86_400,
                        humantime::format_rfc3339_seconds(*since),
                        max_age.as_secs() / 86_400
                    ),
                );
                found.name = name.clone();
                found
            })
        })
        .collect()
}
