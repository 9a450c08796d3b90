//! TLS material replaced while the daemon serves: each TLS listener holds a
//! [`TlsReloader`] and every handshake takes its current `ServerConfig`.
//! SIGHUP, or a change of the files on disk ([`watch_files`]), reloads the
//! certificate, key, client CA and CRL.
//!
//! **Invariant:** a reload is all or nothing. A whole new `ServerConfig` is
//! built from the files first and swapped in with one atomic store; a file
//! that is missing, unparsable or does not match (a key for another
//! certificate) leaves the old config serving, and the log says why.
//! Connections already open keep the config they were accepted with.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;

use super::TlsSettings;
use super::tls;

/// How often [`watch_files`] looks at the files.
pub const WATCH_INTERVAL: Duration = Duration::from_secs(2);

/// What identifies one version of a file on disk: a rewrite in place or a
/// replacement by rename changes at least one of these.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

fn stamp(path: &Path) -> Option<Stamp> {
    use std::os::unix::fs::MetadataExt as _;
    let meta = std::fs::metadata(path).ok()?;
    Some(Stamp {
        modified: meta.modified().ok(),
        len: meta.len(),
        inode: meta.ino(),
    })
}

/// The TLS config of one listener, swappable at run time.
pub struct TlsReloader {
    /// The listener, for logs.
    name: String,
    settings: TlsSettings,
    current: ArcSwap<rustls::ServerConfig>,
    /// The files' stamps at the last load attempt, good or bad, so a broken
    /// file is reported once, not on every look.
    seen: Mutex<Vec<Option<Stamp>>>,
}

impl TlsReloader {
    /// Loads the files once; an error here stops start-up.
    pub fn load(name: String, settings: TlsSettings) -> anyhow::Result<Arc<Self>> {
        let seen = stamps(&settings);
        let config = tls::server_config(&settings)?;
        Ok(Arc::new(TlsReloader {
            name,
            settings,
            current: ArcSwap::from_pointee(config),
            seen: Mutex::new(seen),
        }))
    }

    /// An acceptor over the current config (one per handshake).
    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.current.load_full())
    }

    /// Rebuilds the config from the files and swaps it in; on error the old
    /// one keeps serving and the error says which file is wrong.
    pub fn reload(&self) -> anyhow::Result<()> {
        let now = stamps(&self.settings);
        let built = tls::server_config(&self.settings);
        *self
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = now;
        match built {
            Ok(config) => {
                self.current.store(Arc::new(config));
                metrics::counter!("twilio_broker_tls_reloads_total", "outcome" => "ok")
                    .increment(1);
                tracing::info!(listener = %self.name, "TLS certificate, key and client CA reloaded");
                Ok(())
            }
            Err(err) => {
                metrics::counter!("twilio_broker_tls_reloads_total", "outcome" => "refused")
                    .increment(1);
                tracing::error!(listener = %self.name, err = format!("{err:#}"),
                    "TLS reload refused; the previous certificate keeps serving");
                Err(err)
            }
        }
    }

    /// True when a file changed since the last load attempt.
    fn changed_on_disk(&self) -> bool {
        let now = stamps(&self.settings);
        *self
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            != now
    }
}

fn paths(settings: &TlsSettings) -> Vec<&PathBuf> {
    [Some(&settings.cert), Some(&settings.key)]
        .into_iter()
        .chain([settings.client_ca.as_ref(), settings.crl.as_ref()])
        .flatten()
        .collect()
}

fn stamps(settings: &TlsSettings) -> Vec<Option<Stamp>> {
    paths(settings).into_iter().map(|p| stamp(p)).collect()
}

/// Reloads every listener whose files changed, every `every`. Runs until
/// the daemon stops.
pub async fn watch_files(reloaders: Vec<Arc<TlsReloader>>, every: Duration) {
    if reloaders.is_empty() {
        return;
    }
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        for reloader in &reloaders {
            if reloader.changed_on_disk() {
                // Reading PEM files is quick, but it is disk I/O: off the executor.
                let reloader = Arc::clone(reloader);
                let _ = tokio::task::spawn_blocking(move || reloader.reload()).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_pair(dir: &Path, cn: &str) -> (PathBuf, PathBuf) {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params = rcgen::CertificateParams::new(vec!["localhost".into()]).expect("params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        let cert = params.self_signed(&key).expect("cert");
        let (c, k) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&c, cert.pem()).expect("write cert");
        std::fs::write(&k, key.serialize_pem()).expect("write key");
        (c, k)
    }

    fn served(reloader: &TlsReloader) -> Arc<rustls::ServerConfig> {
        reloader.current.load_full()
    }

    #[test]
    fn a_good_reload_swaps_the_config_and_a_broken_file_keeps_the_old_one() {
        let dir = tempfile::tempdir().expect("dir");
        let (cert, key) = write_pair(dir.path(), "first");
        let settings = TlsSettings {
            cert: cert.clone(),
            key: key.clone(),
            client_ca: None,
            client_auth: None,
            crl: None,
        };
        let reloader = TlsReloader::load("test".into(), settings).expect("loads");
        let first = served(&reloader);
        assert!(!reloader.changed_on_disk());

        write_pair(dir.path(), "second");
        assert!(reloader.changed_on_disk());
        reloader.reload().expect("reloads");
        let second = served(&reloader);
        assert!(!Arc::ptr_eq(&first, &second), "the config was not swapped");
        assert!(!reloader.changed_on_disk());

        std::fs::write(&key, "not a key").expect("write");
        let refused = reloader.reload().expect_err("a broken key is refused");
        assert!(
            format!("{refused:#}").contains(&key.display().to_string()),
            "{refused:#}"
        );
        assert!(
            Arc::ptr_eq(&served(&reloader), &second),
            "the old config keeps serving"
        );
        assert!(
            !reloader.changed_on_disk(),
            "reported once, not on every look"
        );
    }
}
