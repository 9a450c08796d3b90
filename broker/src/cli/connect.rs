//! Connecting the CLI to a running broker, and turning gRPC statuses into
//! sentences a person can act on.

use tonic::transport::{Channel, Endpoint};

/// The broker address flag shared by client commands.
#[derive(Debug, Clone, clap::Args)]
pub struct AddrArgs {
    /// Address of the broker (host:port or http://host:port).
    #[arg(long, env = "TWILIO_BROKER_ADDR", default_value = crate::config::DEFAULT_LISTEN)]
    pub addr: String,
}

impl AddrArgs {
    /// A lazily connecting channel to the broker.
    pub async fn channel(&self) -> anyhow::Result<Channel> {
        let uri = if self.addr.contains("://") {
            self.addr.clone()
        } else {
            format!("http://{}", self.addr)
        };
        let endpoint = Endpoint::from_shared(uri)
            .map_err(|_| anyhow::anyhow!("--addr {:?} is not a valid address", self.addr))?
            .connect_timeout(std::time::Duration::from_secs(5));
        endpoint.connect().await.map_err(|_| {
            anyhow::anyhow!(
                "cannot reach the broker at {}: is `twilio-broker serve` running there? (set --addr or TWILIO_BROKER_ADDR)",
                self.addr
            )
        })
    }
}

/// A gRPC status as an error a person can act on.
pub fn status_error(status: tonic::Status) -> anyhow::Error {
    let hint = match status.code() {
        tonic::Code::NotFound => " (list names with `twilio-broker credential list`)",
        tonic::Code::Unavailable => " (the broker or a service it needs is down; retry later)",
        tonic::Code::Unauthenticated | tonic::Code::PermissionDenied => {
            " (check the broker's policy for this caller)"
        }
        _ => "",
    };
    anyhow::anyhow!("{}: {}{hint}", code_name(status.code()), status.message())
}

fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "CANCELLED",
        Unknown => "UNKNOWN",
        InvalidArgument => "INVALID_ARGUMENT",
        DeadlineExceeded => "DEADLINE_EXCEEDED",
        NotFound => "NOT_FOUND",
        AlreadyExists => "ALREADY_EXISTS",
        PermissionDenied => "PERMISSION_DENIED",
        ResourceExhausted => "RESOURCE_EXHAUSTED",
        FailedPrecondition => "FAILED_PRECONDITION",
        Aborted => "ABORTED",
        OutOfRange => "OUT_OF_RANGE",
        Unimplemented => "UNIMPLEMENTED",
        Internal => "INTERNAL",
        Unavailable => "UNAVAILABLE",
        DataLoss => "DATA_LOSS",
        Unauthenticated => "UNAUTHENTICATED",
    }
}
