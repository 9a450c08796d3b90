//! Twilio's auth decision framework as data and small rules (issue 5).
