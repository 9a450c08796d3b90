//! Doctor's rules on crafted sources: one table of cases (file text, where
//! it stands with git, the process environment, options) and the findings
//! each must give; every rule reached; no secret ever shown in full.

use std::collections::HashSet;
use std::path::PathBuf;

use super::rules::RULES;
use super::vcs::Vcs;
use super::*;

const AC: &str = "AC0123456789abcdef0123456789abcdef";
const SK: &str = "SKfedcba9876543210fedcba9876543210";
const TOKEN: &str = "9d1c2b3a4f5e6d7c8b9a0f1e2d3c4b5a";
const API_SECRET: &str = "Zx9Qw8Er7Ty6Ui5Op4As3Df2Gh1Jk0Lm";

struct Case {
    name: &'static str,
    file: &'static str,
    text: String,
    vcs: Vcs,
    env: &'static [(&'static str, &'static str)],
    production: bool,
    want: &'static [&'static str],
}

fn case(name: &'static str, text: String, want: &'static [&'static str]) -> Case {
    Case {
        name,
        file: ".env",
        text,
        vcs: Vcs::Outside,
        env: &[],
        production: false,
        want,
    }
}

fn root() -> PathBuf {
    PathBuf::from("/repo")
}

fn run(c: &Case) -> Report {
    let config = c
        .file
        .ends_with(".toml")
        .then(|| crate::config::FileConfig::parse(&c.text).ok())
        .flatten();
    let sources = [
        Source::environment(
            c.env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        ),
        Source {
            path: Some(PathBuf::from(c.file)),
            assignments: scan::parse(&c.text),
            vcs: c.vcs.clone(),
            broker_config: config,
        },
    ];
    examine(
        &sources,
        Options {
            production: c.production,
        },
    )
}

#[test]
fn crafted_sources_give_exactly_their_findings() {
    let cases = vec![
        case("auth token beside a production marker",
             format!("NODE_ENV=production\nTWILIO_ACCOUNT_SID={AC}\nTWILIO_AUTH_TOKEN={TOKEN}\n"),
             &["auth-token-in-production"]),
        case("auth token with nothing production-like is a note",
             format!("TWILIO_ACCOUNT_SID={AC}\nTWILIO_AUTH_TOKEN={TOKEN}\n"),
             &["auth-token-outside-production"]),
        Case { env: &[("APP_ENV", "prod")], ..case("the process environment says production",
             format!("TWILIO_AUTH_TOKEN={TOKEN}\n"), &["auth-token-in-production"]) },
        Case { env: &[("RAILS_ENV", "production")], ..case("the file's own marker wins",
             format!("RAILS_ENV=development\nTWILIO_AUTH_TOKEN={TOKEN}\n"), &["auth-token-outside-production"]) },
        Case { env: &[("ENV", "/etc/profile"), ("NODE_ENV", "production")], ..case("a marker that names no environment decides nothing",
             format!("TWILIO_AUTH_TOKEN={TOKEN}\n"), &["auth-token-in-production"]) },
        Case { env: &[("NODE_ENV", "development"), ("APP_ENV", "production")], ..case("any marker saying production is enough",
             format!("TWILIO_AUTH_TOKEN={TOKEN}\n"), &["auth-token-in-production"]) },
        Case { file: "deploy/.env.production", ..case("a file named for production",
             format!("TWILIO_AUTH_TOKEN={TOKEN}\n"), &["auth-token-in-production"]) },
        Case { production: true, ..case("--production",
             format!("export TWILIO_AUTH_TOKEN='{TOKEN}'\n"), &["auth-token-in-production"]) },
        case("32 hex digits right beside an Account SID",
             format!("SID={AC}\nTOK={TOKEN}\n"),
             &["auth-token-outside-production"]),
        case("32 hex digits named like a token, further away",
             format!("account: {AC}\na: 1\nb: 2\nc: 3\nsms_token: {TOKEN}\n"),
             &["auth-token-outside-production"]),
        case("32 hex digits far from any Account SID, named innocently",
             format!("account: {AC}\na: 1\nb: 2\nc: 3\ncache_digest: {TOKEN}\n"),
             &[]),
        case("an AUTH_TOKEN of some other service",
             format!("GITHUB_AUTH_TOKEN={TOKEN}\n"),
             &[]),
        Case { vcs: Vcs::Tracked { root: root() }, ..case("an API key secret in a tracked file",
             format!("TWILIO_API_KEY={SK}\nTWILIO_API_SECRET={API_SECRET}\n"), &["secret-in-version-control"]) },
        Case { vcs: Vcs::Untracked { root: root(), ignored: false }, ..case("an API key secret in an unignored file",
             format!("TWILIO_API_KEY={SK}\nTWILIO_API_SECRET={API_SECRET}\n"), &["secret-file-not-ignored"]) },
        Case { vcs: Vcs::Untracked { root: root(), ignored: true }, ..case("an API key secret in an ignored file",
             format!("TWILIO_API_KEY={SK}\nTWILIO_API_SECRET={API_SECRET}\n"), &[]) },
        Case { vcs: Vcs::Unknown { root: root(), reason: "cannot run git".into() }, ..case("git cannot tell: assume the worst",
             format!("API_KEY_SID={SK}\nAPI_KEY_SECRET={API_SECRET}\n"), &["secret-in-version-control"]) },
        Case { vcs: Vcs::Tracked { root: root() }, ..case("a tracked Auth Token in production: both risks",
             format!("ENVIRONMENT=live\nTWILIO_AUTH_TOKEN={TOKEN}\n"), &["secret-in-version-control", "auth-token-in-production"]) },
        Case { vcs: Vcs::Tracked { root: root() }, ..case("the broker's master key in a tracked file",
             "TWILIO_BROKER_MASTER_KEY=q83vEjRWeJCrze8SNFZ4mKvN7xI0VniQq83vEjRWeJA=\n".into(), &["secret-in-version-control"]) },
        case("an API key SID where the Account SID belongs",
             format!("TWILIO_ACCOUNT_SID={SK}\n"), &["sid-wrong-prefix"]),
        case("a token pasted where the Account SID belongs",
             format!("TWILIO_ACCOUNT_SID={TOKEN}\n"), &["sid-malformed"]),
        case("a short Account SID",
             "TWILIO_ACCOUNT_SID=AC0123\n".into(), &["sid-malformed"]),
        case("an Account SID where the OAuth client id belongs",
             format!("TWILIO_OAUTH_CLIENT_ID={AC}\n"), &["sid-wrong-prefix"]),
        case("placeholders and references are not credentials",
             "TWILIO_ACCOUNT_SID=ACxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\nTWILIO_AUTH_TOKEN=${TWILIO_AUTH_TOKEN}\nTWILIO_API_SECRET=your_api_secret_here_please\n".into(),
             &[]),
        case("a clean production file",
             format!("NODE_ENV=production\nTWILIO_ACCOUNT_SID={AC}\nTWILIO_API_KEY={SK}\nTWILIO_API_SECRET={API_SECRET}\n"),
             &[]),
        Case { file: "broker.toml", ..case("the broker's master key inside its data directory",
             "data_dir = \"/var/lib/twilio-broker\"\nmaster_key_file = \"/var/lib/twilio-broker/master.key\"\n".into(),
             &["broker-master-key-in-data-dir"]) },
        Case { file: "broker.toml", ..case("the broker's master key kept apart",
             "data_dir = \"/var/lib/twilio-broker\"\nmaster_key_file = \"/etc/twilio-broker/master.key\"\n".into(),
             &[]) },
    ];
    let mut reached: HashSet<&str> = HashSet::new();
    for c in &cases {
        let report = run(c);
        let got: Vec<&str> = report.findings.iter().map(|f| f.id).collect();
        assert_eq!(got, c.want, "{}: {:#?}", c.name, report.findings);
        for f in &report.findings {
            for secret in [TOKEN, API_SECRET] {
                let shown = format!("{} {} {}", f.shown, f.text, f.location);
                assert!(!shown.contains(secret), "{}: secret shown", c.name);
            }
            assert!(f.location.starts_with(c.file), "{}: {}", c.name, f.location);
        }
        reached.extend(got);
    }
    reached.extend(master_key_mode_ids());
    reached.extend(old_secret_ids());
    for rule in RULES {
        assert!(
            reached.contains(rule.id),
            "rule {} is never reached",
            rule.id
        );
    }
}

/// The key file's mode needs a real file.
fn master_key_mode_ids() -> Vec<&'static str> {
    let dir = tempfile::tempdir().expect("temp dir");
    let key = dir.path().join("master.key");
    std::fs::write(&key, "k").expect("write key");
    let mut ids = Vec::new();
    #[cfg(unix)]
    for (mode, want) in [(0o644, true), (0o600, false)] {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(mode)).expect("chmod");
        let text = format!("master_key_file = {:?}\n", key.display().to_string());
        let report = run(&Case {
            file: "broker.toml",
            ..case("mode", text, &[])
        });
        let found: Vec<_> = report.findings.iter().map(|f| f.id).collect();
        assert_eq!(
            found == ["broker-master-key-readable-by-others"],
            want,
            "{mode:o}: {found:?}"
        );
        ids.extend(found);
    }
    ids
}

#[test]
fn redaction_keeps_four_characters_at_most() {
    assert_eq!(redact(TOKEN), "9d1c… (32 chars)");
    assert_eq!(redact("short"), "… (5 chars)");
}

/// The broker's stored secrets, by age.
fn old_secret_ids() -> Vec<&'static str> {
    use std::time::{Duration, SystemTime};
    let now = SystemTime::now();
    let day = Duration::from_secs(86_400);
    let stored = vec![
        ("fresh".to_owned(), now - day),
        ("stale".to_owned(), now - day * 100),
        ("future".to_owned(), now + day),
    ];
    let found = super::ages::old_secrets(&stored, now, day * 90, "broker 127.0.0.1:50051");
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0].name, "stale");
    assert_eq!(found[0].severity, super::Severity::Note);
    assert!(found[0].text.contains("100 days"), "{}", found[0].text);
    assert!(found[0].location.starts_with("broker "));
    found.iter().map(|f| f.id).collect()
}
