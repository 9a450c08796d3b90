//! Doctor's rules: what counts as a Twilio secret or SID in a source, when
//! the environment looks like production, and the table of findings with
//! stable ids, severities and what to do instead.

use secrecy::ExposeSecret as _;

use super::rules::finding;
use super::scan::{Assignment, normal_name};
use super::vcs::Vcs;
use super::{Finding, Options, Source, redact};
use crate::recommend::Environment;
use crate::sid::{self, SidKind};

/// Variables that say which environment a process runs in.
const ENVIRONMENT_MARKERS: &[&str] = &[
    "APP_ENV",
    "APP_ENVIRONMENT",
    "APPLICATION_ENV",
    "ENV",
    "ENVIRONMENT",
    "NODE_ENV",
    "RAILS_ENV",
    "RACK_ENV",
    "FLASK_ENV",
    "DJANGO_ENV",
    "PYTHON_ENV",
    "GO_ENV",
    "MIX_ENV",
    "ASPNETCORE_ENVIRONMENT",
    "DOTNET_ENVIRONMENT",
    "STAGE",
    "DEPLOY_ENV",
    "DEPLOYMENT_ENVIRONMENT",
    "VERCEL_ENV",
    "SPRING_PROFILES_ACTIVE",
];

/// The kinds of Twilio secret doctor recognises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    AuthToken,
    TestAuthToken,
    ApiKeySecret,
    OAuthClientSecret,
    BrokerMasterKey,
}

impl Kind {
    fn noun(self) -> &'static str {
        match self {
            Kind::AuthToken => "an Auth Token",
            Kind::TestAuthToken => "a test Auth Token",
            Kind::ApiKeySecret => "an API key secret",
            Kind::OAuthClientSecret => "an OAuth client secret",
            Kind::BrokerMasterKey => "the broker's master key",
        }
    }
}

enum Class {
    Secret(Kind, Option<String>),
    Sid(SidKind),
    Other,
}

/// What the whole source says, for judging one assignment in it.
struct Context {
    account_sid_lines: Vec<(Option<usize>, String)>,
    has_key_sid: bool,
    has_client_id: bool,
}

impl Context {
    fn of(source: &Source) -> Self {
        let with = |kind| {
            source
                .assignments
                .iter()
                .filter(move |a| sid::is(kind, a.value.expose_secret()))
        };
        Context {
            account_sid_lines: with(SidKind::Account)
                .map(|a| (a.line, redact(a.value.expose_secret())))
                .collect(),
            has_key_sid: with(SidKind::ApiKey).next().is_some(),
            has_client_id: with(SidKind::OAuthClient).next().is_some(),
        }
    }
}

fn is_hex32(value: &str) -> bool {
    value.len() == 32 && value.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Template values, references and dummies are not credentials.
fn placeholder(value: &str) -> bool {
    let lower = value.to_ascii_lowercase();
    let distinct: std::collections::BTreeSet<char> = value.chars().collect();
    value.contains(|c: char| "$<>{}*".contains(c) || c.is_whitespace())
        || [
            "your",
            "changeme",
            "example",
            "placeholder",
            "xxxx",
            "redacted",
        ]
        .iter()
        .any(|word| lower.contains(word))
        || distinct.len() < 4
}

fn classify(a: &Assignment, context: &Context) -> Class {
    let name = normal_name(&a.name);
    let value = a.value.expose_secret();
    let twilio = name.contains("TWILIO");
    if name.ends_with("ACCOUNT_SID") {
        return Class::Sid(SidKind::Account);
    }
    if twilio
        && ["API_KEY", "API_KEY_SID", "KEY_SID"]
            .iter()
            .any(|s| name.ends_with(s))
    {
        return Class::Sid(SidKind::ApiKey);
    }
    if twilio && name.ends_with("CLIENT_ID") {
        return Class::Sid(SidKind::OAuthClient);
    }
    if name == "TWILIO_BROKER_MASTER_KEY" {
        return Class::Secret(Kind::BrokerMasterKey, None);
    }
    if value.len() < 16 {
        return Class::Other;
    }
    let has_account = !context.account_sid_lines.is_empty();
    if name.contains("AUTH_TOKEN") && (twilio || has_account) {
        let kind = if name.contains("TEST") {
            Kind::TestAuthToken
        } else {
            Kind::AuthToken
        };
        return Class::Secret(kind, None);
    }
    if name.contains("CLIENT_SECRET") && (twilio || context.has_client_id) {
        return Class::Secret(Kind::OAuthClientSecret, None);
    }
    if name.contains("SECRET") && (twilio || context.has_key_sid) {
        return Class::Secret(Kind::ApiKeySecret, None);
    }
    if is_hex32(value) {
        let hinted = ["TOKEN", "AUTH", "SECRET", "PASS", "PWD"]
            .iter()
            .any(|h| name.contains(h));
        let beside = context.account_sid_lines.iter().find(|(line, _)| {
            hinted || matches!((line, a.line), (Some(l), Some(m)) if l.abs_diff(m) <= 2)
        });
        if let Some((_, account)) = beside {
            return Class::Secret(
                Kind::AuthToken,
                Some(format!("32 hex digits beside Account SID {account}")),
            );
        }
    }
    Class::Other
}

/// Why a source counts as production, if it does.
fn production(source: &Source, environment: Option<&Source>, options: Options) -> Option<String> {
    if options.production {
        return Some("--production was given".into());
    }
    // Some(Some(why)) when a marker says production, Some(None) when markers
    // name only other environments, None when none names an environment at
    // all (e.g. the shell's own ENV=/etc/profile).
    let marker = |s: &Source| {
        let mut other = false;
        for a in &s.assignments {
            if !ENVIRONMENT_MARKERS.contains(&normal_name(&a.name).as_str()) {
                continue;
            }
            let value = a.value.expose_secret();
            let envs: Vec<_> = value
                .split(',')
                .filter_map(Environment::from_label)
                .collect();
            if envs.contains(&Environment::Production) {
                return Some(Some(format!(
                    "{}={value} at {}",
                    a.name,
                    s.location(a.line)
                )));
            }
            other |= !envs.is_empty();
        }
        other.then_some(None)
    };
    if let Some(found) = marker(source) {
        return found;
    }
    if let Some(path) = &source.path {
        let file = path
            .file_name()
            .map(|n| n.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_default();
        if file
            .split(['.', '-', '_'])
            .any(|part| matches!(part, "production" | "prod" | "prd"))
        {
            return Some(format!(
                "the file {} is named for production",
                path.display()
            ));
        }
    }
    environment.and_then(|env| marker(env).flatten())
}

fn sid_problem(kind: SidKind, value: &str) -> Option<(&'static str, String)> {
    if sid::is(kind, value) {
        return None;
    }
    let expected = kind.noun();
    let prefix = kind.prefix();
    let other_prefix = value.len() == 34
        && value[..2].bytes().all(|b| b.is_ascii_uppercase())
        && value[2..].bytes().all(|b| b.is_ascii_hexdigit());
    if other_prefix {
        let found = match &value[..2] {
            "AC" => "an Account SID (AC...)".to_owned(),
            "SK" => "an API key SID (SK...)".to_owned(),
            "OQ" => "an OAuth client id (OQ...)".to_owned(),
            other => format!("a SID starting with {other}"),
        };
        return Some((
            "sid-wrong-prefix",
            format!("should hold an {expected} ({prefix}...) but holds {found}"),
        ));
    }
    let problem = if is_hex32(value) {
        "is 32 hex digits with no prefix: perhaps a secret pasted into the wrong variable"
            .to_owned()
    } else {
        sid::check(kind, value)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    };
    Some((
        "sid-malformed",
        format!("should hold an {expected} ({prefix} followed by 32 hex digits) but {problem}"),
    ))
}

/// Every finding in one source.
pub fn check_source(
    source: &Source,
    environment: Option<&Source>,
    options: Options,
) -> Vec<Finding> {
    let context = Context::of(source);
    let production = production(source, environment, options);
    let mut out = Vec::new();
    for a in &source.assignments {
        let value = a.value.expose_secret();
        if placeholder(value) {
            continue;
        }
        let at = source.location(a.line);
        match classify(a, &context) {
            Class::Other => {}
            Class::Sid(kind) => {
                if let Some((id, problem)) = sid_problem(kind, value) {
                    out.push(finding(id, at, Some(a), format!("{} {problem}.", a.name)));
                }
            }
            Class::Secret(kind, how) => {
                let what = match &how {
                    Some(how) => format!("what looks like {} ({how})", kind.noun()),
                    None => kind.noun().to_owned(),
                };
                let in_git = match &source.vcs {
                    Vcs::Tracked { root } => Some((
                        "secret-in-version-control",
                        format!("in a file tracked by git (work tree {})", root.display()),
                    )),
                    Vcs::Unknown { root, reason } => Some((
                        "secret-in-version-control",
                        format!(
                            "in a file inside the git work tree {}, and git could not tell \
                             whether it is tracked ({reason})",
                            root.display()
                        ),
                    )),
                    Vcs::Untracked {
                        root,
                        ignored: false,
                    } => Some((
                        "secret-file-not-ignored",
                        format!(
                            "in a file inside the git work tree {} that git neither tracks nor \
                             ignores: one `git add .` commits it",
                            root.display()
                        ),
                    )),
                    Vcs::Untracked { ignored: true, .. } | Vcs::Outside => None,
                };
                if let Some((id, why)) = &in_git {
                    out.push(finding(
                        id,
                        at.clone(),
                        Some(a),
                        format!("{} holds {what} {why}.", a.name),
                    ));
                }
                if kind != Kind::AuthToken {
                    continue;
                }
                match &production {
                    Some(why) => out.push(finding(
                        "auth-token-in-production",
                        at,
                        Some(a),
                        format!(
                            "{} holds {what} where the environment looks like production \
                             ({why}): the Auth Token is permanent, full access to the account, \
                             and rotating it breaks every API key.",
                            a.name
                        ),
                    )),
                    None if in_git.is_none() => out.push(finding(
                        "auth-token-outside-production",
                        at,
                        Some(a),
                        format!(
                            "{} holds {what}; nothing here looks like production.",
                            a.name
                        ),
                    )),
                    None => {}
                }
            }
        }
    }
    out.extend(super::broker_config::master_key_findings(source));
    out
}
