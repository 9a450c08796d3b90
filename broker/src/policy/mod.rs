//! Who may do what: a deny-by-default policy over caller identities.
//!
//! A policy file is a list of `[[rule]]`s. A rule matches callers by glob
//! over their identity names (`uid:1000`, `gid:50`, a certificate's SPIFFE
//! id, DNS name or CN) and says which RPCs, credentials, grant kinds, minted
//! identities and TTLs it allows (or denies). Evaluation:
//!
//! 1. No rule names the caller: UNAUTHENTICATED if it has no identity,
//!    PERMISSION_DENIED otherwise.
//! 2. A matching `deny` rule that covers the action wins.
//! 3. Otherwise an `allow` rule must cover the whole action; its rate limit
//!    (if any) is then charged.
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
                self.current.store(Arc::new(compiled));
                tracing::info!(rules, source = %self.describe(), "policy reloaded");
                Ok(Loaded {
                    rules,
                    source: self.describe(),
                })
            }
            Err(err) => {
                tracing::error!(source = %self.describe(), error = %format!("{err:#}"), "policy reload failed; the previous policy stays in force");
                Err(Error::FailedPrecondition(format!(
                    "the policy was not reloaded and the previous one stays in force: {err:#}"
                )))
            }
        }
    }

    /// Decides whether `caller` may perform `action` (and charges its rate limit).
    pub fn authorize(&self, caller: &Caller, action: &Action<'_>) -> Result<(), Error> {
        self.current.load().authorize(caller, action)
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

fn compile(source: &Source) -> anyhow::Result<CompiledPolicy> {
    match source {
        Source::DevAllowAll => Ok(CompiledPolicy::allow_all()),
        Source::File(path) => CompiledPolicy::compile(&PolicyFile::load(path)?)
            .map_err(|err| err.context(format!("policy file {}", path.display()))),
    }
}

/// Parses and compiles a policy file without installing it (`policy check`).
pub fn check_file(path: &Path) -> anyhow::Result<usize> {
    let compiled = CompiledPolicy::compile(&PolicyFile::load(path)?)?;
    Ok(compiled.len())
}
