//! The broker's own secret at rest: where its master key file is kept,
//! read from the broker's TOML config or the `TWILIO_BROKER_*` variables.

use std::path::{Path, PathBuf};

use secrecy::ExposeSecret as _;

use super::rules::finding;
use super::scan::Assignment;
use super::{Finding, Source};

fn absolute(path: &Path) -> PathBuf {
    let path = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().unwrap_or_default().join(path)
    };
    std::fs::canonicalize(&path).unwrap_or(path)
}

/// Where the broker's master key file is kept, from its config file or the
/// `TWILIO_BROKER_*` variables in the environment.
pub(super) fn master_key_findings(source: &Source) -> Vec<Finding> {
    let named = |name: &str| source.assignments.iter().find(|a| a.name == name);
    let (data_dir, key_file, key_at) = match &source.broker_config {
        Some(config) => (
            config.data_dir.clone(),
            config.master_key_file.clone(),
            named("master_key_file"),
        ),
        None if source.path.is_none() => {
            let dir = named("TWILIO_BROKER_DATA_DIR");
            let key = named("TWILIO_BROKER_MASTER_KEY_FILE");
            let path = |a: Option<&Assignment>| a.map(|a| PathBuf::from(a.value.expose_secret()));
            (path(dir), path(key), key)
        }
        None => return Vec::new(),
    };
    let Some(key_file) = key_file else {
        return Vec::new();
    };
    let at = source.location(key_at.and_then(|a| a.line));
    let mut out = Vec::new();
    if let Some(data_dir) = data_dir
        && absolute(&key_file).starts_with(absolute(&data_dir))
    {
        out.push(finding(
            "broker-master-key-in-data-dir",
            at.clone(),
            None,
            format!(
                "The broker's master key file {} is inside its data directory {}: a copy of the \
                 data carries the key that opens it.",
                key_file.display(),
                data_dir.display()
            ),
        ));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        if let Ok(meta) = std::fs::metadata(&key_file)
            && meta.permissions().mode() & 0o077 != 0
        {
            out.push(finding(
                "broker-master-key-readable-by-others",
                at,
                None,
                format!(
                    "The broker's master key file {} can be read by group or others (mode {:o}).",
                    key_file.display(),
                    meta.permissions().mode() & 0o777
                ),
            ));
        }
    }
    out
}
