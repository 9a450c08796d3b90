//! libFuzzer target: `twilio_broker::fuzzing::webhook` on arbitrary bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| twilio_broker::fuzzing::webhook(data));
