//! Long-lived connections that end cleanly on a stop: an axum service with
//! a Server-Sent Events feed and a WebSocket echo, made Kubernetes-ready by
//! lifecycle.
//!
//! ```text
//! cargo run -p streams
//! curl -N localhost:8080/events                       # the feed (SSE)
//! curl -d 'hello' localhost:8080/messages             # a message to it
//! websocat ws://localhost:8080/ws                     # an echo (WebSocket)
//! ```
//!
//! - `APP_ADDR`: where the application listens (default `0.0.0.0:8080`).
//! - `JOURNAL`: the file the messages are appended to at shutdown, one line
//!   each (default `streams-journal.log`).
//! - `LIFECYCLE_DRAIN_DELAY_MS`, `LIFECYCLE_CONNECTION_DRAIN_MS`: how long
//!   the service keeps serving after SIGTERM, and how long after that a
//!   connection may stay open before lifecycle ends it.
//!
//! On SIGTERM `/readyz` fails at once and everything keeps serving for the
//! drain delay. Then `shutdown_signal()` completes: the listener stops
//! accepting, every SSE response ends with its final chunk (the client's
//! EventSource reconnects, to an instance still in rotation), every
//! WebSocket gets a Close frame with code 1001 (Going Away), the
//! `on_shutdown` hook appends the messages to the journal, exit 0: all
//! within a few milliseconds of the drain delay. A connection a handler
//! does not end is ended by lifecycle at the connection drain's end.

use std::convert::Infallible;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{LazyLock, Mutex, MutexGuard};
use std::time::Duration;

use axum::extract::ws::{close_code, CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use futures_util::stream::{self, Stream, StreamExt};
use futures_util::SinkExt;
use lifecycle_runtime::{liveness, on_shutdown, readiness, service_main, Health};
use tokio::sync::broadcast;

/// How long an EventSource waits before it reconnects once its stream
/// ended, told to each client as the feed's first line (`retry:`): the
/// browsers' own default is a few seconds.
const RECONNECT_AFTER: Duration = Duration::from_secs(1);

/// How long, once a WebSocket is closing, the handler waits for the
/// client's own Close frame (the closing handshake) before it drops the
/// connection anyway.
const CLOSE_HANDSHAKE: Duration = Duration::from_secs(1);

/// How many messages a slow SSE client may fall behind before it skips
/// some.
const FEED_CAPACITY: usize = 1024;

/// The feed: each message posted, to every SSE client connected.
static FEED: LazyLock<broadcast::Sender<String>> =
    LazyLock::new(|| broadcast::channel(FEED_CAPACITY).0);

/// The messages posted and not yet in the journal: the shutdown hook
/// appends them (a write-behind journal).
static UNJOURNALED: Mutex<Vec<String>> = Mutex::new(Vec::new());

static ACCEPTING: AtomicBool = AtomicBool::new(false);

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere while holding the lock leaves a consistent list.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|value| !value.is_empty())
        .unwrap_or_else(|| default.to_owned())
}

/// Ready once the listener accepts connections. This service has no
/// dependency; one it had (a message broker, say) would be checked here,
/// never in a liveness check.
#[readiness(timeout_ms = 100)]
fn accepting_connections() -> Result<(), &'static str> {
    if ACCEPTING.load(Ordering::SeqCst) {
        Ok(())
    } else {
        Err("the listener is not accepting yet")
    }
}

/// Liveness answers from memory only: is this process beyond repair?
#[liveness]
fn feed() -> Health {
    Health::up()
        .with_detail("sse_clients", FEED.receiver_count())
        .with_detail("unjournaled_messages", lock(&UNJOURNALED).len())
}

/// The last step of a stop, once every connection has ended (the SSE
/// streams and WebSockets below end themselves at `shutdown_signal()`):
/// every message acknowledged with 202 is appended to the journal. A
/// plain `fn`, so it runs on the blocking pool. If the file cannot take
/// them, the hook fails and the process exits 1 with the reason.
#[on_shutdown(timeout_ms = 2000)]
fn append_to_journal() -> Result<(), String> {
    let messages = std::mem::take(&mut *lock(&UNJOURNALED));
    let path = env_or("JOURNAL", "streams-journal.log");
    if !messages.is_empty() {
        append_lines(&path, &messages).map_err(|e| {
            format!(
                "{} message(s) not appended to the journal {path}: {e}",
                messages.len()
            )
        })?;
    }
    tracing::info!(
        "shutdown: {} message(s) appended to the journal {path}",
        messages.len()
    );
    Ok(())
}

fn append_lines(path: &str, lines: &[String]) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    let text: String = lines.iter().map(|line| format!("{line}\n")).collect();
    file.write_all(text.as_bytes())?;
    // On disk, not only in the page cache, before the exit says 0.
    file.sync_all()
}

/// `POST /messages` with a one-line text body: to every SSE client at
/// once, and to the journal at shutdown. 202: accepted, journaled later.
async fn post_message(message: String) -> Response {
    if message.is_empty() || message.contains(['\r', '\n']) {
        return (
            StatusCode::BAD_REQUEST,
            "a message is one line of text, not empty\n",
        )
            .into_response();
    }
    // Under the lock, so that the feed and the journal have one order.
    let mut unjournaled = lock(&UNJOURNALED);
    unjournaled.push(message.clone());
    // An error only says that no SSE client listens.
    let _ = FEED.send(message);
    StatusCode::ACCEPTED.into_response()
}

/// The feed as SSE events, from the moment of the call.
fn subscribe() -> impl Stream<Item = Result<Event, Infallible>> {
    stream::unfold(FEED.subscribe(), |mut feed| async move {
        let event = match feed.recv().await {
            Ok(message) => Event::default().data(message),
            Err(broadcast::error::RecvError::Lagged(skipped)) => {
                Event::default().event("skipped").data(skipped.to_string())
            }
            Err(broadcast::error::RecvError::Closed) => return None,
        };
        Some((Ok(event), feed))
    })
}

/// `GET /events`: the feed, as Server-Sent Events. Left alone, this
/// response never ends, and the server's graceful stop would wait for it
/// until lifecycle's connection drain ends the connection under it (the
/// client then sees its stream cut). `until_shutdown` ends it instead when
/// `shutdown_signal()` completes: the final chunk goes out, the client
/// sees a stream that ended and reconnects, by then to an instance still
/// in rotation. The keep-alive comments (every 15 s) keep proxies and load
/// balancers from closing a quiet stream as idle.
async fn events() -> impl IntoResponse {
    let first = Event::default().retry(RECONNECT_AFTER);
    let feed = stream::once(async move { Ok(first) }).chain(subscribe());
    Sse::new(lifecycle_runtime::until_shutdown(feed)).keep_alive(KeepAlive::default())
}

/// `GET /ws`: a WebSocket echo.
async fn websocket(upgrade: WebSocketUpgrade) -> Response {
    upgrade.on_upgrade(echo)
}

/// Echoes text and binary messages until the client closes, or until
/// `shutdown_signal()` completes: then it sends a Close frame with code
/// 1001 (Going Away), which tells the client to reconnect, to an instance
/// still in rotation. axum's graceful stop does not wait for an upgraded
/// connection; lifecycle's listener does, and ends it at the connection
/// drain's end if the handler does not (the client then sees no Close
/// frame: code 1006, abnormal).
async fn echo(mut socket: WebSocket) {
    let stop = lifecycle_runtime::shutdown_signal();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            received = socket.recv() => match received {
                Some(Ok(message @ (Message::Text(_) | Message::Binary(_)))) => {
                    if socket.send(message).await.is_err() {
                        return;
                    }
                }
                // tungstenite answers a ping by itself.
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                // The client closes: tungstenite has queued the answering
                // Close frame.
                Some(Ok(Message::Close(_))) => break,
                Some(Err(_)) | None => return,
            },
            () = &mut stop => {
                // First the pong tungstenite may still owe the client:
                // it would write it after the Close frame, and a client
                // may take any frame after the Close as a protocol error
                // (tungstenite's own does).
                if socket.flush().await.is_err() {
                    return;
                }
                let going_away = CloseFrame {
                    code: close_code::AWAY,
                    reason: Utf8Bytes::from_static("the server is shutting down: reconnect"),
                };
                if socket.send(Message::Close(Some(going_away))).await.is_err() {
                    return;
                }
                break;
            }
        }
    }
    // Either way, read until the connection ends: the client's Close frame
    // completes the handshake (and a read is what sends a queued Close
    // answer). Dropping the connection sooner closes the socket under
    // what the client still sends, its Close frame or a ping, and Linux
    // answers bytes that reach a closed socket, or that it closed unread,
    // with a reset: the client reads ECONNRESET instead of an orderly end.
    let _ = tokio::time::timeout(CLOSE_HANDSHAKE, async {
        while let Some(Ok(_)) = socket.recv().await {}
    })
    .await;
}

#[service_main]
async fn main() -> std::io::Result<()> {
    // lifecycle's listener, not tokio's: the stop waits for every
    // connection it accepted (WebSockets included) and ends those still
    // open `LIFECYCLE_CONNECTION_DRAIN_MS` after `shutdown_signal()`.
    let listener =
        lifecycle_runtime::net::TcpListener::bind(env_or("APP_ADDR", "0.0.0.0:8080")).await?;
    let addr = listener.local_addr()?;
    tracing::info!("serving on http://{addr}");
    let port = addr.port();
    tracing::info!("try: curl -N localhost:{port}/events");
    tracing::info!("try: curl -d hello localhost:{port}/messages");
    ACCEPTING.store(true, Ordering::SeqCst);

    let app = Router::new()
        .route("/events", get(events))
        .route("/messages", post(post_message))
        .route("/ws", get(websocket));
    // After SIGTERM and the drain delay: stop accepting, let the requests
    // in flight and the streams end, close idle connections; then the
    // shutdown hook writes the journal.
    axum::serve(listener, app)
        .with_graceful_shutdown(lifecycle_runtime::shutdown_signal())
        .await
}
