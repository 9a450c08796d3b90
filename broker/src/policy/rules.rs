//! Compiled rules and their evaluation.
//!
//! **Invariants** (property-tested in `rules_props.rs`):
//! - A caller pattern names one identity namespace; a certificate name can
//!   never match a `uid:`, `gid:` or anonymous pattern (see `crate::caller`).
//! - A deny rule whose callers include `*` applies to every caller,
//!   anonymous ones included, and a deny always beats an allow.
//! - Anonymous callers are named only by `anonymous` (plaintext loopback)
//!   and `anonymous-tls` (TLS without a certificate), never by a glob.
//! - Every allow rule that covers a call charges its rate limit; every
//!   refusal charges the source's refusal limit.

use std::num::NonZeroU32;
use std::time::Duration;

use anyhow::Context as _;
use globset::{GlobSet, GlobSetBuilder};
use governor::clock::Clock as _;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::action::{Action, GrantKind, Rpc};
use super::file::{CURRENT_VERSION, Effect, PolicyFile, RateLimitFile, RuleFile};
use crate::caller::{ANONYMOUS, ANONYMOUS_TLS, Caller, Identity, Source};
use crate::error::Error;

/// Namespaces a caller pattern may start with (besides the literals).
const NAMESPACES: [&str; 6] = ["uid:", "gid:", "spiffe://", "uri:", "dns:", "cn:"];

/// Default refusals per source: 20 per second, bursts of 200.
const DEFAULT_DENIAL_LIMIT: RateLimitFile = RateLimitFile {
    per_second: 20,
    burst: Some(200),
};

/// A set of globs, or everything.
enum Matcher {
    Any,
    Globs(GlobSet),
}

fn glob(pattern: &str) -> Result<globset::Glob, globset::Error> {
    // `*` may cross `/` so that `spiffe://acme.org/*` covers nested paths.
    globset::GlobBuilder::new(pattern)
        .literal_separator(false)
        .build()
}

impl Matcher {
    fn compile(field: &str, patterns: Option<&[String]>) -> anyhow::Result<Self> {
        let Some(patterns) = patterns else {
            return Ok(Matcher::Any);
        };
        if patterns.iter().any(|p| p == "*") {
            return Ok(Matcher::Any);
        }
        let mut set = GlobSetBuilder::new();
        for pattern in patterns {
            set.add(glob(pattern).with_context(|| format!("{field}: bad pattern {pattern:?}"))?);
        }
        Ok(Matcher::Globs(set.build()?))
    }

    fn matches(&self, value: &str) -> bool {
        match self {
            Matcher::Any => true,
            Matcher::Globs(set) => set.is_match(value),
        }
    }

    fn is_any(&self) -> bool {
        matches!(self, Matcher::Any)
    }
}

/// Who a rule names.
#[derive(Default)]
struct Callers {
    /// `*`: every identified caller (allow), every caller (deny).
    star: bool,
    /// `anonymous`: plaintext loopback callers.
    anonymous: bool,
    /// `anonymous-tls`: TLS callers without a certificate.
    anonymous_tls: bool,
    /// Globs over identity names (`uid:…`, `dns:…`, …).
    globs: Option<GlobSet>,
}

/// A note about a rule written in an older spelling, for `policy check`
/// and the start-up log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// The rule's name.
    pub rule: String,
    /// What to change.
    pub message: String,
}

impl Callers {
    fn compile(
        rule: &str,
        patterns: &[String],
        version: u32,
        effect: Effect,
        warnings: &mut Vec<Warning>,
    ) -> anyhow::Result<Self> {
        if patterns.is_empty() {
            anyhow::bail!("{rule}: callers must name at least one identity pattern");
        }
        let mut callers = Callers::default();
        let mut set = GlobSetBuilder::new();
        let mut any_glob = false;
        for pattern in patterns {
            let mut add = |p: &str| -> anyhow::Result<()> {
                set.add(
                    glob(p).with_context(|| format!("{rule}: callers: bad pattern {pattern:?}"))?,
                );
                any_glob = true;
                Ok(())
            };
            match pattern.as_str() {
                "*" => callers.star = true,
                ANONYMOUS => callers.anonymous = true,
                ANONYMOUS_TLS => callers.anonymous_tls = true,
                p if NAMESPACES.iter().any(|ns| p.starts_with(ns)) => add(p)?,
                p if version >= CURRENT_VERSION => anyhow::bail!(
                    "{rule}: callers: {p:?} names no identity namespace; write \"dns:{p}\" (a \
                     certificate's DNS SAN), \"cn:{p}\" (its CN), \"uri:{p}\" (a URI SAN), or \
                     uid:/gid:/spiffe://, anonymous, anonymous-tls"
                ),
                p => {
                    // Version 1: a bare pattern named a certificate name.
                    warnings.push(Warning {
                        rule: rule.to_owned(),
                        message: format!(
                            "caller pattern {p:?} is a bare certificate name (policy version 1); \
                             write \"dns:{p}\" or \"cn:{p}\" (or \"uri:{p}\") and set version = 2"
                        ),
                    });
                    for ns in ["dns:", "cn:", "uri:"] {
                        add(&format!("{ns}{p}"))?;
                    }
                }
            }
        }
        if effect == Effect::Deny && callers.star && version < CURRENT_VERSION {
            warnings.push(Warning {
                rule: rule.to_owned(),
                message: "a deny rule with callers = [\"*\"] now also applies to anonymous and \
                          anonymous-tls callers (it did not before version 2)"
                    .to_owned(),
            });
        }
        if any_glob {
            callers.globs = Some(set.build()?);
        }
        Ok(callers)
    }

    fn name(&self, caller: &Caller, effect: Effect) -> bool {
        match caller.identity {
            Identity::Anonymous => self.anonymous || (self.star && effect == Effect::Deny),
            Identity::AnonymousTls => self.anonymous_tls || (self.star && effect == Effect::Deny),
            Identity::Unix { .. } | Identity::Certificate(_) => {
                self.star
                    || self
                        .globs
                        .as_ref()
                        .is_some_and(|set| caller.names().iter().any(|n| set.is_match(n)))
            }
        }
    }
}

fn limiter<K: std::hash::Hash + Eq + Clone>(
    at: &str,
    limit: RateLimitFile,
) -> anyhow::Result<DefaultKeyedRateLimiter<K>> {
    let per_second = NonZeroU32::new(limit.per_second)
        .with_context(|| format!("{at}: per_second must be at least 1"))?;
    let burst = NonZeroU32::new(limit.burst.unwrap_or(limit.per_second))
        .with_context(|| format!("{at}: burst must be at least 1"))?;
    Ok(RateLimiter::keyed(
        Quota::per_second(per_second).allow_burst(burst),
    ))
}

struct Rule {
    name: String,
    /// What it says, for people ([`RuleFile::summary`]).
    summary: String,
    effect: Effect,
    callers: Callers,
    rpcs: Option<Vec<Rpc>>,
    admin: bool,
    credentials: Matcher,
    grants: Option<Vec<GrantKind>>,
    identities: Matcher,
    max_ttl_seconds: u32,
    limiter: Option<DefaultKeyedRateLimiter<String>>,
}

impl Rule {
    fn compile(
        index: usize,
        file: &RuleFile,
        version: u32,
        warnings: &mut Vec<Warning>,
    ) -> anyhow::Result<Self> {
        let name = file
            .name
            .clone()
            .unwrap_or_else(|| format!("rule #{}", index + 1));
        let at = |field: &str| format!("{name}: {field}");
        let callers = Callers::compile(&name, &file.callers, version, file.effect, warnings)?;
        let rpcs = match &file.rpcs {
            None => None,
            Some(list) if list.iter().any(|r| r == "*") => None,
            Some(list) => Some(
                list.iter()
                    .map(|r| {
                        Rpc::parse(r).with_context(|| {
                            let known: Vec<_> = Rpc::ALL.iter().map(|r| r.as_str()).collect();
                            format!(
                                "{}: unknown RPC {r:?} (known: {})",
                                at("rpcs"),
                                known.join(", ")
                            )
                        })
                    })
                    .collect::<anyhow::Result<Vec<_>>>()?,
            ),
        };
        let grants = match &file.grants {
            None => None,
            Some(list) if list.iter().any(|g| g == "*") => None,
            Some(list) => Some(
                list.iter()
                    .map(|g| {
                        GrantKind::parse(g).with_context(|| {
                            format!(
                                "{}: unknown grant kind {g:?} (known: voice, video, chat, sync, task_router, playback)",
                                at("grants")
                            )
                        })
                    })
                    .collect::<anyhow::Result<Vec<_>>>()?,
            ),
        };
        let limiter = file
            .rate_limit
            .map(|limit| limiter(&at("rate_limit"), limit))
            .transpose()?;
        Ok(Rule {
            effect: file.effect,
            callers,
            rpcs,
            admin: file.admin,
            credentials: Matcher::compile(&at("credentials"), file.credentials.as_deref())?,
            grants,
            identities: Matcher::compile(&at("identities"), file.identities.as_deref())?,
            max_ttl_seconds: file.max_ttl_seconds.unwrap_or(86_400),
            limiter,
            summary: file.summary(),
            name,
        })
    }

    fn names_caller(&self, caller: &Caller) -> bool {
        self.callers.name(caller, self.effect)
    }

    fn covers_rpc(&self, rpc: Option<Rpc>) -> bool {
        let Some(rpc) = rpc else { return true };
        let listed = self.rpcs.as_ref().is_none_or(|rpcs| rpcs.contains(&rpc));
        // Deny rules cover Admin RPCs by their RPC list alone; allow rules
        // also need `admin = true`.
        listed && (!rpc.is_admin() || self.admin || self.effect == Effect::Deny)
    }

    /// True when this allow rule covers every part of the action. An RPC
    /// that acts on every credential at once (ReloadPolicy) needs a rule
    /// with no credential limit.
    fn covers(&self, action: &Action<'_>) -> bool {
        let unscoped_ok =
            !action.rpc.is_some_and(Rpc::acts_on_every_credential) || self.credentials.is_any();
        unscoped_ok
            && self.covers_rpc(action.rpc)
            && action
                .credential
                .is_none_or(|c| self.credentials.matches(c))
            && action.identity.is_none_or(|i| self.identities.matches(i))
            && self
                .grants
                .as_ref()
                .is_none_or(|allowed| action.grants.iter().all(|g| allowed.contains(g)))
            && action
                .ttl_seconds
                .is_none_or(|ttl| ttl <= self.max_ttl_seconds)
    }

    /// For deny rules: every dimension the rule restricts is present in the
    /// action and matches (a rule on credentials `root-*` does not deny a call
    /// that names no credential); grants match when any requested grant is listed.
    fn denies(&self, action: &Action<'_>) -> bool {
        let restricted = |matcher: &Matcher, value: Option<&str>| match matcher {
            Matcher::Any => true,
            Matcher::Globs(_) => value.is_some_and(|v| matcher.matches(v)),
        };
        self.covers_rpc(action.rpc)
            && restricted(&self.credentials, action.credential)
            && restricted(&self.identities, action.identity)
            && self
                .grants
                .as_ref()
                .is_none_or(|denied| action.grants.iter().any(|g| denied.contains(g)))
    }
}

/// A compiled policy.
pub struct CompiledPolicy {
    /// When it was compiled (loaded or reloaded).
    loaded_at: std::time::SystemTime,
    rules: Vec<Rule>,
    allow_all: bool,
    denials: Option<DefaultKeyedRateLimiter<Source>>,
    warnings: Vec<Warning>,
}

/// What the rules say about one action, before any rate limit.
enum Verdict<'r> {
    /// Allowed by these rules (each may carry a rate limit).
    Allow(Vec<&'r Rule>),
    /// No rule names this anonymous caller.
    Unauthenticated,
    /// Denied (explicitly, or no allow rule covers it).
    Denied,
}

impl CompiledPolicy {
    /// `--dev`: everything allowed.
    pub fn allow_all() -> Self {
        CompiledPolicy {
            loaded_at: std::time::SystemTime::now(),
            rules: Vec::new(),
            allow_all: true,
            denials: None,
            warnings: Vec::new(),
        }
    }

    /// Compiles a parsed file; errors name the rule and field.
    pub fn compile(file: &PolicyFile) -> anyhow::Result<Self> {
        let version = file.version.unwrap_or(1);
        if !(1..=CURRENT_VERSION).contains(&version) {
            anyhow::bail!(
                "version {version} is not a policy format this broker knows (1 or {CURRENT_VERSION})"
            );
        }
        let mut warnings = Vec::new();
        let rules = file
            .rules
            .iter()
            .enumerate()
            .map(|(i, rule)| Rule::compile(i, rule, version, &mut warnings))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let denials = limiter(
            "denial_rate_limit",
            file.denial_rate_limit.unwrap_or(DEFAULT_DENIAL_LIMIT),
        )?;
        Ok(CompiledPolicy {
            loaded_at: std::time::SystemTime::now(),
            rules,
            allow_all: false,
            denials: Some(denials),
            warnings,
        })
    }

    /// Number of rules.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// True when no rule is in force.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Names of the allow rules that name `anonymous` (plaintext loopback
    /// callers), for `policy check` beside TLS listeners.
    pub fn anonymous_allow_rules(&self) -> Vec<&str> {
        self.rules
            .iter()
            .filter(|r| r.effect == Effect::Allow && r.callers.anonymous)
            .map(|r| r.name.as_str())
            .collect()
    }

    /// Each rule's name and what it says, in file order (the console).
    pub fn rule_summaries(&self) -> Vec<(&str, &str)> {
        self.rules
            .iter()
            .map(|r| (r.name.as_str(), r.summary.as_str()))
            .collect()
    }

    /// When this policy was loaded.
    pub fn loaded_at(&self) -> std::time::SystemTime {
        self.loaded_at
    }

    /// True for `--dev`'s allow-all policy.
    pub fn allows_all(&self) -> bool {
        self.allow_all
    }

    /// Rules written in an older spelling, and what to write instead.
    pub fn warnings(&self) -> &[Warning] {
        &self.warnings
    }

    fn verdict(&self, caller: &Caller, action: &Action<'_>) -> Verdict<'_> {
        if self.allow_all {
            return Verdict::Allow(Vec::new());
        }
        let mut named = self.rules.iter().filter(|r| r.names_caller(caller));
        let mut allows = Vec::new();
        let mut any_allow_names = false;
        for rule in named.by_ref() {
            match rule.effect {
                Effect::Deny if rule.denies(action) => {
                    tracing::debug!(rule = %rule.name, "denied by an explicit deny rule");
                    return Verdict::Denied;
                }
                Effect::Deny => {}
                Effect::Allow => {
                    any_allow_names = true;
                    if rule.covers(action) {
                        allows.push(rule);
                    }
                }
            }
        }
        if !allows.is_empty() {
            Verdict::Allow(allows)
        } else if !any_allow_names && caller.identity.is_anonymous() {
            Verdict::Unauthenticated
        } else {
            Verdict::Denied
        }
    }

    /// True when the rules allow `action` (no rate limit is charged): used
    /// to show a scoped admin only the credentials its rules cover.
    pub fn permits(&self, caller: &Caller, action: &Action<'_>) -> bool {
        matches!(self.verdict(caller, action), Verdict::Allow(_))
    }

    /// The decision for one request: every covering rule's rate limit is
    /// charged on allow, the source's refusal limit on refusal.
    pub fn authorize(&self, caller: &Caller, action: &Action<'_>) -> Result<(), Error> {
        let refusal = match self.verdict(caller, action) {
            Verdict::Allow(rules) => {
                // Every covering limit is charged; the longest wait is the one to report.
                let mut wait: Option<Duration> = None;
                for limiter in rules.iter().filter_map(|r| r.limiter.as_ref()) {
                    if let Err(not_until) = limiter.check_key(&caller.principal().to_owned()) {
                        let this = not_until.wait_time_from(limiter.clock().now());
                        wait = Some(wait.map_or(this, |w| w.max(this)));
                    }
                }
                if let Some(retry_after) = wait {
                    return Err(Error::RateLimited {
                        caller: caller.principal().to_owned(),
                        retry_after,
                    });
                }
                return Ok(());
            }
            Verdict::Unauthenticated => Error::IdentityRequired {
                rpc: action.rpc.map(Rpc::as_str).unwrap_or("this call"),
            },
            Verdict::Denied => Error::Denied {
                caller: caller.principal().to_owned(),
                action: action.describe(),
            },
        };
        match self.charge_refusal(caller) {
            Some(limited) => Err(limited),
            None => Err(refusal),
        }
    }

    /// Forgets rate-limit state of callers and sources that are back to a
    /// full bucket, so that many distinct callers (or source addresses)
    /// cannot grow memory without bound. Run periodically.
    pub fn forget_idle_callers(&self) {
        for limiter in self.rules.iter().filter_map(|r| r.limiter.as_ref()) {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        if let Some(denials) = &self.denials {
            denials.retain_recent();
            denials.shrink_to_fit();
        }
    }

    /// Charges one refused call (denied, unauthenticated or invalid) to the
    /// caller's source; `Some` when the source is over its refusal limit.
    pub fn charge_refusal(&self, caller: &Caller) -> Option<Error> {
        let denials = self.denials.as_ref()?;
        denials
            .check_key(&caller.source)
            .err()
            .map(|not_until| Error::TooManyRefusals {
                source_addr: caller.source.to_string(),
                retry_after: not_until.wait_time_from(denials.clock().now()),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::caller::{CertName, Identity, Transport};

    fn policy(text: &str) -> CompiledPolicy {
        CompiledPolicy::compile(&toml::from_str(text).expect("parses")).expect("compiles")
    }

    fn caller(identity: Identity) -> Caller {
        let transport = match identity {
            Identity::Unix { .. } => Transport::Unix,
            Identity::Anonymous => Transport::Plaintext,
            _ => Transport::Tls,
        };
        let source = match identity {
            Identity::Unix { uid, .. } => Source::Uid(uid),
            _ => Source::Ip("127.0.0.1".parse().expect("ip")),
        };
        Caller::new(transport, identity, "test".into(), source)
    }

    fn cert(names: &[CertName]) -> Caller {
        caller(Identity::Certificate(names.to_vec()))
    }

    fn web() -> Caller {
        cert(&[CertName::Spiffe("spiffe://acme.org/web/frontend".into())])
    }

    fn mint<'a>(
        credential: &'a str,
        identity: &'a str,
        grants: &[GrantKind],
        ttl: u32,
    ) -> Action<'a> {
        Action {
            rpc: Some(Rpc::MintAccessToken),
            credential: Some(credential),
            grants: grants.to_vec(),
            identity: Some(identity),
            ttl_seconds: Some(ttl),
        }
    }

    const POLICY: &str = r#"
        [[rule]]
        callers = ["spiffe://acme.org/web/*"]
        rpcs = ["MintAccessToken", "Recommend"]
        credentials = ["prod-video-*"]
        grants = ["video"]
        identities = ["user-*"]
        max_ttl_seconds = 3600

        [[rule]]
        callers = ["uid:0"]
        admin = true

        [[rule]]
        callers = ["*"]
        effect = "deny"
        credentials = ["prod-video-frozen"]
    "#;

    /// (caller, action, expected outcome) through one helper.
    fn check(caller: &Caller, action: Action<'_>, expected: &str) {
        let got = match policy(POLICY).authorize(caller, &action) {
            Ok(()) => "allow",
            Err(Error::IdentityRequired { .. }) => "unauthenticated",
            Err(Error::Denied { .. }) => "denied",
            Err(Error::RateLimited { .. } | Error::TooManyRefusals { .. }) => "limited",
            Err(other) => panic!("unexpected {other}"),
        };
        assert_eq!(got, expected, "{}", action.describe());
    }

    #[test]
    fn deny_by_default_explicit_deny_wins_and_every_dimension_counts() {
        let video = [GrantKind::Video];
        check(
            &web(),
            mint("prod-video-1", "user-1", &video, 3600),
            "allow",
        );
        check(
            &web(),
            mint("prod-video-1", "user-1", &video, 3601),
            "denied",
        );
        check(&web(), mint("prod-video-1", "admin", &video, 60), "denied");
        check(
            &web(),
            mint("prod-video-1", "user-1", &[GrantKind::Voice], 60),
            "denied",
        );
        check(&web(), mint("prod-voice-1", "user-1", &video, 60), "denied");
        check(
            &web(),
            mint("prod-video-frozen", "user-1", &video, 60),
            "denied",
        );
        check(
            &web(),
            Action::new(Rpc::GetBearer).credential("prod-video-1"),
            "denied",
        );
        check(&web(), Action::new(Rpc::ListCredentials), "denied");
        check(
            &caller(Identity::Anonymous),
            Action::new(Rpc::Recommend),
            "unauthenticated",
        );
        let other = cert(&[CertName::Spiffe("spiffe://evil.org/x".into())]);
        check(&other, Action::new(Rpc::Recommend), "denied");
        let root = caller(Identity::Unix { uid: 0, gid: 0 });
        check(&root, Action::new(Rpc::ListCredentials), "allow");
        check(
            &root,
            Action::new(Rpc::PutCredential).credential("prod-video-frozen"),
            "denied",
        );
        let user = caller(Identity::Unix {
            uid: 1000,
            gid: 1000,
        });
        check(&user, Action::new(Rpc::ListCredentials), "denied");
    }

    #[test]
    fn rate_limits_are_per_caller() {
        let p = policy(
            r#"
            [[rule]]
            callers = ["uid:*"]
            rpcs = ["Recommend"]
            rate_limit = { per_second = 1, burst = 2 }
        "#,
        );
        let a = caller(Identity::Unix { uid: 1, gid: 1 });
        let b = caller(Identity::Unix { uid: 2, gid: 2 });
        let action = Action::new(Rpc::Recommend);
        assert!(p.authorize(&a, &action).is_ok());
        assert!(p.authorize(&a, &action).is_ok());
        assert!(matches!(
            p.authorize(&a, &action),
            Err(Error::RateLimited { .. } | Error::TooManyRefusals { .. })
        ));
        assert!(
            p.authorize(&b, &action).is_ok(),
            "another caller has its own bucket"
        );
    }

    #[test]
    fn certificate_names_never_reach_the_kernel_namespace() {
        // Issue 12 item 2: a certificate whose CN or URI SAN was `uid:0`
        // matched `callers = ["uid:0"]` and got Admin.
        let p = policy("version = 2\n[[rule]]\ncallers = [\"uid:0\"]\nadmin = true\n");
        for names in [
            vec![CertName::Cn("uid:0".into())],
            vec![CertName::Uri("uid:0".into())],
        ] {
            let posing = cert(&names);
            assert!(
                p.authorize(&posing, &Action::new(Rpc::ListCredentials))
                    .is_err()
            );
        }
        let root = caller(Identity::Unix { uid: 0, gid: 0 });
        assert!(
            p.authorize(&root, &Action::new(Rpc::ListCredentials))
                .is_ok()
        );
    }

    #[test]
    fn a_deny_on_any_certificate_name_applies() {
        let p = policy(
            r#"
            version = 2
            [[rule]]
            callers = ["spiffe://acme.org/*"]
            rpcs = ["Recommend"]
            [[rule]]
            callers = ["dns:compromised.acme.org"]
            effect = "deny"
        "#,
        );
        let good = cert(&[
            CertName::Spiffe("spiffe://acme.org/web".into()),
            CertName::Dns("web.acme.org".into()),
        ]);
        let bad = cert(&[
            CertName::Spiffe("spiffe://acme.org/web".into()),
            CertName::Dns("compromised.acme.org".into()),
        ]);
        assert!(p.authorize(&good, &Action::new(Rpc::Recommend)).is_ok());
        assert!(matches!(
            p.authorize(&bad, &Action::new(Rpc::Recommend)),
            Err(Error::Denied { .. })
        ));
    }

    #[test]
    fn deny_star_covers_anonymous_callers_and_anonymous_is_one_thing() {
        // Issue 12 item 3a: "nobody touches break-glass" held for everyone
        // but anonymous callers.
        let p = policy(
            r#"
            version = 2
            [[rule]]
            callers = ["anonymous", "anonymous-tls"]
            rpcs = ["GetBearer"]
            [[rule]]
            callers = ["*"]
            effect = "deny"
            credentials = ["break-glass"]
        "#,
        );
        for who in [Identity::Anonymous, Identity::AnonymousTls] {
            let anonymous = caller(who);
            let bearer = |c| Action::new(Rpc::GetBearer).credential(c);
            assert!(p.authorize(&anonymous, &bearer("ordinary")).is_ok());
            assert!(matches!(
                p.authorize(&anonymous, &bearer("break-glass")),
                Err(Error::Denied { .. })
            ));
        }
        // Item 3b: `anonymous` is plaintext loopback only.
        let local_only = policy("version = 2\n[[rule]]\ncallers = [\"anonymous\"]\n");
        let recommend = Action::new(Rpc::Recommend);
        assert!(
            local_only
                .authorize(&caller(Identity::Anonymous), &recommend)
                .is_ok()
        );
        assert!(matches!(
            local_only.authorize(&caller(Identity::AnonymousTls), &recommend),
            Err(Error::IdentityRequired { .. })
        ));
        // An allow `*` names identified callers only.
        let star = policy("version = 2\n[[rule]]\ncallers = [\"*\"]\n");
        assert!(
            star.authorize(&caller(Identity::Anonymous), &recommend)
                .is_err()
        );
        assert!(star.authorize(&web(), &recommend).is_ok());
    }

    #[test]
    fn scoped_admins_cannot_reload_and_see_only_their_credentials() {
        // Issue 12 item 4.
        let p = policy(
            r#"
            version = 2
            [[rule]]
            callers = ["uid:1000"]
            admin = true
            credentials = ["team-a-*"]
        "#,
        );
        let admin = caller(Identity::Unix {
            uid: 1000,
            gid: 1000,
        });
        assert!(
            p.authorize(&admin, &Action::new(Rpc::ListCredentials))
                .is_ok()
        );
        assert!(matches!(
            p.authorize(&admin, &Action::new(Rpc::ReloadPolicy)),
            Err(Error::Denied { .. })
        ));
        let listed = |name| p.permits(&admin, &Action::new(Rpc::ListCredentials).credential(name));
        assert!(listed("team-a-key"));
        assert!(!listed("team-b-key"));
        let full = policy("version = 2\n[[rule]]\ncallers = [\"uid:1000\"]\nadmin = true\n");
        assert!(
            full.authorize(&admin, &Action::new(Rpc::ReloadPolicy))
                .is_ok()
        );
    }

    #[test]
    fn every_applicable_limiter_is_charged_whatever_the_order() {
        // Issue 12 item 5: only the first matching allow rule was charged.
        for order in [[0, 1], [1, 0]] {
            let rules = [
                "[[rule]]\ncallers = [\"uid:*\"]\nrpcs = [\"Recommend\"]\n",
                "[[rule]]\ncallers = [\"uid:1\"]\nrpcs = [\"Recommend\"]\nrate_limit = { per_second = 1, burst = 2 }\n",
            ];
            let text = format!("version = 2\n{}{}", rules[order[0]], rules[order[1]]);
            let p = policy(&text);
            let a = caller(Identity::Unix { uid: 1, gid: 1 });
            let action = Action::new(Rpc::Recommend);
            let codes: Vec<bool> = (0..4).map(|_| p.authorize(&a, &action).is_ok()).collect();
            assert_eq!(codes, [true, true, false, false], "order {order:?}");
        }
    }

    #[test]
    fn refusals_are_limited_per_source() {
        let p = policy(
            "version = 2\ndenial_rate_limit = { per_second = 1, burst = 3 }\n[[rule]]\ncallers = [\"uid:1\"]\nrpcs = [\"Recommend\"]\n",
        );
        let flooder = caller(Identity::Unix { uid: 2, gid: 2 });
        let action = Action::new(Rpc::GetBearer).credential("x");
        let outcomes: Vec<_> = (0..5)
            .map(|_| match p.authorize(&flooder, &action) {
                Err(Error::Denied { .. }) => "denied",
                Err(Error::RateLimited { .. } | Error::TooManyRefusals { .. }) => "limited",
                _ => "other",
            })
            .collect();
        assert_eq!(
            outcomes,
            ["denied", "denied", "denied", "limited", "limited"]
        );
        let other = caller(Identity::Unix { uid: 3, gid: 3 });
        assert!(matches!(
            p.authorize(&other, &action),
            Err(Error::Denied { .. })
        ));
        let allowed = caller(Identity::Unix { uid: 1, gid: 1 });
        assert!(p.authorize(&allowed, &Action::new(Rpc::Recommend)).is_ok());
    }

    #[test]
    fn version_2_refuses_bare_names_and_version_1_warns() {
        let file: PolicyFile =
            toml::from_str("version = 2\n[[rule]]\ncallers = [\"web.acme.internal\"]\n")
                .expect("parses");
        let err = CompiledPolicy::compile(&file).err().expect("bare name");
        assert!(
            format!("{err:#}").contains("dns:web.acme.internal"),
            "{err:#}"
        );
        let legacy = policy(
            "[[rule]]\ncallers = [\"web.acme.internal\"]\nrpcs = [\"Recommend\"]\n[[rule]]\ncallers = [\"*\"]\neffect = \"deny\"\ncredentials = [\"x\"]\n",
        );
        assert_eq!(legacy.warnings().len(), 2, "{:?}", legacy.warnings());
        let dns = cert(&[CertName::Dns("web.acme.internal".into())]);
        assert!(legacy.authorize(&dns, &Action::new(Rpc::Recommend)).is_ok());
    }

    #[test]
    fn rules_summarise_what_they_allow() {
        let p = policy(
            "version = 2\n[[rule]]\nname = \"web\"\ncallers = [\"uid:1\"]\n\
             rpcs = [\"MintAccessToken\"]\ncredentials = [\"prod-*\"]\ngrants = [\"video\"]\n\
             max_ttl_seconds = 60\n[[rule]]\ncallers = [\"uid:0\"]\nadmin = true\n",
        );
        assert_eq!(
            p.rule_summaries(),
            [
                (
                    "web",
                    "allow uid:1 to call MintAccessToken on credentials prod-*; grants video; \
                     at most 60 s"
                ),
                (
                    "rule #2",
                    "allow uid:0 to call every RPC (Admin included) on credentials *"
                ),
            ]
        );
        assert!(p.loaded_at() <= std::time::SystemTime::now());
        assert!(!p.allows_all() && CompiledPolicy::allow_all().allows_all());
    }

    #[test]
    fn the_example_policy_is_current_and_clean() {
        let example = policy(include_str!("../../../policy.example.toml"));
        assert!(example.warnings().is_empty(), "{:?}", example.warnings());
        assert!(example.anonymous_allow_rules().is_empty());
        // Its break-glass deny covers anonymous callers too.
        let anonymous = caller(Identity::Anonymous);
        let action = Action::new(Rpc::GetBearer).credential("break-glass-1");
        assert!(matches!(
            example.authorize(&anonymous, &action),
            Err(Error::Denied { .. })
        ));
    }

    #[test]
    fn bad_files_name_the_rule_and_field() {
        for (text, needle) in [
            ("[[rule]]\ncallers = []", "callers"),
            (
                "[[rule]]\ncallers = [\"x\"]\nrpcs = [\"Nope\"]",
                "unknown RPC \"Nope\"",
            ),
            (
                "[[rule]]\ncallers = [\"x\"]\ngrants = [\"fax\"]",
                "unknown grant kind",
            ),
            ("[[rule]]\ncallers = [\"[\"]", "bad pattern"),
            (
                "[[rule]]\ncallers = [\"x\"]\nrate_limit = { per_second = 0 }",
                "per_second",
            ),
        ] {
            let file: PolicyFile = toml::from_str(text).expect("parses");
            let err = CompiledPolicy::compile(&file).err().expect(needle);
            assert!(format!("{err:#}").contains(needle), "{err:#}");
        }
        assert!(toml::from_str::<PolicyFile>("[[rule]]\ncallers=[\"x\"]\nadmn = true").is_err());
    }
}
