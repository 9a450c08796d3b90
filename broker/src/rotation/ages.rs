//! How old each stored secret is and when its next scheduled rotation is
//! due, computed on demand (per Prometheus scrape) from the vault, so a
//! deleted credential's figures go away with it. Names and times only.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::{RotationSettings, schedule};
use crate::store::Vault;

/// One credential's secret age.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Age {
    /// The credential's name.
    pub credential: String,
    /// Since its secret was last put or rotated.
    pub age: Duration,
    /// When its next scheduled rotation is due, when it has a schedule.
    pub next_rotation: Option<SystemTime>,
}

/// Reads secret ages from a vault.
#[derive(Clone)]
pub struct Ages {
    vault: Arc<Vault>,
    settings: RotationSettings,
}

impl Ages {
    /// Ages of the credentials in `vault`, with `settings`' schedules.
    pub fn new(vault: Arc<Vault>, settings: RotationSettings) -> Self {
        Ages { vault, settings }
    }

    /// Every credential's age at `now`, oldest first.
    pub fn at(&self, now: SystemTime) -> Vec<Age> {
        let mut ages: Vec<Age> = self
            .vault
            .list()
            .iter()
            .map(|c| Age {
                credential: c.name.clone(),
                age: now.duration_since(c.updated_at).unwrap_or_default(),
                next_rotation: schedule::interval(c, &self.settings)
                    .ok()
                    .flatten()
                    .and_then(|every| schedule::due(c, every, self.settings.rotate_jitter)),
            })
            .collect();
        ages.sort_by(|a, b| {
            b.age
                .cmp(&a.age)
                .then_with(|| a.credential.cmp(&b.credential))
        });
        ages
    }

    /// Secrets older than `[rotation] warn_age` count as old.
    pub fn warn_age(&self) -> Duration {
        self.settings.warn_age
    }
}
