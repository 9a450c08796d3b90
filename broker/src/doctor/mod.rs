//! `doctor`: looks at the process environment and at files (`.env`, shell
//! exports, YAML/JSON, the broker's TOML config) for risky Twilio
//! credentials: an Auth Token where the environment looks like production, a
//! secret in a file under version control (or about to be), a SID with the
//! wrong prefix, and a broker master key kept badly.
//!
//! It applies the decision framework's knowledge (`crate::recommend`) to
//! what is deployed rather than to what is planned, and points back to
//! `recommend` for what to use instead. It runs `git`, reads files and the
//! daemon's config, which is why it is its own module: `recommend` stays a
//! pure function of its input (depends on `credential`, `sid` and `error`).
//!
//! **Invariant:** a secret value is never put into a [`Finding`] in full: at
//! most its first four characters and its length ([`redact`]).

pub mod ages;
mod broker_config;
mod checks;
mod rules;
pub mod scan;
pub mod vcs;

use std::path::{Path, PathBuf};

use anyhow::Context as _;

use scan::Assignment;
use vcs::Vcs;

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// A risk: doctor fails (non-zero exit).
    Risk,
    /// Worth knowing; doctor still passes.
    Note,
}

impl Severity {
    /// Lower-case name, as in the JSON output.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Risk => "risk",
            Severity::Note => "note",
        }
    }
}

/// One place doctor looks at.
#[derive(Debug)]
pub struct Source {
    /// The file, or `None` for the process environment.
    pub path: Option<PathBuf>,
    /// What it assigns.
    pub assignments: Vec<Assignment>,
    /// Where the file stands with git.
    pub vcs: Vcs,
    /// The file parsed as the broker's own config, when it is one.
    pub broker_config: Option<crate::config::FileConfig>,
}

impl Source {
    /// The process environment, from `vars`.
    pub fn environment(vars: impl IntoIterator<Item = (String, String)>) -> Self {
        Source {
            path: None,
            assignments: scan::environment(vars),
            vcs: Vcs::Outside,
            broker_config: None,
        }
    }

    /// A file: read, parsed, and placed with git.
    pub fn file(path: &Path) -> anyhow::Result<Self> {
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let text = String::from_utf8_lossy(&bytes);
        let broker_config = (path.extension().is_some_and(|e| e == "toml"))
            .then(|| crate::config::FileConfig::parse(&text).ok())
            .flatten();
        Ok(Source {
            path: Some(path.to_path_buf()),
            assignments: scan::parse(&text),
            vcs: vcs::status(path),
            broker_config,
        })
    }

    /// `path:line` for a file, `environment` for the process environment.
    pub fn location(&self, line: Option<usize>) -> String {
        match (&self.path, line) {
            (Some(path), Some(line)) => format!("{}:{line}", path.display()),
            (Some(path), None) => path.display().to_string(),
            (None, _) => "environment".to_owned(),
        }
    }
}

/// One thing doctor found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Stable identifier (see [`RULES`]).
    pub id: &'static str,
    /// Risk or note.
    pub severity: Severity,
    /// `path:line` or `environment`.
    pub location: String,
    /// The variable or key, e.g. `TWILIO_AUTH_TOKEN`; empty when none.
    pub name: String,
    /// The value, redacted; empty when there is none to show.
    pub shown: String,
    /// What is wrong.
    pub text: String,
    /// What to use or do instead.
    pub instead: &'static str,
}

/// Everything doctor found.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// What was looked at: `environment` and file paths.
    pub looked_at: Vec<String>,
    /// Findings, risks first, in source order.
    pub findings: Vec<Finding>,
}

impl Report {
    /// How many findings are risks.
    pub fn risks(&self) -> usize {
        self.findings
            .iter()
            .filter(|f| f.severity == Severity::Risk)
            .count()
    }
}

/// How to judge.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Treat every source as production, whatever its variables say.
    pub production: bool,
}

/// Examines `sources` (the process environment, if given, should be one of them).
pub fn examine(sources: &[Source], options: Options) -> Report {
    let environment = sources.iter().find(|s| s.path.is_none());
    let mut findings = Vec::new();
    for source in sources {
        findings.extend(checks::check_source(source, environment, options));
    }
    findings.sort_by_key(|f| f.severity != Severity::Risk);
    Report {
        looked_at: sources.iter().map(|s| s.location(None)).collect(),
        findings,
    }
}

/// A value shown without giving it away: its first four characters (none
/// for short values) and its length.
pub fn redact(value: &str) -> String {
    let chars = value.chars().count();
    if chars < 16 {
        return format!("… ({chars} chars)");
    }
    let head: String = value.chars().take(4).collect();
    format!("{head}… ({chars} chars)")
}

#[cfg(test)]
mod tests;
