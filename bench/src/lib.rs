//! Benchmark tooling for twilio-broker (`scripts/bench` drives it, and the
//! benches in `broker/benches` use it in process): [`ceiling`], the one
//! do-nothing tonic service answering the Broker RPCs with canned replies;
//! [`load`], the one load loop (fixed concurrency, per-status accounting,
//! HDR latency histograms) behind the `loadgen` binary; and the [`chart`]
//! writer.

pub mod ceiling;
pub mod chart;
pub mod load;
pub mod process;
