//! `twilio-broker recommend`: Twilio's auth decision framework for a person
//! (or, with `--json`, a pipeline).
//!
//! Answers locally by default: the rules are compiled into the binary, and
//! asking which method to use should not need a running daemon and its master
//! key. With `--addr` (or `TWILIO_BROKER_ADDR`) it asks that broker's
//! `Recommend` instead; `--credential` always asks a broker, since only the
//! broker holds the credential to review. Both paths print the same
//! `RecommendResponse`.

use twilio_broker_api::v1 as pb;
use twilio_broker_api::v1::broker_client::BrokerClient;

use super::connect::{AddrArgs, status_error};
use crate::config::DEFAULT_LISTEN;
use crate::recommend::{ClientSdk, Environment, Needs, Side};

/// `--env` values.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum EnvArg {
    /// A quick prototype on your machine.
    Prototype,
    /// Automated or manual tests.
    Test,
    /// Deployed, serving real users.
    Production,
}

/// `--side` values.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum SideArg {
    /// A server you control.
    Server,
    /// A browser or mobile app.
    Client,
}

/// `--client-sdk` values.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum SdkArg {
    /// Twilio Voice SDK.
    Voice,
    /// Twilio Video SDK.
    Video,
    /// Twilio Conversations (or Chat) SDK.
    Conversations,
    /// Twilio Sync SDK.
    Sync,
}

/// Arguments of `recommend`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where the software runs. Optional with --credential (taken from its
    /// `environment` label).
    #[arg(long = "env", value_enum)]
    environment: Option<EnvArg>,
    /// Which side holds the credential. Optional with --credential or
    /// --charge-free (both server-side).
    #[arg(long, value_enum)]
    side: Option<SideArg>,
    /// The client SDK (client side only).
    #[arg(long, value_enum)]
    client_sdk: Option<SdkArg>,
    /// Wants credentials that expire on their own.
    #[arg(long)]
    time_limited: bool,
    /// Wants tests that cost nothing.
    #[arg(long)]
    charge_free: bool,
    /// Must call /Accounts or /Keys.
    #[arg(long)]
    needs_account_management: bool,
    /// Must reach only the listed resources.
    #[arg(long)]
    least_privilege: bool,
    /// A Twilio resource it calls, e.g. Messages (repeatable, or comma-separated).
    #[arg(long = "resource", value_delimiter = ',')]
    resources: Vec<String>,
    /// Also review this stored credential against its labels (asks the broker).
    #[arg(long)]
    credential: Option<String>,
    /// Ask the broker at this address instead of answering locally (empty: local).
    #[arg(long, env = "TWILIO_BROKER_ADDR")]
    addr: Option<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// The question in domain terms, for the local answer (no proto detour).
fn needs(args: &Args) -> anyhow::Result<Needs> {
    Ok(Needs {
        environment: match args.environment {
            Some(EnvArg::Prototype) => Environment::Prototype,
            Some(EnvArg::Test) => Environment::Test,
            Some(EnvArg::Production) => Environment::Production,
            None => anyhow::bail!(
                "--env is required (prototype, test or production), unless --credential NAME \
                 names a stored credential labelled environment=..."
            ),
        },
        side: match args.side {
            Some(SideArg::Server) => Side::Server,
            Some(SideArg::Client) => Side::Client,
            // Test credentials are server-side.
            None if args.charge_free => Side::Server,
            None => anyhow::bail!(
                "--side is required (server or client), unless --charge-free or --credential \
                 NAME is given (both server-side)"
            ),
        },
        time_limited: args.time_limited,
        charge_free: args.charge_free,
        needs_account_management: args.needs_account_management,
        least_privilege: args.least_privilege,
        resources: args.resources.clone(),
        client_sdk: args.client_sdk.map(|sdk| match sdk {
            SdkArg::Voice => ClientSdk::Voice,
            SdkArg::Video => ClientSdk::Video,
            SdkArg::Conversations => ClientSdk::Conversations,
            SdkArg::Sync => ClientSdk::Sync,
        }),
    })
}

/// The question as a `Recommend` request, for asking a broker.
fn request(args: &Args) -> pb::RecommendRequest {
    pb::RecommendRequest {
        environment: match args.environment {
            None => pb::Environment::Unspecified,
            Some(EnvArg::Prototype) => pb::Environment::Prototype,
            Some(EnvArg::Test) => pb::Environment::Test,
            Some(EnvArg::Production) => pb::Environment::Production,
        }
        .into(),
        side: match args.side {
            None => pb::Side::Unspecified,
            Some(SideArg::Server) => pb::Side::Server,
            Some(SideArg::Client) => pb::Side::Client,
        }
        .into(),
        time_limited: args.time_limited,
        charge_free: args.charge_free,
        needs_account_management: args.needs_account_management,
        least_privilege: args.least_privilege,
        resources: args.resources.clone(),
        client_sdk: match args.client_sdk {
            None => pb::ClientSdk::Unspecified,
            Some(SdkArg::Voice) => pb::ClientSdk::Voice,
            Some(SdkArg::Video) => pb::ClientSdk::Video,
            Some(SdkArg::Conversations) => pb::ClientSdk::Conversations,
            Some(SdkArg::Sync) => pb::ClientSdk::Sync,
        }
        .into(),
        credential: args.credential.clone().unwrap_or_default(),
    }
}

/// Runs `recommend`.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let remote = args
        .addr
        .clone()
        .filter(|a| !a.is_empty())
        .or_else(|| args.credential.as_ref().map(|_| DEFAULT_LISTEN.to_owned()));
    let response = match remote {
        Some(addr) => {
            let channel = AddrArgs::from_addr(addr).channel().await?;
            BrokerClient::new(channel)
                .recommend(request(&args))
                .await
                .map_err(status_error)?
                .into_inner()
        }
        None => crate::grpc::recommend::answer_locally(&needs(&args)?)
            .map_err(|err| anyhow::anyhow!("{err}"))?,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&to_json(&response))?);
    } else {
        print!("{}", to_text(&response, args.credential.as_deref()));
    }
    Ok(())
}

fn method_name(r: &pb::RecommendResponse) -> String {
    let key = match r.key_type() {
        pb::KeyType::Main => " (Main key)",
        pb::KeyType::Standard => " (Standard key)",
        pb::KeyType::Restricted => " (Restricted key)",
        pb::KeyType::Unspecified => "",
    };
    if r.method() == pb::Method::AccessToken {
        return "Access Token (JWT), minted server-side with a Standard API key".into();
    }
    let method = match r.method() {
        pb::Method::AuthToken => "Auth Token",
        pb::Method::ApiKey => "API key",
        pb::Method::Oauth2 => "OAuth2 client_credentials",
        pb::Method::AccessToken => "Access Token (JWT)",
        pb::Method::TestCredentials => "test credentials",
        pb::Method::Unspecified => "no recommendation",
    };
    format!("{method}{key}")
}

fn limit_line(l: &pb::Limit) -> String {
    let mut codes = Vec::new();
    if l.twilio_error_code != 0 {
        codes.push(format!("error {}", l.twilio_error_code));
    }
    if l.http_status != 0 {
        codes.push(format!("HTTP {}", l.http_status));
    }
    let codes = if codes.is_empty() {
        String::new()
    } else {
        format!(" ({})", codes.join(", "))
    };
    format!("[{}]{codes} {}", l.id, l.text)
}

/// The answer for a person.
pub fn to_text(r: &pb::RecommendResponse, credential: Option<&str>) -> String {
    let mut out = format!("Use: {}\n", method_name(r));
    let mut section = |title: &str, items: Vec<String>, numbered: bool| {
        if items.is_empty() {
            return;
        }
        out.push_str(&format!("\n{title}:\n"));
        for (i, item) in items.iter().enumerate() {
            if numbered {
                out.push_str(&format!("  {}. {item}\n", i + 1));
            } else {
                out.push_str(&format!("  - {item}\n"));
            }
        }
    };
    section("Why", r.reasons.clone(), false);
    section("Warnings", r.warnings.clone(), false);
    section(
        "Twilio limits that apply",
        r.limits.iter().map(limit_line).collect(),
        false,
    );
    section("Next steps", r.next_steps.clone(), true);
    if let Some(name) = credential {
        let age =
            humantime::format_duration(std::time::Duration::from_secs(r.credential_age_seconds));
        let findings: Vec<String> = r
            .review
            .iter()
            .map(|f| format!("[{}] {}", f.id, f.text))
            .collect();
        if findings.is_empty() {
            out.push_str(&format!(
                "\nReview of credential {name:?} (its secret was stored {age} ago): nothing to \
                 report.\n"
            ));
        } else {
            section(
                &format!("Review of credential {name:?} (its secret was stored {age} ago)"),
                findings,
                false,
            );
        }
    }
    out.push_str(&format!("\nRules: {}\n", r.rules.join(", ")));
    out
}

/// The answer as JSON: the response's fields, enums by their proto names.
pub fn to_json(r: &pb::RecommendResponse) -> serde_json::Value {
    serde_json::json!({
        "method": r.method().as_str_name(),
        "key_type": r.key_type().as_str_name(),
        "reasons": r.reasons,
        "warnings": r.warnings,
        "limits": r.limits.iter().map(|l| serde_json::json!({
            "id": l.id,
            "text": l.text,
            "twilio_error_code": l.twilio_error_code,
            "http_status": l.http_status,
        })).collect::<Vec<_>>(),
        "next_steps": r.next_steps,
        "review": r.review.iter().map(|f| serde_json::json!({
            "id": f.id,
            "text": f.text,
        })).collect::<Vec<_>>(),
        "rules": r.rules,
        "credential_age_seconds": r.credential_age_seconds,
    })
}
