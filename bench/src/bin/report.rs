//! Turns the bench's JSON lines into markdown tables (each setup and RPC as
//! a ratio to the ceiling at the same load, the generator's CPU beside it)
//! and an SVG chart.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use clap::Parser;
use twilio_broker_bench::chart::{Panel, Series, svg};

#[derive(Parser)]
struct Args {
    /// The JSON lines written by scripts/bench.
    results: std::path::PathBuf,
    /// Where to write the SVG chart.
    #[arg(long)]
    chart: std::path::PathBuf,
}

const SETUPS: [&str; 5] = ["ceiling", "prod-batch", "prod-always", "policy-only", "dev"];

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let text = std::fs::read_to_string(&args.results)?;
    let rows: Vec<serde_json::Value> = text
        .lines()
        .filter(|l| l.trim_start().starts_with('{'))
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    // (setup, rpc) -> inflight -> row
    let mut by: BTreeMap<(String, String), BTreeMap<u64, &serde_json::Value>> = BTreeMap::new();
    for row in rows
        .iter()
        .filter(|r| r.get("inflight").is_some() && r.get("stage").is_none())
    {
        let key = (
            row["setup"].as_str().unwrap_or("").to_owned(),
            row["rpc"].as_str().unwrap_or("").to_owned(),
        );
        by.entry(key)
            .or_default()
            .insert(row["inflight"].as_u64().unwrap_or(0), row);
    }
    let mut keys: Vec<&(String, String)> = by.keys().collect();
    keys.sort_by_key(|(setup, rpc)| {
        (
            SETUPS
                .iter()
                .position(|s| s == setup)
                .unwrap_or(SETUPS.len()),
            rpc.clone(),
        )
    });
    let ceiling = |rpc: &str, inflight: u64| -> Option<f64> {
        by.get(&("ceiling".to_owned(), rpc.to_owned()))
            .and_then(|points| points.get(&inflight))
            .and_then(|row| row["rps"].as_f64())
            .filter(|rps| *rps > 0.0)
    };
    let inflights: Vec<u64> = {
        let mut all: Vec<u64> = by.values().flat_map(|p| p.keys().copied()).collect();
        all.sort_unstable();
        all.dedup();
        all
    };

    // The ratio table: one row per setup and RPC.
    let mut table = String::from("| setup | RPC |");
    for n in &inflights {
        let _ = write!(table, " {n} in flight |");
    }
    table.push_str(" mean µs at 1 |\n|---|---|");
    for _ in &inflights {
        table.push_str("---|");
    }
    table.push_str("---|\n");
    for key in &keys {
        let (setup, rpc) = key;
        let _ = write!(table, "| {setup} | {rpc} |");
        for n in &inflights {
            let cell = by[*key]
                .get(n)
                .and_then(|row| Some(row["rps"].as_f64()? / ceiling(rpc, *n)?))
                .map(|r| format!(" {r:.2} |"))
                .unwrap_or_else(|| " - |".into());
            table.push_str(&cell);
        }
        let mean = by[*key]
            .get(&1)
            .and_then(|row| row["mean_us"].as_f64())
            .map(|m| format!(" {m:.0} |"))
            .unwrap_or_else(|| " - |".into());
        table.push_str(&mean);
        table.push('\n');
    }
    println!("Throughput as a ratio to the ceiling (same RPC, same load):\n\n{table}");

    // The same per CPU-second the server actually got: on a shared machine
    // the server under test does not always get its whole core.
    let per_cpu = |row: &serde_json::Value| -> Option<f64> {
        let cpu = row["server_cpu_pct"].as_f64()? / 100.0;
        (cpu > 0.0).then(|| row["rps"].as_f64().unwrap_or(0.0) / cpu)
    };
    let ceiling_per_cpu = |rpc: &str, inflight: u64| -> Option<f64> {
        by.get(&("ceiling".to_owned(), rpc.to_owned()))
            .and_then(|points| points.get(&inflight))
            .and_then(|row| per_cpu(row))
    };
    let mut efficiency = String::from("| setup | RPC |");
    for n in &inflights {
        let _ = write!(efficiency, " {n} in flight |");
    }
    efficiency.push_str("\n|---|---|");
    for _ in &inflights {
        efficiency.push_str("---|");
    }
    efficiency.push('\n');
    for key in &keys {
        let (setup, rpc) = key;
        let _ = write!(efficiency, "| {setup} | {rpc} |");
        for n in &inflights {
            let cell = by[*key]
                .get(n)
                .and_then(|row| Some(per_cpu(row)? / ceiling_per_cpu(rpc, *n)?))
                .map(|r| format!(" {r:.2} |"))
                .unwrap_or_else(|| " - |".into());
            efficiency.push_str(&cell);
        }
        efficiency.push('\n');
    }
    println!("Requests per CPU-second of the server, as a ratio to the ceiling's:\n\n{efficiency}");

    if let Some(stages) = stage_table(&rows) {
        println!("{stages}");
    }

    // Every point in detail.
    let mut detail = String::from(
        "| setup | RPC | in flight | req/s | vs ceiling | req per server CPU-s | mean µs | reply bytes | server CPU % | generator CPU % (cores) | failed |\n|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for key in &keys {
        let (setup, rpc) = key;
        for (n, row) in &by[*key] {
            let ratio = row["rps"]
                .as_f64()
                .zip(ceiling(rpc, *n))
                .map(|(a, b)| format!("{:.2}", a / b))
                .unwrap_or_else(|| "-".into());
            let _ = writeln!(
                detail,
                "| {setup} | {rpc} | {n} | {:.0} | {ratio} | {:.0} | {:.0} | {} | {} | {} ({}) | {} |",
                row["rps"].as_f64().unwrap_or(0.0),
                per_cpu(row).unwrap_or(0.0),
                row["mean_us"].as_f64().unwrap_or(0.0),
                row["reply_bytes"],
                row["server_cpu_pct"],
                row["generator_cpu_pct"],
                row["generator_cores"],
                row["failed"],
            );
        }
    }
    println!("{detail}");

    let series = |value: &dyn Fn(&str, u64, &serde_json::Value) -> f64| -> Vec<Series> {
        keys.iter()
            .map(|key| Series {
                name: format!("{} {}", key.0, key.1),
                points: by[*key]
                    .iter()
                    .map(|(n, row)| (n.to_string(), value(&key.1, *n, row)))
                    .collect(),
            })
            .collect()
    };
    let chart = svg(&[
        Panel {
            title: "Throughput vs the do-nothing server".into(),
            unit: "ratio".into(),
            series: series(&|rpc, n, row| {
                row["rps"].as_f64().unwrap_or(0.0) / ceiling(rpc, n).unwrap_or(f64::INFINITY)
            }),
        },
        Panel {
            title: "Mean latency".into(),
            unit: "ms".into(),
            series: series(&|_, _, row| row["mean_us"].as_f64().unwrap_or(0.0) / 1000.0),
        },
    ]);
    std::fs::write(&args.chart, chart)?;
    Ok(())
}

/// The ratio runs by stored credentials (rows with a `stage`): prod-batch
/// against the ceiling measured beside it, per RPC and load, one column
/// per stage and the change from the first stage to the last (issue 20:
/// within 5%). `None` without such rows.
fn stage_table(rows: &[serde_json::Value]) -> Option<String> {
    // (rpc, inflight) -> stage -> (ceiling rps, prod-batch rps)
    let mut by: BTreeMap<(String, u64), BTreeMap<u64, (f64, f64)>> = BTreeMap::new();
    for row in rows {
        let (Some(stage), Some(n)) = (row["stage"].as_u64(), row["inflight"].as_u64()) else {
            continue;
        };
        let rps = row["rps"].as_f64().unwrap_or(0.0);
        let cell = by
            .entry((row["rpc"].as_str().unwrap_or("").to_owned(), n))
            .or_default()
            .entry(stage)
            .or_default();
        match row["setup"].as_str() {
            Some("ceiling") => cell.0 = rps,
            Some("prod-batch") => cell.1 = rps,
            _ => {}
        }
    }
    let stages: Vec<u64> = {
        let mut all: Vec<u64> = by.values().flat_map(|s| s.keys().copied()).collect();
        all.sort_unstable();
        all.dedup();
        all
    };
    if stages.is_empty() {
        return None;
    }
    let mut out = String::from(
        "prod-batch as a ratio to the ceiling by stored credentials (the ceiling measured \
         beside each stage):\n\n| RPC | in flight |",
    );
    for stage in &stages {
        let _ = write!(out, " {stage} stored |");
    }
    out.push_str(" last vs first |\n|---|---|");
    for _ in &stages {
        out.push_str("---|");
    }
    out.push_str("---|\n");
    for ((rpc, n), at) in &by {
        let _ = write!(out, "| {rpc} | {n} |");
        let ratio = |stage: &u64| {
            at.get(stage)
                .filter(|(ceiling, _)| *ceiling > 0.0)
                .map(|(ceiling, prod)| prod / ceiling)
        };
        for stage in &stages {
            match ratio(stage) {
                Some(r) => {
                    let _ = write!(out, " {r:.2} |");
                }
                None => out.push_str(" - |"),
            }
        }
        match (ratio(&stages[0]), ratio(&stages[stages.len() - 1])) {
            (Some(first), Some(last)) if stages.len() > 1 && first > 0.0 => {
                let _ = write!(out, " {:+.1}% |", 100.0 * (last - first) / first);
            }
            _ => out.push_str(" - |"),
        }
        out.push('\n');
    }
    Some(out)
}
