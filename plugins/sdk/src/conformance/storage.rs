//! The storage suite: versions, compare-and-swap, prefix listing, exact
//! bytes, concurrency and change notification, as `StorageV1` promises.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use super::{Fail, Report, ensure, run_id};
use crate::storage::{Cas, Storage};

/// What usually breaks each case.
pub(super) const HINTS: &[(&str, &str)] = &[
    (
        "get of a missing key is empty",
        "`get` must return Ok(None) (C: TB_STATUS_NOT_FOUND) for a key never written, not an error",
    ),
    (
        "put then get returns the exact bytes and the version",
        "store values as raw bytes (a BYTEA/BLOB column, not text) and return the version `put` gave",
    ),
    (
        "every write gets a new, greater version",
        "take versions from one store-wide counter (a sequence), incremented on every write",
    ),
    (
        "empty and 1 MiB values round-trip",
        "allow empty values and values of at least 1 MiB; check column and message size limits",
    ),
    (
        "delete says whether the key existed",
        "`delete` returns true (C: TB_STATUS_OK) only when a row was removed, else false (TB_STATUS_NOT_FOUND)",
    ),
    (
        "list returns exactly the prefix, ordered by key",
        "filter on the literal prefix and sort by key bytes (SQL: ORDER BY key COLLATE \"C\")",
    ),
    (
        "keys are text, not patterns (%, _, \\, ', unicode)",
        "never build a LIKE pattern or SQL string from a key: use bound parameters and escape LIKE wildcards",
    ),
    (
        "compare-and-swap at version 0 creates only an absent key",
        "expected version 0 means `insert only if absent` (INSERT ... ON CONFLICT DO NOTHING), atomically",
    ),
    (
        "compare-and-swap writes only at the current version",
        "compare and write in one atomic step (UPDATE ... WHERE version = $expected), return Conflict with the current version otherwise",
    ),
    (
        "a deleted and re-created key never reuses a version",
        "do not restart versions per key: a store-wide sequence survives deletes",
    ),
    (
        "concurrent compare-and-swap loses no update",
        "the compare and the write must be atomic under concurrency: one statement, a row lock, or a mutex",
    ),
    (
        "a write changes the generation wait_for_change reports",
        "bump the change generation on every write and wake waiters (condition variable, LISTEN/NOTIFY)",
    ),
    (
        "changes_since reports what changed after a cursor",
        "stamp each write and removal (a sequence or transaction id column with an index, and tombstones for removals) and return every key stamped at or after the cursor, removals as gone",
    ),
    (
        "the suite's keys can all be deleted",
        "`list` must return every key under the prefix and `delete` must remove it",
    ),
];

const WORKERS: usize = 4;
const INCREMENTS: usize = 10;

/// Runs every storage case against `store` and reports each outcome.
/// Leaves no key behind (it deletes everything under its own prefix).
pub fn run(store: &dyn Storage) -> Report {
    let root = format!("conformance/{}/", run_id());
    let mut report = Report::new("storage", HINTS);
    let k = |case: &str| format!("{root}{case}");

    report.run("get of a missing key is empty", || {
        ensure!(store.get(&k("missing"))?.is_none(), "get returned a value");
        Ok(())
    });

    report.run(
        "put then get returns the exact bytes and the version",
        || {
            let value: Vec<u8> = (0..=255u8).collect();
            let version = store.put(&k("bytes"), &value)?;
            ensure!(version > 0, "put returned version 0");
            let got = store
                .get(&k("bytes"))?
                .ok_or(Fail::Failed("get lost the value".into()))?;
            ensure!(got.value == value, "get returned other bytes");
            ensure!(
                got.version == version,
                "get version {} != put {version}",
                got.version
            );
            Ok(())
        },
    );

    report.run("every write gets a new, greater version", || {
        let mut last = 0;
        for round in 0..3u8 {
            let version = store.put(&k("versions"), &[round])?;
            ensure!(version > last, "version {version} after {last}");
            last = version;
        }
        let got = store.get(&k("versions"))?.map(|v| (v.value, v.version));
        ensure!(
            got == Some((vec![2], last)),
            "get does not return the last write"
        );
        Ok(())
    });

    report.run("empty and 1 MiB values round-trip", || {
        store.put(&k("empty"), &[])?;
        let empty = store.get(&k("empty"))?.map(|v| v.value);
        ensure!(
            empty == Some(vec![]),
            "the empty value came back as {empty:?}"
        );
        let large: Vec<u8> = (0..1 << 20).map(|i: u32| (i % 251) as u8).collect();
        store.put(&k("large"), &large)?;
        let got = store.get(&k("large"))?.map(|v| v.value);
        ensure!(got.as_ref() == Some(&large), "the 1 MiB value changed");
        Ok(())
    });

    report.run("delete says whether the key existed", || {
        let key = k("delete");
        ensure!(
            !store.delete(&key)?,
            "deleting a missing key said it existed"
        );
        store.put(&key, b"x")?;
        ensure!(
            store.delete(&key)?,
            "deleting a present key said it was missing"
        );
        ensure!(store.get(&key)?.is_none(), "the key survived delete");
        ensure!(!store.delete(&key)?, "a second delete said it existed");
        Ok(())
    });

    report.run("list returns exactly the prefix, ordered by key", || {
        let base = k("list");
        let inside = ["/a", "/ab", "/b", "/b/c", "/~"];
        let outside = ["", "0", "a"];
        for s in inside.iter().rev().chain(&outside) {
            store.put(&format!("{base}{s}"), s.as_bytes())?;
        }
        let listed = store.list(&format!("{base}/"))?;
        let keys: Vec<String> = listed.iter().map(|(key, _)| key.clone()).collect();
        let expected: Vec<String> = inside.iter().map(|s| format!("{base}{s}")).collect();
        ensure!(keys == expected, "listed {keys:?}, expected {expected:?}");
        for (key, entry) in &listed {
            let got = store.get(key)?;
            ensure!(
                got.as_ref() == Some(entry),
                "list and get disagree on {key}"
            );
        }
        ensure!(
            store.list(&k("nothing-here/"))?.is_empty(),
            "an unused prefix listed entries"
        );
        Ok(())
    });

    report.run("keys are text, not patterns (%, _, \\, ', unicode)", || {
        let base = k("text");
        let keys = [
            format!("{base}/%_/a"),
            format!("{base}/\\'\"/b"),
            format!("{base}/ключ ✓/c"),
        ];
        for key in &keys {
            store.put(key, key.as_bytes())?;
        }
        store.put(&format!("{base}/xy/a"), b"decoy")?;
        let listed = store.list(&format!("{base}/%_/"))?;
        ensure!(
            listed.len() == 1 && listed[0].0 == keys[0],
            "prefix `%_/` listed {:?}",
            listed.iter().map(|(key, _)| key).collect::<Vec<_>>()
        );
        for key in &keys {
            let got = store.get(key)?.map(|v| v.value);
            ensure!(
                got.as_deref() == Some(key.as_bytes()),
                "key {key:?} did not round-trip"
            );
        }
        Ok(())
    });

    report.run(
        "compare-and-swap at version 0 creates only an absent key",
        || {
            let key = k("cas-create");
            let Cas::Swapped { version } = store.compare_and_swap(&key, 0, b"first")? else {
                return Err(Fail::Failed("creating an absent key conflicted".into()));
            };
            match store.compare_and_swap(&key, 0, b"second")? {
                Cas::Conflict { current } => {
                    ensure!(
                        current == version,
                        "conflict reported {current}, stored {version}"
                    )
                }
                Cas::Swapped { .. } => return Err(Fail::Failed("overwrote a present key".into())),
            }
            let got = store.get(&key)?.map(|v| v.value);
            ensure!(
                got.as_deref() == Some(&b"first"[..]),
                "the losing write changed the value"
            );
            Ok(())
        },
    );

    report.run(
        "compare-and-swap writes only at the current version",
        || {
            let key = k("cas-update");
            let v1 = store.put(&key, b"1")?;
            let v2 = store.put(&key, b"2")?;
            match store.compare_and_swap(&key, v1, b"stale")? {
                Cas::Conflict { current } => ensure!(current == v2, "conflict reported {current}"),
                Cas::Swapped { .. } => return Err(Fail::Failed("a stale version won".into())),
            }
            let Cas::Swapped { version: v3 } = store.compare_and_swap(&key, v2, b"3")? else {
                return Err(Fail::Failed("the current version conflicted".into()));
            };
            ensure!(v3 > v2, "new version {v3} is not greater than {v2}");
            let got = store.get(&key)?.map(|v| (v.value, v.version));
            ensure!(
                got == Some((b"3".to_vec(), v3)),
                "get does not show the swap"
            );
            Ok(())
        },
    );

    report.run(
        "a deleted and re-created key never reuses a version",
        || {
            let key = k("aba");
            let old = store.put(&key, b"old")?;
            store.delete(&key)?;
            match store.compare_and_swap(&key, old, b"ghost")? {
                Cas::Conflict { current } => ensure!(current == 0, "absent key reported {current}"),
                Cas::Swapped { .. } => return Err(Fail::Failed("swapped a deleted key".into())),
            }
            let new = store.put(&key, b"new")?;
            ensure!(
                new > old,
                "re-created key got version {new}, had {old} before"
            );
            Ok(())
        },
    );

    report.run("concurrent compare-and-swap loses no update", || {
        let key = k("counter");
        store.put(&key, &0u64.to_le_bytes())?;
        let versions = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..WORKERS)
                .map(|_| scope.spawn(|| increment(store, &key)))
                .collect();
            let mut all = Vec::new();
            for worker in workers {
                match worker.join() {
                    Ok(Ok(mut versions)) => all.append(&mut versions),
                    Ok(Err(why)) => return Err(why),
                    Err(_) => return Err("a worker panicked".to_owned()),
                }
            }
            Ok(all)
        })
        .map_err(Fail::Failed)?;
        let value = store.get(&key)?.map(|v| v.value).unwrap_or_default();
        let count = value.try_into().map(u64::from_le_bytes).unwrap_or(0);
        let total = (WORKERS * INCREMENTS) as u64;
        ensure!(
            count == total,
            "counter is {count} after {total} increments"
        );
        let distinct: BTreeSet<_> = versions.iter().collect();
        ensure!(
            distinct.len() == versions.len(),
            "two successful swaps got one version"
        );
        Ok(())
    });

    report.run(
        "a write changes the generation wait_for_change reports",
        || {
            let Some(before) = store.wait_for_change(u64::MAX, Duration::ZERO)? else {
                return Err(Fail::Skipped(
                    "the backend does not report changes; the broker re-reads it on a timer".into(),
                ));
            };
            let idle = store.wait_for_change(before, Duration::from_millis(1))?;
            ensure!(idle.is_some(), "wait_for_change stopped reporting changes");
            let current = idle.unwrap_or(before);
            store.put(&k("notify"), b"x")?;
            let started = Instant::now();
            let after = store.wait_for_change(current, Duration::from_secs(5))?;
            ensure!(
                after.is_some_and(|g| g != current),
                "no change reported within {:?} of a write",
                started.elapsed()
            );
            Ok(())
        },
    );

    report.run("changes_since reports what changed after a cursor", || {
        let prefix = k("changes/");
        let key = |n: &str| format!("{prefix}{n}");
        store.put(&key("kept"), b"1")?;
        store.put(&key("removed"), b"2")?;
        let Some(first) = store.changes_since(&prefix, 0)? else {
            return Err(Fail::Skipped(
                "the backend cannot list changes; the broker re-reads everything".into(),
            ));
        };
        let names = |entries: &[(String, Option<crate::Versioned>)]| {
            entries
                .iter()
                .map(|(k, v)| (k.trim_start_matches(&prefix).to_owned(), v.is_some()))
                .collect::<Vec<_>>()
        };
        ensure!(
            names(&first.entries) == [("kept".to_owned(), true), ("removed".to_owned(), true)],
            "cursor 0 did not return every entry under the prefix: {:?}",
            names(&first.entries)
        );
        ensure!(first.cursor > 0, "the cursor is 0");
        let written = store.put(&key("written"), b"3")?;
        store.delete(&key("removed"))?;
        let Some(next) = store.changes_since(&prefix, first.cursor)? else {
            return Err(Fail::Failed("changes_since stopped answering".into()));
        };
        let got = names(&next.entries);
        ensure!(
            got.contains(&("written".to_owned(), true))
                && got.contains(&("removed".to_owned(), false)),
            "after the cursor, a write and a removal are missing: {got:?}"
        );
        ensure!(
            next.entries.iter().any(|(k, v)| k.ends_with("/written")
                && v.as_ref()
                    .is_some_and(|v| v.version == written && v.value == b"3")),
            "the written entry came back with another version or value"
        );
        ensure!(
            next.entries.windows(2).all(|w| w[0].0 < w[1].0),
            "entries are not in ascending key order"
        );
        for (k, _) in &next.entries {
            ensure!(k.starts_with(&prefix), "{k} is outside the prefix");
        }
        store.delete(&key("kept"))?;
        store.delete(&key("written"))?;
        Ok(())
    });

    report.run("the suite's keys can all be deleted", || {
        for (key, _) in store.list(&root)? {
            store.delete(&key)?;
        }
        ensure!(store.list(&root)?.is_empty(), "entries remain under {root}");
        Ok(())
    });
    report
}

/// Adds one to a little-endian counter `INCREMENTS` times with
/// compare-and-swap retries; returns the versions of its successful swaps.
fn increment(store: &dyn Storage, key: &str) -> Result<Vec<u64>, String> {
    let mut won = Vec::new();
    let mut attempts = 0;
    while won.len() < INCREMENTS {
        attempts += 1;
        if attempts > 10_000 {
            return Err("compare-and-swap never succeeded in 10000 attempts".into());
        }
        let current = store.get(key).map_err(|e| e.to_string())?;
        let Some(current) = current else {
            return Err("the counter disappeared".into());
        };
        let count = <[u8; 8]>::try_from(current.value.as_slice())
            .map(u64::from_le_bytes)
            .map_err(|_| "the counter is not 8 bytes".to_owned())?;
        let next = (count + 1).to_le_bytes();
        match store.compare_and_swap(key, current.version, &next) {
            Ok(Cas::Swapped { version }) => won.push(version),
            Ok(Cas::Conflict { .. }) => continue,
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(won)
}
