//! Compiles `proto/datastream/v1/datastream.proto` with protox (a protobuf
//! compiler in Rust: a fresh machine needs no `protoc`), keeps its
//! descriptor set for the reflection service, and generates the tonic code.

use prost::Message;
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_dir = env!("CARGO_MANIFEST_DIR");
    let proto = "datastream/v1/datastream.proto";
    println!("cargo:rerun-if-changed={proto_dir}/{proto}");
    let descriptors = protox::compile([proto], [proto_dir])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out.join("datastream_descriptor.bin"),
        descriptors.encode_to_vec(),
    )?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(descriptors)?;
    Ok(())
}
