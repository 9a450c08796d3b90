//! Property tests of the policy evaluator (issue 9) over random policies,
//! callers and actions: deny wins over any allow, a caller no rule names is
//! refused, adding an allow never takes a permission away, adding a deny
//! never grants one, and an allow covering an action covers every narrower
//! action (fewer grants, a shorter lifetime). Issue 12: over random
//! identities from every namespace, no certificate name ever matches a
//! `uid:`/`gid:`/`anonymous` pattern, and a deny `*` always wins.

use proptest::prelude::*;

use super::action::{Action, GrantKind, Rpc};
use super::file::PolicyFile;
use super::rules::CompiledPolicy;
use crate::caller::{Caller, CertName, Identity, Source, Transport};
use crate::error::Error;

const CALLER_PATTERNS: [&str; 10] = [
    "uid:*",
    "uid:0",
    "gid:50",
    "spiffe://acme.org/*",
    "spiffe://acme.org/web/a",
    "dns:*.acme.org",
    "cn:web",
    "*",
    "anonymous",
    "anonymous-tls",
];
const CREDENTIALS: [&str; 3] = ["prod-video-1", "prod-voice-2", "dev-1"];
const CREDENTIAL_PATTERNS: [&str; 4] = ["prod-*", "prod-video-1", "dev-*", "*"];
const IDENTITIES: [&str; 2] = ["user-1", "admin"];

/// One generated rule, rendered as TOML.
fn rule() -> impl Strategy<Value = String> {
    (
        prop::sample::subsequence(CALLER_PATTERNS.to_vec(), 1..=3),
        any::<bool>(),
        prop::option::of(prop::sample::subsequence(Rpc::ALL.to_vec(), 1..=4)),
        any::<bool>(),
        prop::option::of(prop::sample::subsequence(
            CREDENTIAL_PATTERNS.to_vec(),
            1..=2,
        )),
        prop::option::of(prop::sample::subsequence(GrantKind::ALL.to_vec(), 1..=3)),
        prop::option::of(prop::sample::select(vec!["user-*", "*", "admin"])),
        prop::option::of(60u32..7200),
    )
        .prop_map(|(callers, deny, rpcs, admin, creds, grants, ident, ttl)| {
            let list = |items: Vec<&str>| {
                let quoted: Vec<_> = items.iter().map(|i| format!("{i:?}")).collect();
                format!("[{}]", quoted.join(", "))
            };
            let mut text = format!("[[rule]]\ncallers = {}\n", list(callers));
            if deny {
                text.push_str("effect = \"deny\"\n");
            }
            if let Some(rpcs) = rpcs {
                text.push_str(&format!(
                    "rpcs = {}\n",
                    list(rpcs.iter().map(|r| r.as_str()).collect())
                ));
            }
            if admin {
                text.push_str("admin = true\n");
            }
            if let Some(creds) = creds {
                text.push_str(&format!("credentials = {}\n", list(creds)));
            }
            if let Some(grants) = grants {
                text.push_str(&format!(
                    "grants = {}\n",
                    list(grants.iter().map(|g| g.as_str()).collect())
                ));
            }
            if let Some(ident) = ident {
                text.push_str(&format!("identities = [{ident:?}]\n"));
            }
            if let Some(ttl) = ttl {
                text.push_str(&format!("max_ttl_seconds = {ttl}\n"));
            }
            text
        })
}

fn caller() -> impl Strategy<Value = Caller> {
    prop::sample::select(vec![
        Identity::Anonymous,
        Identity::AnonymousTls,
        Identity::Unix { uid: 0, gid: 0 },
        Identity::Unix { uid: 1000, gid: 50 },
        Identity::Certificate(vec![CertName::Spiffe("spiffe://acme.org/web/a".into())]),
        Identity::Certificate(vec![CertName::Spiffe("spiffe://evil.org/x".into())]),
        Identity::Certificate(vec![
            CertName::Dns("web.acme.org".into()),
            CertName::Cn("web".into()),
        ]),
    ])
    .prop_map(|identity| Caller::new(Transport::Tls, identity, "prop".into(), Source::Unknown))
}

/// A random certificate name in any of the certificate namespaces, its raw
/// value drawn to look like other namespaces as often as not.
fn cert_name() -> impl Strategy<Value = CertName> {
    let raw = prop_oneof![
        "(uid|gid|UID|Gid):[0-9]{1,5}",
        "(anonymous|anonymous-tls|Anonymous)",
        "(dns|cn|uri|spiffe):[a-z0-9.]{0,12}",
        "[a-z0-9.*:/-]{1,24}",
    ];
    (0..4u8, raw).prop_map(|(kind, raw)| match kind {
        0 => CertName::Spiffe(format!("spiffe://{raw}")),
        1 => CertName::Uri(raw),
        2 => CertName::Dns(raw),
        _ => CertName::Cn(raw),
    })
}

/// An action with owned parts (`Action` borrows).
#[derive(Debug, Clone)]
struct Act {
    rpc: Rpc,
    credential: Option<&'static str>,
    grants: Vec<GrantKind>,
    identity: Option<&'static str>,
    ttl: Option<u32>,
}

impl Act {
    fn action(&self) -> Action<'static> {
        Action {
            rpc: Some(self.rpc),
            credential: self.credential,
            grants: self.grants.clone(),
            identity: self.identity,
            ttl_seconds: self.ttl,
        }
    }
}

fn act() -> impl Strategy<Value = Act> {
    (
        prop::sample::select(Rpc::ALL.to_vec()),
        prop::option::of(prop::sample::select(CREDENTIALS.to_vec())),
        prop::sample::subsequence(GrantKind::ALL.to_vec(), 0..=3),
        prop::option::of(prop::sample::select(IDENTITIES.to_vec())),
        prop::option::of(1u32..8000),
    )
        .prop_map(|(rpc, credential, grants, identity, ttl)| Act {
            rpc,
            credential,
            grants,
            identity,
            ttl,
        })
}

fn compile(rules: &[String]) -> CompiledPolicy {
    let file: PolicyFile = toml::from_str(&rules.concat()).expect("generated policy parses");
    CompiledPolicy::compile(&file).expect("generated policy compiles")
}

/// "allow", "denied" or "unauthenticated".
fn decide(rules: &[String], caller: &Caller, act: &Act) -> &'static str {
    match compile(rules).authorize(caller, &act.action()) {
        Ok(()) => "allow",
        Err(Error::Denied { .. }) => "denied",
        Err(Error::IdentityRequired { .. }) => "unauthenticated",
        Err(other) => panic!("unexpected decision {other}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1_000))]

    /// A deny rule naming the caller with no other restriction beats every allow.
    #[test]
    fn deny_wins_over_any_allow(rules in prop::collection::vec(rule(), 0..5), caller in caller(), act in act()) {
        let mut with_deny = rules.clone();
        with_deny.push("[[rule]]\ncallers = [\"*\"]\neffect = \"deny\"\n".to_owned());
        prop_assert_eq!(decide(&with_deny, &caller, &act), "denied");
    }

    /// With no rule naming the caller: UNAUTHENTICATED without an identity,
    /// PERMISSION_DENIED with one.
    #[test]
    fn unnamed_callers_are_refused(rules in prop::collection::vec(rule(), 0..5), act in act()) {
        let stranger = Caller::new(
            Transport::Tls,
            Identity::Certificate(vec![CertName::Spiffe("spiffe://stranger.net/z".into())]),
            "prop".into(),
            Source::Unknown,
        );
        let rules: Vec<String> = rules.into_iter().filter(|r| !r.contains("\"*\"") || !r.starts_with("[[rule]]\ncallers = [\"*\"")).collect();
        let rules: Vec<String> = rules.into_iter().filter(|r| !r.lines().nth(1).is_some_and(|l| l.contains("\"*\""))).collect();
        prop_assert_eq!(decide(&rules, &stranger, &act), "denied");
        let anonymous = Caller::new(Transport::Plaintext, Identity::Anonymous, "prop".into(), Source::Unknown);
        let rules: Vec<String> = rules.into_iter().filter(|r| !r.lines().nth(1).is_some_and(|l| l.contains("anonymous"))).collect();
        prop_assert_eq!(decide(&rules, &anonymous, &act), "unauthenticated");
    }

    /// A certificate is either refused at the transport or none of its
    /// names matches a kernel or anonymous pattern, whatever its raw names.
    #[test]
    fn certificate_names_never_match_kernel_or_anonymous_patterns(names in prop::collection::vec(cert_name(), 1..4), act in act()) {
        if names.iter().any(|n| n.refusal().is_some()) {
            return Ok(());
        }
        let caller = Caller::new(Transport::Tls, Identity::Certificate(names), "prop".into(), Source::Unknown);
        for pattern in ["uid:*", "gid:*", "uid:0", "anonymous", "anonymous-tls"] {
            let rules = vec![format!("[[rule]]\ncallers = [{pattern:?}]\nadmin = true\n")];
            prop_assert_ne!(decide(&rules, &caller, &act), "allow", "{} matched {:?}", pattern, caller.names());
        }
    }

    /// Adding an allow rule never takes a permission away; adding a deny
    /// rule never grants one.
    #[test]
    fn rules_are_monotonic(rules in prop::collection::vec(rule(), 0..5), extra in rule(), caller in caller(), act in act()) {
        let before = decide(&rules, &caller, &act);
        let mut after_rules = rules.clone();
        after_rules.push(extra.clone());
        let after = decide(&after_rules, &caller, &act);
        if extra.contains("effect = \"deny\"") {
            prop_assert!(!(before != "allow" && after == "allow"), "a deny rule granted {:?}", act);
        } else {
            prop_assert!(!(before == "allow" && after != "allow"), "an allow rule revoked {:?}", act);
        }
    }

    /// An allowed action stays allowed when it asks for less: a subset of
    /// its grants and a shorter lifetime.
    #[test]
    fn allow_covers_narrower_actions(rules in prop::collection::vec(rule(), 1..5), caller in caller(), act in act(), keep in prop::sample::subsequence((0..3usize).collect::<Vec<_>>(), 0..=3), shorter in 0u32..8000) {
        // Most random policies deny; narrowing only says something about allows.
        if decide(&rules, &caller, &act) != "allow" {
            return Ok(());
        }
        let narrower = Act {
            grants: keep.iter().filter_map(|i| act.grants.get(*i).copied()).collect(),
            ttl: act.ttl.map(|t| t.min(shorter.max(1))),
            ..act.clone()
        };
        prop_assert_eq!(decide(&rules, &caller, &narrower), "allow", "{:?} allowed but {:?} not", act, narrower);
    }
}
