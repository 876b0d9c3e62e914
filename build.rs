//! Compiles the protos under `proto/` with protox (pure Rust: no protoc to install) and generates
//! the tonic services and prost messages with tonic-prost-build. The encoded descriptor set is
//! written beside the code for gRPC reflection.

use std::path::PathBuf;

const PROTOS: &[&str] = &["proto/hello/hello.proto", "proto/user/user.proto"];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={proto}");
    }
    let descriptors = protox::compile(PROTOS, ["proto"])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out.join("descriptor.bin"),
        prost::Message::encode_to_vec(&descriptors),
    )?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(descriptors)?;
    Ok(())
}
