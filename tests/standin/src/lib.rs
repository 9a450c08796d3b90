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
//! And Twilio's key and Auth Token management APIs (v2010 `Keys.json`, IAM
//! v1 `/v1/Keys`, accounts v1 `/v1/AuthTokens/Secondary` and `/Promote`; see
//! [`manage`]) over accounts seeded with [`Standin::add_account`] and
//! [`Standin::add_key`], with HTTP Basic exactly as WIRE.md section 6 says.
//! One listener serves every Twilio host (`api`, `iam`, `accounts`): their
//! paths do not collide.
//!
//! Rust tests call [`start`] and keep the [`Standin`] handle; other languages
//! run the `twilio-standin` binary and use the control API under
//! `/_standin/` (see [`control`]).

#![forbid(unsafe_code)]

pub mod accounts;
pub mod control;
pub mod jwt;
pub mod manage;
mod oauth;
pub mod rest;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};

pub use accounts::{AccessTokenError, Account, ApiKey, KeyType};
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
    /// Requests that reached the key and Auth Token management APIs.
    #[serde(default)]
    pub manage_requests: u64,
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
    /// Accounts by SID: Auth Tokens and keys (see [`accounts`]).
    pub(crate) accounts: Mutex<BTreeMap<String, Account>>,
    pub(crate) manage_requests: AtomicU64,
    /// The next this many management calls get 429 / 20429.
    pub(crate) rate_limited_requests: AtomicU64,
    /// `Retry-After` on those answers; 0 = none.
    pub(crate) retry_after_seconds: AtomicU64,
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
            manage_requests: self.manage_requests.load(Ordering::SeqCst),
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

    pub(crate) fn add_account(&self, account_sid: &str, auth_token: &str) {
        if let Ok(mut accounts) = self.accounts.lock() {
            accounts.insert(
                account_sid.to_owned(),
                Account {
                    account_sid: account_sid.to_owned(),
                    auth_token: auth_token.to_owned(),
                    secondary_auth_token: None,
                    keys: BTreeMap::new(),
                },
            );
        }
    }

    pub(crate) fn add_key(
        &self,
        account_sid: &str,
        key_type: KeyType,
        friendly_name: Option<String>,
    ) -> Option<ApiKey> {
        let key = ApiKey {
            sid: accounts::random_sid("SK"),
            secret: accounts::random_secret(),
            key_type,
            friendly_name,
            policy: None,
            created: std::time::SystemTime::now(),
        };
        let mut table = self.accounts.lock().ok()?;
        table
            .get_mut(account_sid)?
            .keys
            .insert(key.sid.clone(), key.clone());
        Some(key)
    }

    pub(crate) fn account(&self, account_sid: &str) -> Option<Account> {
        self.accounts.lock().ok()?.get(account_sid).cloned()
    }

    pub(crate) fn set_rate_limit(&self, requests: u64, retry_after_seconds: u64) {
        self.rate_limited_requests.store(requests, Ordering::SeqCst);
        self.retry_after_seconds
            .store(retry_after_seconds, Ordering::SeqCst);
    }

    pub(crate) fn verify_access_token(
        &self,
        token: &str,
    ) -> Result<serde_json::Value, AccessTokenError> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let accounts = self
            .accounts
            .lock()
            .map_err(|_| AccessTokenError::UnknownKey)?;
        accounts::verify_access_token(&accounts, token, now)
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
        accounts: Mutex::new(BTreeMap::new()),
        manage_requests: AtomicU64::new(0),
        rate_limited_requests: AtomicU64::new(0),
        retry_after_seconds: AtomicU64::new(0),
    });
    let app = Router::new()
        .route("/v2/token", post(oauth::token))
        .route("/v1/token", post(oauth::token))
        .route(
            "/2010-04-01/Accounts/{account_sid}/Messages.json",
            post(rest::create_message),
        )
        .route(
            "/2010-04-01/Accounts/{account_sid}/Keys.json",
            post(manage::v2010_create_key).get(manage::v2010_list_keys),
        )
        .route(
            "/2010-04-01/Accounts/{account_sid}/Keys/{sid_json}",
            get(manage::v2010_fetch_key).delete(manage::v2010_delete_key),
        )
        .route("/v1/Keys", post(manage::iam_create_key))
        .route(
            "/v1/Keys/{sid}",
            get(manage::iam_fetch_key).delete(manage::iam_delete_key),
        )
        .route(
            "/v1/AuthTokens/Secondary",
            post(manage::create_secondary).delete(manage::delete_secondary),
        )
        .route("/v1/AuthTokens/Promote", post(manage::promote))
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

    /// Creates (or replaces) an account with this primary Auth Token and no
    /// keys.
    pub fn add_account(&self, account_sid: &str, auth_token: &str) {
        self.shared.add_account(account_sid, auth_token);
    }

    /// Adds a key of any type to an existing account (the only way to get a
    /// Main key, as only the Console creates them); None without the account.
    pub fn add_key(&self, account_sid: &str, key_type: KeyType) -> Option<ApiKey> {
        self.shared.add_key(account_sid, key_type, None)
    }

    /// Adds a Restricted key with this IAM `Policy` (as `POST /v1/Keys`
    /// would); None without the account.
    pub fn add_restricted_key(
        &self,
        account_sid: &str,
        policy: serde_json::Value,
    ) -> Option<ApiKey> {
        let mut key = self
            .shared
            .add_key(account_sid, KeyType::Restricted, None)?;
        key.policy = Some(policy);
        let mut table = self.shared.accounts.lock().ok()?;
        table
            .get_mut(account_sid)?
            .keys
            .insert(key.sid.clone(), key.clone());
        Some(key)
    }

    /// A copy of an account: its Auth Tokens and keys.
    pub fn account(&self, account_sid: &str) -> Option<Account> {
        self.shared.account(account_sid)
    }

    /// Whether HTTP Basic `username:password` authenticates right now.
    pub fn authenticates(&self, username: &str, password: &str) -> bool {
        self.shared
            .accounts
            .lock()
            .is_ok_and(|accounts| accounts::authenticate(&accounts, username, password).is_some())
    }

    /// Answers the next `requests` management calls with 429 / 20429, with
    /// `Retry-After: retry_after_seconds` unless 0.
    pub fn set_rate_limit(&self, requests: u64, retry_after_seconds: u64) {
        self.shared.set_rate_limit(requests, retry_after_seconds);
    }

    /// Checks an Access Token against the keys the stand-in holds now (a
    /// deleted key's tokens fail with [`AccessTokenError::UnknownKey`]).
    pub fn verify_access_token(&self, token: &str) -> Result<serde_json::Value, AccessTokenError> {
        self.shared.verify_access_token(token)
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
