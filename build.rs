//! Compiles the protos under `proto/` with protox (pure Rust: no protoc to install) and generates
//! the tonic services and prost messages with tonic-prost-build. The encoded descriptor sets are
//! written beside the code for gRPC reflection: the API's, and the benchmark service's apart
//! (reflection lists `bench.Burn` only where it is served, with `server.debug_routes`).

use std::path::{Path, PathBuf};

const PROTOS: &[&str] = &[
    "proto/hello/hello.proto",
    "proto/user/user.proto",
    // generate:protos (`go_example generate resource --grpc` adds its protos above this line)
];
const BENCH_PROTOS: &[&str] = &["proto/bench/bench.proto"];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // `embed_migrations!` reads the migration folders when the crate compiles: a new folder
    // (`go_example generate migration`) must rebuild it.
    println!("cargo:rerun-if-changed=migrations");
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    compile(PROTOS, &out.join("descriptor.bin"))?;
    compile(BENCH_PROTOS, &out.join("bench_descriptor.bin"))?;
    Ok(())
}

/// Generates the code of `protos` and writes their encoded descriptor set to `descriptor`.
fn compile(protos: &[&str], descriptor: &Path) -> Result<(), Box<dyn std::error::Error>> {
    for proto in protos {
        println!("cargo:rerun-if-changed={proto}");
    }
    let descriptors = protox::compile(protos, ["proto"])?;
    std::fs::write(descriptor, prost::Message::encode_to_vec(&descriptors))?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(descriptors)?;
    Ok(())
}
