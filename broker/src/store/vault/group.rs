//! Group commit of the vault's writes (issue 20), the same idea as the
//! audit file's open batch: concurrent puts and deletes queue up, and
//! whoever holds the write lock commits everything queued as one group, so
//! a group pays for the store's syncs once rather than once per write.
//!
//! A group, in order (the order invariants of a single write, kept for every
//! writer of the group):
//! 1. every put's record is written (compare-and-swap, deferred), then one
//!    [`Store::sync`](crate::store::Store::sync): records durable;
//! 2. the manifest: each touched bucket, one sync, the top, one sync
//!    ([`manifest::commit`](super::manifest::commit));
//! 3. every delete's record is removed (the manifest no longer lists it),
//!    one sync;
//! 4. the state file's mark is raised once, to the group's generation;
//! 5. the index is published once, and only then is each writer answered.
//!
//! **Invariants:** a writer is answered only after its write is durable
//! (steps 1-3 done, or an error); a group holds at most one write per store
//! key (a repeated key starts the next group), so puts and deletes of the
//! same credential keep their order; a write whose caller has gone before
//! its group starts is not applied.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::oneshot;

use super::{Entry, Index, PUT_ATTEMPTS, Vault, manifest};
use crate::credential::Credential;
use crate::error::Error;
use crate::store::Cas;
use crate::store::record;
use crate::store::seal::{self, RecordKind};

/// The answer a put waits for.
type PutReply = oneshot::Sender<Result<Arc<Credential>, Error>>;
/// The answer a delete waits for.
type DeleteReply = oneshot::Sender<Result<Option<Arc<Credential>>, Error>>;

/// One queued write and where its answer goes.
pub(super) enum Pending {
    /// Store `credential` (see [`Vault::put`]); `attempts` counts lost
    /// compare-and-swaps against other replicas.
    Put {
        credential: Box<Credential>,
        attempts: u64,
        reply: PutReply,
    },
    /// Remove the credential called `name` (see [`Vault::delete`]).
    Delete { name: String, reply: DeleteReply },
}

impl Pending {
    fn name(&self) -> &str {
        match self {
            Pending::Put { credential, .. } => &credential.name,
            Pending::Delete { name, .. } => name,
        }
    }

    fn gone(&self) -> bool {
        match self {
            Pending::Put { reply, .. } => reply.is_closed(),
            Pending::Delete { reply, .. } => reply.is_closed(),
        }
    }
}

/// The writes waiting for the next group.
#[derive(Default)]
pub(super) struct Queue(Mutex<Vec<Pending>>);

impl Queue {
    fn push(&self, pending: Pending) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(pending);
    }

    fn take(&self) -> Vec<Pending> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// How many times a writer queues again when the group that held its write
/// was abandoned (its leader's caller went away mid-commit).
const REQUEUES: usize = 3;

fn abandoned() -> Error {
    Error::StorageUnavailable {
        detail: "the write's group commit was interrupted; retry".into(),
    }
}

/// A put's or a delete's answer, as a group leaves it.
struct Answered<R> {
    reply: oneshot::Sender<Result<R, Error>>,
    value: R,
}

impl Vault {
    /// Queues `credential` for the next group and waits for its answer.
    pub(super) async fn put_grouped(
        &self,
        credential: Credential,
    ) -> Result<Arc<Credential>, Error> {
        for _ in 0..REQUEUES {
            let (reply, answer) = oneshot::channel();
            self.writes.push(Pending::Put {
                credential: Box::new(credential.clone()),
                attempts: 0,
                reply,
            });
            self.commit_queued().await;
            if let Ok(answer) = answer.await {
                return answer;
            }
        }
        Err(abandoned())
    }

    /// Queues the deletion of `name` for the next group and waits.
    pub(super) async fn delete_grouped(
        &self,
        name: &str,
    ) -> Result<Option<Arc<Credential>>, Error> {
        for _ in 0..REQUEUES {
            let (reply, answer) = oneshot::channel();
            self.writes.push(Pending::Delete {
                name: name.to_owned(),
                reply,
            });
            self.commit_queued().await;
            if let Ok(answer) = answer.await {
                return answer;
            }
        }
        Err(abandoned())
    }

    /// Takes the write lock and commits whatever is queued (this caller's
    /// write, unless an earlier holder took it in its group). Puts that lost
    /// a compare-and-swap to another replica are retried after a re-read.
    async fn commit_queued(&self) {
        let _writer = self.write_lock.lock().await;
        let mut group = self.writes.take();
        let mut round = 0;
        while !group.is_empty() {
            let retry = self.commit_groups(group).await;
            if retry.is_empty() {
                break;
            }
            tracing::debug!(
                writes = retry.len(),
                "records changed by another replica; re-reading them before writing"
            );
            round += 1;
            tokio::time::sleep(Duration::from_millis(rand::random_range(0..=round * 4))).await;
            if let Err(err) = self.reread_locked().await {
                let err = Error::from(err);
                for pending in retry {
                    fail(pending, &err);
                }
                return;
            }
            group = retry;
        }
    }

    /// Commits `pending` as groups of distinct store keys; returns the puts
    /// to retry.
    async fn commit_groups(&self, mut pending: Vec<Pending>) -> Vec<Pending> {
        pending.retain(|p| !p.gone());
        let mut retry = Vec::new();
        while !pending.is_empty() {
            let mut keys = HashSet::new();
            let cut = pending
                .iter()
                .position(|p| !keys.insert(self.names.store_key(p.name())))
                .unwrap_or(pending.len());
            let rest = pending.split_off(cut);
            retry.extend(self.commit_group(pending).await);
            pending = rest;
        }
        retry
    }

    /// Commits one group of writes to distinct store keys (see the module
    /// documentation for the order). Returns the puts to retry.
    async fn commit_group(&self, group: Vec<Pending>) -> Vec<Pending> {
        // The keyring's newest key seals this group (swapped only between
        // groups: the re-seal task and a reload hold the write lock).
        let key = self.key.load_full();
        let mut work = Index::clone(&self.index.load());
        let mut changes = Vec::with_capacity(group.len());
        let mut puts = Vec::new();
        let mut deletes = Vec::new();
        let mut retry = Vec::new();
        for pending in group {
            match pending {
                Pending::Put {
                    credential,
                    attempts,
                    reply,
                } => {
                    let store_key = self.names.store_key(&credential.name);
                    let expected = work.entries.get(&store_key).map_or(0, |e| e.store_version);
                    let mut stored = Credential::clone(&credential);
                    if let Some(existing) = work.credentials.get(&credential.name) {
                        stored.created_at = existing.created_at;
                    }
                    let version = work.high + 1;
                    let sealed = seal::seal_record(
                        &key,
                        &store_key,
                        RecordKind::Credential,
                        version,
                        &record::encode(&stored),
                    );
                    match self
                        .store
                        .compare_and_swap_deferred(&store_key, expected, sealed)
                        .await
                    {
                        Ok(Cas::Swapped {
                            version: store_version,
                        }) => {
                            let stored = Arc::new(stored);
                            work.remove_record(&store_key);
                            work.high = work.high.max(version);
                            work.entries.insert(
                                store_key.clone(),
                                Entry {
                                    store_version,
                                    record_version: version,
                                    name: Some(stored.name.clone()),
                                    sealed_under: Some(key.id()),
                                },
                            );
                            work.credentials
                                .insert(stored.name.clone(), Arc::clone(&stored));
                            changes.push((store_key, Some(version)));
                            puts.push(Answered {
                                reply,
                                value: stored,
                            });
                        }
                        Ok(Cas::Conflict { .. }) if attempts + 1 < PUT_ATTEMPTS => {
                            retry.push(Pending::Put {
                                credential,
                                attempts: attempts + 1,
                                reply,
                            });
                        }
                        Ok(Cas::Conflict { .. }) => {
                            let _ = reply.send(Err(Error::ConcurrentChange {
                                what: format!("credential {:?}", credential.name),
                            }));
                        }
                        Err(err) => {
                            let _ = reply.send(Err(err.into()));
                        }
                    }
                }
                Pending::Delete { name, reply } => {
                    let store_key = self.names.store_key(&name);
                    let existing = work.credentials.get(&name).cloned();
                    if existing.is_none() && !work.unreadable.contains_key(&store_key) {
                        let _ = reply.send(Err(Error::CredentialNotFound { name }));
                        continue;
                    }
                    changes.push((store_key.clone(), None));
                    deletes.push((
                        store_key,
                        Answered {
                            reply,
                            value: existing,
                        },
                    ));
                }
            }
        }
        if changes.is_empty() {
            return retry;
        }
        let deletes_failed = |deletes: Vec<(String, Answered<_>)>, err: &Error| {
            for (_, answered) in deletes {
                let _ = answered.reply.send(Err(for_writer(err)));
            }
        };
        // 1. Records durable before the manifest names them.
        if !puts.is_empty()
            && let Err(err) = self.store.sync().await
        {
            let err = Error::from(err);
            answer_failed(puts, &err);
            deletes_failed(deletes, &err);
            return retry;
        }
        // 2. The manifest: buckets, sync, top, sync.
        let committed = manifest::commit(
            self.store.as_ref(),
            &key,
            &work.manifest,
            work.high,
            &changes,
        )
        .await;
        let next = match committed {
            Ok(next) => next,
            Err(err) => {
                // The records are durable (and served, as before the manifest
                // existed); the writers learn that the commit failed.
                self.index.store(Arc::new(work));
                answer_failed(puts, &err);
                deletes_failed(deletes, &err);
                return retry;
            }
        };
        work.high = work.high.max(next.generation);
        work.manifest = next;
        // 3. Deleted records go once the manifest no longer lists them.
        if !deletes.is_empty() {
            let mut removed = Ok(());
            for (store_key, _) in &deletes {
                if let Err(err) = self.store.delete_deferred(store_key).await {
                    removed = Err(err);
                    break;
                }
            }
            if let Err(err) = removed.and(self.store.sync().await) {
                let err = Error::from(err);
                self.index.store(Arc::new(work));
                answer_ok(puts);
                deletes_failed(deletes, &err);
                return retry;
            }
            for (store_key, _) in &deletes {
                work.remove_record(store_key);
            }
        }
        // 4. The state file's mark, once for the group.
        let generation = work.manifest.generation;
        let marked = match &self.state_file {
            Some(state) => state.set_store_generation(generation, false).map_err(|e| {
                Error::StorageUnavailable {
                    detail: e.to_string(),
                }
            }),
            None => Ok(()),
        };
        // 5. Publish, then answer.
        self.index.store(Arc::new(work));
        match marked {
            Ok(()) => {
                answer_ok(puts);
                for (_, answered) in deletes {
                    let _ = answered.reply.send(Ok(answered.value));
                }
            }
            Err(err) => {
                answer_failed(puts, &err);
                deletes_failed(deletes, &err);
            }
        }
        retry
    }
}

fn answer_ok<R>(answered: Vec<Answered<R>>) {
    for answered in answered {
        let _ = answered.reply.send(Ok(answered.value));
    }
}

fn answer_failed<R>(answered: Vec<Answered<R>>, err: &Error) {
    for answered in answered {
        let _ = answered.reply.send(Err(for_writer(err)));
    }
}

fn fail(pending: Pending, err: &Error) {
    match pending {
        Pending::Put { reply, .. } => drop(reply.send(Err(for_writer(err)))),
        Pending::Delete { reply, .. } => drop(reply.send(Err(for_writer(err)))),
    }
}

/// `err` as each writer of a failed group sees it (an [`Error`] is not
/// `Clone`: the store's failures are copied by kind).
fn for_writer(err: &Error) -> Error {
    match err {
        Error::StorageUnavailable { detail } => Error::StorageUnavailable {
            detail: detail.clone(),
        },
        Error::ConcurrentChange { what } => Error::ConcurrentChange { what: what.clone() },
        Error::RecordUnreadable { record, detail } => Error::RecordUnreadable {
            record: record.clone(),
            detail: detail.clone(),
        },
        other => Error::Internal(anyhow::anyhow!("group commit failed: {other}")),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::SystemTime;

    use super::*;
    use crate::credential::Secret;
    use crate::master_key::MasterKey;
    use crate::store::Store;
    use crate::store::crash_store::CrashStore;

    fn auth(name: &str, token: &str) -> Credential {
        Credential {
            name: name.into(),
            labels: BTreeMap::new(),
            created_at: SystemTime::now(),
            updated_at: SystemTime::now(),
            secret: crate::credential::Secret::AuthToken {
                account_sid: "AC0123456789abcdef0123456789abcdef".into(),
                auth_token: token.into(),
                secondary_auth_token: None,
                rotation: None,
            },
        }
    }

    fn token_of(vault: &Vault, name: &str) -> Option<String> {
        match &vault.get(name)?.secret {
            Secret::AuthToken { auth_token, .. } => Some(auth_token.open().to_string()),
            _ => None,
        }
    }

    /// 64 concurrent puts over a store whose sync takes a millisecond: they
    /// share syncs (one at a time, three a put would be 192), every one is
    /// acknowledged, and a crash right after loses none of them.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_puts_share_syncs_and_survive_a_crash() {
        const WRITERS: usize = 64;
        let key = MasterKey::generate();
        let store = Arc::new(CrashStore::with_sync_time(Duration::from_millis(1)));
        let vault = Arc::new(
            Vault::open(Arc::clone(&store) as Arc<dyn Store>, key.clone())
                .await
                .expect("vault"),
        );
        let before = store.syncs();
        let start = Arc::new(tokio::sync::Barrier::new(WRITERS));
        let tasks: Vec<_> = (0..WRITERS)
            .map(|i| {
                let (vault, start) = (Arc::clone(&vault), Arc::clone(&start));
                tokio::spawn(async move {
                    start.wait().await;
                    vault
                        .put(auth(&format!("c{i}"), &format!("token-{i}")))
                        .await
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("writer").expect("acknowledged");
        }
        let syncs = store.syncs() - before;
        assert!(
            syncs < WRITERS as u64,
            "{syncs} syncs for {WRITERS} concurrent puts: the writes were not grouped"
        );
        let crashed: Arc<dyn Store> = Arc::new(store.crash());
        let reopened = Vault::open(crashed, key).await.expect("reopen after crash");
        assert_eq!(reopened.len(), WRITERS);
        for i in 0..WRITERS {
            assert_eq!(
                token_of(&reopened, &format!("c{i}")).as_deref(),
                Some(format!("token-{i}").as_str())
            );
        }
    }

    /// A put and a delete of the same name queued together keep their
    /// order (a repeated key starts a new group), and a delete of a name
    /// never stored is NOT_FOUND without touching the store.
    #[tokio::test]
    async fn writes_to_one_name_in_one_queue_keep_their_order() {
        let key = MasterKey::generate();
        let store = Arc::new(CrashStore::default());
        let vault = Vault::open(Arc::clone(&store) as Arc<dyn Store>, key.clone())
            .await
            .expect("vault");
        let (put, put_answer) = oneshot::channel();
        let (delete, delete_answer) = oneshot::channel();
        let (again, again_answer) = oneshot::channel();
        let (missing, missing_answer) = oneshot::channel();
        vault.writes.push(Pending::Put {
            credential: Box::new(auth("x", "first")),
            attempts: 0,
            reply: put,
        });
        vault.writes.push(Pending::Delete {
            name: "x".into(),
            reply: delete,
        });
        vault.writes.push(Pending::Put {
            credential: Box::new(auth("x", "second")),
            attempts: 0,
            reply: again,
        });
        vault.writes.push(Pending::Delete {
            name: "never".into(),
            reply: missing,
        });
        vault.commit_queued().await;
        put_answer.await.expect("answered").expect("put");
        let deleted = delete_answer.await.expect("answered").expect("delete");
        assert_eq!(deleted.map(|c| c.name.clone()).as_deref(), Some("x"));
        again_answer.await.expect("answered").expect("put again");
        assert!(matches!(
            missing_answer.await.expect("answered"),
            Err(Error::CredentialNotFound { .. })
        ));
        assert_eq!(token_of(&vault, "x").as_deref(), Some("second"));
        let reopened = Vault::open(Arc::new(store.crash()) as Arc<dyn Store>, key)
            .await
            .expect("reopen");
        assert_eq!(token_of(&reopened, "x").as_deref(), Some("second"));
    }
}
