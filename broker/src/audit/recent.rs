//! The most recent audit events, for the operator console's audit view and
//! its live stream: a [`Tap`] the trail sends each serialised event into
//! (one non-blocking broadcast send of the bytes it already serialised,
//! only while the console is on), and [`Recent`], a bounded ring a task of
//! its own fills from the tap, off the request path.
//!
//! **Invariant:** the request path never waits here: the send does not
//! block, a slow reader loses events (lagged) rather than slowing anyone.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::broadcast;

/// Events a live reader may fall behind by before it loses some.
const TAP_CAPACITY: usize = 1024;

/// The sending side the trail holds.
#[derive(Clone)]
pub struct Tap(broadcast::Sender<Arc<[u8]>>);

impl Tap {
    /// A tap and the receiver the ring reads (more with `resubscribe`).
    pub fn new() -> (Tap, broadcast::Receiver<Arc<[u8]>>) {
        let (tx, rx) = broadcast::channel(TAP_CAPACITY);
        (Tap(tx), rx)
    }

    /// Offers one serialised event to the readers; never waits.
    pub fn send(&self, line: &[u8]) {
        let _ = self.0.send(Arc::from(line));
    }
}

/// The last events, newest last, bounded.
pub struct Recent {
    ring: Mutex<VecDeque<Arc<[u8]>>>,
    capacity: usize,
    /// For live readers: each subscribes from here.
    live: broadcast::Receiver<Arc<[u8]>>,
}

impl Recent {
    /// Keeps the last `capacity` events of `rx`, filled by a spawned task
    /// until the tap is dropped.
    pub fn spawn(rx: broadcast::Receiver<Arc<[u8]>>, capacity: usize) -> Arc<Recent> {
        let recent = Arc::new(Recent {
            ring: Mutex::new(VecDeque::with_capacity(capacity)),
            capacity,
            live: rx.resubscribe(),
        });
        let filling = Arc::clone(&recent);
        tokio::spawn(async move {
            let mut rx = rx;
            loop {
                match rx.recv().await {
                    Ok(line) => filling.push(line),
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        });
        recent
    }

    fn push(&self, line: Arc<[u8]>) {
        let mut ring = self.ring.lock().unwrap_or_else(PoisonError::into_inner);
        if ring.len() == self.capacity {
            ring.pop_front();
        }
        ring.push_back(line);
    }

    /// The kept events, oldest first.
    pub fn snapshot(&self) -> Vec<Arc<[u8]>> {
        let ring = self.ring.lock().unwrap_or_else(PoisonError::into_inner);
        ring.iter().cloned().collect()
    }

    /// A live reader of the events that follow.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<[u8]>> {
        self.live.resubscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_ring_keeps_the_last_events_and_readers_see_new_ones() {
        let (tap, rx) = Tap::new();
        let recent = Recent::spawn(rx, 3);
        let mut live = recent.subscribe();
        for n in 0..5u8 {
            tap.send(&[n]);
        }
        for n in 0..5u8 {
            assert_eq!(&*live.recv().await.expect("live"), &[n]);
        }
        // The filling task catches up.
        for _ in 0..100 {
            if recent.snapshot().len() == 3 && *recent.snapshot()[0] == [2] {
                break;
            }
            tokio::task::yield_now().await;
        }
        let kept: Vec<u8> = recent.snapshot().iter().map(|l| l[0]).collect();
        assert_eq!(kept, [2, 3, 4]);
    }
}
