//! [`TwilioApi`]: the management calls over reqwest, one method per call,
//! shapes as in twilio-python 9.13's generated modules (and the stand-in,
//! `tests/standin/src/manage.rs`, which a test drives with twilio-python).

use std::time::Duration;

use zeroize::Zeroizing;

use crate::credential::{KeyType, SealedSecret, Secret};
use crate::sid::{self, SidKind};

use super::error::ApiError;
use super::settings::Endpoints;

/// Largest response read; Twilio's key and token resources are well under 4 KiB.
const MAX_BODY: usize = 64 * 1024;

/// The credential a management call authenticates with: the account's Auth
/// Token or one of its Main keys (WIRE.md 4.1: only these may manage keys).
#[derive(Debug, Clone, Copy)]
pub struct Manager<'a> {
    account_sid: &'a str,
    username: &'a str,
    secret: &'a SealedSecret,
}

impl<'a> Manager<'a> {
    /// The manager a stored secret can act as: an `auth_token` credential or
    /// a Main `api_key`. Anything else cannot manage keys or tokens.
    pub fn from_secret(secret: &'a Secret) -> Result<Self, ApiError> {
        match secret {
            Secret::AuthToken {
                account_sid,
                auth_token,
                ..
            } => Ok(Manager {
                account_sid,
                username: account_sid,
                secret: auth_token,
            }),
            Secret::ApiKey {
                account_sid,
                key_sid,
                secret,
                key_type: KeyType::Main,
                ..
            } => Ok(Manager {
                account_sid,
                username: key_sid,
                secret,
            }),
            Secret::ApiKey { key_type, .. } => Err(ApiError::NotAllowed(format!(
                "a {} API key cannot create or delete keys or Auth Tokens; the manager must be \
                 a Main key or the account's Auth Token",
                key_type.as_str()
            ))),
            other => Err(ApiError::NotAllowed(format!(
                "a {} credential cannot create or delete keys or Auth Tokens; the manager must \
                 be a Main key or the account's Auth Token",
                other.kind().as_str()
            ))),
        }
    }

    /// The account the manager belongs to (and acts on).
    pub fn account_sid(&self) -> &str {
        self.account_sid
    }
}

/// A key Twilio just created: its secret is shown only this once, and is
/// sealed at once.
#[derive(Debug, Clone)]
pub struct NewKey {
    /// `SK…`
    pub sid: String,
    /// The key's secret.
    pub secret: SealedSecret,
}

/// Twilio's management APIs over HTTPS.
#[derive(Debug, Clone)]
pub struct TwilioApi {
    client: reqwest::Client,
    endpoints: Endpoints,
    timeout: Duration,
}

impl TwilioApi {
    /// A client for `endpoints`: no redirects, 5 s to connect, 30 s per call.
    pub fn new(endpoints: Endpoints) -> anyhow::Result<Self> {
        use anyhow::Context as _;
        let timeout = Duration::from_secs(30);
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("twilio-broker/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("cannot set up the HTTPS client for Twilio's REST APIs")?;
        Ok(TwilioApi {
            client,
            endpoints,
            timeout,
        })
    }

    /// `POST {api}/2010-04-01/Accounts/{AC}/Keys.json`: a new Standard key.
    pub async fn create_standard_key(
        &self,
        manager: Manager<'_>,
        friendly_name: &str,
    ) -> Result<NewKey, ApiError> {
        let url = self.url(
            &self.endpoints.api_base,
            &format!("2010-04-01/Accounts/{}/Keys.json", manager.account_sid),
        )?;
        let body = self
            .send(
                manager,
                reqwest::Method::POST,
                url,
                &[("FriendlyName", friendly_name)],
            )
            .await?;
        new_key(&body)
    }

    /// `DELETE {api}/2010-04-01/Accounts/{AC}/Keys/{SK}.json`.
    pub async fn delete_standard_key(
        &self,
        manager: Manager<'_>,
        key_sid: &str,
    ) -> Result<(), ApiError> {
        check_sid(SidKind::ApiKey, key_sid)?;
        let url = self.url(
            &self.endpoints.api_base,
            &format!(
                "2010-04-01/Accounts/{}/Keys/{key_sid}.json",
                manager.account_sid
            ),
        )?;
        self.send(manager, reqwest::Method::DELETE, url, &[])
            .await
            .map(drop)
    }

    /// `POST {iam}/v1/Keys` with `KeyType=restricted` and `policy` (a JSON
    /// object `{"allow": [...]}`): a new Restricted key.
    pub async fn create_restricted_key(
        &self,
        manager: Manager<'_>,
        friendly_name: &str,
        policy: &serde_json::Value,
    ) -> Result<NewKey, ApiError> {
        if !policy.get("allow").is_some_and(serde_json::Value::is_array) {
            return Err(ApiError::NotAllowed(
                "a restricted key's policy must be a JSON object with an \"allow\" array".into(),
            ));
        }
        let url = self.url(&self.endpoints.iam_base, "v1/Keys")?;
        let policy = policy.to_string();
        let body = self
            .send(
                manager,
                reqwest::Method::POST,
                url,
                &[
                    ("AccountSid", manager.account_sid),
                    ("FriendlyName", friendly_name),
                    ("KeyType", "restricted"),
                    ("Policy", &policy),
                ],
            )
            .await?;
        new_key(&body)
    }

    /// `GET {iam}/v1/Keys/{SK}`: the key's `Policy` (None for a Standard key),
    /// to give its successor the same one.
    pub async fn key_policy(
        &self,
        manager: Manager<'_>,
        key_sid: &str,
    ) -> Result<Option<serde_json::Value>, ApiError> {
        check_sid(SidKind::ApiKey, key_sid)?;
        let url = self.url(&self.endpoints.iam_base, &format!("v1/Keys/{key_sid}"))?;
        let body = self.send(manager, reqwest::Method::GET, url, &[]).await?;
        #[derive(serde::Deserialize)]
        struct Reply {
            policy: Option<serde_json::Value>,
        }
        let reply: Reply = parse(&body)?;
        Ok(reply.policy.filter(|p| !p.is_null()))
    }

    /// `DELETE {iam}/v1/Keys/{SK}` (any key type).
    pub async fn delete_key(&self, manager: Manager<'_>, key_sid: &str) -> Result<(), ApiError> {
        check_sid(SidKind::ApiKey, key_sid)?;
        let url = self.url(&self.endpoints.iam_base, &format!("v1/Keys/{key_sid}"))?;
        self.send(manager, reqwest::Method::DELETE, url, &[])
            .await
            .map(drop)
    }

    /// `POST {accounts}/v1/AuthTokens/Secondary`: a new secondary Auth Token
    /// (replacing one that exists).
    pub async fn create_secondary_auth_token(
        &self,
        manager: Manager<'_>,
    ) -> Result<SealedSecret, ApiError> {
        let url = self.url(&self.endpoints.accounts_base, "v1/AuthTokens/Secondary")?;
        let body = self.send(manager, reqwest::Method::POST, url, &[]).await?;
        #[derive(serde::Deserialize)]
        struct Reply {
            secondary_auth_token: Option<String>,
        }
        let reply: Reply = parse(&body)?;
        sealed(reply.secondary_auth_token, "secondary_auth_token")
    }

    /// `DELETE {accounts}/v1/AuthTokens/Secondary`.
    pub async fn delete_secondary_auth_token(&self, manager: Manager<'_>) -> Result<(), ApiError> {
        let url = self.url(&self.endpoints.accounts_base, "v1/AuthTokens/Secondary")?;
        self.send(manager, reqwest::Method::DELETE, url, &[])
            .await
            .map(drop)
    }

    /// `POST {accounts}/v1/AuthTokens/Promote`: the secondary becomes the
    /// primary, and the old primary stops working at once (including as the
    /// `manager` of any later call). Returns the new primary.
    pub async fn promote_secondary_auth_token(
        &self,
        manager: Manager<'_>,
    ) -> Result<SealedSecret, ApiError> {
        let url = self.url(&self.endpoints.accounts_base, "v1/AuthTokens/Promote")?;
        let body = self.send(manager, reqwest::Method::POST, url, &[]).await?;
        #[derive(serde::Deserialize)]
        struct Reply {
            auth_token: Option<String>,
        }
        let reply: Reply = parse(&body)?;
        sealed(reply.auth_token, "auth_token")
    }

    fn url(&self, base: &reqwest::Url, path: &str) -> Result<reqwest::Url, ApiError> {
        let mut base = base.clone();
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        base.join(path)
            .map_err(|err| ApiError::NotAllowed(format!("cannot build a URL for {path}: {err}")))
    }

    /// One call; the manager's secret is in clear only while the request is
    /// built. Returns the body of a 2xx answer (zeroized when dropped: it
    /// may hold a new secret).
    async fn send(
        &self,
        manager: Manager<'_>,
        method: reqwest::Method,
        url: reqwest::Url,
        form: &[(&str, &str)],
    ) -> Result<Zeroizing<Vec<u8>>, ApiError> {
        let request = {
            let password = manager.secret.open();
            let mut request = self
                .client
                .request(method.clone(), url)
                .basic_auth(manager.username, Some(password.as_str()));
            if method != reqwest::Method::DELETE {
                request = request.header(reqwest::header::ACCEPT, "application/json");
            }
            if method == reqwest::Method::POST {
                request = request.form(form);
            }
            request
        };
        let mut response = request
            .send()
            .await
            .map_err(|err| self.transport_failure(&err))?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let mut body = Zeroizing::new(Vec::new());
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|err| self.transport_failure(&err))?
        {
            if body.len() + chunk.len() > MAX_BODY {
                return Err(ApiError::Unreachable(format!(
                    "sent a response over {} KiB",
                    MAX_BODY / 1024
                )));
            }
            body.extend_from_slice(&chunk);
        }
        match status {
            200..=299 => Ok(body),
            429 => Err(ApiError::RateLimited {
                retry_after,
                code: TwilioError::parse(&body, manager.secret).code,
            }),
            300..=399 => Err(ApiError::Unreachable(format!(
                "answered with a redirect (HTTP {status}); redirects are not followed: set the \
                 [twilio] base URL to the final address"
            ))),
            400..=499 => {
                let error = TwilioError::parse(&body, manager.secret);
                Err(ApiError::Rejected {
                    status,
                    code: error.code,
                    message: error.message,
                    more_info: error.more_info,
                })
            }
            _ => {
                let error = TwilioError::parse(&body, manager.secret);
                let detail = match error.code {
                    Some(code) => format!(", Twilio error {code}: {}", error.message),
                    None => String::new(),
                };
                Err(ApiError::Unreachable(format!(
                    "answered HTTP {status}{detail}"
                )))
            }
        }
    }

    fn transport_failure(&self, err: &reqwest::Error) -> ApiError {
        if err.is_timeout() {
            return ApiError::Unreachable(format!(
                "did not answer within {} s",
                self.timeout.as_secs()
            ));
        }
        let mut cause: &dyn std::error::Error = err;
        while let Some(next) = cause.source() {
            cause = next;
        }
        let what = if err.is_connect() {
            "cannot be reached"
        } else {
            "failed"
        };
        ApiError::Unreachable(format!("{what} ({cause})"))
    }
}

fn check_sid(kind: SidKind, value: &str) -> Result<(), ApiError> {
    sid::check(kind, value).map_err(|err| ApiError::NotAllowed(err.to_string()))
}

/// Parses a 2xx body; serde's message may quote the body (a secret), so
/// only the position is kept.
fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|err| {
        ApiError::Unreachable(format!(
            "answered with a body that is not the expected JSON (line {}, column {})",
            err.line(),
            err.column()
        ))
    })
}

fn sealed(value: Option<String>, field: &str) -> Result<SealedSecret, ApiError> {
    match value.filter(|v| !v.is_empty()) {
        Some(secret) => Ok(SealedSecret::from(secret)),
        None => Err(ApiError::Unreachable(format!("answered without a {field}"))),
    }
}

/// The `{sid, secret}` of a created key (v2010 and IAM agree on both names).
fn new_key(body: &[u8]) -> Result<NewKey, ApiError> {
    #[derive(serde::Deserialize)]
    struct Reply {
        sid: Option<String>,
        secret: Option<String>,
    }
    let reply: Reply = parse(body)?;
    let secret = sealed(reply.secret, "secret")?;
    let sid = reply.sid.unwrap_or_default();
    if !sid::is(SidKind::ApiKey, &sid) {
        return Err(ApiError::Unreachable(
            "answered with a key whose sid is not an API key SID".into(),
        ));
    }
    Ok(NewKey { sid, secret })
}

/// Twilio's JSON error (`{code, message, more_info, status}`).
struct TwilioError {
    code: Option<u64>,
    message: String,
    more_info: Option<String>,
}

impl TwilioError {
    fn parse(body: &[u8], secret: &SealedSecret) -> Self {
        #[derive(serde::Deserialize)]
        struct Raw {
            code: Option<u64>,
            message: Option<String>,
            more_info: Option<String>,
        }
        let raw: Option<Raw> = serde_json::from_slice(body).ok();
        let Some(raw) = raw else {
            return TwilioError {
                code: None,
                message: String::from("(no Twilio error in the body)"),
                more_info: None,
            };
        };
        TwilioError {
            code: raw.code,
            message: secret.scrub(raw.message.as_deref().unwrap_or_default()),
            more_info: raw
                .more_info
                .map(|m| secret.scrub(&m))
                .filter(|m| m.starts_with("https://")),
        }
    }
}
