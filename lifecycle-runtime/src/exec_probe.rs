//! `--lifecycle-probe ENDPOINT`: an exec probe for images without curl. It
//! asks the running instance's probe server over HTTP and exits 0 on 200.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;

use crate::config::Settings;
use crate::exit::Exit;
use crate::manifest::probe_timeout_seconds;
use crate::probe::Endpoint;

/// How long the exec probe waits at the least.
const MIN_TIMEOUT: Duration = Duration::from_secs(1);

/// Asks `endpoint`, printing the answer's body. It waits 1 s, or longer
/// when the endpoint's checks may take longer: the same `timeoutSeconds`
/// the manifest gives the kubelet.
pub(crate) fn run(settings: &Settings, endpoint: Endpoint) -> Exit {
    let timeout = MIN_TIMEOUT.max(Duration::from_secs(probe_timeout_seconds(endpoint)));
    match get(settings.probe_addr, endpoint, timeout) {
        // A closed stdout or stderr loses the text, never the exit code:
        // `println!` and `eprintln!` would panic.
        Ok((status, body)) => {
            let _ = writeln!(std::io::stdout(), "{}", body.trim_end());
            Exit::quiet(if status == 200 { 0 } else { 1 })
        }
        Err(error) => {
            // Not a failure of the service's: no termination message.
            let _ = writeln!(std::io::stderr(), "{endpoint}: {error}");
            Exit::quiet(1)
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

/// GET the endpoint from the probe server at `addr`, within `timeout` in
/// all. `Ok` with the status and body, or why it failed.
fn get(addr: SocketAddr, endpoint: Endpoint, timeout: Duration) -> Result<(u16, String), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a runtime: {e}"))?;
    let target = reachable(addr);
    runtime.block_on(async move {
        let exchange = async {
            let stream = tokio::net::TcpStream::connect(target)
                .await
                .map_err(|e| format!("cannot connect to the probe server at {target}: {e}"))?;
            let (mut sender, connection) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream))
                    .await
                    .map_err(|e| e.to_string())?;
            tokio::spawn(connection);
            let request = hyper::Request::get(endpoint.path())
                .header(hyper::header::HOST, target.to_string())
                .body(Empty::<Bytes>::new())
                .map_err(|e| e.to_string())?;
            let response = sender
                .send_request(request)
                .await
                .map_err(|e| e.to_string())?;
            let status = response.status().as_u16();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| e.to_string())?
                .to_bytes();
            Ok((status, String::from_utf8_lossy(&body).into_owned()))
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .unwrap_or_else(|_| {
                Err(format!(
                    "no answer from the probe server at {target} within {} ms",
                    timeout.as_millis()
                ))
            })
    })
}
