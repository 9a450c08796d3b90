//! The `twilio.broker.v1` wire contract, generated from `proto/` by `build.rs`.
//!
//! Generated types stop at the edges: the daemon converts them to domain types
//! in `broker/src/grpc/`, and clients wrap them in `client/`.

/// Messages, clients and servers of package `twilio.broker.v1`.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod v1 {
    tonic::include_proto!("twilio.broker.v1");
}

/// The encoded `FileDescriptorSet` of every file in `proto/`, for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/twilio_broker_descriptor.bin"));
