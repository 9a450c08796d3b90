//! The built-in JSON-lines audit file (`[audit] file = ...`).
//!
//! The path a request pays for is short: the event is serialised on the
//! request's own thread and appended to the open batch under a lock held for
//! a copy; the request then waits for that batch's outcome (one shared
//! [`Outcome`] per batch, not a channel per event).
//!
//! Two dedicated threads per file do the rest:
//! - the **writer** swaps the open batch for an empty one, chains each event
//!   (`chain.rs`: SHA-256 links, a signed checkpoint every
//!   `checkpoint_events` lines or `checkpoint_interval`), and writes the
//!   batch with one `write`;
//! - the **syncer** runs `fsync` (every [`SYNC_INTERVAL`] while events flow
//!   with `sync = "batch"`; as soon as a batch is written with
//!   `sync = "always"`) and then anchors the chain's head in the state file,
//!   always after the lines it covers are durable.
//!
//! With `sync = "batch"` a request is answered once its line is written (held
//! by the operating system); with `"always"`, once it is `fsync`ed.
//!
//! At start-up the file's tail is checked against the anchor: a file that
//! ends before the anchored head was truncated (refused unless the operator
//! accepts it, which is recorded in the chain); a file past the anchor is the
//! normal lag after a crash. SIGHUP reopens the path for log rotation; each
//! new file begins with a start line that continues the previous file.

use std::io::{BufRead as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use super::AuditError;
use super::chain::{Chain, ChainKey, Gap, Signer, parse, unhex};
use crate::state_file::{Anchor, StateFile};

/// Longest time a written event waits for `fsync` while events keep coming
/// (`sync = "batch"`), and the longest time between two state file writes.
pub const SYNC_INTERVAL: Duration = Duration::from_millis(100);
/// The name of the built-in file's chain in the state file.
pub const STATE_NAME: &str = "file";

/// Events in the open batch that wake the writer without waiting for a park.
const WAKE_BATCH: usize = 64;
/// The writer's idle tick once the park hook is seen.
const HOOKED_TICK: Duration = Duration::from_millis(5);
/// Set once a runtime worker has called [`on_worker_park`].
static HOOKED: AtomicBool = AtomicBool::new(false);
/// Some open batch has events nobody woke the writer for.
static PENDING: AtomicBool = AtomicBool::new(false);
/// Every running writer (to wake on park).
static WRITERS: Mutex<Vec<Weak<Shared>>> = Mutex::new(Vec::new());

/// The runtime's `on_thread_park` hook (installed by the daemon): a worker
/// with nothing left to run wakes the writers of open batches. Events a
/// burst of requests submitted are then written with one `write` and one
/// wake-up, and the worker, idle anyway, loses nothing by the switch.
pub fn on_worker_park() {
    HOOKED.store(true, Ordering::Relaxed);
    if PENDING.swap(false, Ordering::AcqRel) {
        for writer in lock(&WRITERS).iter().filter_map(Weak::upgrade) {
            writer.wake.notify_one();
        }
    }
}

/// When a request's answer may leave.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyncMode {
    /// Once the line is written; `fsync` follows within [`SYNC_INTERVAL`].
    #[default]
    Batch,
    /// Once the line is `fsync`ed.
    Always,
}

/// How the file is written.
#[derive(Debug, Clone)]
pub struct FileOptions {
    /// When answers may leave.
    pub sync: SyncMode,
    /// A signed checkpoint at least every this many lines.
    pub checkpoint_events: u64,
    /// And at least this often while events flow.
    pub checkpoint_interval: Duration,
    /// Start even when the file ends before its anchored head (recorded).
    pub accept_truncation: bool,
    /// Most events waiting in the open batch.
    pub queue: usize,
}

impl Default for FileOptions {
    fn default() -> Self {
        FileOptions {
            sync: SyncMode::Batch,
            checkpoint_events: 1000,
            checkpoint_interval: Duration::from_secs(1),
            accept_truncation: false,
            queue: super::SinkOptions::default().queue,
        }
    }
}

/// The result of one batch (or control request), shared by everyone waiting
/// for it.
#[derive(Default)]
pub struct Outcome {
    result: OnceLock<Result<(), Arc<str>>>,
    notify: tokio::sync::Notify,
}

impl Outcome {
    fn set(&self, result: Result<(), Arc<str>>) {
        let _ = self.result.set(result);
        self.notify.notify_waiters();
    }

    /// Waits until the outcome is known.
    pub async fn wait(&self) -> Result<(), Arc<str>> {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(result) = self.result.get() {
                return result.clone();
            }
            notified.await;
        }
    }

    /// The outcome, if known.
    pub fn get(&self) -> Option<Result<(), Arc<str>>> {
        self.result.get().cloned()
    }
}

/// What became of a submitted event.
pub enum Submitted {
    /// In the open batch; wait on the outcome.
    Wait(Arc<Outcome>),
    /// In the open batch; nobody waits (a non-required sink).
    Queued,
    /// The batch was full: dropped (non-required; a gap record follows).
    Dropped,
    /// The batch was full and the event is required.
    Full,
}

struct Batch {
    /// Serialised events, back to back.
    buf: Vec<u8>,
    /// (end offset in `buf`, trail event number) per event.
    ends: Vec<(usize, u64)>,
    outcome: Arc<Outcome>,
}

impl Batch {
    fn new() -> Self {
        Batch {
            buf: Vec::new(),
            ends: Vec::new(),
            outcome: Arc::new(Outcome::default()),
        }
    }
}

enum Control {
    Flush,
    Reopen,
    /// A master key rotation: hand the chain over to this signer.
    Signer(Box<Signer>),
}

struct Queue {
    batch: Batch,
    gap: Option<Gap>,
    controls: Vec<(Control, Arc<Outcome>)>,
    stopped: bool,
}

struct SyncState {
    file: Option<Arc<std::fs::File>>,
    /// Written but not yet synced: the head it reaches, and who waits.
    dirty: Option<Anchor>,
    waiters: Vec<Arc<Outcome>>,
    /// Flush requests: answered once synced and anchored.
    flushes: Vec<Arc<Outcome>>,
    now: bool,
    stopped: bool,
}

struct Shared {
    path: PathBuf,
    options: FileOptions,
    queue: Mutex<Queue>,
    wake: Condvar,
    sync: Mutex<SyncState>,
    sync_wake: Condvar,
}

/// Appends chained events to a file (see the module documentation).
pub struct FileSink {
    name: String,
    shared: Arc<Shared>,
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

fn is_regular(file: &std::fs::File) -> bool {
    file.metadata().map(|m| m.is_file()).unwrap_or(false)
}

/// What start-up found at the end of an existing file.
struct Tail {
    chain: Chain,
    /// The file is format 1 (or empty): a start line comes first.
    needs_start: bool,
    /// It ends before the anchor (accepted by the operator).
    truncated: Option<Anchor>,
    /// The signer the file declared last (start or signer line), hex.
    signer: Option<String>,
}

fn seq_prefix(line: &str) -> Option<u64> {
    let rest = line.strip_prefix("{\"seq\":")?;
    let end = rest.find(|c: char| !c.is_ascii_digit())?;
    rest.get(..end)?.parse().ok()
}

/// Reads the tail of an existing regular file and checks it against the anchor.
fn read_tail(
    path: &Path,
    legacy: &ChainKey,
    anchor: Option<&Anchor>,
    accept_truncation: bool,
) -> Result<Tail, AuditError> {
    let fresh = |anchor: Option<&Anchor>| Tail {
        chain: Chain::after(anchor),
        needs_start: true,
        truncated: None,
        signer: None,
    };
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
    {
        Ok(file) => file,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(fresh(anchor)),
        Err(err) => return Err(io_error(path, &err)),
    };
    if !is_regular(&file) {
        return Ok(fresh(None));
    }
    let mut reader = std::io::BufReader::new(&file);
    let (mut first_seq, mut last, mut at_anchor) = (None, None::<String>, None::<String>);
    let mut signer = None;
    let (mut good_len, mut len) = (0u64, 0u64);
    let mut line = String::new();
    loop {
        line.clear();
        let n = reader
            .read_line(&mut line)
            .map_err(|e| io_error(path, &e))?;
        if n == 0 {
            break;
        }
        len += n as u64;
        if !line.ends_with('\n') {
            break;
        }
        good_len = len;
        let text = line.trim_end();
        if text.is_empty() {
            continue;
        }
        let seq = seq_prefix(text);
        if first_seq.is_none() {
            first_seq = seq;
        }
        if anchor.is_some_and(|a| Some(a.seq) == seq) {
            at_anchor = Some(text.to_owned());
        }
        if let Some(declared) = super::chain::declared_signer(text) {
            signer = Some(declared);
        }
        last = Some(text.to_owned());
    }
    if good_len < len {
        // A write torn by a crash: never acknowledged as durable.
        tracing::warn!(file = %path.display(), bytes = len - good_len,
            "the audit file ends in a partial line (a crash during a write); removing it");
        file.set_len(good_len).map_err(|e| io_error(path, &e))?;
    }
    let Some(last) = last else {
        return Ok(fresh(anchor));
    };
    let parsed = parse(&last).map_err(|reason| {
        AuditError(format!(
            "the last line of the audit file {} is damaged ({reason}); run `twilio-broker audit \
             verify` on it and move it aside",
            path.display()
        ))
    })?;
    let needs_start = if parsed.sha256_ok() {
        false
    } else if legacy_ok(legacy, &last) {
        true
    } else {
        return Err(AuditError(format!(
            "the last line of the audit file {} does not verify (modified, or written under \
             another master key); run `twilio-broker audit verify` on it and move it aside",
            path.display()
        )));
    };
    let mut tail = Tail {
        chain: Chain::new(parsed.seq + 1, parsed.hash),
        needs_start,
        truncated: None,
        signer,
    };
    if let Some(anchor) = anchor {
        let before_file = first_seq.is_some_and(|first| first > anchor.seq);
        let problem = if before_file {
            None
        } else if parsed.seq < anchor.seq {
            Some(format!(
                "the audit file {} ends at seq {}, but the state file anchors seq {}: {} lines \
                 were cut from its end",
                path.display(),
                parsed.seq,
                anchor.seq,
                anchor.seq - parsed.seq
            ))
        } else {
            let same = at_anchor
                .as_deref()
                .and_then(|l| parse(l).ok())
                .is_some_and(|l| Some(l.hash) == unhex(&anchor.hash));
            (!same).then(|| {
                format!(
                    "the audit file {} does not hold the anchored line seq {} (it was rewritten)",
                    path.display(),
                    anchor.seq
                )
            })
        };
        if let Some(problem) = problem {
            if !accept_truncation {
                return Err(AuditError(format!(
                    "{problem}. Refusing to start: keep the file for investigation; to continue \
                     anyway (the acceptance is recorded in the chain), restart with \
                     --accept-audit-truncation"
                )));
            }
            tracing::error!(%problem, "audit truncation accepted by the operator");
            tail.truncated = Some(anchor.clone());
        }
    }
    Ok(tail)
}

/// When the file's last declared signer is not this broker's (the master
/// key changed while it was stopped), hands the chain over: signed by the
/// old key when the keyring still holds it, else with the handover an
/// offline `rekey` left in the state file, else (a key changed with
/// neither) as a bare signer line, which verifies only given both public
/// keys.
fn continue_signer(
    chain: &mut Chain,
    out: &mut Vec<u8>,
    master: &crate::master_key::MasterKey,
    signer: &Signer,
    declared: Option<String>,
    pending: Option<super::chain::SignerRecord>,
) {
    let ours = signer.public();
    let Some(previous) = declared
        .as_deref()
        .and_then(super::chain::PublicKey::parse)
        .filter(|p| *p != ours)
    else {
        return;
    };
    if let Some(old) = master
        .ring()
        .map(Signer::derive)
        .find(|s| s.public() == previous)
    {
        chain.push_handover(out, &old, signer);
        return;
    }
    let record = pending
        .filter(|r| r.previous == previous.to_hex() && r.signer == ours.to_hex())
        .unwrap_or_else(|| {
            tracing::warn!(previous = %previous.to_hex(), signer = %ours.to_hex(),
                "the audit file was signed by a key this broker no longer holds and no handover \
                 was recorded; `audit verify` needs both public keys (--pubkey twice)");
            super::chain::SignerRecord::new(previous, ours, None)
        });
    chain.push_signer(out, &record);
}

fn legacy_ok(key: &ChainKey, line: &str) -> bool {
    super::chain::legacy_mac_ok(key, line)
}

impl FileSink {
    /// Opens (or creates) the file, continuing the chain at its end (or the
    /// anchored head for a new file), and starts its writer and syncer.
    pub fn open(
        path: &Path,
        master: &crate::master_key::MasterKey,
        state: Option<Arc<StateFile>>,
        options: FileOptions,
    ) -> Result<Self, AuditError> {
        let signer = Signer::derive(master);
        let legacy = ChainKey::derive(master);
        let anchor = state.as_ref().and_then(|s| s.anchor(STATE_NAME));
        let tail = read_tail(path, &legacy, anchor.as_ref(), options.accept_truncation)?;
        let file = Arc::new(open_append(path).map_err(|e| io_error(path, &e))?);
        let regular = is_regular(&file);
        let length = file.metadata().map(|m| m.len()).unwrap_or(0);
        // A pipe or device cannot be anchored: there is no tail to check.
        let state = state.filter(|_| regular);
        let mut chain = tail.chain;
        let mut preamble = Vec::new();
        if tail.needs_start {
            chain.push_start(&mut preamble, &signer);
        }
        if let Some(anchored) = &tail.truncated {
            chain.push_truncation(&mut preamble, anchored);
        }
        if !tail.needs_start {
            let pending = state.as_ref().and_then(|s| s.snapshot().audit_handover);
            continue_signer(
                &mut chain,
                &mut preamble,
                master,
                &signer,
                tail.signer,
                pending,
            );
        }
        let shared = Arc::new(Shared {
            path: path.to_path_buf(),
            options,
            queue: Mutex::new(Queue {
                batch: Batch::new(),
                gap: None,
                controls: Vec::new(),
                stopped: false,
            }),
            wake: Condvar::new(),
            sync: Mutex::new(SyncState {
                file: Some(Arc::clone(&file)),
                dirty: None,
                waiters: Vec::new(),
                flushes: Vec::new(),
                now: false,
                stopped: false,
            }),
            sync_wake: Condvar::new(),
        });
        {
            let mut writers = lock(&WRITERS);
            writers.retain(|w| w.strong_count() > 0);
            writers.push(Arc::downgrade(&shared));
        }
        let writer = Writer {
            shared: Arc::clone(&shared),
            file,
            regular,
            length,
            chain,
            signer,
            pending: preamble,
        };
        let syncer = Syncer {
            shared: Arc::clone(&shared),
            state,
            regular,
            anchored: anchor,
            last_anchor: Instant::now(),
        };
        let spawn = |name: &str| std::thread::Builder::new().name(name.to_owned());
        spawn("audit-writer")
            .spawn(move || writer.run())
            .map_err(|e| io_error(path, &e))?;
        spawn("audit-syncer")
            .spawn(move || syncer.run())
            .map_err(|e| io_error(path, &e))?;
        Ok(FileSink {
            name: format!("file:{}", path.display()),
            shared,
        })
    }

    /// A short name for logs and metrics.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Appends a serialised event (a JSON object) to the open batch.
    pub fn submit(&self, event: &[u8], event_no: u64, required: bool) -> Submitted {
        let mut queue = lock(&self.shared.queue);
        if queue.batch.ends.len() >= self.shared.options.queue.max(1) {
            if required {
                return Submitted::Full;
            }
            Gap::add(&mut queue.gap, event_no);
            return Submitted::Dropped;
        }
        let batch = &mut queue.batch;
        batch.buf.extend_from_slice(event);
        batch.ends.push((batch.buf.len(), event_no));
        let len = batch.ends.len();
        let answer = if required {
            Submitted::Wait(Arc::clone(&batch.outcome))
        } else {
            Submitted::Queued
        };
        drop(queue);
        // Under the daemon's runtime the writer is woken when a worker runs
        // out of work (see `on_worker_park`), so a batch collects every event
        // of a burst instead of one context switch per event; a long batch
        // wakes it at once. Elsewhere (no hook), the first event wakes it.
        if HOOKED.load(Ordering::Relaxed) {
            if len >= WAKE_BATCH {
                self.shared.wake.notify_one();
            } else {
                PENDING.store(true, Ordering::Release);
            }
        } else if len == 1 {
            self.shared.wake.notify_one();
        }
        answer
    }

    fn control(&self, control: Control) -> Arc<Outcome> {
        let outcome = Arc::new(Outcome::default());
        lock(&self.shared.queue)
            .controls
            .push((control, Arc::clone(&outcome)));
        self.shared.wake.notify_one();
        outcome
    }

    /// Signs a checkpoint, `fsync`s and anchors everything written so far.
    pub fn flush(&self) -> Arc<Outcome> {
        self.control(Control::Flush)
    }

    /// Reopens the path (log rotation); the new file continues the chain.
    pub fn reopen(&self) -> Arc<Outcome> {
        self.control(Control::Reopen)
    }

    /// Hands the chain over to `master`'s checkpoint key (a reloaded
    /// keyring): a checkpoint signed by the current key, then a signer line
    /// with its handover signature. Nothing when the key is the same.
    pub fn set_signer(&self, master: &crate::master_key::MasterKey) -> Arc<Outcome> {
        self.control(Control::Signer(Box::new(Signer::derive(master))))
    }
}

impl Drop for FileSink {
    fn drop(&mut self) {
        lock(&self.shared.queue).stopped = true;
        self.shared.wake.notify_one();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

struct Writer {
    shared: Arc<Shared>,
    file: Arc<std::fs::File>,
    regular: bool,
    /// The file's length after the last complete write (regular files).
    length: u64,
    chain: Chain,
    signer: Signer,
    /// Lines chained but not yet written (the start line, a failed retry).
    pending: Vec<u8>,
}

impl Writer {
    fn run(mut self) {
        loop {
            let (batch, gap, controls, stopped) = {
                let mut queue = lock(&self.shared.queue);
                if queue.batch.ends.is_empty()
                    && queue.gap.is_none()
                    && queue.controls.is_empty()
                    && !queue.stopped
                {
                    // With the park hook, a short tick covers an event whose
                    // wake-up raced with a park.
                    let tick = if HOOKED.load(Ordering::Relaxed) {
                        HOOKED_TICK
                    } else {
                        SYNC_INTERVAL
                    };
                    queue = self
                        .shared
                        .wake
                        .wait_timeout(queue, tick)
                        .map(|(guard, _)| guard)
                        .unwrap_or_else(|e| e.into_inner().0);
                }
                let batch = if queue.batch.ends.is_empty() {
                    None
                } else {
                    Some(std::mem::replace(&mut queue.batch, Batch::new()))
                };
                (
                    batch,
                    queue.gap.take(),
                    std::mem::take(&mut queue.controls),
                    queue.stopped,
                )
            };
            let flush = stopped || controls.iter().any(|(c, _)| matches!(c, Control::Flush));
            let written = self.write(batch, gap, flush);
            for (control, outcome) in controls {
                match control {
                    // A flush succeeds only if what it had to write was
                    // written (the health probe relies on it: a full disk
                    // must keep failing it until lines can be written).
                    Control::Flush => match &written {
                        Ok(()) => self.to_syncer(None, Some(outcome), true),
                        Err(reason) => outcome.set(Err(Arc::clone(reason))),
                    },
                    Control::Reopen => {
                        let result = self.reopen();
                        outcome.set(result);
                    }
                    Control::Signer(signer) => {
                        // A handover that cannot be written stays pending
                        // (written ahead of the next batch) and the caller
                        // learns why.
                        let handed_over = if signer.public() != self.signer.public() {
                            let mut out = std::mem::take(&mut self.pending);
                            self.chain.push_handover(&mut out, &self.signer, &signer);
                            self.signer = *signer;
                            self.pending = out;
                            self.write(None, None, true)
                        } else {
                            Ok(())
                        };
                        match handed_over {
                            Ok(()) => self.to_syncer(None, Some(outcome), true),
                            Err(reason) => outcome.set(Err(reason)),
                        }
                    }
                }
            }
            if stopped {
                let mut sync = lock(&self.shared.sync);
                sync.stopped = true;
                sync.now = true;
                self.shared.sync_wake.notify_one();
                return;
            }
        }
    }

    /// Chains and writes one batch (with any pending lines, a gap record and
    /// checkpoints), then hands its outcome on. Err: the write failed.
    fn write(
        &mut self,
        batch: Option<Batch>,
        gap: Option<Gap>,
        flush: bool,
    ) -> Result<(), Arc<str>> {
        let options = &self.shared.options;
        let saved = self.chain.clone();
        let kept = self.pending.len();
        let mut out = std::mem::take(&mut self.pending);
        if let Some(gap) = &gap {
            self.chain.push_gap(&mut out, gap);
        }
        if let Some(batch) = &batch {
            out.reserve(batch.buf.len() + batch.ends.len() * 100);
            let mut start = 0;
            for &(end, _) in &batch.ends {
                self.chain.push(&mut out, &batch.buf[start..end]);
                start = end;
                if self.chain.unsigned() >= options.checkpoint_events {
                    self.chain.push_checkpoint(&mut out, &self.signer);
                }
            }
        }
        if self.chain.unsigned() > 0
            && (flush || self.chain.since_checkpoint() >= options.checkpoint_interval)
        {
            self.chain.push_checkpoint(&mut out, &self.signer);
        }
        if out.is_empty() {
            return Ok(());
        }
        match (&*self.file).write_all(&out) {
            Ok(()) => {
                self.length += out.len() as u64;
                let head = self.chain.head();
                let waiter = batch.map(|b| b.outcome);
                let now = options.sync == SyncMode::Always;
                match waiter {
                    Some(outcome) if !now => {
                        outcome.set(Ok(()));
                        self.to_syncer(head, None, false);
                    }
                    other => self.to_syncer_waiting(head, other, now),
                }
                Ok(())
            }
            Err(err) => {
                // A partial write (a full disk) must not leave half a line
                // for the next batch to follow: cut the file back.
                if self.regular
                    && let Err(cut) = self.file.set_len(self.length)
                {
                    tracing::error!(%cut, "cannot remove a partial audit write");
                }
                // Nothing of this batch counts: the chain goes back, pending
                // lines are kept for the next attempt, dropped events become a gap.
                self.chain = saved;
                out.truncate(kept);
                self.pending = out;
                let mut requeue = gap;
                if let Some(batch) = &batch {
                    for &(_, no) in &batch.ends {
                        Gap::add(&mut requeue, no);
                    }
                }
                if let Some(gap) = requeue {
                    let mut queue = lock(&self.shared.queue);
                    let merged = queue.gap.get_or_insert(gap);
                    if *merged != gap {
                        merged.dropped += gap.dropped;
                        merged.first_event = merged.first_event.min(gap.first_event);
                        merged.last_event = merged.last_event.max(gap.last_event);
                    }
                }
                let reason: Arc<str> = io_error(&self.shared.path, &err).0.into();
                tracing::error!(%reason, "audit file write failed");
                if let Some(batch) = batch {
                    batch.outcome.set(Err(Arc::clone(&reason)));
                }
                Err(reason)
            }
        }
    }

    fn to_syncer(&self, head: Option<Anchor>, flush: Option<Arc<Outcome>>, now: bool) {
        let mut sync = lock(&self.shared.sync);
        if head.is_some() {
            sync.dirty = head;
        }
        if let Some(flush) = flush {
            sync.flushes.push(flush);
        }
        sync.now |= now;
        let wake = sync.now || !sync.flushes.is_empty();
        drop(sync);
        // In batch mode the syncer finds dirty data at its next tick: no
        // wake-up (a futex call) per batch.
        if wake {
            self.shared.sync_wake.notify_one();
        }
    }

    fn to_syncer_waiting(&self, head: Option<Anchor>, waiter: Option<Arc<Outcome>>, now: bool) {
        let mut sync = lock(&self.shared.sync);
        if head.is_some() {
            sync.dirty = head;
        }
        sync.waiters.extend(waiter);
        sync.now |= now;
        let wake = sync.now || !sync.waiters.is_empty();
        drop(sync);
        if wake {
            self.shared.sync_wake.notify_one();
        }
    }

    fn reopen(&mut self) -> Result<(), Arc<str>> {
        let path = self.shared.path.clone();
        if self.regular {
            self.file
                .sync_data()
                .map_err(|e| Arc::from(io_error(&path, &e).0))?;
        }
        let file = Arc::new(open_append(&path).map_err(|e| Arc::from(io_error(&path, &e).0))?);
        self.regular = is_regular(&file);
        self.length = file.metadata().map(|m| m.len()).unwrap_or(0);
        let empty = file.metadata().map(|m| m.len() == 0).unwrap_or(false);
        self.file = Arc::clone(&file);
        lock(&self.shared.sync).file = Some(file);
        if empty || !self.regular {
            let mut start = Vec::new();
            self.chain.push_start(&mut start, &self.signer);
            // Ahead of anything pending, which would otherwise head the new file.
            start.append(&mut self.pending);
            self.pending = start;
            let _ = self.write(None, None, false);
        }
        Ok(())
    }
}

struct Syncer {
    shared: Arc<Shared>,
    state: Option<Arc<StateFile>>,
    regular: bool,
    anchored: Option<Anchor>,
    last_anchor: Instant,
}

impl Syncer {
    fn run(mut self) {
        let mut last_sync = Instant::now();
        let mut synced: Option<Anchor> = None;
        loop {
            let (file, dirty, waiters, flushes, stopped) = {
                let mut sync = lock(&self.shared.sync);
                loop {
                    let due = sync.dirty.is_some() && last_sync.elapsed() >= SYNC_INTERVAL;
                    if sync.now || due || sync.stopped || !sync.flushes.is_empty() {
                        break;
                    }
                    let (guard, timeout) = self
                        .shared
                        .sync_wake
                        .wait_timeout(sync, SYNC_INTERVAL)
                        .unwrap_or_else(|e| e.into_inner());
                    sync = guard;
                    if timeout.timed_out() {
                        break;
                    }
                }
                sync.now = false;
                (
                    sync.file.clone(),
                    sync.dirty.take(),
                    std::mem::take(&mut sync.waiters),
                    std::mem::take(&mut sync.flushes),
                    sync.stopped,
                )
            };
            let mut result: Result<(), Arc<str>> = Ok(());
            if dirty.is_some() || !waiters.is_empty() || !flushes.is_empty() {
                if let (Some(file), true) = (&file, self.regular)
                    && let Err(err) = file.sync_data()
                {
                    let reason = io_error(&self.shared.path, &err).0;
                    tracing::error!(%reason, "audit file fsync failed");
                    result = Err(reason.into());
                }
                last_sync = Instant::now();
                if result.is_ok() && dirty.is_some() {
                    synced = dirty;
                }
            }
            for waiter in waiters {
                waiter.set(result.clone());
            }
            let must_anchor = !flushes.is_empty() || stopped;
            if must_anchor || self.last_anchor.elapsed() >= SYNC_INTERVAL {
                self.anchor(synced.as_ref());
            }
            for flush in flushes {
                flush.set(result.clone());
            }
            if stopped {
                return;
            }
        }
    }

    fn anchor(&mut self, head: Option<&Anchor>) {
        let (Some(state), Some(head)) = (&self.state, head) else {
            return;
        };
        if self.anchored.as_ref() == Some(head) {
            return;
        }
        match state.set_anchor(STATE_NAME, head.clone()) {
            Ok(()) => self.anchored = Some(head.clone()),
            Err(err) => tracing::error!(%err, "cannot anchor the audit chain in the state file"),
        }
        self.last_anchor = Instant::now();
    }
}
