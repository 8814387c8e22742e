//! A corpus of malformed requests over raw TCP, against the testbed's probe
//! server: bad request lines, absolute-form and asterisk targets, an HTTP/2
//! prior-knowledge preface, a TLS ClientHello, pipelining, oversized and
//! endless headers, slow senders, half-close, request smuggling shapes,
//! NUL bytes, very long URIs, many half-open connections.
//!
//! For each: never a 500, the server answers what the case allows (in
//! order, for pipelined requests) or closes the connection, within a bound
//! after the client's last byte; and a kubelet probe (the kit's, `kube-probe`
//! user agent, 1 s time-out) answers 200 within 1 s right after it, and
//! during it for the cases that hold a connection open. The follow-up
//! probes' latencies are reported on stderr:
//!
//!   reliability: malformed: cases=N probes=N p99_ms=X max_ms=Y

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use lifecycle_testing::{Endpoint, Service};
use lifecycle_tests::fixture;

const TESTBED: &str = env!("CARGO_BIN_EXE_testbed");

/// The kubelet's default probe time-out: every follow-up probe answers
/// within it.
const PROBE_DEADLINE: Duration = Duration::from_secs(1);

/// The probe server's header read timeout: a connection that has not sent
/// a whole request head by then is closed.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(2);

/// How long after a client's last byte (or, for a head that never ends,
/// after it connected) the server may take to close: the header read
/// timeout, and room for a loaded machine.
const CLOSE_BOUND: Duration = Duration::from_secs(HEADER_READ_TIMEOUT.as_secs() + 2);

/// How long a client waits for the server to close before calling it a
/// hang: past [`CLOSE_BOUND`], so that a slow close is measured and
/// reported rather than cut short.
const GIVE_UP: Duration = Duration::from_secs(8);

/// How the client sends a case's bytes.
#[derive(Debug, Clone, Copy)]
enum Sending {
    /// In one write, then waits, its write side open.
    AtOnce,
    /// In one write, then its FIN (`shutdown(SHUT_WR)`).
    ThenFin,
    /// `piece` bytes every `every`: a slow sender.
    Dribble { piece: usize, every: Duration },
}

/// What the answers of a case may be: their statuses, in order.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// Exactly these answers, each status one of its set.
    Answers(&'static [&'static [u16]]),
    /// No answer (the connection closed), or one whose status is in the set.
    Refused(&'static [u16]),
    /// No answer at all: the connection closed.
    Closed,
}

impl Expect {
    fn allows(self, statuses: &[u16]) -> bool {
        match self {
            Expect::Answers(sets) => {
                statuses.len() == sets.len()
                    && statuses.iter().zip(sets).all(|(s, set)| set.contains(s))
            }
            Expect::Refused(set) => match statuses {
                [] => true,
                [status] => set.contains(status),
                _ => false,
            },
            Expect::Closed => statuses.is_empty(),
        }
    }
}

struct Case {
    name: String,
    bytes: Vec<u8>,
    sending: Sending,
    expect: Expect,
}

fn case(name: &str, bytes: impl Into<Vec<u8>>, sending: Sending, expect: Expect) -> Case {
    Case {
        name: name.to_owned(),
        bytes: bytes.into(),
        sending,
        expect,
    }
}

/// A probe's request, as the kubelet sends it, with `extra` header lines.
fn get(path: &str, extra: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: probe\r\nUser-Agent: kube-probe/1.33\r\nAccept: */*\r\n{extra}\r\n")
}

const OK: &[u16] = &[200];
const PROBE: &[u16] = &[200, 503];
const BAD: &[u16] = &[400];
const TOO_LARGE: &[u16] = &[431, 414, 400];
const NOT_FOUND: &[u16] = &[404];
const NOT_ALLOWED: &[u16] = &[405];

/// A TLS 1.2/1.3 ClientHello for `probe`, as a client that mistook the
/// port for HTTPS sends it.
fn tls_client_hello() -> Vec<u8> {
    let mut hello = Vec::new();
    hello.extend_from_slice(&[0x03, 0x03]); // client version
    hello.extend_from_slice(&[0x5a; 32]); // random
    hello.push(32); // session id
    hello.extend_from_slice(&[0xa5; 32]);
    let suites: &[u8] = &[0x13, 0x01, 0x13, 0x02, 0xc0, 0x2b, 0xc0, 0x2f, 0x00, 0xff];
    hello.extend_from_slice(&(suites.len() as u16).to_be_bytes());
    hello.extend_from_slice(suites);
    hello.extend_from_slice(&[1, 0]); // compression: null
    let name = b"probe";
    let mut sni = Vec::new();
    sni.extend_from_slice(&((name.len() + 3) as u16).to_be_bytes());
    sni.push(0);
    sni.extend_from_slice(&(name.len() as u16).to_be_bytes());
    sni.extend_from_slice(name);
    let mut extensions = vec![0x00, 0x00];
    extensions.extend_from_slice(&(sni.len() as u16).to_be_bytes());
    extensions.extend_from_slice(&sni);
    hello.extend_from_slice(&(extensions.len() as u16).to_be_bytes());
    hello.extend_from_slice(&extensions);
    let mut handshake = vec![0x01, 0];
    handshake.extend_from_slice(&(hello.len() as u16).to_be_bytes());
    handshake.extend_from_slice(&hello);
    let mut record = vec![0x16, 0x03, 0x01];
    record.extend_from_slice(&(handshake.len() as u16).to_be_bytes());
    record.extend_from_slice(&handshake);
    record
}

/// The cases that send their bytes and read what comes back.
fn cases() -> Vec<Case> {
    use Expect::*;
    use Sending::*;
    let slow = Dribble {
        piece: 1,
        every: Duration::from_millis(100),
    };
    vec![
        // The reference: what every malformed case is measured against.
        case("a kubelet probe", get("/livez", "Connection: close\r\n"), AtOnce, Answers(&[OK])),
        // Bad request lines.
        case("no target, no version", "GET\r\n\r\n", AtOnce, Refused(BAD)),
        case("HTTP/0.9", "GET /livez\r\n\r\n", AtOnce, Refused(BAD)),
        case("HTTP/9.9", "GET /livez HTTP/9.9\r\n\r\n", AtOnce, Refused(BAD)),
        case("no method", "/livez HTTP/1.1\r\nHost: p\r\n\r\n", AtOnce, Refused(BAD)),
        case("a space in the target", "GET /li vez HTTP/1.1\r\nHost: p\r\n\r\n", AtOnce, Refused(BAD)),
        case("a method that is not a token", "G(T /livez HTTP/1.1\r\nHost: p\r\n\r\n", AtOnce, Refused(BAD)),
        // Methods are case-sensitive: `get` is another method.
        case("lower-case get", "get /livez HTTP/1.1\r\nHost: p\r\nConnection: close\r\n\r\n", AtOnce, Answers(&[NOT_ALLOWED])),
        case("garbage", b"\x00\x01\x02\x03 not http at all\r\n\r\n".to_vec(), AtOnce, Refused(BAD)),
        case("a bare LF head", "GET /livez HTTP/1.1\nHost: p\nConnection: close\n\n", AtOnce, Answers(&[OK])),
        // Targets in absolute, asterisk and authority form.
        case("absolute form", "GET http://probe:8081/livez HTTP/1.1\r\nHost: probe\r\nConnection: close\r\n\r\n", AtOnce, Answers(&[OK])),
        case("absolute form, another host", "GET http://elsewhere.invalid/readyz?verbose HTTP/1.1\r\nHost: probe\r\nConnection: close\r\n\r\n", AtOnce, Answers(&[PROBE])),
        case("asterisk form", "OPTIONS * HTTP/1.1\r\nHost: probe\r\nConnection: close\r\n\r\n", AtOnce, Answers(&[NOT_ALLOWED])),
        case("asterisk form with GET", "GET * HTTP/1.1\r\nHost: probe\r\nConnection: close\r\n\r\n", AtOnce, Answers(&[NOT_FOUND])),
        case("authority form", "CONNECT probe:8081 HTTP/1.1\r\nHost: probe:8081\r\n\r\n", ThenFin, Answers(&[NOT_ALLOWED])),
        // Other protocols on the probe port.
        // HTTP/2 with prior knowledge is the gRPC side of the probe port
        // (the `grpc` feature, on in this crate): tests/grpc.rs and
        // grpc_hostile.rs; without the feature it is refused (the server's
        // unit tests).
        case("h2c upgrade", get("/livez", "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n"), ThenFin, Answers(&[OK])),
        case("TLS ClientHello", tls_client_hello(), AtOnce, Refused(BAD)),
        // Pipelining: every answer, in order.
        case(
            "pipelined",
            [
                get("/livez", ""),
                get("/nope", ""),
                "HEAD /startupz HTTP/1.1\r\nHost: probe\r\n\r\n".to_owned(),
                "POST /readyz HTTP/1.1\r\nHost: probe\r\nContent-Length: 0\r\n\r\n".to_owned(),
                get("/readyz?verbose", ""),
                get("/healthz", "Connection: close\r\n"),
            ]
            .concat(),
            AtOnce,
            Answers(&[OK, NOT_FOUND, OK, NOT_ALLOWED, PROBE, PROBE]),
        ),
        case("pipelined, then FIN", [get("/livez", ""), get("/startupz", "")].concat(), ThenFin, Answers(&[OK, OK])),
        case("pipelined after a bad one", [get("/livez", ""), "BAD\r\n\r\n".to_owned(), get("/livez", "")].concat(), AtOnce, Answers(&[OK, BAD])),
        // Half-close: the FIN after the request, and a FIN alone.
        case("half-close after a request", get("/readyz", ""), ThenFin, Answers(&[PROBE])),
        case("half-close, HTTP/1.0", "GET /livez HTTP/1.0\r\n\r\n", ThenFin, Answers(&[OK])),
        case("FIN without a request", "", ThenFin, Closed),
        case("FIN inside the head", "GET /livez HTTP/1.1\r\nHost: pr", ThenFin, Refused(BAD)),
        // An idle keep-alive connection: closed by the header read timeout.
        case("idle keep-alive", get("/livez", ""), AtOnce, Answers(&[OK])),
        case("connected, nothing sent", "", AtOnce, Closed),
        // Oversized heads.
        case("a 64 KiB header", get("/livez", &format!("X-Huge: {}\r\n", "x".repeat(64 * 1024))), AtOnce, Refused(TOO_LARGE)),
        case("200 headers", get("/livez", &(0..200).map(|i| format!("X-Header-{i}: v\r\n")).collect::<String>()), AtOnce, Refused(TOO_LARGE)),
        case("a 20 KiB URI", get(&format!("/livez?{}", "x=y&".repeat(5 * 1024)), ""), AtOnce, Refused(TOO_LARGE)),
        case("a 20 KiB path", get(&format!("/{}", "a".repeat(20 * 1024)), ""), AtOnce, Refused(TOO_LARGE)),
        case("a 12 KiB query, under the cap", get(&format!("/livez?{}", "exclude=y&".repeat(1200)), "Connection: close\r\n"), AtOnce, Answers(&[OK])),
        case("a 12 KiB path, under the cap", get(&format!("/livez/{}", "a".repeat(12 * 1024)), "Connection: close\r\n"), AtOnce, Answers(&[NOT_FOUND])),
        // Slow senders: the header read timeout closes them.
        case("a byte every 100 ms", get("/livez", ""), slow, Closed),
        case("a line every 300 ms", get("/livez", &"X-Slow: v\r\n".repeat(20)), Dribble { piece: 11, every: Duration::from_millis(300) }, Closed),
        case("a whole request, slowly but in time", get("/livez", "Connection: close\r\n"), Dribble { piece: 40, every: Duration::from_millis(100) }, Answers(&[OK])),
        // Request smuggling shapes.
        case("Content-Length twice, differing", "GET /livez HTTP/1.1\r\nHost: p\r\nContent-Length: 0\r\nContent-Length: 5\r\n\r\nhello", AtOnce, Refused(BAD)),
        case("Content-Length not a number", "GET /livez HTTP/1.1\r\nHost: p\r\nContent-Length: 5x\r\n\r\nhello", AtOnce, Refused(BAD)),
        case("Content-Length negative", "GET /livez HTTP/1.1\r\nHost: p\r\nContent-Length: -1\r\n\r\n", AtOnce, Refused(BAD)),
        case(
            "Content-Length and Transfer-Encoding (CL.TE)",
            "POST /livez HTTP/1.1\r\nHost: p\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /readyz HTTP/1.1\r\nHost: p\r\n\r\n",
            ThenFin,
            Refused(&[405, 400]),
        ),
        case(
            "Transfer-Encoding and Content-Length (TE.CL)",
            "GET /livez HTTP/1.1\r\nHost: p\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n1\r\nG\r\n0\r\n\r\n",
            ThenFin,
            Refused(&[200, 400]),
        ),
        case("Transfer-Encoding not ending in chunked", "GET /livez HTTP/1.1\r\nHost: p\r\nTransfer-Encoding: chunked, identity\r\n\r\n", AtOnce, Refused(BAD)),
        case("Transfer-Encoding obfuscated", "GET /livez HTTP/1.1\r\nHost: p\r\nTransfer-Encoding: xchunked\r\n\r\n", AtOnce, Refused(BAD)),
        case("a space before the colon", "GET /livez HTTP/1.1\r\nHost: p\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n", AtOnce, Refused(BAD)),
        case("an obsolete folded header", "GET /livez HTTP/1.1\r\nHost: p\r\nX-A: a\r\n b\r\nConnection: close\r\n\r\n", AtOnce, Refused(&[200, 400])),
        case("a bad chunk size", "GET /livez HTTP/1.1\r\nHost: p\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n", ThenFin, Refused(&[200, 400])),
        case("a body announced, never sent", "GET /livez HTTP/1.1\r\nHost: p\r\nContent-Length: 100000000\r\n\r\n0123456789", AtOnce, Answers(&[OK])),
        // NUL bytes.
        case("NUL in the method", b"G\x00T /livez HTTP/1.1\r\nHost: p\r\n\r\n".to_vec(), AtOnce, Refused(BAD)),
        case("NUL in the target", b"GET /li\x00vez HTTP/1.1\r\nHost: p\r\n\r\n".to_vec(), AtOnce, Refused(BAD)),
        case("NUL in a header value", b"GET /livez HTTP/1.1\r\nHost: p\r\nX-A: a\x00b\r\n\r\n".to_vec(), AtOnce, Refused(BAD)),
        case("NUL in a header name", b"GET /livez HTTP/1.1\r\nHost: p\r\nX\x00A: b\r\n\r\n".to_vec(), AtOnce, Refused(BAD)),
        // Odd but well-formed.
        case("a percent-encoded query of control characters", get("/readyz?verbose&exclude=%0d%0a%5B%2B%5Dforged%20ok%00", "Connection: close\r\n"), AtOnce, Answers(&[PROBE])),
        case("Expect: 100-continue", get("/livez", "Expect: 100-continue\r\nContent-Length: 4\r\nConnection: close\r\n"), AtOnce, Answers(&[OK])),
    ]
}

/// How a connection ended, from the client's side.
struct Received {
    bytes: Vec<u8>,
    /// When the server closed (a FIN or a reset), if it did.
    closed_at: Option<Instant>,
}

/// Reads until the server closes or `until`.
fn read_until_closed(stream: &mut TcpStream, until: Instant) -> Received {
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Received {
                bytes,
                closed_at: None,
            };
        }
        stream.set_read_timeout(Some(left)).unwrap();
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => bytes.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            // A reset: the server closed with our bytes unread.
            Err(_) => break,
        }
    }
    Received {
        bytes,
        closed_at: Some(Instant::now()),
    }
}

/// The statuses of the answers in `bytes`, in order, or what is wrong
/// with them. An answer to `HEAD` announces a length and has no body.
fn statuses(mut bytes: &[u8]) -> Result<Vec<u16>, String> {
    let mut statuses = Vec::new();
    while !bytes.is_empty() {
        let head_end = bytes
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .ok_or_else(|| format!("an answer cut short: {:?}", String::from_utf8_lossy(bytes)))?;
        let head = String::from_utf8_lossy(&bytes[..head_end]);
        let status = head
            .strip_prefix("HTTP/1.1 ")
            .or_else(|| head.strip_prefix("HTTP/1.0 "))
            .and_then(|rest| rest.get(..3)?.parse::<u16>().ok())
            .ok_or_else(|| format!("not an HTTP answer: {head:?}"))?;
        let length = head
            .lines()
            .find_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse::<usize>().ok())?
            })
            .ok_or_else(|| format!("no Content-Length: {head:?}"))?;
        let rest = &bytes[head_end + 4..];
        let headless = rest.is_empty() || rest.starts_with(b"HTTP/1.");
        let body = if headless { 0 } else { length };
        if rest.len() < body {
            return Err(format!("a body cut short: {head:?}"));
        }
        statuses.push(status);
        bytes = &rest[body..];
    }
    Ok(statuses)
}

/// Sends `case` on a new connection, telling `started` once its first
/// bytes are out, and checks what comes back.
fn run(addr: SocketAddr, case: &Case, started: mpsc::Sender<()>) -> Result<(), String> {
    let mut stream = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
    stream.set_nodelay(true).unwrap();
    let connected = Instant::now();
    // The instant the bound counts from: the last byte sent, or for a head
    // that never ends, the connection's start (the header read timeout
    // counts from there).
    let from = match case.sending {
        Sending::AtOnce | Sending::ThenFin => {
            // The server may close before it has read everything.
            let _ = stream.write_all(&case.bytes);
            if matches!(case.sending, Sending::ThenFin) {
                let _ = stream.shutdown(Shutdown::Write);
            }
            let _ = started.send(());
            Instant::now()
        }
        Sending::Dribble { piece, every } => {
            let mut writer = stream.try_clone().unwrap();
            let pieces: Vec<Vec<u8>> = case.bytes.chunks(piece).map(<[u8]>::to_vec).collect();
            let sent_all = thread::spawn(move || {
                for (i, piece) in pieces.iter().enumerate() {
                    if writer.write_all(piece).is_err() {
                        return None;
                    }
                    if i == 0 {
                        let _ = started.send(());
                    }
                    // The slowness under test, not a wait for something.
                    thread::sleep(every);
                }
                Some(Instant::now())
            });
            let received = read_until_closed(&mut stream, connected + GIVE_UP);
            let sent_all = sent_all.join().unwrap();
            return check(case, received, sent_all.unwrap_or(connected));
        }
    };
    let received = read_until_closed(&mut stream, from + GIVE_UP);
    check(case, received, from)
}

fn check(case: &Case, received: Received, from: Instant) -> Result<(), String> {
    let text = String::from_utf8_lossy(&received.bytes);
    let statuses = statuses(&received.bytes).map_err(|e| format!("{e}\nreceived: {text:?}"))?;
    if statuses.contains(&500) {
        return Err(format!("a 500: {text:?}"));
    }
    if !case.expect.allows(&statuses) {
        return Err(format!(
            "answered {statuses:?}, expected {:?}; received: {:.400}",
            case.expect,
            text.escape_debug()
        ));
    }
    match received.closed_at {
        None => Err(format!(
            "still open {GIVE_UP:?} after the client's last byte (answers {statuses:?})"
        )),
        Some(closed_at) if closed_at.saturating_duration_since(from) > CLOSE_BOUND => Err(format!(
            "closed {:?} after the client's last byte, more than {CLOSE_BOUND:?}",
            closed_at.saturating_duration_since(from)
        )),
        Some(_) => Ok(()),
    }
}

/// The kubelet's probes sent around the cases, and what went wrong.
#[derive(Default)]
struct Record {
    cases: usize,
    latencies: Vec<Duration>,
    failures: Vec<String>,
}

impl Record {
    /// A kubelet probe of `/livez`: 200 within [`PROBE_DEADLINE`].
    fn probe(&mut self, service: &Service, case: &str, when: &str) {
        let answer = service.probe(Endpoint::Livez);
        self.latencies.push(answer.elapsed);
        if answer.status != Some(200) || answer.elapsed > PROBE_DEADLINE {
            self.failures
                .push(format!("{case}: the kubelet's probe {when}: {answer}"));
        }
    }

    fn fail(&mut self, case: &str, failure: String) {
        self.failures.push(format!("{case}: {failure}"));
    }

    /// Runs `attack` on a thread of its own (it tells `started` once it is
    /// under way), probes while it runs, then after it.
    fn around<F>(&mut self, service: &Service, case: &str, attack: F)
    where
        F: FnOnce(mpsc::Sender<()>) -> Result<(), String> + Send + 'static,
    {
        self.cases += 1;
        let (started, under_way) = mpsc::channel();
        let attack = thread::spawn(move || attack(started));
        if under_way.recv_timeout(GIVE_UP).is_ok() {
            self.probe(service, case, "during it");
        }
        match attack.join() {
            Ok(Ok(())) => {}
            Ok(Err(failure)) => self.fail(case, failure),
            Err(_) => self.fail(case, "the client panicked".into()),
        }
        self.probe(service, case, "right after it");
    }

    fn report(&self) -> String {
        let mut sorted = self.latencies.clone();
        sorted.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let p99 = sorted
            .get((sorted.len() * 99).div_ceil(100).saturating_sub(1))
            .copied()
            .unwrap_or_default();
        let max = sorted.last().copied().unwrap_or_default();
        format!(
            "reliability: malformed: cases={} probes={} p99_ms={:.1} max_ms={:.1}",
            self.cases,
            sorted.len(),
            ms(p99),
            ms(max)
        )
    }
}

/// Header lines as fast as the server takes them, never ending the head.
fn endless_headers(
    addr: SocketAddr,
    started: mpsc::Sender<()>,
    every: Duration,
) -> Result<(), String> {
    let mut stream = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
    let connected = Instant::now();
    let mut reader = stream.try_clone().unwrap();
    let reading = thread::spawn(move || read_until_closed(&mut reader, connected + GIVE_UP));
    stream
        .write_all(b"GET /livez HTTP/1.1\r\nHost: probe\r\n")
        .map_err(|e| format!("the request line: {e}"))?;
    let _ = started.send(());
    let mut lines = 0u64;
    let sent = loop {
        if stream
            .write_all(format!("X-Endless-{lines}: {}\r\n", "v".repeat(64)).as_bytes())
            .is_err()
        {
            break true;
        }
        lines += 1;
        if connected.elapsed() > GIVE_UP {
            break false;
        }
        if !every.is_zero() {
            // The slowness under test.
            thread::sleep(every);
        }
    };
    let received = reading.join().unwrap();
    let statuses = statuses(&received.bytes)?;
    if !Expect::Refused(TOO_LARGE).allows(&statuses) {
        return Err(format!("{lines} header lines answered {statuses:?}"));
    }
    match received.closed_at {
        Some(at) if at.saturating_duration_since(connected) <= CLOSE_BOUND => Ok(()),
        Some(at) => Err(format!(
            "closed after {:?} and {lines} header lines, more than {CLOSE_BOUND:?}",
            at - connected
        )),
        None if sent => Err(format!(
            "{lines} header lines: writes failed, reads did not end"
        )),
        None => Err(format!(
            "still open after {GIVE_UP:?} and {lines} header lines"
        )),
    }
}

/// More connections than the server keeps (512), each holding half a
/// head: the kubelet's probe still gets in (the oldest idle ones are
/// evicted), and every one of them is closed within the header read
/// timeout.
fn many_half_open(addr: SocketAddr, started: mpsc::Sender<()>, count: usize) -> Result<(), String> {
    let opened = Instant::now();
    let mut streams = Vec::with_capacity(count);
    for i in 0..count {
        let mut stream = TcpStream::connect(addr).map_err(|e| format!("connection {i}: {e}"))?;
        let _ = stream.write_all(b"GET /livez HTTP/1.1\r\nHost: pro");
        streams.push(stream);
    }
    let all_open = Instant::now();
    let _ = started.send(());
    let mut still_open = 0;
    for stream in &mut streams {
        let received = read_until_closed(stream, all_open + CLOSE_BOUND);
        if received.closed_at.is_none() {
            still_open += 1;
        }
        if !received.bytes.is_empty() {
            let statuses = statuses(&received.bytes)?;
            if !Expect::Refused(BAD).allows(&statuses) {
                return Err(format!("a half-open connection answered {statuses:?}"));
            }
        }
    }
    if still_open > 0 {
        return Err(format!(
            "{still_open} of {count} half-open connections still open {CLOSE_BOUND:?} after the last was opened ({:?} to open them)",
            all_open - opened
        ));
    }
    Ok(())
}

/// The server's end of the connection from `client` to `server` in the
/// kernel's table of TCP sockets:
/// its state (`01` is `ESTABLISHED`) and its queue of bytes sent but not
/// yet taken by the client (hexadecimal), or `None` once it is gone. A
/// server that closes with answers still unsent sits in `FIN-WAIT-1`
/// behind them: the client sees nothing of it until it reads.
fn server_end(server: SocketAddr, client: SocketAddr) -> Option<(String, String)> {
    let hex = |addr: SocketAddr| match addr.ip() {
        std::net::IpAddr::V4(ip) => format!(
            "{:08X}:{:04X}",
            u32::from_le_bytes(ip.octets()),
            addr.port()
        ),
        std::net::IpAddr::V6(_) => panic!("the testbed's probe address is IPv4: {addr}"),
    };
    let (server, client) = (hex(server), hex(client));
    let table = std::fs::read_to_string("/proc/net/tcp").expect("/proc/net/tcp");
    // `sl local_address rem_address st tx_queue:rx_queue …`
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.get(1) != Some(&server.as_str()) || fields.get(2) != Some(&client.as_str()) {
            return None;
        }
        let queue = fields.get(4)?.split(':').next()?;
        Some((fields.get(3)?.to_string(), queue.to_owned()))
    })
}

/// Pipelined requests from a client that never reads its answers: once
/// they fill the buffers between the two, the server stops reading (its
/// writes wait), and the header read timeout no longer applies. It must
/// not wait on that client for ever: once its answers have stopped moving
/// (its queue of unsent bytes unchanged), it closes within the bound.
fn never_reads(addr: SocketAddr, started: mpsc::Sender<()>) -> Result<(), String> {
    let mut stream = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
    let client = stream.local_addr().unwrap();
    stream
        .set_write_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let requests = b"GET /readyz?verbose HTTP/1.1\r\nHost: probe\r\n\r\n".repeat(64);
    let mut sent = 0usize;
    let stalled_at = loop {
        match stream.write(&requests[sent % requests.len()..]) {
            Ok(n) => sent += n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                break Instant::now();
            }
            Err(e) => {
                return Err(format!(
                    "closed after {sent} bytes, before they stalled: {e}"
                ))
            }
        }
        if sent == requests.len() {
            let _ = started.send(());
        }
        if sent > 512 * 1024 * 1024 {
            return Err("512 MiB of requests taken without an answer read".into());
        }
    };
    let mut last = None;
    let mut moved_at = stalled_at;
    loop {
        let now = Instant::now();
        match server_end(addr, client) {
            Some((state, queue)) if state == "01" => {
                if last.as_ref() != Some(&queue) {
                    last = Some(queue);
                    moved_at = now;
                }
            }
            // Closed by the server (FIN-WAIT-1 behind its unsent answers,
            // or further), or gone.
            _ => return Ok(()),
        }
        if now - moved_at > CLOSE_BOUND {
            return Err(format!(
                "still open {CLOSE_BOUND:?} after its answers stopped moving ({} bytes unsent; {sent} bytes of requests, stalled {:?} ago, none of the answers read)",
                last.map(|q| u64::from_str_radix(&q, 16).unwrap_or(0)).unwrap_or(0),
                now - stalled_at
            ));
        }
        if now - stalled_at > GIVE_UP * 4 {
            return Err(format!(
                "still open {:?} after {sent} bytes of requests stalled, its answers still moving",
                now - stalled_at
            ));
        }
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn malformed_requests_never_get_a_500_and_the_kubelets_probes_still_answer() {
    let service = fixture(TESTBED).start().unwrap();
    let addr = service.probe_addr();
    let mut record = Record::default();
    record.probe(&service, "start", "before any case");

    for case in cases() {
        let name = case.name.clone();
        record.around(&service, &name, move |started| run(addr, &case, started));
    }
    record.around(&service, "endless headers, at full speed", move |started| {
        endless_headers(addr, started, Duration::ZERO)
    });
    record.around(
        &service,
        "endless headers, a line every 20 ms",
        move |started| endless_headers(addr, started, Duration::from_millis(20)),
    );
    record.around(
        &service,
        "pipelined requests, answers never read",
        move |started| never_reads(addr, started),
    );
    record.around(&service, "600 half-open connections", move |started| {
        many_half_open(addr, started, 600)
    });

    eprintln!("{}", record.report());
    assert!(
        record.failures.is_empty(),
        "{} of {} cases failed:\n{}\nlog:\n{}",
        record.failures.len(),
        record.cases,
        record.failures.join("\n"),
        service.log().join("\n")
    );
}
