//! Twilio's key and Auth Token management APIs (WIRE.md section 4), with
//! request and response shapes taken from twilio-python 9.13's generated
//! modules (`api/v2010/account/key.py`, `new_key.py`, `iam/v1/new_api_key.py`,
//! `api_key.py`, `accounts/v1/secondary_auth_token.py`,
//! `auth_token_promotion.py`):
//!
//! | call | form | answer |
//! |---|---|---|
//! | `POST /2010-04-01/Accounts/{AC}/Keys.json` | `FriendlyName?` | 201 `{sid, friendly_name, date_created, date_updated, secret}` (a Standard key) |
//! | `GET /2010-04-01/Accounts/{AC}/Keys.json` | | 200 a v2010 page `{keys: [...], page, page_size, ...}` |
//! | `GET`/`DELETE /2010-04-01/Accounts/{AC}/Keys/{SK}.json` | | 200 `{sid, friendly_name, date_created, date_updated}` / 204 |
//! | `POST /v1/Keys` (IAM) | `AccountSid`, `FriendlyName?`, `KeyType?` (`restricted`), `Policy?` (JSON, required for restricted) | 201 `{sid, friendly_name, date_created, date_updated, secret, policy}` |
//! | `GET`/`DELETE /v1/Keys/{SK}` (IAM) | | 200 `{sid, friendly_name, date_created, date_updated, policy}` / 204 |
//! | `POST /v1/AuthTokens/Secondary` (accounts) | `SuppressEmailNotification?` | 201 `{account_sid, date_created, date_updated, secondary_auth_token, url}`; replaces an existing secondary |
//! | `DELETE /v1/AuthTokens/Secondary` | | 204 |
//! | `POST /v1/AuthTokens/Promote` | | 200 `{account_sid, auth_token, date_created, date_updated, url}`: the secondary becomes the primary, the old primary stops authenticating |
//!
//! Every call needs HTTP Basic with a Main key or an Auth Token (primary or
//! secondary) of the account: no or a wrong credential gets 401 / 20003
//! "Authenticate", a Standard or Restricted key 403 / 20003 "Permission
//! Denied", another account's credential 401 / 20003. Main keys cannot be
//! created here (only seeded through the control API, as only the Console
//! creates them). While the rate-limit knob is set, the next calls get 429 /
//! 20429 "Too Many Requests" (with `Retry-After` when configured), before
//! authentication.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::SystemTime;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::Shared;
use crate::accounts::{
    ApiKey, KeyType, Principal, authenticate, basic_credentials, random_auth_token, random_secret,
    random_sid,
};
use crate::oauth::twilio_error;
use crate::rest::API_VERSION;

/// The URL Twilio puts in the Auth Token resources.
const ACCOUNTS_URL: &str = "https://accounts.twilio.com/v1/AuthTokens";

/// RFC 2822 as v2010 and IAM v1 write dates: `Mon, 30 Nov 2026 01:02:03 +0000`.
fn rfc2822(at: SystemTime) -> String {
    httpdate::fmt_http_date(at).replace("GMT", "+0000")
}

/// ISO 8601 as accounts v1 writes dates: `2026-11-30T01:02:03Z`.
fn iso8601(at: SystemTime) -> String {
    humantime::format_rfc3339_seconds(at).to_string()
}

fn not_found(path: &str) -> Response {
    twilio_error(
        StatusCode::NOT_FOUND,
        20404,
        &format!("The requested resource {path} was not found"),
    )
}

fn bad_request(message: &str) -> Response {
    twilio_error(StatusCode::BAD_REQUEST, 20001, message)
}

fn form(body: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(body).into_owned().collect()
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

/// Counts the call, applies the rate-limit knob, then checks that the caller
/// may manage keys and tokens of `path_account` (or of its own account).
/// Returns the account the call acts on.
// The error is the HTTP answer itself, built once per refused call.
#[allow(clippy::result_large_err)]
fn guard(
    shared: &Shared,
    headers: &HeaderMap,
    path_account: Option<&str>,
) -> Result<String, Response> {
    shared.manage_requests.fetch_add(1, Ordering::SeqCst);
    let limited = shared
        .rate_limited_requests
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    if limited {
        let mut response = twilio_error(StatusCode::TOO_MANY_REQUESTS, 20429, "Too Many Requests");
        let retry_after = shared.retry_after_seconds.load(Ordering::SeqCst);
        if retry_after > 0 {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
        }
        return Err(response);
    }
    let unauthenticated = || twilio_error(StatusCode::UNAUTHORIZED, 20003, "Authenticate");
    let (user, pass) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(basic_credentials)
        .ok_or_else(unauthenticated)?;
    let principal = shared
        .accounts
        .lock()
        .ok()
        .and_then(|accounts| authenticate(&accounts, &user, &pass))
        .ok_or_else(unauthenticated)?;
    if path_account.is_some_and(|account| account != principal.account_sid()) {
        return Err(unauthenticated());
    }
    if !principal.may_manage() {
        return Err(twilio_error(
            StatusCode::FORBIDDEN,
            20003,
            "Permission Denied",
        ));
    }
    Ok(principal.account_sid().to_owned())
}

/// Keeps `key` under `account`; None if the account is gone.
fn insert_key(shared: &Shared, account: &str, key: ApiKey) -> Option<ApiKey> {
    let mut accounts = shared.accounts.lock().ok()?;
    accounts
        .get_mut(account)?
        .keys
        .insert(key.sid.clone(), key.clone());
    Some(key)
}

/// Removes `sid` from `account`; whether it was there.
fn remove_key(shared: &Shared, account: &str, sid: &str) -> bool {
    shared
        .accounts
        .lock()
        .ok()
        .and_then(|mut accounts| accounts.get_mut(account)?.keys.remove(sid))
        .is_some()
}

fn find_key(shared: &Shared, account: &str, sid: &str) -> Option<ApiKey> {
    let accounts = shared.accounts.lock().ok()?;
    accounts.get(account)?.keys.get(sid).cloned()
}

fn v2010_key(key: &ApiKey) -> serde_json::Value {
    serde_json::json!({
        "sid": key.sid,
        "friendly_name": key.friendly_name,
        "date_created": rfc2822(key.created),
        "date_updated": rfc2822(key.created),
    })
}

fn iam_key(key: &ApiKey) -> serde_json::Value {
    serde_json::json!({
        "sid": key.sid,
        "friendly_name": key.friendly_name,
        "date_created": rfc2822(key.created),
        "date_updated": rfc2822(key.created),
        "policy": key.policy,
    })
}

fn with_secret(mut resource: serde_json::Value, key: &ApiKey) -> serde_json::Value {
    resource["secret"] = serde_json::Value::String(key.secret.clone());
    resource
}

fn new_key(
    key_type: KeyType,
    friendly_name: Option<&str>,
    policy: Option<serde_json::Value>,
) -> ApiKey {
    ApiKey {
        sid: random_sid("SK"),
        secret: random_secret(),
        key_type,
        friendly_name: friendly_name.map(str::to_owned),
        policy,
        created: SystemTime::now(),
    }
}

/// `POST /2010-04-01/Accounts/{AC}/Keys.json`: a new Standard key.
pub(crate) async fn v2010_create_key(
    State(shared): State<Arc<Shared>>,
    Path(account_sid): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let account = match guard(&shared, &headers, Some(&account_sid)) {
        Ok(account) => account,
        Err(response) => return response,
    };
    let fields = form(&body);
    let key = new_key(KeyType::Standard, field(&fields, "FriendlyName"), None);
    match insert_key(&shared, &account, key) {
        Some(key) => (
            StatusCode::CREATED,
            axum::Json(with_secret(v2010_key(&key), &key)),
        )
            .into_response(),
        None => not_found(&format!("/{API_VERSION}/Accounts/{account_sid}/Keys.json")),
    }
}

/// `GET /2010-04-01/Accounts/{AC}/Keys.json`: one page with every key.
pub(crate) async fn v2010_list_keys(
    State(shared): State<Arc<Shared>>,
    Path(account_sid): Path<String>,
    headers: HeaderMap,
) -> Response {
    let account = match guard(&shared, &headers, Some(&account_sid)) {
        Ok(account) => account,
        Err(response) => return response,
    };
    let keys: Vec<serde_json::Value> = shared
        .accounts
        .lock()
        .ok()
        .and_then(|accounts| {
            Some(
                accounts
                    .get(&account)?
                    .keys
                    .values()
                    .map(v2010_key)
                    .collect(),
            )
        })
        .unwrap_or_default();
    let uri = format!("/{API_VERSION}/Accounts/{account}/Keys.json?PageSize=50&Page=0");
    let end = keys.len().saturating_sub(1);
    axum::Json(serde_json::json!({
        "keys": keys,
        "end": end,
        "first_page_uri": uri,
        "next_page_uri": null,
        "page": 0,
        "page_size": 50,
        "previous_page_uri": null,
        "start": 0,
        "uri": uri,
    }))
    .into_response()
}

/// `GET /2010-04-01/Accounts/{AC}/Keys/{SK}.json`.
pub(crate) async fn v2010_fetch_key(
    State(shared): State<Arc<Shared>>,
    Path((account_sid, sid_json)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let account = match guard(&shared, &headers, Some(&account_sid)) {
        Ok(account) => account,
        Err(response) => return response,
    };
    let path = format!("/{API_VERSION}/Accounts/{account_sid}/Keys/{sid_json}");
    let Some(sid) = sid_json.strip_suffix(".json") else {
        return not_found(&path);
    };
    match find_key(&shared, &account, sid) {
        Some(key) => axum::Json(v2010_key(&key)).into_response(),
        None => not_found(&path),
    }
}

/// `DELETE /2010-04-01/Accounts/{AC}/Keys/{SK}.json`: the key stops
/// authenticating at once.
pub(crate) async fn v2010_delete_key(
    State(shared): State<Arc<Shared>>,
    Path((account_sid, sid_json)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let account = match guard(&shared, &headers, Some(&account_sid)) {
        Ok(account) => account,
        Err(response) => return response,
    };
    let path = format!("/{API_VERSION}/Accounts/{account_sid}/Keys/{sid_json}");
    match sid_json.strip_suffix(".json") {
        Some(sid) if remove_key(&shared, &account, sid) => StatusCode::NO_CONTENT.into_response(),
        _ => not_found(&path),
    }
}

/// `POST /v1/Keys` (IAM): a Standard or a Restricted key.
pub(crate) async fn iam_create_key(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let fields = form(&body);
    let Some(account_sid) = field(&fields, "AccountSid").map(str::to_owned) else {
        // Authentication still comes first, as at Twilio.
        return match guard(&shared, &headers, None) {
            Err(response) => response,
            Ok(_) => bad_request("Missing required parameter AccountSid in the post body"),
        };
    };
    let account = match guard(&shared, &headers, None) {
        Ok(account) => account,
        Err(response) => return response,
    };
    if account != account_sid {
        return twilio_error(StatusCode::FORBIDDEN, 20003, "Permission Denied");
    }
    let key_type = match field(&fields, "KeyType") {
        None => KeyType::Standard,
        Some("restricted") => KeyType::Restricted,
        Some(_) => return bad_request("KeyType must be 'restricted' or omitted"),
    };
    let policy = match field(&fields, "Policy") {
        None => None,
        Some(text) => match serde_json::from_str::<serde_json::Value>(text) {
            Ok(policy) if policy.get("allow").is_some_and(serde_json::Value::is_array) => {
                Some(policy)
            }
            _ => return bad_request("Policy must be a JSON object with an 'allow' array"),
        },
    };
    if key_type == KeyType::Restricted && policy.is_none() {
        return bad_request("Missing required parameter Policy for a restricted key");
    }
    let key = new_key(key_type, field(&fields, "FriendlyName"), policy);
    match insert_key(&shared, &account, key) {
        Some(key) => (
            StatusCode::CREATED,
            axum::Json(with_secret(iam_key(&key), &key)),
        )
            .into_response(),
        None => not_found("/v1/Keys"),
    }
}

/// `GET /v1/Keys/{SK}` (IAM).
pub(crate) async fn iam_fetch_key(
    State(shared): State<Arc<Shared>>,
    Path(sid): Path<String>,
    headers: HeaderMap,
) -> Response {
    let account = match guard(&shared, &headers, None) {
        Ok(account) => account,
        Err(response) => return response,
    };
    match find_key(&shared, &account, &sid) {
        Some(key) => axum::Json(iam_key(&key)).into_response(),
        None => not_found(&format!("/v1/Keys/{sid}")),
    }
}

/// `DELETE /v1/Keys/{SK}` (IAM): the key stops authenticating at once.
pub(crate) async fn iam_delete_key(
    State(shared): State<Arc<Shared>>,
    Path(sid): Path<String>,
    headers: HeaderMap,
) -> Response {
    let account = match guard(&shared, &headers, None) {
        Ok(account) => account,
        Err(response) => return response,
    };
    if remove_key(&shared, &account, &sid) {
        StatusCode::NO_CONTENT.into_response()
    } else {
        not_found(&format!("/v1/Keys/{sid}"))
    }
}

/// `POST /v1/AuthTokens/Secondary`: a new secondary Auth Token (replacing
/// one that exists).
pub(crate) async fn create_secondary(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
) -> Response {
    let account = match guard(&shared, &headers, None) {
        Ok(account) => account,
        Err(response) => return response,
    };
    let token = random_auth_token();
    let stored = shared.accounts.lock().ok().and_then(|mut accounts| {
        accounts.get_mut(&account)?.secondary_auth_token = Some(token.clone());
        Some(())
    });
    if stored.is_none() {
        return not_found("/v1/AuthTokens/Secondary");
    }
    let now = iso8601(SystemTime::now());
    (
        StatusCode::CREATED,
        axum::Json(serde_json::json!({
            "account_sid": account,
            "date_created": now,
            "date_updated": now,
            "secondary_auth_token": token,
            "url": format!("{ACCOUNTS_URL}/Secondary"),
        })),
    )
        .into_response()
}

/// `DELETE /v1/AuthTokens/Secondary`: the secondary stops authenticating.
pub(crate) async fn delete_secondary(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
) -> Response {
    let account = match guard(&shared, &headers, None) {
        Ok(account) => account,
        Err(response) => return response,
    };
    let removed = shared
        .accounts
        .lock()
        .ok()
        .and_then(|mut accounts| accounts.get_mut(&account)?.secondary_auth_token.take());
    match removed {
        Some(_) => StatusCode::NO_CONTENT.into_response(),
        None => not_found("/v1/AuthTokens/Secondary"),
    }
}

/// `POST /v1/AuthTokens/Promote`: the secondary becomes the primary; the
/// old primary stops authenticating.
pub(crate) async fn promote(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let account = match guard(&shared, &headers, None) {
        Ok(account) => account,
        Err(response) => return response,
    };
    let promoted = shared.accounts.lock().ok().and_then(|mut accounts| {
        let entry = accounts.get_mut(&account)?;
        let secondary = entry.secondary_auth_token.take()?;
        entry.auth_token = secondary.clone();
        Some(secondary)
    });
    let Some(auth_token) = promoted else {
        return not_found("/v1/AuthTokens/Secondary");
    };
    let now = iso8601(SystemTime::now());
    axum::Json(serde_json::json!({
        "account_sid": account,
        "auth_token": auth_token,
        "date_created": now,
        "date_updated": now,
        "url": format!("{ACCOUNTS_URL}/Promote"),
    }))
    .into_response()
}

/// Whether `principal` is an account credential of any kind (for REST calls
/// that any key may make).
pub(crate) fn basic_principal(shared: &Shared, headers: &HeaderMap) -> Option<Principal> {
    let (user, pass) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(basic_credentials)?;
    let accounts = shared.accounts.lock().ok()?;
    authenticate(&accounts, &user, &pass)
}
