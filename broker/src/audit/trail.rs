//! Fan-out of events to sinks. The event is serialised once, on the
//! request's own thread; the built-in file takes it into its open batch
//! (`file_sink.rs`: dedicated writer and syncer threads); each plugin sink
//! has its own worker task and bounded queue.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};

use super::chain::Gap;
use super::file_sink::{FileSink, Outcome, Submitted};
use super::{AuditEvent, AuditSink};
use crate::error::Error;

/// How a sink is treated.
#[derive(Debug, Clone, Copy)]
pub struct SinkOptions {
    /// When true, a request fails (UNAVAILABLE) unless this sink records its
    /// event within `deadline`.
    pub required: bool,
    /// How long a request waits for a required sink.
    pub deadline: Duration,
    /// Queue length; a full queue drops events of a non-required sink (and
    /// a gap record says so in its chain).
    pub queue: usize,
}

impl Default for SinkOptions {
    fn default() -> Self {
        SinkOptions {
            required: true,
            deadline: Duration::from_secs(2),
            queue: 10_000,
        }
    }
}

type Ack = oneshot::Sender<Result<(), String>>;

/// A serialised event (a JSON object) and its trail-wide number.
type Serialized = (Arc<[u8]>, u64);

enum Job {
    Event(Serialized, Option<Ack>),
    Flush(Ack),
    Reopen(Ack),
}

struct SinkHandle {
    name: String,
    options: SinkOptions,
    tx: mpsc::Sender<Job>,
    dropped: AtomicU64,
    gap: Arc<std::sync::Mutex<Option<Gap>>>,
}

struct FileHandle {
    sink: FileSink,
    options: SinkOptions,
    dropped: AtomicU64,
}

/// Every configured sink.
#[derive(Default)]
pub struct AuditTrail {
    sinks: Vec<SinkHandle>,
    files: Vec<FileHandle>,
    next_event: AtomicU64,
    /// The health signal (`server.rs` watches it): false from the first
    /// event a required sink could not record until one is recorded again
    /// (or [`AuditTrail::probe`] succeeds). Always true without required sinks.
    recording: Recording,
    /// The operator console's feed of recent events (`recent.rs`); None
    /// while the console is off.
    tap: Option<super::Tap>,
}

/// A watch channel that starts true (a `Default` for the trail).
struct Recording(watch::Sender<bool>);

impl Default for Recording {
    fn default() -> Self {
        Recording(watch::Sender::new(true))
    }
}

impl Recording {
    /// Publishes `now`; the write lock is taken only on a change, so the
    /// request path pays a read.
    fn set(&self, now: bool) {
        if *self.0.borrow() != now {
            self.0
                .send_if_modified(|was| std::mem::replace(was, now) != now);
        }
    }
}

/// Most events a worker hands to its sink at once.
const MAX_BATCH: usize = 512;
/// How long an idle worker waits before asking its sink to flush.
const IDLE_FLUSH: Duration = Duration::from_millis(100);

/// RPCs that change the store: an intent event is recorded before they do.
pub const MUTATIONS: [&str; 3] = ["PutCredential", "DeleteCredential", "RotateCredential"];

fn unavailable(reason: &str) -> Error {
    metrics::counter!("twilio_broker_audit_failures_total").increment(1);
    tracing::error!(%reason, "required audit sink failed; refusing the request");
    Error::NotAudited {
        detail: reason.to_owned(),
    }
}

impl AuditTrail {
    /// No sinks: events are dropped (the audit log is off).
    pub fn disabled() -> Self {
        AuditTrail::default()
    }

    /// Adds a sink with its own worker task.
    pub fn add(&mut self, sink: Arc<dyn AuditSink>, options: SinkOptions) {
        let (tx, rx) = mpsc::channel(options.queue.max(1));
        let name = sink.name().to_owned();
        let gap = Arc::new(std::sync::Mutex::new(None));
        // The sink's drop counter exists from the start, at 0 (alerts).
        metrics::counter!("twilio_broker_audit_dropped_total", "sink" => name.clone()).increment(0);
        tokio::spawn(worker(sink, rx, Arc::clone(&gap)));
        self.sinks.push(SinkHandle {
            name,
            options,
            tx,
            dropped: AtomicU64::new(0),
            gap,
        });
    }

    /// Adds the built-in file (its threads are already running).
    pub fn add_file(&mut self, sink: FileSink, options: SinkOptions) {
        metrics::counter!("twilio_broker_audit_dropped_total", "sink" => sink.name().to_owned())
            .increment(0);
        self.files.push(FileHandle {
            sink,
            options,
            dropped: AtomicU64::new(0),
        });
    }

    /// Feeds every event from now on to `tap` too (the console's audit view).
    pub fn set_tap(&mut self, tap: super::Tap) {
        self.tap = Some(tap);
    }

    /// True when at least one sink is configured.
    pub fn is_enabled(&self) -> bool {
        !self.sinks.is_empty() || !self.files.is_empty()
    }

    /// For `PutCredential` and `DeleteCredential`: records an intent event
    /// (`phase: "intent"`, status `PENDING`) before the store changes, so a
    /// mutation that cannot be audited never happens. Other RPCs: nothing.
    pub async fn record_intent(&self, event: &AuditEvent) -> Result<(), Error> {
        if !self.is_enabled() || !MUTATIONS.contains(&event.rpc) {
            return Ok(());
        }
        let mut intent = event.clone();
        intent.phase = Some("intent");
        intent.status = "PENDING";
        self.record(intent).await
    }

    /// Hands `event` to every sink. Fails (UNAVAILABLE) when a required sink
    /// does not record it within its deadline; the outcome feeds the health
    /// signal ([`AuditTrail::recording`]).
    pub async fn record(&self, event: AuditEvent) -> Result<(), Error> {
        let result = self.record_everywhere(event).await;
        self.recording.set(result.is_ok());
        result
    }

    /// Whether every required sink recorded the last event: true, false
    /// while they fail. Health turns NOT_SERVING on false (`server.rs`).
    pub fn recording(&self) -> watch::Receiver<bool> {
        self.recording.0.subscribe()
    }

    /// Asks every required sink to flush (the file signs a checkpoint, syncs
    /// and anchors; a plugin checkpoints and flushes) without recording an
    /// event: how the health watcher learns that failing sinks recovered
    /// while no traffic comes (load balancers send none to a NOT_SERVING
    /// broker). Success sets the health signal back to true.
    pub async fn probe(&self) -> Result<(), String> {
        for file in self.files.iter().filter(|f| f.options.required) {
            match tokio::time::timeout(file.options.deadline, file.sink.flush().wait()).await {
                Ok(Ok(())) => {}
                Ok(Err(reason)) => {
                    return Err(format!("audit sink {} failed: {reason}", file.sink.name()));
                }
                Err(_) => return Err(format!("audit sink {} did not answer", file.sink.name())),
            }
        }
        for sink in self.sinks.iter().filter(|s| s.options.required) {
            let (ack, done) = oneshot::channel();
            let sent = tokio::time::timeout(sink.options.deadline, async {
                sink.tx.send(Job::Flush(ack)).await.ok()?;
                done.await.ok()
            })
            .await;
            match sent {
                Ok(Some(Ok(()))) => {}
                Ok(Some(Err(reason))) => {
                    return Err(format!("audit sink {} failed: {reason}", sink.name));
                }
                _ => return Err(format!("audit sink {} did not answer", sink.name)),
            }
        }
        self.recording.set(true);
        Ok(())
    }

    async fn record_everywhere(&self, event: AuditEvent) -> Result<(), Error> {
        let started = tokio::time::Instant::now();
        let json = serde_json::to_vec(&event)
            .map_err(|e| unavailable(&format!("the event did not serialise: {e}")))?;
        if let Some(tap) = &self.tap {
            tap.send(&json);
        }
        let number = self.next_event.fetch_add(1, Ordering::Relaxed);
        let mut waits: Vec<(&FileHandle, Arc<Outcome>)> = Vec::new();
        for file in &self.files {
            match file.sink.submit(&json, number, file.options.required) {
                Submitted::Wait(outcome) => waits.push((file, outcome)),
                Submitted::Queued => {}
                Submitted::Dropped => {
                    file.dropped.fetch_add(1, Ordering::Relaxed);
                    metrics::counter!("twilio_broker_audit_dropped_total", "sink" => file.sink.name().to_owned())
                        .increment(1);
                }
                Submitted::Full => {
                    return Err(unavailable(&format!(
                        "audit sink {} has {} events waiting",
                        file.sink.name(),
                        file.options.queue
                    )));
                }
            }
        }
        let mut plugin_waits = Vec::new();
        if !self.sinks.is_empty() {
            let shared: Serialized = (Arc::from(json), number);
            for sink in &self.sinks {
                if sink.options.required {
                    let (ack, done) = oneshot::channel();
                    let job = Job::Event(shared.clone(), Some(ack));
                    plugin_waits.push(async move {
                        let outcome = tokio::time::timeout(sink.options.deadline, async {
                            sink.tx
                                .send(job)
                                .await
                                .map_err(|_| "its worker stopped".to_owned())?;
                            done.await.map_err(|_| "its worker stopped".to_owned())?
                        })
                        .await;
                        match outcome {
                            Ok(Ok(())) => Ok(()),
                            Ok(Err(reason)) => {
                                Err(format!("audit sink {} failed: {reason}", sink.name))
                            }
                            Err(_) => Err(format!(
                                "audit sink {} did not record within {} ms",
                                sink.name,
                                sink.options.deadline.as_millis()
                            )),
                        }
                    });
                } else if sink.tx.try_send(Job::Event(shared.clone(), None)).is_err() {
                    sink.dropped.fetch_add(1, Ordering::Relaxed);
                    Gap::add(
                        &mut sink
                            .gap
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner),
                        number,
                    );
                    metrics::counter!("twilio_broker_audit_dropped_total", "sink" => sink.name.clone())
                        .increment(1);
                }
            }
        }
        for (file, outcome) in waits {
            let deadline = started + file.options.deadline;
            match tokio::time::timeout_at(deadline, outcome.wait()).await {
                Ok(Ok(())) => {}
                Ok(Err(reason)) => {
                    return Err(unavailable(&format!(
                        "audit sink {} failed: {reason}",
                        file.sink.name()
                    )));
                }
                Err(_) => {
                    return Err(unavailable(&format!(
                        "audit sink {} did not record within {} ms",
                        file.sink.name(),
                        file.options.deadline.as_millis()
                    )));
                }
            }
        }
        for result in futures::future::join_all(plugin_waits).await {
            if let Err(reason) = result {
                return Err(unavailable(&reason));
            }
        }
        Ok(())
    }

    /// Events dropped by non-required sinks, by sink name.
    pub fn dropped(&self) -> Vec<(String, u64)> {
        let files = self
            .files
            .iter()
            .map(|f| (f.sink.name().to_owned(), f.dropped.load(Ordering::Relaxed)));
        self.sinks
            .iter()
            .map(|s| (s.name.clone(), s.dropped.load(Ordering::Relaxed)))
            .chain(files)
            .collect()
    }

    /// Flushes every sink (shutdown): signs a checkpoint, syncs, anchors.
    pub async fn flush(&self) {
        for file in &self.files {
            self.control_file(file, file.sink.flush()).await;
        }
        self.control(Job::Flush).await;
    }

    /// Reopens every sink (SIGHUP).
    pub async fn reopen(&self) {
        for file in &self.files {
            self.control_file(file, file.sink.reopen()).await;
        }
        self.control(Job::Reopen).await;
    }

    /// Hands every chained file over to `master`'s checkpoint key (a
    /// reloaded keyring; see `chain.rs`). Plugin streams declare the new
    /// key in their next start line.
    pub async fn set_signer(&self, master: &crate::master_key::MasterKey) {
        for file in &self.files {
            self.control_file(file, file.sink.set_signer(master)).await;
        }
    }

    async fn control_file(&self, file: &FileHandle, outcome: Arc<Outcome>) {
        match tokio::time::timeout(file.options.deadline, outcome.wait()).await {
            Ok(Ok(())) => {}
            Ok(Err(reason)) => {
                tracing::error!(sink = %file.sink.name(), %reason, "audit sink control failed")
            }
            Err(_) => tracing::error!(sink = %file.sink.name(), "audit sink did not answer"),
        }
    }

    async fn control(&self, make: fn(Ack) -> Job) {
        for sink in &self.sinks {
            let (ack, done) = oneshot::channel();
            let sent = tokio::time::timeout(sink.options.deadline, async {
                sink.tx.send(make(ack)).await.ok()?;
                done.await.ok()
            })
            .await;
            match sent {
                Ok(Some(Ok(()))) => {}
                Ok(Some(Err(reason))) => {
                    tracing::error!(sink = %sink.name, %reason, "audit sink control failed")
                }
                _ => tracing::error!(sink = %sink.name, "audit sink did not answer"),
            }
        }
    }
}

async fn worker(
    sink: Arc<dyn AuditSink>,
    mut rx: mpsc::Receiver<Job>,
    gap: Arc<std::sync::Mutex<Option<Gap>>>,
) {
    let mut pending: Vec<(Serialized, Option<Ack>)> = Vec::new();
    loop {
        let first = match tokio::time::timeout(IDLE_FLUSH, rx.recv()).await {
            Ok(Some(job)) => job,
            Ok(None) => {
                let _ = sink.flush().await;
                return;
            }
            Err(_) => {
                if let Err(err) = sink.flush().await {
                    tracing::error!(sink = sink.name(), %err, "audit flush failed");
                }
                continue;
            }
        };
        let mut control = None;
        match first {
            Job::Event(event, ack) => pending.push((event, ack)),
            other => control = Some(other),
        }
        while control.is_none() && pending.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(Job::Event(event, ack)) => pending.push((event, ack)),
                Ok(other) => control = Some(other),
                Err(_) => break,
            }
        }
        let dropped = gap
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(dropped) = dropped
            && let Err(err) = sink.record_gap(dropped).await
        {
            tracing::error!(sink = sink.name(), %err, "audit sink failed to record a gap");
            let mut again = gap
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let merged = again.get_or_insert(dropped);
            if *merged != dropped {
                merged.dropped += dropped.dropped;
                merged.first_event = merged.first_event.min(dropped.first_event);
                merged.last_event = merged.last_event.max(dropped.last_event);
            }
        }
        if !pending.is_empty() {
            let batch: Vec<Arc<[u8]>> = pending.iter().map(|((e, _), _)| Arc::clone(e)).collect();
            let result = sink.record(&batch).await.map_err(|e| e.0);
            if let Err(reason) = &result {
                tracing::error!(sink = sink.name(), %reason, "audit sink failed to record");
                // Events nobody waits for would vanish silently: a gap says so.
                let mut lost = gap
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                for ((_, number), ack) in &pending {
                    if ack.is_none() {
                        Gap::add(&mut lost, *number);
                    }
                }
            }
            for (_, ack) in pending.drain(..) {
                if let Some(ack) = ack {
                    let _ = ack.send(result.clone());
                }
            }
        }
        match control {
            Some(Job::Flush(ack)) => {
                let _ = ack.send(sink.flush().await.map_err(|e| e.0));
            }
            Some(Job::Reopen(ack)) => {
                let _ = ack.send(sink.reopen().await.map_err(|e| e.0));
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::audit::AuditError;

    /// A slow sink that remembers what it got, gaps included.
    #[derive(Default)]
    struct Slow {
        events: Mutex<u64>,
        gaps: Mutex<Vec<Gap>>,
    }

    #[async_trait::async_trait]
    impl AuditSink for Slow {
        fn name(&self) -> &str {
            "slow"
        }
        async fn record(&self, batch: &[Arc<[u8]>]) -> Result<(), AuditError> {
            tokio::time::sleep(Duration::from_millis(20)).await;
            *self.events.lock().expect("events") += batch.len() as u64;
            Ok(())
        }
        async fn record_gap(&self, gap: Gap) -> Result<(), AuditError> {
            self.gaps.lock().expect("gaps").push(gap);
            Ok(())
        }
        async fn flush(&self) -> Result<(), AuditError> {
            Ok(())
        }
    }

    fn event() -> AuditEvent {
        AuditEvent {
            time: String::new(),
            request_id: String::new(),
            rpc: "ListCredentials",
            caller: "anonymous".into(),
            transport: "plaintext",
            peer: String::new(),
            decision: crate::audit::Decision::Allow,
            status: "OK",
            message: None,
            credential: None,
            grants: Vec::new(),
            identity: None,
            ttl_seconds: None,
            jti: None,
            expires_at: None,
            duration_us: 0,
            phase: None,
        }
    }

    #[tokio::test]
    async fn a_full_optional_queue_leaves_gap_records_that_account_for_every_drop() {
        let sink = Arc::new(Slow::default());
        let mut trail = AuditTrail::disabled();
        trail.add(
            Arc::clone(&sink) as Arc<dyn AuditSink>,
            SinkOptions {
                required: false,
                deadline: Duration::from_secs(1),
                queue: 2,
            },
        );
        for _ in 0..200 {
            trail.record(event()).await.expect("never fails");
        }
        let dropped = trail.dropped()[0].1;
        assert!(dropped > 0, "nothing was dropped");
        // One more event after the queue drains carries the last gap out.
        tokio::time::sleep(Duration::from_millis(200)).await;
        trail.record(event()).await.expect("never fails");
        trail.flush().await;
        let gaps = sink.gaps.lock().expect("gaps").clone();
        let in_gaps: u64 = gaps.iter().map(|g| g.dropped).sum();
        assert_eq!(in_gaps, dropped, "{gaps:?}");
        let recorded = *sink.events.lock().expect("events");
        assert_eq!(recorded + dropped, 201);
        assert!(
            gaps.iter()
                .all(|g| g.first_event <= g.last_event && g.last_event <= 200)
        );
    }

    #[tokio::test]
    async fn an_intent_is_recorded_only_for_mutations() {
        let sink = Arc::new(Slow::default());
        let mut trail = AuditTrail::disabled();
        trail.add(
            Arc::clone(&sink) as Arc<dyn AuditSink>,
            SinkOptions::default(),
        );
        trail.record_intent(&event()).await.expect("recorded");
        assert_eq!(*sink.events.lock().expect("events"), 0);
        let mut put = event();
        put.rpc = "PutCredential";
        trail.record_intent(&put).await.expect("recorded");
        assert_eq!(*sink.events.lock().expect("events"), 1);
    }

    /// A sink that fails while `failing` is set.
    #[derive(Default)]
    struct Flaky {
        failing: std::sync::atomic::AtomicBool,
    }

    #[async_trait::async_trait]
    impl AuditSink for Flaky {
        fn name(&self) -> &str {
            "flaky"
        }
        async fn record(&self, _batch: &[Arc<[u8]>]) -> Result<(), AuditError> {
            self.check()
        }
        async fn flush(&self) -> Result<(), AuditError> {
            self.check()
        }
    }

    impl Flaky {
        fn check(&self) -> Result<(), AuditError> {
            if self.failing.load(Ordering::Relaxed) {
                Err(AuditError("down on purpose (test)".into()))
            } else {
                Ok(())
            }
        }
    }

    #[tokio::test]
    async fn the_health_signal_follows_a_required_sink_down_and_back_up() {
        let sink = Arc::new(Flaky::default());
        let mut trail = AuditTrail::disabled();
        trail.add(
            Arc::clone(&sink) as Arc<dyn AuditSink>,
            SinkOptions::default(),
        );
        let signal = trail.recording();
        trail.record(event()).await.expect("recorded");
        assert!(*signal.borrow());
        sink.failing.store(true, Ordering::Relaxed);
        trail.record(event()).await.expect_err("not recorded");
        assert!(!*signal.borrow(), "a failed record must lower the signal");
        let still = trail.probe().await.expect_err("still failing");
        assert!(still.contains("down on purpose"), "{still}");
        assert!(!*signal.borrow());
        sink.failing.store(false, Ordering::Relaxed);
        trail.probe().await.expect("recovered");
        assert!(*signal.borrow(), "a successful probe must raise the signal");
    }
}
