//! Reviewing a stored credential against its labels and the request's needs:
//! an Auth Token or test credentials in production, a Main key where a
//! narrower one would do, a Restricted key asked to mint, a Standard key asked
//! to manage the account, and labels that do not say (or contradict) where the
//! credential belongs. Checks are a table with stable ids; findings name the
//! credential and never anything secret (the review reads kind, key type and
//! labels only).

use super::rules::situate;
use super::situation::Situation;
use super::{Environment, Method, Needs, Side};
use crate::credential::{Credential, KeyType, Kind};

/// One thing the review found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Stable identifier, e.g. `auth-token-in-production`.
    pub id: &'static str,
    /// What is wrong and what to do instead.
    pub text: String,
}

/// What a check looks at.
pub struct Subject<'a> {
    /// The stored credential (only its kind, key type, name and labels are read).
    pub credential: &'a Credential,
    /// The request's facts and the method recommended for them.
    pub situation: &'a Situation<'a>,
}

impl Subject<'_> {
    fn kind(&self) -> Kind {
        self.credential.secret.kind()
    }

    fn key_type(&self) -> Option<KeyType> {
        match &self.credential.secret {
            crate::credential::Secret::ApiKey { key_type, .. } => Some(*key_type),
            _ => None,
        }
    }

    fn label_env(&self) -> Option<Environment> {
        self.credential
            .environment_label()
            .and_then(Environment::from_label)
    }

    /// The label's environment when it names one, else the request's.
    fn environment(&self) -> Environment {
        self.label_env()
            .unwrap_or(self.situation.facts.needs.environment)
    }

    fn client(&self) -> bool {
        self.situation.facts.needs.side == Side::Client
    }

    /// Whether the stored kind (and key type) is what was recommended.
    fn fits(&self) -> bool {
        match (self.kind(), self.situation.method) {
            (Kind::AuthToken, Method::AuthToken)
            | (Kind::OAuthClient, Method::OAuth2)
            | (Kind::Test, Method::TestCredentials) => true,
            (Kind::ApiKey, Method::ApiKey | Method::AccessToken) => {
                self.key_type() == self.situation.key_type
            }
            _ => false,
        }
    }
}

/// One review check.
pub struct Check {
    /// Stable identifier.
    pub id: &'static str,
    /// When it finds something.
    pub when: fn(&Subject) -> bool,
    /// What it says, a template (`%name%`, `%where%`, `%label%`, `%env%`,
    /// `%kind%`, `%recommended%`).
    pub text: &'static str,
}

/// Checks of whether the credential fits its use, in order.
pub const CHECKS: &[Check] = &[
    Check {
        id: "auth-token-in-production",
        when: |s| s.kind() == Kind::AuthToken && s.environment() == Environment::Production,
        text: "%name% is an Auth Token %where%: it is permanent, full access to the account, \
               and rotating it breaks every API key. Services should call Twilio with a \
               Standard API key or OAuth2 instead; if the broker keeps this token only for \
               ValidateWebhook, make sure no service holds a copy.",
    },
    Check {
        id: "test-credential-in-production",
        when: |s| s.kind() == Kind::Test && s.environment() == Environment::Production,
        text: "%name% holds test credentials %where%: they never send a real message or \
               place a real call, and most resources answer them with 403. Production needs \
               live credentials: a Standard API key or OAuth2.",
    },
    Check {
        id: "main-key-where-narrower-would-do",
        when: |s| s.key_type() == Some(KeyType::Main) && !s.situation.facts.account_management,
        text: "%name% is a Main key, but nothing asked here needs /Accounts or /Keys: a leaked \
               Main key is as bad as a leaked Auth Token. Replace it with %recommended% and \
               delete the Main key in the Console.",
    },
    Check {
        id: "restricted-key-used-for-minting",
        when: |s| s.key_type() == Some(KeyType::Restricted) && s.client(),
        text: "%name% is a Restricted key, and Restricted keys cannot sign Access Tokens \
               (MintAccessToken refuses it): store a Standard key for minting and keep the \
               client's privileges small through the token's grants and TTL.",
    },
    Check {
        id: "standard-key-for-account-management",
        when: |s| {
            s.key_type() == Some(KeyType::Standard)
                && !s.client()
                && s.situation.facts.account_management
        },
        text: "%name% is a Standard key: /Accounts and /Keys answer it with 401 and error \
               20003. Account management needs a Main key (created in the Console only), kept \
               for that job alone.",
    },
];

/// When no check above found anything: the credential is not what was recommended.
pub const MISMATCH: Check = Check {
    id: "does-not-match-recommendation",
    when: |s| !s.fits(),
    text: "%name% is %kind%, but for these needs the recommendation is %recommended%.",
};

/// Checks of the credential's labels, always run.
pub const LABEL_CHECKS: &[Check] = &[
    Check {
        id: "no-environment-label",
        when: |s| s.credential.environment_label().is_none(),
        text: "%name% has no environment label, so it was reviewed for %env% as asked; label \
               it (`--label environment=...` when you next put it) so reviews and audits can \
               tell where it belongs.",
    },
    Check {
        id: "environment-label-mismatch",
        when: |s| {
            s.label_env()
                .is_some_and(|env| env != s.situation.facts.needs.environment)
        },
        text: "%name% is labelled environment=%label% but was reviewed for %env%: give each \
               environment its own credential, so a leak or a rotation in one leaves the \
               others alone.",
    },
];

fn describe_kind(s: &Subject) -> String {
    match (s.kind(), s.key_type()) {
        (Kind::ApiKey, Some(key_type)) => format!("a {} API key", key_type.as_str()),
        (Kind::AuthToken, _) => "an Auth Token".into(),
        (Kind::OAuthClient, _) => "an OAuth client".into(),
        (Kind::Test, _) => "test credentials".into(),
        (Kind::ApiKey, None) => "an API key".into(),
    }
}

/// The recommended credential, for a sentence.
pub fn describe_recommended(method: Method, key_type: Option<KeyType>) -> String {
    match (method, key_type) {
        (Method::AuthToken, _) => "the Auth Token (prototypes only)".into(),
        (Method::ApiKey, Some(k)) => format!("a {} API key", k.as_str()),
        (Method::ApiKey, None) => "an API key".into(),
        (Method::OAuth2, _) => "an OAuth client whose bearer tokens come from GetBearer".into(),
        (Method::AccessToken, _) => {
            "Access Tokens minted by MintAccessToken with a standard API key".into()
        }
        (Method::TestCredentials, _) => "test credentials".into(),
    }
}

fn render(check: &Check, s: &Subject) -> String {
    let label = s.credential.environment_label().unwrap_or_default();
    let place = if s.label_env() == Some(Environment::Production) {
        format!("labelled environment={label}")
    } else {
        "reviewed for production (its labels do not say otherwise)".to_owned()
    };
    check
        .text
        .replace("%name%", &format!("credential {:?}", s.credential.name))
        .replace("%where%", &place)
        .replace("%label%", label)
        .replace("%env%", s.situation.facts.needs.environment.as_str())
        .replace("%kind%", &describe_kind(s))
        .replace(
            "%recommended%",
            &describe_recommended(s.situation.method, s.situation.key_type),
        )
}

/// Reviews `credential` for `needs` (validated by the caller).
pub fn review(credential: &Credential, needs: &Needs) -> Vec<Finding> {
    let (situation, _) = situate(needs);
    let subject = Subject {
        credential,
        situation: &situation,
    };
    let finding = |check: &Check| Finding {
        id: check.id,
        text: render(check, &subject),
    };
    let mut findings: Vec<Finding> = CHECKS
        .iter()
        .filter(|c| (c.when)(&subject))
        .map(finding)
        .collect();
    if findings.is_empty() && (MISMATCH.when)(&subject) {
        findings.push(finding(&MISMATCH));
    }
    findings.extend(
        LABEL_CHECKS
            .iter()
            .filter(|c| (c.when)(&subject))
            .map(finding),
    );
    findings
}

/// The age check: a secret stored longer than the configured maximum
/// (`[rotation] warn_age`). Run by [`age_findings`], apart from the checks
/// above because it needs the time and the maximum, not the request.
pub const AGE_CHECK: AgeCheck = AgeCheck {
    id: "secret-older-than-max-age",
    text: "%name%'s secret has been stored for %age% (since %since%), longer than the \
           %max% this broker warns at: rotate it \
           (`twilio-broker credential rotate NAME`), or replace it and delete the old one at \
           Twilio.",
};

/// A check of a credential's age, with its stable id and text template
/// (`%name%`, `%age%`, `%since%`, `%max%`).
pub struct AgeCheck {
    /// Stable identifier.
    pub id: &'static str,
    /// What it says.
    pub text: &'static str,
}

/// How long `credential`'s current secret has been stored at `now`: since
/// it was last put or rotated (`updated_at`); zero for a clock that went back.
pub fn secret_age(credential: &Credential, now: std::time::SystemTime) -> std::time::Duration {
    now.duration_since(credential.updated_at)
        .unwrap_or_default()
}

/// The age findings for a secret `age` old, warned about over `max_age`.
pub fn age_findings(
    credential: &Credential,
    age: std::time::Duration,
    max_age: std::time::Duration,
) -> Vec<Finding> {
    if age <= max_age {
        return Vec::new();
    }
    let whole_days = |d: std::time::Duration| {
        let days = d.as_secs() / 86_400;
        if days > 0 {
            format!("{days} days")
        } else {
            humantime::format_duration(std::time::Duration::from_secs(d.as_secs())).to_string()
        }
    };
    vec![Finding {
        id: AGE_CHECK.id,
        text: AGE_CHECK
            .text
            .replace("%name%", &format!("credential {:?}", credential.name))
            .replace("%age%", &whole_days(age))
            .replace(
                "%since%",
                &humantime::format_rfc3339_seconds(credential.updated_at).to_string(),
            )
            .replace("%max%", &whole_days(max_age)),
    }]
}
