//! The `twilio-broker` binary: parses the command line and hands over to [`twilio_broker::main`].

#![forbid(unsafe_code)]

/// mimalloc: under load, glibc malloc/free took ~10% of the daemon's CPU
/// (many small, short-lived allocations across threads).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    twilio_broker::main()
}
