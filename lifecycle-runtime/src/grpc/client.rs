//! A gRPC health client over one plaintext HTTP/2 connection with prior
//! knowledge, as the kubelet's `grpc:` probes speak it: what
//! `--lifecycle-probe` asks with under `probe_protocol = "grpc"`. The
//! generated [`HealthClient`] does the gRPC framing; hyper's HTTP/2
//! client is the transport, so the runtime needs no transport of tonic's.

use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::Incoming;
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tonic::body::Body;
use tonic::codegen::http::uri::InvalidUri;
use tonic::codegen::http::{Request, Response, Uri};

use super::proto::health_check_response::ServingStatus;
use super::proto::health_client::HealthClient;
use super::proto::HealthCheckRequest;

/// One HTTP/2 connection as the service `HealthClient` drives
/// (`tonic::client::GrpcService` is implemented for every such service).
#[derive(Clone)]
struct Connection(SendRequest<Body>);

impl tonic::codegen::Service<Request<Body>> for Connection {
    type Response = Response<Incoming>;
    type Error = hyper::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Incoming>, hyper::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), hyper::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        Box::pin(self.0.send_request(request))
    }
}

/// Why the health server at an address gave no serving status.
#[derive(Debug)]
pub(crate) enum CheckError {
    /// No connection.
    Connect(SocketAddr, io::Error),
    /// A connection, but no HTTP/2 on it.
    Handshake(SocketAddr, hyper::Error),
    /// The address makes no URI.
    Origin(SocketAddr, InvalidUri),
    /// A gRPC error status (`NOT_FOUND` for an unknown service).
    Status(SocketAddr, tonic::Status),
    /// A serving status the health proto does not have.
    UnknownServingStatus(SocketAddr, i32),
}

impl fmt::Display for CheckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckError::Connect(addr, error) => {
                write!(f, "cannot connect to the probe server at {addr}: {error}")
            }
            CheckError::Handshake(addr, error) => {
                write!(
                    f,
                    "no HTTP/2 connection to the probe server at {addr}: {error}"
                )
            }
            CheckError::Origin(addr, error) => write!(f, "{addr}: {error}"),
            CheckError::Status(addr, status) => write!(
                f,
                "the probe server at {addr} answered gRPC status {:?}: {}",
                status.code(),
                status.message()
            ),
            CheckError::UnknownServingStatus(addr, status) => write!(
                f,
                "the probe server at {addr} answered an unknown serving status {status}"
            ),
        }
    }
}

/// Asks the health server at `addr` for `service`'s status with
/// `grpc.health.v1.Health/Check`, telling the server the caller's
/// `deadline` (`grpc-timeout`) so it can answer within it; bounding the
/// wait is the caller's. `Ok` with the status the server answered, or why
/// there was none.
pub(crate) async fn check(
    addr: SocketAddr,
    service: &str,
    deadline: Duration,
) -> Result<ServingStatus, CheckError> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| CheckError::Connect(addr, e))?;
    // Small answers, one at a time: Nagle's delay would only slow them.
    let _ = stream.set_nodelay(true);
    let (sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .map_err(|e| CheckError::Handshake(addr, e))?;
    // Ends with the connection: when the answer came, or the caller gave up.
    tokio::spawn(crate::call::task(connection));
    // The origin gives every request its `:scheme` and `:authority`.
    let origin: Uri = format!("http://{addr}")
        .parse()
        .map_err(|e| CheckError::Origin(addr, e))?;
    let mut client = HealthClient::with_origin(Connection(sender), origin);
    let mut request = tonic::Request::new(HealthCheckRequest {
        service: service.to_owned(),
    });
    request.set_timeout(deadline);
    let answer = client
        .check(request)
        .await
        .map_err(|status| CheckError::Status(addr, status))?;
    let status = answer.into_inner().status;
    ServingStatus::try_from(status).map_err(|_| CheckError::UnknownServingStatus(addr, status))
}

#[cfg(all(test, feature = "grpc"))]
mod tests {
    use std::collections::HashMap;
    use std::sync::Arc;

    use tokio::net::TcpListener;
    use tonic::codegen::tokio_stream;

    use super::*;
    use crate::grpc::proto::health_server::{Health, HealthServer};
    use crate::grpc::proto::{HealthCheckResponse, HealthListRequest, HealthListResponse};

    /// A health server of fixed answers: a service it does not know gets
    /// `NOT_FOUND`, as the health protocol says.
    struct Fixed(HashMap<&'static str, ServingStatus>);

    #[tonic::async_trait]
    impl Health for Fixed {
        async fn check(
            &self,
            request: tonic::Request<HealthCheckRequest>,
        ) -> Result<tonic::Response<HealthCheckResponse>, tonic::Status> {
            let service = request.into_inner().service;
            match self.0.get(service.as_str()) {
                Some(status) => Ok(tonic::Response::new(HealthCheckResponse {
                    status: *status as i32,
                })),
                None => Err(tonic::Status::not_found(format!(
                    "unknown service {service:?}"
                ))),
            }
        }

        async fn list(
            &self,
            _: tonic::Request<HealthListRequest>,
        ) -> Result<tonic::Response<HealthListResponse>, tonic::Status> {
            Err(tonic::Status::unimplemented("not in this test"))
        }

        type WatchStream = tokio_stream::Empty<Result<HealthCheckResponse, tonic::Status>>;

        async fn watch(
            &self,
            _: tonic::Request<HealthCheckRequest>,
        ) -> Result<tonic::Response<Self::WatchStream>, tonic::Status> {
            Err(tonic::Status::unimplemented("not in this test"))
        }
    }

    /// Serves `health` over plaintext HTTP/2 on a loopback port, on the
    /// test's runtime, one task per connection.
    async fn serve(health: Fixed) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = HealthServer::from_arc(Arc::new(health));
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let server = server.clone();
                let service = hyper::service::service_fn(move |request| {
                    let mut server = server.clone();
                    async move { tonic::codegen::Service::call(&mut server, request).await }
                });
                tokio::spawn(
                    hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service),
                );
            }
        });
        addr
    }

    fn fixed() -> Fixed {
        Fixed(HashMap::from([
            ("livez", ServingStatus::Serving),
            ("readyz", ServingStatus::NotServing),
        ]))
    }

    const DEADLINE: Duration = Duration::from_secs(5);

    #[tokio::test]
    async fn check_reads_the_serving_status() {
        let addr = serve(fixed()).await;
        assert_eq!(
            check(addr, "livez", DEADLINE).await.unwrap(),
            ServingStatus::Serving
        );
        assert_eq!(
            check(addr, "readyz", DEADLINE).await.unwrap(),
            ServingStatus::NotServing
        );
    }

    #[tokio::test]
    async fn an_unknown_service_is_an_error_naming_the_status() {
        let addr = serve(fixed()).await;
        let error = check(addr, "startupz", DEADLINE)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("gRPC status NotFound")
                && error.contains("unknown service \"startupz\""),
            "{error}"
        );
    }

    #[tokio::test]
    async fn nothing_listening_is_an_error_naming_the_address() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let error = check(addr, "livez", DEADLINE)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            error.contains(&format!("cannot connect to the probe server at {addr}")),
            "{error}"
        );
    }

    #[tokio::test]
    async fn a_server_that_speaks_only_http1_is_an_error_not_a_hang() {
        // What a probe server without the `grpc` feature does with HTTP/2's
        // preface: an HTTP/1.1 error, then the connection closes.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut buffer = [0u8; 64];
            let _ = stream.read(&mut buffer).await;
            let _ = stream
                .write_all(
                    b"HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n",
                )
                .await;
        });
        let answer = tokio::time::timeout(DEADLINE, check(addr, "livez", DEADLINE))
            .await
            .expect("an answer before the deadline");
        assert!(answer.is_err(), "{answer:?}");
    }
}
