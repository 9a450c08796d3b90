//! `twilio-broker token mint`: an Access Token from a running broker, for
//! operators testing a client SDK setup or scripting a backend.
//!
//! A grant is included when any of its flags is given (or `--grant KIND`
//! for a grant with no fields, e.g. video for any room). The token alone is
//! printed, so `$(twilio-broker token mint ...)` works; `--json` adds its
//! `jti` and expiry.

use std::str::FromStr as _;

use anyhow::Context as _;
use twilio_broker_api::v1 as pb;
use twilio_broker_api::v1::broker_client::BrokerClient;

use crate::cli::connect::{AddrArgs, status_error};

use crate::policy::GrantKind;

/// `--grant` takes the policy's grant kinds, by the same names, except
/// `playback`, which needs fields (`--playback-json`).
impl clap::ValueEnum for GrantKind {
    fn value_variants<'a>() -> &'a [Self] {
        &[
            GrantKind::Voice,
            GrantKind::Video,
            GrantKind::Chat,
            GrantKind::Sync,
            GrantKind::TaskRouter,
        ]
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        match self {
            GrantKind::Playback => None,
            // `task-router` was the flag's spelling before it shared the
            // policy's names; both are accepted.
            GrantKind::TaskRouter => {
                Some(clap::builder::PossibleValue::new("task_router").alias("task-router"))
            }
            kind => Some(clap::builder::PossibleValue::new(kind.as_str())),
        }
    }
}

/// Arguments of `token mint`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The API key credential's name (Main or Standard key).
    name: String,
    /// The identity the token is for.
    #[arg(long)]
    identity: String,
    /// Lifetime: seconds, or with a unit (90s, 30m, 1h, 1h30m); at most 24h. Default 1h.
    #[arg(long, value_parser = parse_ttl)]
    ttl: Option<u32>,
    /// Not valid before: Unix seconds or RFC 3339 (2030-01-02T03:04:05Z). Default now.
    #[arg(long, value_parser = parse_time)]
    not_before: Option<prost_types::Timestamp>,
    /// Twilio region for the `twr` header, e.g. au1 or ie1.
    #[arg(long)]
    region: Option<String>,
    #[command(flatten)]
    grants: Box<GrantArgs>,
    /// Print {"token", "jti", "expires_at"} as JSON instead of the token alone.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    addr: AddrArgs,
}

/// The grant flags (boxed: they are many).
#[derive(Debug, clap::Args)]
pub struct GrantArgs {
    /// Include a grant with no fields (repeatable).
    #[arg(long = "grant", value_enum)]
    kinds: Vec<GrantKind>,

    /// Voice: allow incoming calls.
    #[arg(long, help_heading = "Voice grant")]
    voice_incoming: bool,
    /// Voice: TwiML application for outgoing calls (AP...).
    #[arg(long, value_name = "AP...", help_heading = "Voice grant")]
    voice_outgoing_app: Option<String>,
    /// Voice: a parameter for the outgoing application, NAME=VALUE (repeatable).
    #[arg(long = "voice-param", value_parser = parse_pair, help_heading = "Voice grant")]
    voice_params: Vec<(String, String)>,
    /// Voice: the outgoing parameters as one JSON object (keeps types and order).
    #[arg(
        long,
        value_name = "JSON",
        conflicts_with = "voice_params",
        help_heading = "Voice grant"
    )]
    voice_params_json: Option<String>,
    /// Voice: push credential (CR...).
    #[arg(long, value_name = "CR...", help_heading = "Voice grant")]
    voice_push_credential: Option<String>,
    /// Voice: endpoint id.
    #[arg(long, help_heading = "Voice grant")]
    voice_endpoint_id: Option<String>,

    /// Video: the room name or SID (RM...).
    #[arg(long, help_heading = "Video grant")]
    video_room: Option<String>,

    /// Chat: the Conversations/Chat service (IS...).
    #[arg(long, value_name = "IS...", help_heading = "Chat grant")]
    chat_service: Option<String>,
    /// Chat: endpoint id.
    #[arg(long, help_heading = "Chat grant")]
    chat_endpoint_id: Option<String>,
    /// Chat: deployment role (RL...).
    #[arg(long, value_name = "RL...", help_heading = "Chat grant")]
    chat_role: Option<String>,
    /// Chat: push credential (CR...).
    #[arg(long, value_name = "CR...", help_heading = "Chat grant")]
    chat_push_credential: Option<String>,

    /// Sync: the Sync service (IS...).
    #[arg(long, value_name = "IS...", help_heading = "Sync grant")]
    sync_service: Option<String>,
    /// Sync: endpoint id.
    #[arg(long, help_heading = "Sync grant")]
    sync_endpoint_id: Option<String>,

    /// TaskRouter: workspace (WS...).
    #[arg(long, value_name = "WS...", help_heading = "TaskRouter grant")]
    task_router_workspace: Option<String>,
    /// TaskRouter: worker (WK...).
    #[arg(long, value_name = "WK...", help_heading = "TaskRouter grant")]
    task_router_worker: Option<String>,
    /// TaskRouter: role, e.g. worker.
    #[arg(long, help_heading = "TaskRouter grant")]
    task_router_role: Option<String>,

    /// Playback (Twilio Live): the grant object as JSON, or @FILE to read it.
    #[arg(long, value_name = "JSON|@FILE", help_heading = "Playback grant")]
    playback_json: Option<String>,
}

/// Seconds from `3600`, `90s`, `30m`, `1h`, `1h30m`, `1d`.
pub fn parse_ttl(text: &str) -> Result<u32, String> {
    let bad = || {
        format!("{text:?} is not a duration: use seconds or units s, m, h, d (e.g. 90s, 30m, 1h)")
    };
    if let Ok(seconds) = text.parse::<u32>() {
        return Ok(seconds);
    }
    let mut total: u64 = 0;
    let mut number = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit: u64 = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return Err(bad()),
        };
        let value: u64 = number.parse().map_err(|_| bad())?;
        total = total.saturating_add(value.saturating_mul(unit));
        number.clear();
    }
    if !number.is_empty() || text.is_empty() {
        return Err(bad());
    }
    u32::try_from(total).map_err(|_| bad())
}

fn parse_time(text: &str) -> Result<prost_types::Timestamp, String> {
    if let Ok(seconds) = text.parse::<i64>() {
        return Ok(prost_types::Timestamp { seconds, nanos: 0 });
    }
    prost_types::Timestamp::from_str(text)
        .map_err(|_| format!("{text:?} is neither Unix seconds nor an RFC 3339 time"))
}

fn parse_pair(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("{text:?} must be NAME=VALUE"))
}

fn build(args: &Args) -> anyhow::Result<pb::MintAccessTokenRequest> {
    let grants = build_grants(&args.grants)?;
    Ok(pb::MintAccessTokenRequest {
        credential: args.name.clone(),
        identity: args.identity.clone(),
        ttl_seconds: args.ttl.unwrap_or(0),
        not_before: args.not_before,
        region: args.region.clone().unwrap_or_default(),
        ..grants
    })
}

fn build_grants(args: &GrantArgs) -> anyhow::Result<pb::MintAccessTokenRequest> {
    let wants = |kind: GrantKind| args.kinds.contains(&kind);
    let some = |value: &Option<String>| value.clone().unwrap_or_default();
    let voice = (wants(GrantKind::Voice)
        || args.voice_incoming
        || args.voice_outgoing_app.is_some()
        || !args.voice_params.is_empty()
        || args.voice_params_json.is_some()
        || args.voice_push_credential.is_some()
        || args.voice_endpoint_id.is_some())
    .then(|| pb::VoiceGrant {
        incoming_allow: args.voice_incoming,
        outgoing_application_sid: some(&args.voice_outgoing_app),
        outgoing_application_params: args.voice_params.iter().cloned().collect(),
        push_credential_sid: some(&args.voice_push_credential),
        endpoint_id: some(&args.voice_endpoint_id),
        outgoing_application_params_json: some(&args.voice_params_json),
    });
    let video = (wants(GrantKind::Video) || args.video_room.is_some()).then(|| pb::VideoGrant {
        room: some(&args.video_room),
    });
    let chat = (wants(GrantKind::Chat)
        || args.chat_service.is_some()
        || args.chat_endpoint_id.is_some()
        || args.chat_role.is_some()
        || args.chat_push_credential.is_some())
    .then(|| pb::ChatGrant {
        service_sid: some(&args.chat_service),
        endpoint_id: some(&args.chat_endpoint_id),
        deployment_role_sid: some(&args.chat_role),
        push_credential_sid: some(&args.chat_push_credential),
    });
    let sync =
        (wants(GrantKind::Sync) || args.sync_service.is_some() || args.sync_endpoint_id.is_some())
            .then(|| pb::SyncGrant {
                service_sid: some(&args.sync_service),
                endpoint_id: some(&args.sync_endpoint_id),
            });
    let task_router = (wants(GrantKind::TaskRouter)
        || args.task_router_workspace.is_some()
        || args.task_router_worker.is_some()
        || args.task_router_role.is_some())
    .then(|| pb::TaskRouterGrant {
        workspace_sid: some(&args.task_router_workspace),
        worker_sid: some(&args.task_router_worker),
        role: some(&args.task_router_role),
    });
    let playback_json = match args.playback_json.as_deref() {
        Some(text) => match text.strip_prefix('@') {
            Some(path) => std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the playback grant file {path}"))?,
            None => text.to_owned(),
        },
        None => String::new(),
    };
    Ok(pb::MintAccessTokenRequest {
        voice,
        video,
        chat,
        sync,
        task_router,
        playback: None,
        playback_json,
        ..Default::default()
    })
}

/// Runs `token mint`.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let request = build(&args)?;
    let mut client = BrokerClient::new(args.addr.channel().await?);
    let minted = client
        .mint_access_token(request)
        .await
        .map_err(status_error)?
        .into_inner();
    if args.json {
        let expires_at = minted.expires_at.unwrap_or_default();
        let out = serde_json::json!({
            "token": minted.token,
            "jti": minted.jti,
            "expires_at": expires_at.to_string(),
            "expires_at_unix": expires_at.seconds,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!("{}", minted.token);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttls_parse_with_units() {
        for (text, seconds) in [
            ("0", Some(0)),
            ("3600", Some(3600)),
            ("90s", Some(90)),
            ("30m", Some(1800)),
            ("1h", Some(3600)),
            ("1h30m", Some(5400)),
            ("1d", Some(86_400)),
            ("", None),
            ("1x", None),
            ("h", None),
            ("10 m", None),
            ("-5", None),
        ] {
            assert_eq!(parse_ttl(text).ok(), seconds, "{text:?}");
        }
    }
}
