//! Property test of the vault's index (issue 20): concurrent writers, on one
//! replica or on two sharing a store, never lose an index entry. After any
//! interleaving of puts and deletes, every replica serves exactly the last
//! write of each name (after a re-read), a page-by-page range read agrees
//! with the full list, and a vault opened afresh on the store (so checked
//! against the manifest) serves the same. And the group commit: a crash at
//! any moment (any prefix of the unsynced writes on disk) loses no
//! acknowledged write and leaves a store that opens.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::SystemTime;

use proptest::prelude::*;

use super::crash_store::CrashStore;
use super::memory::MemoryStore;
use super::{Store, Vault};
use crate::credential::{Credential, Secret};
use crate::master_key::MasterKey;

/// One write: put (with a per-run random token) or delete `name`.
#[derive(Debug, Clone)]
enum Op {
    Put(u8),
    Delete(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![3 => (0u8..6).prop_map(Op::Put), 1 => (0u8..6).prop_map(Op::Delete)]
}

fn credential(name: &str, token: &str) -> Credential {
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

fn token_of(credential: &Credential) -> String {
    match &credential.secret {
        Secret::AuthToken { auth_token, .. } => auth_token.open().to_string(),
        _ => String::new(),
    }
}

/// Name → token each writer's ops leave (writers own disjoint names).
fn model(writers: &[Vec<Op>], tokens: &[Vec<String>]) -> BTreeMap<String, String> {
    let done: Vec<usize> = writers.iter().map(Vec::len).collect();
    model_after(writers, tokens, &done)
}

/// Name → token after the first `done[w]` ops of each writer `w`.
fn model_after(
    writers: &[Vec<Op>],
    tokens: &[Vec<String>],
    done: &[usize],
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (w, ops) in writers.iter().enumerate() {
        for (i, op) in ops.iter().take(done[w]).enumerate() {
            match op {
                Op::Put(n) => out.insert(format!("w{w}-{n}"), tokens[w][i].clone()),
                Op::Delete(n) => out.remove(&format!("w{w}-{n}")),
            };
        }
    }
    out
}

fn served(vault: &Vault) -> BTreeMap<String, String> {
    vault
        .list()
        .iter()
        .map(|c| (c.name.clone(), token_of(c)))
        .collect()
}

/// Pages of two through the index, as ListCredentials reads it.
fn paged(vault: &Vault) -> Vec<String> {
    let mut names = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = vault.page(after.as_deref(), 2, |_| true);
        names.extend(page.iter().map(|c| c.name.clone()));
        match page.last() {
            Some(last) if page.len() == 2 => after = Some(last.name.clone()),
            _ => return names,
        }
    }
}

fn random_tokens(writers: &[Vec<Op>]) -> Vec<Vec<String>> {
    writers
        .iter()
        .map(|ops| {
            ops.iter()
                .map(|_| format!("{:032x}", rand::random::<u128>()))
                .collect()
        })
        .collect()
}

fn run(replicas: usize, writers: Vec<Vec<Op>>) -> Result<(), TestCaseError> {
    let tokens = random_tokens(&writers);
    let expected = model(&writers, &tokens);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let key = MasterKey::generate();
        let store: Arc<dyn Store> = Arc::new(MemoryStore::default());
        let mut vaults = Vec::new();
        for _ in 0..replicas {
            vaults.push(Arc::new(
                Vault::open(Arc::clone(&store), key.clone())
                    .await
                    .expect("vault"),
            ));
        }
        let mut tasks = Vec::new();
        for (w, ops) in writers.iter().cloned().enumerate() {
            let vault = Arc::clone(&vaults[w % replicas]);
            let tokens = tokens[w].clone();
            tasks.push(tokio::spawn(async move {
                for (i, op) in ops.into_iter().enumerate() {
                    match op {
                        Op::Put(n) => {
                            vault
                                .put(credential(&format!("w{w}-{n}"), &tokens[i]))
                                .await
                                .expect("put");
                        }
                        // NOT_FOUND for a name not there is part of the model.
                        Op::Delete(n) => drop(vault.delete(&format!("w{w}-{n}")).await),
                    }
                    tokio::task::yield_now().await;
                }
            }));
        }
        for task in tasks {
            task.await.expect("writer");
        }
        for vault in &vaults {
            vault.reread().await.expect("reread");
            prop_assert_eq!(&served(vault), &expected);
            prop_assert_eq!(paged(vault), expected.keys().cloned().collect::<Vec<_>>());
            for name in expected.keys() {
                prop_assert!(vault.lookup(name).is_ok(), "{name} not served");
            }
        }
        let reopened = Vault::open(Arc::clone(&store), key).await.expect("reopen");
        prop_assert_eq!(&served(&reopened), &expected);
        let names: BTreeSet<_> = reopened.list().iter().map(|c| c.name.clone()).collect();
        prop_assert_eq!(names.len(), reopened.len());
        Ok(())
    })
}

/// Concurrent writers on one vault over a [`CrashStore`]; at a random moment
/// the acknowledged writes are counted and, while no writer can start
/// another, the disk "crashes" keeping `keep` of its unsynced writes. The crashed store must open and serve, for each
/// name, the last acknowledged write or the one in flight after it; once
/// every writer is answered, a crash that keeps nothing unsynced loses
/// nothing.
fn run_crash(writers: Vec<Vec<Op>>, crash_after: usize, keep: usize) -> Result<(), TestCaseError> {
    let tokens = random_tokens(&writers);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let key = MasterKey::generate();
        let store = Arc::new(CrashStore::default());
        let dyn_store: Arc<dyn Store> = Arc::clone(&store) as Arc<dyn Store>;
        let vault = Arc::new(Vault::open(dyn_store, key.clone()).await.expect("vault"));
        let acked = Arc::new(std::sync::Mutex::new(vec![0usize; writers.len()]));
        let mut tasks = Vec::new();
        for (w, ops) in writers.iter().cloned().enumerate() {
            let (vault, acked, tokens) =
                (Arc::clone(&vault), Arc::clone(&acked), tokens[w].clone());
            tasks.push(tokio::spawn(async move {
                for (i, op) in ops.into_iter().enumerate() {
                    match op {
                        Op::Put(n) => {
                            vault
                                .put(credential(&format!("w{w}-{n}"), &tokens[i]))
                                .await
                                .expect("put");
                        }
                        Op::Delete(n) => drop(vault.delete(&format!("w{w}-{n}")).await),
                    }
                    acked.lock().expect("acked")[w] += 1;
                }
            }));
        }
        let crasher = {
            let (store, acked) = (Arc::clone(&store), Arc::clone(&acked));
            tokio::spawn(async move {
                for _ in 0..crash_after {
                    tokio::task::yield_now().await;
                }
                // The count is held while the disk stops: every write
                // counted was acknowledged before, and no writer starts
                // another write (each counts its last one first).
                let counted = acked.lock().expect("acked");
                let image = store.crash_keeping(keep);
                (counted.clone(), image)
            })
        };
        for task in tasks {
            task.await.expect("writer");
        }
        let (done, image) = crasher.await.expect("crasher");
        let image: Arc<dyn Store> = Arc::new(image);
        let reopened = Vault::open(image, key.clone()).await;
        prop_assert!(reopened.is_ok(), "the crashed store does not open");
        let found = served(&reopened.expect("checked"));
        for (w, ops) in writers.iter().enumerate() {
            let before = model_after(&writers, &tokens, &done);
            let mut next = done.clone();
            next[w] = (done[w] + 1).min(ops.len());
            let after = model_after(&writers, &tokens, &next);
            for n in 0..6 {
                let name = format!("w{w}-{n}");
                let got = found.get(&name);
                prop_assert!(
                    got == before.get(&name) || got == after.get(&name),
                    "{name}: served {got:?}, acknowledged {:?}, in flight {:?}",
                    before.get(&name),
                    after.get(&name)
                );
            }
        }
        // Every writer answered: a crash now loses nothing.
        let whole: Arc<dyn Store> = Arc::new(store.crash());
        let reopened = Vault::open(whole, key).await.expect("reopen");
        prop_assert_eq!(&served(&reopened), &model(&writers, &tokens));
        Ok(())
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn a_crash_loses_no_acknowledged_write(
        writers in prop::collection::vec(prop::collection::vec(op(), 0..12), 1..8),
        crash_after in 0usize..64,
        keep in 0usize..8,
    ) {
        run_crash(writers, crash_after, keep)?;
    }

    #[test]
    fn concurrent_writers_on_one_vault_lose_nothing(
        writers in prop::collection::vec(prop::collection::vec(op(), 0..12), 1..6)
    ) {
        run(1, writers)?;
    }

    #[test]
    fn concurrent_writers_on_two_replicas_lose_nothing(
        writers in prop::collection::vec(prop::collection::vec(op(), 0..12), 2..6)
    ) {
        run(2, writers)?;
    }
}
