//! The conformance suites themselves: the reference in-memory store passes,
//! and backends with classic bugs fail the cases meant to catch them.

use std::time::Duration;

use twilio_broker_plugin_sdk::conformance::{self, Outcome, Report};
use twilio_broker_plugin_sdk::{Audit, Cas, MemoryStorage, PluginError, Storage, Versioned};

#[test]
fn the_reference_store_passes_every_case() {
    let report = conformance::storage::run(&MemoryStorage::new());
    report.assert_passed();
    assert!(
        report.cases.iter().all(|c| c.outcome == Outcome::Passed),
        "{report}"
    );
}

/// A bug to plant in an otherwise correct store.
#[derive(Clone, Copy)]
enum Bug {
    /// compare-and-swap ignores the expected version.
    BlindSwap,
    /// list treats the prefix as a SQL `LIKE` pattern.
    LooseList,
    /// versions restart after a delete (ABA).
    ReusedVersions,
}

/// SQL `LIKE` without escapes: what a backend gets wrong by building the
/// prefix query as `key LIKE prefix || '%'`.
fn like(pattern: &[char], text: &[char]) -> bool {
    match pattern.first() {
        None => text.is_empty(),
        Some('%') => (0..=text.len()).any(|i| like(&pattern[1..], &text[i..])),
        Some('_') => !text.is_empty() && like(&pattern[1..], &text[1..]),
        Some(c) => text.first() == Some(c) && like(&pattern[1..], &text[1..]),
    }
}

struct Buggy {
    inner: MemoryStorage,
    bug: Bug,
}

impl Storage for Buggy {
    fn get(&self, key: &str) -> Result<Option<Versioned>, PluginError> {
        let found = self.inner.get(key)?;
        Ok(match self.bug {
            Bug::ReusedVersions => found.map(|v| Versioned { version: 1, ..v }),
            _ => found,
        })
    }
    fn put(&self, key: &str, value: &[u8]) -> Result<u64, PluginError> {
        let version = self.inner.put(key, value)?;
        Ok(match self.bug {
            Bug::ReusedVersions => 1,
            _ => version,
        })
    }
    fn delete(&self, key: &str) -> Result<bool, PluginError> {
        self.inner.delete(key)
    }
    fn list(&self, prefix: &str) -> Result<Vec<(String, Versioned)>, PluginError> {
        match self.bug {
            Bug::LooseList => {
                let pattern: Vec<char> = format!("{prefix}%").chars().collect();
                let mut all = self.inner.list("")?;
                all.retain(|(key, _)| like(&pattern, &key.chars().collect::<Vec<_>>()));
                Ok(all)
            }
            _ => self.inner.list(prefix),
        }
    }
    fn compare_and_swap(&self, key: &str, expected: u64, value: &[u8]) -> Result<Cas, PluginError> {
        match self.bug {
            Bug::BlindSwap => Ok(Cas::Swapped {
                version: self.inner.put(key, value)?,
            }),
            _ => self.inner.compare_and_swap(key, expected, value),
        }
    }
    fn wait_for_change(&self, after: u64, timeout: Duration) -> Result<Option<u64>, PluginError> {
        self.inner.wait_for_change(after, timeout)
    }
}

fn failed(report: &Report) -> Vec<&'static str> {
    report
        .cases
        .iter()
        .filter(|c| matches!(c.outcome, Outcome::Failed(_)))
        .map(|c| c.name)
        .collect()
}

#[test]
fn planted_bugs_are_caught() {
    let cases = [
        (
            Bug::BlindSwap,
            "compare-and-swap at version 0 creates only an absent key",
        ),
        (
            Bug::LooseList,
            "keys are text, not patterns (%, _, \\, ', unicode)",
        ),
        (
            Bug::ReusedVersions,
            "every write gets a new, greater version",
        ),
        (
            Bug::ReusedVersions,
            "a deleted and re-created key never reuses a version",
        ),
    ];
    for (bug, expected) in cases {
        let report = conformance::storage::run(&Buggy {
            inner: MemoryStorage::new(),
            bug,
        });
        assert!(!report.passed());
        assert!(
            failed(&report).contains(&expected),
            "{expected:?} not failed:\n{report}"
        );
    }
}

/// An audit sink that drops every third event.
struct Lossy {
    seen: std::sync::Mutex<Vec<String>>,
}

impl Audit for Lossy {
    fn record(&self, event_json: &str) -> Result<(), PluginError> {
        let mut seen = self
            .seen
            .lock()
            .map_err(|_| PluginError::failed("poisoned"))?;
        if seen.len() % 3 != 2 {
            seen.push(event_json.to_owned());
        } else {
            seen.push(String::new());
        }
        Ok(())
    }
    fn flush(&self) -> Result<(), PluginError> {
        Ok(())
    }
}

#[test]
fn the_audit_suite_catches_lost_events_and_skips_without_readback() {
    let sink = Lossy {
        seen: Default::default(),
    };
    let readback = || Ok(sink.seen.lock().map_err(|e| e.to_string())?.clone());
    let report = conformance::audit::run(&sink, Some(&readback));
    assert_eq!(
        failed(&report),
        ["every recorded event arrives exactly once, unchanged"],
        "{report}"
    );
    let without = conformance::audit::run(&sink, None);
    assert!(without.passed());
    assert!(matches!(
        without.cases.last().map(|c| &c.outcome),
        Some(Outcome::Skipped(_))
    ));
}

/// Every case of both suites has its own hint, and a failure prints it.
#[test]
fn every_case_has_a_hint_and_failures_print_it() {
    let storage = conformance::storage::run(&MemoryStorage::new());
    let audit = conformance::audit::run(
        &Lossy {
            seen: Default::default(),
        },
        None,
    );
    for case in storage.cases.iter().chain(&audit.cases) {
        assert!(
            !case.hint.starts_with("see the contract"),
            "no hint for {:?}",
            case.name
        );
    }
    let failing = conformance::storage::run(&Buggy {
        inner: MemoryStorage::new(),
        bug: Bug::BlindSwap,
    });
    let text = failing.to_string();
    let hinted = failing.failures().all(|case| {
        text.contains(&format!("FAIL  {}", case.name))
            && text.contains(&format!("hint: {}", case.hint))
    });
    assert!(failing.failures().count() > 0 && hinted, "{text}");
}
