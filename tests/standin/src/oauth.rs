//! The token endpoint (`POST /v2/token`, and the older `/v1/token`), speaking
//! WIRE.md section 2: a form-encoded `client_credentials` grant in, Twilio's
//! JSON token response or Twilio-style JSON error out.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{OriginalUri, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq as _;

use crate::{RecordedRequest, Shared, jwt};

/// A Twilio-style JSON error: `{code, message, more_info, status}`.
pub fn twilio_error(status: StatusCode, code: u32, message: &str) -> Response {
    let body = serde_json::json!({
        "code": code,
        "message": message,
        "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
        "status": status.as_u16(),
    });
    (status, axum::Json(body)).into_response()
}

/// Serves one token request.
pub async fn token(
    State(shared): State<Arc<Shared>>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    shared.token_requests.fetch_add(1, Ordering::SeqCst);
    let fields: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
    let field = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let header_text = |name: header::HeaderName| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    if let Ok(mut last) = shared.last_request.lock() {
        *last = Some(RecordedRequest {
            path: uri.path().to_owned(),
            content_type: header_text(header::CONTENT_TYPE),
            accept: header_text(header::ACCEPT),
            has_authorization: headers.contains_key(header::AUTHORIZATION),
            field_names: fields.iter().map(|(k, _)| k.clone()).collect(),
            grant_type: field("grant_type").map(str::to_owned),
            client_id: field("client_id").map(str::to_owned),
        });
    }

    let delay = shared.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let fail = shared.fail_status.load(Ordering::SeqCst);
    if fail != 0 {
        let status = StatusCode::from_u16(fail).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        return twilio_error(
            status,
            20500,
            status.canonical_reason().unwrap_or("Service Unavailable"),
        );
    }

    let is_form = header_text(header::CONTENT_TYPE)
        .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return reject(
            &shared,
            StatusCode::BAD_REQUEST,
            20001,
            "Invalid Content-Type",
        );
    }
    match field("grant_type") {
        Some("client_credentials") => {}
        None => {
            return reject(
                &shared,
                StatusCode::BAD_REQUEST,
                20001,
                "Missing required parameter grant_type",
            );
        }
        Some(_) => {
            return reject(
                &shared,
                StatusCode::BAD_REQUEST,
                20001,
                "Invalid grant_type",
            );
        }
    }
    let (Some(client_id), Some(client_secret)) = (field("client_id"), field("client_secret"))
    else {
        return reject(
            &shared,
            StatusCode::BAD_REQUEST,
            20001,
            "Missing required parameter client_id or client_secret",
        );
    };
    let account_sid = {
        let Ok(clients) = shared.clients.lock() else {
            return twilio_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                20500,
                "stand-in poisoned",
            );
        };
        match clients.get(client_id) {
            Some(client)
                if bool::from(
                    client
                        .client_secret
                        .as_bytes()
                        .ct_eq(client_secret.as_bytes()),
                ) =>
            {
                client.account_sid.clone()
            }
            _ => String::new(),
        }
    };
    if account_sid.is_empty() {
        return reject(&shared, StatusCode::UNAUTHORIZED, 20003, "Authenticate");
    }

    let ttl = shared.token_ttl_seconds.load(Ordering::SeqCst);
    let claims = jwt::claims_for(client_id, &account_sid, ttl);
    let access_token = jwt::sign(&shared.key, &claims);
    shared.tokens_issued.fetch_add(1, Ordering::SeqCst);
    let body = serde_json::json!({
        "access_token": access_token,
        "id_token": null,
        "token_type": "Bearer",
        "expires_in": ttl,
        "refresh_token": null,
    });
    (StatusCode::OK, axum::Json(body)).into_response()
}

fn reject(shared: &Shared, status: StatusCode, code: u32, message: &str) -> Response {
    shared.rejected.fetch_add(1, Ordering::SeqCst);
    twilio_error(status, code, message)
}
