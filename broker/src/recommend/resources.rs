//! Twilio resource names as Recommend understands them: which ones test
//! credentials reach, which ones are account management, and which names the
//! broker knows at all (an unknown name is likely a typo, so it is warned
//! about rather than silently treated as a resource test credentials lack).

use crate::error::{Error, Result};

/// The resources test credentials reach (WIRE.md section 5; the current docs
/// list four). Every other resource answers 403 Forbidden.
pub const TEST_CREDENTIAL_RESOURCES: [&str; 4] =
    ["Messages", "Calls", "IncomingPhoneNumbers", "Lookups"];

/// The resources only a Main key or the Auth Token reach (Standard keys get 20003).
pub const ACCOUNT_MANAGEMENT_RESOURCES: [&str; 2] = ["Accounts", "Keys"];

/// Other resource and product names the broker recognises. Not exhaustive:
/// an unknown name is a warning, never an error.
const OTHER_KNOWN: &[&str] = &[
    "Addresses",
    "Alerts",
    "Applications",
    "AvailablePhoneNumbers",
    "Balance",
    "Chat",
    "Conferences",
    "ConnectApps",
    "Content",
    "Conversations",
    "Events",
    "Flows",
    "Functions",
    "Insights",
    "Intelligence",
    "Media",
    "Messaging",
    "Notifications",
    "Notify",
    "Numbers",
    "OutgoingCallerIds",
    "Pricing",
    "Proxy",
    "Queues",
    "Recordings",
    "Rooms",
    "Serverless",
    "Services",
    "ShortCodes",
    "Sip",
    "Studio",
    "Sync",
    "TaskRouter",
    "Transcriptions",
    "Trunking",
    "TrustHub",
    "Usage",
    "Verify",
    "Video",
    "Voice",
];

/// Other spellings people use, mapped to the canonical name.
const ALIASES: &[(&str, &str)] = &[
    ("Message", "Messages"),
    ("SMS", "Messages"),
    ("SMS/Messages", "Messages"),
    ("Call", "Calls"),
    ("Lookup", "Lookups"),
    ("Lookups/PhoneNumbers", "Lookups"),
    ("Lookup/PhoneNumbers", "Lookups"),
    ("PhoneNumbers", "Lookups"),
    ("Account", "Accounts"),
    ("Key", "Keys"),
    ("ApiKeys", "Keys"),
];

/// Most resources one request may list.
pub const MAX_RESOURCES: usize = 100;
/// Longest accepted resource name.
pub const MAX_RESOURCE_LEN: usize = 100;

/// Checks resource names: at most [`MAX_RESOURCES`], each 1 to
/// [`MAX_RESOURCE_LEN`] characters of letters, digits and `/ . _ -`.
pub fn check(resources: &[String]) -> Result<()> {
    if resources.len() > MAX_RESOURCES {
        return Err(Error::invalid(
            "resources",
            format!(
                "has {} entries; the limit is {MAX_RESOURCES}",
                resources.len()
            ),
        ));
    }
    for (i, name) in resources.iter().enumerate() {
        let name = name.trim();
        let ok = !name.is_empty()
            && name.len() <= MAX_RESOURCE_LEN
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '_' | '-'));
        if !ok {
            return Err(Error::invalid(
                format!("resources[{i}]"),
                format!(
                    "must be a Twilio resource name such as \"Messages\" or \"Calls\": \
                     1 to {MAX_RESOURCE_LEN} letters, digits and / . _ -"
                ),
            ));
        }
    }
    Ok(())
}

/// A resource name in canonical form (`/Messages.json` and `messages` are
/// `Messages`), and whether the broker knows it.
pub fn canonical(name: &str) -> (String, bool) {
    let trimmed = name.trim().trim_start_matches('/');
    let trimmed = trimmed.strip_suffix(".json").unwrap_or(trimmed);
    let known = TEST_CREDENTIAL_RESOURCES
        .iter()
        .chain(ACCOUNT_MANAGEMENT_RESOURCES.iter())
        .chain(OTHER_KNOWN.iter())
        .find(|k| k.eq_ignore_ascii_case(trimmed))
        .copied()
        .or_else(|| {
            ALIASES
                .iter()
                .find(|(alias, _)| alias.eq_ignore_ascii_case(trimmed))
                .map(|(_, canonical)| *canonical)
        });
    match known {
        Some(name) => (name.to_owned(), true),
        None => (trimmed.to_owned(), false),
    }
}

/// The resources of a request, sorted into what the rules ask about.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resources {
    /// Every resource, canonical, without duplicates, in request order.
    pub all: Vec<String>,
    /// Those test credentials do not reach (known or not).
    pub beyond_test_credentials: Vec<String>,
    /// Accounts and Keys, when named.
    pub account_management: Vec<String>,
    /// Names the broker does not know.
    pub unknown: Vec<String>,
}

impl Resources {
    /// Sorts `names` (already checked by [`check`]).
    pub fn classify(names: &[String]) -> Self {
        let mut out = Resources::default();
        for name in names {
            let (name, known) = canonical(name);
            if out.all.contains(&name) {
                continue;
            }
            if !TEST_CREDENTIAL_RESOURCES.contains(&name.as_str()) {
                out.beyond_test_credentials.push(name.clone());
            }
            if ACCOUNT_MANAGEMENT_RESOURCES.contains(&name.as_str()) {
                out.account_management.push(name.clone());
            }
            if !known {
                out.unknown.push(name.clone());
            }
            out.all.push(name);
        }
        out
    }
}

/// Names joined for a sentence: `A`, `A and B`, `A, B and C`.
pub fn join(names: &[String]) -> String {
    match names {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_names_and_classes() {
        for (given, want, known) in [
            ("messages", "Messages", true),
            ("/Messages.json", "Messages", true),
            ("Lookups/PhoneNumbers", "Lookups", true),
            ("keys", "Keys", true),
            ("Verify", "Verify", true),
            ("Mesages", "Mesages", false),
        ] {
            assert_eq!(canonical(given), (want.to_owned(), known), "{given}");
        }
        let names: Vec<String> = ["sms", "Messages", "Keys", "Recordings", "Mesages"]
            .map(String::from)
            .into();
        let r = Resources::classify(&names);
        assert_eq!(r.all, ["Messages", "Keys", "Recordings", "Mesages"]);
        assert_eq!(r.beyond_test_credentials, ["Keys", "Recordings", "Mesages"]);
        assert_eq!(r.account_management, ["Keys"]);
        assert_eq!(r.unknown, ["Mesages"]);
        assert_eq!(join(&r.all), "Messages, Keys, Recordings and Mesages");
    }

    #[test]
    fn malformed_names_are_rejected_by_index() {
        for (names, field) in [
            (vec!["Messages".to_owned(), " ".to_owned()], "resources[1]"),
            (vec!["Mess ages".to_owned()], "resources[0]"),
            (vec!["x".repeat(MAX_RESOURCE_LEN + 1)], "resources[0]"),
            (vec!["Calls".to_owned(); MAX_RESOURCES + 1], "resources"),
        ] {
            let err = check(&names).expect_err(field).to_string();
            assert!(err.starts_with(&format!("{field} ")), "{err}");
        }
        assert!(check(&["Messages".to_owned(), "Lookups/PhoneNumbers".to_owned()]).is_ok());
    }
}
