//! Long-lived connections through a stop: the long-lived fixture, with real clients connected — a raw
//! HTTP/1.1 client reading server-sent events, tokio-tungstenite on a
//! WebSocket, hyper's HTTP/2 client, tonic's client on a server stream —
//! across a SIGTERM. Each test asserts the exit code, that the
//! `on_shutdown` hook flushed the acknowledged writes, the time from the
//! signal to the exit, and how each client saw its connection end.
//!
//! That last one is read off each client's own socket, below its protocol
//! library ([`Watched`]), since libraries such as tungstenite turn a reset
//! after a close handshake into a clean end of their own: an orderly end is
//! end-of-stream (the server's FIN) with no read or write failing. A reset
//! shows as a read failing with `ConnectionReset`, or, when it follows the
//! server's FIN (Linux sends one on closing a socket with unread bytes),
//! as the client's next write failing and the socket's pending error.
//!
//! Timing-sensitive, so its own test binary, its tests one at a time.

use std::io;
use std::net::SocketAddr;
use std::ops::Range;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use lifecycle_runtime::grpc::proto::health_client::HealthClient;
use lifecycle_runtime::grpc::proto::{HealthCheckRequest, HealthCheckResponse};
use lifecycle_testing::probe::{http_probe, DEFAULT_TIMEOUT};
use lifecycle_testing::service::StopReport;
use lifecycle_testing::{Service, Stop};
use lifecycle_tests::{fixture, try_request, KeepAliveClient, Scratch, ServiceExt, CLIENT_TIMEOUT};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::runtime::Runtime;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

const LONG_LIVED: &str = env!("CARGO_BIN_EXE_long-lived");
const DRAIN_DELAY: Duration = Duration::from_millis(300);
/// The connection drain where lifecycle ends the connections: long enough
/// to tell its end from the drain delay's.
const CONNECTION_DRAIN: Duration = Duration::from_millis(1000);
/// The connection drain where the handlers end their streams themselves:
/// long enough that a stop that waited for it is told apart.
const LONG_CONNECTION_DRAIN: Duration = Duration::from_millis(5000);
/// How long an ended connection may read and discard before it closes.
const DISCARD: Duration = Duration::from_secs(1);
/// What a loaded 2-core machine may add to a stop's own timing (timers,
/// wake-ups of the service and of the clients, behind other processes'
/// builds and tests); still well below the differences each test tells
/// apart.
const MARGIN: Duration = Duration::from_millis(1500);
/// `LIFECYCLE_SHUTDOWN_TIMEOUT_MS` where `main` never returns.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_millis(5000);
/// The long-lived fixture's `on_shutdown` hook's `timeout_ms`: the hooks'
/// budget, as it has one hook. Its quick flush leaves most of it, and
/// the reserve, between the exit and the deadline.
const HOOK_BUDGET: Duration = Duration::from_millis(3000);
/// What lifecycle keeps between the hooks' budget and the deadline.
const HOOK_RESERVE: Duration = Duration::from_millis(250);
/// How long a pinging WebSocket client goes on pinging after it read the
/// end: well within the time an ended connection keeps discarding.
const PINGING_AFTER_END: Duration = Duration::from_millis(100);
/// For anything waited on.
const DEADLINE: Duration = Duration::from_secs(15);
/// The kubelet's grace period: a service killed at its end fails the
/// test's exit code.
const GRACE: Duration = Duration::from_secs(30);
/// The acknowledged writes of every test, which the hook must flush.
const WRITES: [&str; 5] = ["write 1", "write 2", "write 3", "write 4", "write 5"];

/// One test at a time: their timings must not include each other's load.
static SERIAL: Mutex<()> = Mutex::new(());

fn ms(duration: Duration) -> String {
    duration.as_millis().to_string()
}

/// The clients' runtime.
fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// What a client's end returned, once the stop is over.
fn finished<T>(runtime: &Runtime, client: JoinHandle<T>) -> T {
    runtime
        .block_on(async { tokio::time::timeout(DEADLINE, client).await })
        .unwrap_or_else(|_| panic!("a client's connection still open {DEADLINE:?} after the exit"))
        .unwrap()
}

/// When, after the signal, lifecycle ends the connections left at the
/// connection drain's end: after the drain delay and the drain.
fn connection_drain_end() -> Range<Duration> {
    let drained = DRAIN_DELAY + CONNECTION_DRAIN;
    drained..drained + MARGIN
}

/// The file in [`Streams`]'s scratch folder where the fixture's hook
/// flushes the writes; the hook creates it.
const FLUSH_FILE_NAME: &str = "flush";

/// The long-lived fixture, ready, with [`WRITES`] acknowledged.
struct Streams {
    service: Service,
    /// The application's HTTP address.
    app: SocketAddr,
    /// The folder of the [`FLUSH_FILE_NAME`] file.
    scratch: Scratch,
    /// [`SERIAL`], held from before the start until the fixture and its
    /// flush file are gone (fields drop in order): every test starts one,
    /// so this keeps them one at a time.
    _serial: MutexGuard<'static, ()>,
}

impl Streams {
    /// Starts the fixture with `LISTENER=listener`, `HANDLERS=handlers`,
    /// the [`DRAIN_DELAY`] and `env`'s settings in milliseconds, once no
    /// other test's fixture runs; waits until it is ready, and makes the
    /// writes.
    fn start(listener: &str, handlers: &str, env: &[(&str, Duration)]) -> Streams {
        // A test that panicked poisons the lock; the next may still run.
        let serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
        let scratch = Scratch::new("lifecycle-streams-flush");
        let builder = fixture(LONG_LIVED)
            .env("LISTENER", listener)
            .env("HANDLERS", handlers)
            .env("FLUSH_FILE", scratch.path(FLUSH_FILE_NAME))
            .env("LIFECYCLE_DRAIN_DELAY_MS", ms(DRAIN_DELAY));
        let service = env
            .iter()
            .fold(builder, |builder, (key, value)| {
                builder.env(key, ms(*value))
            })
            .start()
            .unwrap();
        service
            .wait_passing(lifecycle_testing::Endpoint::Readyz, DEADLINE)
            .unwrap();
        let app = match listener {
            "lifecycle" => service.app_addr().unwrap(),
            // tokio's listener tells lifecycle nothing: the fixture's line.
            _ => service
                .app_url()
                .strip_prefix("http://")
                .and_then(|addr| addr.parse().ok())
                .expect("app listening on http://IP:PORT"),
        };
        for (index, write) in WRITES.iter().enumerate() {
            let request = format!(
                "POST /write HTTP/1.1\r\nHost: {app}\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n{write}",
                write.len()
            );
            let answer = KeepAliveClient::new(app, CLIENT_TIMEOUT)
                .send(request.as_bytes())
                .unwrap();
            assert_eq!(
                (answer.status, answer.body.as_str()),
                (200, format!("ack {}\n", index + 1).as_str()),
            );
        }
        Streams {
            service,
            app,
            scratch,
            _serial: serial,
        }
    }

    /// [`Streams::start`] on lifecycle's listener with `handlers` and
    /// `connection_drain`, its only other setting.
    fn on_lifecycles_listener(handlers: &str, connection_drain: Duration) -> Streams {
        let env = [("LIFECYCLE_CONNECTION_DRAIN_MS", connection_drain)];
        Streams::start("lifecycle", handlers, &env)
    }

    /// The gRPC server's address: the second listener the application
    /// bound through lifecycle's (bound before it became ready).
    fn grpc(&self) -> SocketAddr {
        let addrs = self.service.app_addrs();
        assert_eq!(addrs.len(), 2, "the application's addresses: {addrs:?}");
        assert_eq!(addrs[0], self.app);
        addrs[1]
    }

    /// SIGTERM, and the kubelet's grace: the instant of the signal, and
    /// what the stop showed.
    fn stop(&mut self) -> (Instant, StopReport) {
        let signalled = Instant::now();
        let stopped = self.service.stop(Stop::grace(GRACE));
        eprintln!("signal to exit: {:?}", stopped.signal_to_exit);
        (signalled, stopped)
    }

    /// [`Streams::stop`], asserting that the service exited 0 and that
    /// the hook flushed the writes.
    fn stop_cleanly(&mut self) -> (Instant, StopReport) {
        let (signalled, stopped) = self.stop();
        assert_eq!(stopped.exit.code, Some(0), "{stopped:?}");
        self.assert_flushed();
        (signalled, stopped)
    }

    /// [`Streams::stop_cleanly`] where lifecycle ends the connections at
    /// the [`CONNECTION_DRAIN`]'s end: asserts that the exit followed,
    /// within the time the ended connections may discard for.
    fn stop_at_connection_drain(&mut self) -> (Instant, StopReport) {
        let (signalled, stopped) = self.stop_cleanly();
        let ended = connection_drain_end();
        assert_within(
            "exited",
            stopped.signal_to_exit,
            &(ended.start..ended.end + DISCARD),
        );
        (signalled, stopped)
    }

    /// SIGTERM alone, for a test that watches the stop as it goes: the
    /// instant of the signal.
    fn signal(&self) -> Instant {
        let signalled = Instant::now();
        self.service.signal(libc::SIGTERM);
        signalled
    }

    /// After [`Streams::signal`]: waits for the exit, and asserts that it
    /// was 0 and that the hook flushed the writes.
    fn assert_exits_cleanly(&mut self) {
        let exit = self.service.wait_exit(DEADLINE).unwrap();
        assert_eq!(exit.code, Some(0), "{}", self.service.log_text());
        self.assert_flushed();
    }

    /// Asserts that the hook flushed every acknowledged write.
    fn assert_flushed(&self) {
        let flush_file = self.scratch.path(FLUSH_FILE_NAME);
        let flushed = std::fs::read_to_string(&flush_file).unwrap_or_else(|e| {
            panic!(
                "the on_shutdown hook flushed nothing ({}: {e}); log:\n{}",
                flush_file.display(),
                self.service.log_text()
            )
        });
        assert_eq!(flushed.lines().collect::<Vec<_>>(), WRITES);
    }
}

/// How the server's side of a connection ended, as the client's socket
/// read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// End-of-stream: the server's FIN, an orderly close.
    Eof,
    /// A read failed: `ConnectionReset` is the server's RST.
    Error(io::ErrorKind),
}

/// What a client's socket saw.
#[derive(Default)]
struct Seen {
    /// Every byte the server sent.
    received: Vec<u8>,
    /// The first end of the server's side, and when.
    end: Option<(End, Instant)>,
    /// The first write that failed.
    write_error: Option<io::ErrorKind>,
    /// The error the socket held when asked (`SO_ERROR`): a reset that
    /// came after the server's FIN fails no read, and leaves one.
    socket_error: Option<io::ErrorKind>,
}

impl std::fmt::Debug for Seen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Seen")
            .field("received", &format_args!("{} bytes", self.received.len()))
            .field("end", &self.end.map(|(end, _)| end))
            .field("write_error", &self.write_error)
            .field("socket_error", &self.socket_error)
            .finish()
    }
}

/// A client's TCP connection that records what it sees in a [`Seen`],
/// below any protocol library.
struct Watched {
    stream: tokio::net::TcpStream,
    seen: Arc<Mutex<Seen>>,
}

impl Watched {
    async fn connect(addr: SocketAddr, seen: Arc<Mutex<Seen>>) -> io::Result<Watched> {
        let stream = tokio::net::TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Watched { stream, seen })
    }

    fn seen(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen.lock().unwrap()
    }

    /// Records the socket's pending error, if it holds one.
    fn take_error(&self) {
        if let Some(error) = self.stream.take_error().unwrap() {
            self.seen().socket_error = Some(error.kind());
        }
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let (before, room) = (buf.filled().len(), buf.remaining());
        let poll = Pin::new(&mut self.stream).poll_read(cx, buf);
        if let Poll::Ready(result) = &poll {
            let mut seen = self.seen();
            let end = match result {
                Ok(()) if buf.filled().len() > before => {
                    seen.received.extend_from_slice(&buf.filled()[before..]);
                    None
                }
                Ok(()) => (room > 0).then_some(End::Eof),
                Err(error) => Some(End::Error(error.kind())),
            };
            if let (Some(end), None) = (end, seen.end) {
                seen.end = Some((end, Instant::now()));
            }
        }
        poll
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.stream).poll_write(cx, buf);
        if let Poll::Ready(Err(error)) = &poll {
            self.seen().write_error.get_or_insert(error.kind());
        }
        poll
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// Asserts that no read or write failed on `client`'s socket: a reset
/// would make one fail.
fn assert_no_reset(client: &str, seen: &Seen) {
    assert!(
        matches!(seen.end, None | Some((End::Eof, _)))
            && seen.write_error.is_none()
            && seen.socket_error.is_none(),
        "{client}: not an orderly end: {seen:?}"
    );
}

/// Asserts that `what` came `after` the signal, within `window`.
fn assert_within(what: &str, after: Duration, window: &Range<Duration>) {
    assert!(
        window.contains(&after),
        "{what} {after:?} after the signal, outside {window:?}"
    );
}

/// Asserts that nothing failed on `client`'s socket and that `what` came
/// `at`, `window` after the signal: for an end the client saw above its
/// socket, such as a call's status.
fn assert_closed_in_order(
    client: &str,
    seen: &Mutex<Seen>,
    what: &str,
    at: Instant,
    signalled: Instant,
    window: &Range<Duration>,
) {
    assert_no_reset(client, &seen.lock().unwrap());
    assert_within(
        &format!("{client}: {what}"),
        at.duration_since(signalled),
        window,
    );
}

/// Asserts that the server ended `client`'s connection in order: its
/// socket read end-of-stream, `window` after the signal, and nothing
/// failed.
fn assert_ended_in_order(
    client: &str,
    seen: &Mutex<Seen>,
    signalled: Instant,
    window: &Range<Duration>,
) {
    // Copied out, so that the lock is free for the assertions below.
    let end = seen.lock().unwrap().end;
    let Some((_, at)) = end else {
        panic!(
            "{client}: its connection never ended: {:?}",
            seen.lock().unwrap()
        )
    };
    assert_closed_in_order(client, seen, "its connection ended", at, signalled, window);
}

/// A raw HTTP/1.1 client of `GET /events` that reads the chunked body
/// itself, so that it knows whether the final chunk came.
struct SseClient {
    reader: BufReader<Watched>,
    seen: Arc<Mutex<Seen>>,
    events: usize,
}

/// How an event stream ended for [`SseClient`].
#[derive(Debug)]
struct SseEnd {
    events: usize,
    /// The body's last chunk (`0\r\n\r\n`) came: the response ended, not
    /// its connection.
    final_chunk: bool,
    seen: Arc<Mutex<Seen>>,
}

/// One chunk of a chunked body.
enum Chunk {
    /// Data, with this many events in it.
    Events(usize),
    /// The final, empty chunk.
    Last,
    /// The connection ended inside the body.
    Cut,
}

impl SseClient {
    /// Opens a client of `addr` and spawns its read to the end on the
    /// clients' runtime.
    fn reading(runtime: &Runtime, addr: SocketAddr) -> JoinHandle<SseEnd> {
        let client = runtime.block_on(SseClient::open(addr));
        runtime.spawn(client.read_to_end())
    }

    /// Connects, sends the request, and reads the answer's head and the
    /// first event.
    async fn open(addr: SocketAddr) -> SseClient {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let mut stream = Watched::connect(addr, seen.clone()).await.unwrap();
        let request =
            format!("GET /events HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut reader = BufReader::new(stream);
        let mut head = String::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).await.unwrap();
            if line.trim_end().is_empty() {
                break;
            }
            head.push_str(&line);
        }
        assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
        assert!(
            head.to_ascii_lowercase()
                .contains("transfer-encoding: chunked"),
            "{head}"
        );
        let mut client = SseClient {
            reader,
            seen,
            events: 0,
        };
        match client.next_chunk().await {
            Chunk::Events(events) if events > 0 => client.events = events,
            _ => panic!("no first event from {addr}"),
        }
        client
    }

    async fn next_chunk(&mut self) -> Chunk {
        let mut size = String::new();
        match self.reader.read_line(&mut size).await {
            Ok(_) if size.ends_with("\r\n") => {}
            _ => return Chunk::Cut,
        }
        let size = size.trim_end().split(';').next().unwrap_or_default();
        let size = usize::from_str_radix(size, 16).expect("a chunk size");
        if size == 0 {
            return Chunk::Last;
        }
        // The data and its CRLF.
        let mut data = vec![0; size + 2];
        if self.reader.read_exact(&mut data).await.is_err() {
            return Chunk::Cut;
        }
        Chunk::Events(String::from_utf8_lossy(&data).matches("data: ").count())
    }

    /// Reads the body, then the connection, to their ends.
    async fn read_to_end(mut self) -> SseEnd {
        let final_chunk = loop {
            match self.next_chunk().await {
                Chunk::Events(events) => self.events += events,
                Chunk::Last => break true,
                Chunk::Cut => break false,
            }
        };
        // Trailers, then the server's close.
        let _ = self.reader.read_to_end(&mut Vec::new()).await;
        SseEnd {
            events: self.events,
            final_chunk,
            seen: self.seen,
        }
    }
}

/// A WebSocket client (tokio-tungstenite) of `/ws`.
struct WsClient {
    socket: WebSocketStream<Watched>,
    seen: Arc<Mutex<Seen>>,
}

/// How a WebSocket ended for [`WsClient`].
#[derive(Debug)]
struct WsEnd {
    /// The code of the server's Close frame, if one came.
    close: Option<u16>,
    /// Pongs to the client's pings.
    pongs: usize,
    seen: Arc<Mutex<Seen>>,
}

impl WsClient {
    /// Connects and sees one message echoed.
    async fn open(addr: SocketAddr) -> WsClient {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let stream = Watched::connect(addr, seen.clone()).await.unwrap();
        let (mut socket, _) = tokio_tungstenite::client_async(format!("ws://{addr}/ws"), stream)
            .await
            .unwrap();
        socket.send(Message::text("hello")).await.unwrap();
        match socket.next().await {
            Some(Ok(Message::Text(text))) if text.as_str() == "hello" => {}
            other => panic!("no echo from {addr}: {other:?}"),
        }
        WsClient { socket, seen }
    }

    /// Reads until the connection ends, answering a Close as
    /// tokio-tungstenite does.
    async fn read_to_end(mut self) -> WsEnd {
        let mut close = None;
        while let Some(Ok(message)) = self.socket.next().await {
            if let Message::Close(frame) = message {
                close = frame.map(|f| u16::from(f.code));
            }
        }
        WsEnd {
            close,
            pongs: 0,
            seen: self.seen,
        }
    }

    /// Sends a ping every `every` while it reads, until the connection
    /// ends, then goes on pinging for [`PINGING_AFTER_END`], as a client
    /// whose writer has not heard of the end yet would: the server must
    /// still take the pings in, where a closed socket would answer them
    /// with a reset. tungstenite writes nothing on a connection it saw
    /// end, so those pings are written raw.
    async fn ping_to_end(self, every: Duration) -> WsEnd {
        /// A ping frame from a client: FIN and opcode 9, masked (with a
        /// zero key), no payload.
        const EMPTY_PING: [u8; 6] = [0x89, 0x80, 0, 0, 0, 0];
        let (mut sink, mut stream) = self.socket.split();
        let mut ticks = tokio::time::interval(every);
        let mut pongs = 0;
        loop {
            tokio::select! {
                _ = ticks.tick() => {
                    // A failed write shows in what the socket saw.
                    let _ = sink.send(Message::Ping(Bytes::new())).await;
                }
                message = stream.next() => match message {
                    Some(Ok(Message::Pong(_))) => pongs += 1,
                    Some(Ok(_)) => {}
                    Some(Err(_)) | None => break,
                },
            }
        }
        let mut socket = sink.reunite(stream).unwrap().into_inner();
        let until = Instant::now() + PINGING_AFTER_END;
        loop {
            ticks.tick().await;
            if Instant::now() >= until || socket.write_all(&EMPTY_PING).await.is_err() {
                break;
            }
        }
        socket.take_error();
        WsEnd {
            close: None,
            pongs,
            seen: self.seen,
        }
    }
}

/// hyper's HTTP/2 client (h2c, prior knowledge) on `GET /events`.
struct H2Client {
    body: Incoming,
    /// Kept, so that the connection is not closed for want of users.
    requests: SendRequest<Empty<Bytes>>,
    connection: JoinHandle<Result<(), hyper::Error>>,
    seen: Arc<Mutex<Seen>>,
}

/// How an HTTP/2 event stream ended for [`H2Client`].
#[derive(Debug)]
struct H2End {
    /// The body's end: `Ok` when the stream ended (END_STREAM).
    body: Result<(), String>,
    /// The connection future's result, and when it came.
    connection: Result<(), String>,
    closed: Instant,
    /// The error code of the first GOAWAY frame the server sent.
    goaway: Option<u32>,
    seen: Arc<Mutex<Seen>>,
}

impl H2Client {
    /// Connects, sends the request, and reads the first event.
    async fn open(addr: SocketAddr) -> H2Client {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let stream = Watched::connect(addr, seen.clone()).await.unwrap();
        let (mut requests, connection) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
                .await
                .unwrap();
        let connection = tokio::spawn(connection);
        requests.ready().await.unwrap();
        let request = http::Request::get(format!("http://{addr}/events"))
            .body(Empty::new())
            .unwrap();
        let response = requests.send_request(request).await.unwrap();
        assert_eq!(response.status(), 200);
        let mut body = response.into_body();
        match body.frame().await {
            Some(Ok(frame)) if frame.is_data() => {}
            other => panic!("no first event over HTTP/2 from {addr}: {other:?}"),
        }
        H2Client {
            body,
            requests,
            connection,
            seen,
        }
    }

    /// Reads the body to its end, then waits for the connection's.
    async fn read_to_end(mut self) -> H2End {
        let body = loop {
            match self.body.frame().await {
                Some(Ok(_)) => {}
                Some(Err(error)) => break Err(error.to_string()),
                None => break Ok(()),
            }
        };
        // The handle is kept until the connection ends: dropped at once,
        // the client would close the connection itself as soon as the
        // stream ended, maybe before the server's GOAWAY arrived. Kept, the
        // connection ends on the server's GOAWAY (or its close) alone.
        let connection = self.connection.await.unwrap().map_err(|e| e.to_string());
        let closed = Instant::now();
        drop(self.requests);
        let goaway = goaway(&self.seen.lock().unwrap().received);
        H2End {
            body,
            connection,
            closed,
            goaway,
            seen: self.seen,
        }
    }
}

/// The error code of the first GOAWAY frame among the HTTP/2 frames a
/// server sent, `received` from its first byte (a server's preface is a
/// frame).
fn goaway(received: &[u8]) -> Option<u32> {
    const GOAWAY: u8 = 0x7;
    let mut rest = received;
    while let Some(header) = rest.get(..9) {
        let length = u32::from_be_bytes([0, header[0], header[1], header[2]]) as usize;
        let payload = rest.get(9..9 + length)?;
        if header[3] == GOAWAY {
            return Some(u32::from_be_bytes(payload[4..8].try_into().unwrap()));
        }
        rest = &rest[9 + length..];
    }
    None
}

/// tonic's client on the fixture's server stream, `Health/Watch`, over a
/// [`Watched`] socket.
struct WatchClient {
    stream: tonic::Streaming<HealthCheckResponse>,
    seen: Arc<Mutex<Seen>>,
}

/// How a server stream ended for [`WatchClient`].
#[derive(Debug)]
struct WatchEnd {
    /// `Ok` when it ended with status OK, else its code and message.
    status: Result<(), (tonic::Code, String)>,
    /// When it ended.
    ended: Instant,
    seen: Arc<Mutex<Seen>>,
}

impl WatchClient {
    /// Connects, calls `Watch` and reads its first message.
    async fn open(addr: SocketAddr) -> WatchClient {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let socket = seen.clone();
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect_with_connector(tower::service_fn(move |_| {
                let seen = socket.clone();
                async move { Watched::connect(addr, seen).await.map(TokioIo::new) }
            }))
            .await
            .unwrap();
        let mut stream = HealthClient::new(channel)
            .watch(HealthCheckRequest::default())
            .await
            .unwrap()
            .into_inner();
        assert!(
            matches!(stream.message().await, Ok(Some(_))),
            "no first message on the server stream from {addr}"
        );
        WatchClient { stream, seen }
    }

    async fn read_to_end(mut self) -> WatchEnd {
        let status = loop {
            match self.stream.message().await {
                Ok(Some(_)) => {}
                Ok(None) => break Ok(()),
                Err(status) => break Err((status.code(), status.message().to_owned())),
            }
        };
        WatchEnd {
            status,
            ended: Instant::now(),
            seen: self.seen,
        }
    }
}

/// One client of each kind — SSE, WebSocket, HTTP/2, a gRPC server stream
/// — each reading its stream to its end on the clients' runtime.
struct Clients {
    sse: JoinHandle<SseEnd>,
    ws: JoinHandle<WsEnd>,
    h2: JoinHandle<H2End>,
    watch: JoinHandle<WatchEnd>,
}

impl Clients {
    /// Opens the four at once, on the fixture's HTTP and gRPC addresses.
    fn open(runtime: &Runtime, streams: &Streams) -> Clients {
        let (app, grpc) = (streams.app, streams.grpc());
        let (sse, ws, h2, watch) = runtime.block_on(async {
            tokio::join!(
                SseClient::open(app),
                WsClient::open(app),
                H2Client::open(app),
                WatchClient::open(grpc)
            )
        });
        Clients {
            sse: runtime.spawn(sse.read_to_end()),
            ws: runtime.spawn(ws.read_to_end()),
            h2: runtime.spawn(h2.read_to_end()),
            watch: runtime.spawn(watch.read_to_end()),
        }
    }

    /// How each ended, once the stop is over.
    fn finished(self, runtime: &Runtime) -> (SseEnd, WsEnd, H2End, WatchEnd) {
        (
            finished(runtime, self.sse),
            finished(runtime, self.ws),
            finished(runtime, self.h2),
            finished(runtime, self.watch),
        )
    }
}

#[test]
fn naive_handlers_on_tokios_listener_keep_main_running_yet_the_hooks_run_before_the_deadline() {
    let mut streams = Streams::start(
        "tokio",
        "naive",
        &[("LIFECYCLE_SHUTDOWN_TIMEOUT_MS", SHUTDOWN_TIMEOUT)],
    );
    let runtime = runtime();
    let sse = SseClient::reading(&runtime, streams.app);

    let (_, stopped) = streams.stop();
    // axum waits for the event stream, which never ends: main never
    // returns, and the exit says so.
    assert_eq!(stopped.exit.code, Some(1), "{stopped:?}");
    let message = stopped.termination_message.clone().unwrap_or_default();
    assert!(
        message.contains("still running: ") && message.contains("the body of main"),
        "{message:?}"
    );
    streams.assert_flushed();
    // The hooks started when their budget was left before the deadline,
    // and the exit followed them, before the deadline's own exit.
    let hooks_start = SHUTDOWN_TIMEOUT - HOOK_BUDGET - HOOK_RESERVE;
    assert_within(
        "exited",
        stopped.signal_to_exit,
        &(hooks_start..SHUTDOWN_TIMEOUT),
    );
    let sse = finished(&runtime, sse);
    assert!(
        !sse.final_chunk,
        "tokio's listener: the stream is cut by the exit, not ended: {sse:?}"
    );
}

#[test]
fn naive_handlers_on_lifecycles_listener_are_ended_in_order_at_the_connection_drain() {
    let mut streams = Streams::on_lifecycles_listener("naive", CONNECTION_DRAIN);
    let runtime = runtime();
    let clients = Clients::open(&runtime, &streams);

    let (signalled, stopped) = streams.stop_at_connection_drain();
    assert!(
        stopped
            .log
            .iter()
            .any(|l| l.contains("connection drain over: ended 4 connections")),
        "{stopped:#?}"
    );
    // Each connection ended by lifecycle at the drain's end, in order.
    let ended = connection_drain_end();
    let (sse, ws, h2, watch) = clients.finished(&runtime);
    assert!(!sse.final_chunk && sse.events > 0, "{sse:?}");
    assert_ended_in_order("SSE", &sse.seen, signalled, &ended);
    assert_eq!(ws.close, None, "the naive echo sends no Close: {ws:?}");
    assert_ended_in_order("WebSocket", &ws.seen, signalled, &ended);
    assert_ended_in_order("HTTP/2", &h2.seen, signalled, &ended);
    assert_ended_in_order("gRPC stream", &watch.seen, signalled, &ended);
}

#[test]
fn a_websocket_client_pinging_through_the_drain_reads_end_of_stream_never_a_reset() {
    let mut streams = Streams::on_lifecycles_listener("naive", CONNECTION_DRAIN);
    let app = streams.app;
    let runtime = runtime();
    // Several, so that a reset has several chances to show.
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let client = runtime.block_on(WsClient::open(app));
            runtime.spawn(client.ping_to_end(Duration::from_millis(10)))
        })
        .collect();

    let (signalled, _) = streams.stop_at_connection_drain();
    for (index, client) in clients.into_iter().enumerate() {
        let ws = finished(&runtime, client);
        assert!(ws.pongs > 0, "pings were answered until the end: {ws:?}");
        assert_ended_in_order(
            &format!("pinging WebSocket {index}"),
            &ws.seen,
            signalled,
            &connection_drain_end(),
        );
    }
}

#[test]
fn cooperative_handlers_end_their_streams_cleanly_without_waiting_for_the_drain() {
    let mut streams = Streams::on_lifecycles_listener("cooperative", LONG_CONNECTION_DRAIN);
    let runtime = runtime();
    let clients = Clients::open(&runtime, &streams);

    let (signalled, stopped) = streams.stop_cleanly();
    // Within the drain delay and a second; a stop that waited for the
    // connection drain would take more than five.
    assert_within(
        "exited",
        stopped.signal_to_exit,
        &(DRAIN_DELAY..DRAIN_DELAY + Duration::from_secs(1) + MARGIN),
    );
    assert!(
        !stopped
            .log
            .iter()
            .any(|l| l.contains("connection drain over")),
        "lifecycle ended no connection: {stopped:#?}"
    );
    // Each stream ended by its handler at shutdown_signal(), cleanly.
    let ended = DRAIN_DELAY..DRAIN_DELAY + MARGIN;
    let (sse, ws, h2, watch) = clients.finished(&runtime);
    assert!(sse.final_chunk, "the event stream's last chunk: {sse:?}");
    assert_ended_in_order("SSE", &sse.seen, signalled, &ended);
    assert_eq!(ws.close, Some(1001), "Going Away: {ws:?}");
    assert_ended_in_order("WebSocket", &ws.seen, signalled, &ended);
    const NO_ERROR: u32 = 0;
    assert_eq!(h2.goaway, Some(NO_ERROR), "{h2:?}");
    assert_eq!((&h2.body, &h2.connection), (&Ok(()), &Ok(())), "{h2:?}");
    // Its stream ended and GOAWAY said no other would come: hyper closes
    // the connection itself, without waiting for the server's FIN.
    let what = "its connection closed";
    assert_closed_in_order("HTTP/2", &h2.seen, what, h2.closed, signalled, &ended);
    assert_eq!(watch.status, Ok(()), "status OK: {watch:?}");
    // The call is over; tonic's client may close its idle connection
    // before the server does.
    let what = "its call ended";
    assert_closed_in_order(
        "gRPC stream",
        &watch.seen,
        what,
        watch.ended,
        signalled,
        &ended,
    );
}

/// Calls `check` until it passes, or panics at the deadline with what it
/// last said and the service's log.
fn wait_until(service: &Service, mut check: impl FnMut() -> Result<(), String>) {
    let until = Instant::now() + DEADLINE;
    loop {
        let Err(last) = check() else { return };
        assert!(
            Instant::now() < until,
            "{last}\nlog:\n{}",
            service.log_text()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Probes `/readyz?verbose` on `probe` until the `lifecycle` check's
/// reason is `expected`, or panics at the deadline with the last one.
fn wait_for_lifecycle_reason(service: &Service, expected: &str) {
    wait_until(service, || {
        let answer = http_probe(service.probe_addr(), "/readyz?verbose", DEFAULT_TIMEOUT);
        let verbose = answer.verbose();
        let reason = verbose.check("lifecycle").and_then(|c| c.reason.as_deref());
        if reason == Some(expected) {
            return Ok(());
        }
        Err(format!(
            "the lifecycle check's reason never read {expected:?}; last: {answer}"
        ))
    });
}

#[test]
fn the_lifecycle_check_names_the_connections_open_during_a_stop() {
    // Long enough for two observations and a connection in between.
    let drain_delay = Duration::from_secs(4);
    let mut streams = Streams::start(
        "lifecycle",
        "cooperative",
        &[
            ("LIFECYCLE_DRAIN_DELAY_MS", drain_delay),
            // The hook's time: the stop with no connection left.
            ("FLUSH_DELAY_MS", Duration::from_secs(1)),
        ],
    );
    let runtime = runtime();
    let first = SseClient::reading(&runtime, streams.app);

    let signalled = streams.signal();
    wait_for_lifecycle_reason(&streams.service, "shutting down (1 connection open)");
    // Still accepted in the drain delay, as load balancers catch up.
    let second = SseClient::reading(&runtime, streams.app);
    wait_for_lifecycle_reason(&streams.service, "shutting down (2 connections open)");
    // The streams end at shutdown_signal(); the hook runs after their
    // connections closed.
    wait_for_lifecycle_reason(&streams.service, "shutting down");
    assert!(
        signalled.elapsed() < drain_delay + DEADLINE,
        "the observations took too long to be in the stop"
    );

    streams.assert_exits_cleanly();
    for sse in [first, second] {
        let sse = finished(&runtime, sse);
        assert!(sse.final_chunk, "{sse:?}");
        assert_ended_in_order(
            "SSE",
            &sse.seen,
            signalled,
            &(drain_delay..drain_delay + MARGIN),
        );
    }
}

/// `lifecycle_connections_open` and `lifecycle_connections_ended_total`
/// as `GET /metrics` on the probe port serves them now.
fn connection_metrics(service: &Service) -> (u64, u64) {
    let answer = try_request(service.probe_addr(), "GET", "/metrics", &[])
        .unwrap_or_else(|e| panic!("GET /metrics: {e}\nlog:\n{}", service.log_text()));
    assert_eq!(answer.status, 200, "{answer:?}");
    let value = |name: &str| {
        answer
            .body
            .lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
            .and_then(|value| value.parse::<f64>().ok())
            .unwrap_or_else(|| panic!("no {name} in:\n{}", answer.body)) as u64
    };
    (
        value("lifecycle_connections_open"),
        value("lifecycle_connections_ended_total"),
    )
}

/// Scrapes until the connection metrics read `expected` (open, ended), or
/// panics at the deadline with the last reading.
fn wait_for_connection_metrics(service: &Service, expected: (u64, u64)) {
    wait_until(service, || {
        let read = connection_metrics(service);
        if read == expected {
            return Ok(());
        }
        Err(format!(
            "(open, ended) never read {expected:?}; last {read:?}"
        ))
    });
}

#[test]
fn metrics_count_the_open_connections_and_those_the_drain_ended() {
    let mut streams = Streams::start(
        "lifecycle",
        "naive",
        &[
            ("LIFECYCLE_CONNECTION_DRAIN_MS", CONNECTION_DRAIN),
            // The hook's time: a scrape after the drain's end.
            ("FLUSH_DELAY_MS", Duration::from_secs(1)),
        ],
    );
    let app = streams.app;
    let runtime = runtime();
    let (first, second, ws) = runtime.block_on(async {
        tokio::join!(
            SseClient::open(app),
            SseClient::open(app),
            WsClient::open(app)
        )
    });
    let first = runtime.spawn(first.read_to_end());
    let second = runtime.spawn(second.read_to_end());
    let ws = runtime.spawn(ws.read_to_end());
    wait_for_connection_metrics(&streams.service, (3, 0));

    let signalled = streams.signal();
    wait_for_connection_metrics(&streams.service, (0, 3));
    streams.assert_exits_cleanly();
    let ended = connection_drain_end();
    for sse in [first, second] {
        let sse = finished(&runtime, sse);
        assert_ended_in_order("SSE", &sse.seen, signalled, &ended);
    }
    let ws = finished(&runtime, ws);
    assert_ended_in_order("WebSocket", &ws.seen, signalled, &ended);
}

#[test]
fn tonic_sees_the_peers_address_through_lifecycles_listener() {
    let streams = Streams::on_lifecycles_listener("naive", LONG_CONNECTION_DRAIN);
    let grpc = streams.grpc();
    let runtime = runtime();
    let (client_addr, seen_by_server) = runtime.block_on(async {
        // The client's own end of the connection, to compare with.
        let local = Arc::new(Mutex::new(None));
        let recorded = local.clone();
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{grpc}"))
            .unwrap()
            .connect_with_connector(tower::service_fn(move |_| {
                let recorded = recorded.clone();
                async move {
                    let stream = tokio::net::TcpStream::connect(grpc).await?;
                    *recorded.lock().unwrap() = Some(stream.local_addr()?);
                    Ok::<_, io::Error>(TokioIo::new(stream))
                }
            }))
            .await
            .unwrap();
        let answer = HealthClient::new(channel)
            .check(HealthCheckRequest::default())
            .await
            .unwrap();
        let peer = answer
            .metadata()
            .get("x-peer-addr")
            .expect("the fixture's x-peer-addr header")
            .to_str()
            .unwrap()
            .to_owned();
        let local = local.lock().unwrap().expect("connected");
        (local, peer)
    });
    assert_eq!(
        seen_by_server,
        client_addr.to_string(),
        "Request::remote_addr() through lifecycle's listener"
    );
}
