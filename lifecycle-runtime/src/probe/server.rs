//! The probe server: hyper on its own OS thread and its own runtime, so a
//! saturated or stalled application runtime still gets a precise answer in
//! time (checks themselves run on the application runtime). Hardened
//! against slow, idle and oversized clients, and against its own panics:
//! whatever the panic policy, a panic here is logged and the server keeps
//! answering.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::thread::JoinHandle;
use std::time::Duration;

use hyper::body::Incoming;
#[cfg(not(feature = "grpc"))]
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, StatusCode};
#[cfg(feature = "grpc")]
use hyper_util::rt::TokioExecutor;
use hyper_util::rt::{TokioIo, TokioTimer};
#[cfg(feature = "grpc")]
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpSocket};
use tokio_util::sync::CancellationToken;

use crate::panics::contained;
use crate::probe::http::{plain, Answer};
use crate::probe::reasons::Peer;
use crate::stop_budget::STOP_GRACE;

/// A probe's request line and headers fit well inside this; anything larger
/// is not a probe.
const MAX_HEADER_BYTES: usize = 16 * 1024;
const MAX_HEADERS: usize = 64;
/// The kubelet sends its whole request at once; a connection that has not
/// by then is idle or hostile.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(2);
const MAX_CONNECTIONS: usize = 512;
/// Connections the kernel completes and queues for the accept loop. std's
/// `bind` listens with 128, which a flood of connections fills whenever
/// this thread falls behind for a moment: the kernel then drops the SYN of
/// the kubelet's next probe, and its retry comes 1 s later, the probe's
/// whole default timeout. Capped by `net.core.somaxconn` (4096 by default).
const LISTEN_BACKLOG: u32 = 1024;
/// The kubelet reads its answer at once; a client whose answers have not
/// moved for this long (it reads nothing, its window is closed: pipelined
/// requests whose answers it never takes) is not reading any more, and the
/// header read timeout cannot see it, since the server has stopped reading
/// too.
const WRITE_STALL_TIMEOUT: Duration = Duration::from_secs(2);
/// HTTP/2 (gRPC) streams open at once on one connection: a gRPC client
/// needs one per call in flight, and a flood of streams is refused beyond.
#[cfg(feature = "grpc")]
const MAX_STREAMS: u32 = 64;
/// An HTTP/2 connection whose peer has not answered a ping within
/// [`PING_TIMEOUT`] of it is dead, and closed.
#[cfg(feature = "grpc")]
const PING_INTERVAL: Duration = Duration::from_secs(10);
#[cfg(feature = "grpc")]
const PING_TIMEOUT: Duration = Duration::from_secs(5);
/// An HTTP/2 client opens with this: until it has arrived, the server
/// cannot tell the protocol, and no HTTP timer runs.
#[cfg(feature = "grpc")]
const H2_PREFACE_LEN: usize = 24;
/// HTTP/2 flow-control windows, per stream and per connection.
#[cfg(feature = "grpc")]
const H2_WINDOW: u32 = 64 * 1024;

/// A running probe server.
pub(crate) struct ProbeServer {
    pub(crate) local_addr: SocketAddr,
    stop: CancellationToken,
    thread: Option<JoinHandle<()>>,
}

impl ProbeServer {
    /// Binds `addr` now (so a bad address fails start-up at once) and
    /// serves on a new thread, answering each request with `answer`; each
    /// request carries its connection's [`Peer`] in its extensions.
    pub(crate) fn start<A, Fut>(addr: SocketAddr, answer: A) -> io::Result<ProbeServer>
    where
        A: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Answer> + Send + 'static,
    {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let listener = {
            // The listener registers with the runtime that will serve it.
            let _entered = runtime.enter();
            listen(addr)?
        };
        let local_addr = listener.local_addr()?;
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        let thread = std::thread::Builder::new()
            .name("lifecycle-probes".into())
            .spawn(move || {
                crate::call::timers_never_blocked_on_this_thread();
                runtime.block_on(async move {
                    // The accept loop is a task, queued behind the
                    // connections it has just admitted. As the future that
                    // `block_on` drives, it was polled with a fresh budget
                    // of 128 accepts after every 61 tasks run: a flood got
                    // admitted twice as fast as its connections ran, so
                    // sockets piled up past the cap, and evictions at the
                    // cap closed connections not read yet, the kubelet's
                    // probe among them.
                    let graceful = Arc::new(GracefulShutdown::new());
                    let accepting = tokio::spawn(crate::call::task(accept_contained(
                        listener,
                        Arc::new(answer),
                        stopped,
                        graceful.clone(),
                    )));
                    let _ = accepting.await;
                    // Answers in flight are written, HTTP/2 clients get a
                    // GOAWAY and the end of their streams.
                    if let Ok(graceful) = Arc::try_unwrap(graceful) {
                        let _ = tokio::time::timeout(STOP_GRACE, graceful.shutdown()).await;
                    }
                });
                // Connections still open are dropped with the runtime.
                runtime.shutdown_background();
            })?;
        Ok(ProbeServer {
            local_addr,
            stop,
            thread: Some(thread),
        })
    }

    /// Stops accepting and closes every connection.
    pub(crate) fn stop(mut self) {
        self.stop.cancel();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A listener on `addr` with a backlog of [`LISTEN_BACKLOG`], inside a
/// runtime.
fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
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

/// The open connections, oldest first. At the cap, the oldest connection
/// that is not answering a probe right now (idle, or still sending its
/// headers) is closed to make room, or failing that the oldest of all: a
/// new connection, as the kubelet opens for each probe, always gets in,
/// and the count of sockets stays bounded.
struct Connections {
    open: Mutex<VecDeque<Slot>>,
    next_id: AtomicU64,
}

struct Slot {
    id: u64,
    /// Requests being answered (HTTP/2 answers several at once).
    busy: Arc<AtomicUsize>,
    close: CancellationToken,
}

impl Connections {
    fn new() -> Connections {
        Connections {
            open: Mutex::new(VecDeque::new()),
            next_id: AtomicU64::new(0),
        }
    }

    /// A slot for a new connection, closing an old one at the cap.
    fn admit(&self) -> (u64, Arc<AtomicUsize>, CancellationToken) {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if open.len() >= MAX_CONNECTIONS {
            let oldest_idle = open
                .iter()
                .position(|slot| slot.busy.load(Ordering::SeqCst) == 0)
                .unwrap_or(0);
            if let Some(evicted) = open.remove(oldest_idle) {
                evicted.close.cancel();
            }
        }
        let slot = Slot {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            busy: Arc::new(AtomicUsize::new(0)),
            close: CancellationToken::new(),
        };
        let admitted = (slot.id, slot.busy.clone(), slot.close.clone());
        open.push_back(slot);
        admitted
    }

    fn release(&self, id: u64) {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(index) = open.iter().position(|slot| slot.id == id) {
            open.remove(index);
        }
    }
}

/// Marks a connection busy while it answers a request.
struct Busy(Arc<AtomicUsize>);

impl Busy {
    fn enter(count: &Arc<AtomicUsize>) -> Busy {
        count.fetch_add(1, Ordering::SeqCst);
        Busy(count.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The accept loop, started again should it ever panic. Each connection
/// is watched by `graceful`, for the stop.
async fn accept_contained<A, Fut>(
    listener: TcpListener,
    answer: Arc<A>,
    stop: CancellationToken,
    graceful: Arc<GracefulShutdown>,
) where
    A: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Answer> + Send + 'static,
{
    let listener = Arc::new(listener);
    let connections = Arc::new(Connections::new());
    while contained(
        "probe server's accept loop",
        accept(&listener, &answer, &connections, &stop, &graceful),
    )
    .await
    .is_err()
    {
        // A panic that recurs at once must not spin this thread.
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn accept<A, Fut>(
    listener: &TcpListener,
    answer: &Arc<A>,
    connections: &Arc<Connections>,
    stop: &CancellationToken,
    graceful: &GracefulShutdown,
) where
    A: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Answer> + Send + 'static,
{
    let http = http_settings();
    loop {
        let (stream, peer) = tokio::select! {
            _ = stop.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: back off, retry.
                    tracing::warn!("probe server accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let (id, busy, close) = connections.admit();
        let _ = stream.set_nodelay(true);
        let connection = serve_connection(&http, stream, peer, answer.clone(), busy, graceful);
        let connections = connections.clone();
        tokio::spawn(crate::call::task(async move {
            let _ = contained("probe server's connection", async {
                // On the stop, `graceful` ends it; on an eviction, it is
                // dropped at once.
                tokio::select! {
                    _ = connection => {}
                    _ = close.cancelled() => {}
                }
            })
            .await;
            connections.release(id);
        }));
    }
}

/// The HTTP settings of every probe connection: HTTP/1 only, or with the
/// `grpc` feature HTTP/1 and HTTP/2 told apart by the client's first bytes.
#[cfg(not(feature = "grpc"))]
pub(crate) type HttpSettings = http1::Builder;
#[cfg(feature = "grpc")]
pub(crate) type HttpSettings = auto::Builder<TokioExecutor>;

/// What bounds a client's requests, in size and in time.
pub(crate) fn http_settings() -> HttpSettings {
    // HTTP/1: the header timeout also closes keep-alive connections left
    // idle; some health checkers send the request and then their FIN:
    // `half_close` answers on the read side they left open instead of
    // dropping the request.
    macro_rules! http1 {
        ($builder:expr) => {
            $builder
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .max_headers(MAX_HEADERS)
                .max_buf_size(MAX_HEADER_BYTES)
                .keep_alive(true)
                .half_close(true)
        };
    }
    #[cfg(not(feature = "grpc"))]
    {
        let mut http = http1::Builder::new();
        http1!(http);
        http
    }
    #[cfg(feature = "grpc")]
    {
        let mut http = auto::Builder::new(TokioExecutor::new());
        http1!(http.http1());
        // HTTP/2: streams and header blocks bounded, dead peers found by
        // pings. A client that reads nothing stalls its socket's writes,
        // which `WriteStall` ends; flow control bounds what is buffered
        // for it meanwhile.
        http.http2()
            .timer(TokioTimer::new())
            .max_concurrent_streams(MAX_STREAMS)
            .max_header_list_size(MAX_HEADER_BYTES as u32)
            // What a client may send before the server has read it: a
            // health request is a few bytes, and hyper hands window back
            // as the service reads, so this bounds what each stream and
            // connection can make the server buffer.
            .initial_stream_window_size(H2_WINDOW)
            .initial_connection_window_size(H2_WINDOW)
            .keep_alive_interval(PING_INTERVAL)
            .keep_alive_timeout(PING_TIMEOUT);
        http
    }
}

/// Serves one connection from `peer` as the probe server serves each: with
/// `http`'s settings, each request carrying the [`Peer`] and answered by
/// `answer`, `busy` counting the requests being answered, a panicking
/// answer turned into a 500, its writes failing once they have stalled for
/// [`WRITE_STALL_TIMEOUT`], ended gracefully by `graceful`. Ends when the
/// connection does, with the error that ended it if one did.
// hyper's HTTP/1 error is boxed here; the `grpc` feature's is already.
#[cfg_attr(feature = "grpc", allow(clippy::useless_conversion))]
pub(crate) fn serve_connection<S, A, Fut>(
    http: &HttpSettings,
    stream: S,
    peer: SocketAddr,
    answer: Arc<A>,
    busy: Arc<AtomicUsize>,
    graceful: &GracefulShutdown,
) -> impl Future<Output = Result<(), Box<dyn std::error::Error + Send + Sync>>> + Send + 'static
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    A: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Answer> + Send + 'static,
{
    #[cfg(feature = "grpc")]
    let stream = PrefaceDeadline::new(stream);
    let connection = http.serve_connection(
        TokioIo::new(WriteStall::new(stream)),
        service_fn(move |mut request: Request<Incoming>| {
            request.extensions_mut().insert(Peer(peer));
            let busy = Busy::enter(&busy);
            // A gRPC client reads a failure from a gRPC status, not a 500.
            #[cfg(feature = "grpc")]
            let grpc = crate::grpc::is_grpc(&request);
            let answer = contained("probe server's answer", answer(request));
            async move {
                let response = answer.await.unwrap_or_else(|()| {
                    #[cfg(feature = "grpc")]
                    if grpc {
                        return tonic::Status::internal("internal error").into_http();
                    }
                    plain(StatusCode::INTERNAL_SERVER_ERROR, "internal error\n")
                });
                drop(busy);
                Ok::<_, Infallible>(response)
            }
        }),
    );
    #[cfg(feature = "grpc")]
    let connection = connection.into_owned();
    let connection = graceful.watch(connection);
    async move { connection.await.map_err(Into::into) }
}

/// A connection's stream whose reads fail when the client has not sent the
/// first [`H2_PREFACE_LEN`] bytes within [`HEADER_READ_TIMEOUT`] and no
/// answer has been written: while the server reads them to tell HTTP/1
/// from HTTP/2, neither protocol's timer runs yet.
#[cfg(feature = "grpc")]
struct PrefaceDeadline<S> {
    stream: S,
    read: usize,
    /// `None` once the preface is in or an answer has been written.
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
}

#[cfg(feature = "grpc")]
impl<S> PrefaceDeadline<S> {
    fn new(stream: S) -> PrefaceDeadline<S> {
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
struct WriteStall<S> {
    stream: S,
    /// Since the first write that could not proceed, when one is waiting.
    stalled: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<S> WriteStall<S> {
    fn new(stream: S) -> WriteStall<S> {
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

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::sync::atomic::AtomicU32;

    use super::*;

    fn exchange(addr: SocketAddr, path: &str) -> String {
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: probe\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        answer
    }

    #[test]
    fn a_panic_in_the_probe_server_is_contained_and_it_keeps_answering() {
        // Stands for either panic policy: counts what it would act on.
        static UNCONTAINED: AtomicU32 = AtomicU32::new(0);
        crate::panics::install_with(|description| {
            eprintln!("uncontained: {description}");
            UNCONTAINED.fetch_add(1, Ordering::SeqCst);
        });
        let answer = |request: Request<Incoming>| async move {
            if request.uri().path() == "/explode" {
                panic!("the probe server's own code exploded");
            }
            plain(StatusCode::OK, "ok\n")
        };
        let server = ProbeServer::start("127.0.0.1:0".parse().unwrap(), answer).unwrap();
        let exploded = exchange(server.local_addr, "/explode");
        assert!(
            exploded.starts_with("HTTP/1.1 500 "),
            "a panicking answer is a 500: {exploded:?}"
        );
        for _ in 0..3 {
            let answer = exchange(server.local_addr, "/livez");
            assert!(answer.starts_with("HTTP/1.1 200 "), "{answer:?}");
        }
        let _ = std::panic::take_hook();
        assert_eq!(
            UNCONTAINED.load(Ordering::SeqCst),
            0,
            "the panic reached the panic policy"
        );
        server.stop();
    }

    type Served = tokio::task::JoinHandle<Result<(), Box<dyn std::error::Error + Send + Sync>>>;

    /// Serves `server` as the probe server serves a connection, answering
    /// every request `200 ok`, on a task of its own. The connection is
    /// ended gracefully once the `GracefulShutdown` returned is dropped.
    fn serve_ok(server: tokio::io::DuplexStream) -> (Served, GracefulShutdown) {
        let answer = |_: Request<Incoming>| async { plain(StatusCode::OK, "ok\n") };
        let graceful = GracefulShutdown::new();
        let served = tokio::spawn(serve_connection(
            &http_settings(),
            server,
            "127.0.0.1:40000".parse().unwrap(),
            Arc::new(answer),
            Arc::new(AtomicUsize::new(0)),
            &graceful,
        ));
        (served, graceful)
    }

    /// HTTP/2 with prior knowledge, as h2c clients send it: the preface, a
    /// SETTINGS frame, and a HEADERS frame for `GET /livez` (HPACK: GET and
    /// http from the static table, the path and authority as literals).
    const H2_GET: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\
        \x00\x00\x06\x04\x00\x00\x00\x00\x00\x00\x03\x00\x00\x00\x64\
        \x00\x00\x11\x01\x05\x00\x00\x00\x01\x82\x86\x04\x06/livez\x01\x05probe";

    #[tokio::test]
    async fn http2_prior_knowledge_is_served_only_with_the_grpc_feature() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        let (mut client, server) = tokio::io::duplex(64 * 1024);
        let _served = serve_ok(server);
        client.write_all(H2_GET).await.unwrap();
        let mut received = Vec::new();
        let mut buf = [0; 1024];
        // Enough for the server's SETTINGS frame and more, or its refusal.
        while received.len() < 64 {
            let read = tokio::time::timeout(Duration::from_secs(5), client.read(&mut buf))
                .await
                .expect("an answer in time")
                .unwrap();
            if read == 0 {
                break;
            }
            received.extend_from_slice(&buf[..read]);
        }
        if cfg!(feature = "grpc") {
            // A frame header: 3 bytes of length, then the type, SETTINGS.
            assert_eq!(received.get(3), Some(&0x04), "{received:?}");
            // A HEADERS frame (type 1) on stream 1: the answer.
            let answered = received
                .windows(9)
                .any(|w| w[3] == 0x01 && w[5..9] == [0, 0, 0, 1]);
            assert!(answered, "no HEADERS frame for stream 1: {received:?}");
        } else {
            let text = String::from_utf8_lossy(&received);
            assert!(
                text.is_empty()
                    || text.starts_with("HTTP/1.1 505")
                    || text.starts_with("HTTP/1.1 400"),
                "HTTP/1 only: {text:?}"
            );
        }
    }

    #[tokio::test]
    async fn a_client_that_never_reads_its_answers_is_closed() {
        use tokio::io::AsyncWriteExt;

        let (mut client, server) = tokio::io::duplex(1024);
        let (connection, _graceful) = serve_ok(server);
        // Pipelined requests, none of the answers read: the answers fill
        // the stream, then the requests.
        let writer = tokio::spawn(async move {
            while client
                .write_all(b"GET /livez HTTP/1.1\r\nHost: probe\r\n\r\n")
                .await
                .is_ok()
            {}
        });
        let ended = tokio::time::timeout(WRITE_STALL_TIMEOUT * 2, connection)
            .await
            .expect("the connection still open twice the write stall timeout on");
        assert!(ended.unwrap().is_err(), "the connection ends on an error");
        writer.abort();
    }

    #[cfg(feature = "grpc")]
    #[tokio::test]
    async fn an_http2_client_that_never_reads_its_answers_is_closed() {
        use tokio::io::AsyncWriteExt;

        let (mut client, server) = tokio::io::duplex(1024);
        let (connection, _graceful) = serve_ok(server);
        // `GET /` on stream `id`, whole in one HEADERS frame: :method GET,
        // :scheme http, :path /, :authority probe.
        let request = |id: u32| {
            let block = b"\x82\x86\x84\x01\x05probe";
            let mut frame = vec![0, 0, block.len() as u8, 0x1, 0x1 | 0x4];
            frame.extend_from_slice(&id.to_be_bytes());
            frame.extend_from_slice(block);
            frame
        };
        // A few requests at a time, so that the streams answered keep
        // them under the limit, none of the answers read: the answers fill
        // the stream, then the requests.
        let writer = tokio::spawn(async move {
            client
                .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
                .await
                .unwrap();
            let mut id = 1;
            loop {
                let mut wave = Vec::new();
                for _ in 0..4 {
                    wave.extend(request(id));
                    id += 2;
                }
                if client.write_all(&wave).await.is_err() {
                    break;
                }
                tokio::task::yield_now().await;
            }
            client
        });
        let ended = tokio::time::timeout(WRITE_STALL_TIMEOUT * 2, connection)
            .await
            .expect("the connection still open twice the write stall timeout on");
        assert!(ended.unwrap().is_err(), "the connection ends on an error");
        writer.abort();
    }
}
