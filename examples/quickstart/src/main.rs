//! A small HTTP service made Kubernetes-ready by lifecycle: copy this file
//! to start your own.
//!
//! ```text
//! cargo run -p quickstart
//! curl localhost:8080/                    # the application
//! curl 'localhost:8081/readyz?verbose'    # what the kubelet asks
//! ```
//!
//! `APP_ADDR` moves the application (default 0.0.0.0:8080, reachable in a
//! pod);
//! `LIFECYCLE_PROBE_ADDR` moves the probes (default 0.0.0.0:8081).
//!
//! On SIGTERM (or Ctrl-C) `/readyz` fails at once, the service keeps
//! serving for the drain delay, then stops accepting, finishes the requests
//! in flight, runs its `on_shutdown` hook and exits 0. A connection still
//! open `LIFECYCLE_CONNECTION_DRAIN_MS` (5 s) later is ended by lifecycle.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
// lifecycle's listener rather than tokio's: the stop waits for every
// connection it accepted, and ends those still open once the connection
// drain is over, so that a client that never lets go cannot hold `main`
// (and the shutdown hook after it) hostage.
use lifecycle_runtime::net::TcpListener;
use lifecycle_runtime::{
    liveness, on_shutdown, on_startup, preflight, readiness, service_main, Health,
};
use once_cell::sync::OnceCell;

static GREETING: OnceCell<String> = OnceCell::new();
static ACCEPTING: AtomicBool = AtomicBool::new(false);
static SERVED: AtomicU64 = AtomicU64::new(0);

/// Checked before anything else starts, and alone by
/// `quickstart --lifecycle-preflight` (the Deployment's initContainer): a
/// bad configuration stops the rollout before a pod takes traffic.
#[preflight]
fn greeting_is_valid() -> Result<(), String> {
    match std::env::var("GREETING") {
        Ok(greeting) if greeting.trim().is_empty() => Err("GREETING is set but empty".into()),
        Ok(greeting) if greeting.len() > 200 => Err(format!(
            "GREETING is {} bytes long; at most 200",
            greeting.len()
        )),
        _ => Ok(()),
    }
}

/// Start-up work: `/startupz` and `/readyz` fail until it is done, and the
/// body of `main` runs only after it succeeded.
#[on_startup(timeout_ms = 5000)]
async fn load_greeting() -> Result<(), String> {
    let greeting = std::env::var("GREETING").unwrap_or_else(|_| "hello from lifecycle".into());
    GREETING
        .set(greeting)
        .map_err(|_| "greeting loaded twice".to_string())
}

/// Ready once the listener accepts connections. Readiness is where
/// dependencies belong (a database ping, say): failing it takes this
/// instance out of rotation without restarting it.
#[readiness(timeout_ms = 100)]
fn accepting_connections() -> Result<(), &'static str> {
    if ACCEPTING.load(Ordering::SeqCst) {
        Ok(())
    } else {
        Err("the listener is not accepting yet")
    }
}

/// Liveness answers only "is this process beyond repair?": never check a
/// dependency here, or an outage restarts every pod.
#[liveness]
fn serving() -> Health {
    Health::up().with_detail("requests_served", SERVED.load(Ordering::Relaxed))
}

/// Runs after `main` returned: the place to flush buffers and close pools.
#[on_shutdown(timeout_ms = 2000)]
async fn report_requests_served() {
    let served = SERVED.load(Ordering::Relaxed);
    tracing::info!("shutdown hook: {served} request(s) served in all");
}

async fn hello(_request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    SERVED.fetch_add(1, Ordering::Relaxed);
    let greeting = GREETING.get().map(String::as_str).unwrap_or_default();
    Ok(Response::new(Full::new(Bytes::from(format!(
        "{greeting}\n"
    )))))
}

#[service_main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::var("APP_ADDR").unwrap_or_else(|_| "0.0.0.0:8080".into());
    let listener = TcpListener::bind(&addr).await?;
    tracing::info!("serving on http://{}", listener.local_addr()?);
    ACCEPTING.store(true, Ordering::SeqCst);

    let connections = GracefulShutdown::new();
    let stop = lifecycle_runtime::shutdown_signal();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, _) = accepted?;
                let connection = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service_fn(hello));
                let connection = connections.watch(connection);
                tokio::spawn(async move {
                    if let Err(error) = connection.await {
                        tracing::debug!("connection ended: {error}");
                    }
                });
            }
            // After SIGTERM and the drain delay: stop accepting.
            _ = &mut stop => break,
        }
    }
    drop(listener);
    tracing::info!("finishing the requests in flight");
    connections.shutdown().await;
    Ok(())
}
