//! An axum service made Kubernetes-ready by lifecycle, written as a new
//! user would write one: the application served on lifecycle's listener by
//! `axum::serve(...).with_graceful_shutdown(shutdown_signal())`, a
//! readiness check, and two long-lived routes that end cleanly on a stop:
//!
//! - `GET /`: `GREETING`, one line;
//! - `GET /events`: a server-sent event every 100 ms whose data is
//!   `GREETING`, until `shutdown_signal()` completes, then the response's
//!   end (`until_shutdown`), so that the client's EventSource reconnects to
//!   an instance still in rotation;
//! - `GET /ws`: a WebSocket that sends `GREETING` once, then echoes every
//!   text message, until `shutdown_signal()` completes: then a Close frame
//!   with code 1001 (Going Away), so that the client reconnects.
//!
//! As in the quick start (`examples/quickstart`): `APP_ADDR` moves the
//! application (default `0.0.0.0:8080`, where a pod serves),
//! `LIFECYCLE_PROBE_ADDR` the probes, `LIFECYCLE_DRAIN_DELAY_MS` sets the
//! drain delay, and `GREETING` what the routes send (the rolling-restart
//! test tells its instances apart by it).

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::extract::ws::{close_code, CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::get;
use axum::Router;
use lifecycle_runtime::net::TcpListener;
use lifecycle_runtime::{readiness, service_main, shutdown_signal, until_shutdown};
use tokio_stream::wrappers::IntervalStream;
use tokio_stream::{Stream, StreamExt};

static ACCEPTING: AtomicBool = AtomicBool::new(false);

/// How often `/events` sends an event.
const EVENT_INTERVAL: Duration = Duration::from_millis(100);

/// Ready once the listener accepts connections.
#[readiness(timeout_ms = 100)]
fn accepting_connections() -> Result<(), &'static str> {
    if ACCEPTING.load(Ordering::SeqCst) {
        Ok(())
    } else {
        Err("the listener is not accepting yet")
    }
}

/// `GREETING` as an event every [`EVENT_INTERVAL`], the first at once. The
/// stream ends when the stop begins, and with it the response: the client
/// gets the body's end, not a cut connection.
fn events(greeting: String) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let ticks = IntervalStream::new(tokio::time::interval(EVENT_INTERVAL));
    let stream = ticks.map(move |_| Ok(Event::default().data(&greeting)));
    Sse::new(until_shutdown(stream)).keep_alive(KeepAlive::default())
}

/// Sends `greeting`, then echoes text messages until the client closes or
/// the stop begins; then says goodbye with Close 1001 and waits for the
/// client's Close, which ends the connection.
async fn echo(mut socket: WebSocket, greeting: String) {
    if socket.send(Message::text(greeting)).await.is_err() {
        return;
    }
    let stop = shutdown_signal();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            message = socket.recv() => match message {
                Some(Ok(Message::Text(text))) => {
                    if socket.send(Message::Text(text)).await.is_err() {
                        return;
                    }
                }
                // Pings are answered by axum; binary is not this echo's.
                Some(Ok(Message::Binary(_) | Message::Ping(_) | Message::Pong(_))) => {}
                Some(Ok(Message::Close(_)) | Err(_)) | None => return,
            },
            () = &mut stop => break,
        }
    }
    let goodbye = CloseFrame {
        code: close_code::AWAY,
        reason: "server shutting down".into(),
    };
    if socket.send(Message::Close(Some(goodbye))).await.is_err() {
        return;
    }
    // Until the client's Close (axum then ends the connection) or an error;
    // a client that never answers is ended by lifecycle's connection drain.
    while let Some(Ok(message)) = socket.recv().await {
        if matches!(message, Message::Close(_)) {
            break;
        }
    }
}

#[service_main]
async fn main() -> std::io::Result<()> {
    let greeting = std::env::var("GREETING").unwrap_or_else(|_| "hello from axum".into());
    let body = format!("{greeting}\n");
    let sse_greeting = greeting.clone();
    let app = Router::new()
        .route("/", get(move || async move { body }))
        .route("/events", get(move || async move { events(sse_greeting) }))
        .route(
            "/ws",
            get(move |upgrade: WebSocketUpgrade| async move {
                upgrade.on_upgrade(move |socket| echo(socket, greeting))
            }),
        );

    let addr = std::env::var("APP_ADDR").unwrap_or_else(|_| "0.0.0.0:8080".into());
    let listener = TcpListener::bind(&addr).await?;
    tracing::info!("serving on http://{}", listener.local_addr()?);
    ACCEPTING.store(true, Ordering::SeqCst);

    // After SIGTERM and the drain delay: stop accepting, finish the
    // requests in flight, close idle keep-alive connections. The event
    // streams and WebSockets end themselves at the same moment; lifecycle
    // waits for their connections to close before the process exits.
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await
}
