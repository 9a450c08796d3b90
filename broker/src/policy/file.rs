//! The policy file format (TOML; unknown keys are an error).
//!
//! ```toml
//! version = 2                      # caller patterns carry their namespace
//! denial_rate_limit = { per_second = 20, burst = 200 }   # refusals per source
//!
//! [[rule]]
//! name = "web backends mint video tokens"
//! callers = ["spiffe://acme.org/web/*", "uid:1001", "dns:web.acme.internal"]
//! effect = "allow"                 # or "deny"; default allow
//! rpcs = ["MintAccessToken"]       # method names or "*"; default "*"
//! credentials = ["prod-video-*"]   # default "*"
//! grants = ["video"]               # grant kinds a mint may carry; default any
//! identities = ["user-*"]          # identities a mint may be for; default any
//! max_ttl_seconds = 3600           # longest mint lifetime; default 86400
//! admin = false                    # the Admin service; default false
//! rate_limit = { per_second = 100, burst = 200 }   # per caller; default none
//! ```

use std::path::Path;

use anyhow::Context as _;

/// The current policy format: caller patterns name their namespace
/// (`uid:`, `gid:`, `spiffe://`, `uri:`, `dns:`, `cn:`, `anonymous`,
/// `anonymous-tls`, `*`).
pub const CURRENT_VERSION: u32 = 2;

/// A whole policy file.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    /// Format version: absent or 1 is the first format (a bare pattern such
    /// as `web.acme.internal` names a certificate's DNS SAN, CN or URI SAN;
    /// loaded with a warning), 2 is [`CURRENT_VERSION`] (bare patterns are
    /// an error).
    #[serde(default)]
    pub version: Option<u32>,
    /// How many refused calls (denied, unauthenticated, invalid) one source
    /// (a uid, an IP address) may make; past it they are answered
    /// RESOURCE_EXHAUSTED. Default 20 per second, bursts of 200.
    #[serde(default)]
    pub denial_rate_limit: Option<RateLimitFile>,
    /// The rules, in any order (evaluation does not depend on order).
    #[serde(default, rename = "rule")]
    pub rules: Vec<RuleFile>,
}

/// Allow or deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Effect {
    /// Grants what the rule covers.
    #[default]
    Allow,
    /// Refuses what the rule covers, whatever else allows it.
    Deny,
}

/// A token bucket per caller.
#[derive(Debug, Clone, Copy, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitFile {
    /// Sustained requests per second.
    pub per_second: u32,
    /// Burst size; default equal to `per_second`.
    #[serde(default)]
    pub burst: Option<u32>,
}

/// One `[[rule]]`.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleFile {
    /// A name for logs.
    #[serde(default)]
    pub name: Option<String>,
    /// Caller identity patterns, each in its namespace (globs allowed):
    /// `uid:1000`, `gid:50`, `spiffe://acme.org/web/*`, `dns:*.acme.internal`,
    /// `cn:web`, `uri:https://…`; `anonymous` (plaintext loopback callers),
    /// `anonymous-tls` (TLS callers without a certificate); `*` is every
    /// identified caller in an allow rule and every caller in a deny rule.
    pub callers: Vec<String>,
    /// Allow or deny.
    #[serde(default)]
    pub effect: Effect,
    /// RPC names or `*`.
    #[serde(default)]
    pub rpcs: Option<Vec<String>>,
    /// Credential name globs.
    #[serde(default)]
    pub credentials: Option<Vec<String>>,
    /// Grant kinds.
    #[serde(default)]
    pub grants: Option<Vec<String>>,
    /// Minted identity globs.
    #[serde(default)]
    pub identities: Option<Vec<String>>,
    /// Longest minted lifetime.
    #[serde(default)]
    pub max_ttl_seconds: Option<u32>,
    /// Whether the Admin service is covered.
    #[serde(default)]
    pub admin: bool,
    /// Rate limit per caller (its principal); every allow rule that covers
    /// a call charges its own limit.
    #[serde(default)]
    pub rate_limit: Option<RateLimitFile>,
}

impl RuleFile {
    /// What the rule says, in one line, for people (the console's health
    /// view): effect, callers, RPCs, credentials, grants, identities, TTL.
    pub fn summary(&self) -> String {
        let list = |items: &Option<Vec<String>>, every: &str| match items {
            None => every.to_owned(),
            Some(items) => items.join(", "),
        };
        let effect = match self.effect {
            Effect::Allow => "allow",
            Effect::Deny => "deny",
        };
        let mut text = format!(
            "{effect} {} to call {}{} on credentials {}",
            self.callers.join(", "),
            list(&self.rpcs, "every RPC"),
            if self.admin { " (Admin included)" } else { "" },
            list(&self.credentials, "*"),
        );
        if self.grants.is_some() {
            text.push_str(&format!("; grants {}", list(&self.grants, "*")));
        }
        if self.identities.is_some() {
            text.push_str(&format!("; identities {}", list(&self.identities, "*")));
        }
        if let Some(ttl) = self.max_ttl_seconds {
            text.push_str(&format!("; at most {ttl} s"));
        }
        if let Some(limit) = self.rate_limit {
            text.push_str(&format!("; {} calls/s", limit.per_second));
        }
        text
    }
}

impl PolicyFile {
    /// Reads and parses a policy file.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read policy file {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("invalid policy file {}", path.display()))
    }
}
