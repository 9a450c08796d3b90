//! The audit view (policy `ConsoleAudit`): the most recent events, newest
//! first, filtered by caller, RPC and decision, denials marked; and
//! `/audit/events`, the same filter as a live server-sent event stream that
//! the console's script prepends to the table (the page works without it).
//! Events hold no secret or token (the audit invariant); the view shows
//! time, RPC, caller, transport, decision, status, credential and message.

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use maud::{Markup, html};
use serde_json::Value;
use tokio::sync::broadcast;

use super::web::{self, Http};
use super::{Console, layout};
use crate::error::{Error, Result};
use crate::gate::{Checked, Describe, Outcome};
use crate::policy::{Action, Rpc};

/// Most events the page shows.
const SHOWN: usize = 100;
/// Fields a row shows, in order, with their headings.
const COLUMNS: [(&str, &str); 8] = [
    ("time", "Time"),
    ("rpc", "RPC / view"),
    ("caller", "Caller"),
    ("transport", "Transport"),
    ("decision", "Decision"),
    ("status", "Status"),
    ("credential", "Credential"),
    ("message", "Message"),
];

/// The filters, all optional and exact.
#[derive(Debug, Default, Clone, serde::Deserialize)]
pub(super) struct AuditQuery {
    #[serde(default)]
    caller: String,
    #[serde(default)]
    rpc: String,
    #[serde(default)]
    decision: String,
}

impl Checked for AuditQuery {
    fn action(&self) -> Action<'_> {
        Action::new(Rpc::ConsoleAudit)
    }
}

impl Describe for AuditQuery {
    const RPC: Rpc = Rpc::ConsoleAudit;
    type Checked = AuditQuery;
    fn check(self) -> Result<AuditQuery> {
        if !["", "allow", "deny"].contains(&self.decision.as_str()) {
            return Err(Error::invalid("decision", "must be allow, deny or empty"));
        }
        if !self.rpc.is_empty() && Rpc::parse(&self.rpc).is_none() {
            return Err(Error::invalid(
                "rpc",
                "must name an RPC or console view, e.g. ListCredentials or ConsoleAudit",
            ));
        }
        if self.caller.len() > 256 {
            return Err(Error::invalid("caller", "must be at most 256 bytes"));
        }
        Ok(self)
    }
}

impl AuditQuery {
    /// The event, if it is one (not an intent record) and it matches.
    fn pick(&self, line: &[u8]) -> Option<Value> {
        let event: Value = serde_json::from_slice(line).ok()?;
        let field = |name: &str| event[name].as_str().unwrap_or_default().to_owned();
        let matches = |wanted: &str, name: &str| wanted.is_empty() || field(name) == wanted;
        (event["phase"].is_null()
            && matches(&self.caller, "caller")
            && matches(&self.rpc, "rpc")
            && matches(&self.decision, "decision"))
        .then(|| {
            Value::Object(
                COLUMNS
                    .iter()
                    .map(|(name, _)| ((*name).to_owned(), Value::String(field(name))))
                    .collect(),
            )
        })
    }
}

/// A response the gate passed (a page or a stream).
struct Passed(Response);

impl Outcome for Passed {}

/// `GET /audit`.
pub(super) async fn view(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    Query(query): Query<AuditQuery>,
) -> Response {
    let session = match web::session(&console, &headers) {
        Ok(session) => session,
        Err(refusal) => return refusal,
    };
    let shown_to = &session;
    let console_ref = &console;
    let caller = Arc::clone(&session.caller);
    let answer = console
        .backend
        .gate()
        .pass::<Http, _, _, _>(caller, query, |query, _| async move {
            let lines = console_ref
                .recent
                .as_ref()
                .map(|r| r.snapshot())
                .unwrap_or_default();
            let events: Vec<Value> = lines
                .iter()
                .rev()
                .filter_map(|line| query.pick(line))
                .take(SHOWN)
                .collect();
            let body = render(&query, &events, console_ref.recent.is_some());
            let page = layout::page("Audit", shown_to, "/audit", body);
            Ok(Passed(Html(page.into_string()).into_response()))
        })
        .await;
    match answer {
        Ok(Passed(response)) | Err(response) => response,
    }
}

/// `GET /audit/events`: the live stream (audited once, when it opens).
pub(super) async fn events(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    Query(query): Query<AuditQuery>,
) -> Response {
    let session = match web::session(&console, &headers) {
        Ok(session) => session,
        Err(refusal) => return refusal,
    };
    let Some(recent) = console.recent.clone() else {
        return web::not_found().await;
    };
    let answer = console
        .backend
        .gate()
        .pass::<Http, _, _, _>(session.caller, query, |query, _| async move {
            let rx = recent.subscribe();
            let stream = futures::stream::unfold((rx, query), |(mut rx, query)| async move {
                loop {
                    match rx.recv().await {
                        Ok(line) => {
                            if let Some(event) = query.pick(&line) {
                                let event = Event::default().data(event.to_string());
                                return Some((Ok::<_, Infallible>(event), (rx, query)));
                            }
                        }
                        Err(broadcast::error::RecvError::Lagged(_)) => {}
                        Err(broadcast::error::RecvError::Closed) => return None,
                    }
                }
            });
            Ok(Passed(
                Sse::new(stream)
                    .keep_alive(KeepAlive::default())
                    .into_response(),
            ))
        })
        .await;
    match answer {
        Ok(Passed(response)) | Err(response) => response,
    }
}

fn render(query: &AuditQuery, events: &[Value], on: bool) -> Markup {
    let selected = |a: &str, b: &str| a == b;
    html! {
        form.filters method="get" action="/audit" role="search" {
            label { "Caller" input type="text" name="caller" value=(query.caller) placeholder="uid:1000"; }
            label { "RPC or view" input type="text" name="rpc" value=(query.rpc) placeholder="GetBearer"; }
            label { "Decision"
                select name="decision" {
                    option value="" selected[query.decision.is_empty()] { "any" }
                    option value="allow" selected[selected(&query.decision, "allow")] { "allow" }
                    option value="deny" selected[selected(&query.decision, "deny")] { "deny" }
                }
            }
            button type="submit" { "Filter" }
        }
        @if !on {
            p { "No audit sink is configured, so there are no events to show (set [audit] file)." }
        }
        p #live-status aria-live="polite" { "Newest first; the table updates live while this page is open." }
        table #audit-events {
            caption { "Recent audit events (no secret or token is ever recorded)" }
            thead { tr { @for (_, heading) in COLUMNS { th scope="col" { (heading) } } } }
            tbody {
                @for event in events {
                    (row(event))
                }
            }
        }
    }
}

fn row(event: &Value) -> Markup {
    let deny = event["decision"] == "deny";
    html! {
        tr class=[deny.then_some("deny")] {
            @for (name, _) in COLUMNS {
                td { (event[name].as_str().unwrap_or_default()) }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(rpc: &str, caller: &str, decision: &str, phase: Option<&str>) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "time": "2026-01-01T00:00:00Z", "rpc": rpc, "caller": caller,
            "transport": "unix", "decision": decision, "status": "OK", "phase": phase,
        }))
        .expect("json")
    }

    #[test]
    fn filters_pick_events_and_skip_intents() {
        let all = AuditQuery::default();
        assert!(
            all.pick(&line("GetBearer", "uid:1", "allow", None))
                .is_some()
        );
        assert!(
            all.pick(&line("PutCredential", "uid:1", "allow", Some("intent")))
                .is_none()
        );
        let denials = AuditQuery {
            decision: "deny".into(),
            caller: "uid:2".into(),
            ..AuditQuery::default()
        };
        assert!(
            denials
                .pick(&line("GetBearer", "uid:2", "allow", None))
                .is_none()
        );
        assert!(
            denials
                .pick(&line("GetBearer", "uid:1", "deny", None))
                .is_none()
        );
        let picked = denials
            .pick(&line("GetBearer", "uid:2", "deny", None))
            .expect("picked");
        assert_eq!(picked["rpc"], "GetBearer");
        assert!(row(&picked).into_string().contains("class=\"deny\""));
    }

    #[test]
    fn bad_filters_name_their_field() {
        let field = |q: AuditQuery| match q.check() {
            Err(Error::InvalidField { field, .. }) => field,
            _ => panic!("not refused"),
        };
        assert_eq!(
            field(AuditQuery {
                decision: "maybe".into(),
                ..AuditQuery::default()
            }),
            "decision"
        );
        assert_eq!(
            field(AuditQuery {
                rpc: "Nope".into(),
                ..AuditQuery::default()
            }),
            "rpc"
        );
    }
}
