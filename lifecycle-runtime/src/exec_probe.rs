//! `--lifecycle-probe ENDPOINT`: an exec probe for images without curl. It
//! asks the running instance's probe server over HTTP and exits 0 on 200,
//! or, under `probe_protocol = "grpc"`, with gRPC health's `Check` of the
//! service named after the endpoint and exits 0 on `SERVING`.

use std::fmt;
use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;

use crate::binary::Binary;
use crate::config::{ProbeProtocol, Settings};
use crate::exit::{Code, Exit};
use crate::manifest::probe_timeout_seconds;
use crate::probe::Endpoint;

/// How long the exec probe waits at the least.
const MIN_TIMEOUT: Duration = Duration::from_secs(1);

/// What the probe server said: whether the probe passes, and the text to
/// print (the HTTP body, or the gRPC serving status's name).
struct Verdict {
    passed: bool,
    text: String,
}

/// Why the probe server gave no answer, as the line on stderr says it
/// after the endpoint.
#[derive(Debug)]
enum ProbeError {
    /// The probe's own runtime could not start.
    Runtime(io::Error),
    /// No answer within the probe's timeout.
    NoAnswer {
        target: SocketAddr,
        within: Duration,
    },
    /// No connection to the probe server.
    Connect {
        target: SocketAddr,
        error: io::Error,
    },
    /// The request could not be made.
    Request(hyper::http::Error),
    /// The HTTP exchange failed.
    Http(hyper::Error),
    /// gRPC health's `Check` gave no serving status.
    #[cfg(feature = "grpc")]
    Grpc(crate::grpc::client::CheckError),
    /// `probe_protocol = "grpc"` in a binary without the feature.
    #[cfg(not(feature = "grpc"))]
    NoGrpc,
}

impl fmt::Display for ProbeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProbeError::Runtime(error) => write!(f, "cannot start a runtime: {error}"),
            ProbeError::NoAnswer { target, within } => write!(
                f,
                "no answer from the probe server at {target} within {} ms",
                within.as_millis()
            ),
            ProbeError::Connect { target, error } => {
                write!(f, "cannot connect to the probe server at {target}: {error}")
            }
            ProbeError::Request(error) => error.fmt(f),
            ProbeError::Http(error) => error.fmt(f),
            #[cfg(feature = "grpc")]
            ProbeError::Grpc(error) => error.fmt(f),
            #[cfg(not(feature = "grpc"))]
            ProbeError::NoGrpc => f.write_str(
                "this binary was built without lifecycle-runtime's cargo feature `grpc`",
            ),
        }
    }
}

/// Asks `endpoint`, printing the answer. It waits 1 s, or longer when the
/// endpoint's checks may take longer: the same `timeoutSeconds` the
/// manifest gives the kubelet.
pub(crate) fn run(settings: &Settings, endpoint: Endpoint) -> Exit {
    let timeout = MIN_TIMEOUT.max(Duration::from_secs(probe_timeout_seconds(
        &Binary::registered().endpoint_checks(endpoint),
    )));
    let target = reachable(settings.probe_addr);
    let verdict = within(target, timeout, async move {
        match settings.probe_protocol {
            ProbeProtocol::Http => get(target, endpoint).await,
            ProbeProtocol::Grpc => check(target, endpoint, timeout).await,
        }
    });
    match verdict {
        // A closed stdout or stderr loses the text, never the exit code:
        // `println!` and `eprintln!` would panic.
        Ok(Verdict { passed, text }) => {
            let _ = writeln!(std::io::stdout(), "{}", text.trim_end());
            Exit::quiet(if passed { Code::Success } else { Code::Failure })
        }
        Err(error) => {
            // Not a failure of the service's: no termination message.
            let _ = writeln!(std::io::stderr(), "{endpoint}: {error}");
            Exit::quiet(Code::Failure)
        }
    }
}

/// Where a client on this host reaches a server bound to `bound`: an
/// unspecified address (`0.0.0.0`, `[::]`) is reached on loopback.
pub(crate) fn reachable(bound: SocketAddr) -> SocketAddr {
    let ip = match bound.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, bound.port())
}

/// Runs `exchange` with the probe server at `target` on a runtime of its
/// own, within `timeout` in all.
fn within(
    target: SocketAddr,
    timeout: Duration,
    exchange: impl std::future::Future<Output = Result<Verdict, ProbeError>>,
) -> Result<Verdict, ProbeError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(ProbeError::Runtime)?;
    runtime.block_on(async move {
        tokio::time::timeout(timeout, exchange)
            .await
            .unwrap_or(Err(ProbeError::NoAnswer {
                target,
                within: timeout,
            }))
    })
}

/// GET the endpoint from the probe server at `target`: it passes on 200.
async fn get(target: SocketAddr, endpoint: Endpoint) -> Result<Verdict, ProbeError> {
    let stream = tokio::net::TcpStream::connect(target)
        .await
        .map_err(|error| ProbeError::Connect { target, error })?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(ProbeError::Http)?;
    tokio::spawn(crate::call::task(connection));
    let request = hyper::Request::get(endpoint.path())
        .header(hyper::header::HOST, target.to_string())
        .body(Empty::<Bytes>::new())
        .map_err(ProbeError::Request)?;
    let response = sender
        .send_request(request)
        .await
        .map_err(ProbeError::Http)?;
    let passed = response.status() == hyper::StatusCode::OK;
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(ProbeError::Http)?
        .to_bytes();
    Ok(Verdict {
        passed,
        text: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// gRPC health's `Check` of the service named after the endpoint (what
/// the manifest's `grpc:` probes ask): it passes on `SERVING`.
#[cfg(feature = "grpc")]
async fn check(
    target: SocketAddr,
    endpoint: Endpoint,
    timeout: Duration,
) -> Result<Verdict, ProbeError> {
    use crate::grpc::proto::health_check_response::ServingStatus;
    let status = crate::grpc::client::check(target, endpoint.as_str(), timeout)
        .await
        .map_err(ProbeError::Grpc)?;
    Ok(Verdict {
        passed: status == ServingStatus::Serving,
        text: status.as_str_name().to_owned(),
    })
}

/// Configuration refuses `grpc` in a binary without the feature (a
/// compile error as an argument, exit 2 as a variable): never reached.
#[cfg(not(feature = "grpc"))]
async fn check(_: SocketAddr, _: Endpoint, _: Duration) -> Result<Verdict, ProbeError> {
    Err(ProbeError::NoGrpc)
}
