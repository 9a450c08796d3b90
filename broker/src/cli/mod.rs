//! The `twilio-broker` command line: one module per command group.
//!
//! `serve`, `rekey`, `compact` and `restore` work on the data directory
//! directly, `keyring` on the keyring and state files; every other command
//! is a client of a running broker through its gRPC API.

mod audit;
mod backup;
pub(crate) mod connect;
mod console;
mod credential;
mod doctor;
mod keyring;
mod keys;
mod plugin;
mod policy;
mod recommend;
mod serve;
mod token;
mod webhook;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// twilio-broker: Twilio credentials in one hardened place.
#[derive(Debug, Parser)]
#[command(name = "twilio-broker", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the broker daemon.
    Serve(serve::Args),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), e.g. `twilio-broker man > twilio-broker.1`.
    Man,
    /// Manage stored credentials through a running broker's Admin API.
    #[command(subcommand)]
    Credential(credential::Command),
    /// Get tokens from a running broker (bearer, mint).
    #[command(subcommand)]
    Token(token::Command),
    /// Check Twilio webhook signatures with a stored Auth Token.
    #[command(subcommand)]
    Webhook(webhook::Command),
    /// Ask Twilio's auth decision framework which method fits a use case.
    Recommend(recommend::Args),
    /// Look for risky Twilio credentials in the environment and config files.
    Doctor(doctor::Args),
    /// Check the caller policy file, or reload a running broker's.
    #[command(subcommand)]
    Policy(policy::Command),
    /// Verify audit files (links, signed checkpoints, truncation); print the checkpoint public key.
    #[command(subcommand)]
    Audit(audit::Command),
    /// Print a new random master key (base64 of 32 bytes) to stdout.
    Keygen,
    /// Manage the master keys of the keyring file (add, list, retire).
    #[command(subcommand)]
    Keyring(keyring::Command),
    /// Re-seal every record in a data directory under a new master key (offline).
    Rekey(keys::RekeyArgs),
    /// Rewrite a data directory from scratch (offline), dropping the bytes of
    /// deleted records and of earlier formats that sled keeps.
    Compact(keys::CompactArgs),
    /// Take a consistent snapshot of a running broker's sealed store (Admin API, audited).
    Backup(backup::BackupArgs),
    /// Load a snapshot into an empty data directory or storage plugin
    /// (offline; a deliberate rollback, recorded in the audit trail).
    Restore(backup::RestoreArgs),
    /// The operator console: print a one-time login link (`console open`).
    #[command(subcommand)]
    Console(console::Command),
    /// Check plugin libraries (audit sinks, storage backends).
    #[command(subcommand)]
    Plugin(plugin::Command),
}

/// Runs the command line and returns the process exit code.
pub fn main() -> ExitCode {
    // Before any thread starts: the master key leaves the environment block,
    // and the process refuses core dumps and ptrace.
    if let Err(err) = crate::master_key::take_from_environment() {
        eprintln!("error: {err}");
        return ExitCode::FAILURE;
    }
    let cli = Cli::parse();
    if matches!(cli.command, Command::Serve(_))
        && let Err(err) = twilio_broker_system::refuse_core_dumps()
    {
        eprintln!("warning: cannot refuse core dumps: {err}");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .on_thread_park(crate::audit::on_worker_park)
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => serve::run(args).await,
            Command::Completions { shell } => {
                use std::io::Write as _;
                let mut command = <Cli as clap::CommandFactory>::command();
                let mut script = Vec::new();
                clap_complete::generate(shell, &mut command, "twilio-broker", &mut script);
                std::io::stdout()
                    .write_all(&script)
                    .map_err(anyhow::Error::from)
            }
            Command::Man => {
                let command = <Cli as clap::CommandFactory>::command();
                clap_mangen::Man::new(command)
                    .render(&mut std::io::stdout())
                    .map_err(anyhow::Error::from)
            }
            Command::Credential(command) => credential::run(command).await,
            Command::Token(command) => token::run(command).await,
            Command::Webhook(command) => webhook::run(command).await,
            Command::Recommend(args) => recommend::run(args).await,
            Command::Doctor(args) => doctor::run(args).await,
            Command::Policy(command) => policy::run(command).await,
            Command::Audit(command) => audit::run(command).await,
            Command::Keygen => keys::keygen(),
            Command::Keyring(command) => keyring::run(command),
            Command::Rekey(args) => keys::rekey(args).await,
            Command::Compact(args) => keys::compact(args).await,
            Command::Backup(args) => backup::backup(args).await,
            Command::Restore(args) => backup::restore(args).await,
            Command::Plugin(command) => plugin::run(command).await,
            Command::Console(command) => console::run(command).await,
        }
    });
    // Dropping a runtime waits for every blocking task; a blocked writer (a
    // hung audit medium) or an abandoned plugin call must not hold up exit.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // The report is printed already; the status alone tells a pipeline.
        Err(err) if err.is::<doctor::RisksFound>() => ExitCode::from(doctor::RISKS_FOUND_EXIT),
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
