//! The credentials view: one page of the credentials the session's caller
//! may list (the same listing, filter grammar and page tokens as
//! ListCredentials, policy `ListCredentials`), with what Recommend's review
//! says about each. Metadata only: no field of a secret is read here.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use maud::{Markup, html};

use super::web::{self, pass};
use super::{Console, layout};
use crate::audit::rfc3339;
use crate::credential::{Credential, Kind, Secret};
use crate::error::{Error, Result};
use crate::gate::{Checked, Describe};
use crate::listing::{self, Filter};
use crate::policy::{Action, Rpc};
use crate::recommend::{self, Environment, Needs, Side};

/// Credentials per page unless the query says otherwise.
pub(super) const PAGE_SIZE: i32 = 100;

/// The view's query: filters and the page.
#[derive(Debug, Default, Clone, serde::Deserialize, serde::Serialize)]
pub(super) struct CredentialsQuery {
    /// `auth_token`, `api_key`, `oauth_client`, `test`; empty: every kind.
    #[serde(default)]
    pub kind: String,
    /// `KEY=VALUE` (that label with that value) or `KEY` (the label is set).
    #[serde(default)]
    pub label: String,
    /// Credentials per page (1 to 1000; default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<i32>,
    /// The page token of the previous page's "Next" link.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub page: String,
}

/// The query, checked: the ListCredentials filter it stands for.
pub(super) struct CheckedQuery {
    query: CredentialsQuery,
    filter: String,
    size: i32,
}

impl Checked for CheckedQuery {
    /// The listing as a whole; each credential is then checked on its own.
    fn action(&self) -> Action<'_> {
        Action::new(Rpc::ListCredentials)
    }
}

impl Describe for CredentialsQuery {
    const RPC: Rpc = Rpc::ListCredentials;
    type Checked = CheckedQuery;
    fn check(self) -> Result<CheckedQuery> {
        let mut terms = Vec::new();
        if !self.kind.is_empty() {
            if ![Kind::AuthToken, Kind::ApiKey, Kind::OAuthClient, Kind::Test]
                .iter()
                .any(|k| k.as_str() == self.kind)
            {
                return Err(Error::invalid(
                    "kind",
                    "must be auth_token, api_key, oauth_client or test (or empty for every kind)",
                ));
            }
            terms.push(format!("kind = {}", self.kind));
        }
        let label = self.label.trim();
        if !label.is_empty() {
            let (key, value) = match label.split_once('=') {
                Some((key, value)) => (key.trim(), value.trim()),
                None => (label, "*"),
            };
            if value.contains('"') || key.is_empty() {
                return Err(Error::invalid(
                    "label",
                    "must be KEY=VALUE or KEY (a value without double quotes)",
                ));
            }
            let value = if value == "*" {
                "*".to_owned()
            } else {
                format!("\"{value}\"")
            };
            terms.push(format!("labels.{key} = {value}"));
        }
        let filter = terms.join(" AND ");
        Filter::parse(&filter).map_err(|_| {
            Error::invalid(
                "label",
                "must be KEY=VALUE or KEY, the key of letters, digits, '.', '_', '-', '/' or ':'",
            )
        })?;
        let size = self.size.unwrap_or(PAGE_SIZE);
        if !(1..=1000).contains(&size) {
            return Err(Error::invalid("size", "must be between 1 and 1000"));
        }
        Ok(CheckedQuery {
            query: self,
            filter,
            size,
        })
    }
}

/// `GET /credentials`.
pub(super) async fn view(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    Query(query): Query<CredentialsQuery>,
) -> Response {
    let session = match web::session(&console, &headers) {
        Ok(session) => session,
        Err(refusal) => return refusal,
    };
    let backend = &console.backend;
    let shown_to = &session;
    pass(&console, &session, query, |checked, caller| async move {
        let page = listing::page(
            backend.vault(),
            backend.policy(),
            backend.page_tokens(),
            &caller,
            checked.size,
            &checked.filter,
            &checked.query.page,
        )?;
        let body = render(&checked, &page, SystemTime::now());
        Ok(layout::page("Credentials", shown_to, "/credentials", body))
    })
    .await
}

/// The page's body.
fn render(checked: &CheckedQuery, page: &listing::Page, now: SystemTime) -> Markup {
    let query = &checked.query;
    let next = (!page.next_page_token.is_empty()).then(|| {
        let next = CredentialsQuery {
            page: page.next_page_token.clone(),
            size: Some(checked.size),
            ..query.clone()
        };
        format!(
            "/credentials?{}",
            serde_urlencoded::to_string(&next).unwrap_or_default()
        )
    });
    html! {
        form.filters method="get" action="/credentials" role="search" {
            label { "Kind"
                select name="kind" {
                    option value="" selected[query.kind.is_empty()] { "every kind" }
                    @for kind in ["auth_token", "api_key", "oauth_client", "test"] {
                        option value=(kind) selected[query.kind == kind] { (kind) }
                    }
                }
            }
            label { "Label (KEY=VALUE or KEY)"
                input type="text" name="label" value=(query.label) placeholder="environment=production";
            }
            input type="hidden" name="size" value=(checked.size);
            button type="submit" { "Filter" }
        }
        p #count { (page.credentials.len()) " credential(s) on this page." }
        table #credentials {
            caption { "Stored credentials, ordered by name (metadata only: secrets never leave the broker)" }
            thead {
                tr {
                    th scope="col" { "Name" }
                    th scope="col" { "Kind" }
                    th scope="col" { "Account SID" }
                    th scope="col" { "Key SID / client id" }
                    th scope="col" { "Key type" }
                    th scope="col" { "Labels" }
                    th scope="col" { "Created" }
                    th scope="col" { "Updated" }
                    th scope="col" { "Key age" }
                    th scope="col" { "Recommend says" }
                }
            }
            tbody {
                @for credential in &page.credentials {
                    (row(credential, now))
                }
            }
        }
        @if let Some(next) = next {
            p.pager { a #next rel="next" href=(next) { "Next page" } }
        }
    }
}

/// One credential's row: metadata, never a secret.
fn row(credential: &Credential, now: SystemTime) -> Markup {
    let (id, key_type) = match &credential.secret {
        Secret::ApiKey {
            key_sid, key_type, ..
        } => (key_sid.as_str(), key_type.as_str()),
        Secret::OAuthClient { client_id, .. } => (client_id.as_str(), ""),
        Secret::AuthToken { .. } | Secret::Test { .. } => ("", ""),
    };
    let age = now
        .duration_since(credential.updated_at)
        .unwrap_or_default();
    html! {
        tr data-name=(credential.name) {
            td { code { (credential.name) } }
            td { (credential.secret.kind().as_str()) }
            td { code { (credential.secret.account_sid()) } }
            td { code { (id) } }
            td { (key_type) }
            td {
                @for (key, value) in &credential.labels {
                    span.label { (key) "=" (value) }
                }
            }
            td.time { (short_time(credential.created_at)) }
            td.time { (short_time(credential.updated_at)) }
            td { (age_in_words(age)) }
            td.review {
                @for finding in review(credential) {
                    span.finding title=(finding.id) { (finding.text) }
                }
            }
        }
    }
}

/// Recommend's review of a stored credential for a server in the
/// environment its `environment` label names (production when unlabelled:
/// the strictest reading).
fn review(credential: &Credential) -> Vec<recommend::Finding> {
    let environment = credential
        .environment_label()
        .and_then(Environment::from_label)
        .unwrap_or(Environment::Production);
    let needs = Needs {
        environment,
        side: Side::Server,
        time_limited: false,
        charge_free: false,
        needs_account_management: false,
        least_privilege: false,
        resources: Vec::new(),
        client_sdk: None,
    };
    recommend::review(credential, &needs).unwrap_or_default()
}

/// RFC 3339 to the second (`2026-01-02T03:04:05Z`): a table cell's width.
fn short_time(t: SystemTime) -> String {
    let full = rfc3339(t);
    match full.split_once('.') {
        Some((seconds, _)) => format!("{seconds}Z"),
        None => full,
    }
}

/// `3 d 4 h`, `5 h 2 min`, `40 s`.
fn age_in_words(age: Duration) -> String {
    let s = age.as_secs();
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min", s / 60),
        3600..86_400 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        _ => format!("{} d {} h", s / 86_400, s % 86_400 / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(kind: &str, label: &str) -> CredentialsQuery {
        CredentialsQuery {
            kind: kind.into(),
            label: label.into(),
            ..CredentialsQuery::default()
        }
    }

    #[test]
    fn filters_become_the_listing_grammar() {
        let filter = |q: CredentialsQuery| q.check().map(|c| c.filter);
        assert_eq!(filter(query("", "")).ok().as_deref(), Some(""));
        assert_eq!(
            filter(query("api_key", "environment=production"))
                .ok()
                .as_deref(),
            Some("kind = api_key AND labels.environment = \"production\"")
        );
        assert_eq!(
            filter(query("", "team")).ok().as_deref(),
            Some("labels.team = *")
        );
    }

    #[test]
    fn bad_filters_name_their_field() {
        let field = |q: CredentialsQuery| match q.check() {
            Err(Error::InvalidField { field, .. }) => field,
            other => panic!("not refused: {:?}", other.map(|c| c.filter)),
        };
        assert_eq!(field(query("password", "")), "kind");
        assert_eq!(field(query("", "a=\"b")), "label");
        assert_eq!(field(query("", "bad key=x")), "label");
        let mut big = query("", "");
        big.size = Some(5000);
        assert_eq!(field(big), "size");
    }

    #[test]
    fn times_are_shown_to_the_second() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_500);
        assert_eq!(short_time(t), "1970-01-01T00:00:01Z");
    }

    #[test]
    fn ages_read_as_words() {
        assert_eq!(age_in_words(Duration::from_secs(40)), "40 s");
        assert_eq!(age_in_words(Duration::from_secs(3 * 60)), "3 min");
        assert_eq!(
            age_in_words(Duration::from_secs(2 * 3600 + 60)),
            "2 h 1 min"
        );
        assert_eq!(
            age_in_words(Duration::from_secs(3 * 86_400 + 4 * 3600)),
            "3 d 4 h"
        );
    }
}
