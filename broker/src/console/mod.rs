//! The operator console (issue 19): server-rendered HTML views of what the
//! broker holds, served on `--console-listen` (loopback only), off by
//! default.
//!
//! A second front end beside `grpc/`: every view passes the same
//! [`crate::gate`] as an RPC (policy, then handler, then one audit event),
//! with the session's caller (the identity that ran `twilio-broker console
//! open`, see [`session`]) and refusals as HTML pages ([`web::Http`]).
//! Views reach the services through [`Backend`], read-only.
//!
//! | Path | View | Policy name |
//! |---|---|---|
//! | `/credentials` | credentials, paged and filtered, with the review | `ListCredentials` (per credential, like the RPC) |
//! | `/recommend` | the decision framework's form and answer | `Recommend` |
//! | `/audit`, `/audit/events` | recent audit events, filtered, updating live (server-sent events) | `ConsoleAudit` |
//! | `/health` | version, listeners, policy rules, audit sinks, plugins, storage | `ConsoleHealth` |
//! | `/bearer` | per OAuth credential: cached or not, expiry, last refresh, last upstream outcome | `ConsoleBearerCache` (then per credential) |
//!
//! **Invariants:** no secret or token is ever rendered or sent (views read
//! metadata only: names, SIDs, kinds, labels, times); every response carries
//! a strict Content-Security-Policy without inline script or style and with
//! no other origin ([`web::security_headers`]); every POST carries the
//! session's CSRF token; assets are compiled into the binary.

mod assets;
mod audit;
mod bearer;
mod credentials;
mod health;
mod layout;
mod recommend;
pub(crate) mod session;
mod web;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use axum::Router;
use axum::routing::{get, post};

use crate::audit::Recent;
use crate::bearer::Bearers;
use crate::gate::Gate;
use crate::listing::PageTokens;
use crate::policy::PolicyEngine;
use crate::store::Vault;
pub(crate) use health::Facts;
pub(crate) use session::Sessions;

/// What the console reads: the services behind the gRPC API (implemented by
/// the edge's `Services`), so both front ends share one vault, policy,
/// audit trail and cache.
pub(crate) trait Backend: Send + Sync + 'static {
    /// The gate every view passes.
    fn gate(&self) -> Gate<'_>;
    /// The credentials.
    fn vault(&self) -> &Vault;
    /// The policy (per-credential listing).
    fn policy(&self) -> &PolicyEngine;
    /// Page tokens, shared with ListCredentials.
    fn page_tokens(&self) -> &PageTokens;
    /// The bearer token cache.
    fn bearers(&self) -> &Bearers;
    /// The audit trail (its sinks' state).
    fn audit(&self) -> &crate::audit::AuditTrail;
}

/// The console's bound listener and its logins, before it serves.
pub(crate) struct Bound {
    listener: tokio::net::TcpListener,
    sessions: Arc<Sessions>,
    recent: Option<Arc<Recent>>,
    facts: Facts,
}

impl Bound {
    /// Binds `addr`, which must be a loopback address: the console is served
    /// over plaintext HTTP, so only this host may reach it.
    pub(crate) async fn bind(addr: SocketAddr) -> anyhow::Result<Bound> {
        if !addr.ip().is_loopback() {
            anyhow::bail!(
                "--console-listen {addr}: the console is served on loopback only \
                 (e.g. 127.0.0.1:{}); reach it from elsewhere through an SSH tunnel",
                addr.port()
            );
        }
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr} for the console"))?;
        let local = listener.local_addr()?;
        Ok(Bound {
            listener,
            sessions: Arc::new(Sessions::new(format!("http://{local}"))),
            recent: None,
            facts: Facts {
                console: format!("http://{local}/"),
                ..Facts::default()
            },
        })
    }

    /// What the health view says about the daemon (listeners, storage,
    /// plugins); the console's own address is kept.
    pub(crate) fn set_facts(&mut self, facts: Facts) {
        let console = std::mem::take(&mut self.facts.console);
        self.facts = Facts { console, ..facts };
    }

    /// Feeds the audit view from `trail`: the trail's tap, into a ring of
    /// the last [`RECENT_EVENTS`] events (call inside the runtime).
    pub(crate) fn watch_audit(&mut self, trail: &mut crate::audit::AuditTrail) {
        let (tap, rx) = crate::audit::Tap::new();
        trail.set_tap(tap);
        self.recent = Some(Recent::spawn(rx, RECENT_EVENTS));
    }

    /// The logins, which OpenConsole issues.
    pub(crate) fn sessions(&self) -> Arc<Sessions> {
        Arc::clone(&self.sessions)
    }

    /// The address actually bound.
    pub(crate) fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }
}

/// Audit events the console keeps for its audit view.
pub(crate) const RECENT_EVENTS: usize = 1000;

/// What every handler shares.
struct Console {
    backend: Arc<dyn Backend>,
    sessions: Arc<Sessions>,
    /// The last audit events; None without an audit sink.
    recent: Option<Arc<Recent>>,
    /// What the health view shows of the daemon's configuration.
    facts: Facts,
}

/// The console's routes over `backend`.
fn router(backend: Arc<dyn Backend>, bound: &mut Bound) -> Router {
    let console = Arc::new(Console {
        backend,
        sessions: Arc::clone(&bound.sessions),
        recent: bound.recent.take(),
        facts: std::mem::take(&mut bound.facts),
    });
    Router::new()
        .route("/", get(web::home))
        .route("/login", get(web::login))
        .route("/logout", post(web::logout))
        .route("/credentials", get(credentials::view))
        .route("/recommend", get(recommend::form).post(recommend::answer))
        .route("/bearer", get(bearer::view))
        .route("/audit", get(audit::view))
        .route("/health", get(health::view))
        .route("/audit/events", get(audit::events))
        .route("/assets/{file}", get(assets::serve))
        .fallback(web::not_found)
        .layer(axum::middleware::from_fn(web::security_headers))
        .with_state(console)
}

/// Serves the console on `bound` until the task is dropped.
pub(crate) async fn serve(mut bound: Bound, backend: Arc<dyn Backend>) {
    let app = router(backend, &mut bound);
    if let Err(err) = axum::serve(bound.listener, app).await {
        tracing::error!(%err, "the console stopped");
    }
}
