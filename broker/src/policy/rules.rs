//! Compiled rules and their evaluation.

use std::num::NonZeroU32;

use anyhow::Context as _;
use globset::{GlobSet, GlobSetBuilder};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::action::{Action, GrantKind, Rpc};
use super::file::{Effect, PolicyFile, RuleFile};
use crate::caller::Caller;
use crate::error::Error;

/// The pattern that matches callers without an identity.
pub const ANONYMOUS: &str = "anonymous";

/// A set of globs, or everything.
enum Matcher {
    Any,
    Globs(GlobSet),
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
            // `*` may cross `/` so that `spiffe://acme.org/*` covers nested paths.
            let glob = globset::GlobBuilder::new(pattern)
                .literal_separator(false)
                .build()
                .with_context(|| format!("{field}: bad pattern {pattern:?}"))?;
            set.add(glob);
        }
        Ok(Matcher::Globs(set.build()?))
    }

    fn matches(&self, value: &str) -> bool {
        match self {
            Matcher::Any => true,
            Matcher::Globs(set) => set.is_match(value),
        }
    }
}

struct Rule {
    name: String,
    effect: Effect,
    callers: GlobSet,
    anonymous: bool,
    rpcs: Option<Vec<Rpc>>,
    admin: bool,
    credentials: Matcher,
    grants: Option<Vec<GrantKind>>,
    identities: Matcher,
    max_ttl_seconds: u32,
    limiter: Option<DefaultKeyedRateLimiter<String>>,
}

impl Rule {
    fn compile(index: usize, file: &RuleFile) -> anyhow::Result<Self> {
        let name = file
            .name
            .clone()
            .unwrap_or_else(|| format!("rule #{}", index + 1));
        let at = |field: &str| format!("{name}: {field}");
        if file.callers.is_empty() {
            anyhow::bail!("{}: callers must name at least one identity pattern", name);
        }
        let mut callers = GlobSetBuilder::new();
        for pattern in &file.callers {
            let glob = globset::GlobBuilder::new(pattern)
                .literal_separator(false)
                .build()
                .with_context(|| format!("{}: bad pattern {pattern:?}", at("callers")))?;
            callers.add(glob);
        }
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
        let limiter = match file.rate_limit {
            None => None,
            Some(limit) => {
                let per_second = NonZeroU32::new(limit.per_second).with_context(|| {
                    format!("{}: per_second must be at least 1", at("rate_limit"))
                })?;
                let burst = NonZeroU32::new(limit.burst.unwrap_or(limit.per_second))
                    .with_context(|| format!("{}: burst must be at least 1", at("rate_limit")))?;
                Some(RateLimiter::keyed(
                    Quota::per_second(per_second).allow_burst(burst),
                ))
            }
        };
        Ok(Rule {
            effect: file.effect,
            anonymous: file.callers.iter().any(|c| c == ANONYMOUS),
            callers: callers.build()?,
            rpcs,
            admin: file.admin,
            credentials: Matcher::compile(&at("credentials"), file.credentials.as_deref())?,
            grants,
            identities: Matcher::compile(&at("identities"), file.identities.as_deref())?,
            max_ttl_seconds: file.max_ttl_seconds.unwrap_or(86_400),
            limiter,
            name,
        })
    }

    fn names_caller(&self, caller: &Caller) -> bool {
        match &caller.identity {
            None => self.anonymous,
            Some(identity) => identity.names().iter().any(|n| self.callers.is_match(n)),
        }
    }

    fn covers_rpc(&self, rpc: Option<Rpc>) -> bool {
        let Some(rpc) = rpc else { return true };
        let listed = self.rpcs.as_ref().is_none_or(|rpcs| rpcs.contains(&rpc));
        // Deny rules cover Admin RPCs by their RPC list alone; allow rules
        // also need `admin = true`.
        listed && (!rpc.is_admin() || self.admin || self.effect == Effect::Deny)
    }

    /// True when this rule covers every part of the action.
    fn covers(&self, action: &Action<'_>) -> bool {
        self.covers_rpc(action.rpc)
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
    rules: Vec<Rule>,
    allow_all: bool,
}

impl CompiledPolicy {
    /// `--dev`: everything allowed.
    pub fn allow_all() -> Self {
        CompiledPolicy {
            rules: Vec::new(),
            allow_all: true,
        }
    }

    /// Compiles a parsed file; errors name the rule and field.
    pub fn compile(file: &PolicyFile) -> anyhow::Result<Self> {
        let rules = file
            .rules
            .iter()
            .enumerate()
            .map(|(i, rule)| Rule::compile(i, rule))
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(CompiledPolicy {
            rules,
            allow_all: false,
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

    /// The decision for one request (and its rate-limit charge).
    pub fn authorize(&self, caller: &Caller, action: &Action<'_>) -> Result<(), Error> {
        if self.allow_all {
            return Ok(());
        }
        let mut named = self
            .rules
            .iter()
            .filter(|r| r.names_caller(caller))
            .peekable();
        if named.peek().is_none() {
            return Err(match caller.identity {
                None => Error::Unauthenticated(format!(
                    "{} needs a caller identity: connect over the broker's Unix socket or with a \
                     client certificate (mutual TLS)",
                    action.rpc.map(Rpc::as_str).unwrap_or("this call")
                )),
                Some(_) => denied(caller, action),
            });
        }
        let named: Vec<&Rule> = named.collect();
        if let Some(rule) = named
            .iter()
            .find(|r| r.effect == Effect::Deny && r.denies(action))
        {
            tracing::debug!(rule = %rule.name, "denied by an explicit deny rule");
            return Err(denied(caller, action));
        }
        let Some(rule) = named
            .iter()
            .find(|r| r.effect == Effect::Allow && r.covers(action))
        else {
            return Err(denied(caller, action));
        };
        if let Some(limiter) = &rule.limiter
            && limiter.check_key(&caller.principal().to_owned()).is_err()
        {
            return Err(Error::ResourceExhausted(format!(
                "caller {} is over its rate limit; retry later",
                caller.principal()
            )));
        }
        Ok(())
    }
}

fn denied(caller: &Caller, action: &Action<'_>) -> Error {
    Error::PermissionDenied(format!(
        "caller {} may not call {}",
        caller.principal(),
        action.describe()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::caller::{Identity, Transport};

    fn policy(text: &str) -> CompiledPolicy {
        CompiledPolicy::compile(&toml::from_str(text).expect("parses")).expect("compiles")
    }

    fn caller(identity: Option<Identity>) -> Caller {
        Caller::new(Transport::Tls, identity, "test".into())
    }

    fn web() -> Caller {
        caller(Some(Identity::Certificate(
            "spiffe://acme.org/web/frontend".into(),
        )))
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
            Err(Error::Unauthenticated(_)) => "unauthenticated",
            Err(Error::PermissionDenied(_)) => "denied",
            Err(Error::ResourceExhausted(_)) => "limited",
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
            &caller(None),
            Action::new(Rpc::Recommend),
            "unauthenticated",
        );
        let other = caller(Some(Identity::Certificate("spiffe://evil.org/x".into())));
        check(&other, Action::new(Rpc::Recommend), "denied");
        let root = caller(Some(Identity::Unix { uid: 0, gid: 0 }));
        check(&root, Action::new(Rpc::ListCredentials), "allow");
        check(
            &root,
            Action::new(Rpc::PutCredential).credential("prod-video-frozen"),
            "denied",
        );
        let user = caller(Some(Identity::Unix {
            uid: 1000,
            gid: 1000,
        }));
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
        let a = caller(Some(Identity::Unix { uid: 1, gid: 1 }));
        let b = caller(Some(Identity::Unix { uid: 2, gid: 2 }));
        let action = Action::new(Rpc::Recommend);
        assert!(p.authorize(&a, &action).is_ok());
        assert!(p.authorize(&a, &action).is_ok());
        assert!(matches!(
            p.authorize(&a, &action),
            Err(Error::ResourceExhausted(_))
        ));
        assert!(
            p.authorize(&b, &action).is_ok(),
            "another caller has its own bucket"
        );
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
