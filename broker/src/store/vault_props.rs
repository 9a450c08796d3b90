//! Property test of the vault's index (issue 20): concurrent writers, on one
//! replica or on two sharing a store, never lose an index entry. After any
//! interleaving of puts and deletes, every replica serves exactly the last
//! write of each name (after a re-read), a page-by-page range read agrees
//! with the full list, and a vault opened afresh on the store (so checked
//! against the manifest) serves the same.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::SystemTime;

use proptest::prelude::*;

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
    let mut out = BTreeMap::new();
    for (w, ops) in writers.iter().enumerate() {
        for (i, op) in ops.iter().enumerate() {
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

fn run(replicas: usize, writers: Vec<Vec<Op>>) -> Result<(), TestCaseError> {
    let tokens: Vec<Vec<String>> = writers
        .iter()
        .map(|ops| {
            ops.iter()
                .map(|_| format!("{:032x}", rand::random::<u128>()))
                .collect()
        })
        .collect();
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

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

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
