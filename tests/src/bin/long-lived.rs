//! A service whose clients stay connected, for the tests of long-lived
//! connections through a stop (tests/tests/connections.rs). Its environment selects its shape:
//!
//! - `LISTENER=tokio|lifecycle`: the application's listeners are tokio's
//!   `TcpListener`, as the README once taught, or lifecycle's, whose
//!   connections the stop waits for and ends at the connection drain.
//! - `HANDLERS=naive|cooperative`: handlers that ignore the stop (an event
//!   stream and a gRPC server stream that never end, a WebSocket echo that
//!   goes on), or ones that end at `shutdown_signal()` (`until_shutdown`
//!   around the streams, Close 1001 on the WebSocket).
//!
//! What it serves:
//!
//! - on `APP_ADDR` (default `127.0.0.1:0`), HTTP/1.1 and HTTP/2 without TLS
//!   (h2c, prior knowledge), with `axum::serve(...)
//!   .with_graceful_shutdown(shutdown_signal())`:
//!   - `GET /events`: a server-sent event every 100 ms, `tick N`, the first
//!     at once;
//!   - `GET /ws`: a WebSocket echoing text messages;
//!   - `POST /write`: an acknowledged write (the body), answered `ack N`
//!     (the writes so far) once buffered;
//! - on `GRPC_ADDR` (default `127.0.0.1:0`), a tonic server with one
//!   server-streaming RPC, `grpc.health.v1.Health/Watch` (the runtime's own
//!   proto): `SERVING` at once, then nothing more until its end.
//!
//! Its `on_shutdown` hook writes the acknowledged writes, one a line, to
//! `FLUSH_FILE`, after `FLUSH_DELAY_MS` (default 0): a window in which the
//! test reads what the probe port says between the connections' end and
//! the exit. It prints `app listening on http://ADDR` and `grpc listening
//! on ADDR` to stdout once both listeners are bound, and its readiness
//! check passes from then on.

use std::convert::Infallible;
use std::fmt::Debug;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use axum::extract::ws::{close_code, CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::response::sse::{Event, Sse};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use lifecycle_runtime::grpc::proto::health_check_response::ServingStatus;
use lifecycle_runtime::grpc::proto::health_server::{Health, HealthServer};
use lifecycle_runtime::grpc::proto::{
    HealthCheckRequest, HealthCheckResponse, HealthListRequest, HealthListResponse,
};
use lifecycle_runtime::{on_shutdown, readiness, service_main, shutdown_signal, until_shutdown};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_stream::wrappers::IntervalStream;
use tokio_stream::{Stream, StreamExt};
use tonic::transport::server::{Connected, TcpIncoming};
use tonic::{Request, Status};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type BoxStream<T> = Pin<Box<dyn Stream<Item = T> + Send>>;

/// How often `/events` sends an event.
const EVENT_INTERVAL: Duration = Duration::from_millis(100);
/// How long a cooperative WebSocket waits for the client's Close.
const CLOSE_REPLY: Duration = Duration::from_secs(1);

#[derive(Clone, Copy, PartialEq, Eq)]
enum Handlers {
    Naive,
    Cooperative,
}

static HANDLERS: LazyLock<Handlers> = LazyLock::new(|| match env("HANDLERS").as_deref() {
    Some("naive") => Handlers::Naive,
    Some("cooperative") => Handlers::Cooperative,
    other => panic!("HANDLERS={other:?}: expected naive or cooperative"),
});

/// The acknowledged writes, buffered until the `on_shutdown` hook.
static WRITES: Mutex<Vec<String>> = Mutex::new(Vec::new());

static LISTENING: AtomicBool = AtomicBool::new(false);

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Ready once both listeners are bound.
#[readiness(timeout_ms = 100)]
fn listening() -> Result<(), &'static str> {
    if LISTENING.load(Ordering::SeqCst) {
        Ok(())
    } else {
        Err("the listeners are not bound yet")
    }
}

/// Writes the acknowledged writes to `FLUSH_FILE`: what a stop must never
/// lose, whatever its connections do.
#[on_shutdown(timeout_ms = 3000)]
async fn flush_writes() -> std::io::Result<()> {
    let delay = env("FLUSH_DELAY_MS").map_or(0, |ms| ms.parse().expect("FLUSH_DELAY_MS"));
    tokio::time::sleep(Duration::from_millis(delay)).await;
    let writes: String = WRITES
        .lock()
        .unwrap()
        .iter()
        .map(|write| format!("{write}\n"))
        .collect();
    let path = env("FLUSH_FILE").expect("FLUSH_FILE: where the hook flushes the writes");
    tokio::fs::write(path, writes).await
}

/// `tick N` every [`EVENT_INTERVAL`], the first at once.
async fn events() -> Sse<BoxStream<Result<Event, Infallible>>> {
    let mut sent = 0u64;
    let ticks = IntervalStream::new(tokio::time::interval(EVENT_INTERVAL)).map(move |_| {
        sent += 1;
        Ok(Event::default().data(format!("tick {sent}")))
    });
    Sse::new(match *HANDLERS {
        Handlers::Naive => Box::pin(ticks),
        Handlers::Cooperative => Box::pin(until_shutdown(ticks)),
    })
}

async fn websocket(upgrade: WebSocketUpgrade) -> Response {
    upgrade.on_upgrade(|socket| async move {
        match *HANDLERS {
            Handlers::Naive => echo(socket).await,
            Handlers::Cooperative => echo_until_shutdown(socket).await,
        }
    })
}

/// Echoes text messages until the client goes away: a stop means nothing
/// to it.
async fn echo(mut socket: WebSocket) {
    while let Some(Ok(message)) = socket.recv().await {
        if let Message::Text(text) = message {
            if socket.send(Message::Text(text)).await.is_err() {
                return;
            }
        }
    }
}

/// Echoes text messages until `shutdown_signal()`, then says Going Away
/// (1001) and waits for the client's Close, after which the server closes
/// the connection (RFC 6455, 7.1.1).
async fn echo_until_shutdown(mut socket: WebSocket) {
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
                Some(Ok(Message::Close(_)) | Err(_)) | None => return,
                // Pings are answered by axum.
                Some(Ok(_)) => {}
            },
            () = &mut stop => break,
        }
    }
    let goodbye = CloseFrame {
        code: close_code::AWAY,
        reason: "shutting down".into(),
    };
    if socket.send(Message::Close(Some(goodbye))).await.is_err() {
        return;
    }
    let _ = tokio::time::timeout(CLOSE_REPLY, async {
        while let Some(Ok(message)) = socket.recv().await {
            if let Message::Close(_) = message {
                return;
            }
        }
    })
    .await;
}

/// Buffers the body and acknowledges it: the hook must flush it.
async fn write(body: String) -> String {
    let mut writes = WRITES.lock().unwrap();
    writes.push(body);
    format!("ack {}\n", writes.len())
}

/// The gRPC server stream: `Watch` answered `SERVING`, then nothing until
/// the stream ends, which a naive one never does.
struct Watched;

#[tonic::async_trait]
impl Health for Watched {
    /// `SERVING`, with the peer's address as tonic reports it
    /// (`Request::remote_addr`) in the `x-peer-addr` header: what lifecycle's
    /// stream must keep working (its `Connected` info).
    async fn check(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<tonic::Response<HealthCheckResponse>, Status> {
        let peer = request
            .remote_addr()
            .map_or_else(|| "none".to_owned(), |addr| addr.to_string());
        let mut response = tonic::Response::new(HealthCheckResponse {
            status: ServingStatus::Serving.into(),
        });
        let peer = peer.parse().map_err(|_| Status::internal("peer address"))?;
        response.metadata_mut().insert("x-peer-addr", peer);
        Ok(response)
    }

    async fn list(
        &self,
        _: Request<HealthListRequest>,
    ) -> Result<tonic::Response<HealthListResponse>, Status> {
        Err(Status::unimplemented("only Watch is served here"))
    }

    type WatchStream = BoxStream<Result<HealthCheckResponse, Status>>;

    async fn watch(
        &self,
        _: Request<HealthCheckRequest>,
    ) -> Result<tonic::Response<Self::WatchStream>, Status> {
        let serving = HealthCheckResponse {
            status: ServingStatus::Serving.into(),
        };
        let statuses = tokio_stream::once(Ok(serving)).chain(tokio_stream::pending());
        Ok(tonic::Response::new(match *HANDLERS {
            Handlers::Naive => Box::pin(statuses),
            Handlers::Cooperative => Box::pin(until_shutdown(statuses)),
        }))
    }
}

/// The application on `app`, the gRPC server on `grpc`, the same on
/// either kind of listener, each stopping at `shutdown_signal()`.
async fn serve<L, I, IO, IE>(app: L, grpc: I) -> Result<(), BoxError>
where
    L: axum::serve::Listener,
    L::Addr: Debug,
    I: Stream<Item = Result<IO, IE>>,
    IO: AsyncRead + AsyncWrite + Connected + Unpin + Send + 'static,
    IE: Into<BoxError>,
{
    let router = Router::new()
        .route("/events", get(events))
        .route("/ws", get(websocket))
        .route("/write", post(write));
    let http = async {
        axum::serve(app, router)
            .with_graceful_shutdown(shutdown_signal())
            .await
            .map_err(BoxError::from)
    };
    let grpc = async {
        tonic::transport::Server::builder()
            .add_service(HealthServer::new(Watched))
            .serve_with_incoming_shutdown(grpc, shutdown_signal())
            .await
            .map_err(BoxError::from)
    };
    tokio::try_join!(http, grpc)?;
    Ok(())
}

fn listening_on(app: std::net::SocketAddr, grpc: std::net::SocketAddr) {
    println!("app listening on http://{app}");
    println!("grpc listening on {grpc}");
    LISTENING.store(true, Ordering::SeqCst);
}

#[service_main]
async fn main() -> Result<(), BoxError> {
    LazyLock::force(&HANDLERS);
    let app_addr = env("APP_ADDR").unwrap_or_else(|| "127.0.0.1:0".into());
    let grpc_addr = env("GRPC_ADDR").unwrap_or_else(|| "127.0.0.1:0".into());
    match env("LISTENER").as_deref() {
        Some("tokio") => {
            let app = tokio::net::TcpListener::bind(app_addr).await?;
            let grpc = tokio::net::TcpListener::bind(grpc_addr).await?;
            listening_on(app.local_addr()?, grpc.local_addr()?);
            serve(app, TcpIncoming::from(grpc).with_nodelay(Some(true))).await
        }
        Some("lifecycle") => {
            let app = lifecycle_runtime::net::TcpListener::bind(app_addr).await?;
            let grpc = lifecycle_runtime::net::TcpListener::bind(grpc_addr).await?;
            listening_on(app.local_addr()?, grpc.local_addr()?);
            serve(app, grpc.incoming()).await
        }
        other => panic!("LISTENER={other:?}: expected tokio or lifecycle"),
    }
}
