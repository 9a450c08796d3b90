//! Fan-out of events to sinks, each behind its own worker and bounded queue.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

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
    /// Queue length; a full queue drops events of a non-required sink.
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

enum Job {
    Event(Arc<AuditEvent>, Option<Ack>),
    Flush(Ack),
    Reopen(Ack),
}

struct SinkHandle {
    name: String,
    options: SinkOptions,
    tx: mpsc::Sender<Job>,
    dropped: AtomicU64,
}

/// Every configured sink.
#[derive(Default)]
pub struct AuditTrail {
    sinks: Vec<SinkHandle>,
}

/// Most events a worker hands to its sink at once.
const MAX_BATCH: usize = 512;
/// How long an idle worker waits before asking its sink to flush.
const IDLE_FLUSH: Duration = Duration::from_millis(100);

impl AuditTrail {
    /// No sinks: events are dropped (the audit log is off).
    pub fn disabled() -> Self {
        AuditTrail::default()
    }

    /// Adds a sink with its own worker task.
    pub fn add(&mut self, sink: Arc<dyn AuditSink>, options: SinkOptions) {
        let (tx, rx) = mpsc::channel(options.queue.max(1));
        let name = sink.name().to_owned();
        tokio::spawn(worker(sink, rx));
        self.sinks.push(SinkHandle {
            name,
            options,
            tx,
            dropped: AtomicU64::new(0),
        });
    }

    /// True when at least one sink is configured.
    pub fn is_enabled(&self) -> bool {
        !self.sinks.is_empty()
    }

    /// Hands `event` to every sink. Fails (UNAVAILABLE) when a required sink
    /// does not record it within its deadline.
    pub async fn record(&self, event: AuditEvent) -> Result<(), Error> {
        let event = Arc::new(event);
        let mut waits = Vec::new();
        for sink in &self.sinks {
            if sink.options.required {
                let (ack, done) = oneshot::channel();
                let job = Job::Event(Arc::clone(&event), Some(ack));
                waits.push(async move {
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
            } else if sink
                .tx
                .try_send(Job::Event(Arc::clone(&event), None))
                .is_err()
            {
                sink.dropped.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("twilio_broker_audit_dropped_total", "sink" => sink.name.clone())
                    .increment(1);
            }
        }
        for result in futures::future::join_all(waits).await {
            if let Err(reason) = result {
                metrics::counter!("twilio_broker_audit_failures_total").increment(1);
                tracing::error!(%reason, "required audit sink failed; refusing the request");
                return Err(Error::Unavailable(format!(
                    "the request was refused because it could not be audited ({reason})"
                )));
            }
        }
        Ok(())
    }

    /// Events dropped by non-required sinks, by sink name.
    pub fn dropped(&self) -> Vec<(String, u64)> {
        self.sinks
            .iter()
            .map(|s| (s.name.clone(), s.dropped.load(Ordering::Relaxed)))
            .collect()
    }

    /// Flushes every sink (shutdown).
    pub async fn flush(&self) {
        self.control(Job::Flush).await;
    }

    /// Reopens every sink (SIGHUP).
    pub async fn reopen(&self) {
        self.control(Job::Reopen).await;
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

async fn worker(sink: Arc<dyn AuditSink>, mut rx: mpsc::Receiver<Job>) {
    let mut pending: Vec<(Arc<AuditEvent>, Option<Ack>)> = Vec::new();
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
        if !pending.is_empty() {
            let batch: Vec<Arc<AuditEvent>> = pending.iter().map(|(e, _)| Arc::clone(e)).collect();
            let result = sink.record(&batch).await.map_err(|e| e.0);
            if let Err(reason) = &result {
                tracing::error!(sink = sink.name(), %reason, "audit sink failed to record");
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
