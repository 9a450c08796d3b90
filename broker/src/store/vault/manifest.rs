//! The sharded manifest (issue 20): every credential record's version and
//! the store's generation, sealed in 257 records so a write rewrites one
//! bucket and a small top record instead of the whole map.
//!
//! - `meta/manifest/<xx>` (a *bucket*, `xx` = the first two hex digits of
//!   the store key's hash) maps each store key of the bucket to its record
//!   version. Its sealed header carries the bucket's version, raised by
//!   every write to it.
//! - `meta/manifest` (the *top*) holds the generation (its sealed header
//!   version, as before) and the version each bucket was last committed at.
//!
//! **Invariants** (enforced in [`Manifest::apply_bucket`] and [`load`]):
//! a bucket older than the top's entry for it is a replay and is refused
//! (the daemon refuses to start; a running replica keeps serving what it
//! last read); a bucket the top lists but the store lacks is refused too; a
//! bucket newer than its entry is a write whose top update a crash cut off,
//! and is accepted, as is one the top does not list whose version is above
//! the generation; one the top does not list at or below the generation
//! was never committed and is ignored. A write writes its bucket, then the
//! top, each with compare-and-swap, so replicas sharing a store merge
//! rather than overwrite each other. A whole-store rollback lowers the
//! top's generation, which the state file's mark catches (unchanged).
//!
//! The first manifest format (one record `meta/manifest` holding every
//! entry) is read and rewritten in this one when the vault opens.

use std::collections::BTreeMap;
use std::ops::Bound;

use imbl::OrdMap;

use super::CREDENTIAL_PREFIX;
use crate::error::Error;
use crate::master_key::MasterKey;
use crate::seal::{self, RecordKind};
use crate::store::{Cas, Store, StoreError, Versioned};

/// The top record's store key (the first format's manifest lived here too).
pub const TOP: &str = "meta/manifest";
/// Store keys of buckets (two hex digits follow).
pub const BUCKET_PREFIX: &str = "meta/manifest/";
/// How many buckets the manifest is split into.
pub const BUCKETS: usize = 256;
const FORMAT: u32 = 2;
/// How many times a manifest write tries against other replicas' writes.
const ATTEMPTS: usize = 16;

/// The bucket of a credential's store key (`c/<hex>`).
pub fn bucket_of(store_key: &str) -> usize {
    store_key
        .strip_prefix(CREDENTIAL_PREFIX)
        .and_then(|hash| hash.get(..2))
        .and_then(|hex| usize::from_str_radix(hex, 16).ok())
        .unwrap_or(0)
}

fn bucket_key(bucket: usize) -> String {
    format!("{BUCKET_PREFIX}{bucket:02x}")
}

/// The store-key prefix of the credential records in `bucket`.
pub fn bucket_prefix(bucket: usize) -> String {
    format!("{}{bucket:02x}", CREDENTIAL_PREFIX)
}

/// A bucket as this process last read or wrote it.
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct Held {
    /// The bucket's sealed version (0: never read).
    pub version: u64,
    /// Its store version (compare-and-swap).
    pub store_version: u64,
}

/// The manifest in memory: every bucket's entries merged in one persistent
/// map (cloned in O(1)), the top's fields, and what is held of each bucket.
#[derive(Clone, Debug)]
pub struct Manifest {
    /// The highest record version committed.
    pub generation: u64,
    /// Store key → record version, over every bucket held.
    pub records: OrdMap<String, u64>,
    /// The top's entry per bucket (0: none).
    pub committed: Vec<u64>,
    /// What is held of each bucket.
    pub held: Vec<Held>,
    /// The top record's store version (0: absent).
    pub top_version: u64,
    /// The store holds the first format (one record), to be rewritten.
    pub first_format: bool,
}

impl Default for Manifest {
    fn default() -> Self {
        Manifest {
            generation: 0,
            records: OrdMap::new(),
            committed: vec![0; BUCKETS],
            held: vec![Held::default(); BUCKETS],
            top_version: 0,
            first_format: false,
        }
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct TopRecord {
    format: u32,
    generation: u64,
    /// Bucket (two hex digits) → the version it was committed at.
    buckets: BTreeMap<String, u64>,
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FirstFormat {
    generation: u64,
    records: BTreeMap<String, u64>,
}

#[derive(serde::Deserialize)]
#[serde(untagged)]
enum AtTop {
    Top(TopRecord),
    First(FirstFormat),
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct BucketRecord {
    records: BTreeMap<String, u64>,
}

fn unsealable(store_key: &str, reason: impl Into<String>) -> StoreError {
    StoreError::Unsealable {
        key: store_key.to_owned(),
        reason: reason.into(),
    }
}

/// Opens a manifest record (top or bucket): its version and plaintext.
fn open(
    key: &MasterKey,
    store_key: &str,
    sealed: &[u8],
) -> Result<(u64, zeroize::Zeroizing<Vec<u8>>), StoreError> {
    let opened = seal::open_record(key, store_key, sealed)
        .map_err(|e| unsealable(store_key, e.to_string()))?;
    if opened.kind != RecordKind::Manifest {
        return Err(unsealable(
            store_key,
            "the manifest record is of another kind",
        ));
    }
    Ok((opened.version, opened.plaintext))
}

fn seal_json(
    key: &MasterKey,
    store_key: &str,
    version: u64,
    value: &impl serde::Serialize,
) -> Vec<u8> {
    let plain = zeroize::Zeroizing::new(serde_json::to_vec(value).unwrap_or_default());
    seal::seal_record(key, store_key, RecordKind::Manifest, version, &plain)
}

fn seal_top(key: &MasterKey, generation: u64, committed: &[u64]) -> Vec<u8> {
    let buckets = committed
        .iter()
        .enumerate()
        .filter(|(_, v)| **v > 0)
        .map(|(b, v)| (format!("{b:02x}"), *v))
        .collect();
    let top = TopRecord {
        format: FORMAT,
        generation,
        buckets,
    };
    seal_json(key, TOP, generation, &top)
}

fn seal_bucket(
    key: &MasterKey,
    bucket: usize,
    version: u64,
    records: BTreeMap<String, u64>,
) -> Vec<u8> {
    seal_json(key, &bucket_key(bucket), version, &BucketRecord { records })
}

impl Manifest {
    /// Why a record at `store_key` of `version` may not be served, if so.
    pub fn refusal(&self, store_key: &str, version: u64) -> Option<String> {
        match self.records.get(store_key) {
            Some(&committed) if version < committed => Some(format!(
                "an older version of the record was put back (version {version}, the store's \
                 manifest says {committed}): replay refused"
            )),
            Some(_) => None,
            None if version <= self.generation => Some(format!(
                "the record (version {version}) is not in the store's manifest (generation {}): \
                 a deleted record was put back; replay refused",
                self.generation
            )),
            None => None,
        }
    }

    /// The entries of `bucket`, in O(log n + its size).
    fn bucket_records(&self, bucket: usize) -> BTreeMap<String, u64> {
        let prefix = bucket_prefix(bucket);
        self.records
            .range::<_, str>((Bound::Included(prefix.as_str()), Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(&prefix))
            .map(|(k, v)| (k.clone(), *v))
            .collect()
    }

    fn replace_bucket(&mut self, bucket: usize, records: BTreeMap<String, u64>) {
        for old in self.bucket_records(bucket).keys() {
            self.records.remove(old);
        }
        self.records.extend(records);
    }

    /// Adopts the top record `stored` (of either format); the buckets it
    /// lists newer than held are read by [`Manifest::refresh`].
    pub fn adopt_top(&mut self, key: &MasterKey, stored: &Versioned) -> Result<(), StoreError> {
        let (version, plain) = open(key, TOP, &stored.value)?;
        let at_top: AtTop = serde_json::from_slice(&plain)
            .map_err(|e| unsealable(TOP, format!("the manifest does not parse: {e}")))?;
        let generation = match at_top {
            AtTop::Top(top) => {
                if top.format != FORMAT {
                    return Err(unsealable(
                        TOP,
                        format!("the manifest is of format {}, unknown here", top.format),
                    ));
                }
                let mut committed = vec![0; BUCKETS];
                for (hex, v) in top.buckets {
                    let b = usize::from_str_radix(&hex, 16)
                        .ok()
                        .filter(|b| *b < BUCKETS)
                        .ok_or_else(|| unsealable(TOP, format!("no bucket {hex:?}")))?;
                    committed[b] = v;
                }
                self.committed = committed;
                self.first_format = false;
                top.generation
            }
            AtTop::First(first) => {
                *self = Manifest {
                    generation: first.generation,
                    records: first.records.into_iter().collect(),
                    first_format: true,
                    ..Manifest::default()
                };
                first.generation
            }
        };
        if generation != version {
            return Err(unsealable(
                TOP,
                "the manifest's generation does not match its header",
            ));
        }
        self.generation = generation;
        self.top_version = stored.version;
        Ok(())
    }

    /// Takes in bucket `bucket` as stored, after checking it against the
    /// top (see the module's invariants).
    /// `at_open`: ignore a bucket never committed (see the invariants);
    /// elsewhere a bucket is taken as stored (a writer merging another
    /// replica's bucket whose top write is still under way).
    fn apply_bucket(
        &mut self,
        key: &MasterKey,
        bucket: usize,
        stored: &Versioned,
        at_open: bool,
    ) -> Result<(), StoreError> {
        let store_key = bucket_key(bucket);
        let (version, plain) = open(key, &store_key, &stored.value)?;
        let record: BucketRecord = serde_json::from_slice(&plain)
            .map_err(|e| unsealable(&store_key, format!("the bucket does not parse: {e}")))?;
        if let Some(stray) = record.records.keys().find(|k| bucket_of(k) != bucket) {
            return Err(unsealable(
                &store_key,
                format!("the bucket lists {stray:?}, which belongs to another bucket"),
            ));
        }
        let committed = self.committed[bucket];
        if version < committed {
            return Err(unsealable(
                &store_key,
                format!(
                    "an older copy of the manifest bucket was put back (version {version}, the \
                     manifest's top says {committed}): replay refused"
                ),
            ));
        }
        self.held[bucket] = Held {
            version,
            store_version: stored.version,
        };
        if at_open && committed == 0 && version <= self.generation {
            tracing::warn!(bucket = %store_key, "manifest bucket never committed to the top; ignored");
            self.replace_bucket(bucket, BTreeMap::new());
        } else {
            self.replace_bucket(bucket, record.records);
        }
        Ok(())
    }

    /// Reads every bucket the top lists newer than held. Returns which.
    pub async fn refresh(
        &mut self,
        store: &dyn Store,
        key: &MasterKey,
    ) -> Result<Vec<usize>, StoreError> {
        let mut read = Vec::new();
        for bucket in 0..BUCKETS {
            if self.committed[bucket] <= self.held[bucket].version {
                continue;
            }
            read.push(bucket);
            match store.get(&bucket_key(bucket)).await? {
                Some(stored) => self.apply_bucket(key, bucket, &stored, false)?,
                None => {
                    return Err(unsealable(
                        &bucket_key(bucket),
                        "the manifest bucket the top lists is missing",
                    ));
                }
            }
        }
        Ok(read)
    }
}

/// Reads the manifest (either format) and, for the current one, every
/// bucket; [`StoreError::Unsealable`] says what does not open or is refused.
pub async fn load(store: &dyn Store, key: &MasterKey) -> Result<Manifest, StoreError> {
    let mut manifest = Manifest::default();
    let Some(stored) = store.get(TOP).await? else {
        return Ok(manifest);
    };
    manifest.adopt_top(key, &stored)?;
    if manifest.first_format {
        return Ok(manifest);
    }
    for (store_key, stored) in store.list(BUCKET_PREFIX).await? {
        let bucket = store_key
            .strip_prefix(BUCKET_PREFIX)
            .and_then(|hex| usize::from_str_radix(hex, 16).ok())
            .filter(|b| *b < BUCKETS && store_key.len() == BUCKET_PREFIX.len() + 2)
            .ok_or_else(|| unsealable(&store_key, "not a manifest bucket"))?;
        manifest.apply_bucket(key, bucket, &stored, true)?;
    }
    if let Some(bucket) = (0..BUCKETS).find(|b| manifest.committed[*b] > manifest.held[*b].version)
    {
        return Err(unsealable(
            &bucket_key(bucket),
            "the manifest bucket the top lists is missing",
        ));
    }
    Ok(manifest)
}

/// Every manifest entry sealed anew at `generation` (each non-empty
/// bucket, then the top), for a whole-store write.
pub fn sealed_all(
    key: &MasterKey,
    records: &OrdMap<String, u64>,
    generation: u64,
) -> Vec<(String, Vec<u8>)> {
    let mut buckets: Vec<BTreeMap<String, u64>> = vec![BTreeMap::new(); BUCKETS];
    for (store_key, version) in records {
        buckets[bucket_of(store_key)].insert(store_key.clone(), *version);
    }
    let mut committed = vec![0; BUCKETS];
    let mut out = Vec::new();
    for (bucket, records) in buckets.into_iter().enumerate() {
        if !records.is_empty() {
            committed[bucket] = generation;
            out.push((
                bucket_key(bucket),
                seal_bucket(key, bucket, generation, records),
            ));
        }
    }
    out.push((TOP.to_owned(), seal_top(key, generation, &committed)));
    out
}

/// Writes `manifest`'s entries whole at `generation` (migrating the first
/// format, or after moving records of the first record format): every
/// bucket, then the top, with compare-and-swap so a replica doing the same
/// at once is noticed. Returns the manifest as written.
pub async fn write_all(
    store: &dyn Store,
    key: &MasterKey,
    manifest: &Manifest,
    generation: u64,
) -> Result<Manifest, StoreError> {
    let busy = || {
        StoreError::Unavailable("another broker is migrating the same store; start again".into())
    };
    let existing: BTreeMap<String, u64> = store
        .list(BUCKET_PREFIX)
        .await?
        .into_iter()
        .map(|(k, v)| (k, v.version))
        .collect();
    let mut written = Manifest {
        generation,
        records: manifest.records.clone(),
        ..Manifest::default()
    };
    let mut top = None;
    for (store_key, sealed) in sealed_all(key, &manifest.records, generation) {
        if store_key == TOP {
            top = Some(sealed);
            continue;
        }
        let expected = existing.get(&store_key).copied().unwrap_or(0);
        let bucket = bucket_of(&format!(
            "{}{}",
            CREDENTIAL_PREFIX,
            &store_key[BUCKET_PREFIX.len()..]
        ));
        match store.compare_and_swap(&store_key, expected, sealed).await? {
            Cas::Swapped { version } => {
                written.committed[bucket] = generation;
                written.held[bucket] = Held {
                    version: generation,
                    store_version: version,
                };
            }
            Cas::Conflict { .. } => return Err(busy()),
        }
    }
    let top = top.expect("sealed_all ends with the top");
    match store
        .compare_and_swap(TOP, manifest.top_version, top)
        .await?
    {
        Cas::Swapped { version } => written.top_version = version,
        Cas::Conflict { .. } => return Err(busy()),
    }
    Ok(written)
}

/// Commits a group of changes, each a store key now at a record version
/// (or gone): rewrites each bucket the group touches, makes them durable
/// (one [`Store::sync`]), then rewrites the top and makes it durable, so a
/// top never names a bucket version the store may lose. Other replicas'
/// writes are merged on a conflict. `high` is the highest record version
/// seen (a delete raises the generation above it). Returns the manifest as
/// committed.
///
/// **Invariant (group commit):** every change's bucket is durable before
/// the top that lists it, as for a single write; a caller acknowledges the
/// group's writes only after this returns.
pub async fn commit(
    store: &dyn Store,
    key: &MasterKey,
    current: &Manifest,
    high: u64,
    changes: &[(String, Option<u64>)],
) -> Result<Manifest, Error> {
    let mut by_bucket: BTreeMap<usize, Vec<(&str, Option<u64>)>> = BTreeMap::new();
    for (store_key, version) in changes {
        by_bucket
            .entry(bucket_of(store_key))
            .or_default()
            .push((store_key, *version));
    }
    let mut next = current.clone();
    let mut written = Vec::with_capacity(by_bucket.len());
    for (bucket, changes) in &by_bucket {
        written.push((
            *bucket,
            commit_bucket(store, key, &mut next, high, *bucket, changes).await?,
        ));
    }
    store.sync().await?;
    for _ in 0..ATTEMPTS {
        let mut committed = next.committed.clone();
        let mut generation = next.generation;
        for (bucket, at) in &written {
            committed[*bucket] = committed[*bucket].max(*at);
            generation = generation.max(*at);
        }
        let sealed = seal_top(key, generation, &committed);
        match store
            .compare_and_swap_deferred(TOP, next.top_version, sealed)
            .await?
        {
            Cas::Swapped { version } => {
                store.sync().await?;
                next.committed = committed;
                next.generation = generation;
                next.top_version = version;
                next.first_format = false;
                return Ok(next);
            }
            Cas::Conflict { .. } => {
                let mut theirs = next.clone();
                match store.get(TOP).await? {
                    Some(stored) => theirs.adopt_top(key, &stored)?,
                    None => theirs.top_version = 0,
                }
                if theirs.first_format {
                    return Err(StoreError::Unavailable(
                        "another broker rewrote the manifest in the previous format; \
                         upgrade every broker sharing this store"
                            .into(),
                    )
                    .into());
                }
                // Never go back: keep the higher of each entry.
                for (mine, theirs) in next.committed.iter_mut().zip(&theirs.committed) {
                    *mine = (*mine).max(*theirs);
                }
                next.generation = next.generation.max(theirs.generation);
                next.top_version = theirs.top_version;
            }
        }
    }
    Err(Error::ConcurrentChange {
        what: "the store's manifest".into(),
    })
}

/// Rewrites `bucket` with `changes` applied (deferred: [`commit`] syncs),
/// merging another replica's version of it on a conflict. Returns the
/// version the bucket was written at.
async fn commit_bucket(
    store: &dyn Store,
    key: &MasterKey,
    next: &mut Manifest,
    high: u64,
    bucket: usize,
    changes: &[(&str, Option<u64>)],
) -> Result<u64, Error> {
    for _ in 0..ATTEMPTS {
        let mut records = next.bucket_records(bucket);
        let floor = next.held[bucket].version.max(next.committed[bucket]) + 1;
        let mut at = floor;
        for (store_key, version) in changes {
            at = at.max(match version {
                Some(v) => {
                    records.insert((*store_key).to_owned(), *v);
                    *v
                }
                None => {
                    records.remove(*store_key);
                    next.generation.max(high) + 1
                }
            });
        }
        let sealed = seal_bucket(key, bucket, at, records.clone());
        let expected = next.held[bucket].store_version;
        match store
            .compare_and_swap_deferred(&bucket_key(bucket), expected, sealed)
            .await?
        {
            Cas::Swapped { version } => {
                next.replace_bucket(bucket, records);
                next.held[bucket] = Held {
                    version: at,
                    store_version: version,
                };
                return Ok(at);
            }
            Cas::Conflict { .. } => match store.get(&bucket_key(bucket)).await? {
                Some(stored) => next.apply_bucket(key, bucket, &stored, false)?,
                None => {
                    next.held[bucket] = Held::default();
                    next.replace_bucket(bucket, BTreeMap::new());
                }
            },
        }
    }
    Err(Error::ConcurrentChange {
        what: "the store's manifest".into(),
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::SystemTime;

    use super::*;
    use crate::credential::{Credential, Secret};
    use crate::store::Vault;
    use crate::store::memory::MemoryStore;
    use crate::store::vault::{VaultError, credential_key};

    fn auth(name: &str, token: &str) -> Credential {
        Credential {
            name: name.into(),
            labels: BTreeMap::new(),
            created_at: SystemTime::now(),
            updated_at: SystemTime::now(),
            secret: Secret::AuthToken {
                account_sid: "AC0123456789abcdef0123456789abcdef".into(),
                auth_token: token.into(),
                secondary_auth_token: None,
                rotation: None,
            },
        }
    }

    fn random_token() -> String {
        format!("{:032x}", rand::random::<u128>())
    }

    fn token_of(vault: &Vault, name: &str) -> Option<String> {
        match &vault.get(name)?.secret {
            Secret::AuthToken { auth_token, .. } => Some(auth_token.open().to_string()),
            _ => None,
        }
    }

    async fn versions(store: &dyn Store, prefix: &str) -> BTreeMap<String, u64> {
        store
            .list(prefix)
            .await
            .expect("list")
            .into_iter()
            .map(|(k, v)| (k, v.version))
            .collect()
    }

    #[tokio::test]
    async fn a_write_rewrites_one_bucket_and_the_top() {
        let (store, key): (Arc<dyn Store>, _) =
            (Arc::new(MemoryStore::default()), MasterKey::generate());
        let vault = Vault::open(Arc::clone(&store), key.clone())
            .await
            .expect("vault");
        for i in 0..40 {
            vault
                .put(auth(&format!("c{i}"), &random_token()))
                .await
                .expect("put");
        }
        let before = versions(store.as_ref(), BUCKET_PREFIX).await;
        assert!(
            before.len() > 20,
            "40 names spread over many buckets: {before:?}"
        );
        let top_before = store.get(TOP).await.expect("get").expect("top").version;
        vault.put(auth("c7", &random_token())).await.expect("put");
        let after = versions(store.as_ref(), BUCKET_PREFIX).await;
        let changed: Vec<_> = after
            .iter()
            .filter(|(k, v)| before.get(*k) != Some(v))
            .collect();
        let expected = bucket_key(bucket_of(&credential_key(&key, "c7")));
        assert_eq!(changed, [(&expected, &after[&expected])]);
        assert_ne!(
            store.get(TOP).await.expect("get").expect("top").version,
            top_before
        );
        // A delete likewise.
        vault.delete("c3").await.expect("delete");
        let deleted = versions(store.as_ref(), BUCKET_PREFIX).await;
        assert_eq!(
            deleted
                .iter()
                .filter(|(k, v)| after.get(*k) != Some(v))
                .count(),
            1
        );
        let reopened = Vault::open(store, key).await.expect("reopen");
        assert_eq!(reopened.len(), 39);
    }

    #[tokio::test]
    async fn a_replayed_bucket_is_refused() {
        let (store, key): (Arc<dyn Store>, _) =
            (Arc::new(MemoryStore::default()), MasterKey::generate());
        let vault = Vault::open(Arc::clone(&store), key.clone())
            .await
            .expect("vault");
        let replica = Vault::open(Arc::clone(&store), key.clone())
            .await
            .expect("replica");
        vault.put(auth("main", &random_token())).await.expect("put");
        let bucket = bucket_key(bucket_of(&credential_key(&key, "main")));
        let old = store.get(&bucket).await.expect("get").expect("bucket");
        let new_token = random_token();
        vault
            .put(auth("main", &new_token))
            .await
            .expect("put again");
        replica.reread().await.expect("reread");
        assert_eq!(
            token_of(&replica, "main").as_deref(),
            Some(new_token.as_str())
        );
        // Put the older bucket back, and the top it went with not.
        store.put(&bucket, old.value).await.expect("replay");
        match Vault::open(Arc::clone(&store), key.clone()).await {
            Err(VaultError::DamagedManifest(reason)) => {
                assert!(reason.contains("replay refused"), "{reason}");
            }
            Err(other) => panic!("unexpected error {other}"),
            Ok(_) => panic!("a replayed manifest bucket was accepted"),
        }
        // A bucket the top lists cannot be removed either.
        store.delete(&bucket).await.expect("delete bucket");
        match Vault::open(Arc::clone(&store), key).await {
            Err(VaultError::DamagedManifest(reason)) => {
                assert!(reason.contains("missing"), "{reason}");
            }
            Err(other) => panic!("unexpected error {other}"),
            Ok(_) => panic!("a missing manifest bucket was accepted"),
        }
        // The running replica keeps serving what it last read.
        assert_eq!(
            token_of(&replica, "main").as_deref(),
            Some(new_token.as_str())
        );
    }

    #[tokio::test]
    async fn a_manifest_of_the_first_format_is_rewritten_and_still_refuses_replays() {
        let (store, key): (Arc<dyn Store>, _) =
            (Arc::new(MemoryStore::default()), MasterKey::generate());
        let (old, new) = (random_token(), random_token());
        let replay;
        {
            let vault = Vault::open(Arc::clone(&store), key.clone())
                .await
                .expect("vault");
            vault.put(auth("main", &old)).await.expect("put old");
            replay = store
                .get(&credential_key(&key, "main"))
                .await
                .expect("get")
                .expect("record");
            vault.put(auth("main", &new)).await.expect("put new");
            vault.put(auth("other", &old)).await.expect("put other");
        }
        // Turn the store into what the previous release wrote: one record.
        let current = load(store.as_ref(), &key).await.expect("load");
        for (bucket, _) in store.list(BUCKET_PREFIX).await.expect("list") {
            store.delete(&bucket).await.expect("delete bucket");
        }
        let first = FirstFormat {
            generation: current.generation,
            records: current
                .records
                .iter()
                .map(|(k, v)| (k.clone(), *v))
                .collect(),
        };
        store
            .put(TOP, seal_json(&key, TOP, current.generation, &first))
            .await
            .expect("first format");
        assert!(load(store.as_ref(), &key).await.expect("load").first_format);

        let vault = Vault::open(Arc::clone(&store), key.clone())
            .await
            .expect("migrates");
        assert_eq!(token_of(&vault, "main").as_deref(), Some(new.as_str()));
        assert_eq!(token_of(&vault, "other").as_deref(), Some(old.as_str()));
        assert_eq!(vault.generation(), current.generation + 1);
        let migrated = load(store.as_ref(), &key).await.expect("load");
        assert!(!migrated.first_format);
        assert_eq!(migrated.records, current.records);
        assert!(!store.list(BUCKET_PREFIX).await.expect("list").is_empty());
        drop(vault);
        // The replayed old record is still refused under the new format.
        store
            .put(&credential_key(&key, "main"), replay.value)
            .await
            .expect("replay");
        let vault = Vault::open(store, key).await.expect("opens");
        let refused = vault.lookup("main").expect_err("replay served");
        assert!(refused.to_string().contains("replay refused"), "{refused}");
    }
}
