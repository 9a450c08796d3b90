//! The audit suite: a sink takes well-formed events of any size and text,
//! from many threads, flushes, and (when the caller can read its output
//! back) delivers each event exactly once.

use std::collections::BTreeMap;

use super::{Fail, Report, ensure, run_id};
use crate::audit::Audit;

/// What usually breaks each case.
pub(super) const HINTS: &[(&str, &str)] = &[
    (
        "records a simple event",
        "`record` must accept any JSON object and return OK (C: TB_STATUS_OK) once it is durable",
    ),
    (
        "records an event with escapes and unicode",
        "pass the event bytes through unchanged (UTF-8, escaped quotes, \\u0000); do not re-encode",
    ),
    (
        "records a 64 KiB event",
        "do not cap events below 64 KiB; check buffer, line and message size limits",
    ),
    (
        "records from several threads at once",
        "`record` is called from many threads: guard shared state with a mutex, or use a thread-safe client",
    ),
    (
        "flush succeeds",
        "`flush` must return OK when every recorded event is durable",
    ),
    (
        "every recorded event arrives exactly once, unchanged",
        "write each event once, whole, one per line (no interleaving between threads), and sync before returning",
    ),
];

const THREADS: usize = 4;
const PER_THREAD: usize = 25;

/// Reads back what a sink delivered: one JSON event per item.
pub type Readback<'a> = &'a dyn Fn() -> Result<Vec<String>, String>;

/// Runs every audit case against `sink`. With `readback`, also checks that
/// every event the suite recorded arrived exactly once, unchanged.
///
/// The events are marked `"type": "plugin.conformance"`; a sink wired to a
/// real SIEM will deliver them there.
pub fn run(sink: &dyn Audit, readback: Option<Readback<'_>>) -> Report {
    let run = run_id();
    let mut report = Report::new("audit", HINTS);
    let mut sent: Vec<String> = Vec::new();
    let event = |n: usize, text: &str| {
        serde_json::json!({
            "type": "plugin.conformance",
            "marker": format!("{run}/{n}"),
            "text": text,
        })
        .to_string()
    };

    let simple = event(0, "hello");
    report.run("records a simple event", || {
        sink.record(&simple)?;
        Ok(())
    });
    sent.push(simple);

    let escapes = event(
        1,
        "quote \" backslash \\ newline \n tab \t ключ ✓ \u{1F600} \u{0}",
    );
    report.run("records an event with escapes and unicode", || {
        sink.record(&escapes)?;
        Ok(())
    });
    sent.push(escapes);

    let large = event(2, &"x".repeat(64 * 1024));
    report.run("records a 64 KiB event", || {
        sink.record(&large)?;
        Ok(())
    });
    sent.push(large);

    let concurrent: Vec<Vec<String>> = (0..THREADS)
        .map(|t| {
            (0..PER_THREAD)
                .map(|i| event(100 + t * PER_THREAD + i, "concurrent"))
                .collect()
        })
        .collect();
    report.run("records from several threads at once", || {
        std::thread::scope(|scope| {
            let workers: Vec<_> = concurrent
                .iter()
                .map(|events| scope.spawn(move || events.iter().try_for_each(|e| sink.record(e))))
                .collect();
            for worker in workers {
                match worker.join() {
                    Ok(result) => result?,
                    Err(_) => return Err(Fail::Failed("a recording thread panicked".into())),
                }
            }
            Ok(())
        })
    });
    sent.extend(concurrent.into_iter().flatten());

    report.run("flush succeeds", || {
        sink.flush()?;
        Ok(())
    });

    report.run(
        "every recorded event arrives exactly once, unchanged",
        || {
            let Some(readback) = readback else {
                return Err(Fail::Skipped(
                    "no way to read this sink's output back".into(),
                ));
            };
            let delivered =
                readback().map_err(|e| Fail::Failed(format!("readback failed: {e}")))?;
            let marker = |json: &str| -> Option<String> {
                let value: serde_json::Value = serde_json::from_str(json).ok()?;
                Some(value.get("marker")?.as_str()?.to_owned())
            };
            let mut seen: BTreeMap<String, (usize, serde_json::Value)> = BTreeMap::new();
            for item in &delivered {
                if let Some(m) = marker(item).filter(|m| m.starts_with(&format!("{run}/"))) {
                    let value = serde_json::from_str(item).unwrap_or_default();
                    seen.entry(m).or_insert((0, value)).0 += 1;
                }
            }
            for original in &sent {
                let Some(m) = marker(original) else { continue };
                let expected: serde_json::Value =
                    serde_json::from_str(original).unwrap_or_default();
                match seen.get(&m) {
                    None => return Err(Fail::Failed(format!("event {m} never arrived"))),
                    Some((count, _)) if *count > 1 => {
                        return Err(Fail::Failed(format!("event {m} arrived {count} times")));
                    }
                    Some((_, value)) => ensure!(*value == expected, "event {m} arrived changed"),
                }
            }
            Ok(())
        },
    );
    report
}
