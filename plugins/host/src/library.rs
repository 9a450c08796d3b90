//! Loading a plugin library: pin check, `dlopen`, the version handshake,
//! table validation and `init`, each failure a clear start-up error.
//!
//! Order matters: the file is hashed before it is loaded, and on Linux what
//! is hashed and loaded is a sealed copy: the library is copied into an
//! anonymous `memfd` sealed against every change (`F_SEAL_WRITE`, ...), the
//! copy is hashed, and `/proc/self/fd/N` of the copy is what `dlopen` maps,
//! so neither a rename nor an in-place rewrite of the file between hashing
//! and loading changes what runs. The ABI version symbol is read and checked
//! before any other symbol is touched; the library is never unloaded.
//!
//! [`load_with`] and [`inspect_with`] take a hook that runs at exactly the
//! moment between hashing and loading (given the path that will be loaded),
//! which is how the test rewrites the library at that moment.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};
use twilio_broker_plugin_sdk::abi::{
    TB_ABI_VERSION, TB_ABI_VERSION_OLDEST, TB_ABI_VERSION_SYMBOL, TB_PLUGIN_V1_SYMBOL,
    TB_PLUGIN_V2_SYMBOL, TbPluginV1, TbPluginV2,
};

use super::guard::Guard;
use super::raw::Table;
use super::{PluginAuditSink, PluginError, PluginKind, PluginSpec, PluginStore, Sha256Pin};

/// Why a plugin was refused at start-up.
///
/// Exhaustive on purpose (only the daemon uses this crate): `plugin check`
/// matches every variant to give its hint, so a new variant without a hint
/// does not compile.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file cannot be read.
    #[error("cannot read plugin {path}: {reason}")]
    Read {
        /// The library path.
        path: PathBuf,
        /// The OS error.
        reason: String,
    },
    /// The file is not the one pinned in the config.
    #[error(
        "plugin {path} has sha256 {found}, but the config pins {expected}; refusing to load it \
         (if the plugin was upgraded on purpose, update `sha256` in its [[plugins]] entry)"
    )]
    PinMismatch {
        /// The library path.
        path: PathBuf,
        /// The pinned digest.
        expected: Sha256Pin,
        /// The file's digest.
        found: Sha256Pin,
    },
    /// `dlopen` failed.
    #[error("cannot load plugin {path}: {reason}")]
    Open {
        /// The library path.
        path: PathBuf,
        /// The loader's message.
        reason: String,
    },
    /// The library exports no ABI symbol it must.
    #[error(
        "plugin {path} does not export `{symbol}`; is it a twilio-broker plugin built with the SDK \
         or against twilio_broker_plugin.h?"
    )]
    MissingSymbol {
        /// The library path.
        path: PathBuf,
        /// The symbol.
        symbol: &'static str,
    },
    /// The library speaks an ABI version this broker does not load.
    #[error(
        "plugin {path} speaks plugin ABI version {found}, but this broker loads versions \
         {oldest} to {newest}; rebuild the plugin against a matching SDK or header"
    )]
    AbiVersion {
        /// The library path.
        path: PathBuf,
        /// The version the library reports.
        found: u32,
        /// The oldest version the broker loads.
        oldest: u32,
        /// The newest version the broker loads.
        newest: u32,
    },
    /// The plugin table is malformed.
    #[error("plugin {path} has a malformed plugin table: {what}")]
    BadTable {
        /// The library path.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// The library is another kind of plugin than configured.
    #[error(
        "plugin {path} ({name}) is of kind {found:?}, but its [[plugins]] entry says kind = \
         {configured:?}"
    )]
    WrongKind {
        /// The library path.
        path: PathBuf,
        /// The plugin's name.
        name: String,
        /// The kind in the config.
        configured: String,
        /// The kind of the library.
        found: String,
    },
    /// `init` refused the configuration or failed.
    #[error("plugin {path} did not start: {error}")]
    Init {
        /// The library path.
        path: PathBuf,
        /// What the plugin (or its time-out) said.
        error: PluginError,
    },
}

/// A plugin loaded and initialised, by kind.
pub enum Loaded {
    /// An audit sink.
    Audit(PluginAuditSink),
    /// A storage backend.
    Storage(PluginStore),
}

/// What a library turned out to be, before `init`.
pub struct Inspected {
    /// The plugin's name.
    pub name: String,
    /// Its kind.
    pub kind: PluginKind,
    /// The ABI version it speaks.
    pub abi_version: u32,
    /// The plugin's own version, when its table has one (ABI version 2).
    pub plugin_version: Option<String>,
    /// The file's SHA-256.
    pub sha256: Sha256Pin,
    table: Table,
}

/// Runs between hashing a library and loading it, given the path that will
/// be loaded (`/proc/self/fd/N` of the sealed copy on Linux).
pub type BeforeLoad = Box<dyn FnOnce(&Path) + Send>;

/// Loads, checks and initialises the plugin of one `[[plugins]]` entry.
pub async fn load(spec: &PluginSpec) -> Result<Loaded, LoadError> {
    load_with(spec, None).await
}

/// [`load`], running `before_load` between hashing and loading.
pub async fn load_with(
    spec: &PluginSpec,
    before_load: Option<BeforeLoad>,
) -> Result<Loaded, LoadError> {
    let inspected = inspect_with(spec.path.clone(), spec.sha256.clone(), before_load).await?;
    if inspected.kind != spec.kind {
        return Err(LoadError::WrongKind {
            path: spec.path.clone(),
            name: inspected.name,
            configured: spec.kind.to_string(),
            found: inspected.kind.to_string(),
        });
    }
    init(spec, inspected).await
}

/// Hashes, opens and validates a library without initialising it.
pub async fn inspect(path: PathBuf, pin: Option<Sha256Pin>) -> Result<Inspected, LoadError> {
    inspect_with(path, pin, None).await
}

/// [`inspect`], running `before_load` between hashing and loading.
pub async fn inspect_with(
    path: PathBuf,
    pin: Option<Sha256Pin>,
    before_load: Option<BeforeLoad>,
) -> Result<Inspected, LoadError> {
    let task =
        tokio::task::spawn_blocking(move || open_and_check(&path, pin.as_ref(), before_load));
    task.await.unwrap_or_else(|_| {
        Err(LoadError::Open {
            path: PathBuf::new(),
            reason: "loading panicked".into(),
        })
    })
}

/// Calls `init` with the entry's config, under its init time-out.
pub async fn init(spec: &PluginSpec, inspected: Inspected) -> Result<Loaded, LoadError> {
    let name = inspected.name.clone();
    let table = inspected.table;
    let config = spec.config_json();
    let init_guard = Guard::new(&name, spec.init_timeout());
    let raw = init_guard
        .call("init", move || table.init(&config))
        .await
        .map_err(|error| LoadError::Init {
            path: spec.path.clone(),
            error,
        })?;
    let guard = Guard::new(&name, spec.timeout());
    tracing::info!(plugin = %name, kind = %inspected.kind, path = %spec.path.display(),
        sha256 = %inspected.sha256, abi_version = inspected.abi_version,
        version = inspected.plugin_version.as_deref().unwrap_or("-"), "plugin loaded");
    Ok(match inspected.kind {
        PluginKind::Audit => Loaded::Audit(PluginAuditSink::new(raw, guard, spec.required)),
        PluginKind::Storage => Loaded::Storage(PluginStore::new(raw, guard)),
    })
}

fn open_and_check(
    path: &Path,
    pin: Option<&Sha256Pin>,
    before_load: Option<BeforeLoad>,
) -> Result<Inspected, LoadError> {
    let read_error = |err: std::io::Error| LoadError::Read {
        path: path.to_owned(),
        reason: err.to_string(),
    };
    let file = std::fs::File::open(path).map_err(read_error)?;
    #[cfg(target_os = "linux")]
    let mut file = {
        let mut file = file;
        twilio_broker_system::sealed_copy("twilio-broker-plugin", &mut file).map_err(read_error)?
    };
    #[cfg(not(target_os = "linux"))]
    let mut file = file;
    let mut hasher = Sha256::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut chunk).map_err(read_error)?;
        if n == 0 {
            break;
        }
        hasher.update(&chunk[..n]);
    }
    let sha256 = Sha256Pin(hasher.finalize().into());
    if let Some(expected) = pin
        && *expected != sha256
    {
        return Err(LoadError::PinMismatch {
            path: path.to_owned(),
            expected: expected.clone(),
            found: sha256,
        });
    }

    // Never unloaded, not even when refused below: a call abandoned after
    // its time-out may still be running library code, and the table points
    // into it. The file stays open too: on Linux the library was loaded by
    // the name `/proc/self/fd/N`, and the loader would hand this library out
    // again for a later `dlopen` of that name if `N` were reused.
    let library: &'static libloading::Library =
        Box::leak(Box::new(open_library(path, &file, before_load)?));
    std::mem::forget(file);
    // SAFETY: the symbol is declared `uint32_t (void)` by the ABI; a library
    // that lies about it is outside what any check can catch.
    let version = unsafe {
        library
            .get::<unsafe extern "C" fn() -> u32>(TB_ABI_VERSION_SYMBOL)
            .map(|f| f())
    }
    .map_err(|_| LoadError::MissingSymbol {
        path: path.to_owned(),
        symbol: TB_ABI_VERSION_SYMBOL,
    })?;
    let missing = |symbol| LoadError::MissingSymbol {
        path: path.to_owned(),
        symbol,
    };
    let table = match version {
        1 => {
            // SAFETY: ABI version 1 declares `const TbPluginV1 *(void)`.
            let table = unsafe {
                library
                    .get::<unsafe extern "C" fn() -> *const TbPluginV1>(TB_PLUGIN_V1_SYMBOL)
                    .map(|f| f())
            }
            .map_err(|_| missing(TB_PLUGIN_V1_SYMBOL))?;
            // SAFETY: the pointer comes from the library, which is leaked
            // above and so stays loaded for the life of the process.
            unsafe { Table::validate_v1(table) }
        }
        2 => {
            // SAFETY: ABI version 2 declares `const TbPluginV2 *(void)`.
            let table = unsafe {
                library
                    .get::<unsafe extern "C" fn() -> *const TbPluginV2>(TB_PLUGIN_V2_SYMBOL)
                    .map(|f| f())
            }
            .map_err(|_| missing(TB_PLUGIN_V2_SYMBOL))?;
            // SAFETY: as above.
            unsafe { Table::validate_v2(table) }
        }
        found => {
            return Err(LoadError::AbiVersion {
                path: path.to_owned(),
                found,
                oldest: TB_ABI_VERSION_OLDEST,
                newest: TB_ABI_VERSION,
            });
        }
    }
    .map_err(|what| LoadError::BadTable {
        path: path.to_owned(),
        what,
    })?;
    Ok(Inspected {
        name: table.name.clone(),
        kind: table.kind(),
        abi_version: version,
        plugin_version: table.version.clone(),
        sha256,
        table,
    })
}

/// `dlopen` with every symbol resolved now (`RTLD_NOW`), so a library with
/// an unresolved symbol is refused here instead of aborting the broker on
/// its first call. On Linux the sealed copy that was hashed is what loads.
fn open_library(
    path: &Path,
    file: &std::fs::File,
    before_load: Option<BeforeLoad>,
) -> Result<libloading::Library, LoadError> {
    let open_error = |err: libloading::Error| LoadError::Open {
        path: path.to_owned(),
        reason: err.to_string(),
    };
    #[cfg(target_os = "linux")]
    let load_path = {
        use std::os::fd::AsRawFd as _;
        PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()))
    };
    #[cfg(not(target_os = "linux"))]
    let load_path = {
        let _ = file;
        path.to_owned()
    };
    if let Some(hook) = before_load {
        hook(&load_path);
    }
    #[cfg(unix)]
    {
        use libloading::os::unix::{Library, RTLD_LOCAL, RTLD_NOW};
        // SAFETY: running the library's initialisers is inherent to loading
        // a plugin; operators choose (and may pin) the libraries they load.
        unsafe { Library::open(Some(&load_path), RTLD_NOW | RTLD_LOCAL) }
            .map(Into::into)
            .map_err(open_error)
    }
    #[cfg(not(unix))]
    {
        // SAFETY: as above.
        unsafe { libloading::Library::new(&load_path) }.map_err(open_error)
    }
}
