//! The `[oauth]` config section and its resolved, checked form.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail};

/// Twilio's current token endpoint (WIRE.md 2.1).
pub const DEFAULT_TOKEN_URL: &str = "https://oauth.twilio.com/v2/token";

/// Settings of the OAuth token endpoint client (`[oauth]` in the config).
/// Every key is optional; times are in seconds (fractions allowed).
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuthConfig {
    /// Twilio's token endpoint; `TWILIO_BROKER_OAUTH_TOKEN_URL` overrides it.
    pub token_url: Option<String>,
    /// Longest wait for a TCP/TLS connection to the endpoint (default 5).
    pub connect_timeout_seconds: Option<f64>,
    /// Longest wait for a whole token request (default 10).
    pub timeout_seconds: Option<f64>,
    /// First wait after a failed request (default 1); doubles per failure.
    pub backoff_initial_seconds: Option<f64>,
    /// Longest wait between retries while Twilio is down (default 60).
    pub backoff_max_seconds: Option<f64>,
    /// How long a rejected client (HTTP 400/401/403) is not retried (default 30).
    pub rejection_memory_seconds: Option<f64>,
    /// Extra PEM CA certificates to trust (a private relay's CA).
    pub ca_file: Option<PathBuf>,
}

/// The `[oauth]` section resolved: defaults filled in, values checked.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The token endpoint.
    pub token_url: String,
    /// Connect time-out.
    pub connect_timeout: Duration,
    /// Total time-out of one token request.
    pub timeout: Duration,
    /// First backoff after a failure.
    pub backoff_initial: Duration,
    /// Backoff cap.
    pub backoff_max: Duration,
    /// How long a rejection is remembered.
    pub rejection_memory: Duration,
    /// Extra CA certificates (PEM file).
    pub ca_file: Option<PathBuf>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            token_url: DEFAULT_TOKEN_URL.to_owned(),
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(10),
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            rejection_memory: Duration::from_secs(30),
            ca_file: None,
        }
    }
}

fn seconds(key: &str, value: Option<f64>, default: Duration) -> anyhow::Result<Duration> {
    match value {
        None => Ok(default),
        Some(v) if v.is_finite() && v > 0.0 && v <= 86_400.0 => Ok(Duration::from_secs_f64(v)),
        Some(v) => {
            bail!("[oauth] {key} = {v} must be a number of seconds above 0 and at most 86400")
        }
    }
}

impl OAuthConfig {
    /// Fills in defaults and checks every value. `env_url` is the value of
    /// `TWILIO_BROKER_OAUTH_TOKEN_URL`, which wins over `token_url`.
    pub fn resolve(&self, env_url: Option<String>) -> anyhow::Result<Settings> {
        let defaults = Settings::default();
        let (token_url, source) = match (env_url.filter(|u| !u.is_empty()), &self.token_url) {
            (Some(url), _) => (url, "TWILIO_BROKER_OAUTH_TOKEN_URL"),
            (None, Some(url)) => (url.clone(), "[oauth] token_url"),
            (None, None) => (defaults.token_url.clone(), "the default token URL"),
        };
        check_url(&token_url).with_context(|| format!("{source} {token_url:?} cannot be used"))?;
        let settings = Settings {
            token_url,
            connect_timeout: seconds(
                "connect_timeout_seconds",
                self.connect_timeout_seconds,
                defaults.connect_timeout,
            )?,
            timeout: seconds("timeout_seconds", self.timeout_seconds, defaults.timeout)?,
            backoff_initial: seconds(
                "backoff_initial_seconds",
                self.backoff_initial_seconds,
                defaults.backoff_initial,
            )?,
            backoff_max: seconds(
                "backoff_max_seconds",
                self.backoff_max_seconds,
                defaults.backoff_max,
            )?,
            rejection_memory: seconds(
                "rejection_memory_seconds",
                self.rejection_memory_seconds,
                defaults.rejection_memory,
            )?,
            ca_file: self.ca_file.clone(),
        };
        if settings.backoff_initial > settings.backoff_max {
            bail!("[oauth] backoff_initial_seconds must not exceed backoff_max_seconds");
        }
        Ok(settings)
    }
}

/// The client secret travels in the request body: plain HTTP is allowed only
/// to a loopback address (tests, a local relay).
pub(crate) fn check_url(text: &str) -> anyhow::Result<()> {
    let url = reqwest::Url::parse(text).context("not a URL")?;
    if !url.username().is_empty() || url.password().is_some() {
        bail!("it must not carry a user name or password");
    }
    match url.scheme() {
        "https" => Ok(()),
        "http" => {
            let host = url.host_str().unwrap_or_default();
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let loopback = host.eq_ignore_ascii_case("localhost")
                || host
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback());
            if loopback {
                Ok(())
            } else {
                bail!("plain http is allowed only to a loopback address; use https")
            }
        }
        other => bail!("scheme {other:?} is not supported; use https"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_times_are_checked() {
        let ok = |url: &str| {
            OAuthConfig {
                token_url: Some(url.into()),
                ..Default::default()
            }
            .resolve(None)
            .is_ok()
        };
        assert!(ok("https://oauth.twilio.com/v2/token"));
        assert!(ok("http://127.0.0.1:8080/v2/token"));
        assert!(ok("http://localhost/v2/token"));
        assert!(ok("http://[::1]:9/v2/token"));
        assert!(!ok("http://oauth.twilio.com/v2/token"));
        assert!(!ok("ftp://127.0.0.1/"));
        assert!(!ok("https://user:pw@oauth.twilio.com/v2/token"));
        assert!(!ok("not a url"));

        let config = OAuthConfig {
            timeout_seconds: Some(0.0),
            ..Default::default()
        };
        let err = config.resolve(None).expect_err("zero time-out");
        assert!(format!("{err:#}").contains("timeout_seconds"), "{err:#}");
    }

    #[test]
    fn the_environment_wins_over_the_file() {
        let config = OAuthConfig {
            token_url: Some("https://relay.example/v2/token".into()),
            timeout_seconds: Some(2.5),
            ..Default::default()
        };
        let settings = config
            .resolve(Some("http://127.0.0.1:9/v2/token".into()))
            .expect("valid");
        assert_eq!(settings.token_url, "http://127.0.0.1:9/v2/token");
        assert_eq!(settings.timeout, Duration::from_millis(2500));
        let settings = config.resolve(Some(String::new())).expect("valid");
        assert_eq!(settings.token_url, "https://relay.example/v2/token");
        assert_eq!(
            OAuthConfig::default()
                .resolve(None)
                .expect("defaults")
                .token_url,
            DEFAULT_TOKEN_URL
        );
    }
}
