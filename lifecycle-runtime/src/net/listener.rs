//! lifecycle's TCP listener: tokio's, with every accepted connection
//! counted until it closes.

use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use futures_core::Stream;
use tokio::net::ToSocketAddrs;

use super::connections::Connections;
use super::TcpStream;
use crate::lifecycle::Lifecycle;

/// How long accepting pauses after an error that is not the connection's
/// own (out of file descriptors, say), as axum's `serve` and hyper did.
const ACCEPT_BACKOFF: Duration = Duration::from_secs(1);

/// A TCP listener whose every accepted connection lifecycle counts until
/// it closes, upgraded ones (WebSockets) included: the graceful stop waits
/// for them, and ends at the socket those still open `connection_drain_ms`
/// after [`shutdown_signal`](crate::shutdown_signal) completes. A drop-in
/// for [`tokio::net::TcpListener`].
///
/// With axum (cargo feature `axum`):
///
/// ```no_run
/// use axum::{routing::get, Router};
/// use lifecycle_runtime::{net::TcpListener, service_main, shutdown_signal};
///
/// #[service_main]
/// async fn main() -> std::io::Result<()> {
///     let app = Router::new().route("/", get(|| async { "hello" }));
///     let listener = TcpListener::bind("0.0.0.0:8080").await?;
///     axum::serve(listener, app)
///         .with_graceful_shutdown(shutdown_signal())
///         .await
/// }
/// ```
///
/// Its address is published beside the probe server's, in
/// `LIFECYCLE_PROBE_ADDR_FILE`, so that a test of a service bound to port
/// 0 finds it without reading logs.
pub struct TcpListener {
    inner: tokio::net::TcpListener,
    connections: Arc<Connections>,
}

impl TcpListener {
    /// Binds to `addr`, as [`tokio::net::TcpListener::bind`] does: `[::]`
    /// takes IPv4 too where the system's default says so (Linux, macOS),
    /// and not on Windows, whose IPv6 sockets are IPv6-only; bind
    /// `0.0.0.0` there for IPv4.
    pub async fn bind<A: ToSocketAddrs>(addr: A) -> io::Result<TcpListener> {
        Ok(TcpListener::from(
            tokio::net::TcpListener::bind(addr).await?,
        ))
    }

    /// Accepts a connection, as [`tokio::net::TcpListener::accept`] does.
    pub async fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let (io, peer) = self.inner.accept().await?;
        Ok((self.track(io), peer))
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    /// The accepted connections as a stream, for tonic's
    /// `serve_with_incoming_shutdown`: each with `TCP_NODELAY` set, as
    /// tonic's own `TcpIncoming` does. Accept errors never reach the
    /// server: one of the connection's own is skipped, any other pauses
    /// accepting for a second, logged (see [`Incoming`]).
    ///
    /// ```no_run
    /// # async fn example(routes: tonic::service::Routes) -> Result<(), Box<dyn std::error::Error>> {
    /// let listener = lifecycle_runtime::net::TcpListener::bind("0.0.0.0:50051").await?;
    /// tonic::transport::Server::builder()
    ///     .add_routes(routes)
    ///     .serve_with_incoming_shutdown(listener.incoming(), lifecycle_runtime::shutdown_signal())
    ///     .await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn incoming(self) -> Incoming {
        Incoming {
            listener: self,
            backoff: None,
        }
    }

    fn track(&self, io: tokio::net::TcpStream) -> TcpStream {
        TcpStream::new(self.connections.track(io))
    }
}

#[cfg(feature = "axum")]
impl TcpListener {
    /// Accepts the next connection, handling errors as axum's `serve`
    /// does.
    pub(super) async fn accept_retrying(&self) -> (TcpStream, SocketAddr) {
        accept_retrying(|| self.accept(), ACCEPT_BACKOFF, accept_failed).await
    }
}

impl From<tokio::net::TcpListener> for TcpListener {
    /// Tracks the connections `listener` accepts from now on.
    fn from(listener: tokio::net::TcpListener) -> TcpListener {
        let lifecycle = Lifecycle::global();
        if let Ok(addr) = listener.local_addr() {
            lifecycle.addresses().app_bound(addr);
        }
        TcpListener {
            inner: listener,
            connections: lifecycle.connections().clone(),
        }
    }
}

impl fmt::Debug for TcpListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpListener")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

/// The next connection `accept` returns, as axum's `serve` accepts: an
/// error of the connection being accepted (its peer gave up first) is
/// skipped at once, since the next may well succeed; any other (out of
/// file descriptors, say) goes to `failed`, which logs it, and accepting
/// pauses for `pause`, so that it neither spins nor floods the log.
pub(crate) async fn accept_retrying<T, Fut>(
    mut accept: impl FnMut() -> Fut,
    pause: Duration,
    failed: impl Fn(&io::Error),
) -> T
where
    Fut: Future<Output = io::Result<T>>,
{
    loop {
        match accept().await {
            Ok(accepted) => return accepted,
            Err(error) if is_connection_error(&error) => {}
            Err(error) => {
                failed(&error);
                tokio::time::sleep(pause).await;
            }
        }
    }
}

/// The application listener's line for an accept error that pauses it
/// for [`ACCEPT_BACKOFF`].
fn accept_failed(error: &io::Error) {
    tracing::error!("accept error: {error}; accepting again in 1 s");
}

/// An error of the connection being accepted (the peer gave up before
/// the accept), not of the listener: the next one may well succeed.
fn is_connection_error(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// The connections a [`TcpListener`] accepts, as a stream
/// ([`TcpListener::incoming`]). It never ends and never yields an error.
pub struct Incoming {
    listener: TcpListener,
    backoff: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Stream for Incoming {
    type Item = io::Result<TcpStream>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            if let Some(backoff) = &mut self.backoff {
                ready!(backoff.as_mut().poll(cx));
                self.backoff = None;
            }
            match ready!(self.listener.inner.poll_accept(cx)) {
                Ok((io, _)) => {
                    // Latency over batching, as tonic's `TcpIncoming`.
                    if let Err(error) = io.set_nodelay(true) {
                        tracing::debug!(
                            "cannot set TCP_NODELAY on an accepted connection: {error}"
                        );
                    }
                    return Poll::Ready(Some(Ok(self.listener.track(io))));
                }
                Err(error) if is_connection_error(&error) => {}
                Err(error) => {
                    accept_failed(&error);
                    self.backoff = Some(Box::pin(tokio::time::sleep(ACCEPT_BACKOFF)));
                }
            }
        }
    }
}

impl fmt::Debug for Incoming {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Incoming")
            .field("listener", &self.listener)
            .finish_non_exhaustive()
    }
}
