//! A tonic service made Kubernetes-ready by lifecycle, as `tonic-grpc`
//! writes one, without its Redis: `grpc.health.v1.Health`
//! (`health_service()`) on the application's own server, served on
//! lifecycle's listener with `serve_with_incoming_shutdown(...,
//! shutdown_signal())`, and an `on_shutdown` hook that takes
//! `SHUTDOWN_HOOK_MS` (default 0) ms, as a flush of buffered writes would.
//!
//! The hook's time sets the application server's stop (at
//! `shutdown_signal()`) apart from the probe server's (after the hooks):
//! the tests of Python's `Watch` through a stop
//! (`tests/tests/grpc_python_watch.rs`) tell which one ended a stream by
//! when it ended.
//!
//! `APP_ADDR`: where the gRPC server listens (default `0.0.0.0:50051`).

use std::time::Duration;

use lifecycle_runtime::net::TcpListener;
use lifecycle_runtime::{on_shutdown, service_main, shutdown_signal};
use tonic::transport::Server;

/// The flush a real service would do here, as long as `SHUTDOWN_HOOK_MS`.
#[on_shutdown(timeout_ms = 10000)]
async fn flush_writes() {
    let took = std::env::var("SHUTDOWN_HOOK_MS")
        .ok()
        .and_then(|ms| ms.parse().ok())
        .map_or(Duration::ZERO, Duration::from_millis);
    tracing::info!("flushing writes ({} ms)", took.as_millis());
    tokio::time::sleep(took).await;
    tracing::info!("writes flushed");
}

#[service_main(probe_protocol = "grpc")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::var("APP_ADDR").unwrap_or_else(|_| "0.0.0.0:50051".into());
    let listener = TcpListener::bind(addr).await?;
    tracing::info!("serving gRPC on {}", listener.local_addr()?);
    Server::builder()
        .add_service(lifecycle_runtime::grpc::health_service()?)
        // After SIGTERM and the drain delay: the health Watch streams end
        // (status OK), tonic stops accepting, sends GOAWAY and returns
        // once the calls in flight have finished.
        .serve_with_incoming_shutdown(listener.incoming(), shutdown_signal())
        .await?;
    tracing::info!("gRPC server stopped");
    Ok(())
}
