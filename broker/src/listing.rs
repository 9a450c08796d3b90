//! Listing credentials a page at a time (AIP-158) with a small filter
//! language (AIP-160 style).
//!
//! **Filter grammar.** Terms joined by `AND` (case-insensitive), each
//! `FIELD OP VALUE`:
//!
//! ```text
//! filter := term { "AND" term }
//! term   := field ( "=" | "!=" ) value
//! field  := "kind" | "name" | "labels." KEY
//! value  := WORD | '"' TEXT '"'        (WORD: letters, digits, . _ - / : *)
//! ```
//!
//! `kind` is `auth_token`, `api_key`, `oauth_client` or `test`; `name` may
//! hold `*` wildcards; `labels.KEY = VALUE` needs the label with that value,
//! `labels.KEY != VALUE` holds when the label is absent or different, and
//! `labels.KEY = *` means the label is present.
//!
//! **Page tokens** carry the last name served, bound by an HMAC to the
//! caller and the filter that produced them: a token from another caller or
//! filter is refused, and one from a restarted broker too (the key is drawn
//! per process). Pages are ordered by name, so concurrent writes never make
//! a page repeat or skip a credential that existed throughout.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::credential::{Credential, Kind};
use crate::error::{Error, Result};

/// Page size when the request gives 0: stores of up to this many
/// credentials still come back in one page.
pub const DEFAULT_PAGE_SIZE: usize = 1000;
/// Largest page served; larger requests are served this many.
pub const MAX_PAGE_SIZE: usize = 1000;
/// Longest filter accepted, in bytes.
const MAX_FILTER_LEN: usize = 1024;

/// One comparison.
#[derive(Debug, Clone)]
enum Term {
    Kind {
        kind: Kind,
        equal: bool,
    },
    Name {
        pattern: globset::GlobMatcher,
        equal: bool,
    },
    Label {
        key: String,
        value: Option<String>,
        equal: bool,
    },
}

/// A parsed filter; the empty filter matches everything.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    terms: Vec<Term>,
}

fn invalid(reason: impl Into<String>) -> Error {
    Error::invalid("filter", reason)
}

/// Splits a filter into tokens: words, quoted strings, `=`, `!=`.
fn tokens(text: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        match c {
            c if c.is_whitespace() => {}
            '=' => out.push("=".to_owned()),
            '!' => match chars.next() {
                Some((_, '=')) => out.push("!=".to_owned()),
                _ => return Err(invalid(format!("at {at}: `!` must be followed by `=`"))),
            },
            '"' => {
                let mut value = String::from("\"");
                loop {
                    match chars.next() {
                        Some((_, '"')) => break,
                        Some((_, c)) => value.push(c),
                        None => return Err(invalid(format!("at {at}: unterminated quote"))),
                    }
                }
                out.push(value);
            }
            c if is_word_char(c) => {
                let mut word = c.to_string();
                while let Some((_, c)) = chars.peek().copied().filter(|(_, c)| is_word_char(*c)) {
                    word.push(c);
                    chars.next();
                }
                out.push(word);
            }
            other => {
                return Err(invalid(format!(
                    "at {at}: unexpected {other:?}; write FIELD = VALUE terms joined by AND"
                )));
            }
        }
    }
    Ok(out)
}

fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/' | ':' | '*')
}

impl Filter {
    /// Parses a filter; errors say where and what was expected.
    pub fn parse(text: &str) -> Result<Self> {
        if text.len() > MAX_FILTER_LEN {
            return Err(invalid(format!(
                "is {} bytes long; the limit is {MAX_FILTER_LEN}",
                text.len()
            )));
        }
        let tokens = tokens(text)?;
        let mut terms = Vec::new();
        let mut rest = tokens.as_slice();
        while !rest.is_empty() {
            let [field, op, value, tail @ ..] = rest else {
                return Err(invalid(format!(
                    "{:?} is incomplete: write FIELD = VALUE (fields: kind, name, labels.KEY)",
                    rest.join(" ")
                )));
            };
            let equal = match op.as_str() {
                "=" => true,
                "!=" => false,
                other => {
                    return Err(invalid(format!(
                        "expected = or != after {field:?}, found {other:?}"
                    )));
                }
            };
            let value = value.trim_start_matches('"').to_owned();
            terms.push(term(field, value, equal)?);
            rest = match tail {
                [] => tail,
                [and, after @ ..] if and.eq_ignore_ascii_case("AND") && !after.is_empty() => after,
                [other, ..] => {
                    return Err(invalid(format!(
                        "expected AND between terms, found {other:?} (OR is not supported)"
                    )));
                }
            };
        }
        Ok(Filter { terms })
    }

    /// True when `credential` passes every term.
    pub fn matches(&self, credential: &Credential) -> bool {
        self.terms.iter().all(|term| match term {
            Term::Kind { kind, equal } => (credential.secret.kind() == *kind) == *equal,
            Term::Name { pattern, equal } => pattern.is_match(&credential.name) == *equal,
            Term::Label { key, value, equal } => {
                let found = credential.labels.get(key);
                let hit = match value {
                    None => found.is_some(),
                    Some(value) => found == Some(value),
                };
                hit == *equal
            }
        })
    }
}

fn term(field: &str, value: String, equal: bool) -> Result<Term> {
    if field == "kind" {
        let kind = [Kind::AuthToken, Kind::ApiKey, Kind::OAuthClient, Kind::Test]
            .into_iter()
            .find(|k| k.as_str() == value)
            .ok_or_else(|| {
                invalid(format!(
                    "kind {value:?} is not one of auth_token, api_key, oauth_client, test"
                ))
            })?;
        return Ok(Term::Kind { kind, equal });
    }
    if field == "name" {
        let pattern = globset::GlobBuilder::new(&value)
            .literal_separator(false)
            .build()
            .map_err(|_| invalid(format!("name pattern {value:?} is not a valid glob")))?
            .compile_matcher();
        return Ok(Term::Name { pattern, equal });
    }
    if let Some(key) = field.strip_prefix("labels.").filter(|k| !k.is_empty()) {
        let value = (value != "*").then_some(value);
        return Ok(Term::Label {
            key: key.to_owned(),
            value,
            equal,
        });
    }
    Err(invalid(format!(
        "unknown field {field:?}; fields are kind, name and labels.KEY"
    )))
}

/// Signs and checks page tokens for this process.
pub struct PageTokens {
    key: [u8; 32],
}

impl Default for PageTokens {
    fn default() -> Self {
        let mut key = [0u8; 32];
        rand::fill(&mut key);
        PageTokens { key }
    }
}

impl PageTokens {
    fn tag(&self, caller: &str, filter: &str, last: &str) -> Vec<u8> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key)
            .expect("HMAC-SHA256 takes keys of any length");
        for part in [caller, filter, last] {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part.as_bytes());
        }
        mac.finalize().into_bytes()[..16].to_vec()
    }

    /// A token saying "continue after `last`" for this caller and filter.
    pub fn issue(&self, caller: &str, filter: &str, last: &str) -> String {
        let mut bytes = self.tag(caller, filter, last);
        bytes.extend_from_slice(last.as_bytes());
        B64.encode(bytes)
    }

    /// The name to continue after, if the token was issued to this caller
    /// for this filter by this process.
    pub fn check(&self, caller: &str, filter: &str, token: &str) -> Result<String> {
        let refused = || {
            Error::invalid(
                "page_token",
                "was not issued for this caller and filter by this broker (or the broker \
                 restarted): start again without a page_token",
            )
        };
        let bytes = B64.decode(token).map_err(|_| refused())?;
        if bytes.len() < 16 {
            return Err(refused());
        }
        let (tag, last) = bytes.split_at(16);
        let last = std::str::from_utf8(last).map_err(|_| refused())?;
        let expected = self.tag(caller, filter, last);
        if !bool::from(subtle::ConstantTimeEq::ct_eq(tag, expected.as_slice())) {
            return Err(refused());
        }
        Ok(last.to_owned())
    }
}

/// One page of credentials, as the caller's policy lets it see them.
pub struct Page {
    /// Ordered by name.
    pub credentials: Vec<std::sync::Arc<Credential>>,
    /// The token of the next page; empty on the last page.
    pub next_page_token: String,
}

/// One page of the credentials `caller`'s rules cover for ListCredentials
/// (a scoped admin sees only its own), after `filter`: the one listing both
/// the gRPC ListCredentials and the console serve.
pub fn page(
    vault: &crate::store::Vault,
    policy: &crate::policy::PolicyEngine,
    tokens: &PageTokens,
    caller: &crate::caller::Caller,
    asked: i32,
    filter_text: &str,
    page_token: &str,
) -> Result<Page> {
    use crate::policy::{Action, Rpc};
    let size = page_size(asked)?;
    let filter = Filter::parse(filter_text)?;
    let after = match page_token {
        "" => None,
        token => Some(tokens.check(caller.principal(), filter_text, token)?),
    };
    let policy = policy.current();
    // A range read from the token's name: O(log n + credentials looked at),
    // one snapshot of the index, never a copy of the whole store.
    let mut credentials = vault.page(after.as_deref(), size + 1, |c| {
        filter.matches(c)
            && policy.permits(
                caller,
                &Action::new(Rpc::ListCredentials).credential(&c.name),
            )
    });
    let next_page_token = if credentials.len() > size {
        credentials.truncate(size);
        credentials.last().map_or_else(String::new, |last| {
            tokens.issue(caller.principal(), filter_text, &last.name)
        })
    } else {
        String::new()
    };
    Ok(Page {
        credentials,
        next_page_token,
    })
}

/// The page size a request asks for, within bounds.
pub fn page_size(asked: i32) -> Result<usize> {
    match usize::try_from(asked) {
        Err(_) => Err(Error::invalid(
            "page_size",
            "must not be negative (0 means the default, 1000)",
        )),
        Ok(0) => Ok(DEFAULT_PAGE_SIZE),
        Ok(n) => Ok(n.min(MAX_PAGE_SIZE)),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::SystemTime;

    use super::*;
    use crate::credential::Secret;

    fn credential(name: &str, labels: &[(&str, &str)]) -> Credential {
        Credential {
            name: name.into(),
            labels: labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<BTreeMap<_, _>>(),
            created_at: SystemTime::UNIX_EPOCH,
            updated_at: SystemTime::UNIX_EPOCH,
            secret: Secret::AuthToken {
                account_sid: format!("AC{}", "0".repeat(32)),
                auth_token: "x".repeat(32).into(),
                secondary_auth_token: None,
                rotation: None,
            },
        }
    }

    #[test]
    fn filters_match_kind_name_and_labels() {
        let prod = credential("team-a-token", &[("environment", "production")]);
        let dev = credential("team-b-token", &[]);
        for (text, matches_prod, matches_dev) in [
            ("", true, true),
            ("kind = auth_token", true, true),
            ("kind != auth_token", false, false),
            ("labels.environment = production", true, false),
            ("labels.environment != production", false, true),
            ("labels.environment = *", true, false),
            ("name = team-a-*", true, false),
            (
                "name = \"team-*\" AND labels.environment = production",
                true,
                false,
            ),
            ("kind = auth_token and name != team-a-*", false, true),
        ] {
            let filter = Filter::parse(text).expect(text);
            assert_eq!(filter.matches(&prod), matches_prod, "{text}");
            assert_eq!(filter.matches(&dev), matches_dev, "{text}");
        }
    }

    #[test]
    fn filter_errors_say_what_to_write() {
        for (text, needle) in [
            ("kind = fax", "not one of"),
            ("colour = red", "unknown field"),
            ("kind", "incomplete"),
            ("kind = api_key OR kind = test", "OR is not supported"),
            ("kind ~ api_key", "unexpected"),
            ("name = \"open", "unterminated"),
            ("kind = api_key AND", "expected AND"),
        ] {
            let err = Filter::parse(text).expect_err(text).to_string();
            assert!(
                err.starts_with("filter ") && err.contains(needle),
                "{text}: {err}"
            );
        }
        assert!(Filter::parse(&"a".repeat(2000)).is_err());
    }

    #[test]
    fn page_tokens_are_bound_to_caller_filter_and_process() {
        let tokens = PageTokens::default();
        let token = tokens.issue("uid:1", "kind = test", "name-7");
        assert_eq!(
            tokens.check("uid:1", "kind = test", &token).expect("ok"),
            "name-7"
        );
        assert!(tokens.check("uid:2", "kind = test", &token).is_err());
        assert!(tokens.check("uid:1", "", &token).is_err());
        assert!(
            PageTokens::default()
                .check("uid:1", "kind = test", &token)
                .is_err()
        );
        assert!(tokens.check("uid:1", "kind = test", "garbage!").is_err());
        assert_eq!(page_size(0).expect("default"), DEFAULT_PAGE_SIZE);
        assert_eq!(page_size(5000).expect("capped"), MAX_PAGE_SIZE);
        assert!(page_size(-1).is_err());
    }
}
