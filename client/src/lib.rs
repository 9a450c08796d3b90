//! Rust client for twilio-broker.
//!
//! ```no_run
//! # async fn demo() -> Result<(), twilio_broker_client::Error> {
//! use std::time::Duration;
//! use twilio_broker_client::{AccessTokenRequest, Client, VideoGrant};
//!
//! let client = Client::connect("unix:/run/twilio-broker/broker.sock").await?;
//! let bearer = client.bearer("prod-oauth").await?;          // cached until shortly before expiry
//! let token = client
//!     .mint_access_token(
//!         AccessTokenRequest::new("prod-video-key", "user-42")
//!             .ttl(Duration::from_secs(600))
//!             .video(VideoGrant::room("standup")),
//!     )
//!     .await?;
//! # let _ = (bearer, token);
//! # Ok(()) }
//! ```
//!
//! **Invariant:** this crate depends on `twilio-broker-api` only, never on the
//! daemon (`cargo tree -p twilio-broker-client` shows it).

mod bearer_cache;
mod connect;
mod error;
mod grants;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use bearer_cache::DEFAULT_SAFETY_MARGIN;
pub use connect::{ConnectOptions, DEFAULT_CALL_TIMEOUT, TlsOptions, channel};
pub use error::{Details, ERROR_DOMAIN, Error};
pub use grants::{
    AccessTokenRequest, ChatGrant, PlaybackGrant, SyncGrant, TaskRouterGrant, VideoGrant,
    VoiceGrant,
};
/// The generated protocol types, for calls this crate does not wrap.
pub use twilio_broker_api::v1 as proto;

use proto::admin_client::AdminClient;
use proto::broker_client::BrokerClient;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

/// Sets each call's deadline (`grpc-timeout`): tonic's channel enforces it
/// locally and the broker sees it.
#[derive(Clone, Copy, Debug)]
struct Deadline(Option<Duration>);

impl tonic::service::Interceptor for Deadline {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(timeout) = self.0 {
            request.set_timeout(timeout);
        }
        Ok(request)
    }
}

/// The channel every call goes through.
type Calls = InterceptedService<Channel, Deadline>;

/// A bearer token from GetBearer.
#[derive(Clone)]
pub struct Bearer {
    /// The token for `Authorization: Bearer ...`. Treat as a secret.
    pub access_token: String,
    /// When Twilio stops accepting it.
    pub expires_at: SystemTime,
    /// The account it works for.
    pub account_sid: String,
}

impl std::fmt::Debug for Bearer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bearer")
            .field("access_token", &"[REDACTED]")
            .field("expires_at", &self.expires_at)
            .field("account_sid", &self.account_sid)
            .finish()
    }
}

impl Bearer {
    /// The value of an `Authorization` header.
    pub fn authorization(&self) -> String {
        format!("Bearer {}", self.access_token)
    }
}

/// A minted Access Token.
#[derive(Clone)]
pub struct AccessToken {
    /// The JWT for the client SDK.
    pub token: String,
    /// Its expiry.
    pub expires_at: SystemTime,
    /// Its `jti`.
    pub jti: String,
}

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessToken")
            .field("token", &"[REDACTED]")
            .field("expires_at", &self.expires_at)
            .field("jti", &self.jti)
            .finish()
    }
}

/// The verdict on a webhook signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookVerdict {
    /// True when the signature matches.
    pub valid: bool,
    /// Why not, when it does not.
    pub reason: String,
}

/// A webhook request to check with ValidateWebhook.
#[derive(Debug, Clone, Default)]
pub struct WebhookRequest {
    /// Name of the stored auth_token or test credential.
    pub credential: String,
    /// The full URL Twilio requested.
    pub url: String,
    /// Decoded form parameters, repeated names kept.
    pub params: Vec<(String, String)>,
    /// The raw body of a JSON webhook (with `bodySHA256` in the URL).
    pub body: String,
    /// The `X-Twilio-Signature` header.
    pub signature: String,
    /// The `X-Twilio-Webhooks-Signature-Settings` header, if any.
    pub signature_settings: String,
}

/// A connection to a broker. Cheap to clone; clones share the connection
/// and the bearer cache.
#[derive(Clone)]
pub struct Client {
    channel: Channel,
    broker: BrokerClient<Calls>,
    admin: AdminClient<Calls>,
    cache: std::sync::Arc<bearer_cache::BearerCache>,
}

pub(crate) fn system_time(t: Option<prost_types::Timestamp>) -> SystemTime {
    let Some(t) = t else { return UNIX_EPOCH };
    let secs = u64::try_from(t.seconds).unwrap_or(0);
    let nanos = u32::try_from(t.nanos).unwrap_or(0);
    UNIX_EPOCH + Duration::new(secs, nanos)
}

impl Client {
    /// Connects to `target`: `host:port`, `http://host:port`, `https://host:port`
    /// (with TLS options) or `unix:/path`.
    pub async fn connect(target: &str) -> Result<Self, Error> {
        Self::connect_with(target, ConnectOptions::default()).await
    }

    /// Connects with TLS/mTLS material and a bearer-cache safety margin.
    pub async fn connect_with(target: &str, options: ConnectOptions) -> Result<Self, Error> {
        let channel = connect::channel(target, &options).await?;
        Ok(Self::from_channel(channel, options.bearer_safety_margin)
            .with_call_timeout(options.call_timeout))
    }

    /// Wraps an existing channel; calls get the default deadline
    /// ([`DEFAULT_CALL_TIMEOUT`]) unless [`Client::with_call_timeout`] says otherwise.
    pub fn from_channel(channel: Channel, bearer_safety_margin: Duration) -> Self {
        let deadline = Deadline(Some(DEFAULT_CALL_TIMEOUT));
        Client {
            broker: BrokerClient::with_interceptor(channel.clone(), deadline),
            admin: AdminClient::with_interceptor(channel.clone(), deadline),
            channel,
            cache: std::sync::Arc::new(bearer_cache::BearerCache::new(bearer_safety_margin)),
        }
    }

    /// The same client (sharing its connection and bearer cache) with another
    /// deadline per call; `None` waits for as long as the broker takes. A call
    /// past its deadline fails with [`Error::DeadlineExceeded`].
    pub fn with_call_timeout(self, timeout: Option<Duration>) -> Self {
        let deadline = Deadline(timeout);
        Client {
            broker: BrokerClient::with_interceptor(self.channel.clone(), deadline),
            admin: AdminClient::with_interceptor(self.channel.clone(), deadline),
            channel: self.channel,
            cache: self.cache,
        }
    }

    /// A bearer token for an oauth_client credential, from the client-side
    /// cache while it has more than the safety margin left, else from the
    /// broker (one call per credential however many tasks ask at once).
    pub async fn bearer(&self, credential: &str) -> Result<Bearer, Error> {
        let broker = self.broker.clone();
        self.cache
            .get(credential, move |name, min_ttl| {
                let mut broker = broker.clone();
                async move { fetch_bearer(&mut broker, &name, min_ttl).await }
            })
            .await
    }

    /// How many times this client asked the broker for a bearer token.
    pub fn bearer_fetches(&self) -> u64 {
        self.cache.fetches()
    }

    /// GetBearer without the client-side cache.
    pub async fn get_bearer(&self, credential: &str, min_ttl: Duration) -> Result<Bearer, Error> {
        let min_ttl = u32::try_from(min_ttl.as_secs()).unwrap_or(u32::MAX);
        fetch_bearer(&mut self.broker.clone(), credential, min_ttl).await
    }

    /// MintAccessToken.
    pub async fn mint_access_token(
        &self,
        request: AccessTokenRequest,
    ) -> Result<AccessToken, Error> {
        let reply = self
            .broker
            .clone()
            .mint_access_token(request.into_proto())
            .await?
            .into_inner();
        Ok(AccessToken {
            token: reply.token,
            expires_at: system_time(reply.expires_at),
            jti: reply.jti,
        })
    }

    /// ValidateWebhook.
    pub async fn validate_webhook(&self, request: WebhookRequest) -> Result<WebhookVerdict, Error> {
        let reply = self
            .broker
            .clone()
            .validate_webhook(proto::ValidateWebhookRequest {
                credential: request.credential,
                url: request.url,
                params: request
                    .params
                    .into_iter()
                    .map(|(name, value)| proto::FormParam { name, value })
                    .collect(),
                body: request.body,
                signature: request.signature,
                signature_settings: request.signature_settings,
            })
            .await?
            .into_inner();
        Ok(WebhookVerdict {
            valid: reply.valid,
            reason: reply.reason,
        })
    }

    /// Recommend.
    pub async fn recommend(
        &self,
        request: proto::RecommendRequest,
    ) -> Result<proto::RecommendResponse, Error> {
        Ok(self.broker.clone().recommend(request).await?.into_inner())
    }

    /// Admin/PutCredential. Drops any cached bearer of that name.
    pub async fn put_credential(
        &self,
        request: proto::PutCredentialRequest,
    ) -> Result<proto::CredentialMetadata, Error> {
        let name = request.name.clone();
        let reply = self
            .admin
            .clone()
            .put_credential(request)
            .await?
            .into_inner();
        self.cache.forget(&name);
        reply
            .credential
            .ok_or_else(|| Error::Protocol("PutCredential returned no metadata".into()))
    }

    /// Admin/GetCredential.
    pub async fn get_credential(&self, name: &str) -> Result<proto::CredentialMetadata, Error> {
        let reply = self
            .admin
            .clone()
            .get_credential(proto::GetCredentialRequest { name: name.into() })
            .await?
            .into_inner();
        reply
            .credential
            .ok_or_else(|| Error::Protocol("GetCredential returned no metadata".into()))
    }

    /// Admin/ListCredentials: every credential the caller may see, all
    /// pages followed.
    pub async fn list_credentials(&self) -> Result<Vec<proto::CredentialMetadata>, Error> {
        self.list_credentials_matching("").await
    }

    /// Admin/ListCredentials with a filter (e.g. `kind = api_key AND
    /// labels.environment = production`), all pages followed.
    pub async fn list_credentials_matching(
        &self,
        filter: &str,
    ) -> Result<Vec<proto::CredentialMetadata>, Error> {
        let mut all = Vec::new();
        let mut page_token = String::new();
        loop {
            let page = self
                .admin
                .clone()
                .list_credentials(proto::ListCredentialsRequest {
                    page_size: 0,
                    page_token,
                    filter: filter.to_owned(),
                })
                .await?
                .into_inner();
            all.extend(page.credentials);
            if page.next_page_token.is_empty() {
                return Ok(all);
            }
            page_token = page.next_page_token;
        }
    }

    /// Admin/DeleteCredential. Drops any cached bearer of that name.
    pub async fn delete_credential(&self, name: &str) -> Result<(), Error> {
        self.admin
            .clone()
            .delete_credential(proto::DeleteCredentialRequest { name: name.into() })
            .await?;
        self.cache.forget(name);
        Ok(())
    }

    /// Admin/ReloadPolicy: returns the number of rules in force.
    pub async fn reload_policy(&self) -> Result<u32, Error> {
        Ok(self
            .admin
            .clone()
            .reload_policy(proto::ReloadPolicyRequest {})
            .await?
            .into_inner()
            .rules)
    }
}

async fn fetch_bearer(
    broker: &mut BrokerClient<Calls>,
    credential: &str,
    min_ttl_seconds: u32,
) -> Result<Bearer, Error> {
    let reply = broker
        .get_bearer(proto::GetBearerRequest {
            credential: credential.into(),
            min_ttl_seconds,
        })
        .await?
        .into_inner();
    Ok(Bearer {
        access_token: reply.access_token,
        expires_at: system_time(reply.expires_at),
        account_sid: reply.account_sid,
    })
}
