//! The baseline a Rust user writes today: a hand-written `/healthz` route
//! on the application's own axum server and runtime. Serves on
//! `BENCH_ADDR`, under the load `BENCH_LOAD` names.

// Linux only, not ported: on another system this is the first error, and
// it says why.
#[cfg(not(target_os = "linux"))]
compile_error!("lifecycle-bench is lifecycle's Linux benchmark (bench/run: CPU and memory from /proc, wrk, Debian packages); it is not built for other systems");

use axum::{routing::get, Router};

#[path = "../../app_load.rs"]
mod app_load;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(app_load::addr()).await?;
    app_load::spawn();
    let app = Router::new().route("/healthz", get(|| async { "ok" }));
    axum::serve(listener, app).await
}
