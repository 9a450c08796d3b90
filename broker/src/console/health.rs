//! The health view (policy `ConsoleHealth`): the version, listeners, the
//! policy in force (its file, load time, and what each rule allows), audit
//! sinks and whether they record, plugins, the storage backend and how
//! many credentials it serves. Configuration only: no secret is part of it.

use std::sync::Arc;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use maud::{Markup, html};

use super::web::{self, pass};
use super::{Backend, Console, layout};
use crate::audit::rfc3339;
use crate::error::Result;
use crate::gate::{Checked, Describe};
use crate::policy::{Action, Rpc};

/// What the daemon was started with, as `serve` knows it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Facts {
    /// The gRPC listeners, as bound (`127.0.0.1:50051`, `unix:/…`, `… (tls)`).
    pub listeners: Vec<String>,
    /// The console's own address.
    pub console: String,
    /// The storage backend (`sled at /var/lib/…`, `plugin postgres`, …).
    pub storage: String,
    /// Loaded plugins: `audit: name`, `storage: name`.
    pub plugins: Vec<String>,
}

/// The view takes no input.
pub(super) struct HealthView;

impl Checked for HealthView {
    fn action(&self) -> Action<'_> {
        Action::new(Rpc::ConsoleHealth)
    }
}

impl Describe for HealthView {
    const RPC: Rpc = Rpc::ConsoleHealth;
    type Checked = HealthView;
    fn check(self) -> Result<HealthView> {
        Ok(self)
    }
}

/// `GET /health`.
pub(super) async fn view(State(console): State<Arc<Console>>, headers: HeaderMap) -> Response {
    let session = match web::session(&console, &headers) {
        Ok(session) => session,
        Err(refusal) => return refusal,
    };
    let shown_to = &session;
    let console_ref = &console;
    pass(&console, &session, HealthView, |_, _| async move {
        let body = render(console_ref.backend.as_ref(), &console_ref.facts);
        Ok(layout::page("Health", shown_to, "/health", body))
    })
    .await
}

fn render(backend: &dyn Backend, facts: &Facts) -> Markup {
    let policy = backend.policy().current();
    let audit = backend.audit();
    let sinks = audit.dropped();
    let recording = *audit.recording().borrow();
    html! {
        section aria-labelledby="h-broker" {
            h2 #h-broker { "Broker" }
            dl {
                dt { "Version" } dd #version { "twilio-broker " (env!("CARGO_PKG_VERSION")) }
                dt { "Storage" } dd #storage { (facts.storage) }
                dt { "Credentials served" } dd #credential-count { (backend.vault().len()) }
                dt { "Listeners" }
                dd { ul #listeners { @for l in &facts.listeners { li { code { (l) } } } } }
                dt { "Console" } dd { code { (facts.console) } }
            }
        }
        section aria-labelledby="h-policy" {
            h2 #h-policy { "Policy" }
            p #policy-source {
                "From " code { (backend.policy().describe()) } ", loaded at "
                (rfc3339(policy.loaded_at())) "."
                @if policy.allows_all() { strong.deny { " Every caller may do everything (--dev)." } }
            }
            table #policy-rules {
                caption { "Rules in force (deny by default; a deny rule wins)" }
                thead { tr { th scope="col" { "Rule" } th scope="col" { "What it says" } } }
                tbody {
                    @for (name, summary) in policy.rule_summaries() {
                        tr { td { (name) } td { (summary) } }
                    }
                }
            }
        }
        section aria-labelledby="h-audit" {
            h2 #h-audit { "Audit sinks" }
            @if sinks.is_empty() {
                p.deny #audit-state { "No audit sink is configured: decisions are not recorded." }
            } @else {
                p #audit-state {
                    @if recording { "Recording: every required sink recorded the last event." }
                    @else { strong.deny { "FAILING: a required sink did not record; calls are refused." } }
                }
                table #audit-sinks {
                    caption { "Sinks and the events each dropped (non-required sinks only drop)" }
                    thead { tr { th scope="col" { "Sink" } th scope="col" { "Dropped events" } } }
                    tbody { @for (name, dropped) in &sinks { tr { td { (name) } td { (dropped) } } } }
                }
            }
        }
        section aria-labelledby="h-plugins" {
            h2 #h-plugins { "Plugins" }
            @if facts.plugins.is_empty() {
                p { "No plugin is loaded." }
            } @else {
                ul #plugins { @for p in &facts.plugins { li { (p) } } }
            }
        }
    }
}
