//! Compiles `proto/sentinel/v1/telemetry.proto` with protox (pure Rust: no
//! `protoc` on the build machine) and generates the messages, the tonic
//! service and its client.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=../../proto/sentinel");
    let fds = protox::compile(["sentinel/v1/telemetry.proto"], ["../../proto"])?;
    tonic_prost_build::configure().build_server(true).build_client(true).compile_fds(fds)?;
    Ok(())
}
