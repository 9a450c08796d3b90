//! The bearer cache view (policy `ConsoleBearerCache`, then per credential):
//! for each OAuth credential the caller may see, whether a token is cached,
//! seconds until it expires, when it was last refreshed, and the token
//! endpoint's last outcome. Times and codes only: never a token, never
//! Twilio's message.

use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use maud::{Markup, html};

use super::web::{self, pass};
use super::{Console, layout};
use crate::audit::rfc3339;
use crate::bearer::{EntryState, LastOutcome};
use crate::credential::Kind;
use crate::error::Result;
use crate::gate::{Checked, Describe};
use crate::policy::{Action, Rpc};

/// Most OAuth credentials shown (a store rarely holds more).
const MAX_SHOWN: usize = 1000;

/// The view takes no input.
pub(super) struct BearerView;

impl Checked for BearerView {
    fn action(&self) -> Action<'_> {
        Action::new(Rpc::ConsoleBearerCache)
    }
}

impl Describe for BearerView {
    const RPC: Rpc = Rpc::ConsoleBearerCache;
    type Checked = BearerView;
    fn check(self) -> Result<BearerView> {
        Ok(self)
    }
}

/// `GET /bearer`.
pub(super) async fn view(State(console): State<Arc<Console>>, headers: HeaderMap) -> Response {
    let session = match web::session(&console, &headers) {
        Ok(session) => session,
        Err(refusal) => return refusal,
    };
    let backend = &console.backend;
    let shown_to = &session;
    pass(&console, &session, BearerView, |_, caller| async move {
        let policy = backend.policy().current();
        let credentials = backend.vault().page(None, MAX_SHOWN, |c| {
            c.secret.kind() == Kind::OAuthClient
                && policy.permits(
                    &caller,
                    &Action::new(Rpc::ConsoleBearerCache).credential(&c.name),
                )
        });
        let rows: Vec<(String, Option<EntryState>)> = credentials
            .iter()
            .map(|c| (c.name.clone(), backend.bearers().entry_state(&c.name)))
            .collect();
        let body = render(&rows, SystemTime::now());
        Ok(layout::page("Bearer cache", shown_to, "/bearer", body))
    })
    .await
}

fn render(rows: &[(String, Option<EntryState>)], now: SystemTime) -> Markup {
    html! {
        table #bearers {
            caption { "OAuth credentials and their cached bearer tokens (times only)" }
            thead {
                tr {
                    th scope="col" { "Credential" }
                    th scope="col" { "Cached" }
                    th scope="col" { "Expires in" }
                    th scope="col" { "Last refreshed" }
                    th scope="col" { "Last upstream outcome" }
                }
            }
            tbody {
                @for (name, state) in rows {
                    tr data-name=(name) {
                        td { code { (name) } }
                        @match state {
                            None => {
                                td.cached { "no" }
                                td {}
                                td {}
                                td.outcome { "never requested" }
                            }
                            Some(state) => {
                                td.cached { @if state.expires_at.is_some() { "yes" } @else { "no" } }
                                td.expires {
                                    @if let Some(at) = state.expires_at {
                                        (at.duration_since(now).map_or(0, |d| d.as_secs())) " s"
                                    }
                                }
                                td { @if let Some(at) = state.received_at { (rfc3339(at)) } }
                                td.outcome { (outcome(state)) }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn outcome(state: &EntryState) -> Markup {
    html! {
        @match &state.last {
            LastOutcome::Ok => "ok",
            LastOutcome::Rejected { status, code } => {
                span.deny {
                    "rejected: HTTP " (status)
                    @if let Some(code) = code { ", Twilio error " (code) }
                }
            }
            LastOutcome::Unavailable { retry_at } => {
                span.deny {
                    "unavailable"
                    @if let Some(at) = retry_at { "; next retry at " (rfc3339(*at)) }
                }
            }
        }
        @if state.refreshing { " (refreshing)" }
    }
}
