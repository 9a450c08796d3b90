//! `twilio-broker doctor [FILES...]`: looks at the process environment and
//! the given files for risky Twilio credentials and prints what it found,
//! redacted, with what to use instead. Exit status: 0 when no risk was found
//! (notes allowed), [`RISKS_FOUND_EXIT`] when one was, 1 when doctor could
//! not run (e.g. an unreadable file), 2 on a usage error; so it can gate a
//! pipeline.

use std::path::PathBuf;

use crate::doctor::{self, Options, Report, Source};

/// The exit status when doctor found a risk.
pub const RISKS_FOUND_EXIT: u8 = 3;

/// Doctor found at least one risk; `cli::main` turns this into [`RISKS_FOUND_EXIT`].
#[derive(Debug, thiserror::Error)]
#[error("doctor found {0} risk(s)")]
pub struct RisksFound(pub usize);

/// Arguments of `doctor`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Exit status: 0 no risk found (notes allowed), 3 a risk found, \
1 doctor could not run, 2 usage error. Secrets are shown as their first 4 characters \
and length at most."
)]
pub struct Args {
    /// Files to examine: .env files, shell exports, YAML/JSON, the broker's TOML config.
    files: Vec<PathBuf>,
    /// Do not examine the process environment.
    #[arg(long)]
    no_env: bool,
    /// Judge everything as production, whatever the variables say.
    #[arg(long)]
    production: bool,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    /// Also ask the broker at this address (host:port, https://..., unix:/path;
    /// TLS material from TWILIO_BROKER_TLS_*) for its stored credentials, and
    /// note each secret older than --max-age (metadata only, never a secret).
    #[arg(long)]
    broker: Option<String>,
    /// With --broker: how old a secret may get (since it was last put or
    /// rotated) before doctor notes it, e.g. 90d.
    #[arg(long, default_value = "90d", value_parser = humantime::parse_duration)]
    max_age: std::time::Duration,
}

/// Runs `doctor`.
pub async fn run(args: Args) -> anyhow::Result<()> {
    if args.no_env && args.files.is_empty() && args.broker.is_none() {
        anyhow::bail!("nothing to examine: give files or --broker ADDR, or drop --no-env");
    }
    let mut sources = Vec::new();
    if !args.no_env {
        sources.push(Source::environment(std::env::vars_os().filter_map(
            |(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)),
        )));
    }
    for path in &args.files {
        if path.is_dir() {
            anyhow::bail!(
                "{} is a directory: give the files to examine (e.g. {}/.env)",
                path.display(),
                path.display()
            );
        }
        sources.push(Source::file(path)?);
    }
    let mut report = doctor::examine(
        &sources,
        Options {
            production: args.production,
        },
    );
    if let Some(addr) = &args.broker {
        let stored = stored_credentials(addr).await?;
        let location = format!("broker {addr}");
        report.looked_at.push(location.clone());
        report.findings.extend(doctor::ages::old_secrets(
            &stored,
            std::time::SystemTime::now(),
            args.max_age,
            &location,
        ));
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&to_json(&report))?);
    } else {
        print!("{}", to_text(&report));
    }
    match report.risks() {
        0 => Ok(()),
        n => Err(RisksFound(n).into()),
    }
}

/// Every stored credential's name and last put or rotation, from the
/// broker's Admin API (all pages; metadata only).
async fn stored_credentials(addr: &str) -> anyhow::Result<Vec<(String, std::time::SystemTime)>> {
    use twilio_broker_api::v1 as pb;
    let channel = super::connect::AddrArgs::from_addr(addr.to_owned())
        .channel()
        .await?;
    let mut client = twilio_broker_api::v1::admin_client::AdminClient::new(channel);
    let mut out = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = client
            .list_credentials(pb::ListCredentialsRequest {
                page_size: 0,
                page_token,
                filter: String::new(),
            })
            .await
            .map_err(super::connect::status_error)?
            .into_inner();
        for c in page.credentials {
            let at = c.updated_at.unwrap_or_default();
            let since = std::time::UNIX_EPOCH
                + std::time::Duration::from_secs(u64::try_from(at.seconds).unwrap_or(0));
            out.push((c.name, since));
        }
        if page.next_page_token.is_empty() {
            return Ok(out);
        }
        page_token = page.next_page_token;
    }
}

/// The report for a person.
pub fn to_text(report: &Report) -> String {
    let risks = report.risks();
    let notes = report.findings.len() - risks;
    let mut out = format!(
        "doctor: {risks} risk(s), {notes} note(s) in {}\n",
        report.looked_at.join(", ")
    );
    for f in &report.findings {
        let value = if f.name.is_empty() {
            String::new()
        } else {
            format!("  {}={}", f.name, f.shown)
        };
        out.push_str(&format!(
            "\n{} {}  {}{value}\n  {}\n  Instead: {}\n",
            f.severity.as_str().to_ascii_uppercase(),
            f.id,
            f.location,
            f.text,
            f.instead
        ));
    }
    if report.findings.is_empty() {
        out.push_str("no risky Twilio credentials found\n");
    }
    out
}

/// The report as JSON.
pub fn to_json(report: &Report) -> serde_json::Value {
    serde_json::json!({
        "risks": report.risks(),
        "notes": report.findings.len() - report.risks(),
        "looked_at": report.looked_at,
        "findings": report.findings.iter().map(|f| serde_json::json!({
            "id": f.id,
            "severity": f.severity.as_str(),
            "location": f.location,
            "name": f.name,
            "value": f.shown,
            "text": f.text,
            "instead": f.instead,
        })).collect::<Vec<_>>(),
    })
}
