//! The `--lifecycle-*` command-line flags, handled before the body of
//! `main` runs. Every other argument is left to the application.

use std::ffi::OsString;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;

/// What this run of the binary is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Mode {
    /// The service itself.
    Serve,
    /// `--lifecycle-preflight`: the preflight checks only (an initContainer).
    Preflight,
    /// `--lifecycle-probe ENDPOINT`: ask the running instance (an exec probe).
    Probe(&'static str),
    /// `--lifecycle-manifest`: print the Kubernetes snippet.
    Manifest,
}

const PREFLIGHT: &str = "--lifecycle-preflight";
const PROBE: &str = "--lifecycle-probe";
const MANIFEST: &str = "--lifecycle-manifest";
const PROBE_ENDPOINTS: [&str; 3] = ["livez", "readyz", "startupz"];

fn usage() -> String {
    format!("the lifecycle flags are {PREFLIGHT}, {PROBE} livez|readyz|startupz and {MANIFEST}")
}

/// Reads the mode from the arguments (the program name first, as from
/// `std::env::args_os()`). Only the three flags are lifecycle's; every
/// other argument (another `--lifecycle-…` included, and everything after
/// a `--`) is the application's, and left alone.
pub(crate) fn mode(args: impl IntoIterator<Item = OsString>) -> Result<Mode, String> {
    let mut modes = Vec::new();
    let mut args = args.into_iter().skip(1);
    while let Some(arg) = args.next() {
        let Some(arg) = arg.to_str() else { continue };
        if arg == "--" {
            break;
        }
        let (flag, inline_value) = match arg.split_once('=') {
            Some((flag, value)) => (flag, Some(value.to_owned())),
            None => (arg, None),
        };
        let mode = match flag {
            PREFLIGHT | MANIFEST if inline_value.is_some() => {
                return Err(format!("invalid flag {arg}: {flag} takes no value"))
            }
            PREFLIGHT => Mode::Preflight,
            MANIFEST => Mode::Manifest,
            PROBE => {
                let value = inline_value
                    .or_else(|| args.next().and_then(|v| v.into_string().ok()))
                    .unwrap_or_default();
                match PROBE_ENDPOINTS.iter().find(|e| **e == value) {
                    Some(endpoint) => Mode::Probe(endpoint),
                    None => {
                        return Err(format!(
                            "invalid flag {PROBE} {value:?}: expected livez, readyz or startupz"
                        ))
                    }
                }
            }
            _ => continue,
        };
        modes.push(mode);
    }
    match modes.len() {
        0 => Ok(Mode::Serve),
        1 => Ok(modes.remove(0)),
        _ => Err(format!("give one lifecycle flag at a time: {}", usage())),
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

/// The exec probe: GET `/ENDPOINT` from the probe server at `addr`, within
/// `timeout` in all. `Ok` with the status and body, or why it failed.
pub(crate) fn probe(
    addr: SocketAddr,
    endpoint: &str,
    timeout: Duration,
) -> Result<(u16, String), String> {
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
            let request = hyper::Request::get(format!("/{endpoint}"))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Mode, String> {
        mode(
            std::iter::once("service")
                .chain(args.iter().copied())
                .map(OsString::from),
        )
    }

    #[test]
    fn flags_pick_the_mode_and_leave_other_arguments_alone() {
        assert_eq!(parse(&["--port", "9000", "-v"]), Ok(Mode::Serve));
        assert_eq!(
            parse(&["--lifecycle-preflight", "--port", "1"]),
            Ok(Mode::Preflight)
        );
        assert_eq!(
            parse(&["--lifecycle-probe", "readyz"]),
            Ok(Mode::Probe("readyz"))
        );
        assert_eq!(
            parse(&["--lifecycle-probe=livez"]),
            Ok(Mode::Probe("livez"))
        );
        assert_eq!(parse(&["--lifecycle-manifest"]), Ok(Mode::Manifest));
        assert_eq!(parse(&["--", "--lifecycle-manifest"]), Ok(Mode::Serve));
        assert_eq!(
            parse(&["--lifecycle-v2", "--message=--lifecycle-preflight"]),
            Ok(Mode::Serve)
        );
    }

    #[test]
    fn bad_flags_are_errors_naming_the_flag() {
        assert!(parse(&["--lifecycle-probe", "healthz"])
            .unwrap_err()
            .contains("--lifecycle-probe \"healthz\""));
        assert!(parse(&["--lifecycle-probe"]).is_err());
        assert!(parse(&["--lifecycle-preflight", "--lifecycle-manifest"]).is_err());
    }
}
