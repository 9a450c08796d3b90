//! The decision framework's rules as data: [`CHOICES`] pick the method,
//! [`NOTES`] add what follows from the combination of
//! needs and method.
//!
//! Choices run in order and the first match wins: a client never holds a
//! secret; charge-free tests get test credentials only where they work;
//! account management needs a Main key; an explicit need (time-limited, least
//! privilege) beats the prototype shortcut; then environment defaults. Notes
//! are independent: every note whose `when` holds adds its sentences. Texts
//! are templates whose `%name%` slots [`render`] fills from the request.

use super::limits;
use super::notes::{NOTES, NoteKind};
use super::resources::{self, TEST_CREDENTIAL_RESOURCES};
pub use super::situation::{Facts, Situation};
use super::{Environment, Method, Needs, Recommendation, Side};
use crate::credential::KeyType;

/// One way of choosing the method.
#[derive(Debug)]
pub struct Choice {
    /// Stable identifier.
    pub id: &'static str,
    /// When this choice applies (checked in table order).
    pub when: fn(&Facts) -> bool,
    /// The method.
    pub method: Method,
    /// The key type to create, if any.
    pub key_type: Option<KeyType>,
    /// The main reason, a template.
    pub reason: &'static str,
}

/// The method choices, in order; [`DEFAULT_CHOICE`] when none matches.
pub const CHOICES: &[Choice] = &[
    Choice {
        id: "client-side-access-token",
        when: |f| f.needs.side == Side::Client,
        method: Method::AccessToken,
        key_type: Some(KeyType::Standard),
        reason: "A browser or mobile app must never hold a Twilio secret: your server mints a \
                 short-lived Access Token (JWT) for the %sdk%, signed with a Standard API key.",
    },
    Choice {
        id: "charge-free-test-credentials",
        when: |f| {
            f.server()
                && f.needs.charge_free
                && f.needs.environment != Environment::Production
                && f.test_blockers.is_empty()
        },
        method: Method::TestCredentials,
        key_type: None,
        reason: "Test credentials make charge-free requests to %test_resources%: nothing is \
                 billed, nothing real is sent or called, and magic numbers choose the outcome.",
    },
    Choice {
        id: "account-management-main-key",
        when: |f| f.server() && f.account_management && !f.plain_prototype,
        method: Method::ApiKey,
        key_type: Some(KeyType::Main),
        reason: "Only a Main key or the Auth Token reach /Accounts and /Keys (a Standard key \
                 gets 20003); a Main key can be deleted on its own, the Auth Token cannot.",
    },
    Choice {
        id: "server-time-limited-oauth2",
        when: |f| f.server() && f.needs.time_limited,
        method: Method::OAuth2,
        key_type: None,
        reason: "OAuth2 client_credentials gives the service bearer tokens that expire after \
                 1 hour, so a leaked token is short-lived; the client secret stays in the \
                 broker, which fetches and refreshes the tokens (GetBearer).",
    },
    Choice {
        id: "least-privilege-restricted-key",
        when: |f| f.server() && f.needs.least_privilege,
        method: Method::ApiKey,
        key_type: Some(KeyType::Restricted),
        reason: "A Restricted API key carries a policy of only the permissions it needs, so a \
                 leak exposes only %resources%.",
    },
    Choice {
        id: "prototype-auth-token",
        when: |f| f.server() && f.needs.environment == Environment::Prototype,
        method: Method::AuthToken,
        key_type: None,
        reason: "For a quick prototype on your own machine the Account SID and Auth Token are \
                 the fastest start.",
    },
];

/// The choice when no other applies: a server in test or production.
pub const DEFAULT_CHOICE: Choice = Choice {
    id: "server-standard-key",
    when: |_| true,
    method: Method::ApiKey,
    key_type: Some(KeyType::Standard),
    reason: "A Standard API key is the simplest production credential: it reaches everything \
             but /Accounts and /Keys and can be revoked on its own without touching other keys.",
};

/// The choice that applies to `facts`.
pub fn choose(facts: &Facts) -> &'static Choice {
    CHOICES
        .iter()
        .find(|c| (c.when)(facts))
        .unwrap_or(&DEFAULT_CHOICE)
}

/// Fills a template's `%name%` slots from the request.
pub fn render(template: &str, facts: &Facts) -> String {
    let names = |list: &[String], none: &str| {
        if list.is_empty() {
            none.to_owned()
        } else {
            resources::join(list)
        }
    };
    let test_resources: Vec<String> = TEST_CREDENTIAL_RESOURCES.map(String::from).into();
    let sdk = facts.needs.client_sdk;
    let slots: [(&str, String); 8] = [
        (
            "%resources%",
            names(&facts.resources.all, "the resources it calls"),
        ),
        ("%test_resources%", resources::join(&test_resources)),
        ("%test_blockers%", names(&facts.test_blockers, "them")),
        (
            "%management%",
            names(&facts.resources.account_management, ""),
        ),
        ("%unknown%", names(&facts.resources.unknown, "")),
        (
            "%grant%",
            sdk.map_or("grant for its SDK (Voice, Video, Chat or Sync)", |s| {
                s.grant()
            })
            .to_owned(),
        ),
        (
            "%sdk%",
            sdk.map_or("client SDK".to_owned(), |s| format!("{} SDK", s.name())),
        ),
        ("%env%", facts.needs.environment.as_str().to_owned()),
    ];
    let mut text = template.to_owned();
    for (slot, value) in slots {
        if text.contains(slot) {
            text = text.replace(slot, &value);
        }
    }
    text
}

/// The facts of `needs` with the method chosen for them, and that choice.
pub fn situate(needs: &Needs) -> (Situation<'_>, &'static Choice) {
    let facts = Facts::new(needs);
    let choice = choose(&facts);
    let situation = Situation {
        facts,
        method: choice.method,
        key_type: choice.key_type,
    };
    (situation, choice)
}

/// Runs the tables on `needs` (validated by the caller).
pub fn decide(needs: &Needs) -> Recommendation {
    let (situation, choice) = situate(needs);
    let mut answer = Recommendation {
        method: choice.method,
        key_type: choice.key_type,
        reasons: vec![render(choice.reason, &situation.facts)],
        warnings: Vec::new(),
        limits: limits::applying(&situation),
        next_steps: Vec::new(),
        rules: vec![choice.id],
    };
    for note in NOTES.iter().filter(|n| (n.when)(&situation)) {
        let out = match note.kind {
            NoteKind::Reason => &mut answer.reasons,
            NoteKind::Warning => &mut answer.warnings,
            NoteKind::Step => &mut answer.next_steps,
        };
        out.extend(note.says.iter().map(|t| render(t, &situation.facts)));
        answer.rules.push(note.id);
    }
    answer
}
