//! twilio-broker: keeps an organisation's Twilio credentials in one hardened
//! place and hands each internal service only what it needs.
//!
//! The crate is laid out by concept (see `ARCHITECTURE.md`):
//! domain modules ([`credential`], [`store`], [`bearer`], [`mint`],
//! [`webhook`], [`recommend`]) know nothing of tonic; [`grpc`] is the only
//! place that sees generated types; [`plugin_host`] is the only place with
//! `unsafe` (it loads plugin libraries); [`server`] wires them into a running
//! daemon; [`cli`] is the `twilio-broker` command line.

pub mod audit;
pub mod bearer;
pub mod caller;
pub mod cli;
pub mod config;
pub mod credential;
pub mod doctor;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod grpc;
pub mod listing;
pub mod master_key;
pub mod mint;
pub mod notify;
pub mod plugin_host;
pub mod policy;
pub mod recommend;
pub mod sealed_secret;
pub mod server;
pub mod sid;
pub mod state_file;
pub mod store;
pub mod telemetry;
pub mod transport;
pub mod twilio_api;
pub mod webhook;

pub use error::Error;

#[cfg(test)]
mod tidy;
