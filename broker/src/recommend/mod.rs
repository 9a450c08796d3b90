//! Twilio's auth decision framework as data and small rules: requirements in,
//! a method with reasons, warnings, limits and next steps out (issue 5).
//!
//! The framework lives in tables, each entry with a stable id:
//! [`rules::CHOICES`] picks the method (first match wins, explicit needs
//! before environment defaults), [`notes::NOTES`] adds the reasons, warnings
//! and next steps that follow from the combination, [`limits::LIMITS`] says
//! which of Twilio's limits apply, and [`review::CHECKS`] reviews a stored
//! credential against its labels. The functions here only walk the tables.
//! `crate::doctor` applies the same knowledge to environments and files.
//!
//! Nothing here knows tonic; `grpc/recommend.rs` converts at the edge.

pub mod limits;
pub mod notes;
pub mod resources;
pub mod review;
pub mod rules;
pub mod situation;

#[cfg(test)]
mod tests;

use crate::credential::KeyType;
use crate::error::{Error, Result};

pub use limits::Limit;
pub use review::Finding;

/// Where the software will run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Environment {
    /// A quick prototype on a developer's machine.
    Prototype,
    /// Automated or manual tests.
    Test,
    /// Deployed, serving real users.
    Production,
}

impl Environment {
    /// Every environment, for the tests' exhaustive walks.
    #[cfg(test)]
    pub const ALL: [Environment; 3] = [
        Environment::Prototype,
        Environment::Test,
        Environment::Production,
    ];

    /// Lower-case name, as in labels and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            Environment::Prototype => "prototype",
            Environment::Test => "test",
            Environment::Production => "production",
        }
    }

    /// Reads an `environment` label or variable value: `production`, `prod`,
    /// `prd` and `live` are production; `test`, `testing`, `ci` and `qa` are
    /// tests; `prototype`, `dev`, `development`, `local` and `sandbox` are
    /// prototypes. Anything else (e.g. `staging`) is not comparable: `None`.
    pub fn from_label(value: &str) -> Option<Environment> {
        match value.trim().to_ascii_lowercase().as_str() {
            "production" | "prod" | "prd" | "live" => Some(Environment::Production),
            "test" | "testing" | "ci" | "qa" => Some(Environment::Test),
            "prototype" | "dev" | "development" | "local" | "sandbox" => {
                Some(Environment::Prototype)
            }
            _ => None,
        }
    }
}

/// Which side of the wire holds the credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// A server the organisation controls.
    Server,
    /// A browser or mobile app.
    Client,
}

/// The Twilio client SDK a browser or mobile app uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientSdk {
    /// Twilio Voice SDK.
    Voice,
    /// Twilio Video SDK.
    Video,
    /// Twilio Conversations (or legacy Chat) SDK.
    Conversations,
    /// Twilio Sync SDK.
    Sync,
}

impl ClientSdk {
    /// Every SDK, for the tests' exhaustive walks.
    #[cfg(test)]
    pub const ALL: [ClientSdk; 4] = [
        ClientSdk::Voice,
        ClientSdk::Video,
        ClientSdk::Conversations,
        ClientSdk::Sync,
    ];

    /// The SDK's product name.
    pub fn name(self) -> &'static str {
        match self {
            ClientSdk::Voice => "Voice",
            ClientSdk::Video => "Video",
            ClientSdk::Conversations => "Conversations",
            ClientSdk::Sync => "Sync",
        }
    }

    /// The Access Token grant the SDK needs, with the fields that matter.
    pub fn grant(self) -> &'static str {
        match self {
            ClientSdk::Voice => "Voice grant (outgoing_application_sid AP..., incoming_allow)",
            ClientSdk::Video => "Video grant (room)",
            ClientSdk::Conversations => "Chat grant (service_sid IS...)",
            ClientSdk::Sync => "Sync grant (service_sid IS...)",
        }
    }
}

/// A Twilio authentication method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// Account SID + Auth Token.
    AuthToken,
    /// API key + secret.
    ApiKey,
    /// OAuth2 client_credentials bearer tokens.
    OAuth2,
    /// Access Token (JWT) minted server-side for a client SDK.
    AccessToken,
    /// Test credentials with magic numbers.
    TestCredentials,
}

/// What the caller needs: the request, in domain terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Needs {
    /// Prototype, test or production.
    pub environment: Environment,
    /// Server or browser/mobile client.
    pub side: Side,
    /// Wants credentials that expire on their own.
    pub time_limited: bool,
    /// Wants tests that cost nothing.
    pub charge_free: bool,
    /// Must call /Accounts or /Keys.
    pub needs_account_management: bool,
    /// Must reach only the listed resources.
    pub least_privilege: bool,
    /// Twilio resources it will call, as given (checked by [`Needs::validate`]).
    pub resources: Vec<String>,
    /// The client SDK, client side only.
    pub client_sdk: Option<ClientSdk>,
}

impl Needs {
    /// Needs in `environment` on `side` with nothing else asked (the tests'
    /// starting point).
    #[cfg(test)]
    pub fn new(environment: Environment, side: Side) -> Self {
        Needs {
            environment,
            side,
            time_limited: false,
            charge_free: false,
            needs_account_management: false,
            least_privilege: false,
            resources: Vec::new(),
            client_sdk: None,
        }
    }

    /// Rejects what cannot be reasoned about, naming the field: a client SDK
    /// on the server side, and malformed resource names. Unknown but
    /// well-formed resources are allowed (Twilio adds resources); they become
    /// a warning.
    pub fn validate(&self) -> Result<()> {
        if self.side == Side::Server && self.client_sdk.is_some() {
            return Err(Error::invalid(
                "client_sdk",
                "applies only with SIDE_CLIENT: the SDK runs in the browser or app; \
                 ask with SIDE_CLIENT for the Access Token flow (its server part included)",
            ));
        }
        resources::check(&self.resources)
    }
}

/// The answer: a method, why, the risks, the limits and what to do next.
#[derive(Debug, Clone)]
pub struct Recommendation {
    /// The method to use.
    pub method: Method,
    /// The API key type to create, where a key is involved.
    pub key_type: Option<KeyType>,
    /// Why this method.
    pub reasons: Vec<String>,
    /// Risks in this setup.
    pub warnings: Vec<String>,
    /// Each Twilio limit that applies, in table order.
    pub limits: Vec<&'static Limit>,
    /// Console/API actions and broker calls.
    pub next_steps: Vec<String>,
    /// Ids of the rules that produced the answer: the choice, then each note.
    pub rules: Vec<&'static str>,
}

/// Runs the framework on validated needs.
pub fn recommend(needs: &Needs) -> Result<Recommendation> {
    needs.validate()?;
    Ok(rules::decide(needs))
}

/// Reviews a stored credential against `needs` (validated here) and its labels.
pub fn review(credential: &crate::credential::Credential, needs: &Needs) -> Result<Vec<Finding>> {
    needs.validate()?;
    Ok(review::review(credential, needs))
}
