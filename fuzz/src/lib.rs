//! What the fuzz targets share: the checks this binary registers, the
//! probe server's connection handling ([`ProbeHarness`], the runtime's own
//! code behind its `fuzzing` feature) in each lifecycle state, a client
//! that sends a connection's bytes as a real one would (in pieces, slowly,
//! with or without its FIN) and reads everything back, and what every
//! answer must be.
//!
//! Time is tokio's paused clock: a time-out (hyper's header read timeout,
//! a check's) passes as soon as nothing else can run, so a slow client
//! costs nothing, and a connection that would hang is caught by a bound
//! on that clock, exactly.

use std::net::SocketAddr;
use std::sync::LazyLock;
use std::time::Duration;

use lifecycle_runtime::fuzzing::{ProbeHarness, Served, State};
use lifecycle_runtime::{liveness, readiness, startup, Health};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::runtime::Runtime;
use tokio::time::Instant;

// The checks: passing, failing with reasons that try to forge lines or
// run long, hanging past their time-out, in the background; enough of
// them to push a verbose answer past 10 KiB. None panics: libFuzzer's
// panic hook aborts on any panic, contained or not.

#[liveness]
async fn engine() -> bool {
    true
}

#[liveness(critical = false)]
async fn disk() -> Health {
    Health::down("97% full").with_detail("path", "/var\nlib\r\n[+]forged ok")
}

#[readiness(critical = false, timeout_ms = 100)]
async fn database() -> Result<(), String> {
    Err("connection refused to db.internal:5432\r\n[+]database ok\r\nreadyz check passed".into())
}

#[readiness(critical = false)]
async fn cache() -> Health {
    Health::down("é".repeat(400)).with_detail("host", "cache\u{2028}[+]cache ok\u{1b}[0m")
}

#[readiness(critical = false, timeout_ms = 50)]
async fn stuck() {
    std::future::pending::<()>().await
}

#[readiness(critical = false, interval_ms = 1000)]
async fn background() -> Health {
    Health::up().with_detail("runs", "many")
}

#[startup]
async fn migrations() -> Health {
    Health::up().with_detail("version", 42)
}

macro_rules! long_reasons {
    ($($name:ident)*) => {$(
        #[readiness(critical = false)]
        async fn $name() -> Result<(), String> {
            Err(format!("{}: {}", stringify!($name), "x".repeat(600)))
        }
    )*};
}

long_reasons!(r01 r02 r03 r04 r05 r06 r07 r08 r09 r10 r11 r12 r13 r14 r15 r16 r17 r18 r19 r20 r21 r22);

/// The names of the checks an answer may name: the built-in ones and the
/// ones above.
pub const CHECK_NAMES: &[&str] = &[
    "lifecycle",
    "runtime",
    "tasks",
    "engine",
    "disk",
    "database",
    "cache",
    "stuck",
    "background",
    "migrations",
    "r01",
    "r02",
    "r03",
    "r04",
    "r05",
    "r06",
    "r07",
    "r08",
    "r09",
    "r10",
    "r11",
    "r12",
    "r13",
    "r14",
    "r15",
    "r16",
    "r17",
    "r18",
    "r19",
    "r20",
    "r21",
    "r22",
];

/// The probe server's header read timeout (`probe::server`).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(2);

/// How long after the client's last byte the connection may last: the
/// header read timeout, the longest check time-out above, and room; plus
/// [`PER_ANSWER`] for each answer, since pipelined requests are answered
/// one after another, each within its checks' bound.
pub const CLOSE_BOUND: Duration = Duration::from_secs(3);

/// An HTTP/2 client opens with this (prior knowledge, as the kubelet's
/// gRPC probes and gRPC clients do); the server tells the protocols apart
/// by it.
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// How long an HTTP/2 connection may outlast the client's last byte when
/// the client keeps its write side open: the probe server's keep-alive
/// ping comes after 10 s of it (`PING_INTERVAL`), and a client that does
/// not answer it is closed 5 s later (`PING_TIMEOUT`); a `Watch` stream
/// keeps a connection open that long too. Then [`CLOSE_BOUND`]'s room.
pub const H2_CLOSE_BOUND: Duration = Duration::from_secs(10 + 5 + 3);

/// The longest a probe may take (the largest check time-out above, 100 ms,
/// plus the documented 50 ms): what each pipelined answer adds.
pub const PER_ANSWER: Duration = Duration::from_millis(150);

/// The most bytes of an answer's body (10 KiB), and of its head.
const MAX_BODY: usize = 10 * 1024;
const MAX_HEAD: usize = 1024;

/// `LIFECYCLE_FUZZ_SHOW=1`: each exchange on stderr, to see what an
/// input does (`cargo fuzz run TARGET FILE`).
static SHOW: LazyLock<bool> = LazyLock::new(|| std::env::var_os("LIFECYCLE_FUZZ_SHOW").is_some());

/// The runtime everything runs on, its clock paused.
static RUNTIME: LazyLock<Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("a tokio runtime")
});

/// The lifecycle states a connection is served in.
const STATES: [State; 6] = [
    // Running, reasons for loopback only.
    State {
        started: true,
        stopping: false,
        broken: false,
        withdrawn: false,
        max_tasks: None,
        reasons_shown: false,
    },
    // Running, reasons shown to everyone.
    State {
        started: true,
        stopping: false,
        broken: false,
        withdrawn: false,
        max_tasks: None,
        reasons_shown: true,
    },
    // Starting.
    State {
        started: false,
        stopping: false,
        broken: false,
        withdrawn: false,
        max_tasks: None,
        reasons_shown: false,
    },
    // Draining.
    State {
        started: true,
        stopping: true,
        broken: false,
        withdrawn: false,
        max_tasks: None,
        reasons_shown: false,
    },
    // Broken and taken out of rotation.
    State {
        started: true,
        stopping: false,
        broken: true,
        withdrawn: true,
        max_tasks: None,
        reasons_shown: true,
    },
    // More tasks than max_tasks.
    State {
        started: true,
        stopping: false,
        broken: false,
        withdrawn: false,
        max_tasks: Some(0),
        reasons_shown: true,
    },
];

static HARNESSES: LazyLock<Vec<ProbeHarness>> = LazyLock::new(|| {
    let _runtime = RUNTIME.enter();
    STATES
        .iter()
        .map(|state| ProbeHarness::new(*state))
        .collect()
});

/// How the client sends a connection's bytes.
#[derive(Debug, Clone, Copy)]
pub struct Sending {
    /// Which lifecycle state serves it (any number: taken modulo).
    pub state: u8,
    /// From outside loopback (reasons withheld unless shown).
    pub outside_loopback: bool,
    /// The bytes go in pieces of this size (0: all at once).
    pub piece: usize,
    /// The pause after each piece.
    pub pause: Duration,
    /// The client sends its FIN after its last byte (else it keeps its
    /// write side open, as an idle keep-alive client does).
    pub half_close: bool,
    /// The client reads the answers as they come (else it reads nothing
    /// until the server has closed: its answers fill the stream, and the
    /// server must not wait on it for ever).
    pub reads: bool,
}

impl Sending {
    /// A sending chosen by two bytes of the fuzzer's: the state and
    /// peer, then the pieces, pause and FIN.
    pub fn from_bytes(state: u8, how: u8) -> Sending {
        Sending {
            state: state & 0x7f,
            outside_loopback: state & 0x80 != 0,
            piece: match how & 0x3 {
                0 => 0,
                1 => 1,
                2 => 7,
                _ => 64,
            },
            pause: match (how >> 2) & 0x3 {
                0 => Duration::ZERO,
                1 => Duration::from_millis(1),
                2 => Duration::from_millis(300),
                _ => Duration::from_millis(2100),
            },
            half_close: how & 0x10 == 0,
            reads: how & 0x20 == 0,
        }
    }
}

/// What came back on one connection.
#[derive(Debug)]
pub struct Exchange {
    /// Every byte the server sent.
    pub received: Vec<u8>,
    /// How the server's side ended.
    pub served: Served,
    /// Whether the server closed before the client had sent everything.
    pub closed_early: bool,
}

/// Sends `bytes` as one connection as `sending` says, reads everything the
/// server sends until it closes, and checks that it closed in time: at
/// most [`CLOSE_BOUND`] after the client's last byte (on the paused
/// clock). Panics if it did not: a hang.
pub fn exchange(bytes: &[u8], sending: Sending) -> Exchange {
    let harness = &HARNESSES[usize::from(sending.state) % HARNESSES.len()];
    let peer: SocketAddr = if sending.outside_loopback {
        "10.1.2.3:40000".parse().unwrap()
    } else {
        "127.0.0.1:40000".parse().unwrap()
    };
    RUNTIME.block_on(async {
        let (client, server) = tokio::io::duplex(16 * 1024);
        let (mut reading, mut writing) = tokio::io::split(client);
        let write = async {
            let mut closed_early = false;
            let pieces: Vec<&[u8]> = if sending.piece == 0 {
                vec![bytes]
            } else {
                bytes.chunks(sending.piece).collect()
            };
            for piece in pieces {
                if writing.write_all(piece).await.is_err() {
                    closed_early = true;
                    break;
                }
                if !sending.pause.is_zero() {
                    tokio::time::sleep(sending.pause).await;
                }
            }
            if sending.half_close && !closed_early {
                let _ = writing.shutdown().await;
            }
            (Instant::now(), closed_early)
        };
        let served = tokio::sync::Notify::new();
        let read = async {
            if !sending.reads {
                served.notified().await;
            }
            let mut received = Vec::new();
            // The server closing (or resetting) ends it.
            let _ = reading.read_to_end(&mut received).await;
            (Instant::now(), received)
        };
        let serve = async {
            let ended = harness.serve(server, peer).await;
            served.notify_one();
            (Instant::now(), ended)
        };
        let started = Instant::now();
        // Far beyond any legitimate connection: only a hang gets here.
        let sending_time = sending
            .pause
            .saturating_mul(bytes.len().div_ceil(sending.piece.max(1)) as u32 + 1);
        // Pipelined requests each end with an empty line: each may take
        // its checks' bound.
        let requests = bytes.windows(4).filter(|w| *w == b"\r\n\r\n").count() as u32;
        let h2 = bytes.starts_with(PREFACE);
        let close_bound = if h2 { H2_CLOSE_BOUND } else { CLOSE_BOUND };
        let limit = sending_time + close_bound * 4 + PER_ANSWER * requests;
        let ((written_at, closed_early), (read_at, received), (served_at, served)) =
            match tokio::time::timeout(limit, async { tokio::join!(write, read, serve) }).await {
                Ok(done) => done,
                Err(_) => panic!(
                    "the connection still open {limit:?} after it started ({:?} of sending)",
                    sending
                ),
            };
        let closed_at = read_at.max(served_at);
        // Each answer starts with its status line (a body never holds one
        // at a line's start: reasons are escaped onto their own line).
        let answered = received
            .windows(7)
            .filter(|w| *w == b"HTTP/1.")
            .count() as u32;
        let bound = close_bound + PER_ANSWER * answered;
        assert!(
            closed_at <= written_at + bound,
            "the connection lasted {:?} after the client's last byte (bound {bound:?} for {answered} answers), {:?} in all",
            closed_at.saturating_duration_since(written_at),
            closed_at - started,
        );
        assert!(
            !served.busy_after,
            "the connection ended marked busy: the connection table would keep it"
        );
        if *SHOW {
            eprintln!(
                "{sending:?}: sent {} bytes, closed after {:?} ({:?} after the last byte), early {closed_early}, {:?}\n{}",
                bytes.len(),
                closed_at - started,
                closed_at.saturating_duration_since(written_at),
                served,
                String::from_utf8_lossy(&received)
            );
        }
        Exchange {
            received,
            served,
            closed_early,
        }
    })
}

/// One answer read off the connection.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    /// Names in lower case.
    pub headers: Vec<(String, String)>,
    /// Empty for an answer to `HEAD`.
    pub body: Vec<u8>,
    /// Whether the body was left out (an answer to `HEAD`).
    pub headless: bool,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

/// Reads the answers in `received`, in order, checking each as
/// [`check_answer`] does. Panics on anything that is not a sequence of
/// whole HTTP/1.1 answers: a response the server split or cut. With
/// `cut`, the last answer may end early: the server closed a connection
/// whose client read nothing.
pub fn answers(received: &[u8], cut: bool) -> Vec<Answer> {
    let mut answers = Vec::new();
    let mut rest = received;
    while !rest.is_empty() {
        let Some(head_end) = rest.windows(4).position(|w| w == b"\r\n\r\n") else {
            assert!(
                cut,
                "an answer without the end of its head: {:?}",
                show(rest)
            );
            break;
        };
        assert!(head_end <= MAX_HEAD, "a head of {head_end} bytes");
        let head = std::str::from_utf8(&rest[..head_end])
            .unwrap_or_else(|_| panic!("a head that is not UTF-8: {:?}", show(rest)));
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or("");
        let status = status_line
            .strip_prefix("HTTP/1.1 ")
            .or_else(|| status_line.strip_prefix("HTTP/1.0 "))
            .and_then(|s| s.get(..3))
            .and_then(|s| s.parse::<u16>().ok())
            .unwrap_or_else(|| panic!("not a status line: {status_line:?}"));
        let headers: Vec<(String, String)> = lines
            .map(|line| {
                let (name, value) = line
                    .split_once(':')
                    .unwrap_or_else(|| panic!("not a header line: {line:?} in {head:?}"));
                (name.trim().to_ascii_lowercase(), value.trim().to_owned())
            })
            .collect();
        let length: usize = headers
            .iter()
            .find(|(name, _)| name == "content-length")
            .map(|(_, value)| value.parse().expect("a Content-Length"))
            .unwrap_or_else(|| panic!("an answer without a Content-Length: {head:?}"));
        let after = &rest[head_end + 4..];
        // An answer to HEAD announces its length and sends no body; no
        // body of ours starts like a status line.
        let headless = length > 0 && (after.is_empty() || after.starts_with(b"HTTP/1."));
        let body_length = if headless { 0 } else { length };
        if cut && after.len() < body_length {
            break;
        }
        assert!(
            after.len() >= body_length,
            "a body cut short: {} of {length} bytes",
            after.len()
        );
        let answer = Answer {
            status,
            headers,
            body: after[..body_length].to_vec(),
            headless,
        };
        check_answer(&answer);
        answers.push(answer);
        rest = &after[body_length..];
    }
    answers
}

/// The largest frame payload the server may send before the client's
/// SETTINGS allow more; its answers (10 KiB at most) never need more.
const H2_MAX_FRAME: usize = 16 * 1024;

/// Reads the HTTP/2 frames in `received`, what the server sent a client
/// that opened with [`PREFACE`]. Panics on anything that is not a
/// sequence of whole frames of the types a server sends, starting with
/// its SETTINGS: a frame the server split, cut or garbled. With `cut`, the
/// last frame may end early (the server closed a connection whose client
/// read nothing). The frames' types, in order.
pub fn frames(received: &[u8], cut: bool) -> Vec<u8> {
    let mut kinds = Vec::new();
    let mut rest = received;
    while !rest.is_empty() {
        if rest.len() < 9 {
            assert!(cut, "a frame header cut short: {rest:?}");
            break;
        }
        let length = u32::from_be_bytes([0, rest[0], rest[1], rest[2]]) as usize;
        let (kind, stream) = (rest[3], u32::from_be_bytes(rest[5..9].try_into().unwrap()));
        assert!(
            length <= H2_MAX_FRAME,
            "a frame of {length} bytes, over the {H2_MAX_FRAME} a client must take"
        );
        // DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE,
        // PING, GOAWAY, WINDOW_UPDATE, CONTINUATION: none of another type,
        // and no PUSH_PROMISE from a server that pushes nothing.
        assert!(kind <= 0x9 && kind != 0x5, "a frame of type {kind:#x}");
        assert_eq!(stream & 0x8000_0000, 0, "a frame with the reserved bit set");
        if kinds.is_empty() {
            assert_eq!(kind, 0x4, "the server's first frame is not its SETTINGS");
        }
        if rest.len() < 9 + length {
            assert!(
                cut,
                "a frame cut short: {} of {length} bytes",
                rest.len() - 9
            );
            break;
        }
        kinds.push(kind);
        rest = &rest[9 + length..];
    }
    kinds
}

fn show(bytes: &[u8]) -> String {
    String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).into_owned()
}

/// What any answer of the probe server must be, whatever was asked:
/// never a 500, one of the statuses it has reasons to give, a body of at
/// most 10 KiB, valid JSON when it says JSON, and a text body whose every
/// line is one the documentation allows, naming only checks that exist, so
/// that nothing the client or a check said forges a line.
pub fn check_answer(answer: &Answer) {
    let status = answer.status;
    assert_ne!(status, 500, "a 500: {answer:?}");
    // `/metrics` is no probe: its size grows with the checks and the
    // application's own metrics, and its lines are OpenMetrics'.
    if answer
        .header("content-type")
        .is_some_and(|t| t.starts_with("application/openmetrics-text"))
    {
        assert_eq!(status, 200, "{answer:?}");
        if !answer.headless {
            assert!(
                answer.body.ends_with(b"# EOF\n"),
                "metrics without their end: {}",
                show(&answer.body)
            );
        }
        return;
    }
    assert!(
        matches!(status, 200 | 503 | 404 | 405 | 400 | 414 | 431),
        "an unexpected status {status}: {answer:?}"
    );
    assert!(
        answer.body.len() <= MAX_BODY,
        "a body of {} bytes",
        answer.body.len()
    );
    if answer.headless || !matches!(status, 200 | 503) {
        return;
    }
    let body = std::str::from_utf8(&answer.body).expect("a UTF-8 body");
    match answer.header("content-type") {
        Some("application/json") => {
            let document: serde_json::Value =
                serde_json::from_str(body).unwrap_or_else(|e| panic!("invalid JSON ({e}): {body}"));
            let up = if status == 200 { "UP" } else { "DOWN" };
            assert_eq!(document["status"], up, "{body}");
        }
        Some("text/plain; charset=utf-8") => check_text(status, body),
        other => panic!("an answer of type {other:?}"),
    }
}

fn check_text(status: u16, body: &str) {
    if body == "ok" {
        assert_eq!(status, 200, "ok with {status}");
        return;
    }
    let lines: Vec<&str> = body.lines().collect();
    assert!(!lines.is_empty(), "an empty body with {status}");
    for (index, line) in lines.iter().enumerate() {
        assert!(
            !line
                .chars()
                .any(|c| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}')),
            "a control character on a line: {line:?}"
        );
        if let Some(check) = line
            .strip_prefix("[+]")
            .or_else(|| line.strip_prefix("[-]"))
        {
            let name = check.split(' ').next().unwrap_or("");
            assert!(
                CHECK_NAMES.contains(&name),
                "a line for a check that does not exist: {line:?}\n{body}"
            );
            continue;
        }
        if line.starts_with("warn: ") || (line.starts_with("… ") && line.ends_with(" more checks"))
        {
            continue;
        }
        let verdict = ["livez", "readyz", "startupz", "healthz"]
            .iter()
            .find_map(|endpoint| line.strip_prefix(endpoint)?.strip_prefix(" check "));
        match verdict {
            Some(verdict) => {
                assert_eq!(index, lines.len() - 1, "a verdict before the end: {body}");
                let expected = if status == 200 { "passed" } else { "failed" };
                assert_eq!(verdict, expected, "{status} says {line:?}");
            }
            None => panic!("a line the documentation has no place for: {line:?}\n{body}"),
        }
    }
    if status == 200 {
        // A passing answer is `ok` or a verbose one, verdict last.
        assert!(
            lines.last().unwrap().ends_with(" check passed"),
            "a 200 without its verdict: {body}"
        );
    }
}
