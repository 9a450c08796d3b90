//! Twilio webhook signature validation (issue 4).
