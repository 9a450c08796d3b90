//! Client-side cache of bearer tokens: a service calling Twilio a thousand
//! times a second asks the broker about once per token lifetime.
//!
//! A token is served while it has more than the safety margin left; then one
//! task per credential asks the broker (the others wait for its answer). When
//! the credential's tokens live less than twice the margin (the broker answers
//! reason `MIN_TTL_UNREACHABLE`), the cache takes what the broker has
//! and keeps it for half its remaining life.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use crate::{Bearer, Error};

/// The broker's `ErrorInfo.reason` when a `min_ttl_seconds` cannot be met.
const MIN_TTL_UNREACHABLE: &str = "MIN_TTL_UNREACHABLE";

/// Default margin: a token with less than this left is replaced.
pub const DEFAULT_SAFETY_MARGIN: Duration = Duration::from_secs(60);

/// A token and the margin it is replaced at.
struct Cached {
    bearer: Bearer,
    margin: Duration,
}

#[derive(Default)]
struct Slot {
    cached: RwLock<Option<Cached>>,
    /// Held by the one task fetching for this credential.
    fetching: tokio::sync::Mutex<()>,
}

/// Bearer tokens by credential name.
pub(crate) struct BearerCache {
    margin: Duration,
    slots: Mutex<HashMap<String, Arc<Slot>>>,
    fetches: AtomicU64,
}

impl BearerCache {
    pub(crate) fn new(margin: Duration) -> Self {
        BearerCache {
            margin,
            slots: Mutex::new(HashMap::new()),
            fetches: AtomicU64::new(0),
        }
    }

    fn slot(&self, name: &str) -> Arc<Slot> {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        Arc::clone(slots.entry(name.to_owned()).or_default())
    }

    fn fresh(&self, slot: &Slot) -> Option<Bearer> {
        let cached = slot.cached.read().unwrap_or_else(|p| p.into_inner());
        cached
            .as_ref()
            .filter(|c| c.bearer.expires_at > SystemTime::now() + c.margin)
            .map(|c| c.bearer.clone())
    }

    /// The cached token, or one from `fetch(name, min_ttl_seconds)`.
    pub(crate) async fn get<F, Fut>(&self, name: &str, fetch: F) -> Result<Bearer, Error>
    where
        F: Fn(String, u32) -> Fut,
        Fut: Future<Output = Result<Bearer, Error>>,
    {
        let slot = self.slot(name);
        if let Some(bearer) = self.fresh(&slot) {
            return Ok(bearer);
        }
        let _fetching = slot.fetching.lock().await;
        if let Some(bearer) = self.fresh(&slot) {
            return Ok(bearer);
        }
        // Ask for a token that outlives our margin twice over, so the broker
        // replaces one it holds that would not.
        let min_ttl = u32::try_from(self.margin.as_secs().saturating_mul(2)).unwrap_or(u32::MAX);
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let received = SystemTime::now();
        let (bearer, margin) = match fetch(name.to_owned(), min_ttl).await {
            // Twilio issues this credential's tokens for less than twice our
            // margin (an OAuth app's short access_token_ttl): take what the
            // broker has and keep it for half its remaining life at most.
            Err(err) if min_ttl > 0 && err.reason() == Some(MIN_TTL_UNREACHABLE) => {
                self.fetches.fetch_add(1, Ordering::Relaxed);
                let bearer = fetch(name.to_owned(), 0).await?;
                let left = bearer
                    .expires_at
                    .duration_since(received)
                    .unwrap_or_default();
                (bearer, self.margin.min(left / 2))
            }
            other => (other?, self.margin),
        };
        *slot.cached.write().unwrap_or_else(|p| p.into_inner()) = Some(Cached {
            bearer: bearer.clone(),
            margin,
        });
        Ok(bearer)
    }

    pub(crate) fn forget(&self, name: &str) {
        self.slots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name);
    }

    pub(crate) fn fetches(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bearer(ttl: Duration) -> Bearer {
        Bearer {
            access_token: "t".into(),
            expires_at: SystemTime::now() + ttl,
            account_sid: "AC".into(),
        }
    }

    #[tokio::test]
    async fn serves_fresh_tokens_and_refetches_near_expiry_once_per_herd() {
        let cache = Arc::new(BearerCache::new(Duration::from_secs(60)));
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let cache = Arc::clone(&cache);
            tasks.push(tokio::spawn(async move {
                cache
                    .get("c", |_, min_ttl| async move {
                        assert_eq!(min_ttl, 120);
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        Ok(bearer(Duration::from_secs(3600)))
                    })
                    .await
            }));
        }
        for task in tasks {
            task.await.expect("join").expect("bearer");
        }
        assert_eq!(cache.fetches(), 1);
        // A token inside the margin is replaced.
        cache.forget("c");
        cache
            .get("c", |_, _| async { Ok(bearer(Duration::from_secs(30))) })
            .await
            .expect("short");
        cache
            .get("c", |_, _| async { Ok(bearer(Duration::from_secs(3600))) })
            .await
            .expect("long");
        assert_eq!(cache.fetches(), 3);
        cache
            .get("c", |_, _| async { panic!("should be cached") })
            .await
            .expect("cached");
    }

    #[tokio::test]
    async fn short_lived_tokens_are_taken_and_cached_for_half_their_life() {
        let cache = BearerCache::new(Duration::from_secs(60));
        let asked = Mutex::new(Vec::new());
        let fetch = |_, min_ttl| {
            asked.lock().expect("lock").push(min_ttl);
            async move {
                if min_ttl > 0 {
                    Err(Error::InvalidArgument(crate::error::Details {
                        reason: Some(MIN_TTL_UNREACHABLE.into()),
                        .."the words may change".into()
                    }))
                } else {
                    Ok(bearer(Duration::from_secs(100)))
                }
            }
        };
        cache.get("c", fetch).await.expect("short-lived token");
        assert_eq!(*asked.lock().expect("lock"), [120, 0]);
        // 100 s left, margin min(60, 50) = 50: still fresh.
        cache
            .get("c", |_, _| async { panic!("should be cached") })
            .await
            .expect("cached");
        // Other invalid arguments are not retried, even when their message
        // names min_ttl_seconds: only the reason counts.
        let err = cache
            .get("d", |_, _| async {
                Err(Error::InvalidArgument("min_ttl_seconds: bad".into()))
            })
            .await;
        assert!(matches!(err, Err(Error::InvalidArgument(_))));
        assert_eq!(cache.fetches(), 3);
    }
}
