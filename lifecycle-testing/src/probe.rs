//! Probing as the kubelet's HTTP prober does: a new connection for every
//! probe, `User-Agent: kube-probe/…`, success on 200–399, at most 10 KiB of
//! body read, redirects followed as it follows them, and a time-out over
//! the whole exchange.
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
pub const DEFAULT_TIMEOUT: Duration =
    Duration::from_secs(crate::kubelet::probe_defaults::TIMEOUT_SECONDS as u64);

/// The most requests one probe sends, the first included: Go's client,
/// which the kubelet's prober uses, stops at the tenth redirect ("stopped
/// after 10 redirects") and the probe fails.
const MAX_REQUESTS: usize = 10;

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
    /// Why there is no status: refused, reset, timed out, malformed, too
    /// many redirects.
    pub error: Option<String>,
    /// From connecting to the end of what was read.
    pub elapsed: Duration,
    /// The `Location` of each redirect followed, in order (see
    /// [`http_probe`]).
    pub redirects: Vec<String>,
    /// The kubelet's warning about a passing answer: a 3xx it did not
    /// follow (a redirect to another host), which counts as a success,
    /// with a `ProbeWarning` event.
    pub warning: Option<String>,
    /// Whether the service answered, whatever the verdict: a status line
    /// (a redirect's too: one to an unusable `Location`, or the tenth) or
    /// a time-out (it said nothing in time), not a refused or reset
    /// connection nor one closed unanswered; for a gRPC probe, a status or
    /// an error code of the server's.
    pub(crate) answered: bool,
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
            (Some(status), _) => {
                write!(f, "GET {}", self.path)?;
                for location in &self.redirects {
                    write!(f, " -> redirected to {location}")?;
                }
                write!(
                    f,
                    " -> {status} in {} ms:\n{}",
                    self.elapsed.as_millis(),
                    self.body.trim_end()
                )?;
                match &self.warning {
                    Some(warning) => write!(f, "\nwarning: {warning}"),
                    None => Ok(()),
                }
            }
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
///
/// Redirects go as in the kubelet's prober
/// ([`pkg/probe/http/http.go`](https://github.com/kubernetes/kubernetes/blob/master/pkg/probe/http/http.go),
/// `RedirectChecker(false)`, on Go's client): a 301, 302, 303, 307 or 308
/// with a `Location` on the same host name is followed, whatever its port;
/// the tenth such redirect fails the probe ("stopped after 10
/// redirects"); a redirect to another host name is not followed, and the
/// redirect itself passes, with a [`warning`](ProbeAnswer::warning), as
/// does any other 3xx answer not followed. The
/// host name is the address's IP, as the kubelet's is the pod's: a
/// redirect to `localhost` goes to another host. The time-out covers the
/// redirects too.
pub fn http_probe(addr: SocketAddr, path: &str, timeout: Duration) -> ProbeAnswer {
    let started = Instant::now();
    let mut answer = ProbeAnswer {
        path: path.to_owned(),
        status: None,
        grpc_status: None,
        body: String::new(),
        error: None,
        elapsed: Duration::ZERO,
        redirects: Vec::new(),
        warning: None,
        answered: false,
    };
    let mut target = (addr, path.to_owned());
    for sent in 1.. {
        let left = timeout.saturating_sub(started.elapsed());
        let got = if left.is_zero() {
            Err(io::Error::from(io::ErrorKind::TimedOut))
        } else {
            wire::get(
                target.0,
                &target.0.to_string(),
                &target.1,
                left,
                USER_AGENT,
                BodyLimit::Truncate(MAX_BODY),
            )
        };
        let got = match got {
            Ok(got) => got,
            Err(error) => {
                answer.answered = timed_out(&error);
                answer.error = Some(describe(&error, timeout));
                break;
            }
        };
        answer.answered = true;
        let body = String::from_utf8_lossy(&got.body).into_owned();
        let redirect = match (got.status, got.location) {
            (301 | 302 | 303 | 307 | 308, Some(location)) => Some(location),
            _ => None,
        };
        let Some(location) = redirect else {
            answer.status = Some(got.status);
            answer.body = body;
            break;
        };
        match follow(addr, &target, &location) {
            Redirect::OtherHost => {
                answer.status = Some(got.status);
                answer.body = body;
                break;
            }
            Redirect::Unusable(why) => {
                answer.error = Some(format!("redirect to {location:?}: {why}"));
                break;
            }
            Redirect::SameHost(next) if sent < MAX_REQUESTS => {
                answer.redirects.push(location);
                target = next;
            }
            Redirect::SameHost(_) => {
                answer.redirects.push(location);
                answer.error = Some(format!("stopped after {MAX_REQUESTS} redirects"));
                break;
            }
        }
    }
    // Any 3xx answer passes with a warning: one not followed (another
    // host, no `Location`, a 300 or a 304).
    if let Some(300..=399) = answer.status {
        answer.warning = Some(format!(
            "Probe terminated redirects, Response body: {}",
            answer.body
        ));
    }
    answer.elapsed = started.elapsed();
    answer
}

/// Where a redirect leads, as the kubelet's redirect checker sees it.
enum Redirect {
    /// The same host name: followed, to this address and path.
    SameHost((SocketAddr, String)),
    /// Another host name: not followed.
    OtherHost,
    /// A `Location` the kit cannot follow (HTTPS, a malformed one).
    Unusable(&'static str),
}

/// Resolves `location` against the request `from` (`probed` is the
/// probe's first address: its IP is the host name compared).
fn follow(probed: SocketAddr, from: &(SocketAddr, String), location: &str) -> Redirect {
    let location = location.split('#').next().unwrap_or_default();
    let lower = location.to_ascii_lowercase();
    let (scheme, rest) = if lower.starts_with("http://") {
        ("http", &location[7..])
    } else if lower.starts_with("https://") {
        ("https", &location[8..])
    } else if let Some(rest) = location.strip_prefix("//") {
        ("http", rest)
    } else {
        // A path on the same authority: absolute, or relative to the
        // request's folder.
        let path = if location.starts_with('/') {
            location.to_owned()
        } else {
            let base = from.1.split('?').next().unwrap_or("/");
            let folder = &base[..base.rfind('/').map_or(0, |i| i + 1)];
            format!("{folder}{location}")
        };
        return Redirect::SameHost((from.0, path));
    };
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    let path = match path {
        "" => "/".to_owned(),
        path if path.starts_with('?') => format!("/{path}"),
        path => path.to_owned(),
    };
    let authority = authority.rsplit('@').next().unwrap_or_default();
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((host, port)) => (host, port.strip_prefix(':')),
            None => return Redirect::Unusable("a malformed host"),
        },
        None => match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        },
    };
    let same_host = host
        .parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip == probed.ip());
    if !same_host {
        return Redirect::OtherHost;
    }
    if scheme == "https" {
        return Redirect::Unusable("the kit probes plain HTTP only");
    }
    let port = match port.filter(|p| !p.is_empty()) {
        None => 80,
        Some(port) => match port.parse::<u16>() {
            Ok(port) => port,
            Err(_) => return Redirect::Unusable("a malformed port"),
        },
    };
    Redirect::SameHost((SocketAddr::new(probed.ip(), port), path))
}

fn timed_out(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

fn describe(error: &io::Error, timeout: Duration) -> String {
    if timed_out(error) {
        format!("timed out after {} ms", timeout.as_millis())
    } else {
        error.to_string()
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

    /// A server of redirects: `/hop/N` redirects (relatively) to
    /// `/hop/N-1` and `/hop/0` answers 200; `/to?URL` redirects to URL;
    /// anything else answers 200 with its path. Every path asked comes out
    /// of the receiver.
    fn redirects() -> (SocketAddr, std::sync::mpsc::Receiver<String>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (asked, paths) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut request = [0u8; 2048];
                let read = stream.read(&mut request).unwrap_or(0);
                let request = String::from_utf8_lossy(&request[..read]).into_owned();
                let path = request.split_whitespace().nth(1).unwrap_or("").to_owned();
                let _ = asked.send(path.clone());
                let location = if let Some(hops) = path.strip_prefix("/hop/") {
                    let hops: u32 = hops.parse().unwrap();
                    (hops > 0).then(|| format!("{}", hops - 1))
                } else {
                    path.strip_prefix("/to?").map(str::to_owned)
                };
                let _ = match location {
                    Some(location) => write!(
                        stream,
                        "HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 5\r\n\r\nmoved"
                    ),
                    None => write!(
                        stream,
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{path}",
                        path.len()
                    ),
                };
            }
        });
        (addr, paths)
    }

    #[test]
    fn redirects_are_followed_on_the_same_host_up_to_the_tenth() {
        let (addr, paths) = redirects();
        let nine = http_probe(addr, "/hop/9", DEFAULT_TIMEOUT);
        assert!(nine.passed(), "{nine}");
        assert_eq!(nine.status, Some(200));
        assert_eq!(nine.body, "/hop/0");
        assert_eq!(nine.redirects.len(), 9, "{nine}");
        assert_eq!(nine.warning, None);
        assert_eq!(paths.try_iter().count(), 10);

        let ten = http_probe(addr, "/hop/10", DEFAULT_TIMEOUT);
        assert!(!ten.passed(), "{ten}");
        assert_eq!(ten.error.as_deref(), Some("stopped after 10 redirects"));
        assert_eq!(paths.try_iter().count(), 10, "no eleventh request");

        // Another port of the same host is the same host.
        let (other, other_paths) = redirects();
        let moved = http_probe(
            addr,
            &format!("/to?http://127.0.0.1:{}/there", other.port()),
            DEFAULT_TIMEOUT,
        );
        assert!(moved.passed(), "{moved}");
        assert_eq!(moved.body, "/there");
        assert_eq!(other_paths.try_iter().collect::<Vec<_>>(), ["/there"]);
    }

    #[test]
    fn a_redirect_to_another_host_passes_unfollowed_with_a_warning() {
        let (addr, paths) = redirects();
        let away = http_probe(
            addr,
            &format!("/to?http://localhost:{}/elsewhere", addr.port()),
            DEFAULT_TIMEOUT,
        );
        assert!(away.passed(), "{away}");
        assert_eq!(away.status, Some(302));
        assert!(away.redirects.is_empty(), "{away}");
        assert_eq!(
            away.warning.as_deref(),
            Some("Probe terminated redirects, Response body: moved")
        );
        assert!(away
            .to_string()
            .contains("warning: Probe terminated redirects"));
        assert_eq!(paths.try_iter().count(), 1, "not followed");
    }

    #[test]
    fn a_failed_redirect_is_the_services_answer_and_a_refused_connection_is_none() {
        let (addr, _paths) = redirects();
        for path in [
            "/hop/10".to_owned(),
            format!("/to?https://127.0.0.1:{}/tls", addr.port()),
            "/to?http://127.0.0.1:port/".to_owned(),
        ] {
            let answer = http_probe(addr, &path, DEFAULT_TIMEOUT);
            assert!(!answer.passed(), "{answer}");
            assert!(answer.answered, "a status line came back: {answer}");
        }
        assert!(http_probe(addr, "/ok", DEFAULT_TIMEOUT).answered);

        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let timed_out = http_probe(
            silent.local_addr().unwrap(),
            "/readyz",
            Duration::from_millis(200),
        );
        assert!(timed_out.answered, "accepted, then silent: {timed_out}");
        let closed = silent.local_addr().unwrap();
        drop(silent);
        let refused = http_probe(closed, "/readyz", DEFAULT_TIMEOUT);
        assert!(!refused.answered, "{refused}");
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
