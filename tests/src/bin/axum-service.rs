//! An axum service made Kubernetes-ready by lifecycle, written as a new
//! user would write one: the application served by
//! `axum::serve(...).with_graceful_shutdown(shutdown_signal())`, a
//! readiness check, nothing else.
//!
//! As in the quick start (`examples/quickstart`): `APP_ADDR` moves the
//! application (default `0.0.0.0:8080`, where a pod serves),
//! `LIFECYCLE_PROBE_ADDR` the probes, `LIFECYCLE_DRAIN_DELAY_MS` sets the
//! drain delay, and `GREETING` what `GET /` answers (the rolling-restart
//! test tells its instances apart by it).

use std::sync::atomic::{AtomicBool, Ordering};

use axum::routing::get;
use axum::Router;
use lifecycle_runtime::{readiness, service_main};
use tokio::net::TcpListener;

static ACCEPTING: AtomicBool = AtomicBool::new(false);

/// Ready once the listener accepts connections.
#[readiness(timeout_ms = 100)]
fn accepting_connections() -> Result<(), &'static str> {
    if ACCEPTING.load(Ordering::SeqCst) {
        Ok(())
    } else {
        Err("the listener is not accepting yet")
    }
}

#[service_main]
async fn main() -> std::io::Result<()> {
    let greeting = std::env::var("GREETING").unwrap_or_else(|_| "hello from axum".into());
    let body = format!("{greeting}\n");
    let app = Router::new().route("/", get(move || async move { body }));

    let addr = std::env::var("APP_ADDR").unwrap_or_else(|_| "0.0.0.0:8080".into());
    let listener = TcpListener::bind(&addr).await?;
    tracing::info!("serving on http://{}", listener.local_addr()?);
    ACCEPTING.store(true, Ordering::SeqCst);

    // After SIGTERM and the drain delay: stop accepting, finish the
    // requests in flight, close idle keep-alive connections.
    axum::serve(listener, app)
        .with_graceful_shutdown(lifecycle_runtime::shutdown_signal())
        .await
}
