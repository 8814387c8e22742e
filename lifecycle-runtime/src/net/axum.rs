//! [`TcpListener`] as an `axum::serve::Listener` (cargo feature `axum`).

use std::io;
use std::net::SocketAddr;

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};

use super::{TcpListener, TcpStream};

#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
impl Listener for TcpListener {
    type Io = TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (TcpStream, SocketAddr) {
        self.accept_retrying().await
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        TcpListener::local_addr(self)
    }
}

/// The peer's address, for axum's `ConnectInfo` with lifecycle's
/// listener: axum implements `Connected` for `SocketAddr` with tokio's
/// listener only, and no other crate may add it.
///
/// ```no_run
/// use axum::{extract::ConnectInfo, routing::get, Router};
/// use lifecycle_runtime::net::{PeerAddr, TcpListener};
///
/// async fn whoami(ConnectInfo(PeerAddr(peer)): ConnectInfo<PeerAddr>) -> String {
///     peer.to_string()
/// }
///
/// #[lifecycle_runtime::service_main]
/// async fn main() -> std::io::Result<()> {
///     let app = Router::new().route("/whoami", get(whoami));
///     let listener = TcpListener::bind("0.0.0.0:8080").await?;
///     axum::serve(listener, app.into_make_service_with_connect_info::<PeerAddr>())
///         .with_graceful_shutdown(lifecycle_runtime::shutdown_signal())
///         .await
/// }
/// ```
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PeerAddr(pub SocketAddr);

impl Connected<IncomingStream<'_, TcpListener>> for PeerAddr {
    fn connect_info(stream: IncomingStream<'_, TcpListener>) -> PeerAddr {
        PeerAddr(*stream.remote_addr())
    }
}
