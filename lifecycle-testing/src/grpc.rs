//! gRPC health probing (cargo feature `grpc`), as the kubelet's gRPC prober
//! does it: a new plaintext HTTP/2 connection for every probe,
//! `User-Agent: kube-probe/…`, one `grpc.health.v1.Health/Check` within the
//! probe's timeout, success only on `SERVING` ([`grpc_probe`],
//! [`Service::grpc_probe`](crate::Service::grpc_probe), a [`GrpcAnswer`]).
//! And `Watch`, as gRPC clients' health checking and proxies use it
//! ([`GrpcWatch`], [`Service::grpc_watch`](crate::Service::grpc_watch)),
//! each message a [`GrpcWatchEvent`].

use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use lifecycle_runtime::grpc::proto::health_client::HealthClient;
use lifecycle_runtime::grpc::proto::HealthCheckRequest;
use tonic::transport::{Channel, Endpoint};
use tonic::Streaming;

use crate::error::{Error, ErrorKind};
use crate::probe::{ProbeAnswer, USER_AGENT};

/// A gRPC health status: `SERVING`, `NOT_SERVING`, `SERVICE_UNKNOWN`
/// (`Watch` only) or `UNKNOWN`.
pub use lifecycle_runtime::grpc::proto::health_check_response::ServingStatus;
/// A gRPC status code, for calls that failed (`NOT_FOUND` for an unknown
/// service name).
pub use tonic::Code;

/// The answer to one gRPC probe, as the kubelet judges it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrpcAnswer {
    /// The service name asked for (`livez`, `readyz/db`, `""`).
    pub service: String,
    /// The status, if the call succeeded in time.
    pub status: Option<ServingStatus>,
    /// The gRPC code of a call that failed (`NOT_FOUND` for an unknown
    /// name); `None` when it succeeded or no answer came at all.
    pub code: Option<Code>,
    /// Why there is no status: the call's error, a refused connection, a
    /// time-out.
    pub error: Option<String>,
    /// From connecting to the answer.
    pub elapsed: Duration,
}

impl GrpcAnswer {
    /// The kubelet's verdict: `SERVING`, nothing else.
    pub fn passed(&self) -> bool {
        self.status == Some(ServingStatus::Serving)
    }
}

impl fmt::Display for GrpcAnswer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "gRPC Check {:?} -> ", self.service)?;
        match (self.status, &self.error) {
            (Some(status), _) => write!(
                f,
                "{} in {} ms",
                status.as_str_name(),
                self.elapsed.as_millis()
            ),
            (None, Some(error)) => write!(f, "no status: {error}"),
            (None, None) => write!(f, "no status"),
        }
    }
}

impl From<GrpcAnswer> for ProbeAnswer {
    /// As the kit's kubelet records a gRPC probe.
    fn from(answer: GrpcAnswer) -> ProbeAnswer {
        ProbeAnswer {
            path: format!("grpc:{}", answer.service),
            status: None,
            grpc_status: answer.status.map(|s| s.as_str_name().to_owned()),
            body: String::new(),
            error: answer.error,
            elapsed: answer.elapsed,
            redirects: Vec::new(),
            warning: None,
            answered: answer.status.is_some() || answer.code.is_some(),
        }
    }
}

/// A runtime for one blocking call of the kit.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime for a gRPC call")
}

fn endpoint(addr: SocketAddr, timeout: Duration) -> Endpoint {
    Endpoint::from_shared(format!("http://{addr}"))
        .expect("an address is a valid URI")
        .user_agent(USER_AGENT)
        .expect("the kubelet's user agent is a valid header")
        .connect_timeout(timeout)
        .timeout(timeout)
}

/// Sends one gRPC health probe of health service `service` (`livez`,
/// `readyz/db`, `""` for the whole server) to `addr`, on a new connection,
/// within `timeout` in all. A probe that gets no status is a failed
/// [`GrpcAnswer`] saying why, not an error.
pub fn grpc_probe(addr: SocketAddr, service: &str, timeout: Duration) -> GrpcAnswer {
    let started = Instant::now();
    let outcome = runtime().block_on(async {
        let call = async {
            let channel = endpoint(addr, timeout)
                .connect()
                .await
                .map_err(|e| (None, format!("cannot connect to {addr}: {e}")))?;
            HealthClient::new(channel)
                .check(HealthCheckRequest {
                    service: service.to_owned(),
                })
                .await
                .map(|answer| answer.into_inner().status())
                .map_err(|status| (Some(status.code()), status.to_string()))
        };
        tokio::time::timeout(timeout, call)
            .await
            .unwrap_or_else(|_| Err((None, format!("timed out after {} ms", timeout.as_millis()))))
    });
    let (status, code, error) = match outcome {
        Ok(status) => (Some(status), None, None),
        Err((code, error)) => (None, code, Some(error)),
    };
    GrpcAnswer {
        service: service.to_owned(),
        status,
        code,
        error,
        elapsed: started.elapsed(),
    }
}

/// An open `Watch` stream of one health service: each status the server
/// sends, in order.
pub struct GrpcWatch {
    service: String,
    runtime: tokio::runtime::Runtime,
    stream: Streaming<lifecycle_runtime::grpc::proto::HealthCheckResponse>,
    /// Kept open with the stream.
    _channel: Channel,
}

impl fmt::Debug for GrpcWatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GrpcWatch").finish_non_exhaustive()
    }
}

/// What a `Watch` stream said next ([`GrpcWatch::next`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GrpcWatchEvent {
    /// The server sent a status.
    Status(ServingStatus),
    /// The stream ended with status `OK` (the server stopped serving it).
    Ended,
    /// The stream ended with an error status, its code and message (a
    /// broken connection is one too: `UNAVAILABLE`, `UNKNOWN`…).
    Failed(Code, String),
    /// Nothing came within the time given.
    Silent,
}

impl GrpcWatch {
    /// Opens a `Watch` of health service `service` (`livez`, `readyz/db`,
    /// `""`) on `addr`, connecting and getting the call answered within
    /// `timeout`.
    pub fn open(addr: SocketAddr, service: &str, timeout: Duration) -> Result<GrpcWatch, Error> {
        let runtime = runtime();
        let what = format!("gRPC Watch {service:?} on {addr}");
        let (channel, stream) = runtime.block_on(async {
            let channel = Endpoint::from_shared(format!("http://{addr}"))
                .expect("an address is a valid URI")
                .connect_timeout(timeout)
                .connect()
                .await
                .map_err(|e| {
                    let error = Error::from_error(&e);
                    Error::new(
                        error.kind(),
                        format!("{what}: cannot connect: {}", error.message()),
                    )
                })?;
            let mut client = HealthClient::new(channel.clone());
            let call = client.watch(HealthCheckRequest {
                service: service.to_owned(),
            });
            let stream = tokio::time::timeout(timeout, call)
                .await
                .map_err(|_| {
                    Error::new(
                        ErrorKind::TimedOut,
                        format!("{what}: no answer within {} ms", timeout.as_millis()),
                    )
                })?
                .map_err(|status| {
                    Error::new(ErrorKind::UnexpectedAnswer, format!("{what}: {status}"))
                })?
                .into_inner();
            Ok::<_, Error>((channel, stream))
        })?;
        Ok(GrpcWatch {
            service: service.to_owned(),
            runtime,
            stream,
            _channel: channel,
        })
    }

    /// The next thing the stream says, waiting up to `timeout`
    /// ([`GrpcWatchEvent::Silent`] when nothing came).
    pub fn next(&mut self, timeout: Duration) -> GrpcWatchEvent {
        let stream = &mut self.stream;
        self.runtime.block_on(async {
            match tokio::time::timeout(timeout, stream.message()).await {
                Err(_) => GrpcWatchEvent::Silent,
                Ok(Ok(Some(message))) => GrpcWatchEvent::Status(message.status()),
                Ok(Ok(None)) => GrpcWatchEvent::Ended,
                Ok(Err(status)) => GrpcWatchEvent::Failed(status.code(), status.to_string()),
            }
        })
    }

    /// Waits up to `deadline` for the stream to send `status`, skipping
    /// others; returns how long it took. The error says what came instead:
    /// [`ErrorKind::TimedOut`] when the deadline passed,
    /// [`ErrorKind::UnexpectedAnswer`] when the stream ended or failed.
    pub fn wait_for(
        &mut self,
        status: ServingStatus,
        deadline: Duration,
    ) -> Result<Duration, Error> {
        let started = Instant::now();
        let awaited = status.as_str_name();
        let mut last = None;
        let (kind, what) = loop {
            let left = deadline.saturating_sub(started.elapsed());
            match self.next(left) {
                GrpcWatchEvent::Status(seen) if seen == status => return Ok(started.elapsed()),
                GrpcWatchEvent::Status(seen) if !left.is_zero() => last = Some(seen),
                GrpcWatchEvent::Status(_) | GrpcWatchEvent::Silent => {
                    break (
                        ErrorKind::TimedOut,
                        format!("no {awaited} within {} ms", deadline.as_millis()),
                    )
                }
                GrpcWatchEvent::Ended => {
                    break (
                        ErrorKind::UnexpectedAnswer,
                        format!("the stream ended (OK) before {awaited}"),
                    )
                }
                GrpcWatchEvent::Failed(_, message) => {
                    break (
                        ErrorKind::UnexpectedAnswer,
                        format!("the stream failed before {awaited}: {message}"),
                    )
                }
            }
        };
        let last = last
            .map(|seen| format!(" (the last status: {})", seen.as_str_name()))
            .unwrap_or_default();
        Err(Error::new(
            kind,
            format!("gRPC Watch {:?}: {what}{last}", self.service),
        ))
    }
}
