//! Who may do what: a deny-by-default policy over caller identities.
//!
//! A policy file is a list of `[[rule]]`s. A rule matches callers by glob
//! over their identity names, each in its namespace (`uid:1000`, `gid:50`,
//! `spiffe://…`, `dns:…`, `cn:…`, `uri:…`, `anonymous`, `anonymous-tls`; see
//! `crate::caller`) and says which RPCs, credentials, grant kinds, minted
//! identities and TTLs it allows (or denies). Evaluation, independent of the
//! order of rules:
//!
//! 1. A `deny` rule naming the caller (`*` names everyone) that covers the
//!    action wins.
//! 2. Otherwise at least one `allow` rule must cover the whole action; the
//!    rate limit of every covering rule is charged.
//! 3. Otherwise: UNAUTHENTICATED for an anonymous caller no allow rule
//!    names, PERMISSION_DENIED for everyone else. Every refusal is charged
//!    to the caller's source (uid or IP); past `denial_rate_limit` the
//!    answer is RESOURCE_EXHAUSTED.
//!
//! **Invariant:** the policy in force is replaced atomically; a file that
//! does not parse or compile leaves the old policy in force.

mod action;
mod file;
mod rules;
#[cfg(test)]
mod rules_props;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;

pub use action::{Action, GrantKind, Rpc};
pub use file::PolicyFile;
pub use rules::CompiledPolicy;

use crate::caller::Caller;
use crate::error::Error;

/// Where the policy comes from.
#[derive(Debug, Clone)]
pub enum Source {
    /// `--dev`: every caller may do everything. Loud in the logs.
    DevAllowAll,
    /// A TOML file, reloadable.
    File(PathBuf),
}

/// The policy in force, swapped atomically on reload.
pub struct PolicyEngine {
    source: Source,
    current: ArcSwap<CompiledPolicy>,
}

/// What a successful (re)load found.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// How many rules are in force.
    pub rules: usize,
    /// Where they came from.
    pub source: String,
}

impl PolicyEngine {
    /// Loads the policy; an error names the file and the problem.
    pub fn load(source: Source) -> anyhow::Result<Self> {
        let compiled = compile(&source)?;
        log_warnings(&compiled);
        Ok(PolicyEngine {
            source,
            current: ArcSwap::from_pointee(compiled),
        })
    }

    /// Re-reads the source. On error the old policy stays in force.
    pub fn reload(&self) -> Result<Loaded, Error> {
        match compile(&self.source) {
            Ok(compiled) => {
                let rules = compiled.len();
                log_warnings(&compiled);
                self.current.store(Arc::new(compiled));
                tracing::info!(rules, source = %self.describe(), "policy reloaded");
                Ok(Loaded {
                    rules,
                    source: self.describe(),
                })
            }
            Err(err) => {
                tracing::error!(source = %self.describe(), error = %format!("{err:#}"), "policy reload failed; the previous policy stays in force");
                Err(Error::PolicyNotReloaded {
                    detail: format!("{err:#}"),
                })
            }
        }
    }

    /// Decides whether `caller` may perform `action` (and charges its rate limit).
    pub fn authorize(&self, caller: &Caller, action: &Action<'_>) -> Result<(), Error> {
        self.current.load().authorize(caller, action)
    }

    /// The policy in force now, for decisions that look at many actions
    /// at once (filtering a credential list).
    pub fn current(&self) -> Arc<CompiledPolicy> {
        self.current.load_full()
    }

    /// See [`CompiledPolicy::forget_idle_callers`].
    pub fn forget_idle_callers(&self) {
        self.current.load().forget_idle_callers();
    }

    /// Charges a call refused before the policy (invalid input, a refused
    /// certificate) to its source; `Some` when the source is over its limit.
    pub fn charge_refusal(&self, caller: &Caller) -> Option<Error> {
        self.current.load().charge_refusal(caller)
    }

    /// Where the policy comes from, for logs.
    pub fn describe(&self) -> String {
        match &self.source {
            Source::DevAllowAll => "--dev (allow all)".to_owned(),
            Source::File(path) => path.display().to_string(),
        }
    }

    /// How many rules are in force.
    pub fn rules(&self) -> usize {
        self.current.load().len()
    }
}

fn log_warnings(compiled: &CompiledPolicy) {
    for warning in compiled.warnings() {
        tracing::warn!(rule = %warning.rule, "{}", warning.message);
    }
}

fn compile(source: &Source) -> anyhow::Result<CompiledPolicy> {
    match source {
        Source::DevAllowAll => Ok(CompiledPolicy::allow_all()),
        Source::File(path) => CompiledPolicy::compile(&PolicyFile::load(path)?)
            .map_err(|err| err.context(format!("policy file {}", path.display()))),
    }
}

/// Parses and compiles a policy file without installing it (`policy check`).
pub fn check_file(path: &Path) -> anyhow::Result<CompiledPolicy> {
    CompiledPolicy::compile(&PolicyFile::load(path)?)
}
