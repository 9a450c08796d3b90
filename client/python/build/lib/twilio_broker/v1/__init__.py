"""Generated from proto/twilio/broker/v1 by scripts/gen-stubs. Do not edit."""
