//! twilio-standin: a local stand-in for Twilio's endpoints, for tests.
//!
//! Today it serves the OAuth2 token endpoint exactly as WIRE.md section 2
//! describes it (`POST /v2/token`, also `/v1/token`): a form-encoded
//! `client_credentials` grant in; `{access_token, id_token, token_type,
//! expires_in, refresh_token}` out, where `access_token` is a real HS256 JWT
//! with an `exp`; Twilio-style JSON errors (`{code, message, more_info,
//! status}`) for a bad client. It counts requests and can fail, delay and
//! issue short-lived tokens.
//!
//! It also serves the one REST call the client tests make,
//! `POST /2010-04-01/Accounts/{AccountSid}/Messages.json` (see [`rest`]),
//! which accepts only a bearer token this stand-in issued for that account.
//!
//! Rust tests call [`start`] and keep the [`Standin`] handle; other languages
//! run the `twilio-standin` binary and use the control API under
//! `/_standin/` (see [`control`]).

#![forbid(unsafe_code)]

pub mod control;
pub mod jwt;
mod oauth;
pub mod rest;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::routing::post;

pub use jwt::{Claims, VerifyError};
pub use rest::SentMessage;

/// An OAuth client the stand-in accepts.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Client {
    /// `OQ...`
    pub client_id: String,
    /// The secret it must present.
    pub client_secret: String,
    /// The account its tokens work for (`sub` claim).
    pub account_sid: String,
}

/// How to start a stand-in.
#[derive(Debug, Clone)]
pub struct Config {
    /// Listen address; `127.0.0.1:0` picks a free port.
    pub listen: SocketAddr,
    /// Lifetime of issued tokens, in seconds.
    pub token_ttl_seconds: u64,
    /// Clients accepted from the start.
    pub clients: Vec<Client>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            token_ttl_seconds: 3600,
            clients: Vec::new(),
        }
    }
}

/// What the last token request looked like (never the secret).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RecordedRequest {
    /// Request path, e.g. `/v2/token`.
    pub path: String,
    /// The Content-Type header.
    pub content_type: Option<String>,
    /// The Accept header.
    pub accept: Option<String>,
    /// Whether an Authorization header was sent (Twilio's SDKs send none).
    pub has_authorization: bool,
    /// Form field names in the order sent.
    pub field_names: Vec<String>,
    /// The `grant_type` value.
    pub grant_type: Option<String>,
    /// The `client_id` value.
    pub client_id: Option<String>,
}

/// Counters of a stand-in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Stats {
    /// Requests that reached the token endpoint, whatever their outcome.
    pub token_requests: u64,
    /// Tokens issued.
    pub tokens_issued: u64,
    /// Requests rejected for a bad client or a malformed grant.
    pub rejected: u64,
    /// Requests that reached the REST API (`Messages.json`).
    #[serde(default)]
    pub rest_requests: u64,
    /// REST requests turned away (bad or missing bearer, missing field).
    #[serde(default)]
    pub rest_rejected: u64,
    /// Messages created.
    #[serde(default)]
    pub messages_created: u64,
}

/// State shared by the handlers and the handle.
pub(crate) struct Shared {
    pub(crate) key: [u8; 32],
    pub(crate) clients: Mutex<HashMap<String, Client>>,
    pub(crate) token_ttl_seconds: AtomicU64,
    /// 0 = answer normally; otherwise answer every token request with this status.
    pub(crate) fail_status: AtomicU16,
    pub(crate) delay_ms: AtomicU64,
    pub(crate) token_requests: AtomicU64,
    pub(crate) tokens_issued: AtomicU64,
    pub(crate) rejected: AtomicU64,
    pub(crate) last_request: Mutex<Option<RecordedRequest>>,
    pub(crate) rest_requests: AtomicU64,
    pub(crate) rest_rejected: AtomicU64,
    pub(crate) messages: Mutex<Vec<SentMessage>>,
}

impl Shared {
    pub(crate) fn stats(&self) -> Stats {
        Stats {
            token_requests: self.token_requests.load(Ordering::SeqCst),
            tokens_issued: self.tokens_issued.load(Ordering::SeqCst),
            rejected: self.rejected.load(Ordering::SeqCst),
            rest_requests: self.rest_requests.load(Ordering::SeqCst),
            rest_rejected: self.rest_rejected.load(Ordering::SeqCst),
            messages_created: self.messages().len() as u64,
        }
    }

    pub(crate) fn messages(&self) -> Vec<SentMessage> {
        self.messages.lock().map(|m| m.clone()).unwrap_or_default()
    }

    pub(crate) fn add_client(&self, client: Client) {
        if let Ok(mut clients) = self.clients.lock() {
            clients.insert(client.client_id.clone(), client);
        }
    }

    pub(crate) fn remove_client(&self, client_id: &str) {
        if let Ok(mut clients) = self.clients.lock() {
            clients.remove(client_id);
        }
    }
}

/// A running stand-in. Dropping it stops the server.
pub struct Standin {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

/// Starts a stand-in on the current tokio runtime.
pub async fn start(config: Config) -> std::io::Result<Standin> {
    let mut key = [0u8; 32];
    rand::fill(&mut key);
    let shared = Arc::new(Shared {
        key,
        clients: Mutex::new(
            config
                .clients
                .into_iter()
                .map(|c| (c.client_id.clone(), c))
                .collect(),
        ),
        token_ttl_seconds: AtomicU64::new(config.token_ttl_seconds),
        fail_status: AtomicU16::new(0),
        delay_ms: AtomicU64::new(0),
        token_requests: AtomicU64::new(0),
        tokens_issued: AtomicU64::new(0),
        rejected: AtomicU64::new(0),
        last_request: Mutex::new(None),
        rest_requests: AtomicU64::new(0),
        rest_rejected: AtomicU64::new(0),
        messages: Mutex::new(Vec::new()),
    });
    let app = Router::new()
        .route("/v2/token", post(oauth::token))
        .route("/v1/token", post(oauth::token))
        .route(
            "/2010-04-01/Accounts/{account_sid}/Messages.json",
            post(rest::create_message),
        )
        .merge(control::routes())
        .with_state(Arc::clone(&shared));
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(Standin { addr, shared, task })
}

impl Standin {
    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The current token endpoint, `http://127.0.0.1:PORT/v2/token`.
    pub fn token_url(&self) -> String {
        format!("{}/v2/token", self.url())
    }

    /// Accepts (or replaces) a client.
    pub fn add_client(&self, client: Client) {
        self.shared.add_client(client);
    }

    /// Stops accepting a client: its secret now gets 401 / 20003.
    pub fn remove_client(&self, client_id: &str) {
        self.shared.remove_client(client_id);
    }

    /// The counters.
    pub fn stats(&self) -> Stats {
        self.shared.stats()
    }

    /// Requests that reached the token endpoint so far.
    pub fn token_requests(&self) -> u64 {
        self.shared.token_requests.load(Ordering::SeqCst)
    }

    /// Tokens issued so far.
    pub fn tokens_issued(&self) -> u64 {
        self.shared.tokens_issued.load(Ordering::SeqCst)
    }

    /// Answers every token request with `status` (e.g. 503) until `None`.
    pub fn set_failure(&self, status: Option<u16>) {
        self.shared
            .fail_status
            .store(status.unwrap_or(0), Ordering::SeqCst);
    }

    /// Waits this long before answering each token request.
    pub fn set_delay(&self, delay: Duration) {
        let ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        self.shared.delay_ms.store(ms, Ordering::SeqCst);
    }

    /// Lifetime of tokens issued from now on.
    pub fn set_token_ttl_seconds(&self, seconds: u64) {
        self.shared
            .token_ttl_seconds
            .store(seconds, Ordering::SeqCst);
    }

    /// What the last token request looked like.
    pub fn last_request(&self) -> Option<RecordedRequest> {
        self.shared.last_request.lock().ok()?.clone()
    }

    /// Messages created through the REST API, oldest first.
    pub fn messages(&self) -> Vec<SentMessage> {
        self.shared.messages()
    }

    /// Checks a token this stand-in issued: signature and expiry.
    pub fn verify(&self, token: &str) -> Result<Claims, VerifyError> {
        jwt::verify(&self.shared.key, token)
    }
}

impl Drop for Standin {
    fn drop(&mut self) {
        self.task.abort();
    }
}
