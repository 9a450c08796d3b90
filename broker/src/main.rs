//! The `twilio-broker` binary: parses the command line and hands over to [`twilio_broker::cli`].

fn main() -> std::process::ExitCode {
    twilio_broker::cli::main()
}
