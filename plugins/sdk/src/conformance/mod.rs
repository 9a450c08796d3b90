//! The conformance suites: the same tests for every backend of a kind, the
//! broker's own sled store included. Plugin authors run them in their crate's
//! tests against their type; `twilio-broker plugin check` runs them against a
//! built library.
//!
//! A suite never assumes an empty backend: it works under a fresh prefix
//! (`conformance/<run id>/`) and deletes what it wrote.

pub mod audit;
pub mod storage;

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// How one case ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The backend behaved as the contract says.
    Passed,
    /// It did not; the text says how.
    Failed(String),
    /// The case does not apply (e.g. an optional call); the text says why.
    Skipped(String),
}

/// One case and its outcome.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Case {
    /// What the case checks, as a sentence.
    pub name: &'static str,
    /// How it ended.
    pub outcome: Outcome,
    /// What usually makes the case fail and where to look: printed under a
    /// `FAIL` line.
    pub hint: &'static str,
}

/// The result of a suite run.
#[derive(Debug, Clone)]
pub struct Report {
    /// `storage` or `audit`.
    pub suite: &'static str,
    /// Every case, in order.
    pub cases: Vec<Case>,
    /// Case name → hint, for this suite.
    hints: &'static [(&'static str, &'static str)],
}

/// The hint of a case with no entry in its suite's table (a test keeps
/// every case covered).
const NO_HINT: &str = "see the contract in the SDK's documentation of this call";

impl Report {
    fn new(suite: &'static str, hints: &'static [(&'static str, &'static str)]) -> Self {
        Report {
            suite,
            cases: Vec::new(),
            hints,
        }
    }

    /// The failed cases.
    pub fn failures(&self) -> impl Iterator<Item = &Case> {
        self.cases
            .iter()
            .filter(|c| matches!(c.outcome, Outcome::Failed(_)))
    }

    /// True when no case failed.
    pub fn passed(&self) -> bool {
        !self
            .cases
            .iter()
            .any(|c| matches!(c.outcome, Outcome::Failed(_)))
    }

    /// Panics with the whole report when a case failed (for `#[test]`s).
    #[track_caller]
    pub fn assert_passed(&self) {
        assert!(self.passed(), "conformance suite failed:\n{self}");
    }

    /// Runs one case, catching panics of the code under test.
    fn run(&mut self, name: &'static str, case: impl FnOnce() -> CaseResult) {
        let outcome = match catch_unwind(AssertUnwindSafe(case)) {
            Ok(Ok(())) => Outcome::Passed,
            Ok(Err(Fail::Failed(why))) => Outcome::Failed(why),
            Ok(Err(Fail::Skipped(why))) => Outcome::Skipped(why),
            Err(_) => Outcome::Failed("panicked (see the panic message above)".into()),
        };
        let hint = self
            .hints
            .iter()
            .find(|(case, _)| *case == name)
            .map_or(NO_HINT, |(_, hint)| hint);
        self.cases.push(Case {
            name,
            outcome,
            hint,
        });
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (mut passed, mut failed, mut skipped) = (0, 0, 0);
        for case in &self.cases {
            match &case.outcome {
                Outcome::Passed => {
                    passed += 1;
                    writeln!(f, "  PASS  {}", case.name)?;
                }
                Outcome::Failed(why) => {
                    failed += 1;
                    writeln!(f, "  FAIL  {}: {why}", case.name)?;
                    writeln!(f, "        hint: {}", case.hint)?;
                }
                Outcome::Skipped(why) => {
                    skipped += 1;
                    writeln!(f, "  SKIP  {}: {why}", case.name)?;
                }
            }
        }
        write!(
            f,
            "{} suite: {passed} passed, {failed} failed, {skipped} skipped",
            self.suite
        )
    }
}

/// Why a case did not pass.
enum Fail {
    Failed(String),
    Skipped(String),
}

impl<E: fmt::Display> From<E> for Fail {
    fn from(err: E) -> Self {
        Fail::Failed(format!("the backend failed: {err}"))
    }
}

type CaseResult = Result<(), Fail>;

/// Fails the case with a message unless `cond` holds.
macro_rules! ensure {
    ($cond:expr, $($why:tt)+) => {
        if !$cond {
            return Err($crate::conformance::Fail::Failed(format!($($why)+)));
        }
    };
}
use ensure;

/// A run id unique enough to keep concurrent runs on one backend apart.
fn run_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{:x}-{:x}-{n}", nanos, std::process::id())
}
