//! systemd's notify protocol: `READY=1` once every listener is bound and the
//! store is open, `STOPPING=1` when a drain begins, and `WATCHDOG=1` at half
//! the interval systemd asks for (`WatchdogSec=`). Without `NOTIFY_SOCKET`
//! (not started by systemd) every call does nothing.

use std::time::Duration;

use sd_notify::NotifyState;

fn send(state: &[NotifyState<'_>]) {
    if let Err(err) = sd_notify::notify(state) {
        tracing::warn!(%err, "cannot notify the service manager (NOTIFY_SOCKET)");
    }
}

/// Listeners are bound and the store is open: the service is up.
pub fn ready() {
    send(&[NotifyState::Ready, NotifyState::Status("serving")]);
}

/// A drain has begun.
pub fn stopping() {
    send(&[
        NotifyState::Stopping,
        NotifyState::Status("draining in-flight calls"),
    ]);
}

/// Pings systemd's watchdog at half its interval while the runtime is
/// responsive, when `WatchdogSec=` is set. Returns the task, if any.
pub fn spawn_watchdog() -> Option<tokio::task::JoinHandle<()>> {
    let interval = sd_notify::watchdog_enabled()?;
    let period = (interval / 2).max(Duration::from_millis(100));
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        loop {
            tick.tick().await;
            send(&[NotifyState::Watchdog]);
        }
    }))
}
