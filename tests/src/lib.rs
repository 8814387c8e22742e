//! What this project's end-to-end tests add to the test kit.
//!
//! The kit (`lifecycle-testing`) starts a service binary as the kubelet
//! would, probes it, signals and stops it; the tests use it directly. What
//! stays here is private to this repository's tests:
//!
//! - [`fixture`]: the kit's builder with the fixtures' environment (logs at
//!   `info`, none of the test process's `TESTBED_*` switches);
//! - [`ServiceExt`]: the testbed's control protocol on stdin (`set FLAG`,
//!   acknowledged with `ack set FLAG` on stdout), lines awaited on stdout,
//!   the application's address, the process's memory, and requests that are
//!   not kubelet probes (other methods, headers, exact statuses);
//! - [`Scratch`]: a folder of a test's own, removed with its files;
//! - [`run`]: a binary run to its exit, for the modes that never serve
//!   probes (`--lifecycle-manifest`, a configuration error, …);
//! - raw HTTP over TCP for the probe server's hardening tests and for the
//!   application, and [`KeepAliveClient`]: requests one after another on
//!   one connection, for keep-alive through a stop, and [`EventStream`]:
//!   server-sent events read chunk by chunk, which tells a stream that
//!   ended from one that was cut;
//! - [`accept_queue`]: the connections the kernel holds for a listener not
//!   yet accepted, for the tests that flood the probe server;
//! - [`kubernetes`]: what `--lifecycle-manifest` prints, read as
//!   Kubernetes reads it;
//! - [`redis`]: a real `redis-server` of the test's own, for the examples'
//!   tests, and [`partition`]: a network partition in front of it;
//! - [`prometheus`]: a real Prometheus server scraping the services, queried
//!   over its HTTP API, for the metrics tests;
//! - [`python`]: Python's `grpcio-health-checking`, a gRPC health client
//!   nobody here wrote, run through `tests/python/health_client.py`.
//!
//! An integration test names one of its own package's binaries with
//! `CARGO_BIN_EXE_NAME`, which cargo sets only for those: the fixtures in
//! `tests/src/bin/` for this crate's tests, an example's own binary for that
//! example's tests.
//!
//! ```ignore
//! // tests/tests/probes.rs
//! use lifecycle_testing::Endpoint;
//! use lifecycle_tests::{fixture, ServiceExt};
//!
//! let mut service = fixture(env!("CARGO_BIN_EXE_testbed")).start().unwrap();
//! service.command("set down");
//! assert_eq!(service.probe(Endpoint::Readyz).status, Some(503));
//! ```

// Linux only, not ported: on another system this is the error, and it says
// why (rather than the errors of everything Linux-specific below).
#[cfg(not(target_os = "linux"))]
compile_error!("lifecycle-tests is lifecycle's Linux end-to-end harness (network namespaces, PID namespaces, signals, Linux packages); it is not built for other systems");

mod grpc;
pub use grpc::{grpc_list, h2_get};
pub mod kubernetes;
pub mod partition;
pub mod prometheus;
pub mod python;
pub mod redis;

use std::io::{self, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use lifecycle_testing::probe::{ProbeAnswer, DEFAULT_TIMEOUT};
use lifecycle_testing::{Service, ServiceBuilder};

/// How long a request that is not a kubelet probe may take: the
/// application's, a probe whose latency a test measures beyond the
/// kubelet's 1 s, a raw exchange.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the testbed may take to acknowledge a command.
const ACK_DEADLINE: Duration = Duration::from_secs(10);

/// How long [`run`] waits for the process to exit: seconds at most for
/// any fixture, even on a loaded machine (an audit of a large manifest
/// among them).
pub const RUN_DEADLINE: Duration = Duration::from_secs(30);

/// The kit's builder for `bin` with the fixtures' environment: logs at
/// `info` whatever `RUST_LOG` the tests run with (a later `.env("RUST_LOG",
/// …)` overrides it), and none of the test process's own `TESTBED_*`
/// switches. The kit itself leaves out the test process's `LIFECYCLE_*`
/// variables and `KUBERNETES_SERVICE_HOST`.
pub fn fixture(bin: impl AsRef<Path>) -> ServiceBuilder {
    let mut builder = Service::builder(bin).env("RUST_LOG", "info");
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("TESTBED_") {
            builder = builder.env_remove(key);
        }
    }
    builder
}

/// The address outside loopback that [`in_private_network`] gives its
/// body: TEST-NET-1 (RFC 5737), which exists only inside that namespace.
pub const OUTSIDE_LOOPBACK: std::net::Ipv4Addr = std::net::Ipv4Addr::new(192, 0, 2, 1);

/// Runs `body` on a thread of its own in a new, private network namespace
/// where loopback is up (127.0.0.1 and ::1) and [`OUTSIDE_LOOPBACK`] is an
/// address of this host outside loopback. Processes the body starts are in
/// that namespace too, so a probe server bound to `0.0.0.0` or `[::]`
/// sees a connection to `OUTSIDE_LOOPBACK` come from a peer outside
/// loopback, as it would see the kubelet or another pod, whatever networks
/// the machine has, and no packet leaves the namespace.
///
/// Needs root (CAP_SYS_ADMIN, as in CI and the README's test command) and
/// iproute2's `ip`; panics naming what is missing rather than skipping.
pub fn in_private_network<T: Send>(body: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                // SAFETY: unshare changes this thread's network namespace
                // only; it touches no memory.
                if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
                    panic!(
                        "cannot make a private network namespace (unshare(CLONE_NEWNET): {}): \
                         run the tests as root, as ./scripts/test and CI do",
                        io::Error::last_os_error()
                    );
                }
                let outside = format!("{OUTSIDE_LOOPBACK}/32");
                for args in [
                    &["link", "set", "lo", "up"][..],
                    &["addr", "add", &outside, "dev", "lo"][..],
                ] {
                    let status = std::process::Command::new("ip")
                        .args(args)
                        .status()
                        .unwrap_or_else(|e| {
                            panic!("cannot run `ip` (Debian package iproute2): {e}")
                        });
                    assert!(status.success(), "`ip {}` failed: {status}", args.join(" "));
                }
                body()
            })
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// Raises this process's open-file limit to its hard limit, for tests that
/// hold thousands of sockets (a service started afterwards inherits it);
/// panics when the hard limit is below `needed`.
pub fn raise_open_file_limit(needed: u64) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit write to and read from a valid rlimit.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        limit.rlim_cur = limit.rlim_max;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
    }
    assert!(
        limit.rlim_cur >= needed,
        "the open-file hard limit, {}, is below the {needed} this test needs",
        limit.rlim_cur
    );
}

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A fresh folder of a test's own under the temp dir, named
/// `PREFIX-PID-N`, removed with everything in it when dropped (a failed
/// assertion included): for the files a test hands a process (a
/// termination log, an address file, a journal) and the odd ones it makes
/// there itself (a FIFO, a configuration).
pub struct Scratch(std::path::PathBuf);

impl Scratch {
    /// Creates the folder, emptied of what an earlier process with the same
    /// id left there.
    pub fn new(prefix: &str) -> Scratch {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "{prefix}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        Scratch(dir)
    }

    /// The folder itself.
    pub fn dir(&self) -> &Path {
        &self.0
    }

    /// `name` in the folder; nothing is created.
    pub fn path(&self, name: impl AsRef<Path>) -> std::path::PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A fresh path for `LIFECYCLE_TERMINATION_LOG`, not yet created, for a
/// binary run with [`run`] (the kit gives a service its own).
pub fn termination_log_path() -> std::path::PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let path = std::env::temp_dir().join(format!(
        "lifecycle-termination-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_file(&path);
    path
}

/// Runs `bin ARGS` to its exit, in the environment [`fixture`] gives:
/// (exit code, stdout lines, stderr lines joined with `\n`). For the modes
/// that exit without serving probes, where the kit has nothing to wait for.
pub fn run(
    bin: impl AsRef<Path>,
    args: &[&str],
    env: &[(&str, &str)],
) -> (Option<i32>, Vec<String>, String) {
    run_in(bin, args, env, None, None)
}

/// [`run`] in the directory `dir` when given, with `stdin` written to the
/// process when given (else it reads nothing).
pub fn run_in(
    bin: impl AsRef<Path>,
    args: &[&str],
    env: &[(&str, &str)],
    dir: Option<&Path>,
    stdin: Option<&str>,
) -> (Option<i32>, Vec<String>, String) {
    let bin = bin.as_ref();
    let mut command = Command::new(bin);
    command.args(args);
    if let Some(dir) = dir {
        command.current_dir(dir);
    }
    for (key, _) in std::env::vars() {
        if key.starts_with("LIFECYCLE_")
            || key.starts_with("TESTBED_")
            || key == "KUBERNETES_SERVICE_HOST"
        {
            command.env_remove(key);
        }
    }
    let mut child = command
        .env("RUST_LOG", "info")
        .envs(env.iter().copied())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()));
    let writer = child.stdin.take().map(|mut input| {
        let stdin = stdin.unwrap_or_default().to_owned();
        // A run that does not read stdin closes it: the write may fail.
        std::thread::spawn(move || {
            let _ = input.write_all(stdin.as_bytes());
        })
    });
    let read_all = |mut stream: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stream.read_to_string(&mut text);
            text
        })
    };
    let stdout = read_all(Box::new(child.stdout.take().unwrap()));
    let stderr = read_all(Box::new(child.stderr.take().unwrap()));
    let until = Instant::now() + RUN_DEADLINE;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > until {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{} {args:?} still running after {RUN_DEADLINE:?}:\n{}",
                bin.display(),
                stderr.join().unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    if let Some(writer) = writer {
        let _ = writer.join();
    }
    // The pipes close with the process: the readers have everything.
    let stdout = stdout.join().unwrap();
    let stderr = stderr.join().unwrap();
    (
        status.code(),
        stdout.lines().map(str::to_owned).collect(),
        stderr.lines().collect::<Vec<_>>().join("\n"),
    )
}

/// An HTTP answer read off a raw connection.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    /// Header names in lower case, in order.
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// The server closes the connection after it: `Connection: close`, an
    /// HTTP/1.0 answer without `Connection: keep-alive`, or a body that
    /// ends with the connection.
    pub closes: bool,
}

impl Answer {
    /// The value of the header `name` (any case), if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value.as_str())
    }
}

/// Sends one `METHOD path` request with `headers` on a new connection
/// (`Connection: close`) and reads the whole answer: for what a kubelet
/// probe does not do (another method, an `Accept` header, a look at the
/// answer's headers) and for the application.
pub fn try_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> io::Result<Answer> {
    let mut stream = TcpStream::connect_timeout(&addr, CLIENT_TIMEOUT)?;
    stream.set_read_timeout(Some(CLIENT_TIMEOUT))?;
    stream.set_write_timeout(Some(CLIENT_TIMEOUT))?;
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes())?;
    let mut received = Vec::new();
    stream.read_to_end(&mut received)?;
    parse_answer(&received)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "not an HTTP answer"))
}

/// [`try_request`], panicking when no answer comes.
pub fn request(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)]) -> Answer {
    try_request(addr, method, path, headers)
        .unwrap_or_else(|e| panic!("{method} {path} on {addr}: {e}"))
}

fn parse_answer(received: &[u8]) -> Option<Answer> {
    let head_end = received.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&received[..head_end]).ok()?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next()?;
    let status = status_line.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines.map(header).collect::<Option<_>>()?;
    let mut body = &received[head_end + 4..];
    let length = content_length(&headers);
    if let Some(length) = length {
        body = &body[..length.min(body.len())];
    }
    // The servers under test send whole bodies with a Content-Length.
    assert!(
        !headers
            .iter()
            .any(|(name, value)| name == "transfer-encoding" && value.contains("chunked")),
        "a chunked answer: {head}"
    );
    Some(Answer {
        status,
        closes: length.is_none() || closes(status_line, &headers),
        headers,
        body: String::from_utf8_lossy(body).into_owned(),
    })
}

/// A header line as `(name in lower case, value)`; `None` without a colon.
fn header(line: &str) -> Option<(String, String)> {
    let (name, value) = line.split_once(':')?;
    Some((name.trim().to_ascii_lowercase(), value.trim().to_owned()))
}

/// The `Content-Length` among `headers` (names in lower case).
fn content_length(headers: &[(String, String)]) -> Option<usize> {
    headers
        .iter()
        .find(|(name, _)| name == "content-length")
        .and_then(|(_, value)| value.parse().ok())
}

/// Whether the server closes the connection after the answer that begins
/// with `status_line` and has `headers` (names in lower case), whatever
/// its body.
fn closes(status_line: &str, headers: &[(String, String)]) -> bool {
    let mut closes = status_line.starts_with("HTTP/1.0");
    for (name, value) in headers {
        if name == "connection" {
            closes = if value.eq_ignore_ascii_case("close") {
                true
            } else if value.eq_ignore_ascii_case("keep-alive") {
                false
            } else {
                closes
            };
        }
    }
    closes
}

/// An HTTP/1.1 client that sends its requests one after another on one
/// connection, for the tests of keep-alive through a stop: it opens a new
/// connection only when it has none, at first, after an answer that
/// [`closes`](Answer::closes) it, after an error or a [`close`](Self::close).
/// It reads answers with a `Content-Length` or ended by the connection's
/// close, not chunked ones (the servers under test send neither).
pub struct KeepAliveClient {
    addr: SocketAddr,
    timeout: Duration,
    connection: Option<BufReader<TcpStream>>,
    /// Whether the last request went on a connection that had carried one
    /// before.
    pub reused: bool,
}

impl KeepAliveClient {
    /// A client of `addr` whose connects, writes and reads each time out
    /// after `timeout`.
    pub fn new(addr: SocketAddr, timeout: Duration) -> KeepAliveClient {
        KeepAliveClient {
            addr,
            timeout,
            connection: None,
            reused: false,
        }
    }

    /// Sends `request`, a whole HTTP/1.1 request, and reads its answer.
    /// The error of a failed exchange says whether the connection was new
    /// or reused (`… (on a reused connection)`), and keeps its kind: a
    /// connection closed before the whole answer is an unexpected end of
    /// file, which a load counts as a reset.
    pub fn send(&mut self, request: &[u8]) -> io::Result<Answer> {
        self.reused = self.connection.is_some();
        let result = self.exchange(request);
        if !matches!(&result, Ok(answer) if !answer.closes) {
            self.connection = None;
        }
        result.map_err(|error| {
            let on = if self.reused { "a reused" } else { "a new" };
            io::Error::new(error.kind(), format!("{error} (on {on} connection)"))
        })
    }

    /// Closes the connection: the next request opens a new one.
    pub fn close(&mut self) {
        self.connection = None;
    }

    fn exchange(&mut self, request: &[u8]) -> io::Result<Answer> {
        let connection = match &mut self.connection {
            Some(connection) => connection,
            None => {
                let stream = TcpStream::connect_timeout(&self.addr, self.timeout)?;
                stream.set_nodelay(true)?;
                stream.set_read_timeout(Some(self.timeout))?;
                stream.set_write_timeout(Some(self.timeout))?;
                self.connection.insert(BufReader::new(stream))
            }
        };
        connection.get_mut().write_all(request)?;
        read_answer(connection)
    }
}

/// Reads one answer off a connection that may carry more.
fn read_answer(connection: &mut BufReader<TcpStream>) -> io::Result<Answer> {
    use std::io::BufRead;
    let mut next_line = |what: &str| -> io::Result<String> {
        let mut line = String::new();
        if connection.read_line(&mut line)? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("the connection closed {what}"),
            ));
        }
        Ok(line.trim_end().to_owned())
    };
    let malformed = |what: String| io::Error::new(io::ErrorKind::InvalidData, what);
    let status_line = next_line("before an answer")?;
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|status| status.parse().ok())
        .ok_or_else(|| malformed(format!("a malformed status line {status_line:?}")))?;
    let mut headers = Vec::new();
    loop {
        let line = next_line("in the answer's head")?;
        if line.is_empty() {
            break;
        }
        let (name, value) =
            header(&line).ok_or_else(|| malformed(format!("a malformed header {line:?}")))?;
        if name == "transfer-encoding" {
            return Err(malformed(format!(
                "a {value} answer: the servers under test send a Content-Length"
            )));
        }
        headers.push((name, value));
    }
    let mut body = Vec::new();
    let length = content_length(&headers);
    match length {
        Some(length) => {
            body.resize(length, 0);
            connection.read_exact(&mut body)?;
        }
        // Delimited by the end of the connection.
        None => {
            connection.read_to_end(&mut body)?;
        }
    }
    Ok(Answer {
        status,
        closes: length.is_none() || closes(&status_line, &headers),
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// A plain GET of `url` (`http://HOST:PORT/PATH`) on a new connection, for
/// the application rather than the probes: (status, body).
pub fn http_get(url: &str) -> io::Result<(u16, String)> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, format!("not http: {url}")))?;
    let (authority, path) = match rest.find('/') {
        Some(slash) => rest.split_at(slash),
        None => (rest, "/"),
    };
    let addr = authority
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, format!("no address: {url}")))?;
    let answer = try_request(addr, "GET", path, &[])?;
    Ok((answer.status, answer.body))
}

/// A server-sent event stream read as it comes off a raw HTTP/1.1
/// connection, chunk by chunk, as an EventSource reads it: the client for
/// SSE through a stop, which tells a stream that ended (the body's final
/// chunk, `0\r\n\r\n`) from one that was cut (the connection closed or
/// reset before it).
pub struct EventStream {
    connection: BufReader<TcpStream>,
    /// Body text received and not yet taken as whole events.
    pending: String,
    ended: bool,
}

impl EventStream {
    /// Sends `GET path` with `Accept: text/event-stream` on a new
    /// connection to `addr` and reads the answer's head: an error unless it
    /// is a 200 with a chunked `text/event-stream` body. The connection's
    /// connect, reads and writes each time out after `timeout`.
    pub fn open(addr: SocketAddr, path: &str, timeout: Duration) -> io::Result<EventStream> {
        use std::io::BufRead;
        let stream = TcpStream::connect_timeout(&addr, timeout)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        let mut connection = BufReader::new(stream);
        connection.get_mut().write_all(
            format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n")
                .as_bytes(),
        )?;
        let mut head = Vec::new();
        loop {
            let mut line = String::new();
            if connection.read_line(&mut line)? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("the connection closed in the answer's head: {head:?}"),
                ));
            }
            let line = line.trim_end().to_owned();
            if line.is_empty() {
                break;
            }
            head.push(line);
        }
        let headers: Vec<(String, String)> =
            head.iter().skip(1).filter_map(|l| header(l)).collect();
        let value = |name: &str| {
            headers
                .iter()
                .find(|(key, _)| key == name)
                .map_or("", |(_, value)| value.as_str())
        };
        let status_line = head.first().map_or("", String::as_str);
        if status_line.split_whitespace().nth(1) != Some("200")
            || !value("content-type").starts_with("text/event-stream")
            || !value("transfer-encoding").eq_ignore_ascii_case("chunked")
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("not a chunked event stream: {head:?}"),
            ));
        }
        Ok(EventStream {
            connection,
            pending: String::new(),
            ended: false,
        })
    }

    /// The next event's data (its `data:` lines joined by newlines;
    /// comments, such as keep-alives, skipped), or `None` once the body
    /// has ended with its final chunk. A connection that closes before the
    /// final chunk is an `UnexpectedEof` error; a reset or a time-out is
    /// the read's own error.
    pub fn next_data(&mut self) -> io::Result<Option<String>> {
        loop {
            if let Some(end) = self.pending.find("\n\n") {
                let event: String = self.pending.drain(..end + 2).collect();
                let data: Vec<&str> = event
                    .lines()
                    .filter_map(|line| line.strip_prefix("data:"))
                    .map(|data| data.strip_prefix(' ').unwrap_or(data))
                    .collect();
                if !data.is_empty() {
                    return Ok(Some(data.join("\n")));
                }
                continue;
            }
            if self.ended {
                return Ok(None);
            }
            self.read_chunk()?;
        }
    }

    /// Reads one chunk of the body into `pending`, or the final chunk and
    /// the trailers after it.
    fn read_chunk(&mut self) -> io::Result<()> {
        use std::io::BufRead;
        let mut line = String::new();
        let cut = || {
            io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the connection closed before the body's final chunk",
            )
        };
        if self.connection.read_line(&mut line)? == 0 {
            return Err(cut());
        }
        let size = line.trim_end().split(';').next().unwrap_or("");
        let size = usize::from_str_radix(size, 16).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("not a chunk size: {line:?}"),
            )
        })?;
        if size == 0 {
            // Trailers, if any, up to the empty line that ends the body.
            loop {
                line.clear();
                if self.connection.read_line(&mut line)? == 0 {
                    return Err(cut());
                }
                if line.trim_end().is_empty() {
                    self.ended = true;
                    return Ok(());
                }
            }
        }
        let mut chunk = vec![0; size + 2];
        self.connection.read_exact(&mut chunk).map_err(|error| {
            if error.kind() == io::ErrorKind::UnexpectedEof {
                cut()
            } else {
                error
            }
        })?;
        if !chunk.ends_with(b"\r\n") {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "a chunk not followed by CRLF",
            ));
        }
        chunk.truncate(size);
        self.pending
            .push_str(&String::from_utf8_lossy(&chunk).replace("\r\n", "\n"));
        Ok(())
    }
}

/// Writes `request` to a new connection and reads until the server closes
/// it or `wait` passes: what a misbehaving client would see.
pub fn raw_exchange(addr: SocketAddr, request: &[u8], wait: Duration) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(wait)).unwrap();
    // The server may answer and close before it has read everything.
    let _ = stream.write_all(request);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

/// The first line of an HTTP answer, e.g. `HTTP/1.1 200 OK`.
pub fn status_line(answer: &str) -> &str {
    answer.lines().next().unwrap_or("")
}

/// How many connections the kernel has completed for the IPv4 listener on
/// `addr` that its process has not accepted yet (its accept queue), from
/// /proc/net/tcp; 0 once the listener is gone. A connection flood waits
/// there, up to the listen backlog, while the server takes it in.
pub fn accept_queue(addr: SocketAddr) -> usize {
    use std::io::BufRead;
    let SocketAddr::V4(addr) = addr else {
        panic!("accept_queue reads IPv4 listeners only: {addr}")
    };
    // The address as the kernel prints it: the IP's bytes in memory order
    // as one hex number, then the port.
    let local = format!(
        "{:08X}:{:04X}",
        u32::from_ne_bytes(addr.ip().octets()),
        addr.port()
    );
    let Ok(table) = std::fs::File::open("/proc/net/tcp") else {
        return 0;
    };
    // Listeners (state 0A) come first; the rest, thousands of TIME_WAIT
    // entries after a flood, is never read. A listener's rx_queue is the
    // length of its accept queue.
    for line in io::BufReader::new(table)
        .lines()
        .skip(1)
        .map_while(Result::ok)
    {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.get(3) != Some(&"0A") {
            break;
        }
        if fields[1] == local {
            let queued = fields[4].split_once(':').map_or("0", |(_, rx)| rx);
            return usize::from_str_radix(queued, 16).unwrap_or(0);
        }
    }
    0
}

/// Waits until the listener on `addr` has accepted every connection the
/// kernel completed for it, or panics at the deadline: a test that floods
/// a server and then measures its probes starts its clock there, not
/// behind a queue of its own making.
pub fn wait_accepted(addr: SocketAddr, deadline: Duration) {
    let until = Instant::now() + deadline;
    loop {
        let queued = accept_queue(addr);
        if queued == 0 {
            return;
        }
        assert!(
            Instant::now() < until,
            "{queued} connections to {addr} still not accepted after {deadline:?}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// What this project's tests add to the kit's [`Service`].
pub trait ServiceExt {
    /// Probes `path` as the kubelet does ([`Service::probe_path`] with its
    /// default 1 s timeout), for a per-check path or a query.
    fn get(&self, path: &str) -> ProbeAnswer;

    /// Probes `path` (allowing [`CLIENT_TIMEOUT`] per probe, for checks
    /// slower than the kubelet's default timeout) until it answers exactly
    /// `status`, or panics at the deadline.
    fn wait_for_status(&self, path: &str, status: u16, deadline: Duration) -> ProbeAnswer;

    /// A request that is not a kubelet probe, to the probe server: another
    /// method, other headers, the answer's headers.
    fn request(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> Answer;

    /// Waits for a stdout line equal to `expected`, at index `from` or
    /// later, or panics at the deadline.
    fn wait_for_stdout_from(&self, from: usize, expected: &str, deadline: Duration);

    /// Waits for a stdout line equal to `expected`, or panics.
    fn wait_for_stdout(&self, expected: &str, deadline: Duration) {
        self.wait_for_stdout_from(0, expected, deadline);
    }

    /// Sends a control command without waiting for its ack: for commands
    /// that end the process, which may exit before it acknowledges.
    fn send(&mut self, command: &str);

    /// Sends a control command and waits until the testbed applied it
    /// (its `ack COMMAND` line).
    fn command(&mut self, command: &str);

    /// The application's address, from its `app listening on` line.
    fn app_url(&self) -> String;

    /// The process's resident set size in KiB, from /proc.
    fn rss_kib(&self) -> u64;

    /// How many times the testbed's on-demand `coalesced` check has run,
    /// from its application's `/runs`.
    fn coalesced_runs(&self) -> u64;

    /// Every log line so far, joined with `\n`.
    fn log_text(&self) -> String;
}

impl ServiceExt for Service {
    fn get(&self, path: &str) -> ProbeAnswer {
        self.probe_path(path, DEFAULT_TIMEOUT)
    }

    fn wait_for_status(&self, path: &str, status: u16, deadline: Duration) -> ProbeAnswer {
        let until = Instant::now() + deadline;
        loop {
            let answer = self.probe_path(path, CLIENT_TIMEOUT);
            if answer.status == Some(status) {
                return answer;
            }
            if Instant::now() > until {
                panic!(
                    "{path} not {status} after {deadline:?}: {answer}\nlog:\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn request(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> Answer {
        request(self.probe_addr(), method, path, headers)
    }

    fn wait_for_stdout_from(&self, from: usize, expected: &str, deadline: Duration) {
        let until = Instant::now() + deadline;
        loop {
            if self.stdout().iter().skip(from).any(|l| l == expected) {
                return;
            }
            if Instant::now() > until {
                panic!(
                    "no stdout line {expected:?} within {deadline:?}; stdout: {:?}\nlog:\n{}",
                    self.stdout(),
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn send(&mut self, command: &str) {
        let stdin = self.stdin();
        writeln!(stdin, "{command}").unwrap();
        stdin.flush().unwrap();
    }

    fn command(&mut self, command: &str) {
        let from = self.stdout().len();
        self.send(command);
        self.wait_for_stdout_from(from, &format!("ack {command}"), ACK_DEADLINE);
    }

    fn app_url(&self) -> String {
        let until = Instant::now() + ACK_DEADLINE;
        loop {
            if let Some(url) = self
                .stdout()
                .iter()
                .find_map(|l| l.strip_prefix("app listening on ").map(str::to_owned))
            {
                return url;
            }
            if Instant::now() > until {
                panic!(
                    "no `app listening on` line; stdout: {:?}\nlog:\n{}",
                    self.stdout(),
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn coalesced_runs(&self) -> u64 {
        let (_, body) = http_get(&format!("{}/runs", self.app_url())).unwrap();
        body.split(' ')
            .next()
            .and_then(|runs| runs.strip_prefix("coalesced="))
            .and_then(|runs| runs.parse().ok())
            .unwrap_or_else(|| panic!("not the testbed's /runs: {body:?}"))
    }

    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .expect("VmRSS in /proc/PID/status")
    }

    fn log_text(&self) -> String {
        self.log().join("\n")
    }
}
