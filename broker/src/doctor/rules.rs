//! Doctor's table of findings (stable ids, severities, what to do instead)
//! and [`finding`], which builds one. Its own module so that `checks` and
//! `broker_config` both depend on it and not on each other.

use secrecy::ExposeSecret as _;

use super::scan::Assignment;
use super::{Finding, Severity, redact};

/// One kind of finding.
#[derive(Debug)]
pub struct Rule {
    /// Stable identifier; pipelines match on it.
    pub id: &'static str,
    /// Risk (fails doctor) or note.
    pub severity: Severity,
    /// What to use or do instead.
    pub instead: &'static str,
}

/// Every finding doctor can report.
pub const RULES: &[Rule] = &[
    Rule {
        id: "auth-token-in-production",
        severity: Severity::Risk,
        instead: "Use a Standard API key (TWILIO_API_KEY + TWILIO_API_SECRET beside \
                  TWILIO_ACCOUNT_SID) or OAuth2 bearer tokens from the broker (GetBearer); \
                  `twilio-broker recommend --env production --side server` explains the choice.",
    },
    Rule {
        id: "secret-in-version-control",
        severity: Severity::Risk,
        instead: "Remove it from the repository and its history, then rotate it in the Twilio \
                  Console (every clone has it; rotating an Auth Token breaks every API key, so \
                  plan that); keep secrets in the broker or in an untracked, ignored file.",
    },
    Rule {
        id: "secret-file-not-ignored",
        severity: Severity::Risk,
        instead: "Add the file to .gitignore or move it out of the work tree before anyone \
                  runs `git add`; better, keep the secret in the broker.",
    },
    Rule {
        id: "sid-wrong-prefix",
        severity: Severity::Risk,
        instead: "Copy the right value from the Twilio Console: Account SIDs start with AC, API \
                  key SIDs with SK, OAuth client ids with OQ; Twilio answers a wrong one with \
                  20003.",
    },
    Rule {
        id: "sid-malformed",
        severity: Severity::Risk,
        instead: "Copy the value again from the Twilio Console: a SID is two letters and 32 hex \
                  digits, with no spaces or quotes; Twilio answers a malformed one with 20003.",
    },
    Rule {
        id: "broker-master-key-in-data-dir",
        severity: Severity::Risk,
        instead: "Keep the master key outside the data directory (e.g. \
                  /etc/twilio-broker/master.key, readable by the broker's user only), so a \
                  copy of the data is useless without it.",
    },
    Rule {
        id: "broker-master-key-readable-by-others",
        severity: Severity::Risk,
        instead: "chmod 600 the key file and make the broker's user its owner.",
    },
    Rule {
        id: "secret-older-than-max-age",
        severity: Severity::Note,
        instead: "Rotate it: `twilio-broker credential rotate NAME` (API keys with a manager; an \
                  Auth Token only knowing that Twilio then invalidates every API key of the \
                  account), or schedule it with the label rotate_every=30d.",
    },
    Rule {
        id: "auth-token-outside-production",
        severity: Severity::Note,
        instead: "Fine for a prototype on your own machine; switch to an API key before \
                  deploying (`twilio-broker recommend --env production --side server`).",
    },
];

fn rule(id: &'static str) -> &'static Rule {
    RULES.iter().find(|r| r.id == id).unwrap_or(&RULES[0])
}

/// The finding `id` at `location`, about assignment `a` if any (its value
/// shown redacted).
pub(super) fn finding(
    id: &'static str,
    location: String,
    a: Option<&Assignment>,
    text: String,
) -> Finding {
    let rule = rule(id);
    Finding {
        id: rule.id,
        severity: rule.severity,
        location,
        name: a.map(|a| a.name.clone()).unwrap_or_default(),
        shown: a
            .map(|a| redact(a.value.expose_secret()))
            .unwrap_or_default(),
        text,
        instead: rule.instead,
    }
}
