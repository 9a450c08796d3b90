//! Twilio Access Tokens (JWT, HS256) for the client SDKs (issue 4).
