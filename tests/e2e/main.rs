//! End-to-end suite: the real `twilio-broker` binary, real gRPC clients.
//!
//! Compiled as the broker package's integration test (see `broker/Cargo.toml`)
//! so that `CARGO_BIN_EXE_twilio-broker` points at the freshly built binary.

#![allow(missing_docs, clippy::unwrap_used)]

mod activation;
mod admin;
mod audit;
mod audit_trust;
mod backup;
mod bearer;
mod callers;
mod canary;
mod cert_reload;
mod client;
mod clients;
mod console;
mod contract;
mod doctor;
mod durability;
mod hardening;
mod harness;
mod health;
mod keyring;
mod listing;
mod mint;
mod operations;
#[allow(dead_code)]
mod oracles;
mod pki;
mod plugins;
mod recommend;
mod resilience;
mod rollback;
mod rotate;
mod rotate_schedule;
mod rotate_token;
mod rotation;
mod service;
mod slow;
mod sre_metrics;
mod trust;
mod units;
mod webhook;
