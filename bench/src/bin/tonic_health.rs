//! The gRPC baseline: `tonic-health`'s service on the application's own
//! tonic server and runtime, its overall status set to SERVING. Serves on
//! `BENCH_ADDR`, under the load `BENCH_LOAD` names.

// Linux only, not ported: on another system this is the first error, and
// it says why.
#[cfg(not(target_os = "linux"))]
compile_error!("lifecycle-bench is lifecycle's Linux benchmark (bench/run: CPU and memory from /proc, wrk, Debian packages); it is not built for other systems");

use tonic_health::ServingStatus;

#[path = "../../app_load.rs"]
mod app_load;

#[tokio::main]
async fn main() -> Result<(), tonic::transport::Error> {
    let (reporter, service) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("", ServingStatus::Serving)
        .await;
    app_load::spawn();
    tonic::transport::Server::builder()
        .add_service(service)
        .serve(app_load::addr())
        .await
}
