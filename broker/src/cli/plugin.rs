//! `twilio-broker plugin check PATH [--kind K] [--config JSON]`: loads a
//! plugin library the way `serve` would, reports what it is, and runs the
//! SDK's conformance suite for its kind against it, through the same guarded
//! host calls the daemon uses; every failure comes with a hint.
//!
//! `twilio-broker plugin new audit|storage NAME [--lang rust|c]`: writes a
//! buildable plugin project from the templates in `plugins/templates/` and
//! `plugins/examples/c-audit/` and `c-storage/` (compiled into the binary).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use tokio::runtime::Handle;
use twilio_broker_plugin_sdk::abi::{TB_ABI_VERSION, TB_ABI_VERSION_OLDEST};
use twilio_broker_plugin_sdk::{Audit, PluginError, conformance};

use crate::plugin_host::{
    self, LoadError, Loaded, PluginAuditSink, PluginKind, PluginSpec, Sha256Pin,
};
use crate::store::{BlockingStore, Store};

/// Plugin subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Load a plugin library, report its kind and ABI version, and run the
    /// conformance suite of its kind against it. A storage suite writes and
    /// then deletes keys under `conformance/`; an audit suite records events
    /// of type `plugin.conformance`: point the plugin at a test backend.
    Check(CheckArgs),
    /// Write a new plugin project (source with the trait implemented and
    /// commented, a test running the conformance suite, a README, and a
    /// Cargo.toml or Makefile) into DIR/NAME.
    New(NewArgs),
}

/// The plugin kinds, as command-line values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// An audit sink.
    Audit,
    /// A storage backend.
    Storage,
}

impl Kind {
    fn plugin_kind(self) -> PluginKind {
        match self {
            Kind::Audit => PluginKind::Audit,
            Kind::Storage => PluginKind::Storage,
        }
    }
}

/// The languages `plugin new` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    /// A Cargo project depending on `twilio-broker-plugin-sdk`.
    Rust,
    /// A C11 project with a Makefile and its own copy of the header.
    C,
}

/// Arguments of `plugin new`.
#[derive(Debug, clap::Args)]
pub struct NewArgs {
    /// What the plugin is.
    #[arg(value_enum)]
    kind: Kind,
    /// The plugin's name: lowercase letters, digits and `-`, starting with a
    /// letter (it names the directory, the package and the library).
    name: String,
    /// The language of the project.
    #[arg(long, value_enum, default_value = "rust")]
    lang: Lang,
    /// The directory to create the project in (as DIR/NAME).
    #[arg(long, default_value = ".")]
    dir: PathBuf,
    /// Rust only: where the SDK comes from: the git URL of the twilio-broker
    /// repository (the dependency is pinned to --sdk-tag), or the path of a
    /// local `plugins/sdk` directory.
    #[arg(long)]
    sdk: Option<String>,
    /// Rust only: the git tag of the SDK, with a git --sdk [default: this
    /// broker's release tag, v<version>].
    #[arg(long)]
    sdk_tag: Option<String>,
}

/// Arguments of `plugin check`.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// The shared library (.so / .dylib).
    path: PathBuf,
    /// The plugin's configuration as JSON: what `config = {...}` holds in
    /// its [[plugins]] entry.
    #[arg(long, default_value = "{}")]
    config: String,
    /// Refuse the file unless its SHA-256 is this (64 hex digits).
    #[arg(long)]
    sha256: Option<Sha256Pin>,
    /// Per-call time-out in milliseconds [default: 5000].
    #[arg(long)]
    timeout_ms: Option<u64>,
    /// Refuse the library unless it is of this kind.
    #[arg(long, value_enum)]
    kind: Option<Kind>,
    /// Audit only: the file the plugin writes events to, one JSON object a
    /// line; the suite then also checks that every event arrived exactly
    /// once, unchanged.
    #[arg(long)]
    readback_jsonl: Option<PathBuf>,
}

/// Runs a plugin subcommand.
pub async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Check(args) => check(args).await,
        Command::New(args) => new_project(&args),
    }
}

/// What to do about a refused library.
fn load_hint(err: &LoadError) -> &'static str {
    match err {
        LoadError::Read { .. } => "check the path, and that this user may read the file",
        LoadError::PinMismatch { .. } => {
            "the file is not the one pinned: verify where it came from, then pin its new sha256"
        }
        LoadError::Open { .. } => {
            "is it a shared library for this OS and CPU (`file` it)? are its own dependencies \
             installed (`ldd` it)? a C plugin must be built with -shared -fPIC"
        }
        LoadError::MissingSymbol { .. } => {
            "Rust: call export_audit_sink!/export_storage! once and build with crate-type = \
             [\"cdylib\"]; C/Go: define both symbols non-static and list them with `nm -D`"
        }
        LoadError::AbiVersion { .. } => {
            "rebuild the plugin against the SDK (or twilio_broker_plugin.h) of this broker's release"
        }
        LoadError::BadTable { .. } => {
            "fill every required field of the plugin table, set each struct_size to sizeof() of \
             its table, and give a printable name of 1 to 64 bytes (rules: the header's preamble)"
        }
        LoadError::WrongKind { .. } => {
            "pass the library's kind (--kind), or fix `kind` in its [[plugins]] entry"
        }
        LoadError::Init { .. } => {
            "init refused the configuration: pass the plugin's config as JSON with --config, as \
             its documentation describes; the message above says what it wants"
        }
    }
}

/// A refusal with its hint, as the command's error.
fn refused(err: LoadError) -> anyhow::Error {
    let hint = load_hint(&err);
    anyhow::anyhow!("{err}\n  hint: {hint}")
}

async fn check(args: CheckArgs) -> anyhow::Result<()> {
    let config: serde_json::Value =
        serde_json::from_str(&args.config).context("--config is not valid JSON")?;
    if args.readback_jsonl.is_some() && args.kind == Some(Kind::Storage) {
        anyhow::bail!("--readback-jsonl is for audit plugins only");
    }
    let inspected = plugin_host::inspect(args.path.clone(), args.sha256.clone())
        .await
        .map_err(refused)?;
    println!("plugin:       {}", args.path.display());
    println!("sha256:       {}", inspected.sha256);
    println!(
        "ABI version:  {} (this broker loads {TB_ABI_VERSION_OLDEST} to {TB_ABI_VERSION})",
        inspected.abi_version
    );
    println!("kind:         {}", inspected.kind);
    println!("name:         {}", inspected.name);
    println!(
        "version:      {}",
        inspected.plugin_version.as_deref().unwrap_or("(none)")
    );
    if let Some(kind) = args.kind
        && kind.plugin_kind() != inspected.kind
    {
        anyhow::bail!(
            "plugin {} ({}) is of kind {:?}, not {:?} as --kind says\n  hint: check the path \
             (is it the library you meant?), or pass --kind {}",
            args.path.display(),
            inspected.name,
            inspected.kind.to_string(),
            kind.plugin_kind().to_string(),
            inspected.kind
        );
    }
    let mut spec = PluginSpec::new(args.path, inspected.kind);
    spec.config = Some(config);
    spec.timeout_ms = args.timeout_ms;
    let loaded = plugin_host::init(&spec, inspected).await.map_err(refused)?;
    println!("init:         ok");
    let runtime = Handle::current();
    let report = match loaded {
        Loaded::Storage(store) => {
            let store: Arc<dyn Store> = Arc::new(store);
            let blocking = BlockingStore::new(store, runtime).await;
            tokio::task::spawn_blocking(move || conformance::storage::run(&blocking)).await?
        }
        Loaded::Audit(sink) => {
            let sink = Arc::new(sink);
            let blocking = BlockingAudit {
                sink: Arc::clone(&sink),
                runtime,
            };
            let readback_file = args.readback_jsonl;
            let report = tokio::task::spawn_blocking(move || {
                let read = |path: &Path| {
                    let text = std::fs::read_to_string(path)
                        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                    Ok(text.lines().map(str::to_owned).collect())
                };
                let readback = readback_file.as_deref().map(|path| move || read(path));
                let readback = readback
                    .as_ref()
                    .map(|f| f as &dyn Fn() -> Result<Vec<String>, String>);
                conformance::audit::run(&blocking, readback)
            })
            .await?;
            sink.close().await?;
            report
        }
    };
    println!("{report}");
    let failed = report.failures().count();
    if failed > 0 {
        anyhow::bail!(
            "the plugin does not conform: {failed} case(s) failed (see each FAIL and its hint above)"
        );
    }
    Ok(())
}

/// A [`PluginAuditSink`] driven from the conformance suite's threads.
struct BlockingAudit {
    sink: Arc<PluginAuditSink>,
    runtime: Handle,
}

fn sdk_error(err: plugin_host::PluginError) -> PluginError {
    PluginError::failed(err)
}

impl Audit for BlockingAudit {
    fn record(&self, event_json: &str) -> Result<(), PluginError> {
        self.runtime
            .block_on(self.sink.record_json(event_json.as_bytes()))
            .map_err(sdk_error)
    }

    fn flush(&self) -> Result<(), PluginError> {
        self.runtime.block_on(self.sink.flush()).map_err(sdk_error)
    }
}

/// One file of a template: its path in the new project and its text.
type Template = &'static [(&'static str, &'static str)];

const RUST_AUDIT: Template = &[
    (
        "Cargo.toml",
        include_str!("../../../plugins/templates/rust-audit/Cargo.toml"),
    ),
    (
        "src/lib.rs",
        include_str!("../../../plugins/templates/rust-audit/src/lib.rs"),
    ),
    (
        "tests/conformance.rs",
        include_str!("../../../plugins/templates/rust-audit/tests/conformance.rs"),
    ),
    (
        "README.md",
        include_str!("../../../plugins/templates/rust-README.md"),
    ),
    (".gitignore", "/target\n/Cargo.lock\n"),
];

const RUST_STORAGE: Template = &[
    (
        "Cargo.toml",
        include_str!("../../../plugins/templates/rust-storage/Cargo.toml"),
    ),
    (
        "src/lib.rs",
        include_str!("../../../plugins/templates/rust-storage/src/lib.rs"),
    ),
    (
        "tests/conformance.rs",
        include_str!("../../../plugins/templates/rust-storage/tests/conformance.rs"),
    ),
    (
        "README.md",
        include_str!("../../../plugins/templates/rust-README.md"),
    ),
    (".gitignore", "/target\n/Cargo.lock\n"),
];

/// The C example, copied and renamed (its name is `c-jsonl`).
const C_AUDIT: Template = &[
    (
        "audit.c",
        include_str!("../../../plugins/examples/c-audit/audit.c"),
    ),
    (
        "Makefile",
        include_str!("../../../plugins/examples/c-audit/Makefile"),
    ),
    (
        "README.md",
        include_str!("../../../plugins/examples/c-audit/README.md"),
    ),
    (
        ".gitignore",
        include_str!("../../../plugins/examples/c-audit/.gitignore"),
    ),
    (
        "include/twilio_broker_plugin.h",
        include_str!("../../../plugins/sdk/include/twilio_broker_plugin.h"),
    ),
];

/// The C storage example, copied and renamed (its name is `c-memstore`).
const C_STORAGE: Template = &[
    (
        "storage.c",
        include_str!("../../../plugins/examples/c-storage/storage.c"),
    ),
    (
        "Makefile",
        include_str!("../../../plugins/examples/c-storage/Makefile"),
    ),
    (
        "README.md",
        include_str!("../../../plugins/examples/c-storage/README.md"),
    ),
    (
        ".gitignore",
        include_str!("../../../plugins/examples/c-storage/.gitignore"),
    ),
    (
        "include/twilio_broker_plugin.h",
        include_str!("../../../plugins/sdk/include/twilio_broker_plugin.h"),
    ),
];

/// Checks a plugin name: it becomes a directory, a Cargo package, a C
/// identifier (with `_` for `-`) and the plugin's name in the broker's logs.
fn check_name(name: &str) -> anyhow::Result<()> {
    let ok = (1..=64).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && !name.ends_with('-')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !ok {
        anyhow::bail!(
            "the plugin name {name:?} is not usable: use 1 to 64 lowercase letters, digits and \
             `-`, starting with a letter and not ending with `-` (e.g. my-siem)"
        );
    }
    Ok(())
}

/// `my-siem` → `MySiem`.
fn type_name(name: &str) -> String {
    name.split('-')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let mut chars = part.chars();
            chars.next().map_or_else(String::new, |first| {
                first.to_ascii_uppercase().to_string() + chars.as_str()
            })
        })
        .collect()
}

/// The SDK dependency of a Rust project, as a TOML inline table.
fn sdk_dependency(args: &NewArgs) -> anyhow::Result<String> {
    let Some(sdk) = &args.sdk else {
        anyhow::bail!(
            "--sdk is required with --lang rust: give the git URL of the twilio-broker repository \
             (the dependency is pinned to the tag v{} of this broker, or --sdk-tag), or the path \
             of a local plugins/sdk directory",
            env!("CARGO_PKG_VERSION")
        );
    };
    let quote = |text: &str| toml::Value::String(text.to_owned()).to_string();
    if sdk.contains("://") || sdk.starts_with("git@") {
        let tag = args
            .sdk_tag
            .clone()
            .unwrap_or_else(|| format!("v{}", env!("CARGO_PKG_VERSION")));
        return Ok(format!("{{ git = {}, tag = {} }}", quote(sdk), quote(&tag)));
    }
    if args.sdk_tag.is_some() {
        anyhow::bail!("--sdk-tag goes with a git URL in --sdk, not a path");
    }
    let path =
        std::fs::canonicalize(sdk).with_context(|| format!("--sdk {sdk}: no such directory"))?;
    if !path.join("Cargo.toml").is_file() || !path.join("include").is_dir() {
        anyhow::bail!(
            "--sdk {}: not the SDK directory (plugins/sdk of a twilio-broker checkout)",
            path.display()
        );
    }
    let path = path
        .to_str()
        .context("--sdk: the path is not UTF-8")?
        .to_owned();
    Ok(format!("{{ path = {} }}", quote(&path)))
}

/// Fills a Rust template's placeholders.
fn render_rust(text: &str, name: &str, kind: Kind, sdk: &str) -> String {
    let krate = name.replace('-', "_");
    let (what, config, config_toml) = match kind {
        Kind::Audit => (
            "appends each event as one line to the file `config.path`",
            r#"{"path":"/tmp/NAME-check.jsonl"}"#.replace("NAME", name),
            format!(r#"{{ path = "/var/log/twilio-broker/{name}.jsonl" }}"#),
        ),
        Kind::Storage => (
            "keeps every record in memory (nothing survives a restart)",
            "{}".to_owned(),
            "{}".to_owned(),
        ),
    };
    let suffix = match kind {
        Kind::Audit => "Sink",
        Kind::Storage => "Store",
    };
    text.replace("{{sdk}}", sdk)
        .replace("{{name}}", name)
        .replace("{{crate}}", &krate)
        .replace("{{Type}}", &format!("{}{suffix}", type_name(name)))
        .replace(
            "{{kind}}",
            match kind {
                Kind::Audit => "audit",
                Kind::Storage => "storage",
            },
        )
        .replace("{{what}}", what)
        .replace("{{config}}", &config)
        .replace("{{config_toml}}", &config_toml)
}

/// Renames a C example (`c-jsonl`, `c-memstore`) and points its Makefile at
/// the copy of the header in the project.
fn render_c(text: &str, name: &str) -> String {
    text.replace(
        "TB_INCLUDE    ?= ../../sdk/include",
        "TB_INCLUDE    ?= include",
    )
    .replace(
        "TB_INCLUDE=dir-of-the-header if elsewhere",
        "the header is in include/",
    )
    .replace("c-jsonl", name)
    .replace("c_jsonl", &name.replace('-', "_"))
    .replace("c-memstore", name)
    .replace("c_memstore", &name.replace('-', "_"))
}

fn new_project(args: &NewArgs) -> anyhow::Result<()> {
    check_name(&args.name)?;
    let files: Vec<(&str, String)> = match (args.lang, args.kind) {
        (Lang::Rust, kind) => {
            let sdk = sdk_dependency(args)?;
            let template = match kind {
                Kind::Audit => RUST_AUDIT,
                Kind::Storage => RUST_STORAGE,
            };
            template
                .iter()
                .map(|(path, text)| (*path, render_rust(text, &args.name, kind, &sdk)))
                .collect()
        }
        (Lang::C, kind) => {
            if args.sdk.is_some() || args.sdk_tag.is_some() {
                anyhow::bail!("--sdk is for Rust projects; a C project carries its own header");
            }
            let template = match kind {
                Kind::Audit => C_AUDIT,
                Kind::Storage => C_STORAGE,
            };
            template
                .iter()
                .map(|(path, text)| {
                    let text = if path.ends_with(".h") {
                        (*text).to_owned()
                    } else {
                        render_c(text, &args.name)
                    };
                    (*path, text)
                })
                .collect()
        }
    };
    let root = args.dir.join(&args.name);
    if root.exists() {
        anyhow::bail!(
            "{} already exists; choose another name or --dir",
            root.display()
        );
    }
    for (path, text) in &files {
        let path = root.join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    let next = match args.lang {
        Lang::Rust => format!(
            "cd {dir} && cargo test && cargo build --release\n\
             twilio-broker plugin check target/release/lib{krate}.so --kind {kind} --config '{{...}}'",
            dir = root.display(),
            krate = args.name.replace('-', "_"),
            kind = args.kind.plugin_kind(),
        ),
        Lang::C => format!(
            "cd {} && make && make check TWILIO_BROKER=twilio-broker",
            root.display()
        ),
    };
    println!("\nnext:\n{next}\n(see README.md)");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(sdk: Option<&str>, tag: Option<&str>) -> NewArgs {
        NewArgs {
            kind: Kind::Audit,
            name: "my-siem".into(),
            lang: Lang::Rust,
            dir: PathBuf::from("."),
            sdk: sdk.map(str::to_owned),
            sdk_tag: tag.map(str::to_owned),
        }
    }

    #[test]
    fn a_git_sdk_is_pinned_to_this_brokers_tag_or_the_one_given() {
        let url = "https://git.example.com/twilio-broker.git";
        assert_eq!(
            sdk_dependency(&args(Some(url), None)).expect("rendered"),
            format!(
                "{{ git = \"{url}\", tag = \"v{}\" }}",
                env!("CARGO_PKG_VERSION")
            )
        );
        assert_eq!(
            sdk_dependency(&args(Some("git@host:tb.git"), Some("v9.9.9"))).expect("rendered"),
            "{ git = \"git@host:tb.git\", tag = \"v9.9.9\" }"
        );
        let missing = sdk_dependency(&args(None, None))
            .expect_err("refused")
            .to_string();
        assert!(missing.contains("--sdk is required"), "{missing}");
        let sdk = concat!(env!("CARGO_MANIFEST_DIR"), "/../plugins/sdk");
        let path = sdk_dependency(&args(Some(sdk), None)).expect("rendered");
        assert!(
            path.starts_with("{ path = \"/") && path.ends_with("plugins/sdk\" }"),
            "{path}"
        );
        let tagged_path = sdk_dependency(&args(Some(sdk), Some("v1"))).expect_err("refused");
        assert!(
            tagged_path
                .to_string()
                .contains("--sdk-tag goes with a git URL")
        );
    }

    #[test]
    fn names_become_types_and_bad_names_are_refused() {
        assert_eq!(type_name("my-siem"), "MySiem");
        assert_eq!(type_name("kafka2"), "Kafka2");
        for good in ["a", "my-siem", "s3-store-2"] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in ["", "My", "9lives", "a_b", "a-", "a b", &"a".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn templates_leave_no_placeholder_behind() {
        for kind in [Kind::Audit, Kind::Storage] {
            let template = match kind {
                Kind::Audit => RUST_AUDIT,
                Kind::Storage => RUST_STORAGE,
            };
            for (path, text) in template {
                let out = render_rust(text, "my-siem", kind, "{ path = \"/sdk\" }");
                assert!(!out.contains("{{"), "{path}: {out}");
            }
        }
        for (path, text) in C_AUDIT.iter().chain(C_STORAGE) {
            if !path.ends_with(".h") {
                let out = render_c(text, "my-siem");
                for old in [
                    "c-jsonl",
                    "c_jsonl",
                    "c-memstore",
                    "c_memstore",
                    "../../sdk",
                ] {
                    assert!(!out.contains(old), "{path} still says {old}");
                }
            }
        }
    }
}
