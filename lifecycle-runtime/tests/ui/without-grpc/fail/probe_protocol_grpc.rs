//! Without lifecycle-runtime's `grpc` feature, gRPC probes are a compile
//! error on the literal that names the feature. (`tracing = false`: the
//! same error with or without the default subscriber.)

#[lifecycle_runtime::service_main(tracing = false, probe_protocol = "grpc")]
async fn main() {}
