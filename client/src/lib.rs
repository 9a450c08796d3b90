//! Rust client for twilio-broker (issue 8 builds it out).
