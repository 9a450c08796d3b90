//! The gRPC edge: the only module that sees tonic and generated types.
//!
//! Each RPC converts its request into domain values (naming the bad field on
//! failure), calls a domain module, and converts the result back. Errors
//! become statuses in exactly one place, [`status`].

mod admin;
mod bearer;
mod broker;
pub(crate) mod convert;
mod guard;
pub(crate) mod mint;
pub(crate) mod recommend;
pub mod status;
mod webhook;

pub use admin::AdminApi;
pub use broker::BrokerApi;
