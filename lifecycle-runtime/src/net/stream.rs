//! The stream of a connection accepted through lifecycle's listener.

use std::fmt;
use std::io;
use std::net::{Shutdown, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use socket2::SockRef;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};

use super::connections::Connection;

/// A TCP connection accepted through [`TcpListener`](super::TcpListener):
/// tokio's stream, counted by lifecycle until it closes, and ended by the
/// connection drain if it is still open then. Once
/// ended, reads see end-of-stream and writes fail with `BrokenPipe`.
pub struct TcpStream {
    connection: Arc<Connection>,
}

impl TcpStream {
    pub(super) fn new(connection: Arc<Connection>) -> TcpStream {
        TcpStream { connection }
    }

    /// The remote address of the connection.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.connection.io.peer_addr()
    }

    /// The local address of the connection.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.connection.io.local_addr()
    }

    /// Sets `TCP_NODELAY`: segments are sent as soon as possible.
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.connection.io.set_nodelay(nodelay)
    }

    /// Whether `TCP_NODELAY` is set.
    pub fn nodelay(&self) -> io::Result<bool> {
        self.connection.io.nodelay()
    }

    fn ended_error() -> io::Error {
        io::Error::new(
            io::ErrorKind::BrokenPipe,
            "connection ended by lifecycle at the end of the connection drain",
        )
    }
}

impl fmt::Debug for TcpStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpStream")
            .field("io", &self.connection.io)
            .field("ended", &self.connection.is_ended())
            .finish()
    }
}

// The socket is shared with the connection drain, so the stream does its
// I/O through `&tokio::net::TcpStream`: readiness, then one non-blocking
// call, as tokio's own `poll_read` and `poll_write` do.
impl AsyncRead for TcpStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let connection = &*self.connection;
        loop {
            if connection.is_ended() {
                return Poll::Ready(Ok(()));
            }
            if connection.io.poll_read_ready(cx)?.is_pending() {
                connection.reader.register(cx.waker());
                // Ended between the check and the registration: its wake
                // may have come before the registration.
                if connection.is_ended() {
                    return Poll::Ready(Ok(()));
                }
                return Poll::Pending;
            }
            // SAFETY: `recv` only writes into the slice, and only the `n`
            // bytes it reports written are marked initialised and filled.
            let unfilled = unsafe { buf.unfilled_mut() };
            let wanted = unfilled.len();
            let read = transfer(&connection.io, Interest::READABLE, wanted, || {
                SockRef::from(&connection.io).recv(unfilled)
            });
            match read {
                Ok(n) => {
                    unsafe { buf.assume_init(n) };
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                // Readiness was stale and is cleared: poll it again.
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => continue,
                Err(error) => return Poll::Ready(Err(error)),
            }
        }
    }
}

/// One non-blocking transfer of up to `wanted` bytes through the socket,
/// clearing its readiness when the system call says to wait, and after a
/// short transfer, which means the socket is drained (or its send buffer
/// full): as tokio's own `poll_read` and `poll_write` do, so that the next
/// call waits for the reactor rather than making a system call only to
/// hear EAGAIN (bench/findings.md).
fn transfer(
    io: &tokio::net::TcpStream,
    interest: Interest,
    wanted: usize,
    op: impl FnOnce() -> io::Result<usize>,
) -> io::Result<usize> {
    let mut short = None;
    let done = io.try_io(interest, || {
        let n = op()?;
        // Not on Windows, where tokio does not either: readiness there is
        // emulated, and a short transfer says nothing of what is left.
        if cfg!(not(windows)) && n > 0 && n < wanted {
            short = Some(n);
            // What makes `try_io` clear the readiness; the count is kept.
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(n)
    });
    match short {
        Some(n) => Ok(n),
        None => done,
    }
}

impl TcpStream {
    /// Writes with `write` once the socket is writable; fails once the
    /// connection is ended.
    fn poll_write_with(
        &self,
        cx: &mut Context<'_>,
        wanted: usize,
        mut write: impl FnMut(&SockRef<'_>) -> io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        let connection = &*self.connection;
        loop {
            if connection.is_ended() {
                return Poll::Ready(Err(Self::ended_error()));
            }
            if connection.io.poll_write_ready(cx)?.is_pending() {
                connection.writer.register(cx.waker());
                if connection.is_ended() {
                    return Poll::Ready(Err(Self::ended_error()));
                }
                return Poll::Pending;
            }
            let written = transfer(&connection.io, Interest::WRITABLE, wanted, || {
                write(&SockRef::from(&connection.io))
            });
            match written {
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => continue,
                written => return Poll::Ready(written),
            }
        }
    }
}

impl AsyncWrite for TcpStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_with(cx, buf.len(), |socket| socket.send(buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let wanted = bufs.iter().map(|buf| buf.len()).sum();
        self.poll_write_with(cx, wanted, |socket| socket.send_vectored(bufs))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Nothing is buffered here.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.connection.is_ended() {
            // The drain shut the write side down already.
            return Poll::Ready(Ok(()));
        }
        let shut = SockRef::from(&self.connection.io).shutdown(Shutdown::Write);
        Poll::Ready(match shut {
            Err(error) if error.kind() == io::ErrorKind::NotConnected => Ok(()),
            other => other,
        })
    }
}
