//! gRPC health probing (cargo feature `grpc`), as the kubelet's gRPC prober
//! does it: a new plaintext HTTP/2 connection for every probe,
//! `User-Agent: kube-probe/…`, one `grpc.health.v1.Health/Check` within the
//! probe's timeout, success only on `SERVING`. And `Watch`, as gRPC
//! clients' health checking and proxies use it.

use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use lifecycle_runtime::grpc::proto::health_client::HealthClient;
use lifecycle_runtime::grpc::proto::HealthCheckRequest;
use tonic::transport::{Channel, Endpoint};
use tonic::Streaming;

use crate::probe::USER_AGENT;

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

impl From<GrpcAnswer> for crate::ProbeAnswer {
    /// As the kit's kubelet records a gRPC probe.
    fn from(answer: GrpcAnswer) -> crate::ProbeAnswer {
        crate::ProbeAnswer {
            path: format!("grpc:{}", answer.service),
            status: None,
            grpc_status: answer.status.map(|s| s.as_str_name().to_owned()),
            body: String::new(),
            error: answer.error,
            elapsed: answer.elapsed,
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

/// Sends one gRPC health probe of `service` to `addr`, within `timeout` in
/// all, on a new connection.
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

/// An open `Watch` stream: each status the server sends, in order.
pub struct GrpcWatch {
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

/// How a `Watch` stream went on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchEvent {
    /// The server sent a status.
    Status(ServingStatus),
    /// The stream ended with status `OK` (the server stopped serving it).
    Ended,
    /// The stream ended with an error (its code and message), or the
    /// connection broke.
    Failed(Option<Code>, String),
    /// Nothing came within the time given.
    Silent,
}

impl GrpcWatch {
    /// Opens a `Watch` of `service` on `addr`, connecting within `timeout`.
    pub fn open(addr: SocketAddr, service: &str, timeout: Duration) -> Result<GrpcWatch, String> {
        let runtime = runtime();
        let (channel, stream) = runtime.block_on(async {
            let channel = Endpoint::from_shared(format!("http://{addr}"))
                .expect("an address is a valid URI")
                .connect_timeout(timeout)
                .connect()
                .await
                .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
            let mut client = HealthClient::new(channel.clone());
            let call = client.watch(HealthCheckRequest {
                service: service.to_owned(),
            });
            let stream = tokio::time::timeout(timeout, call)
                .await
                .map_err(|_| format!("no answer to Watch within {} ms", timeout.as_millis()))?
                .map_err(|status| status.to_string())?
                .into_inner();
            Ok::<_, String>((channel, stream))
        })?;
        Ok(GrpcWatch {
            runtime,
            stream,
            _channel: channel,
        })
    }

    /// The next thing the stream says, waiting up to `timeout`.
    pub fn next(&mut self, timeout: Duration) -> WatchEvent {
        let stream = &mut self.stream;
        self.runtime.block_on(async {
            match tokio::time::timeout(timeout, stream.message()).await {
                Err(_) => WatchEvent::Silent,
                Ok(Ok(Some(message))) => WatchEvent::Status(message.status()),
                Ok(Ok(None)) => WatchEvent::Ended,
                Ok(Err(status)) => WatchEvent::Failed(Some(status.code()), status.to_string()),
            }
        })
    }

    /// Waits up to `deadline` for `status`, skipping others; returns how
    /// long it took, or what came instead when the stream ended or the
    /// deadline passed.
    pub fn wait_for(
        &mut self,
        status: ServingStatus,
        deadline: Duration,
    ) -> Result<Duration, WatchEvent> {
        let started = Instant::now();
        loop {
            let left = deadline.saturating_sub(started.elapsed());
            match self.next(left) {
                WatchEvent::Status(seen) if seen == status => return Ok(started.elapsed()),
                WatchEvent::Status(_) if !left.is_zero() => continue,
                other => return Err(other),
            }
        }
    }
}
