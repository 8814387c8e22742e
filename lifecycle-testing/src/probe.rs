//! Probing as the kubelet's HTTP prober does: a new connection for every
//! probe, `User-Agent: kube-probe/…`, success on 200–399, at most 10 KiB of
//! body read, and a time-out over the whole exchange.
//!
//! [`Service::probe`](crate::Service::probe) probes one of the service's
//! [`Endpoint`]s; [`http_probe`] probes any address. A [`ProbeAnswer`] is
//! judged as the kubelet judges it, and a `?verbose` answer reads as a
//! [`VerboseAnswer`], one [`CheckLine`] per check.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::wire::{self, BodyLimit};

/// What the kubelet reads of a probe's body at most.
pub const MAX_BODY: usize = 10 * 1024;

/// The kubelet's `User-Agent` for HTTP probes.
pub const USER_AGENT: &str = "kube-probe/1.33";

/// The kubelet's default probe timeout (`timeoutSeconds: 1`).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);

/// A probe endpoint of the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `/livez`: is the process beyond repair?
    Livez,
    /// `/readyz`: may it take traffic?
    Readyz,
    /// `/startupz`: has start-up finished?
    Startupz,
    /// `/healthz`: live and ready.
    Healthz,
}

impl Endpoint {
    /// `/livez` and the like.
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::Livez => "/livez",
            Endpoint::Readyz => "/readyz",
            Endpoint::Startupz => "/startupz",
            Endpoint::Healthz => "/healthz",
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.path())
    }
}

/// The answer to one probe, as the kubelet judges it: HTTP, or gRPC for
/// the `grpc` probes of a manifest (with the kit's `grpc` feature).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProbeAnswer {
    /// The path asked, query included; `grpc:SERVICE` for a gRPC probe.
    pub path: String,
    /// The HTTP status, if one came back in time.
    pub status: Option<u16>,
    /// The gRPC health status's name (`SERVING`, `NOT_SERVING`) of a gRPC
    /// probe that got one.
    pub grpc_status: Option<String>,
    /// The body, at most [`MAX_BODY`] bytes of it, lossily decoded.
    pub body: String,
    /// Why there is no status: refused, reset, timed out, malformed.
    pub error: Option<String>,
    /// From connecting to the end of what was read.
    pub elapsed: Duration,
}

impl ProbeAnswer {
    /// The kubelet's verdict: a status from 200 to 399, or `SERVING`.
    pub fn passed(&self) -> bool {
        matches!(self.status, Some(200..=399)) || self.grpc_status.as_deref() == Some("SERVING")
    }

    /// The body as a verbose answer (meaningful for `?verbose` probes).
    pub fn verbose(&self) -> VerboseAnswer {
        VerboseAnswer::parse(&self.body)
    }
}

impl fmt::Display for ProbeAnswer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(status) = &self.grpc_status {
            return write!(
                f,
                "gRPC Check {} -> {status} in {} ms",
                self.path,
                self.elapsed.as_millis()
            );
        }
        match (self.status, &self.error) {
            (Some(status), _) => write!(
                f,
                "GET {} -> {status} in {} ms:\n{}",
                self.path,
                self.elapsed.as_millis(),
                self.body.trim_end()
            ),
            (None, Some(error)) => write!(f, "GET {} -> no answer: {error}", self.path),
            (None, None) => write!(f, "GET {} -> no answer", self.path),
        }
    }
}

/// Sends one HTTP probe of `path` (`/livez`, `/readyz/db?verbose`) to
/// `addr`, as the kubelet does, within `timeout` in all (the manifest's
/// `timeoutSeconds`; [`DEFAULT_TIMEOUT`] is the kubelet's default). A
/// probe that gets no answer is a failed [`ProbeAnswer`] saying why, not
/// an error.
pub fn http_probe(addr: SocketAddr, path: &str, timeout: Duration) -> ProbeAnswer {
    let started = Instant::now();
    let answer = wire::get(
        addr,
        path,
        timeout,
        USER_AGENT,
        BodyLimit::Truncate(MAX_BODY),
    );
    let (status, body, error) = match answer {
        Ok((status, body)) => (
            Some(status),
            String::from_utf8_lossy(&body).into_owned(),
            None,
        ),
        Err(error) => (None, String::new(), Some(describe(&error, timeout))),
    };
    ProbeAnswer {
        path: path.to_owned(),
        status,
        grpc_status: None,
        body,
        error,
        elapsed: started.elapsed(),
    }
}

fn describe(error: &io::Error, timeout: Duration) -> String {
    match error.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
            format!("timed out after {} ms", timeout.as_millis())
        }
        _ => error.to_string(),
    }
}

/// A verbose answer (`?verbose`), line by line.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VerboseAnswer {
    /// One entry per `[+]` or `[-]` line, in order.
    pub checks: Vec<CheckLine>,
    /// The closing `… check passed` or `… check failed` line's verdict.
    pub passed: Option<bool>,
    /// `warn:` lines.
    pub warnings: Vec<String>,
}

/// One check's line of a verbose answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckLine {
    /// The check's name.
    pub name: String,
    /// `[+]` (passing or excluded) rather than `[-]`.
    pub passed: bool,
    /// `[+]NAME excluded: ok`.
    pub excluded: bool,
    /// The text after `failed: ` on a failing line, details included.
    pub reason: Option<String>,
    /// The `key=value` details of a passing line.
    pub details: Vec<(String, String)>,
}

impl VerboseAnswer {
    /// Parses the text of a `?verbose` answer.
    pub fn parse(text: &str) -> VerboseAnswer {
        let mut verbose = VerboseAnswer::default();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("[+]") {
                let (name, after) = rest.split_once(' ').unwrap_or((rest, ""));
                let details = after
                    .strip_prefix("ok (")
                    .and_then(|d| d.strip_suffix(')'))
                    .map(|d| {
                        d.split(", ")
                            .filter_map(|pair| pair.split_once('='))
                            .map(|(k, v)| (k.to_owned(), v.to_owned()))
                            .collect()
                    })
                    .unwrap_or_default();
                verbose.checks.push(CheckLine {
                    name: name.to_owned(),
                    passed: true,
                    excluded: after == "excluded: ok",
                    reason: None,
                    details,
                });
            } else if let Some(rest) = line.strip_prefix("[-]") {
                let (name, reason) = rest.split_once(" failed: ").unwrap_or((rest, ""));
                verbose.checks.push(CheckLine {
                    name: name.to_owned(),
                    passed: false,
                    excluded: false,
                    reason: Some(reason.to_owned()),
                    details: Vec::new(),
                });
            } else if let Some(warning) = line.strip_prefix("warn: ") {
                verbose.warnings.push(warning.to_owned());
            } else if line.ends_with(" check passed") {
                verbose.passed = Some(true);
            } else if line.ends_with(" check failed") {
                verbose.passed = Some(false);
            }
        }
        verbose
    }

    /// The line of the check called `name`.
    pub fn check(&self, name: &str) -> Option<&CheckLine> {
        self.checks.iter().find(|c| c.name == name)
    }

    /// The checks that failed.
    pub fn failing(&self) -> impl Iterator<Item = &CheckLine> {
        self.checks.iter().filter(|c| !c.passed)
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use super::*;

    #[test]
    fn verbose_answers_parse_into_checks() {
        let verbose = VerboseAnswer::parse(
            "[+]lifecycle ok\n[+]db ok (pool=3, mode=rw)\n[-]cache failed: refused (retries=2)\n\
             [+]queue excluded: ok\nwarn: some health checks cannot be excluded: no matches for \"x\"\n\
             readyz check failed\n",
        );
        assert_eq!(verbose.passed, Some(false));
        assert_eq!(verbose.checks.len(), 4);
        let db = verbose.check("db").unwrap();
        assert!(db.passed && !db.excluded);
        assert_eq!(
            db.details,
            [("pool".into(), "3".into()), ("mode".into(), "rw".into())]
        );
        let cache = verbose.check("cache").unwrap();
        assert_eq!(cache.reason.as_deref(), Some("refused (retries=2)"));
        assert!(verbose.check("queue").unwrap().excluded);
        assert_eq!(verbose.failing().count(), 1);
        assert_eq!(verbose.warnings.len(), 1);
    }

    #[test]
    fn a_closed_port_is_a_failed_probe() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let answer = http_probe(port, "/livez", DEFAULT_TIMEOUT);
        assert!(!answer.passed());
        assert!(answer.error.is_some(), "{answer}");
    }

    #[test]
    fn probes_read_at_most_ten_kib_and_judge_like_the_kubelet() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let mut seen = Vec::new();
            for status in [302, 503] {
                let (mut stream, _) = listener.accept().unwrap();
                let mut request = [0u8; 1024];
                let read = stream.read(&mut request).unwrap();
                seen.push(String::from_utf8_lossy(&request[..read]).into_owned());
                let body = "x".repeat(20 * 1024);
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} X\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
            }
            seen
        });
        let redirect = http_probe(addr, "/readyz", DEFAULT_TIMEOUT);
        assert!(redirect.passed(), "3xx passes: {redirect}");
        assert_eq!(redirect.body.len(), MAX_BODY);
        let unavailable = http_probe(addr, "/readyz", DEFAULT_TIMEOUT);
        assert!(!unavailable.passed());
        let requests = server.join().unwrap();
        assert!(requests[0].contains(&format!("User-Agent: {USER_AGENT}\r\n")));
        assert!(requests[0].contains("Connection: close\r\n"));
    }

    #[test]
    fn a_silent_server_times_the_probe_out() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let answer = http_probe(addr, "/livez", Duration::from_millis(200));
        assert!(!answer.passed());
        assert_eq!(answer.error.as_deref(), Some("timed out after 200 ms"));
        assert!(answer.elapsed < Duration::from_secs(2), "{answer:?}");
        drop(listener);
    }
}
