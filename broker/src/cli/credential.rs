//! `twilio-broker credential add|list|show|rm|rotate`, through the Admin API.
//!
//! Secrets come from stdin or a file, never from an argument (arguments are
//! visible to every user of the host in the process list).

use std::collections::HashMap;
use std::io::Read as _;
use std::path::PathBuf;

use anyhow::Context as _;
use twilio_broker_api::v1 as pb;
use twilio_broker_api::v1::admin_client::AdminClient;
use zeroize::Zeroizing;

use super::connect::{AddrArgs, status_error};

/// Credential subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Store a credential (replacing one of the same name).
    Add(AddArgs),
    /// List stored credentials (metadata only).
    List {
        #[command(flatten)]
        addr: AddrArgs,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Only these: e.g. `kind = api_key AND labels.environment = production`
        /// (fields kind, name, labels.KEY; = or !=; terms joined by AND).
        #[arg(long)]
        filter: Option<String>,
    },
    /// Show one credential's metadata.
    Show {
        /// The credential's name.
        name: String,
        #[command(flatten)]
        addr: AddrArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Rotate an API key through its manager (create a new key of the same
    /// type at Twilio, switch to it, delete the previous key at Twilio after
    /// the overlap), or an Auth Token through Twilio's secondary Auth Token
    /// (create it, store it, promote it after the propagation delay, forget
    /// the old token after the overlap). The broker finishes on its own,
    /// after restarts too.
    ///
    /// WARNING: rotating an Auth Token makes Twilio invalidate EVERY API KEY
    /// of the account (the broker's included); it needs
    /// --yes-i-know-api-keys-break.
    Rotate {
        /// The credential's name (an `api_key` credential with a manager, or
        /// an `auth_token` credential).
        name: String,
        /// How long the previous secret stays usable after the switch, in
        /// seconds. API keys: default the longest lifetime of an Access
        /// Token the broker minted with it (86400, Twilio's maximum, when
        /// unknown). Auth Tokens: how long the old token still validates
        /// webhooks (default `[rotation] token_overlap`, 300).
        #[arg(long)]
        overlap: Option<u32>,
        /// Auth Tokens only: seconds between storing the new secondary and
        /// promoting it (default `[rotation] propagation_delay`, 10).
        #[arg(long)]
        propagation_delay: Option<u32>,
        /// Required to rotate an Auth Token: you know that Twilio then
        /// invalidates every API key of the account.
        #[arg(long = "yes-i-know-api-keys-break")]
        yes_i_know_api_keys_break: bool,
        #[command(flatten)]
        addr: AddrArgs,
    },
    /// Delete a credential.
    Rm {
        /// The credential's name.
        name: String,
        #[command(flatten)]
        addr: AddrArgs,
    },
}

/// Which kind of credential `add` stores.
#[derive(Debug, Clone, Copy, clap::Args)]
#[group(required = true, multiple = false)]
pub struct KindFlags {
    /// Account SID + Auth Token (local tests and webhook validation only).
    #[arg(long)]
    auth_token: bool,
    /// An API key: needs --key-sid and --key-type.
    #[arg(long)]
    api_key: bool,
    /// An OAuth client: needs --client-id.
    #[arg(long)]
    oauth_client: bool,
    /// Test credentials (test Account SID + test Auth Token).
    #[arg(long)]
    test: bool,
}

/// Key types accepted by `--key-type`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum KeyTypeArg {
    /// Main key.
    Main,
    /// Standard key.
    Standard,
    /// Restricted key.
    Restricted,
}

/// Arguments of `credential add`.
#[derive(Debug, clap::Args)]
pub struct AddArgs {
    /// Name to store the credential under.
    name: String,
    #[command(flatten)]
    kind: KindFlags,
    /// The Account SID (AC...).
    #[arg(long)]
    account_sid: String,
    /// The API key SID (SK...), with --api-key.
    #[arg(long)]
    key_sid: Option<String>,
    /// The API key type, with --api-key.
    #[arg(long, value_enum)]
    key_type: Option<KeyTypeArg>,
    /// The OAuth client id (OQ...), with --oauth-client.
    #[arg(long)]
    client_id: Option<String>,
    /// Read the secret from standard input.
    #[arg(long, conflicts_with = "secret_file")]
    secret_stdin: bool,
    /// Read the secret from a file.
    #[arg(long)]
    secret_file: Option<PathBuf>,
    /// With --auth-token: read the account's secondary Auth Token (while it
    /// has one, e.g. during a rotation) from standard input; the primary then
    /// comes from --secret-file. Webhooks signed with either validate.
    #[arg(long, conflicts_with_all = ["secret_stdin", "secondary_file"])]
    secondary_stdin: bool,
    /// With --auth-token: read the secondary Auth Token from a file.
    #[arg(long)]
    secondary_file: Option<PathBuf>,
    /// With --api-key: the stored Main key or Auth Token of the same account
    /// that creates and deletes this key at Twilio (`credential rotate`).
    #[arg(long)]
    manager: Option<String>,
    /// A label, KEY=VALUE (repeatable), e.g. environment=production.
    #[arg(long = "label", value_parser = parse_label)]
    labels: Vec<(String, String)>,
    #[command(flatten)]
    addr: AddrArgs,
}

fn parse_label(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("label {text:?} must be KEY=VALUE"))
}

fn read_secret(args: &AddArgs) -> anyhow::Result<Zeroizing<String>> {
    read_one(args.secret_stdin, args.secret_file.as_deref(), "secret")?.ok_or_else(|| {
        anyhow::anyhow!(
            "the secret is read from standard input (--secret-stdin) or a file (--secret-file), \
             never from an argument"
        )
    })
}

/// The secondary Auth Token, if `--secondary-stdin` or `--secondary-file`
/// names one.
fn read_secondary(args: &AddArgs) -> anyhow::Result<Option<Zeroizing<String>>> {
    let secondary = read_one(
        args.secondary_stdin,
        args.secondary_file.as_deref(),
        "secondary Auth Token",
    )?;
    if secondary.is_some() && !args.kind.auth_token {
        anyhow::bail!("--secondary-stdin and --secondary-file go with --auth-token only");
    }
    Ok(secondary)
}

/// Reads one secret from stdin or a file; None when neither is asked for.
fn read_one(
    stdin: bool,
    file: Option<&std::path::Path>,
    what: &str,
) -> anyhow::Result<Option<Zeroizing<String>>> {
    let mut text = Zeroizing::new(String::new());
    if stdin {
        std::io::stdin()
            .read_to_string(&mut text)
            .with_context(|| format!("cannot read the {what} from standard input"))?;
    } else if let Some(path) = file {
        *text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the {what} file {}", path.display()))?;
    } else {
        return Ok(None);
    }
    // Strip one trailing newline as `echo` and editors add it.
    let trimmed = text.trim_end_matches(['\n', '\r']).len();
    text.truncate(trimmed);
    if text.is_empty() {
        anyhow::bail!("the {what} is empty");
    }
    Ok(Some(text))
}

fn build_put(
    args: &AddArgs,
    secret: &str,
    secondary: Option<&str>,
) -> anyhow::Result<pb::PutCredentialRequest> {
    use pb::put_credential_request::Credential as C;
    let account_sid = args.account_sid.clone();
    let need = |value: &Option<String>, flag: &str, kind: &str| {
        value
            .clone()
            .ok_or_else(|| anyhow::anyhow!("{kind} needs {flag}"))
    };
    let credential = if args.kind.auth_token {
        C::AuthToken(pb::AuthTokenCredential {
            account_sid,
            auth_token: secret.to_owned(),
            secondary_auth_token: secondary.unwrap_or_default().to_owned(),
        })
    } else if args.kind.api_key {
        let key_type = match args.key_type {
            Some(KeyTypeArg::Main) => pb::KeyType::Main,
            Some(KeyTypeArg::Standard) => pb::KeyType::Standard,
            Some(KeyTypeArg::Restricted) => pb::KeyType::Restricted,
            None => anyhow::bail!("--api-key needs --key-type main|standard|restricted"),
        };
        C::ApiKey(pb::ApiKeyCredential {
            account_sid,
            key_sid: need(&args.key_sid, "--key-sid SK...", "--api-key")?,
            secret: secret.to_owned(),
            key_type: key_type.into(),
        })
    } else if args.kind.oauth_client {
        C::OauthClient(pb::OAuthClientCredential {
            account_sid,
            client_id: need(&args.client_id, "--client-id OQ...", "--oauth-client")?,
            client_secret: secret.to_owned(),
        })
    } else {
        C::Test(pb::TestCredential {
            account_sid,
            auth_token: secret.to_owned(),
        })
    };
    let own_manager = args.kind.auth_token && args.manager.as_deref() == Some(&args.name);
    if args.manager.is_some() && !args.kind.api_key && !own_manager {
        anyhow::bail!(
            "--manager goes with --api-key (an Auth Token is its own manager: leave it out or \
             name the credential itself)"
        );
    }
    Ok(pb::PutCredentialRequest {
        name: args.name.clone(),
        labels: args.labels.iter().cloned().collect::<HashMap<_, _>>(),
        credential: Some(credential),
        manager: args.manager.clone().unwrap_or_default(),
    })
}

/// Runs a credential subcommand.
pub async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Add(args) => {
            let secret = read_secret(&args)?;
            let secondary = read_secondary(&args)?;
            let request = build_put(&args, &secret, secondary.as_ref().map(|s| s.as_str()))?;
            drop(secret);
            drop(secondary);
            let mut client = AdminClient::new(args.addr.channel().await?);
            let stored = client
                .put_credential(request)
                .await
                .map_err(status_error)?
                .into_inner()
                .credential
                .unwrap_or_default();
            println!("stored {} ({})", stored.name, kind_name(stored.kind));
        }
        Command::List { addr, json, filter } => {
            let mut client = AdminClient::new(addr.channel().await?);
            // Every page, however large the store.
            let mut list = Vec::new();
            let mut page_token = String::new();
            loop {
                let page = client
                    .list_credentials(pb::ListCredentialsRequest {
                        page_size: 0,
                        page_token,
                        filter: filter.clone().unwrap_or_default(),
                    })
                    .await
                    .map_err(status_error)?
                    .into_inner();
                list.extend(page.credentials);
                if page.next_page_token.is_empty() {
                    break;
                }
                page_token = page.next_page_token;
            }
            if json {
                let items: Vec<_> = list.iter().map(metadata_json).collect();
                println!("{}", serde_json::to_string_pretty(&items)?);
            } else {
                print_table(&list);
            }
        }
        Command::Show { name, addr, json } => {
            let mut client = AdminClient::new(addr.channel().await?);
            let found = client
                .get_credential(pb::GetCredentialRequest { name })
                .await
                .map_err(status_error)?
                .into_inner()
                .credential
                .unwrap_or_default();
            if json {
                println!("{}", serde_json::to_string_pretty(&metadata_json(&found))?);
            } else {
                for (key, value) in metadata_fields(&found) {
                    println!("{key:<12} {value}");
                }
            }
        }
        Command::Rotate {
            name,
            overlap,
            propagation_delay,
            yes_i_know_api_keys_break,
            addr,
        } => {
            let mut client = AdminClient::new(addr.channel().await?);
            if yes_i_know_api_keys_break {
                eprintln!(
                    "WARNING: if {name} is an Auth Token, rotating it makes Twilio invalidate \
                     EVERY API KEY of its account, including those the broker holds: services \
                     using them fail until new keys are created and stored."
                );
            }
            let rotated = client
                .rotate_credential(pb::RotateCredentialRequest {
                    name: name.clone(),
                    overlap_seconds: overlap,
                    acknowledge_api_keys_break: yes_i_know_api_keys_break,
                    propagation_delay_seconds: propagation_delay,
                })
                .await
                .map_err(status_error)?
                .into_inner();
            let current = rotated.credential.unwrap_or_default();
            let after = rotated
                .previous_deleted_after
                .map(|t| {
                    let at = std::time::UNIX_EPOCH
                        + std::time::Duration::from_secs(u64::try_from(t.seconds).unwrap_or(0));
                    humantime::format_rfc3339_seconds(at).to_string()
                })
                .unwrap_or_default();
            if current.kind == i32::from(pb::CredentialKind::AuthToken) {
                println!(
                    "rotated {name}: the promoted Auth Token is now the primary at Twilio and in \
                     the broker; the old token no longer works at Twilio and validates webhooks \
                     until {after}. Twilio has invalidated the API keys of account {}: create and \
                     store new ones.",
                    current.account_sid
                );
            } else {
                println!(
                    "rotated {name}: now signing with {}; the previous key {} is deleted at \
                     Twilio after {after}",
                    current.key_sid, rotated.previous_key_sid
                );
            }
        }
        Command::Rm { name, addr } => {
            let mut client = AdminClient::new(addr.channel().await?);
            client
                .delete_credential(pb::DeleteCredentialRequest { name: name.clone() })
                .await
                .map_err(status_error)?;
            println!("deleted {name}");
        }
    }
    Ok(())
}

fn kind_name(kind: i32) -> &'static str {
    match pb::CredentialKind::try_from(kind) {
        Ok(pb::CredentialKind::AuthToken) => "auth_token",
        Ok(pb::CredentialKind::ApiKey) => "api_key",
        Ok(pb::CredentialKind::OauthClient) => "oauth_client",
        Ok(pb::CredentialKind::Test) => "test",
        _ => "unknown",
    }
}

fn key_type_name(key_type: i32) -> &'static str {
    match pb::KeyType::try_from(key_type) {
        Ok(pb::KeyType::Main) => "main",
        Ok(pb::KeyType::Standard) => "standard",
        Ok(pb::KeyType::Restricted) => "restricted",
        _ => "",
    }
}

fn time_text(t: Option<&prost_types::Timestamp>) -> String {
    t.map(|t| t.to_string()).unwrap_or_default()
}

fn labels_text(m: &pb::CredentialMetadata) -> String {
    let mut labels: Vec<_> = m.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    labels.sort();
    labels.join(",")
}

fn metadata_fields(m: &pb::CredentialMetadata) -> Vec<(&'static str, String)> {
    let mut fields = vec![
        ("name", m.name.clone()),
        ("kind", kind_name(m.kind).to_owned()),
        ("account_sid", m.account_sid.clone()),
    ];
    if !m.key_sid.is_empty() {
        fields.push(("key_sid", m.key_sid.clone()));
        fields.push(("key_type", key_type_name(m.key_type).to_owned()));
    }
    if !m.client_id.is_empty() {
        fields.push(("client_id", m.client_id.clone()));
    }
    if m.has_secondary_auth_token {
        fields.push(("secondary_auth_token", "stored".to_owned()));
    }
    if !m.manager.is_empty() {
        fields.push(("manager", m.manager.clone()));
    }
    if !m.rotation_step.is_empty() {
        fields.push(("rotation", m.rotation_step.clone()));
        if m.rotation_step_after.is_some() {
            fields.push(("rotation_next", time_text(m.rotation_step_after.as_ref())));
        }
    }
    if !m.previous_key_sid.is_empty() {
        fields.push(("previous_key_sid", m.previous_key_sid.clone()));
        fields.push((
            "previous_deleted_after",
            time_text(m.previous_deleted_after.as_ref()),
        ));
    }
    fields.push(("labels", labels_text(m)));
    fields.push(("created_at", time_text(m.created_at.as_ref())));
    fields.push(("updated_at", time_text(m.updated_at.as_ref())));
    fields
}

fn metadata_json(m: &pb::CredentialMetadata) -> serde_json::Value {
    let mut object = serde_json::Map::new();
    for (key, value) in metadata_fields(m) {
        if key != "labels" {
            object.insert(key.to_owned(), value.into());
        }
    }
    object.insert(
        "labels".into(),
        serde_json::to_value(&m.labels).unwrap_or_default(),
    );
    object.into()
}

fn print_table(list: &[pb::CredentialMetadata]) {
    if list.is_empty() {
        println!("no credentials stored");
        return;
    }
    println!(
        "{:<24} {:<13} {:<35} {:<35} LABELS",
        "NAME", "KIND", "ACCOUNT", "KEY / CLIENT"
    );
    for m in list {
        let id = if m.key_sid.is_empty() {
            m.client_id.clone()
        } else {
            format!("{} ({})", m.key_sid, key_type_name(m.key_type))
        };
        println!(
            "{:<24} {:<13} {:<35} {:<35} {}",
            m.name,
            kind_name(m.kind),
            m.account_sid,
            id,
            labels_text(m)
        );
    }
}
