//! The quick start's service as it is written without lifecycle: hyper on
//! `#[tokio::main]`, a graceful stop on SIGTERM or SIGINT, nothing else.
//! Serves on `BENCH_ADDR`.

// Linux only, not ported: on another system this is the first error, and
// it says why.
#[cfg(not(target_os = "linux"))]
compile_error!("bench-plain-tokio is a baseline of lifecycle's Linux benchmark (bench/run); it is not built for other systems");

use std::convert::Infallible;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};

async fn hello(_request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(Response::new(Full::new(Bytes::from_static(b"hello\n"))))
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::var("BENCH_ADDR").unwrap_or_else(|_| "127.0.0.1:8080".into());
    let listener = TcpListener::bind(&addr).await?;
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;

    let connections = GracefulShutdown::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, _) = accepted?;
                let connection = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service_fn(hello));
                let connection = connections.watch(connection);
                tokio::spawn(async move {
                    let _ = connection.await;
                });
            }
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
        }
    }
    drop(listener);
    connections.shutdown().await;
    Ok(())
}
