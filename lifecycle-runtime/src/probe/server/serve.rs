//! Serving one connection: its HTTP settings, the service that answers
//! each of its requests, its IO guards, its graceful end.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
#[cfg(feature = "grpc")]
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
use hyper_util::server::graceful::Watcher;
use tokio::io::{AsyncRead, AsyncWrite};

use super::connections::Busy;
#[cfg(feature = "grpc")]
use super::guards::PrefaceDeadline;
use super::guards::{WriteStall, HEADER_READ_TIMEOUT};
use crate::panics::contained;
use crate::probe::http::RequestProtocol;
use crate::probe::http::{plain, Answer};
use crate::probe::reasons::Peer;

/// A probe's request line and headers fit well inside this; anything larger
/// is not a probe.
const MAX_HEADER_BYTES: usize = 16 * 1024;
const MAX_HEADERS: usize = 64;
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
/// HTTP/2 flow-control windows, per stream and per connection.
#[cfg(feature = "grpc")]
const H2_WINDOW: u32 = 64 * 1024;

/// The protocol `request` speaks, told once by the server and handed to
/// the answer with the request: gRPC for HTTP/2 with a gRPC content type,
/// an HTTP probe for everything else, over either version.
#[cfg(feature = "grpc")]
fn protocol_of<B>(request: &Request<B>) -> RequestProtocol {
    if crate::grpc::is_grpc(request) {
        RequestProtocol::Grpc
    } else {
        RequestProtocol::Http
    }
}

/// Without the `grpc` feature, every request is an HTTP probe.
#[cfg(not(feature = "grpc"))]
fn protocol_of<B>(_: &Request<B>) -> RequestProtocol {
    RequestProtocol::Http
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
/// `answer` with the [`RequestProtocol`] it speaks, `busy` counting the
/// requests being answered, a panicking answer turned into an internal
/// error (a 500, or a gRPC status), its writes failing once they have
/// stalled for [`WRITE_STALL_TIMEOUT`](super::guards::WRITE_STALL_TIMEOUT),
/// ended gracefully through `graceful`. Ends when the connection does,
/// with the error that ended it if one did.
// hyper's HTTP/1 error is boxed here; the `grpc` feature's is already.
#[cfg_attr(feature = "grpc", allow(clippy::useless_conversion))]
pub(crate) fn serve_connection<S, A, Fut>(
    http: &HttpSettings,
    stream: S,
    peer: SocketAddr,
    answer: Arc<A>,
    busy: Arc<AtomicUsize>,
    graceful: Watcher,
) -> impl Future<Output = Result<(), Box<dyn std::error::Error + Send + Sync>>> + Send + 'static
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    A: Fn(Request<Incoming>, RequestProtocol) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Answer> + Send + 'static,
{
    #[cfg(feature = "grpc")]
    let stream = PrefaceDeadline::new(stream);
    let connection = http.serve_connection(
        TokioIo::new(WriteStall::new(stream)),
        service_fn(move |mut request: Request<Incoming>| {
            request.extensions_mut().insert(Peer(peer));
            let busy = Busy::enter(&busy);
            let protocol = protocol_of(&request);
            let answer = contained("probe server's answer", answer(request, protocol));
            async move {
                let response = answer.await.unwrap_or_else(|()| {
                    // A gRPC client reads a failure from a gRPC status, not
                    // a 500.
                    #[cfg(feature = "grpc")]
                    if protocol == RequestProtocol::Grpc {
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use hyper_util::server::graceful::GracefulShutdown;

    use super::super::guards::WRITE_STALL_TIMEOUT;
    use super::*;

    type Served = tokio::task::JoinHandle<Result<(), Box<dyn std::error::Error + Send + Sync>>>;

    /// Serves `server` as the probe server serves a connection, answering
    /// every request `200 ok`, on a task of its own. The connection is
    /// ended gracefully once the `GracefulShutdown` returned is dropped.
    fn serve_ok(server: tokio::io::DuplexStream) -> (Served, GracefulShutdown) {
        let answer =
            |_: Request<Incoming>, _: RequestProtocol| async { plain(StatusCode::OK, "ok\n") };
        let graceful = GracefulShutdown::new();
        let served = tokio::spawn(serve_connection(
            &http_settings(),
            server,
            "127.0.0.1:40000".parse().unwrap(),
            Arc::new(answer),
            Arc::new(AtomicUsize::new(0)),
            graceful.watcher(),
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
