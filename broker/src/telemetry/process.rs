//! Process metrics read from `/proc/self` at scrape time, under the names
//! every Prometheus client library uses (`process_*`), so stock dashboards
//! and alerts work unchanged.

use std::fmt::Write as _;

/// Appends the process families to `out` (nothing off Linux, or for a value
/// `/proc` does not give).
pub fn render(out: &mut String) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb = |field: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse::<f64>().ok())
    };
    family(
        out,
        "process_resident_memory_bytes",
        "Resident memory size in bytes.",
        kb("VmRSS:").map(|v| v * 1024.0),
    );
    family(
        out,
        "process_virtual_memory_bytes",
        "Virtual memory size in bytes.",
        kb("VmSize:").map(|v| v * 1024.0),
    );
    family(
        out,
        "process_threads",
        "Threads of the process.",
        kb("Threads:"),
    );
    let open = std::fs::read_dir("/proc/self/fd")
        .ok()
        // The directory handle reading it is one of them: not counted.
        .map(|dir| dir.count().saturating_sub(1) as f64);
    family(out, "process_open_fds", "Open file descriptors.", open);
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let max = limits
        .lines()
        .find_map(|l| l.strip_prefix("Max open files"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse::<f64>().ok());
    family(
        out,
        "process_max_fds",
        "Limit of open file descriptors (soft).",
        max,
    );
}

fn family(out: &mut String, name: &str, help: &str, value: Option<f64>) {
    if let Some(value) = value {
        let _ = write!(
            out,
            "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}\n"
        );
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn resident_memory_and_descriptors_are_read() {
        let mut out = String::new();
        super::render(&mut out);
        let value = |name: &str| {
            out.lines()
                .find_map(|l| l.strip_prefix(&format!("{name} ")))
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or_else(|| panic!("no {name} in {out}"))
        };
        assert!(value("process_resident_memory_bytes") > 1024.0 * 1024.0);
        let file = std::fs::File::open("/proc/self/status").expect("open");
        let open = value("process_open_fds");
        assert!(open >= 4.0, "{open}");
        drop(file);
        assert!(value("process_max_fds") >= open);
    }
}
