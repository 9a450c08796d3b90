//! `twilio-broker token bearer NAME [--json] [--min-ttl SECONDS]`: prints an
//! OAuth bearer token from a running broker, for operators.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use twilio_broker_api::v1 as pb;
use twilio_broker_api::v1::broker_client::BrokerClient;

use crate::cli::connect::{AddrArgs, status_error};

/// Arguments of `token bearer`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The oauth_client credential's name.
    name: String,
    /// Print the whole response as JSON (access_token, token_type,
    /// expires_at, expires_in_seconds, account_sid).
    #[arg(long)]
    json: bool,
    /// The token must stay valid at least this many seconds; a cached token
    /// that would not is replaced by a fresh one.
    #[arg(long, value_name = "SECONDS", default_value_t = 0)]
    min_ttl: u32,
    #[command(flatten)]
    addr: AddrArgs,
}

/// Runs `token bearer`.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let mut client = BrokerClient::new(args.addr.channel().await?);
    let response = client
        .get_bearer(pb::GetBearerRequest {
            credential: args.name.clone(),
            min_ttl_seconds: args.min_ttl,
        })
        .await
        .map_err(status_error)?
        .into_inner();
    if args.json {
        println!("{}", to_json(&response, SystemTime::now()));
    } else {
        println!("{}", response.access_token);
    }
    Ok(())
}

fn to_json(response: &pb::GetBearerResponse, now: SystemTime) -> serde_json::Value {
    let expires_at = response.expires_at.as_ref().and_then(|t| {
        let seconds = u64::try_from(t.seconds).ok()?;
        UNIX_EPOCH.checked_add(Duration::from_secs(seconds))
    });
    serde_json::json!({
        "access_token": response.access_token,
        "token_type": response.token_type,
        "expires_at": expires_at.map(|t| humantime::format_rfc3339_seconds(t).to_string()),
        "expires_in_seconds": expires_at
            .and_then(|t| t.duration_since(now).ok())
            .map(|d| d.as_secs()),
        "account_sid": response.account_sid,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_has_every_field_with_an_rfc3339_expiry() {
        let response = pb::GetBearerResponse {
            access_token: "tok".into(),
            token_type: "Bearer".into(),
            expires_at: Some(prost_types::Timestamp {
                seconds: 1_700_003_600,
                nanos: 0,
            }),
            account_sid: "AC1".into(),
        };
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(
            to_json(&response, now),
            serde_json::json!({
                "access_token": "tok",
                "token_type": "Bearer",
                "expires_at": "2023-11-14T23:13:20Z",
                "expires_in_seconds": 3600,
                "account_sid": "AC1",
            })
        );
    }
}
