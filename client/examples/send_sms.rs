//! Sends an SMS through Twilio's REST API with a bearer token from the
//! broker: the five-minute integration for a Rust service.
//!
//! ```text
//! TWILIO_BROKER_ADDR=unix:/run/twilio-broker/broker.sock \
//! cargo run -p twilio-broker-client --example send_sms -- +15005550006 +15005550001 "hello"
//! ```
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `TWILIO_BROKER_ADDR` | `unix:/run/twilio-broker/broker.sock` | the broker |
//! | `TWILIO_BROKER_CREDENTIAL` | `prod-oauth` | the oauth_client credential to use |
//! | `TWILIO_API_BASE` | `https://api.twilio.com` | Twilio's REST API (a stand-in in tests) |
//!
//! Prints `sent SM... (queued)` and exits 0, or prints Twilio's error and
//! exits 1. The token is never printed.

use std::process::ExitCode;

use twilio_broker_client::Client;

/// What to send.
struct Sms {
    to: String,
    from: String,
    body: String,
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

fn parse_args() -> Result<Sms, String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match <[String; 3]>::try_from(args) {
        Ok([to, from, body]) => Ok(Sms { to, from, body }),
        Err(_) => Err("usage: send_sms TO FROM BODY".into()),
    }
}

/// POSTs the message; returns Twilio's JSON reply or an error line.
async fn send(
    client: &Client,
    credential: &str,
    api_base: &str,
    sms: &Sms,
) -> Result<String, String> {
    let bearer = client
        .bearer(credential)
        .await
        .map_err(|e| format!("broker: {e}"))?;
    let url = format!(
        "{}/2010-04-01/Accounts/{}/Messages.json",
        api_base.trim_end_matches('/'),
        bearer.account_sid
    );
    let response = reqwest::Client::new()
        .post(&url)
        .header(reqwest::header::AUTHORIZATION, bearer.authorization())
        .form(&[
            ("To", sms.to.as_str()),
            ("From", sms.from.as_str()),
            ("Body", sms.body.as_str()),
        ])
        .send()
        .await
        .map_err(|e| format!("cannot reach {api_base}: {e}"))?;
    let status = response.status();
    let text = response
        .text()
        .await
        .map_err(|e| format!("Twilio answered {status}, then the body failed: {e}"))?;
    let reply: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| format!("Twilio answered {status} without JSON: {e}"))?;
    if !status.is_success() {
        return Err(format!(
            "Twilio answered {status}: error {} ({}) {}",
            reply["code"], reply["message"], reply["more_info"]
        ));
    }
    Ok(format!(
        "sent {} ({})",
        reply["sid"].as_str().unwrap_or("?"),
        reply["status"].as_str().unwrap_or("?")
    ))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let sms = match parse_args() {
        Ok(sms) => sms,
        Err(usage) => {
            eprintln!("{usage}");
            return ExitCode::from(2);
        }
    };
    let addr = env_or("TWILIO_BROKER_ADDR", "unix:/run/twilio-broker/broker.sock");
    let credential = env_or("TWILIO_BROKER_CREDENTIAL", "prod-oauth");
    let api_base = env_or("TWILIO_API_BASE", "https://api.twilio.com");
    let client = match Client::connect(&addr).await {
        Ok(client) => client,
        Err(e) => {
            eprintln!("cannot connect to the broker at {addr}: {e}");
            return ExitCode::FAILURE;
        }
    };
    match send(&client, &credential, &api_base, &sms).await {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(line) => {
            eprintln!("{line}");
            ExitCode::FAILURE
        }
    }
}
