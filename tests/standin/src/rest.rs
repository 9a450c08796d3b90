//! Twilio's REST API as far as the client tests need it: `POST
//! /2010-04-01/Accounts/{AccountSid}/Messages.json`, which accepts only
//! `Authorization: Bearer <token>` with a token this stand-in issued, still
//! valid, for that account (or HTTP Basic with a live credential of it: an
//! Auth Token or a key, see [`crate::accounts`]). It answers 201 with a Twilio-like Message
//! resource or a Twilio-style JSON error (401 / 20003 for a bad bearer).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::SystemTime;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::oauth::twilio_error;
use crate::{Shared, jwt};

/// The API version in every REST path.
pub const API_VERSION: &str = "2010-04-01";

/// A message the stand-in "sent" (accepted with a valid bearer).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SentMessage {
    /// `SM...`
    pub sid: String,
    /// The account in the request path (and the token's `sub`).
    pub account_sid: String,
    /// `To`.
    pub to: String,
    /// `From`.
    pub from: String,
    /// `Body`.
    pub body: String,
    /// The `jti` of the bearer token that authorised it.
    pub token_id: String,
}

/// Serves `POST .../Accounts/{AccountSid}/Messages.json`.
pub(crate) async fn create_message(
    State(shared): State<Arc<Shared>>,
    Path(account_sid): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    shared.rest_requests.fetch_add(1, Ordering::SeqCst);
    let Some(claims) = authorize(&shared, &headers, &account_sid) else {
        shared.rest_rejected.fetch_add(1, Ordering::SeqCst);
        return twilio_error(StatusCode::UNAUTHORIZED, 20003, "Authenticate");
    };
    let fields: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
    let field = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .filter(|v| !v.is_empty())
    };
    let (to, from, text) = match (field("To"), field("From"), field("Body")) {
        (None, _, _) => return bad_request(&shared, 21604, "A 'To' phone number is required."),
        (_, None, _) => return bad_request(&shared, 21603, "A 'From' phone number is required."),
        (_, _, None) => return bad_request(&shared, 21602, "Message body is required."),
        (Some(to), Some(from), Some(text)) => (to, from, text),
    };
    let message = SentMessage {
        sid: random_sid("SM"),
        account_sid,
        to,
        from,
        body: text,
        token_id: claims.jti,
    };
    let resource = message_resource(&message);
    if let Ok(mut messages) = shared.messages.lock() {
        messages.push(message);
    }
    (StatusCode::CREATED, axum::Json(resource)).into_response()
}

/// Checks `Authorization: Bearer <token>`: issued here, unexpired, for
/// `account_sid`; or HTTP Basic with any live credential of that account
/// (its Auth Tokens or keys; `token_id` is then `basic:` + the username).
/// None means Twilio's 401 / 20003 "Authenticate".
fn authorize(shared: &Shared, headers: &HeaderMap, account_sid: &str) -> Option<jwt::Claims> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    if value.starts_with("Basic ") {
        let principal = crate::manage::basic_principal(shared, headers)?;
        let (user, _) = crate::accounts::basic_credentials(value)?;
        return (principal.account_sid() == account_sid).then(|| jwt::Claims {
            jti: format!("basic:{user}"),
            iss: user,
            sub: account_sid.to_owned(),
            iat: 0,
            exp: 0,
        });
    }
    let token = value.strip_prefix("Bearer ").filter(|t| !t.is_empty())?;
    let claims = jwt::verify(&shared.key, token).ok()?;
    (claims.sub == account_sid).then_some(claims)
}

fn bad_request(shared: &Shared, code: u32, message: &str) -> Response {
    shared.rest_rejected.fetch_add(1, Ordering::SeqCst);
    twilio_error(StatusCode::BAD_REQUEST, code, message)
}

/// The JSON Twilio answers a created Message with.
fn message_resource(message: &SentMessage) -> serde_json::Value {
    let now = httpdate::fmt_http_date(SystemTime::now()).replace("GMT", "+0000");
    let uri = format!(
        "/{API_VERSION}/Accounts/{}/Messages/{}",
        message.account_sid, message.sid
    );
    serde_json::json!({
        "account_sid": message.account_sid,
        "api_version": API_VERSION,
        "body": message.body,
        "date_created": now,
        "date_sent": null,
        "date_updated": now,
        "direction": "outbound-api",
        "error_code": null,
        "error_message": null,
        "from": message.from,
        "messaging_service_sid": null,
        "num_media": "0",
        "num_segments": "1",
        "price": null,
        "price_unit": "USD",
        "sid": message.sid,
        "status": "queued",
        "subresource_uris": { "media": format!("{uri}/Media.json") },
        "to": message.to,
        "uri": format!("{uri}.json"),
    })
}

/// A random SID: `prefix` + 32 lowercase hex digits.
fn random_sid(prefix: &str) -> String {
    let mut bytes = [0u8; 16];
    rand::fill(&mut bytes);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{prefix}{hex}")
}
