//! The framework's notes as data: the reasons, warnings and next steps that
//! follow from a combination of needs and the chosen method. Every note whose
//! `when` holds adds its sentences (templates filled by
//! [`render`](super::rules::render)), in table order within its kind.

use super::situation::Situation;
use super::{Environment, Method, Side};
use crate::credential::KeyType;

/// What a note adds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoteKind {
    /// A reason for the method.
    Reason,
    /// A risk in this setup.
    Warning,
    /// Something to do, in the Console, the API or the broker.
    Step,
}

/// Sentences that follow from a combination.
#[derive(Debug)]
pub struct Note {
    /// Stable identifier.
    pub id: &'static str,
    /// Reason, warning or next step.
    pub kind: NoteKind,
    /// When the note applies.
    pub when: fn(&Situation) -> bool,
    /// Its sentences, templates.
    pub says: &'static [&'static str],
}

fn is_key(s: &Situation, key_type: KeyType) -> bool {
    s.method == Method::ApiKey && s.key_type == Some(key_type)
}

fn client(s: &Situation) -> bool {
    s.facts.needs.side == Side::Client
}

use NoteKind::{Reason, Step, Warning};

/// Every note, in the order answers list them (within each kind).
pub const NOTES: &[Note] = &[
    // Reasons.
    Note {
        id: "explicit-needs-over-prototype",
        kind: Reason,
        when: |s| {
            !client(s)
                && s.facts.needs.environment == Environment::Prototype
                && !matches!(s.method, Method::AuthToken | Method::TestCredentials)
        },
        says: &[
            "Even for a prototype, your stated needs rule out the Auth Token: it never \
             expires and reaches the whole account.",
        ],
    },
    Note {
        id: "client-prototype-too",
        kind: Reason,
        when: |s| client(s) && s.facts.needs.environment == Environment::Prototype,
        says: &[
            "Even a prototype cannot hand the Auth Token to a browser or app: anyone can \
             read it there, and Twilio rejects Access Tokens signed with it (20003).",
        ],
    },
    Note {
        id: "client-least-privilege-via-grants",
        kind: Reason,
        when: |s| client(s) && s.facts.needs.least_privilege,
        says: &[
            "Least privilege on the client comes from the token: only the %grant% and the \
             shortest TTL that works. The signing key must still be Standard (or Main), \
             because Restricted keys cannot sign Access Tokens.",
        ],
    },
    Note {
        id: "client-tokens-expire",
        kind: Reason,
        when: |s| client(s) && s.facts.needs.time_limited,
        says: &[
            "Access Tokens expire on their own: their TTL is at most 24 hours, and \
             shorter is better.",
        ],
    },
    Note {
        id: "test-env-like-production",
        kind: Reason,
        when: |s| {
            s.facts.needs.environment == Environment::Test
                && matches!(s.method, Method::ApiKey | Method::OAuth2)
        },
        says: &[
            "Tests should use the kind of credential production uses, so the auth path \
             they exercise is the one that ships; the Auth Token stays on a developer's \
             machine.",
        ],
    },
    Note {
        id: "oauth2-app-policy",
        kind: Reason,
        when: |s| s.method == Method::OAuth2 && s.facts.needs.least_privilege,
        says: &[
            "An OAuth app carries its own policy: grant it only the permissions for \
             %resources%.",
        ],
    },
    Note {
        id: "test-credentials-narrow-by-nature",
        kind: Reason,
        when: |s| s.method == Method::TestCredentials && s.facts.needs.least_privilege,
        says: &[
            "Test credentials are narrow by nature: they reach only %test_resources% and \
             change nothing in your account.",
        ],
    },
    // Warnings.
    Note {
        id: "auth-token-switch-before-deploy",
        kind: Warning,
        when: |s| s.method == Method::AuthToken,
        says: &[
            "Use the Auth Token only on your own machine and switch to an API key before \
             deploying: it is permanent, full access to the account, and rotating a leaked \
             one breaks every API key.",
        ],
    },
    Note {
        id: "charge-free-unsupported-resources",
        kind: Warning,
        when: |s| {
            !client(s)
                && s.facts.needs.charge_free
                && s.facts.needs.environment != Environment::Production
                && !s.facts.test_blockers.is_empty()
        },
        says: &[
            "Test credentials cannot serve %test_blockers% (they reach only \
             %test_resources%; the rest answer 403), so those calls are real and charged: \
             run them against a dedicated subaccount.",
        ],
    },
    Note {
        id: "charge-free-not-in-production",
        kind: Warning,
        when: |s| {
            !client(s)
                && s.facts.needs.charge_free
                && s.facts.needs.environment == Environment::Production
        },
        says: &[
            "charge_free does not fit production: test credentials never send a real \
             message or place a real call. Use them in your tests (ask with \
             ENVIRONMENT_TEST).",
        ],
    },
    Note {
        id: "charge-free-client-sdks",
        kind: Warning,
        when: |s| client(s) && s.facts.needs.charge_free,
        says: &[
            "Client SDK sessions cannot be charge-free: test credentials cannot sign \
             Access Tokens and do not reach Voice, Video, Conversations or Sync. Keep \
             client tests in a dedicated subaccount.",
        ],
    },
    Note {
        id: "client-rest-resources",
        kind: Warning,
        when: |s| client(s) && !s.facts.resources.all.is_empty(),
        says: &[
            "An Access Token opens only the client SDKs' services: %resources% must be \
             called by your server with its own credential (ask with SIDE_SERVER), never \
             from the browser or app.",
        ],
    },
    Note {
        id: "client-account-management",
        kind: Warning,
        when: |s| client(s) && s.facts.account_management,
        says: &[
            "Account management (/Accounts, /Keys) never belongs on a client: do it from \
             a server (ask with SIDE_SERVER).",
        ],
    },
    Note {
        id: "client-sdk-unspecified",
        kind: Warning,
        when: |s| client(s) && s.facts.needs.client_sdk.is_none(),
        says: &[
            "No client_sdk given: add the grant that matches the SDK (Voice, Video, \
             Conversations or Sync); a token carries only the grants you put in.",
        ],
    },
    Note {
        id: "account-management-not-time-limited",
        kind: Warning,
        when: |s| is_key(s, KeyType::Main) && s.facts.needs.time_limited,
        says: &[
            "No time-limited credential reaches /Accounts and /Keys: keep this Main key \
             for the account-management job alone and give every other service OAuth2 \
             bearer tokens (GetBearer).",
        ],
    },
    Note {
        id: "account-management-not-least-privilege",
        kind: Warning,
        when: |s| is_key(s, KeyType::Main) && s.facts.needs.least_privilege,
        says: &[
            "Least privilege cannot cover /Accounts and /Keys: only a Main key or the Auth \
             Token reach them. Keep the Main key for the account-management job alone and \
             give other code Restricted keys.",
        ],
    },
    Note {
        id: "main-key-is-full-access",
        kind: Warning,
        when: |s| is_key(s, KeyType::Main),
        says: &[
            "A Main key has the power of the Auth Token: keep it in the broker, never in \
             application config, and delete it when the job is done.",
        ],
    },
    Note {
        id: "resources-imply-account-management",
        kind: Warning,
        when: |s| {
            !s.facts.needs.needs_account_management
                && !s.facts.resources.account_management.is_empty()
        },
        says: &["The resources name %management%: treated as needs_account_management."],
    },
    Note {
        id: "unknown-resources",
        kind: Warning,
        when: |s| !s.facts.resources.unknown.is_empty(),
        says: &[
            "%unknown%: not a Twilio resource the broker knows; check the spelling. It is \
             treated as a resource test credentials do not reach.",
        ],
    },
    Note {
        id: "least-privilege-without-resources",
        kind: Warning,
        when: |s| {
            !client(s)
                && s.facts.needs.least_privilege
                && s.facts.resources.all.is_empty()
                && (is_key(s, KeyType::Restricted) || s.method == Method::OAuth2)
        },
        says: &[
            "least_privilege without resources: list the resources the code calls so the \
             policy can name exactly those.",
        ],
    },
    Note {
        id: "test-credentials-no-resources",
        kind: Warning,
        when: |s| s.method == Method::TestCredentials && s.facts.resources.all.is_empty(),
        says: &[
            "No resources given: test credentials work only for %test_resources%; any \
             other request answers 403.",
        ],
    },
    Note {
        id: "test-credentials-never-expire",
        kind: Warning,
        when: |s| s.method == Method::TestCredentials && s.facts.needs.time_limited,
        says: &[
            "Test credentials do not expire: acceptable here, since they can neither \
             charge nor change the account, but keep them out of production config.",
        ],
    },
    Note {
        id: "test-credentials-no-callbacks",
        kind: Warning,
        when: |s| s.method == Method::TestCredentials,
        says: &[
            "Requests made with test credentials trigger no status callbacks and cannot \
             use your live account's phone numbers as From.",
        ],
    },
    Note {
        id: "oauth2-needs-recent-sdk",
        kind: Warning,
        when: |s| s.method == Method::OAuth2,
        says: &[
            "Twilio's helper libraries support OAuth2 from Python 9.4.1, Node.js 5.4.0, \
             Java 10.6.0, C#/.NET 7.6.0, Ruby 7.4.0, PHP 8.5.0 and Go 1.25.1; older ones \
             cannot send bearer tokens.",
        ],
    },
    // Next steps.
    Note {
        id: "steps-auth-token",
        kind: Step,
        when: |s| s.method == Method::AuthToken,
        says: &[
            "Twilio Console > Account > API keys & tokens: copy the Account SID and Auth Token \
             into an untracked .env on your machine (check it with `twilio-broker doctor .env`).",
            "Before deploying, ask again for production: `twilio-broker recommend --env \
             production --side server`.",
        ],
    },
    Note {
        id: "steps-test-credentials",
        kind: Step,
        when: |s| s.method == Method::TestCredentials,
        says: &[
            "Twilio Console > Account > API keys & tokens > Test credentials: copy the test \
             Account SID and test Auth Token.",
            "Store them in the broker: `twilio-broker credential add NAME --test --account-sid \
             AC... --secret-stdin --label environment=%env%`.",
            "Choose outcomes with magic numbers: From +15005550006 passes; To +15005550001 \
             fails with 21211 (invalid number); To +15005550002 fails with 21612 (cannot route).",
        ],
    },
    Note {
        id: "steps-standard-key",
        kind: Step,
        when: |s| is_key(s, KeyType::Standard),
        says: &[
            "Create a Standard key: Twilio Console > Account > API keys & tokens > Create API \
             key (type Standard), or POST /2010-04-01/Accounts/{AccountSid}/Keys.json; copy the \
             secret at once.",
            "Store it in the broker: `twilio-broker credential add NAME --api-key --key-type \
             standard --account-sid AC... --key-sid SK... --secret-stdin --label \
             environment=%env%`.",
            "Services send Basic auth with the key SID and secret and keep the Account SID in \
             the URL path (e.g. Client(SK..., secret, AC...)). The broker never returns a \
             stored secret, so deliver it through your secret store, or ask with time_limited \
             for OAuth2 so services hold only 1-hour tokens from GetBearer.",
        ],
    },
    Note {
        id: "steps-main-key",
        kind: Step,
        when: |s| is_key(s, KeyType::Main),
        says: &[
            "Create a Main key in the Twilio Console (Account > API keys & tokens > Create API \
             key, type Main): no API creates one. Copy the secret at once.",
            "Store it in the broker: `twilio-broker credential add NAME --api-key --key-type \
             main --account-sid AC... --key-sid SK... --secret-stdin --label environment=%env%`.",
        ],
    },
    Note {
        id: "steps-restricted-key",
        kind: Step,
        when: |s| is_key(s, KeyType::Restricted),
        says: &[
            "Create it with the v1 IAM API (or the Console): POST https://iam.twilio.com/v1/Keys \
             with AccountSid, FriendlyName, KeyType=restricted and Policy={\"allow\":[...]} \
             naming only the permissions for %resources%, authenticated with a Main key or the \
             Auth Token. Never POST /2010-04-01/Accounts/{AccountSid}/Keys.json: it silently \
             makes a Standard key.",
            "Store it in the broker: `twilio-broker credential add NAME --api-key --key-type \
             restricted --account-sid AC... --key-sid SK... --secret-stdin --label \
             environment=%env%`.",
            "A call outside the policy fails with 70051: add that permission to the policy, do \
             not switch to a broader key.",
        ],
    },
    Note {
        id: "steps-oauth2",
        kind: Step,
        when: |s| s.method == Method::OAuth2,
        says: &[
            "Create an OAuth app in the Twilio Console (or POST \
             https://iam.twilio.com/v1/Account/OAuthApps) and note its client id (OQ...) and \
             client secret.",
            "Store it in the broker: `twilio-broker credential add NAME --oauth-client \
             --account-sid AC... --client-id OQ... --secret-stdin --label environment=%env%`.",
            "Services call GetBearer (`twilio-broker token bearer NAME`) and send \
             `Authorization: Bearer <token>`; the broker caches the token and refreshes it \
             before its hour is up.",
        ],
    },
    Note {
        id: "steps-access-token",
        kind: Step,
        when: |s| s.method == Method::AccessToken,
        says: &[
            "Create a Standard API key: Twilio Console > Account > API keys & tokens > Create \
             API key (type Standard), or POST /2010-04-01/Accounts/{AccountSid}/Keys.json.",
            "Store it in the broker: `twilio-broker credential add NAME --api-key --key-type \
             standard --account-sid AC... --key-sid SK... --secret-stdin --label \
             environment=%env%`.",
            "Once your server has authenticated the user, it calls MintAccessToken \
             (`twilio-broker token mint NAME`) with the user's identity, a %grant% and the \
             shortest TTL that works, and hands the JWT to the %sdk%.",
            "To cut off every token at once, delete the signing key (Console, or DELETE \
             /2010-04-01/Accounts/{AccountSid}/Keys/{KeySid}.json) and store a new one.",
        ],
    },
    Note {
        id: "steps-webhooks",
        kind: Step,
        when: |s| {
            !client(s)
                && s.facts.needs.environment != Environment::Prototype
                && s.method != Method::TestCredentials
        },
        says: &[
            "If the service receives Twilio webhooks, check their signatures with \
             ValidateWebhook against an auth_token credential kept in the broker, so the \
             service never holds the Auth Token.",
        ],
    },
    Note {
        id: "steps-doctor-gate",
        kind: Step,
        when: |s| s.facts.needs.environment == Environment::Production,
        says: &[
            "Gate deployments on `twilio-broker doctor` over your env and config files: it \
             fails on an Auth Token in production, a secret under version control or a SID \
             with the wrong prefix.",
        ],
    },
];
