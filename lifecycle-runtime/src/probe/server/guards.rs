//! The IO guards: a connection's stream wrapped so that a client that
//! sends nothing, or reads nothing, is closed in bounded time where
//! hyper's own timers cannot see it.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The kubelet sends its whole request at once; a connection that has not
/// by then is idle or hostile.
pub(super) const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(2);
/// The kubelet reads its answer at once; a client whose answers have not
/// moved for this long (it reads nothing, its window is closed: pipelined
/// requests whose answers it never takes) is not reading any more, and the
/// header read timeout cannot see it, since the server has stopped reading
/// too.
pub(super) const WRITE_STALL_TIMEOUT: Duration = Duration::from_secs(2);
/// An HTTP/2 client opens with this: until it has arrived, the server
/// cannot tell the protocol, and no HTTP timer runs.
#[cfg(feature = "grpc")]
const H2_PREFACE_LEN: usize = 24;

/// A connection's stream whose reads fail when the client has not sent the
/// first [`H2_PREFACE_LEN`] bytes within [`HEADER_READ_TIMEOUT`] and no
/// answer has been written: while the server reads them to tell HTTP/1
/// from HTTP/2, neither protocol's timer runs yet.
#[cfg(feature = "grpc")]
pub(super) struct PrefaceDeadline<S> {
    stream: S,
    read: usize,
    /// `None` once the preface is in or an answer has been written.
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
}

#[cfg(feature = "grpc")]
impl<S> PrefaceDeadline<S> {
    pub(super) fn new(stream: S) -> PrefaceDeadline<S> {
        PrefaceDeadline {
            stream,
            read: 0,
            deadline: Some(Box::pin(tokio::time::sleep(HEADER_READ_TIMEOUT))),
        }
    }
}

#[cfg(feature = "grpc")]
impl<S: AsyncRead + Unpin> AsyncRead for PrefaceDeadline<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.stream).poll_read(cx, buf);
        this.read += buf.filled().len() - before;
        if this.read >= H2_PREFACE_LEN {
            this.deadline = None;
        }
        let expired = polled.is_pending()
            && this
                .deadline
                .as_mut()
                .is_some_and(|deadline| deadline.as_mut().poll(cx).is_ready());
        if expired {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client sent no request within 2 s",
            )));
        }
        polled
    }
}

#[cfg(feature = "grpc")]
impl<S: AsyncWrite + Unpin> AsyncWrite for PrefaceDeadline<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        // An answer went out: HTTP/1's own timers run from here.
        this.deadline = None;
        Pin::new(&mut this.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.deadline = None;
        Pin::new(&mut this.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// A connection's stream whose writes fail once they have made no
/// progress for [`WRITE_STALL_TIMEOUT`].
pub(super) struct WriteStall<S> {
    stream: S,
    /// Since the first write that could not proceed, when one is waiting.
    stalled: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<S> WriteStall<S> {
    pub(super) fn new(stream: S) -> WriteStall<S> {
        WriteStall {
            stream,
            stalled: None,
        }
    }

    /// `polled`, or a time-out once writes have waited too long.
    fn watch<T>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if polled.is_ready() {
            self.stalled = None;
            return polled;
        }
        let stalled = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(WRITE_STALL_TIMEOUT)));
        match stalled.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client has read none of its answer for 2 s",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for WriteStall<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for WriteStall<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.stream).poll_write(cx, buf);
        this.watch(cx, polled)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.stream).poll_write_vectored(cx, bufs);
        this.watch(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.stream).poll_flush(cx);
        this.watch(cx, polled)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.stream).poll_shutdown(cx);
        this.watch(cx, polled)
    }
}
