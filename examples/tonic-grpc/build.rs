//! Compiles `proto/kv.proto` into `$OUT_DIR/kv.v1.rs` (server and client)
//! with protox, a protobuf compiler written in Rust, so that building the
//! service needs no `protoc` installed or downloaded.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let descriptors = protox::compile(["kv.proto"], ["proto"])?;
    tonic_prost_build::configure().compile_fds(descriptors)?;
    // protox reads the files itself: tell cargo which ones count.
    println!("cargo:rerun-if-changed=proto");
    Ok(())
}
