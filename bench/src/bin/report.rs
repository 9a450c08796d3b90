//! Turns the bench's JSON lines into a markdown table (each RPC as a ratio
//! to the ceiling at the same load) and an SVG chart.

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

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let text = std::fs::read_to_string(&args.results)?;
    let rows: Vec<serde_json::Value> = text
        .lines()
        .filter(|l| l.trim_start().starts_with('{'))
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    // label -> inflight -> row
    let mut by_label: BTreeMap<String, BTreeMap<u64, &serde_json::Value>> = BTreeMap::new();
    for row in rows.iter().filter(|r| r.get("inflight").is_some()) {
        let label = row["label"].as_str().unwrap_or("").to_owned();
        let inflight = row["inflight"].as_u64().unwrap_or(0);
        by_label.entry(label).or_default().insert(inflight, row);
    }
    let ceiling = by_label.get("ceiling").cloned().unwrap_or_default();
    let mut table = String::from(
        "| RPC | in flight | req/s | vs ceiling | p50 µs | p99 µs | p999 µs | p99 vs ceiling | non-OK |\n|---|---|---|---|---|---|---|---|---|\n",
    );
    let order = ["ceiling", "GetBearer", "MintAccessToken", "ValidateWebhook"];
    let mut labels: Vec<&String> = by_label.keys().collect();
    labels.sort_by_key(|l| order.iter().position(|o| o == l).unwrap_or(order.len()));
    for label in &labels {
        for (inflight, row) in &by_label[*label] {
            let base = ceiling.get(inflight);
            let ratio = |key: &str| {
                base.and_then(|b| b[key].as_f64())
                    .filter(|b| *b > 0.0)
                    .map(|b| format!("{:.2}", row[key].as_f64().unwrap_or(0.0) / b))
                    .unwrap_or_else(|| "-".into())
            };
            let non_ok = row["requests"].as_u64().unwrap_or(0) - row["ok"].as_u64().unwrap_or(0);
            let _ = writeln!(
                table,
                "| {label} | {inflight} | {:.0} | {} | {} | {} | {} | {} | {non_ok} |",
                row["rps"].as_f64().unwrap_or(0.0),
                ratio("rps"),
                row["p50_us"],
                row["p99_us"],
                row["p999_us"],
                ratio("p99_us"),
            );
        }
    }
    println!("{table}");
    let series = |key: &str, scale: f64| -> Vec<Series> {
        labels
            .iter()
            .map(|label| Series {
                name: (*label).clone(),
                points: by_label[*label]
                    .iter()
                    .map(|(inflight, row)| {
                        (
                            inflight.to_string(),
                            row[key].as_f64().unwrap_or(0.0) / scale,
                        )
                    })
                    .collect(),
            })
            .collect()
    };
    let chart = svg(&[
        Panel {
            title: "Throughput".into(),
            unit: "requests/s".into(),
            series: series("rps", 1.0),
        },
        Panel {
            title: "p99 latency".into(),
            unit: "ms".into(),
            series: series("p99_us", 1000.0),
        },
    ]);
    std::fs::write(&args.chart, chart)?;
    Ok(())
}
