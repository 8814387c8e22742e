//! Hostile HTTP/2 clients against the probe port's gRPC side (issue 13:
//! "a flood of streams, a client that never reads, an oversized header
//! block: the probes on both protocols keep answering in time"): raw h2
//! frames written over TCP, which no client library would send, and the
//! `h2` crate for a client that never grants flow-control window.
//!
//! During each, a kubelet-style prober asks every 100 ms, each time on a
//! new connection, `GET /livez` over HTTP/1.1 and `Check("livez")` over
//! HTTP/2, and every answer must pass within the kubelet's 1 s. Each case
//! prints one line `reliability: grpc hostile CASE: …`.
//!
//! Timing-sensitive (probe latencies on a loaded machine), so its own test
//! binary, its tests one at a time.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use lifecycle_testing::probe::{http_probe, DEFAULT_TIMEOUT};
use lifecycle_testing::Service;
use lifecycle_tests::{fixture, raise_open_file_limit, ServiceExt};

const TESTBED: &str = env!("CARGO_BIN_EXE_testbed");
/// For anything waited on: generous, for a loaded 2-core machine.
const DEADLINE: Duration = Duration::from_secs(10);
/// The kubelet's period, shortened: a probe on each protocol every 100 ms.
const PROBE_EVERY: Duration = Duration::from_millis(100);
/// The probe server's `MAX_STREAMS` (probe/server/serve.rs): streams open at once on
/// one HTTP/2 connection.
const MAX_STREAMS: usize = 64;
/// The probe server's header read timeout (`HEADER_READ_TIMEOUT`), which
/// also bounds how long a connection may take to send the h2 preface.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(2);
/// The probe server's `WRITE_STALL_TIMEOUT`: a connection whose answers
/// have not moved for this long is closed.
const WRITE_STALL: Duration = Duration::from_secs(2);
/// How long an HTTP/2 connection whose peer answers nothing lasts at most
/// once its writes no longer stall: the probe server's `PING_INTERVAL`,
/// then its `PING_TIMEOUT` for the answer.
const IDLE_CLOSE: Duration = Duration::from_secs(10 + 5);
/// How long a client that never reads keeps sending calls.
const FILL_FOR: Duration = Duration::from_secs(5);
/// The probe server's cap on open connections (`MAX_CONNECTIONS`).
const MAX_CONNECTIONS: usize = 512;
/// What a close measured by the client adds to the server's bound on a
/// loaded 2-core machine: the probe thread's timer and the client's read
/// each waiting out other processes' time slices.
const CLOSE_MARGIN: Duration = Duration::from_millis(1000);

/// How long each flood goes on, reconnecting as the server closes its
/// connections: long enough for some thirty probes on each protocol.
const FLOOD_FOR: Duration = Duration::from_secs(3);
/// Probes each case must have seen on each protocol, so that the flood
/// was watched throughout: a sixth of what [`FLOOD_FOR`] holds at one
/// round per [`PROBE_EVERY`], as a flood on a loaded 2-core machine
/// stretches the prober's rounds (each up to two probes of 1 s).
const MIN_PROBES: usize = 5;

/// One test at a time: their latencies must not include each other's load.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

// HTTP/2 frames (RFC 9113), written by hand.

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;
const WINDOW_UPDATE: u8 = 0x8;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const ACK: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
/// RST_STREAM's and GOAWAY's error codes.
const CANCEL: u32 = 0x8;
/// The largest frame payload a peer must accept before SETTINGS raise it.
const MAX_FRAME: usize = 16 * 1024;

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let length = payload.len() as u32;
    assert!(length < 1 << 24);
    let mut bytes = Vec::with_capacity(9 + payload.len());
    bytes.extend_from_slice(&length.to_be_bytes()[1..]);
    bytes.push(kind);
    bytes.push(flags);
    bytes.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    bytes.extend_from_slice(payload);
    bytes
}

/// A string literal of HPACK (RFC 7541, 5.2), not Huffman-coded.
fn hpack_string(out: &mut Vec<u8>, value: &[u8]) {
    hpack_integer(out, 0x00, 7, value.len());
    out.extend_from_slice(value);
}

/// An HPACK integer (RFC 7541, 5.1) with `prefix` bits, after `first`'s
/// high bits.
fn hpack_integer(out: &mut Vec<u8>, first: u8, prefix: u32, mut value: usize) {
    let max = (1usize << prefix) - 1;
    if value < max {
        out.push(first | value as u8);
        return;
    }
    out.push(first | max as u8);
    value -= max;
    while value >= 128 {
        out.push((value % 128 + 128) as u8);
        value /= 128;
    }
    out.push(value as u8);
}

/// A header "literal without indexing" with a new name (RFC 7541, 6.2.2).
fn hpack_literal(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.push(0x00);
    hpack_string(out, name.as_bytes());
    hpack_string(out, value);
}

/// The header block of a gRPC call of `method` on the health service,
/// with `extra` headers after the usual ones.
fn call_headers(method: &str, extra: &[(&str, &[u8])]) -> Vec<u8> {
    let mut block = vec![
        0x83, // :method POST (static table 3)
        0x86, // :scheme http (static table 6)
    ];
    // :path, with the static table's name (4), literal without indexing.
    block.push(0x04);
    hpack_string(
        &mut block,
        format!("/grpc.health.v1.Health/{method}").as_bytes(),
    );
    // :authority (static table 1).
    block.push(0x01);
    hpack_string(&mut block, b"probe");
    hpack_literal(&mut block, "content-type", b"application/grpc");
    hpack_literal(&mut block, "te", b"trailers");
    for (name, value) in extra {
        hpack_literal(&mut block, name, value);
    }
    block
}

/// A `HealthCheckRequest { service }` in gRPC's length-prefixed framing.
fn grpc_request(service: &str) -> Vec<u8> {
    let mut message = vec![0x0a];
    hpack_integer(&mut message, 0, 7, service.len()); // a varint below 128
    assert!(service.len() < 127);
    message.extend_from_slice(service.as_bytes());
    let mut framed = vec![0];
    framed.extend_from_slice(&(message.len() as u32).to_be_bytes());
    framed.extend_from_slice(&message);
    framed
}

/// A whole `Check(service)` call on stream `id`: HEADERS, then DATA with
/// END_STREAM.
fn check_call(id: u32, service: &str) -> Vec<u8> {
    let mut bytes = frame(HEADERS, END_HEADERS, id, &call_headers("Check", &[]));
    bytes.extend(frame(DATA, END_STREAM, id, &grpc_request(service)));
    bytes
}

/// The preface, empty SETTINGS, and the connection's receive window opened
/// to its maximum, so that answers are never held back by it.
fn opening() -> Vec<u8> {
    let mut bytes = PREFACE.to_vec();
    bytes.extend(frame(SETTINGS, 0, 0, &[]));
    bytes.extend(frame(
        WINDOW_UPDATE,
        0,
        0,
        &(0x7fff_ffff - 65_535u32).to_be_bytes(),
    ));
    bytes
}

/// What a raw client saw of the server's frames on one connection.
#[derive(Debug, Default, Clone)]
struct Seen {
    /// Streams the server ended: an END_STREAM, or a RST_STREAM.
    ended: usize,
    /// HEADERS frames (answers' heads and trailers).
    headers: usize,
    /// RST_STREAM frames, by error code.
    resets: BTreeMap<u32, usize>,
    /// The GOAWAY's error code, if one came.
    goaway: Option<u32>,
    /// Bytes received.
    bytes: usize,
    /// When the server closed the connection (EOF or reset), since the
    /// reader started.
    closed_after: Option<Duration>,
}

/// Reads the server's frames off `stream` until it closes, noting them in
/// `seen` and answering its SETTINGS and PINGs through `writer`, as any
/// client does.
fn read_frames(
    mut stream: TcpStream,
    writer: Arc<Mutex<TcpStream>>,
    seen: Arc<Mutex<Seen>>,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let started = Instant::now();
        let mut head = [0u8; 9];
        let closed = |seen: &Mutex<Seen>| {
            seen.lock().unwrap().closed_after = Some(started.elapsed());
        };
        loop {
            if stream.read_exact(&mut head).is_err() {
                return closed(&seen);
            }
            let length = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
            let (kind, flags) = (head[3], head[4]);
            let mut payload = vec![0; length];
            if stream.read_exact(&mut payload).is_err() {
                return closed(&seen);
            }
            let mut seen = seen.lock().unwrap();
            seen.bytes += 9 + length;
            match kind {
                HEADERS | DATA if flags & END_STREAM != 0 => {
                    seen.ended += 1;
                    seen.headers += usize::from(kind == HEADERS);
                }
                HEADERS => seen.headers += 1,
                RST_STREAM => {
                    let code = u32::from_be_bytes(payload[..4].try_into().unwrap());
                    *seen.resets.entry(code).or_default() += 1;
                    seen.ended += 1;
                }
                GOAWAY => {
                    seen.goaway = Some(u32::from_be_bytes(payload[4..8].try_into().unwrap()));
                }
                SETTINGS if flags & ACK == 0 => {
                    let _ = writer
                        .lock()
                        .unwrap()
                        .write_all(&frame(SETTINGS, ACK, 0, &[]));
                }
                PING if flags & ACK == 0 => {
                    let _ = writer
                        .lock()
                        .unwrap()
                        .write_all(&frame(PING, ACK, 0, &payload));
                }
                _ => {}
            }
        }
    })
}

/// A raw HTTP/2 connection: its writer, and what its reader saw.
struct RawConnection {
    writer: Arc<Mutex<TcpStream>>,
    seen: Arc<Mutex<Seen>>,
    reader: Option<JoinHandle<()>>,
}

impl RawConnection {
    /// Connects and sends the opening; with `reads`, a thread reads and
    /// answers the server's frames.
    fn open(addr: SocketAddr, reads: bool) -> RawConnection {
        let stream = TcpStream::connect_timeout(&addr, DEADLINE).unwrap();
        stream.set_nodelay(true).unwrap();
        stream.set_write_timeout(Some(DEADLINE)).unwrap();
        let writer = Arc::new(Mutex::new(stream.try_clone().unwrap()));
        let seen = Arc::new(Mutex::new(Seen::default()));
        let reader = reads.then(|| read_frames(stream, writer.clone(), seen.clone()));
        let connection = RawConnection {
            writer,
            seen,
            reader,
        };
        connection
            .send(&opening())
            .expect("the server took the opening");
        connection
    }

    fn send(&self, bytes: &[u8]) -> io::Result<()> {
        self.writer.lock().unwrap().write_all(bytes)
    }

    fn seen(&self) -> Seen {
        self.seen.lock().unwrap().clone()
    }

    /// Waits until the server has ended `streams` streams or closed the
    /// connection, up to `deadline`: what it saw.
    fn wait_ended(&self, streams: usize, deadline: Duration) -> Seen {
        let until = Instant::now() + deadline;
        loop {
            let seen = self.seen();
            if seen.ended >= streams || seen.closed_after.is_some() || Instant::now() > until {
                return seen;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Waits until the server closes the connection, up to `deadline`.
    fn wait_closed(&self, deadline: Duration) -> Seen {
        let until = Instant::now() + deadline;
        loop {
            let seen = self.seen();
            if seen.closed_after.is_some() || Instant::now() > until {
                return seen;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for RawConnection {
    fn drop(&mut self) {
        let _ = self
            .writer
            .lock()
            .unwrap()
            .shutdown(std::net::Shutdown::Both);
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

/// Whether the server has closed its side of `stream`, found without
/// reading it: a reset pending on the socket, or the kernel's state for the
/// server's end (/proc/net/tcp) no longer ESTABLISHED. A client that reads
/// nothing may never see the server's FIN, held behind the answers that
/// fill its receive window.
fn server_closed(stream: &TcpStream) -> bool {
    if let Ok(Some(_)) = stream.take_error() {
        return true;
    }
    let hex = |addr: SocketAddr| {
        let SocketAddr::V4(addr) = addr else {
            panic!("IPv4 only: {addr}")
        };
        format!(
            "{:08X}:{:04X}",
            u32::from_ne_bytes(addr.ip().octets()),
            addr.port()
        )
    };
    let (Ok(server), Ok(client)) = (stream.peer_addr(), stream.local_addr()) else {
        return true;
    };
    let (server, client) = (hex(server), hex(client));
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    let state = table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        (fields.get(1) == Some(&server.as_str()) && fields.get(2) == Some(&client.as_str()))
            .then(|| fields.get(3).map(|s| s.to_string()))
            .flatten()
    });
    // 01 is ESTABLISHED; gone, or any other state, is closed.
    state.as_deref() != Some("01")
}

// The kubelet-style prober, on both protocols.

/// `Check(service)` on a new HTTP/2 connection with the `h2` crate, as
/// the kubelet's gRPC probe does: the serving status, or why there is
/// none.
async fn grpc_check(addr: SocketAddr, service: &str) -> Result<i32, String> {
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    tcp.set_nodelay(true).map_err(|e| e.to_string())?;
    let (client, connection) = h2::client::handshake(tcp)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let call = async move {
        let mut client = client.ready().await.map_err(|e| format!("ready: {e}"))?;
        let request = http::Request::post(format!("http://{addr}/grpc.health.v1.Health/Check"))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(())
            .unwrap();
        let (response, mut body) = client
            .send_request(request, false)
            .map_err(|e| format!("send: {e}"))?;
        body.send_data(grpc_request(service).into(), true)
            .map_err(|e| format!("send data: {e}"))?;
        let response = response.await.map_err(|e| format!("response: {e}"))?;
        if response.status() != 200 {
            return Err(format!("HTTP status {}", response.status()));
        }
        let mut body = response.into_body();
        let mut message = Vec::new();
        while let Some(chunk) = body.data().await {
            let chunk = chunk.map_err(|e| format!("body: {e}"))?;
            let _ = body.flow_control().release_capacity(chunk.len());
            message.extend_from_slice(&chunk);
        }
        let trailers = body
            .trailers()
            .await
            .map_err(|e| format!("trailers: {e}"))?
            .unwrap_or_default();
        let grpc_status = trailers
            .get("grpc-status")
            .map(|v| v.to_str().unwrap_or("?").to_owned());
        if grpc_status.as_deref() != Some("0") {
            return Err(format!(
                "grpc-status {grpc_status:?}, trailers {trailers:?}"
            ));
        }
        // One message: 5 bytes of framing, then field 1 (varint) or
        // nothing (UNKNOWN, 0).
        match &message[..] {
            [0, _, _, _, _, 0x08, status] => Ok(i32::from(*status)),
            [0, 0, 0, 0, 0] => Ok(0),
            other => Err(format!("a message {other:?}")),
        }
    };
    tokio::select! {
        answer = call => answer,
        ended = connection => Err(format!("the connection ended first: {ended:?}")),
    }
}

/// SERVING in `grpc.health.v1.HealthCheckResponse.ServingStatus`.
const SERVING: i32 = 1;

/// One probe the prober sent.
#[derive(Debug)]
struct Probed {
    protocol: &'static str,
    took: Duration,
    /// What was wrong with it, if anything.
    failure: Option<String>,
}

/// Probes `GET /livez` and `Check("livez")`, each on a new connection,
/// every [`PROBE_EVERY`], until finished.
struct Prober {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Vec<Probed>>,
}

impl Prober {
    fn start(addr: SocketAddr) -> Prober {
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let mut probed = Vec::new();
            while !stopping.load(Ordering::SeqCst) {
                let tick = Instant::now();
                let answer = http_probe(addr, "/livez", DEFAULT_TIMEOUT);
                probed.push(Probed {
                    protocol: "http",
                    took: answer.elapsed,
                    failure: (answer.status != Some(200)).then(|| answer.to_string()),
                });
                let sent = Instant::now();
                let answer = runtime.block_on(async {
                    tokio::time::timeout(DEFAULT_TIMEOUT, grpc_check(addr, "livez")).await
                });
                let took = sent.elapsed();
                let failure = match answer {
                    Ok(Ok(SERVING)) => None,
                    Ok(Ok(status)) => Some(format!("status {status}")),
                    Ok(Err(error)) => Some(error),
                    Err(_) => Some(format!("no answer within {DEFAULT_TIMEOUT:?}")),
                };
                probed.push(Probed {
                    protocol: "grpc",
                    took,
                    failure,
                });
                std::thread::sleep(PROBE_EVERY.saturating_sub(tick.elapsed()));
            }
            probed
        });
        Prober { stop, thread }
    }

    /// Stops probing; asserts that every probe passed within the kubelet's
    /// 1 s, and that there were at least `min` of each protocol. Prints
    /// the case's line with `figures`.
    fn finish(self, case: &str, min: usize, figures: &str) {
        self.stop.store(true, Ordering::SeqCst);
        let probed = self.thread.join().unwrap();
        let max_ms = |protocol: &str| {
            probed
                .iter()
                .filter(|p| p.protocol == protocol)
                .map(|p| p.took.as_secs_f64() * 1000.0)
                .fold(0.0, f64::max)
        };
        let count = |protocol: &str| probed.iter().filter(|p| p.protocol == protocol).count();
        eprintln!(
            "reliability: grpc hostile {case}: probes_http={} probes_grpc={} http_max_ms={:.1} \
             grpc_max_ms={:.1} {figures}",
            count("http"),
            count("grpc"),
            max_ms("http"),
            max_ms("grpc"),
        );
        let failed: Vec<&Probed> = probed
            .iter()
            .filter(|p| p.failure.is_some() || p.took > DEFAULT_TIMEOUT)
            .collect();
        assert!(
            failed.is_empty(),
            "{case}: {} of {} probes failed or took over {DEFAULT_TIMEOUT:?}: {failed:#?}",
            failed.len(),
            probed.len()
        );
        for protocol in ["http", "grpc"] {
            assert!(
                count(protocol) >= min,
                "{case}: only {} {protocol} probes during the case",
                count(protocol)
            );
        }
    }
}

fn running_testbed() -> Service {
    fixture(TESTBED).start().unwrap()
}

/// After a case: the service still answers on both protocols.
fn assert_still_serving(service: &Service) {
    service.wait_for_status("/livez", 200, DEADLINE);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let answer = runtime.block_on(async {
        tokio::time::timeout(DEADLINE, grpc_check(service.probe_addr(), "readyz")).await
    });
    assert!(
        matches!(answer, Ok(Ok(SERVING))),
        "Check(readyz) after the case: {answer:?}"
    );
}

/// How many RST_STREAM (`rstN`) and GOAWAY (`goawayN`) frames of each
/// error code N came.
type Codes = BTreeMap<String, usize>;

/// Adds `seen`'s RST_STREAM codes and GOAWAY code to `codes`.
fn tally(codes: &mut Codes, seen: &Seen) {
    for (code, count) in &seen.resets {
        *codes.entry(format!("rst{code}")).or_default() += count;
    }
    if let Some(code) = seen.goaway {
        *codes.entry(format!("goaway{code}")).or_default() += 1;
    }
}

#[test]
fn a_flood_of_streams_far_past_the_limit_is_refused_and_probes_answer() {
    let _serial = serial();
    let service = running_testbed();
    let addr = service.probe_addr();
    // Several connections, each with a thread writing and one reading:
    // more would measure this test's own threads crowding the two cores.
    const CONNECTIONS: usize = 4;
    // Thirty times the limit on each connection, all sent at once.
    const STREAMS: usize = 30 * MAX_STREAMS;
    let mut calls = Vec::new();
    for stream in 0..STREAMS as u32 {
        calls.extend(check_call(2 * stream + 1, "readyz"));
    }
    let calls = Arc::new(calls);
    let prober = Prober::start(addr);
    let started = Instant::now();
    // Per thread: connections, streams answered, codes; or what hung.
    type Flooded = Result<(usize, usize, Codes), String>;
    let flood: Vec<JoinHandle<Flooded>> = (0..CONNECTIONS)
        .map(|_| {
            let calls = calls.clone();
            std::thread::spawn(move || {
                let (mut rounds, mut answered, mut codes) = (0, 0, BTreeMap::new());
                while started.elapsed() < FLOOD_FOR {
                    let connection = RawConnection::open(addr, true);
                    // The server may refuse the rest with a GOAWAY and close.
                    let _ = connection.send(&calls);
                    let seen = connection.wait_ended(STREAMS, DEADLINE);
                    // Every stream got an answer or a refusal, or the
                    // connection a GOAWAY: none is left hanging.
                    if seen.ended < STREAMS && seen.goaway.is_none() {
                        return Err(format!(
                            "{} of {STREAMS} streams ended and no GOAWAY: {seen:?}",
                            seen.ended
                        ));
                    }
                    rounds += 1;
                    answered += seen.ended - seen.resets.values().sum::<usize>();
                    tally(&mut codes, &seen);
                }
                Ok((rounds, answered, codes))
            })
        })
        .collect();
    let outcomes: Vec<_> = flood.into_iter().map(|t| t.join().unwrap()).collect();
    let took = started.elapsed();
    let (mut rounds, mut answered, mut codes) = (0, 0, BTreeMap::<String, usize>::new());
    for (rounds_of, answered_of, codes_of) in outcomes.iter().flatten() {
        rounds += rounds_of;
        answered += answered_of;
        for (code, count) in codes_of {
            *codes.entry(code.clone()).or_default() += count;
        }
    }
    prober.finish(
        "stream flood",
        MIN_PROBES,
        &format!(
            "connections={rounds} streams_sent={} answered={answered} codes={codes:?} flood_ms={}",
            rounds * STREAMS,
            took.as_millis()
        ),
    );
    for outcome in outcomes {
        if let Err(e) = outcome {
            panic!("stream flood: {e}");
        }
    }
    assert_still_serving(&service);
}

#[test]
fn rapid_resets_cannot_starve_the_probes() {
    // CVE-2023-44487: streams opened and cancelled at once, so that the
    // client's limit on open streams never holds it back.
    let _serial = serial();
    let service = running_testbed();
    let addr = service.probe_addr();
    const CONNECTIONS: usize = 4;
    const STREAMS: u32 = 20_000;
    let prober = Prober::start(addr);
    let started = Instant::now();
    let flood: Vec<JoinHandle<(usize, u32, Codes)>> = (0..CONNECTIONS)
        .map(|_| {
            std::thread::spawn(move || {
                let (mut rounds, mut sent, mut codes) = (0, 0, BTreeMap::new());
                while started.elapsed() < FLOOD_FOR {
                    let connection = RawConnection::open(addr, true);
                    for batch in 0..STREAMS / 100 {
                        let mut bytes = Vec::new();
                        for i in 0..100 {
                            let id = 2 * (batch * 100 + i) + 1;
                            bytes.extend(check_call(id, "livez"));
                            bytes.extend(frame(RST_STREAM, 0, id, &CANCEL.to_be_bytes()));
                        }
                        if connection.send(&bytes).is_err()
                            || connection.seen().closed_after.is_some()
                        {
                            break;
                        }
                        sent += 100;
                    }
                    rounds += 1;
                    tally(
                        &mut codes,
                        &connection.wait_closed(Duration::from_millis(500)),
                    );
                }
                (rounds, sent, codes)
            })
        })
        .collect();
    let outcomes: Vec<_> = flood.into_iter().map(|t| t.join().unwrap()).collect();
    let took = started.elapsed();
    let (mut rounds, mut sent, mut codes) = (0, 0, BTreeMap::<String, usize>::new());
    for (rounds_of, sent_of, codes_of) in outcomes {
        rounds += rounds_of;
        sent += sent_of;
        for (code, count) in codes_of {
            *codes.entry(code).or_default() += count;
        }
    }
    prober.finish(
        "rapid reset",
        MIN_PROBES,
        &format!(
            "connections={rounds} streams_sent={sent} codes={codes:?} flood_ms={}",
            took.as_millis()
        ),
    );
    assert_still_serving(&service);
}

#[test]
fn an_oversized_header_block_and_a_continuation_flood_are_cut_off() {
    let _serial = serial();
    let service = running_testbed();
    let addr = service.probe_addr();
    let prober = Prober::start(addr);
    let mut figures = Vec::new();

    // A header of 20 KiB, past the 16 KiB bound, over HEADERS and
    // CONTINUATION frames: refused, the connection usable or closed.
    let big = vec![b'x'; 20 * 1024];
    let block = call_headers("Check", &[("x-huge", &big[..])]);
    let connection = RawConnection::open(addr, true);
    let (first, rest) = block.split_at(MAX_FRAME);
    let mut bytes = frame(HEADERS, 0, 1, first);
    bytes.extend(frame(CONTINUATION, END_HEADERS, 1, rest));
    bytes.extend(frame(DATA, END_STREAM, 1, &grpc_request("livez")));
    let _ = connection.send(&bytes);
    let seen = connection.wait_ended(1, DEADLINE);
    assert!(
        seen.ended >= 1 || seen.closed_after.is_some(),
        "an oversized header block left hanging: {seen:?}"
    );
    figures.push(format!("oversized={:?}/{:?}", seen.resets, seen.goaway));
    drop(connection);

    // CONTINUATION frames without end, full ones (a header block growing
    // past the bound) then empty ones (CVE-2024-27316's pattern): the
    // server must close each connection, not buffer or count for ever.
    let mut padding = Vec::new();
    hpack_literal(&mut padding, "x-pad", &vec![b'p'; MAX_FRAME - 32]);
    for (case, filler) in [
        ("continuation_full", padding),
        ("continuation_empty", Vec::new()),
    ] {
        let filler = frame(CONTINUATION, 0, 1, &filler).repeat(64);
        let started = Instant::now();
        let (mut rounds, mut frames, mut codes) = (0, 0u64, BTreeMap::new());
        let mut slowest = Duration::ZERO;
        while started.elapsed() < FLOOD_FOR {
            let connection = RawConnection::open(addr, true);
            let opened = Instant::now();
            let _ = connection.send(&frame(HEADERS, 0, 1, &call_headers("Check", &[])));
            while opened.elapsed() < DEADLINE && connection.seen().closed_after.is_none() {
                if connection.send(&filler).is_err() {
                    break;
                }
                frames += 64;
            }
            let seen = connection.wait_closed(Duration::from_secs(1));
            assert!(
                seen.closed_after.is_some(),
                "{case}: {frames} CONTINUATION frames in {:?} and the connection still open: \
                 {seen:?}",
                opened.elapsed()
            );
            slowest = slowest.max(opened.elapsed());
            rounds += 1;
            tally(&mut codes, &seen);
        }
        figures.push(format!(
            "{case}: connections={rounds} frames={frames} codes={codes:?} slowest_close_ms={}",
            slowest.as_millis()
        ));
        assert!(
            service.rss_kib() < 64 * 1024,
            "{case}: RSS {} KiB",
            service.rss_kib()
        );
    }
    prober.finish("header blocks", MIN_PROBES, &figures.join(" "));
    assert_still_serving(&service);
}

#[test]
fn half_a_preface_is_closed_after_the_header_read_timeout() {
    let _serial = serial();
    raise_open_file_limit(4096);
    let service = running_testbed();
    let addr = service.probe_addr();
    let half = &PREFACE[..PREFACE.len() / 2];

    // One, timed: closed at 2 s, not before, and not much after.
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.write_all(half).unwrap();
    let sent = Instant::now();
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut rest = Vec::new();
    let _ = stream.read_to_end(&mut rest);
    let closed_after = sent.elapsed();
    assert!(
        closed_after >= HEADER_READ_TIMEOUT - Duration::from_millis(100)
            && closed_after <= HEADER_READ_TIMEOUT + CLOSE_MARGIN,
        "half a preface closed after {closed_after:?}, not {HEADER_READ_TIMEOUT:?} \
         (margin {CLOSE_MARGIN:?}); the server sent {rest:?}"
    );

    // More of them than the server keeps connections, while it probes.
    let prober = Prober::start(addr);
    let count = MAX_CONNECTIONS + 100;
    let started = Instant::now();
    let stalled: Vec<TcpStream> = (0..count)
        .map(|_| {
            let mut stream = TcpStream::connect_timeout(&addr, DEADLINE).unwrap();
            stream.write_all(half).unwrap();
            stream
        })
        .collect();
    let opened = started.elapsed();
    // Each is closed at its own 2 s (or sooner, evicted at the cap).
    let mut last_close = Duration::ZERO;
    for mut stream in stalled {
        stream
            .set_read_timeout(Some(HEADER_READ_TIMEOUT + CLOSE_MARGIN + opened))
            .unwrap();
        let mut byte = [0u8; 1];
        let outcome = stream.read(&mut byte);
        assert!(
            matches!(outcome, Ok(0))
                || outcome
                    .as_ref()
                    .is_err_and(|e| e.kind() != io::ErrorKind::WouldBlock
                        && e.kind() != io::ErrorKind::TimedOut),
            "a stalled half preface still open {:?} after the first was sent: {outcome:?}",
            started.elapsed()
        );
        last_close = started.elapsed();
    }
    prober.finish(
        "half preface",
        MIN_PROBES,
        &format!(
            "single_close_ms={} connections={count} open_ms={} last_close_ms={}",
            closed_after.as_millis(),
            opened.as_millis(),
            last_close.as_millis()
        ),
    );
    assert_still_serving(&service);
}

/// What a client that never reads saw.
#[derive(Debug)]
struct NeverRead {
    /// Calls the server took.
    calls: u32,
    /// When the server took the last of them, since the connection
    /// opened: it stops reading once its writes stall, else the client
    /// stops after [`FILL_FOR`].
    stalled_at: Duration,
    /// How long after that the server closed the connection, if it did:
    /// [`WRITE_STALL`] once its writes have stalled, else, its answers all
    /// in the socket's buffers and nothing left to write, when its ping
    /// goes unanswered ([`IDLE_CLOSE`]).
    closed_after_stall: Option<Duration>,
}

/// What a client that never reads sends.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Unread {
    /// `Check` calls, eight at a time, for [`FILL_FOR`]: once the answers
    /// stop draining, the streams pile up past the limit and the server
    /// refuses them, then sends GOAWAY.
    Calls,
    /// PINGs, which the server must answer before it reads on: its writes
    /// stall ([`WRITE_STALL`]).
    Pings,
    /// A few calls, well under the limit, then nothing: the answers fit
    /// in the socket's buffers, and only the unanswered ping ends it
    /// ([`IDLE_CLOSE`]).
    FewCalls,
}

/// A connection that sends `what` and never reads.
fn never_read(addr: SocketAddr, what: Unread) -> NeverRead {
    use std::os::fd::AsRawFd;
    let connection = RawConnection::open(addr, false);
    let stream = connection.writer.lock().unwrap().try_clone().unwrap();
    let small: libc::c_int = 4096;
    // SAFETY: setsockopt(2) reads an int from a valid pointer.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&small as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
    stream
        .set_write_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let started = Instant::now();
    let mut last_taken = started;
    let mut calls = 0u32;
    // /proc/net/tcp is read at most every 100 ms: with thousands of
    // sockets in TIME_WAIT after the floods, reading it costs the machine
    // more than the probes it must not slow.
    let mut looked = started;
    while started.elapsed() < FILL_FOR {
        if looked.elapsed() > Duration::from_millis(100) {
            if server_closed(&stream) {
                break;
            }
            looked = Instant::now();
        }
        let mut bytes = Vec::new();
        match what {
            Unread::Calls => {
                for _ in 0..8 {
                    bytes.extend(check_call(2 * calls + 1, "livez"));
                    calls += 1;
                }
            }
            Unread::Pings => bytes = frame(PING, 0, 0, &[0; 8]).repeat(1024),
            Unread::FewCalls if calls == 0 => {
                for _ in 0..MAX_STREAMS / 2 {
                    bytes.extend(check_call(2 * calls + 1, "livez"));
                    calls += 1;
                }
            }
            Unread::FewCalls => break,
        }
        if connection.send(&bytes).is_err() {
            break;
        }
        last_taken = Instant::now();
        if what != Unread::Pings {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    while last_taken.elapsed() < IDLE_CLOSE + CLOSE_MARGIN && !server_closed(&stream) {
        std::thread::sleep(Duration::from_millis(100));
    }
    NeverRead {
        calls,
        stalled_at: last_taken - started,
        closed_after_stall: server_closed(&stream).then(|| last_taken.elapsed()),
    }
}

#[test]
fn clients_that_never_read_cannot_starve_the_probes() {
    let _serial = serial();
    let service = running_testbed();
    let addr = service.probe_addr();
    let prober = Prober::start(addr);
    let mut figures = Vec::new();

    // Raw: connections that send calls and never read their socket. The
    // answers fill the socket's buffers (its receive buffer made small, as
    // a client on a slow link has), the server's writes stall, and it must
    // close the connection: `WriteStall` in probe/server/guards.rs, 2 s.
    let unread = [Unread::Calls, Unread::Pings, Unread::FewCalls];
    let connections: Vec<JoinHandle<NeverRead>> = unread
        .iter()
        .map(|what| {
            let what = *what;
            std::thread::spawn(move || never_read(addr, what))
        })
        .collect();
    // The h2 crate: a client that reads its socket (it answers pings) but
    // never grants a stream any window, with Watches and Checks open.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let windowless = runtime.block_on(async {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (client, connection) = h2::client::Builder::new()
            .initial_window_size(0)
            .handshake::<_, bytes::Bytes>(tcp)
            .await
            .unwrap();
        let driver = tokio::spawn(connection);
        let mut client = client;
        let mut open = Vec::new();
        let mut refused = 0;
        for index in 0..2 * MAX_STREAMS {
            let method = if index % 2 == 0 { "Watch" } else { "Check" };
            client = client.ready().await.unwrap();
            let request =
                http::Request::post(format!("http://{addr}/grpc.health.v1.Health/{method}"))
                    .header("content-type", "application/grpc")
                    .header("te", "trailers")
                    .body(())
                    .unwrap();
            let Ok((response, mut body)) = client.send_request(request, false) else {
                refused += 1;
                continue;
            };
            let _ = body.send_data(grpc_request("readyz").into(), true);
            open.push(response);
        }
        // The heads come (HEADERS are not flow-controlled); the bodies
        // cannot.
        let mut heads = 0;
        for response in &mut open {
            if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_millis(100), response).await {
                heads += 1;
            }
        }
        (open, refused, heads, client, driver)
    });
    let (_open, refused, heads, _client, _driver) = windowless;
    figures.push(format!(
        "windowless_heads={heads} windowless_refused={refused}"
    ));
    // The raw clients' outcome, once they are done.
    let outcomes: Vec<NeverRead> = connections.into_iter().map(|t| t.join().unwrap()).collect();
    figures.push(format!(
        "never_read (calls, pings, few calls): calls={:?} fill_ms={:?} close_ms={:?}",
        outcomes.iter().map(|o| o.calls).collect::<Vec<_>>(),
        outcomes
            .iter()
            .map(|o| o.stalled_at.as_millis())
            .collect::<Vec<_>>(),
        outcomes
            .iter()
            .map(|o| o.closed_after_stall.map(|c| c.as_millis()))
            .collect::<Vec<_>>()
    ));
    prober.finish("never reads", MIN_PROBES, &figures.join(" "));
    for (what, outcome) in unread.iter().zip(&outcomes) {
        let bound = match what {
            // Ends with a GOAWAY once streams pile up past the limit, or
            // like a client that stopped.
            Unread::Calls | Unread::FewCalls => IDLE_CLOSE,
            Unread::Pings => WRITE_STALL,
        };
        assert!(
            outcome
                .closed_after_stall
                .is_some_and(|after| after <= bound + CLOSE_MARGIN),
            "a client that never reads ({what:?}) was not closed within {bound:?} + \
             {CLOSE_MARGIN:?} of the last bytes the server took: {outcome:?}"
        );
    }
    assert_still_serving(&service);
}
