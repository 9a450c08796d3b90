//! Benchmark tooling for twilio-broker (`scripts/bench` drives it):
//! the `ceiling` server (a do-nothing tonic service answering the Broker
//! RPCs with canned replies), the `loadgen` client (fixed concurrency,
//! per-status accounting, HDR latency histograms) and the `chart` writer.

pub mod chart;
pub mod process;
