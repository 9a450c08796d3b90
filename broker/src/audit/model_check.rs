//! Model checking of the audit fan-out and its acknowledgements with
//! `shuttle` (issue 9).
//!
//! The real trail (`trail.rs`) uses `tokio::sync::mpsc` and `oneshot`,
//! which shuttle cannot look inside, so this is a small test-only model of
//! the same protocol: per sink a bounded queue and one worker; a required
//! sink gets the event with an ack and the recorder waits for it; a
//! non-required sink gets it by `try_send`, and a full queue counts a drop;
//! the worker takes one job, drains up to a batch more without waiting,
//! writes the batch, then acks each event with the batch's result; when
//! every sender is gone it writes what is left and stops. Checked over many
//! interleavings: no lost ack or wake-up (a deadlock is reported), an
//! acknowledged event is already written, nothing accepted is lost, and
//! written + dropped = sent for a non-required sink.

use std::collections::VecDeque;

use shuttle::sync::{Arc, Condvar, Mutex};
use shuttle::thread;

const BATCH: usize = 2;
const ITERATIONS: usize = 3_000;

/// `tokio::sync::oneshot`: one value; the receiver errs once the sender is gone.
#[derive(Default)]
struct Oneshot {
    state: Mutex<(Option<Result<(), ()>>, bool)>,
    ready: Condvar,
}

impl Oneshot {
    fn send(&self, result: Result<(), ()>) {
        let mut state = self.state.lock().expect("oneshot");
        state.0 = Some(result);
        state.1 = true;
        self.ready.notify_all();
    }

    fn recv(&self) -> Result<(), ()> {
        let mut state = self.state.lock().expect("oneshot");
        loop {
            if let Some(result) = state.0 {
                return result;
            }
            if state.1 {
                return Err(());
            }
            state = self.ready.wait(state).expect("oneshot");
        }
    }
}

type Job = (u32, Option<Arc<Oneshot>>);

/// `tokio::sync::mpsc` with a capacity.
struct Queue {
    state: Mutex<(VecDeque<Job>, usize)>,
    changed: Condvar,
    capacity: usize,
}

impl Queue {
    fn new(capacity: usize, senders: usize) -> Arc<Self> {
        Arc::new(Queue {
            state: Mutex::new((VecDeque::new(), senders)),
            changed: Condvar::new(),
            capacity,
        })
    }

    fn send(&self, job: Job) {
        let mut state = self.state.lock().expect("queue");
        while state.0.len() >= self.capacity {
            state = self.changed.wait(state).expect("queue");
        }
        state.0.push_back(job);
        self.changed.notify_all();
    }

    fn try_send(&self, job: Job) -> bool {
        let mut state = self.state.lock().expect("queue");
        if state.0.len() >= self.capacity {
            return false;
        }
        state.0.push_back(job);
        self.changed.notify_all();
        true
    }

    fn sender_gone(&self) {
        let mut state = self.state.lock().expect("queue");
        state.1 -= 1;
        self.changed.notify_all();
    }

    /// `None` once empty and every sender is gone.
    fn recv(&self) -> Option<Job> {
        let mut state = self.state.lock().expect("queue");
        loop {
            if let Some(job) = state.0.pop_front() {
                self.changed.notify_all();
                return Some(job);
            }
            if state.1 == 0 {
                return None;
            }
            state = self.changed.wait(state).expect("queue");
        }
    }

    fn try_recv(&self) -> Option<Job> {
        let mut state = self.state.lock().expect("queue");
        let job = state.0.pop_front();
        self.changed.notify_all();
        job
    }
}

/// The sink: what it wrote, and whether it fails.
#[derive(Default)]
struct Sink {
    written: Mutex<Vec<u32>>,
    fails: bool,
}

fn worker(queue: Arc<Queue>, sink: Arc<Sink>) {
    while let Some(first) = queue.recv() {
        let mut pending = vec![first];
        while pending.len() < BATCH {
            match queue.try_recv() {
                Some(job) => pending.push(job),
                None => break,
            }
        }
        let result = if sink.fails {
            Err(())
        } else {
            sink.written
                .lock()
                .expect("sink")
                .extend(pending.iter().map(|(event, _)| *event));
            Ok(())
        };
        for (_, ack) in pending {
            if let Some(ack) = ack {
                ack.send(result);
            }
        }
    }
}

/// `AuditTrail::record` for a required sink: send with an ack, wait for it.
fn record_required(queue: &Queue, event: u32) -> Result<(), ()> {
    let ack = Arc::new(Oneshot::default());
    queue.send((event, Some(Arc::clone(&ack))));
    ack.recv()
}

#[test]
fn required_events_are_written_before_their_ack_and_none_is_lost() {
    shuttle::check_random(
        || {
            let queue = Queue::new(1, 2);
            let sink = Arc::new(Sink::default());
            let worker = {
                let (queue, sink) = (Arc::clone(&queue), Arc::clone(&sink));
                thread::spawn(move || worker(queue, sink))
            };
            let recorders: Vec<_> = (0..2u32)
                .map(|r| {
                    let (queue, sink) = (Arc::clone(&queue), Arc::clone(&sink));
                    thread::spawn(move || {
                        for i in 0..2 {
                            let event = r * 10 + i;
                            assert_eq!(record_required(&queue, event), Ok(()));
                            assert!(
                                sink.written.lock().expect("sink").contains(&event),
                                "acknowledged before written"
                            );
                        }
                        queue.sender_gone();
                    })
                })
                .collect();
            for recorder in recorders {
                recorder.join().expect("recorder");
            }
            worker.join().expect("worker");
            let mut written = sink.written.lock().expect("sink").clone();
            written.sort_unstable();
            assert_eq!(written, vec![0, 1, 10, 11]);
        },
        ITERATIONS,
    );
}

#[test]
fn a_failing_sink_answers_every_recorder_with_an_error() {
    shuttle::check_random(
        || {
            let queue = Queue::new(2, 3);
            let sink = Arc::new(Sink {
                fails: true,
                ..Sink::default()
            });
            let worker = {
                let (queue, sink) = (Arc::clone(&queue), Arc::clone(&sink));
                thread::spawn(move || worker(queue, sink))
            };
            let recorders: Vec<_> = (0..3u32)
                .map(|event| {
                    let queue = Arc::clone(&queue);
                    thread::spawn(move || {
                        let result = record_required(&queue, event);
                        queue.sender_gone();
                        result
                    })
                })
                .collect();
            for recorder in recorders {
                assert_eq!(recorder.join().expect("recorder"), Err(()));
            }
            worker.join().expect("worker");
        },
        ITERATIONS,
    );
}

#[test]
fn a_non_required_sink_never_blocks_and_counts_every_drop() {
    shuttle::check_random(
        || {
            let queue = Queue::new(1, 2);
            let sink = Arc::new(Sink::default());
            let worker = {
                let (queue, sink) = (Arc::clone(&queue), Arc::clone(&sink));
                thread::spawn(move || worker(queue, sink))
            };
            let recorders: Vec<_> = (0..2u32)
                .map(|r| {
                    let queue = Arc::clone(&queue);
                    thread::spawn(move || {
                        let dropped = (0..3)
                            .filter(|i| !queue.try_send((r * 10 + i, None)))
                            .count();
                        queue.sender_gone();
                        dropped
                    })
                })
                .collect();
            let dropped: usize = recorders
                .into_iter()
                .map(|r| r.join().expect("recorder"))
                .sum();
            worker.join().expect("worker");
            let written = sink.written.lock().expect("sink").len();
            assert_eq!(written + dropped, 6, "{written} written, {dropped} dropped");
        },
        ITERATIONS,
    );
}

/// The built-in file's protocol (`file_sink.rs`), modelled step for step:
/// a recorder appends its event to the open batch under the queue lock and
/// holds that batch's shared outcome; the writer swaps the open batch for a
/// fresh one, writes it, then either sets the outcome (`sync = "batch"`) or
/// hands it to the syncer, which makes the written lines durable and then
/// sets it (`sync = "always"`). Checked over many interleavings: no lost
/// wake-up (deadlock), an acknowledged event is written (and durable with
/// `always`), each recorder's events are written in its order, and nothing
/// acknowledged is lost.
mod file_writer {
    use shuttle::sync::{Arc, Condvar, Mutex};
    use shuttle::thread;

    const ITERATIONS: usize = 3_000;

    /// `file_sink::Outcome`: set once, shared by a batch's waiters.
    #[derive(Default)]
    struct Outcome {
        result: Mutex<Option<bool>>,
        ready: Condvar,
    }

    impl Outcome {
        fn set(&self, ok: bool) {
            *self.result.lock().expect("outcome") = Some(ok);
            self.ready.notify_all();
        }

        fn wait(&self) -> bool {
            let mut result = self.result.lock().expect("outcome");
            loop {
                if let Some(ok) = *result {
                    return ok;
                }
                result = self.ready.wait(result).expect("outcome");
            }
        }
    }

    struct Queue {
        batch: Vec<u32>,
        outcome: std::sync::Arc<Outcome>,
        stopped: bool,
    }

    #[derive(Default)]
    struct Disk {
        written: Vec<u32>,
        durable: Vec<u32>,
    }

    struct Sync {
        waiters: Vec<std::sync::Arc<Outcome>>,
        stopped: bool,
    }

    struct Shared {
        queue: Mutex<Queue>,
        wake: Condvar,
        disk: Mutex<Disk>,
        sync: Mutex<Sync>,
        sync_wake: Condvar,
        always: bool,
    }

    fn record(shared: &Shared, event: u32) -> bool {
        let outcome = {
            let mut queue = shared.queue.lock().expect("queue");
            queue.batch.push(event);
            let first = queue.batch.len() == 1;
            let outcome = std::sync::Arc::clone(&queue.outcome);
            drop(queue);
            if first {
                shared.wake.notify_one();
            }
            outcome
        };
        outcome.wait()
    }

    fn writer(shared: &Shared) {
        loop {
            let (batch, outcome, stopped) = {
                let mut queue = shared.queue.lock().expect("queue");
                while queue.batch.is_empty() && !queue.stopped {
                    queue = shared.wake.wait(queue).expect("queue");
                }
                let batch = std::mem::take(&mut queue.batch);
                let outcome =
                    std::mem::replace(&mut queue.outcome, std::sync::Arc::new(Outcome::default()));
                (batch, outcome, queue.stopped && queue.batch.is_empty())
            };
            if !batch.is_empty() {
                shared.disk.lock().expect("disk").written.extend(&batch);
                if shared.always {
                    shared.sync.lock().expect("sync").waiters.push(outcome);
                    shared.sync_wake.notify_one();
                } else {
                    outcome.set(true);
                }
            }
            if stopped {
                shared.sync.lock().expect("sync").stopped = true;
                shared.sync_wake.notify_one();
                return;
            }
        }
    }

    fn syncer(shared: &Shared) {
        loop {
            let (waiters, stopped) = {
                let mut sync = shared.sync.lock().expect("sync");
                while sync.waiters.is_empty() && !sync.stopped {
                    sync = shared.sync_wake.wait(sync).expect("sync");
                }
                (std::mem::take(&mut sync.waiters), sync.stopped)
            };
            {
                let mut disk = shared.disk.lock().expect("disk");
                let written = disk.written.clone();
                disk.durable = written;
            }
            for waiter in waiters {
                waiter.set(true);
            }
            if stopped {
                return;
            }
        }
    }

    fn run(always: bool) {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue {
                batch: Vec::new(),
                outcome: std::sync::Arc::new(Outcome::default()),
                stopped: false,
            }),
            wake: Condvar::new(),
            disk: Mutex::new(Disk::default()),
            sync: Mutex::new(Sync {
                waiters: Vec::new(),
                stopped: false,
            }),
            sync_wake: Condvar::new(),
            always,
        });
        let writer_thread = {
            let shared = Arc::clone(&shared);
            thread::spawn(move || writer(&shared))
        };
        let syncer_thread = {
            let shared = Arc::clone(&shared);
            thread::spawn(move || syncer(&shared))
        };
        let recorders: Vec<_> = (0..2u32)
            .map(|r| {
                let shared = Arc::clone(&shared);
                thread::spawn(move || {
                    for i in 0..2 {
                        let event = r * 10 + i;
                        assert!(record(&shared, event));
                        let disk = shared.disk.lock().expect("disk");
                        assert!(disk.written.contains(&event), "acknowledged before written");
                        if always {
                            assert!(disk.durable.contains(&event), "acknowledged before fsync");
                        }
                    }
                })
            })
            .collect();
        for recorder in recorders {
            recorder.join().expect("recorder");
        }
        shared.queue.lock().expect("queue").stopped = true;
        shared.wake.notify_one();
        writer_thread.join().expect("writer");
        syncer_thread.join().expect("syncer");
        let written = shared.disk.lock().expect("disk").written.clone();
        for r in 0..2u32 {
            let mine: Vec<u32> = written.iter().copied().filter(|e| e / 10 == r).collect();
            assert_eq!(
                mine,
                vec![r * 10, r * 10 + 1],
                "lost or reordered: {written:?}"
            );
        }
    }

    #[test]
    fn batch_mode_acks_only_written_events_in_order_and_loses_none() {
        shuttle::check_random(|| run(false), ITERATIONS);
    }

    #[test]
    fn always_mode_acks_only_durable_events_in_order_and_loses_none() {
        shuttle::check_random(|| run(true), ITERATIONS);
    }
}
