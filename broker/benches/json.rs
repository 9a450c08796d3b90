//! The cost of checking a grant's JSON object (issue 12 item 7): linear in
//! its size, and bounded by the caps (16 KiB, 256 members per object), so a
//! request can no longer hold a tokio worker for seconds.
//!
//! `cargo bench -p twilio-broker --bench json` prints, for objects of n
//! members, the time per parse and per member; a quadratic duplicate check
//! shows as a per-member time that grows with n.

use std::hint::black_box;
use std::time::Instant;

use twilio_broker::{MAX_JSON_BYTES, MAX_JSON_KEYS, parse_object};

fn object(members: usize) -> String {
    let members: Vec<String> = (0..members).map(|i| format!("\"k{i}\":{i}")).collect();
    format!("{{{}}}", members.join(","))
}

fn main() {
    println!("members  bytes   µs/parse  ns/member");
    for n in [16, 32, 64, 128, MAX_JSON_KEYS] {
        let text = object(n);
        assert!(text.len() <= MAX_JSON_BYTES);
        let rounds = 20_000;
        let started = Instant::now();
        for _ in 0..rounds {
            black_box(parse_object(black_box(&text)).expect("valid"));
        }
        let per_parse = started.elapsed().as_secs_f64() / f64::from(rounds);
        println!(
            "{n:>7}  {:>5}  {:>8.2}  {:>9.1}",
            text.len(),
            per_parse * 1e6,
            per_parse * 1e9 / n as f64
        );
    }
    // The review's 60,000-member object is refused before it is parsed.
    let huge = object(60_000);
    let started = Instant::now();
    let refused = parse_object(&huge).expect_err("over the cap");
    println!(
        "60000 members ({} bytes): refused in {:.2} µs: {refused}",
        huge.len(),
        started.elapsed().as_secs_f64() * 1e6
    );
}
