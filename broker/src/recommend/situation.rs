//! What the tables look at: a request's [`Facts`] (derived before a method
//! is chosen) and its [`Situation`] (the facts with the chosen method). Its
//! own module so that `rules` (which chooses) and `notes`/`limits` (which
//! read the choice) all depend on it and not on each other.

use super::resources::Resources;
use super::{Environment, Method, Needs, Side};
use crate::credential::KeyType;

/// The request plus what follows from it before a method is chosen.
#[derive(Debug, Clone)]
pub struct Facts<'a> {
    /// The request.
    pub needs: &'a Needs,
    /// Its resources, sorted.
    pub resources: Resources,
    /// `needs_account_management`, or Accounts/Keys among the resources.
    pub account_management: bool,
    /// A prototype that asked for nothing stricter: the Auth Token shortcut applies.
    pub plain_prototype: bool,
    /// What test credentials cannot serve here (empty when they can).
    pub test_blockers: Vec<String>,
}

impl<'a> Facts<'a> {
    /// Derives the facts of `needs`.
    pub fn new(needs: &'a Needs) -> Self {
        let resources = Resources::classify(&needs.resources);
        let account_management =
            needs.needs_account_management || !resources.account_management.is_empty();
        let mut test_blockers = resources.beyond_test_credentials.clone();
        if needs.needs_account_management && resources.account_management.is_empty() {
            test_blockers.push("/Accounts and /Keys".to_owned());
        }
        Facts {
            needs,
            plain_prototype: needs.environment == Environment::Prototype
                && !needs.time_limited
                && !needs.least_privilege,
            account_management,
            test_blockers,
            resources,
        }
    }

    /// The code runs on a server (not in a browser or app).
    pub(super) fn server(&self) -> bool {
        self.needs.side == Side::Server
    }
}

/// The facts with the chosen method: what notes and limits look at.
#[derive(Debug, Clone)]
pub struct Situation<'a> {
    /// The request's facts.
    pub facts: Facts<'a>,
    /// The chosen method.
    pub method: Method,
    /// The API key type to create, if any.
    pub key_type: Option<KeyType>,
}
