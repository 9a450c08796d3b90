//! The built-in JSON-lines audit file (`[audit] file = ...`).
//!
//! Each line is a chained event (see `chain.rs`). A batch is written with one
//! `write` and is then held by the operating system; `fsync` runs in batches
//! (at most every [`SYNC_INTERVAL`] while events flow, and on flush). SIGHUP
//! reopens the path for log rotation; the chain continues across files.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::chain::{ChainKey, GENESIS, tail_state};
use super::{AuditError, AuditEvent, AuditSink};

/// Longest time a written event waits for `fsync` while events keep coming.
pub const SYNC_INTERVAL: Duration = Duration::from_millis(100);

struct Open {
    file: std::fs::File,
    /// Only regular files are synced (a pipe or device has nothing to sync).
    regular: bool,
    next_seq: u64,
    prev: [u8; 32],
    last_sync: Instant,
    dirty: bool,
}

/// Appends chained events to a file.
pub struct FileSink {
    path: PathBuf,
    name: String,
    key: ChainKey,
    state: Arc<Mutex<Open>>,
}

fn open_append(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt as _;
    // Read as well as append, so a named pipe opens without waiting for a reader.
    std::fs::OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .mode(0o600)
        .open(path)
}

fn io_error(path: &Path, err: &std::io::Error) -> AuditError {
    AuditError(format!("audit file {}: {err}", path.display()))
}

impl FileSink {
    /// Opens (or creates) the file, continuing the chain found at its end.
    pub fn open(path: &Path, key: ChainKey) -> Result<Self, AuditError> {
        let (next_seq, prev) = tail_state(&key, path)
            .map_err(|e| io_error(path, &e))?
            .unwrap_or((0, GENESIS));
        let file = open_append(path).map_err(|e| io_error(path, &e))?;
        Ok(FileSink {
            name: format!("file:{}", path.display()),
            path: path.to_path_buf(),
            key,
            state: Arc::new(Mutex::new(Open {
                regular: file.metadata().map(|m| m.is_file()).unwrap_or(false),
                file,
                next_seq,
                prev,
                last_sync: Instant::now(),
                dirty: false,
            })),
        })
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Open, &Path, &ChainKey) -> Result<T, AuditError> + Send + 'static,
    ) -> Result<T, AuditError> {
        let state = Arc::clone(&self.state);
        let path = self.path.clone();
        let key = self.key.clone();
        tokio::task::spawn_blocking(move || {
            let mut open = state
                .lock()
                .map_err(|_| AuditError("audit file state poisoned".into()))?;
            work(&mut open, &path, &key)
        })
        .await
        .map_err(|e| AuditError(format!("audit writer failed: {e}")))?
    }
}

fn sync(open: &mut Open, path: &Path) -> Result<(), AuditError> {
    if open.dirty && open.regular {
        open.file.sync_data().map_err(|e| io_error(path, &e))?;
        open.dirty = false;
    }
    open.last_sync = Instant::now();
    Ok(())
}

#[async_trait::async_trait]
impl AuditSink for FileSink {
    fn name(&self) -> &str {
        &self.name
    }

    async fn record(&self, batch: &[Arc<AuditEvent>]) -> Result<(), AuditError> {
        let events: Vec<String> = batch
            .iter()
            .map(|e| serde_json::to_string(e.as_ref()).map_err(|e| AuditError(e.to_string())))
            .collect::<Result<_, _>>()?;
        self.blocking(move |open, path, key| {
            let mut text = String::with_capacity(events.iter().map(|e| e.len() + 160).sum());
            let (mut seq, mut prev) = (open.next_seq, open.prev);
            for event in &events {
                let (line, hash) = key.link(seq, &prev, event);
                text.push_str(&line);
                text.push('\n');
                seq += 1;
                prev = hash;
            }
            open.file
                .write_all(text.as_bytes())
                .map_err(|e| io_error(path, &e))?;
            open.next_seq = seq;
            open.prev = prev;
            open.dirty = true;
            if open.last_sync.elapsed() >= SYNC_INTERVAL {
                sync(open, path)?;
            }
            Ok(())
        })
        .await
    }

    async fn flush(&self) -> Result<(), AuditError> {
        self.blocking(|open, path, _| sync(open, path)).await
    }

    async fn reopen(&self) -> Result<(), AuditError> {
        self.blocking(|open, path, _| {
            sync(open, path)?;
            open.file = open_append(path).map_err(|e| io_error(path, &e))?;
            open.regular = open.file.metadata().map(|m| m.is_file()).unwrap_or(false);
            Ok(())
        })
        .await
    }
}
