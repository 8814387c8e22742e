//! What the example's tests share: the service started with a drain delay
//! and a journal of the test's own, messages posted to it, and what every
//! stop of a service whose streams end themselves must show.

#![allow(dead_code)] // each test file uses its own part of it

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use futures_util::{Stream, StreamExt};
use lifecycle_testing::service::StopReport;
use lifecycle_testing::{Service, Stop};
use lifecycle_tests::{fixture, KeepAliveClient, Scratch, CLIENT_TIMEOUT};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::WebSocketStream;

pub const STREAMS: &str = env!("CARGO_BIN_EXE_streams");

/// The drain delay: after SIGTERM the service keeps serving this long.
pub const DRAIN_DELAY: Duration = Duration::from_millis(300);

/// The connection drain, set to its default for all to see: a connection
/// still open this long after `shutdown_signal()` is ended by lifecycle.
pub const CONNECTION_DRAIN: Duration = Duration::from_secs(5);

/// Streams that end themselves at `shutdown_signal()` let the process exit
/// within drain delay + 1 s. The bound adds 1.5 s for a loaded machine and
/// stays far below drain delay + connection drain (5.3 s), where a stream
/// left open would end.
pub const EXIT_WITHIN: Duration = Duration::from_millis(300 + 1000 + 1500);

/// The kubelet's SIGKILL comes only past this: a stop that hangs is seen
/// as slow, not as killed.
pub const GRACE: Duration = Duration::from_secs(20);

/// A journal file of the test's own, not yet created, in a folder removed
/// with it.
pub struct Journal(Scratch);

impl Journal {
    fn new() -> Journal {
        Journal(Scratch::new("streams-journal"))
    }

    fn path(&self) -> PathBuf {
        self.0.path("journal.log")
    }

    /// Its lines; none when the file does not exist.
    pub fn lines(&self) -> Vec<String> {
        let path = self.path();
        match std::fs::read_to_string(&path) {
            Ok(text) => text.lines().map(str::to_owned).collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => panic!("{}: {e}", path.display()),
        }
    }
}

/// The example, started, with its application address and its journal.
pub struct Streams {
    pub service: Service,
    pub app: SocketAddr,
    pub journal: Journal,
}

impl Streams {
    /// Starts the example on a free application port, with
    /// [`DRAIN_DELAY`] and [`CONNECTION_DRAIN`], and waits until it
    /// listens.
    pub fn start() -> Streams {
        let journal = Journal::new();
        let service = fixture(STREAMS)
            .env("APP_ADDR", "127.0.0.1:0")
            .env("JOURNAL", journal.path())
            .env(
                "LIFECYCLE_DRAIN_DELAY_MS",
                DRAIN_DELAY.as_millis().to_string(),
            )
            .env(
                "LIFECYCLE_CONNECTION_DRAIN_MS",
                CONNECTION_DRAIN.as_millis().to_string(),
            )
            .start()
            .unwrap();
        let app = service.app_addr().unwrap();
        Streams {
            service,
            app,
            journal,
        }
    }

    /// `POST /messages` with `message`, on a connection of its own;
    /// panics unless it is accepted (202).
    pub fn post(&self, message: &str) {
        let request = format!(
            "POST /messages HTTP/1.1\r\nHost: streams\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{message}",
            message.len()
        );
        let answer = KeepAliveClient::new(self.app, CLIENT_TIMEOUT)
            .send(request.as_bytes())
            .unwrap_or_else(|e| panic!("POST /messages {message:?}: {e}"));
        assert_eq!(answer.status, 202, "POST /messages {message:?}: {answer:?}");
    }

    /// Posts `count` messages and returns them, in order.
    pub fn post_messages(&self, count: usize) -> Vec<String> {
        let messages: Vec<String> = (1..=count).map(|n| format!("message {n}")).collect();
        for message in &messages {
            self.post(message);
        }
        messages
    }

    /// SIGTERM, then SIGKILL past [`GRACE`].
    pub fn stop(&mut self) -> StopReport {
        self.service.stop(Stop::grace(GRACE))
    }
}

/// What a stop must show when every stream ends itself at
/// `shutdown_signal()`: exit 0 by itself, after serving through the drain
/// delay, within [`EXIT_WITHIN`], no connection left for lifecycle to end,
/// and the shutdown hook's journal of `journaled` messages.
#[track_caller]
pub fn assert_quick_clean_stop(stopped: &StopReport, journaled: usize) {
    let log = stopped.log.join("\n");
    assert_eq!(stopped.exit.code, Some(0), "{stopped:?}");
    assert!(!stopped.killed, "{stopped:?}");
    assert!(
        stopped.signal_to_exit >= DRAIN_DELAY,
        "exited {:?} after the signal, inside the drain delay\n{log}",
        stopped.signal_to_exit
    );
    assert!(
        stopped.signal_to_exit <= EXIT_WITHIN,
        "exited {:?} after the signal, beyond {EXIT_WITHIN:?}: a stream did not end at shutdown_signal()\n{log}",
        stopped.signal_to_exit
    );
    assert!(
        !log.contains("connection drain over"),
        "lifecycle had to end a connection\n{log}"
    );
    let hook = format!("shutdown: {journaled} message(s) appended to the journal");
    assert!(log.contains(&hook), "no {hook:?} in the log\n{log}");
}

/// How long a WebSocket read may wait: past the connection drain, so that
/// a connection the handler did not end is seen ended by lifecycle, not
/// timed out here.
pub const WEBSOCKET_READ_TIMEOUT: Duration = Duration::from_secs(15);

pub type WebSocket = WebSocketStream<Watched>;

/// A WebSocket connection to `GET /ws`, over a socket whose errors and end
/// the test sees itself: tungstenite reports a reset that comes after the
/// Close frame as the connection's normal end.
pub async fn connect_websocket(app: SocketAddr) -> (WebSocket, SocketLog) {
    let tcp = TcpStream::connect(app)
        .await
        .unwrap_or_else(|e| panic!("connect to {app}: {e}"));
    // A second handle on the socket keeps it open after the client is done
    // with it, so that a reset that comes after the client read the
    // server's FIN (its Close frame's answer reaching a socket the server
    // had already closed) is still there to read.
    let tcp = tcp.into_std().unwrap();
    let log = SocketLog {
        events: Arc::default(),
        socket: Arc::new(tcp.try_clone().unwrap()),
    };
    let watched = Watched {
        inner: TcpStream::from_std(tcp).unwrap(),
        log: log.clone(),
    };
    let (socket, _) = tokio_tungstenite::client_async(format!("ws://{app}/ws"), watched)
        .await
        .unwrap_or_else(|e| panic!("WebSocket to {app}: {e}"));
    (socket, log)
}

/// What happened on a [`Watched`] socket.
#[derive(Debug, Clone)]
pub struct SocketLog {
    events: Arc<Mutex<SocketEvents>>,
    socket: Arc<std::net::TcpStream>,
}

#[derive(Debug, Clone, Default)]
pub struct SocketEvents {
    /// Each failed read, write or shutdown, and the error the socket still
    /// holds (a reset: `ConnectionReset`, or `BrokenPipe` once the peer's
    /// FIN was in).
    pub errors: Vec<String>,
    /// A read met the end of the stream: the peer's FIN.
    pub end_of_stream: bool,
}

impl SocketLog {
    /// What happened so far. Call it once the server has exited: a reset
    /// the client has not read yet is taken from the socket.
    pub fn events(&self) -> SocketEvents {
        let mut events = self.events.lock().unwrap().clone();
        match self.socket.take_error() {
            Ok(None) => {}
            Ok(Some(error)) | Err(error) => events
                .errors
                .push(format!("pending: {error} ({:?})", error.kind())),
        }
        events
    }

    fn record<T>(&self, what: &str, result: &io::Result<T>) {
        if let Err(error) = result {
            self.events
                .lock()
                .unwrap()
                .errors
                .push(format!("{what}: {error} ({:?})", error.kind()));
        }
    }
}

/// A TCP stream that records its errors and its end in a [`SocketLog`].
pub struct Watched {
    inner: TcpStream,
    log: SocketLog,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = ready!(Pin::new(&mut self.inner).poll_read(cx, buf));
        self.log.record("read", &result);
        if result.is_ok() && buf.filled().len() == before && buf.remaining() > 0 {
            self.log.events.lock().unwrap().end_of_stream = true;
        }
        Poll::Ready(result)
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let result = ready!(Pin::new(&mut self.inner).poll_write(cx, buf));
        self.log.record("write", &result);
        Poll::Ready(result)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let result = ready!(Pin::new(&mut self.inner).poll_flush(cx));
        self.log.record("flush", &result);
        Poll::Ready(result)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let result = ready!(Pin::new(&mut self.inner).poll_shutdown(cx));
        self.log.record("shutdown", &result);
        Poll::Ready(result)
    }
}

/// What a WebSocket client read until its connection ended.
#[derive(Default)]
pub struct WebSocketEnd {
    /// The server's Close frame.
    pub close: Option<CloseFrame>,
    /// When each pong came.
    pub pongs: Vec<Instant>,
    /// Text, binary and ping messages, and anything after the Close frame.
    pub others: Vec<Message>,
    /// How reading failed, if it did, rather than end once the closing
    /// handshake was over (`ResetWithoutClosingHandshake` for a
    /// connection closed without a Close frame).
    pub error: Option<String>,
}

/// Reads `socket` until it ends: tungstenite ends the stream after the
/// closing handshake and the connection's orderly close, and reports
/// anything else as an error.
pub async fn read_to_end(
    mut socket: impl Stream<Item = tungstenite::Result<Message>> + Unpin,
) -> WebSocketEnd {
    let mut end = WebSocketEnd::default();
    loop {
        match tokio::time::timeout(WEBSOCKET_READ_TIMEOUT, socket.next()).await {
            Ok(Some(Ok(Message::Close(frame)))) if end.close.is_none() => end.close = frame,
            Ok(Some(Ok(Message::Pong(_)))) if end.close.is_none() => end.pongs.push(Instant::now()),
            Ok(Some(Ok(message))) => end.others.push(message),
            Ok(Some(Err(error))) => {
                end.error = Some(format!("{error:?}"));
                return end;
            }
            Ok(None) => return end,
            Err(_) => {
                end.error = Some(format!("no end within {WEBSOCKET_READ_TIMEOUT:?}"));
                return end;
            }
        }
    }
}

impl std::fmt::Debug for WebSocketEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebSocketEnd")
            .field("close", &self.close)
            .field("pongs", &self.pongs.len())
            .field("others", &self.others)
            .field("error", &self.error)
            .finish()
    }
}
