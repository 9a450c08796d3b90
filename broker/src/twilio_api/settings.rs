//! The `[twilio]` config section: where Twilio's REST hosts are, resolved
//! like the OAuth token URL (environment over file over default; https, or
//! plain http to a loopback address only).

use anyhow::Context as _;

/// Twilio's core REST host (v2010 `Keys.json`).
pub const DEFAULT_API_BASE: &str = "https://api.twilio.com";
/// Twilio's IAM host (v1 `/v1/Keys`).
pub const DEFAULT_IAM_BASE: &str = "https://iam.twilio.com";
/// Twilio's accounts host (v1 `/v1/AuthTokens/...`).
pub const DEFAULT_ACCOUNTS_BASE: &str = "https://accounts.twilio.com";

/// `[twilio]` in the config file. Every key is optional.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TwilioConfig {
    /// `https://api.twilio.com`; `TWILIO_BROKER_API_BASE` overrides it.
    pub api_base: Option<String>,
    /// `https://iam.twilio.com`; `TWILIO_BROKER_IAM_BASE` overrides it.
    pub iam_base: Option<String>,
    /// `https://accounts.twilio.com`; `TWILIO_BROKER_ACCOUNTS_BASE` overrides it.
    pub accounts_base: Option<String>,
}

/// The three hosts, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    /// v2010 host.
    pub api_base: reqwest::Url,
    /// IAM v1 host.
    pub iam_base: reqwest::Url,
    /// accounts v1 host.
    pub accounts_base: reqwest::Url,
}

impl TwilioConfig {
    /// Resolves with the process environment.
    pub fn resolve_from_env(&self) -> anyhow::Result<Endpoints> {
        self.resolve(|name| std::env::var(name).ok())
    }

    /// Fills in defaults and checks every host; `env` looks up the
    /// `TWILIO_BROKER_*_BASE` variables, which win over the file.
    pub fn resolve(&self, env: impl Fn(&str) -> Option<String>) -> anyhow::Result<Endpoints> {
        let one = |file: &Option<String>, key: &str, var: &str, default: &str| {
            let (text, source) = match (env(var).filter(|v| !v.is_empty()), file) {
                (Some(v), _) => (v, var.to_owned()),
                (None, Some(v)) => (v.clone(), format!("[twilio] {key}")),
                (None, None) => (default.to_owned(), format!("the default {key}")),
            };
            base_url(&text).with_context(|| format!("{source} {text:?} cannot be used"))
        };
        Ok(Endpoints {
            api_base: one(
                &self.api_base,
                "api_base",
                "TWILIO_BROKER_API_BASE",
                DEFAULT_API_BASE,
            )?,
            iam_base: one(
                &self.iam_base,
                "iam_base",
                "TWILIO_BROKER_IAM_BASE",
                DEFAULT_IAM_BASE,
            )?,
            accounts_base: one(
                &self.accounts_base,
                "accounts_base",
                "TWILIO_BROKER_ACCOUNTS_BASE",
                DEFAULT_ACCOUNTS_BASE,
            )?,
        })
    }
}

impl Default for Endpoints {
    fn default() -> Self {
        let parse =
            |text: &str| reqwest::Url::parse(text).expect("the default hosts are valid URLs");
        Endpoints {
            api_base: parse(DEFAULT_API_BASE),
            iam_base: parse(DEFAULT_IAM_BASE),
            accounts_base: parse(DEFAULT_ACCOUNTS_BASE),
        }
    }
}

/// A base URL: the token URL's rules (https, or http to loopback; no user
/// or password), plus no query or fragment, since paths are appended.
fn base_url(text: &str) -> anyhow::Result<reqwest::Url> {
    crate::bearer::check_url(text)?;
    let url = reqwest::Url::parse(text).context("not a URL")?;
    if url.query().is_some() || url.fragment().is_some() {
        anyhow::bail!("a base URL takes no query or fragment");
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn hosts_come_from_env_then_file_then_defaults_and_are_checked() {
        let none = |_: &str| None;
        assert_eq!(
            TwilioConfig::default().resolve(none).unwrap(),
            Endpoints::default()
        );
        let file = TwilioConfig {
            api_base: Some("http://127.0.0.1:8080".into()),
            iam_base: Some("https://iam.example.com/prefix".into()),
            accounts_base: None,
        };
        let env =
            |name: &str| (name == "TWILIO_BROKER_IAM_BASE").then(|| "http://[::1]:9".to_owned());
        let endpoints = file.resolve(env).unwrap();
        assert_eq!(endpoints.api_base.as_str(), "http://127.0.0.1:8080/");
        assert_eq!(endpoints.iam_base.as_str(), "http://[::1]:9/");
        assert_eq!(
            endpoints.accounts_base.as_str(),
            "https://accounts.twilio.com/"
        );

        for (bad, why) in [
            ("http://api.example.com", "loopback"),
            ("ftp://127.0.0.1", "scheme"),
            ("https://user:pw@api.twilio.com", "password"),
            ("https://api.twilio.com/?x=1", "query"),
            ("not a url", "URL"),
        ] {
            let config = TwilioConfig {
                accounts_base: Some(bad.into()),
                ..TwilioConfig::default()
            };
            let err = format!("{:#}", config.resolve(none).unwrap_err());
            assert!(err.contains("[twilio] accounts_base"), "{err}");
            assert!(err.contains(why), "{bad}: {err}");
        }
        let err = format!(
            "{:#}",
            TwilioConfig::default()
                .resolve(|n| (n == "TWILIO_BROKER_API_BASE").then(|| "http://10.0.0.1".into()))
                .unwrap_err()
        );
        assert!(err.contains("TWILIO_BROKER_API_BASE"), "{err}");
    }
}
