//! The application path through a listener: one tiny axum app under
//! `#[service_main]`, served through tokio's listener or lifecycle's as
//! `BENCH_LISTENER` says (`tokio` or `lifecycle`), on `BENCH_ADDR`. One
//! binary for both, so that the two differ by the listener only.

// Linux only, not ported: on another system this is the first error, and
// it says why.
#[cfg(not(target_os = "linux"))]
compile_error!("lifecycle-bench is lifecycle's Linux benchmark (bench/run: CPU and memory from /proc, wrk, Debian packages); it is not built for other systems");

use axum::{routing::get, Router};
use lifecycle_runtime::{service_main, shutdown_signal};

#[path = "../../app_load.rs"]
mod app_load;

#[service_main]
async fn main() -> std::io::Result<()> {
    app_load::spawn();
    let app = Router::new().route("/", get(|| async { "ok" }));
    let addr = app_load::addr();
    match std::env::var("BENCH_LISTENER").as_deref() {
        Ok("tokio") => {
            let listener = tokio::net::TcpListener::bind(addr).await?;
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown_signal())
                .await
        }
        Ok("lifecycle") => {
            let listener = lifecycle_runtime::net::TcpListener::bind(addr).await?;
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown_signal())
                .await
        }
        other => Err(std::io::Error::other(format!(
            "BENCH_LISTENER must be tokio or lifecycle, not {other:?}"
        ))),
    }
}
