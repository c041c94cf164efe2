//! Compiles `proto/shield/v1/shield.proto` with protox (pure Rust: no
//! `protoc` on the build machine) and generates the tonic service and client.
//! The telemetry schema is compiled in `llmsec-proto`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=../../proto/shield");
    let fds = protox::compile(["shield/v1/shield.proto"], ["../../proto"])?;
    tonic_prost_build::configure().build_server(true).build_client(true).compile_fds(fds)?;
    Ok(())
}
