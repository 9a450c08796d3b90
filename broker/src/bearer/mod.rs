//! OAuth2 client_credentials bearer tokens: the upstream client, the cache
//! and its single-flight refresh (issue 3).

/// Settings of the OAuth token endpoint client (`[oauth]` in the config).
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuthConfig {
    /// Twilio's token endpoint; `TWILIO_BROKER_OAUTH_TOKEN_URL` overrides it.
    pub token_url: Option<String>,
}
