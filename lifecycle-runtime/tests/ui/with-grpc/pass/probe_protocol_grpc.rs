//! With lifecycle-runtime's `grpc` feature, gRPC probes build (and run:
//! `main` returns at once).

#[lifecycle_runtime::service_main(probe_addr = "127.0.0.1:0", probe_protocol = "grpc")]
async fn main() {}
