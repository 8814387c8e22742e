//! Listening and accepting: the probe port's socket, and the next
//! connection on it whatever errors `accept` returns meanwhile.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket, TcpStream};

use crate::net::accept_retrying;

/// Connections the kernel completes and queues for the accept loop. std's
/// `bind` listens with 128, which a flood of connections fills whenever
/// the probe server's thread falls behind for a moment: the kernel then
/// drops the SYN of the kubelet's next probe, and its retry comes 1 s
/// later, the probe's whole default timeout. Capped by
/// `net.core.somaxconn` (4096 by default).
const LISTEN_BACKLOG: u32 = 1024;

/// A listener on `addr` with a backlog of [`LISTEN_BACKLOG`], inside a
/// runtime.
pub(super) fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    // As std's `bind` does on Unix: a restarted service binds its port at
    // once, whatever connections of its predecessor are in TIME_WAIT.
    // Not on Windows, where SO_REUSEADDR would let a second process take
    // a port in use, and TIME_WAIT never blocks a new listener anyway.
    #[cfg(not(windows))]
    socket.set_reuseaddr(true)?;
    // `[::]` takes IPv4 too on every system, whatever Linux's
    // `net.ipv6.bindv6only` says (Windows makes an IPv6 socket IPv6-only
    // unless told). Where that cannot be turned off (OpenBSD) it stays
    // IPv6 only rather than failing to start.
    if addr.ip() == std::net::Ipv6Addr::UNSPECIFIED {
        let _ = socket2::SockRef::from(&socket).set_only_v6(false);
    }
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// How long accepting pauses after an error that is not the connection's
/// own: far shorter than the application's second, since the kubelet's
/// probes wait in the backlog meanwhile, and a pause near their 1 s
/// timeout would fail them once descriptors are free again.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

/// The next connection, accepted as the application's listener accepts
/// ([`accept_retrying`]), pausing [`ACCEPT_PAUSE`] after a failure.
pub(super) async fn accept(listener: &TcpListener) -> (TcpStream, SocketAddr) {
    accept_retrying(
        || listener.accept(),
        ACCEPT_PAUSE,
        |error| tracing::warn!("probe server accept failed: {error}"),
    )
    .await
}
