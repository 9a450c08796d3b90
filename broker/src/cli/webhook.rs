//! `twilio-broker webhook verify`: check a captured webhook's
//! `X-Twilio-Signature` through a running broker, for an operator debugging
//! "403 Twilio Request Validation Failed" without handling the Auth Token.
//!
//! Exit status 0 when valid, 1 (with the reason) when not.

use std::io::Read as _;
use std::path::PathBuf;

use anyhow::Context as _;
use twilio_broker_api::v1 as pb;
use twilio_broker_api::v1::broker_client::BrokerClient;

use super::connect::{AddrArgs, status_error};

/// Webhook subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Check a webhook request's X-Twilio-Signature with a stored auth_token or test credential.
    Verify(VerifyArgs),
}

/// Arguments of `webhook verify`.
#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// The auth_token (or test) credential's name.
    name: String,
    /// The full URL Twilio requested, query string included.
    #[arg(long)]
    url: String,
    /// The X-Twilio-Signature header.
    #[arg(long)]
    signature: String,
    /// A decoded form parameter, NAME=VALUE (repeatable; repeated names kept).
    #[arg(long = "param", value_parser = parse_param)]
    params: Vec<(String, String)>,
    /// The raw JSON body (URL with bodySHA256), from a file or - for stdin.
    #[arg(long, value_name = "PATH|-")]
    body_file: Option<PathBuf>,
    /// The X-Twilio-Webhooks-Signature-Settings header, when present.
    #[arg(long)]
    signature_settings: Option<String>,
    /// Print {"valid", "reason"} as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    addr: AddrArgs,
}

fn parse_param(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("{text:?} must be NAME=VALUE"))
}

fn read_body(path: Option<&PathBuf>) -> anyhow::Result<String> {
    match path {
        None => Ok(String::new()),
        Some(path) if path.as_os_str() == "-" => {
            let mut body = String::new();
            std::io::stdin()
                .read_to_string(&mut body)
                .context("cannot read the body from standard input")?;
            Ok(body)
        }
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the body file {}", path.display())),
    }
}

/// Runs a webhook subcommand.
pub async fn run(command: Command) -> anyhow::Result<()> {
    let Command::Verify(args) = command;
    let request = pb::ValidateWebhookRequest {
        credential: args.name.clone(),
        url: args.url.clone(),
        params: args
            .params
            .iter()
            .map(|(name, value)| pb::FormParam {
                name: name.clone(),
                value: value.clone(),
            })
            .collect(),
        body: read_body(args.body_file.as_ref())?,
        signature: args.signature.clone(),
        signature_settings: args.signature_settings.clone().unwrap_or_default(),
    };
    let mut client = BrokerClient::new(args.addr.channel().await?);
    let verdict = client
        .validate_webhook(request)
        .await
        .map_err(status_error)?
        .into_inner();
    if args.json {
        let out = serde_json::json!({ "valid": verdict.valid, "reason": verdict.reason });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else if verdict.valid {
        println!("valid");
    }
    if !verdict.valid {
        anyhow::bail!("invalid: {}", verdict.reason);
    }
    Ok(())
}
