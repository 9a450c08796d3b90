//! Plugins end to end: real libraries (Rust via the SDK, and C against the
//! header) loaded by the real host and the real daemon; PostgreSQL and NATS
//! are the real servers.
//!
//! Plugin libraries are built by [`libs`]: it runs `cargo build -p <plugin
//! packages>` once per test run into the same target directory as the broker
//! binary under test (so `cargo test` alone is enough, in CI too), and
//! compiles the C plugins in `plugins/sdk/tests/c/` with the system `cc`.

mod check;
mod host;
pub(crate) mod libs;
mod new;
mod pin;
mod postgres;
mod postgres_tls;
mod schema;
mod serve;
pub(crate) mod services;
