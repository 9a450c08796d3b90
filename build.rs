//! Compiles `proto/` into Rust with protox (pure Rust, so no system `protoc`).
//!
//! Writes only to `$OUT_DIR`: the generated modules and the encoded
//! descriptor set that server reflection serves (comments included, so
//! `grpcurl describe` shows the documentation).

use prost::Message as _;

const PROTOS: &[&str] = &[
    "twilio/broker/v1/credential.proto",
    "twilio/broker/v1/admin.proto",
    "twilio/broker/v1/broker.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let out_dir = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    let descriptors = protox::compile(PROTOS, ["proto"])?;
    std::fs::write(
        out_dir.join("twilio_broker_descriptor.bin"),
        descriptors.encode_to_vec(),
    )?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(descriptors)?;
    Ok(())
}
