//! The request to Twilio's token endpoint (WIRE.md 2.1): `POST` form
//! `grant_type=client_credentials&client_id=…&client_secret=…`, no
//! Authorization header, JSON back. Behind the [`Upstream`] trait so the
//! cache's timing logic can be tested with a fake.
//!
//! **Invariant:** neither the client secret nor the access token appears in
//! a [`Failure`]: messages are built from status codes, Twilio's error code
//! and message (scrubbed of the secret) and the broker's own words.

use secrecy::SecretString;

use crate::credential::SealedSecret;

use super::settings::Settings;

/// Largest token-endpoint response read; Twilio's is well under 4 KiB.
const MAX_BODY: usize = 64 * 1024;

/// A successful token response.
#[derive(Debug)]
pub struct TokenReply {
    /// The bearer token.
    pub access_token: SecretString,
    /// `expires_in`, the fallback when the token carries no `exp`.
    pub expires_in: Option<u64>,
}

/// Why no token was issued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Twilio refused the client (HTTP 400/401/403): retrying will not help
    /// until the credential changes.
    Rejected {
        /// HTTP status.
        status: u16,
        /// Twilio's error code (e.g. 20003), when the body had one.
        code: Option<u64>,
        /// Twilio's message, scrubbed and shortened.
        message: String,
        /// Twilio's `more_info` link.
        more_info: Option<String>,
    },
    /// The endpoint is down, slow or answered something unusable: retry later.
    Unavailable(String),
}

/// Something that exchanges client credentials for a token.
#[async_trait::async_trait]
pub trait Upstream: Send + Sync + 'static {
    /// One token request; no retries (the cache owns retry policy).
    async fn fetch(
        &self,
        client_id: &str,
        client_secret: &SealedSecret,
    ) -> Result<TokenReply, Failure>;
}

/// Twilio's token endpoint over HTTPS (reqwest + rustls).
pub struct HttpUpstream {
    client: reqwest::Client,
    url: reqwest::Url,
    timeout_text: String,
}

impl HttpUpstream {
    /// A client for `settings.token_url` with its time-outs, no redirects.
    pub fn new(settings: &Settings) -> anyhow::Result<Self> {
        use anyhow::Context as _;
        let url = reqwest::Url::parse(&settings.token_url)
            .with_context(|| format!("invalid token URL {:?}", settings.token_url))?;
        let mut builder = reqwest::Client::builder()
            .connect_timeout(settings.connect_timeout)
            .timeout(settings.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("twilio-broker/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = &settings.ca_file {
            let pem = std::fs::read(path)
                .with_context(|| format!("cannot read [oauth] ca_file {}", path.display()))?;
            for cert in reqwest::Certificate::from_pem_bundle(&pem)
                .with_context(|| format!("[oauth] ca_file {} is not PEM", path.display()))?
            {
                builder = builder.add_root_certificate(cert);
            }
        }
        let client = builder
            .build()
            .context("cannot set up the HTTPS client for the token endpoint")?;
        Ok(HttpUpstream {
            client,
            url,
            timeout_text: format!("{:.1}", settings.timeout.as_secs_f64()),
        })
    }

    fn transport_failure(&self, err: &reqwest::Error) -> Failure {
        if err.is_timeout() {
            return Failure::Unavailable(format!("did not answer within {} s", self.timeout_text));
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
        Failure::Unavailable(format!("{what} ({cause})"))
    }
}

#[async_trait::async_trait]
impl Upstream for HttpUpstream {
    async fn fetch(
        &self,
        client_id: &str,
        client_secret: &SealedSecret,
    ) -> Result<TokenReply, Failure> {
        // In clear only while the form is encoded into the request body.
        let request = {
            let plaintext = client_secret.open();
            let form = [
                ("grant_type", "client_credentials"),
                ("client_id", client_id),
                ("client_secret", plaintext.as_str()),
            ];
            self.client
                .post(self.url.clone())
                .header(reqwest::header::ACCEPT, "application/json")
                .form(&form)
        };
        let mut response = request
            .send()
            .await
            .map_err(|err| self.transport_failure(&err))?;
        let status = response.status();
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|err| self.transport_failure(&err))?
        {
            if body.len() + chunk.len() > MAX_BODY {
                return Err(Failure::Unavailable(format!(
                    "sent a response over {} KiB",
                    MAX_BODY / 1024
                )));
            }
            body.extend_from_slice(&chunk);
        }
        interpret(status.as_u16(), &body, client_secret)
    }
}

/// Turns a status and body into a token or a failure.
pub fn interpret(status: u16, body: &[u8], secret: &SealedSecret) -> Result<TokenReply, Failure> {
    #[derive(serde::Deserialize)]
    struct Success {
        access_token: Option<String>,
        token_type: Option<String>,
        expires_in: Option<u64>,
    }
    match status {
        200..=299 => {
            let reply: Success = serde_json::from_slice(body).map_err(|err| {
                // serde's message may quote the body (the token): keep only where.
                Failure::Unavailable(format!(
                    "answered HTTP {status} with a body that is not the expected token JSON \
                     (line {}, column {})",
                    err.line(),
                    err.column()
                ))
            })?;
            let access_token = reply
                .access_token
                .filter(|t| !t.is_empty())
                .ok_or_else(|| {
                    Failure::Unavailable(format!("answered HTTP {status} without an access_token"))
                })?;
            if let Some(kind) = reply.token_type
                && !kind.eq_ignore_ascii_case("bearer")
            {
                return Err(Failure::Unavailable(format!(
                    "issued a token of type {:?}, not Bearer",
                    secret.scrub(&kind)
                )));
            }
            Ok(TokenReply {
                access_token: SecretString::from(access_token),
                expires_in: reply.expires_in,
            })
        }
        400 | 401 | 403 => {
            let error = TwilioError::parse(body, secret);
            Err(Failure::Rejected {
                status,
                code: error.code,
                message: error.message,
                more_info: error.more_info,
            })
        }
        300..=399 => Err(Failure::Unavailable(format!(
            "answered with a redirect (HTTP {status}); redirects are not followed: set [oauth] \
             token_url to the final address"
        ))),
        _ => {
            let error = TwilioError::parse(body, secret);
            let detail = match error.code {
                Some(code) => format!(", Twilio error {code}: {}", error.message),
                None if !error.message.is_empty() => format!(": {}", error.message),
                None => String::new(),
            };
            Err(Failure::Unavailable(format!(
                "answered HTTP {status}{detail}"
            )))
        }
    }
}

/// Twilio's JSON error (`{code, message, more_info, status}`), or an OAuth
/// one (`{error, error_description}`).
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
            error: Option<String>,
            error_description: Option<String>,
        }
        let raw: Option<Raw> = serde_json::from_slice(body).ok();
        let Some(raw) = raw else {
            return TwilioError {
                code: None,
                message: String::new(),
                more_info: None,
            };
        };
        let message = match (raw.message, raw.error, raw.error_description) {
            (Some(m), _, _) => m,
            (None, Some(e), Some(d)) => format!("{e}: {d}"),
            (None, Some(e), None) => e,
            (None, None, Some(d)) => d,
            (None, None, None) => String::new(),
        };
        TwilioError {
            code: raw.code,
            message: secret.scrub(&message),
            more_info: raw
                .more_info
                .map(|m| secret.scrub(&m))
                .filter(|m| m.starts_with("https://")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret() -> SealedSecret {
        SealedSecret::from("s3cr3t-value")
    }

    #[test]
    fn responses_are_sorted_into_tokens_rejections_and_outages() {
        let ok = interpret(
            200,
            br#"{"access_token":"eyJ.x.y","id_token":null,"token_type":"Bearer","expires_in":3600,"refresh_token":null}"#,
            &secret(),
        )
        .expect("token");
        assert_eq!(
            secrecy::ExposeSecret::expose_secret(&ok.access_token),
            "eyJ.x.y"
        );
        assert_eq!(ok.expires_in, Some(3600));

        let rejected = interpret(
            401,
            br#"{"code":20003,"message":"Authenticate s3cr3t-value","more_info":"https://www.twilio.com/docs/errors/20003","status":401}"#,
            &secret(),
        )
        .expect_err("rejected");
        assert_eq!(
            rejected,
            Failure::Rejected {
                status: 401,
                code: Some(20003),
                message: "Authenticate [REDACTED]".into(),
                more_info: Some("https://www.twilio.com/docs/errors/20003".into()),
            }
        );
        let oauth_style = interpret(
            400,
            br#"{"error":"invalid_client","error_description":"bad"}"#,
            &secret(),
        );
        assert!(
            matches!(oauth_style, Err(Failure::Rejected { ref message, .. }) if message == "invalid_client: bad")
        );

        let cases: [(u16, &[u8], &str); 6] = [
            (
                503,
                br#"{"code":20500,"message":"down"}"#,
                "HTTP 503, Twilio error 20500: down",
            ),
            (502, b"<html>bad gateway</html>", "answered HTTP 502"),
            (302, b"", "redirect"),
            (
                200,
                b"{\"access_token\":\"tok\"",
                "not the expected token JSON",
            ),
            (
                200,
                br#"{"token_type":"Bearer"}"#,
                "without an access_token",
            ),
            (
                200,
                br#"{"access_token":"t","token_type":"mac"}"#,
                "not Bearer",
            ),
        ];
        for (status, body, expected) in cases {
            match interpret(status, body, &secret()) {
                Err(Failure::Unavailable(text)) => {
                    assert!(text.contains(expected), "{status}: {text}");
                    assert!(!text.contains("tok\""), "{text}");
                }
                other => panic!("{status}: unexpected {other:?}"),
            }
        }
    }

    #[test]
    fn peer_text_is_cleaned() {
        let long = "x".repeat(500);
        assert_eq!(secret().scrub(&long).chars().count(), 201);
        assert_eq!(secret().scrub("a\nb\u{7}"), "a b ");
    }
}
