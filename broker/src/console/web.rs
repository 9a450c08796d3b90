//! HTTP around the views: security headers on every response, the session
//! cookie, login and logout, and the console's [`Refusals`] table (an error
//! becomes an HTML page with an HTTP status and the audit's status name).

use std::future::Future;
use std::sync::Arc;

use axum::extract::{Query, Request, State};
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::http::{HeaderName, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use maud::{Markup, html};

use super::Console;
use super::layout;
use super::session::{SESSION_TTL, Session};
use crate::caller::Caller;
use crate::error::{Error, Result};
use crate::gate::{Describe, Outcome, Refusals};

/// The session cookie's name.
pub(super) const COOKIE: &str = "tb_console";

/// The Content-Security-Policy of every response: this origin's own
/// scripts, styles and images only, no inline script or style, no frames,
/// forms post only here.
pub(super) const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; \
     base-uri 'none'";

/// Adds the security headers to every response, whatever produced it.
/// Also reports the server-side time of the response (`Server-Timing:
/// app;dur=MILLISECONDS`, until its headers), which `scripts/bench-console`
/// reads.
pub(super) async fn security_headers(request: Request, next: Next) -> Response {
    let started = std::time::Instant::now();
    let mut response = next.run(request).await;
    let took = format!("app;dur={:.3}", started.elapsed().as_secs_f64() * 1000.0);
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&took) {
        headers.insert(HeaderName::from_static("server-timing"), value);
    }
    let set = |headers: &mut HeaderMap, name: HeaderName, value: &'static str| {
        headers.insert(name, HeaderValue::from_static(value));
    };
    set(headers, header::CONTENT_SECURITY_POLICY, CSP);
    set(headers, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(headers, header::X_FRAME_OPTIONS, "DENY");
    // The login link carries a token: never let it leave in a Referer.
    set(headers, header::REFERRER_POLICY, "no-referrer");
    set(headers, header::CACHE_CONTROL, "no-store");
    set(
        headers,
        HeaderName::from_static("cross-origin-opener-policy"),
        "same-origin",
    );
    set(
        headers,
        HeaderName::from_static("cross-origin-resource-policy"),
        "same-origin",
    );
    response
}

/// The console's refusals: an HTML page, the HTTP status that fits the
/// error, and the status name the audit records (the gRPC code's name, so
/// both front ends' events read alike).
pub(super) struct Http;

impl Refusals for Http {
    type Refusal = Response;
    fn refuse(err: Error, request_id: &str) -> (Response, &'static str, String) {
        let (status, name) = match &err {
            Error::InvalidField { .. } | Error::MinTtlUnreachable { .. } => {
                (StatusCode::BAD_REQUEST, "INVALID_ARGUMENT")
            }
            Error::CredentialNotFound { .. } => (StatusCode::NOT_FOUND, "NOT_FOUND"),
            Error::IdentityRequired { .. } | Error::CertificateRefused { .. } => {
                (StatusCode::UNAUTHORIZED, "UNAUTHENTICATED")
            }
            Error::Denied { .. } => (StatusCode::FORBIDDEN, "PERMISSION_DENIED"),
            Error::RateLimited { .. } | Error::TooManyRefusals { .. } => {
                (StatusCode::TOO_MANY_REQUESTS, "RESOURCE_EXHAUSTED")
            }
            Error::NotAudited { .. }
            | Error::ConcurrentChange { .. }
            | Error::StorageUnavailable { .. }
            | Error::TwilioUnreachable { .. }
            | Error::RotationUnavailable { .. } => (StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE"),
            Error::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL"),
            _ => (StatusCode::CONFLICT, "FAILED_PRECONDITION"),
        };
        let message = match err {
            Error::Internal(chain) => {
                tracing::error!(request_id, error = %format!("{chain:#}"), "console: internal error");
                format!("internal error; the broker's log has it under request id {request_id}")
            }
            other => other.to_string(),
        };
        let page = refusal_page(status, name, &message);
        (page, name, message)
    }
}

/// A refusal as a page.
pub(super) fn refusal_page(status: StatusCode, name: &str, message: &str) -> Response {
    let body = html! {
        section.refusal role="alert" {
            h1 { (status.as_u16()) " " (name) }
            p.message { (message) }
            p { a href="/credentials" { "Back to the console" } }
        }
    };
    (status, Html(layout::bare(name, body).into_string())).into_response()
}

/// A view's page, as the gate sees a response.
pub(super) struct Page(pub Markup);

impl Outcome for Page {}

/// The live session of this request, or the page telling how to log in.
// The refusal is a whole response, built once on a refused request's path.
#[allow(clippy::result_large_err)]
pub(super) fn session(
    console: &Console,
    headers: &HeaderMap,
) -> std::result::Result<Session, Response> {
    cookie(headers)
        .and_then(|id| console.sessions.session(id))
        .ok_or_else(|| {
            refusal_page(
                StatusCode::UNAUTHORIZED,
                "UNAUTHENTICATED",
                "not logged in (or the session ended): run `twilio-broker console open` \
                 on the broker's host and open the link it prints",
            )
        })
}

/// The session cookie's value, if the request carries one.
fn cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
}

/// Runs a view for `session` through the gate: policy, handler, audit.
pub(super) async fn pass<Req, Fut>(
    console: &Console,
    session: &Session,
    request: Req,
    handle: impl FnOnce(Req::Checked, Arc<Caller>) -> Fut,
) -> Response
where
    Req: Describe,
    Fut: Future<Output = Result<Markup>>,
{
    let caller = Arc::clone(&session.caller);
    let answer = console
        .backend
        .gate()
        .pass::<Http, _, _, _>(caller, request, |checked, caller| async move {
            handle(checked, caller).await.map(Page)
        })
        .await;
    match answer {
        Ok(Page(markup)) => Html(markup.into_string()).into_response(),
        Err(refusal) => refusal,
    }
}

/// `/`: the credentials view.
pub(super) async fn home() -> Redirect {
    Redirect::to("/credentials")
}

/// The query of `/login`.
#[derive(serde::Deserialize)]
pub(super) struct LoginQuery {
    #[serde(default)]
    token: String,
}

/// `/login?token=…`: a one-time token for a session cookie, then the
/// credentials view.
pub(super) async fn login(
    State(console): State<Arc<Console>>,
    Query(query): Query<LoginQuery>,
) -> Response {
    let Some((id, session)) = console.sessions.redeem(&query.token) else {
        return refusal_page(
            StatusCode::UNAUTHORIZED,
            "UNAUTHENTICATED",
            "this login link is unknown, used or expired (links work once, for a minute): \
             run `twilio-broker console open` again",
        );
    };
    tracing::info!(caller = session.caller.principal(), "console: logged in");
    let cookie = format!(
        "{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}",
        SESSION_TTL.as_secs()
    );
    let mut response = Redirect::to("/credentials").into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

/// A form that only carries the CSRF token.
#[derive(serde::Deserialize)]
pub(super) struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// `POST /logout`: ends the session (CSRF-checked).
pub(super) async fn logout(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<CsrfForm>,
) -> Response {
    let session = match session(&console, &headers) {
        Ok(session) => session,
        Err(refusal) => return refusal,
    };
    if let Err(refusal) = check_csrf(&session, &form.csrf) {
        return refusal;
    }
    if let Some(id) = cookie(&headers) {
        console.sessions.end(id);
    }
    let mut response = refusal_page(
        StatusCode::OK,
        "LOGGED_OUT",
        "logged out: run `twilio-broker console open` to log in again",
    );
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("tb_console=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    response
}

/// Refuses a post whose CSRF token is not the session's.
#[allow(clippy::result_large_err)] // as for `session`
pub(super) fn check_csrf(session: &Session, sent: &str) -> std::result::Result<(), Response> {
    if session.csrf_matches(sent) {
        Ok(())
    } else {
        Err(refusal_page(
            StatusCode::FORBIDDEN,
            "CSRF_REFUSED",
            "this form was not sent by a console page of this session: reload the page and \
             send it again",
        ))
    }
}

/// Any other path.
pub(super) async fn not_found() -> Response {
    refusal_page(
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
        "no such page in the console",
    )
}
