//! The control API, for tests in other languages that run the binary:
//!
//! | call | body | effect |
//! |---|---|---|
//! | `POST /_standin/clients` | `{client_id, client_secret, account_sid}` | accept (or replace) a client |
//! | `DELETE /_standin/clients/{client_id}` | | stop accepting it (401 / 20003) |
//! | `PUT /_standin/knobs` | `{fail_status?, delay_ms?, token_ttl_seconds?}` | change behaviour; `fail_status: 0` heals |
//! | `GET /_standin/stats` | | `{token_requests, tokens_issued, rejected, rest_requests, rest_rejected, messages_created}` |
//! | `GET /_standin/messages` | | the messages created through the REST API, with the `jti` of the bearer that authorised each |
//! | `GET /_standin/last-request` | | what the last token request looked like (never its secret) |
//! | `POST /_standin/verify` | `{token}` | the token's claims, or 401 |
//! | `POST /_standin/accounts` | `{account_sid, auth_token}` | create (or replace) an account, no keys |
//! | `GET /_standin/accounts/{account_sid}` | | `{account_sid, auth_token, secondary_auth_token, keys: {SK: {sid, secret, key_type, friendly_name, policy}}}` or 404 |
//! | `POST /_standin/accounts/{account_sid}/keys` | `{key_type: "main"\|"standard"\|"restricted", friendly_name?}` | a new key `{sid, secret, ...}` (Main keys only come from here) |
//! | `POST /_standin/access-tokens/verify` | `{token}` | an Access Token's claims if a live key of its account signed it, or 401 `{error}` |
//!
//! Knobs also take `rate_limited_requests` (the next N key and Auth Token
//! management calls get 429 / 20429) and `retry_after_seconds` (their
//! `Retry-After`; 0 = none).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};

use crate::{Client, KeyType, Shared, jwt};

/// Partial update of the fault knobs.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Knobs {
    /// Status to answer every token request with; 0 heals.
    pub fail_status: Option<u16>,
    /// Delay before answering each token request, in milliseconds.
    pub delay_ms: Option<u64>,
    /// Lifetime of tokens issued from now on.
    pub token_ttl_seconds: Option<u64>,
    /// The next this many management calls get 429 / 20429.
    pub rate_limited_requests: Option<u64>,
    /// `Retry-After` on those answers, in seconds; 0 = none.
    pub retry_after_seconds: Option<u64>,
}

/// An account to create.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewAccount {
    /// `AC…`
    pub account_sid: String,
    /// Its primary Auth Token.
    pub auth_token: String,
}

/// A key to add to an account.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    /// `main`, `standard` or `restricted`.
    pub key_type: KeyType,
    /// `FriendlyName`.
    pub friendly_name: Option<String>,
}

/// The token to check.
#[derive(Debug, serde::Deserialize)]
pub struct VerifyRequest {
    /// A token this stand-in issued.
    pub token: String,
}

pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/_standin/clients", post(add_client))
        .route("/_standin/clients/{client_id}", delete(remove_client))
        .route("/_standin/knobs", put(set_knobs))
        .route("/_standin/stats", get(stats))
        .route("/_standin/last-request", get(last_request))
        .route("/_standin/messages", get(messages))
        .route("/_standin/verify", post(verify))
        .route("/_standin/accounts", post(add_account))
        .route("/_standin/accounts/{account_sid}", get(account))
        .route("/_standin/accounts/{account_sid}/keys", post(add_key))
        .route("/_standin/access-tokens/verify", post(verify_access_token))
}

async fn add_client(State(shared): State<Arc<Shared>>, Json(client): Json<Client>) -> StatusCode {
    shared.add_client(client);
    StatusCode::NO_CONTENT
}

async fn remove_client(
    State(shared): State<Arc<Shared>>,
    Path(client_id): Path<String>,
) -> StatusCode {
    shared.remove_client(&client_id);
    StatusCode::NO_CONTENT
}

async fn set_knobs(State(shared): State<Arc<Shared>>, Json(knobs): Json<Knobs>) -> StatusCode {
    if let Some(fail) = knobs.fail_status {
        shared.fail_status.store(fail, Ordering::SeqCst);
    }
    if let Some(delay) = knobs.delay_ms {
        shared.delay_ms.store(delay, Ordering::SeqCst);
    }
    if let Some(ttl) = knobs.token_ttl_seconds {
        shared.token_ttl_seconds.store(ttl, Ordering::SeqCst);
    }
    if let Some(requests) = knobs.rate_limited_requests {
        shared
            .rate_limited_requests
            .store(requests, Ordering::SeqCst);
    }
    if let Some(seconds) = knobs.retry_after_seconds {
        shared.retry_after_seconds.store(seconds, Ordering::SeqCst);
    }
    StatusCode::NO_CONTENT
}

async fn stats(State(shared): State<Arc<Shared>>) -> Response {
    Json(shared.stats()).into_response()
}

async fn messages(State(shared): State<Arc<Shared>>) -> Response {
    Json(shared.messages()).into_response()
}

async fn last_request(State(shared): State<Arc<Shared>>) -> Response {
    let last = shared.last_request.lock().ok().and_then(|l| l.clone());
    Json(last).into_response()
}

async fn verify(State(shared): State<Arc<Shared>>, Json(request): Json<VerifyRequest>) -> Response {
    match jwt::verify(&shared.key, &request.token) {
        Ok(claims) => Json(claims).into_response(),
        Err(err) => (
            StatusCode::UNAUTHORIZED,
            Json(serde_json::json!({ "error": format!("{err:?}") })),
        )
            .into_response(),
    }
}

async fn add_account(
    State(shared): State<Arc<Shared>>,
    Json(account): Json<NewAccount>,
) -> StatusCode {
    shared.add_account(&account.account_sid, &account.auth_token);
    StatusCode::NO_CONTENT
}

async fn account(State(shared): State<Arc<Shared>>, Path(account_sid): Path<String>) -> Response {
    match shared.account(&account_sid) {
        Some(account) => Json(account).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn add_key(
    State(shared): State<Arc<Shared>>,
    Path(account_sid): Path<String>,
    Json(key): Json<NewKey>,
) -> Response {
    match shared.add_key(&account_sid, key.key_type, key.friendly_name) {
        Some(key) => (StatusCode::CREATED, Json(key)).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn verify_access_token(
    State(shared): State<Arc<Shared>>,
    Json(request): Json<VerifyRequest>,
) -> Response {
    match shared.verify_access_token(&request.token) {
        Ok(claims) => Json(claims).into_response(),
        Err(err) => (
            StatusCode::UNAUTHORIZED,
            Json(serde_json::json!({ "error": format!("{err:?}") })),
        )
            .into_response(),
    }
}
