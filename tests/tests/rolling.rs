//! Rolling restarts behind HAProxy (suite item 1 of issue 11): a service
//! replaced instance after instance behind a load balancer that
//! health-checks `/readyz`, under a steady load, loses no request and every
//! old instance exits 0. With long-lived clients connected through HAProxy
//! as well (issue 21: server-sent events and WebSockets, on the axum
//! service), every stream ends cleanly at each stop and its client
//! reconnects to the next instance.
//!
//! HAProxy (the Debian package) stands in for the Service's load balancing:
//! `option httpchk GET /readyz` on the instance's probe port every 100 ms,
//! one failed check takes an instance out of rotation, one passing check
//! puts it in, and `retries 0` without `option redispatch`, since
//! kube-proxy retries nothing: a request routed to an instance that
//! refuses or resets it is lost, and counted. Two backend slots on fixed
//! ports take the instances in turn, as pods come and go: the new instance
//! starts on the free slot, HAProxy routes to it, the old one gets SIGTERM,
//! fails `/readyz` at once, keeps serving through the drain delay while
//! HAProxy takes it out, then stops.
//!
//! The load runs through HAProxy from a few client threads for the whole
//! run, with a new connection per request (`Connection: close`, HAProxy in
//! `option httpclose`) or on keep-alive connections (HAProxy in
//! `http-keep-alive` on both sides, reusing its connections to the
//! instances). Cases: {the quick start, an axum service} × {keep-alive,
//! close}; 20 replacements each with `LIFECYCLE_SUITE=full`, 3 otherwise.
//! Each test prints one `reliability: rolling …` line for RELIABILITY.md.
//!
//! In the axum cases, long-lived clients stay connected through HAProxy
//! for the whole run, as browsers would: server-sent events (`/events`,
//! read chunk by chunk off a raw connection) and WebSockets (`/ws`,
//! tungstenite's client, sending a message to echo every 100 ms, so that
//! it keeps writing through each stop). The instances end their streams at
//! `shutdown_signal()`, after the drain delay, when HAProxy has long taken
//! them out: an event stream ends with its final chunk, a WebSocket with
//! Close 1001 (Going Away) and then an orderly close of the connection.
//! Each client then reconnects at once, as an EventSource or a WebSocket
//! client with its reconnect logic would, and must land on the next
//! instance and receive from it. HAProxy relays a WebSocket as a tunnel
//! after the upgrade (`timeout tunnel`); an event stream is an HTTP
//! response whose idle time `timeout server` and `timeout client` bound.
//!
//! The kit's `Load` proves one stop of one service; a rolling restart needs
//! one load across many stops, through a proxy, with each answer traced to
//! the instance that gave it (`GREETING=instance N`), so the client here is
//! written out.
//!
//! HAProxy must be installed (`./scripts/test` installs it): without it
//! these tests fail, they do not skip.
//!
//! Timing-sensitive, so its own test binary, its tests one at a time.

use std::collections::BTreeMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use lifecycle_testing::service::StopReport;
use lifecycle_testing::{http_get, Service, Stop};
use lifecycle_tests::{fixture, EventStream, KeepAliveClient, Scratch};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Message, WebSocket};

/// The quick-start example's own source (`examples/quickstart`), built in
/// this package.
const QUICKSTART: &str = env!("CARGO_BIN_EXE_quickstart-example");
/// `axum::serve(...).with_graceful_shutdown(shutdown_signal())`.
const AXUM_SERVICE: &str = env!("CARGO_BIN_EXE_axum-service");

/// HAProxy's health-check interval (`inter`); with `fall 2` an instance is
/// out of rotation within about two intervals of failing `/readyz`, and a
/// new instance is not taken for dead by one check that a loaded machine
/// delayed past `timeout check` (with `fall 1`, that left both instances
/// down for a moment, and HAProxy answered requests itself).
const CHECK_INTERVAL: Duration = Duration::from_millis(100);
/// The instances' drain delay (`LIFECYCLE_DRAIN_DELAY_MS`): ten check
/// intervals, so that HAProxy has taken an instance out long before it
/// closes its listener, even when a loaded 2-core machine delays a check
/// by several hundred milliseconds.
const DRAIN_DELAY: Duration = Duration::from_millis(1000);
/// How long one check may take before it counts as failed (`timeout
/// check`): the kubelet's default probe timeout.
const CHECK_TIMEOUT: Duration = Duration::from_secs(1);
/// Client threads, and the requests per second each sends.
const CLIENTS: usize = 4;
const PER_CLIENT_RATE: u32 = 50;
/// A request with no whole answer within this is lost.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How long HAProxy may take to route to a new instance, or to start.
const ROUTING_DEADLINE: Duration = Duration::from_secs(15);
/// The old instance's grace period, as `terminationGracePeriodSeconds`.
const GRACE: Duration = Duration::from_secs(30);
/// How many failures a report shows.
const SHOWN: usize = 20;
/// Long-lived clients of each kind (server-sent events, WebSocket) in the
/// cases of a service that has them.
const LONG_LIVED_CLIENTS: usize = 2;
/// How often a WebSocket client sends a message for the instance to echo.
const ECHO_INTERVAL: Duration = Duration::from_millis(100);
/// The instances' connection drain (`LIFECYCLE_CONNECTION_DRAIN_MS`): far
/// longer than a stop whose connections all end on their own takes, so
/// that an exit within the drain delay plus this shows that lifecycle had
/// no connection to end.
const CONNECTION_DRAIN: Duration = Duration::from_secs(10);

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// 20 replacements per case in the full suite (`LIFECYCLE_SUITE=full`), 3
/// in CI's shorter run.
fn replacements() -> usize {
    match std::env::var("LIFECYCLE_SUITE") {
        Ok(suite) if suite == "full" => 20,
        _ => 3,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Each client keeps one connection to HAProxy and sends its requests
    /// on it; HAProxy reuses its connections to the instances.
    KeepAlive,
    /// A new connection per request, `Connection: close`, end to end.
    Close,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::KeepAlive => "keep-alive",
            Mode::Close => "close",
        }
    }

    /// HAProxy's connection handling for this mode.
    fn haproxy_option(self) -> &'static str {
        match self {
            Mode::KeepAlive => "option http-keep-alive",
            Mode::Close => "option httpclose",
        }
    }
}

/// A port on 127.0.0.1, free a moment ago, below the kernel's ephemeral
/// range: a slot's ports are free between two instances, and a port from
/// that range (what `bind(":0")` hands out) could meanwhile become the
/// source port of one of the many connections the other tests on this
/// machine open, and the next instance would fail to bind it.
fn slot_port() -> u16 {
    static TAKEN: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let low = 10_000u16;
    if ephemeral_low <= low + 1000 {
        // No room below the ephemeral range: take a port from it.
        return lifecycle_tests::free_port();
    }
    let span = u32::from(ephemeral_low - low);
    let mut taken = TAKEN.lock().unwrap_or_else(|p| p.into_inner());
    // Another start point per process, so that concurrent runs of this
    // file do not try the same ports in the same order.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |now| now.subsec_nanos());
    let seed = std::process::id()
        .wrapping_mul(2_654_435_761)
        .wrapping_add(nanos);
    for attempt in 0..span {
        let port = low + u16::try_from((seed.wrapping_add(attempt * 7919)) % span).unwrap();
        if !taken.contains(&port) && TcpListener::bind(("127.0.0.1", port)).is_ok() {
            taken.push(port);
            return port;
        }
    }
    panic!("no free port between {low} and {ephemeral_low}");
}

/// A backend slot: the application's port and the probe port of whichever
/// instance holds it, and HAProxy's name for it.
#[derive(Debug, Clone, Copy)]
struct Slot {
    name: &'static str,
    app: u16,
    probe: u16,
}

/// Where HAProxy is installed: on PATH, or in the sbin directories that a
/// non-root user's PATH may leave out.
fn haproxy_binary() -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .map(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join("haproxy"))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    on_path
        .into_iter()
        .chain(["/usr/sbin/haproxy", "/usr/local/sbin/haproxy"].map(PathBuf::from))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "haproxy not found (on PATH, /usr/sbin, /usr/local/sbin): the rolling-restart \
                 tests need HAProxy; install the Debian package (`apt-get install -y haproxy`), \
                 as ./scripts/test does"
            )
        })
}

/// HAProxy in the foreground, killed when dropped (a failed assertion
/// included), with its stderr (server state changes, alerts) kept.
struct Haproxy {
    child: Child,
    frontend: SocketAddr,
    socket: PathBuf,
    stderr: Arc<Mutex<Vec<String>>>,
    // Last: removed after the process is gone.
    _dir: Scratch,
}

impl Haproxy {
    fn start(slots: &[Slot; 2], mode: Mode) -> Haproxy {
        let binary = haproxy_binary();
        let dir = Scratch::new("lifecycle-rolling");
        let socket = dir.path("admin.sock");
        let frontend = SocketAddr::from(([127, 0, 0, 1], slot_port()));
        let servers: String = slots
            .iter()
            .map(|slot| {
                format!(
                    "  server {} 127.0.0.1:{} check port {}\n",
                    slot.name, slot.app, slot.probe
                )
            })
            .collect();
        let config = format!(
            "global\n\
             \x20 maxconn 1000\n\
             \x20 stats socket {socket} mode 600 level admin\n\
             defaults\n\
             \x20 mode http\n\
             \x20 # kube-proxy retries nothing, and sends nothing elsewhere.\n\
             \x20 retries 0\n\
             \x20 no option redispatch\n\
             \x20 {option}\n\
             \x20 timeout connect 2s\n\
             \x20 timeout client 30s\n\
             \x20 timeout server 30s\n\
             \x20 # Longer than any pause of the load: HAProxy never closes a\n\
             \x20 # client's idle connection under it.\n\
             \x20 timeout http-keep-alive 30s\n\
             \x20 # A WebSocket is a tunnel once upgraded, and this replaces\n\
             \x20 # the client and server timeouts: how long it may stay idle.\n\
             \x20 # An event stream stays a response, idle at most as long as\n\
             \x20 # timeout server and client allow (its events come every\n\
             \x20 # 100 ms).\n\
             \x20 timeout tunnel 1h\n\
             \x20 timeout check {check_timeout}ms\n\
             frontend rolling\n\
             \x20 bind {frontend}\n\
             \x20 default_backend instances\n\
             backend instances\n\
             \x20 balance roundrobin\n\
             \x20 option httpchk GET /readyz\n\
             \x20 http-check expect status 200\n\
             \x20 default-server inter {inter}ms fall 2 rise 1\n\
             {servers}",
            socket = socket.display(),
            option = mode.haproxy_option(),
            check_timeout = CHECK_TIMEOUT.as_millis(),
            inter = CHECK_INTERVAL.as_millis(),
        );
        let config_path = dir.path("haproxy.cfg");
        std::fs::write(&config_path, &config).unwrap();
        let mut child = Command::new(&binary)
            .arg("-f")
            .arg(&config_path)
            .arg("-db")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        {
            let sink = stderr.clone();
            let pipe = child.stderr.take().unwrap();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    sink.lock().unwrap_or_else(|p| p.into_inner()).push(line);
                }
            });
        }
        let mut haproxy = Haproxy {
            child,
            frontend,
            socket,
            stderr,
            _dir: dir,
        };
        let until = Instant::now() + ROUTING_DEADLINE;
        while haproxy.statuses().is_err() {
            if let Ok(Some(status)) = haproxy.child.try_wait() {
                panic!(
                    "haproxy exited ({status}) at start-up; config:\n{config}\nstderr:\n{}",
                    haproxy.stderr_text()
                );
            }
            assert!(
                Instant::now() < until,
                "haproxy's stats socket did not answer within {ROUTING_DEADLINE:?}; stderr:\n{}",
                haproxy.stderr_text()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        haproxy
    }

    /// The backend's rows of `show stat` on the stats socket (one per
    /// server, and `BACKEND`), each column by its name.
    fn show_stat(&self) -> io::Result<Vec<BTreeMap<String, String>>> {
        let mut stream = UnixStream::connect(&self.socket)?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        stream.write_all(b"show stat\n")?;
        let mut text = String::new();
        stream.read_to_string(&mut text)?;
        let mut lines = text.lines();
        let header: Vec<&str> = lines
            .next()
            .and_then(|line| line.strip_prefix("# "))
            .ok_or_else(|| io::Error::other(format!("not a show stat answer: {text:?}")))?
            .split(',')
            .collect();
        Ok(lines
            .map(|line| {
                header
                    .iter()
                    .zip(line.split(','))
                    .map(|(name, value)| (name.to_string(), value.to_string()))
                    .collect::<BTreeMap<_, _>>()
            })
            .filter(|row| row.get("pxname").map(String::as_str) == Some("instances"))
            .collect())
    }

    /// Each backend server's status (`UP`, `DOWN`, …): what HAProxy itself
    /// routes by.
    fn statuses(&self) -> io::Result<BTreeMap<String, String>> {
        Ok(self
            .show_stat()?
            .into_iter()
            .filter_map(|mut row| Some((row.remove("svname")?, row.remove("status")?)))
            .collect())
    }

    /// A counter of the backend (its `BACKEND` row), 0 if absent.
    fn backend_counter(&self, column: &str) -> u64 {
        self.show_stat()
            .ok()
            .and_then(|rows| {
                rows.into_iter()
                    .find(|row| row.get("svname").map(String::as_str) == Some("BACKEND"))
            })
            .and_then(|row| row.get(column)?.parse().ok())
            .unwrap_or(0)
    }

    fn status(&self, server: &str) -> String {
        self.statuses()
            .ok()
            .and_then(|mut statuses| statuses.remove(server))
            .unwrap_or_default()
    }

    /// Waits until each of `wanted` (server, status) holds at once.
    fn wait_for(&self, wanted: &[(&str, &str)], deadline: Duration) -> Result<(), String> {
        let until = Instant::now() + deadline;
        loop {
            let statuses = self.statuses().map_err(|e| format!("show stat: {e}"))?;
            if wanted
                .iter()
                .all(|(server, status)| statuses.get(*server).map(String::as_str) == Some(*status))
            {
                return Ok(());
            }
            if Instant::now() > until {
                return Err(format!(
                    "HAProxy's servers {statuses:?}, not {wanted:?}, after {deadline:?}"
                ));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn stderr_text(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .join("\n")
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the load has seen so far.
#[derive(Default)]
struct Counts {
    sent: AtomicU64,
    /// Connections the clients opened to HAProxy.
    connections: AtomicU64,
    /// Every request without a 2xx answer from an instance: no answer (a
    /// refusal, a reset, a time-out), a wrong body, or a non-2xx status.
    failed: AtomicU64,
    /// Those of the failed that were answered with a non-2xx status
    /// (HAProxy's 503 when no server is available, its 502 for a
    /// connection an instance broke).
    non_2xx: AtomicU64,
    /// Answers per instance, by the instance's number.
    by_instance: Mutex<BTreeMap<usize, u64>>,
    /// The first failures: when (since the load started) and what.
    failures: Mutex<Vec<(Duration, String)>>,
}

/// The steady load through HAProxy, stopped when dropped.
struct Load {
    stop: Arc<AtomicBool>,
    counts: Arc<Counts>,
    threads: Vec<JoinHandle<()>>,
}

impl Load {
    fn start(addr: SocketAddr, mode: Mode, began: Instant) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let counts = Arc::new(Counts::default());
        let spacing = Duration::from_secs(1) / PER_CLIENT_RATE;
        let threads = (0..CLIENTS)
            .map(|client| {
                let stop = stop.clone();
                let counts = counts.clone();
                std::thread::spawn(move || {
                    let mut keep_alive = KeepAliveClient::new(addr, REQUEST_TIMEOUT);
                    // The clients' turns spread evenly over the spacing.
                    let mut next = Instant::now() + spacing * client as u32 / CLIENTS as u32;
                    while !stop.load(Ordering::SeqCst) {
                        // Pacing, not waiting for a condition: a steady
                        // rate that leaves the 2 cores to the instances
                        // and HAProxy.
                        let now = Instant::now();
                        if next > now {
                            std::thread::sleep(next - now);
                        }
                        next = next.max(now) + spacing;
                        counts.sent.fetch_add(1, Ordering::SeqCst);
                        let result = match mode {
                            Mode::KeepAlive => {
                                let answer = keep_alive.send(
                                    b"GET / HTTP/1.1\r\nHost: rolling\r\nUser-Agent: lifecycle-rolling\r\n\r\n",
                                );
                                if !keep_alive.reused {
                                    counts.connections.fetch_add(1, Ordering::SeqCst);
                                }
                                answer
                                    .map(|answer| (answer.status, answer.body))
                                    .map_err(|error| error.to_string())
                            }
                            Mode::Close => {
                                counts.connections.fetch_add(1, Ordering::SeqCst);
                                http_get(addr, "/", REQUEST_TIMEOUT)
                                    .map_err(|error| error.to_string())
                            }
                        };
                        judge(&counts, began, result);
                    }
                })
            })
            .collect();
        Load {
            stop,
            counts,
            threads,
        }
    }

    fn answered_by(&self, instance: usize) -> u64 {
        self.counts
            .by_instance
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&instance)
            .copied()
            .unwrap_or(0)
    }

    fn answered(&self) -> u64 {
        self.counts
            .by_instance
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .sum()
    }

    /// Waits until an instance answered a request of the load: HAProxy
    /// routes to it.
    fn wait_answer_from(&self, instance: usize, deadline: Duration) -> Result<(), String> {
        let until = Instant::now() + deadline;
        while self.answered_by(instance) == 0 {
            if Instant::now() > until {
                return Err(format!(
                    "no request of the load answered by instance {instance} within {deadline:?}"
                ));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(())
    }

    /// Stops the clients, waiting for the requests in flight (each bounded
    /// by its time-out).
    fn finish(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for thread in self.threads.drain(..) {
            thread.join().expect("a client thread panicked");
        }
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Counts one request's outcome.
fn judge(counts: &Counts, began: Instant, result: Result<(u16, String), String>) {
    let failure = match result {
        Ok((status, body)) if (200..300).contains(&status) => {
            match body.strip_suffix('\n').and_then(instance_number) {
                Some(instance) => {
                    *counts
                        .by_instance
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .entry(instance)
                        .or_default() += 1;
                    return;
                }
                None => format!("HTTP {status} with an unexpected body {body:?}"),
            }
        }
        Ok((status, body)) => {
            counts.non_2xx.fetch_add(1, Ordering::SeqCst);
            format!("HTTP {status}: {}", body.trim())
        }
        Err(error) => error,
    };
    counts.failed.fetch_add(1, Ordering::SeqCst);
    let mut failures = counts.failures.lock().unwrap_or_else(|p| p.into_inner());
    if failures.len() < SHOWN {
        failures.push((began.elapsed(), failure));
    }
}

/// The instance that sent `greeting`: its `GREETING`, `instance N`.
fn instance_number(greeting: &str) -> Option<usize> {
    greeting.strip_prefix("instance ")?.parse().ok()
}

/// The long-lived streams the axum service serves.
#[derive(Debug, Clone, Copy)]
enum Kind {
    /// `GET /events`: server-sent events, `instance N` every 100 ms.
    Events,
    /// `GET /ws`: a WebSocket that says `instance N`, then echoes.
    WebSocket,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Events => "events",
            Kind::WebSocket => "websocket",
        }
    }

    /// Messages a session must have received from its instance: an event;
    /// the greeting and an echo.
    fn least_received(self) -> u64 {
        match self {
            Kind::Events => 1,
            Kind::WebSocket => 2,
        }
    }
}

/// One connection of a long-lived client, from its opening to its end.
#[derive(Debug)]
struct Session {
    /// When it opened and ended, since the run began.
    opened: Duration,
    ended: Duration,
    /// The instance that served it, from its first message.
    instance: Option<usize>,
    /// Messages from that instance: events, or the greeting and echoes.
    received: u64,
    /// `Ok` for a clean end (the final chunk of the event stream; Close
    /// 1001, then the connection's orderly close), or what went wrong.
    end: Result<(), String>,
}

impl Session {
    /// Counts a message from `instance`, published in `latest` (the
    /// instance's number plus one) for the test to wait on.
    fn received_from(&mut self, instance: usize, latest: &AtomicUsize) -> Result<(), String> {
        let serving = *self.instance.get_or_insert(instance);
        if serving != instance {
            return Err(format!(
                "a message from instance {instance} on a connection to instance {serving}"
            ));
        }
        self.received += 1;
        latest.store(instance + 1, Ordering::SeqCst);
        Ok(())
    }
}

/// Opens one session of `kind` through `addr` and follows it to its end.
fn session(kind: Kind, addr: SocketAddr, began: Instant, latest: &AtomicUsize) -> Session {
    let mut session = Session {
        opened: began.elapsed(),
        ended: Duration::ZERO,
        instance: None,
        received: 0,
        end: Ok(()),
    };
    session.end = match kind {
        Kind::Events => follow_events(addr, &mut session, latest),
        Kind::WebSocket => follow_websocket(addr, &mut session, latest),
    };
    session.ended = began.elapsed();
    session
}

/// Reads `/events` until its body ends: `Ok` once the final chunk came.
fn follow_events(
    addr: SocketAddr,
    session: &mut Session,
    latest: &AtomicUsize,
) -> Result<(), String> {
    let mut events = EventStream::open(addr, "/events", REQUEST_TIMEOUT)
        .map_err(|error| format!("opening the event stream: {error}"))?;
    loop {
        match events.next_data() {
            Ok(Some(data)) => {
                let instance = instance_number(&data)
                    .ok_or_else(|| format!("an event that is no greeting: {data:?}"))?;
                session.received_from(instance, latest)?;
            }
            Ok(None) => return Ok(()),
            Err(error) => {
                return Err(format!(
                    "the event stream, after {} events: {error}",
                    session.received
                ))
            }
        }
    }
}

/// Talks to `/ws` until the instance closes it: `Ok` for Close 1001 (Going
/// Away) followed by the connection's orderly close.
fn follow_websocket(
    addr: SocketAddr,
    session: &mut Session,
    latest: &AtomicUsize,
) -> Result<(), String> {
    let stream = std::net::TcpStream::connect_timeout(&addr, REQUEST_TIMEOUT)
        .map_err(|error| format!("connecting: {error}"))?;
    for set in [
        stream.set_nodelay(true),
        stream.set_read_timeout(Some(REQUEST_TIMEOUT)),
        stream.set_write_timeout(Some(REQUEST_TIMEOUT)),
    ] {
        set.map_err(|error| error.to_string())?;
    }
    let (mut socket, _) = tungstenite::client(format!("ws://{addr}/ws"), stream)
        .map_err(|error| format!("the WebSocket handshake: {error}"))?;
    let greeting = match socket.read() {
        Ok(Message::Text(text)) => text,
        other => return Err(format!("{other:?} instead of a greeting")),
    };
    let instance =
        instance_number(greeting.as_str()).ok_or_else(|| format!("a greeting {greeting:?}"))?;
    session.received_from(instance, latest)?;
    let mut next = Instant::now();
    for sent in 0u64.. {
        // Pacing, not waiting for a condition: a message every interval,
        // through the stop too.
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        }
        next = next.max(now) + ECHO_INTERVAL;
        let text = format!("echo {sent}");
        socket
            .send(Message::text(text.as_str()))
            .map_err(|error| format!("sending {text:?}: {error}"))?;
        match socket.read() {
            Ok(Message::Text(echo)) if echo.as_str() == text => {
                session.received_from(instance, latest)?;
            }
            Ok(Message::Close(frame)) => return closed(socket, frame),
            other => return Err(format!("{other:?} instead of the echo of {text:?}")),
        }
    }
    unreachable!("the messages' count ran out")
}

/// After the instance's Close frame: `Ok` if it says 1001 (Going Away) and
/// the connection then closes in order (a FIN, not a reset).
fn closed(
    mut socket: WebSocket<std::net::TcpStream>,
    frame: Option<CloseFrame>,
) -> Result<(), String> {
    if frame.as_ref().map(|frame| frame.code) != Some(CloseCode::Away) {
        return Err(format!("closed with {frame:?}, not 1001 (Going Away)"));
    }
    // tungstenite has queued its Close in reply; the instance closes the
    // connection once it has it.
    match socket.flush() {
        Ok(()) | Err(tungstenite::Error::ConnectionClosed) => {}
        Err(error) => return Err(format!("replying to the Close: {error}")),
    }
    // Read off the socket itself: tungstenite would report a reset after
    // a Close as a clean close.
    let mut rest = Vec::new();
    match socket.get_mut().read_to_end(&mut rest) {
        Ok(_) if rest.is_empty() => Ok(()),
        Ok(_) => Err(format!("{} bytes after the Close frame", rest.len())),
        Err(error) => Err(format!("after the Close frame: {error}")),
    }
}

/// One long-lived client: its kind, the instance it last heard from (its
/// number plus one; 0 before any), and the thread that runs its sessions.
struct LongLivedClient {
    name: String,
    latest: Arc<AtomicUsize>,
    thread: JoinHandle<Vec<Session>>,
}

/// The long-lived clients, each one a session after another until told to
/// stop reconnecting.
struct LongLived {
    reconnect: Arc<AtomicBool>,
    clients: Vec<LongLivedClient>,
}

impl LongLived {
    fn start(addr: SocketAddr, began: Instant) -> LongLived {
        let reconnect = Arc::new(AtomicBool::new(true));
        let clients = [Kind::Events, Kind::WebSocket]
            .into_iter()
            .flat_map(|kind| (0..LONG_LIVED_CLIENTS).map(move |n| (kind, n)))
            .map(|(kind, n)| {
                let latest = Arc::new(AtomicUsize::new(0));
                let thread = {
                    let reconnect = reconnect.clone();
                    let latest = latest.clone();
                    std::thread::spawn(move || {
                        let mut sessions = Vec::new();
                        while reconnect.load(Ordering::SeqCst) {
                            let session = session(kind, addr, began, &latest);
                            let failed = session.end.is_err();
                            sessions.push(session);
                            if failed {
                                // Pacing of the retries: a failed session
                                // is already counted.
                                std::thread::sleep(Duration::from_millis(100));
                            }
                        }
                        sessions
                    })
                };
                LongLivedClient {
                    name: format!("{} client {n}", kind.name()),
                    latest,
                    thread,
                }
            })
            .collect();
        LongLived { reconnect, clients }
    }

    /// Waits until every client has heard from `instance`.
    fn wait_all_on(&self, instance: usize, deadline: Duration) -> Result<(), String> {
        let until = Instant::now() + deadline;
        loop {
            let elsewhere: Vec<String> = self
                .clients
                .iter()
                .filter(|client| client.latest.load(Ordering::SeqCst) != instance + 1)
                .map(|client| match client.latest.load(Ordering::SeqCst) {
                    0 => format!("{}: nothing received yet", client.name),
                    latest => format!("{}: last heard from instance {}", client.name, latest - 1),
                })
                .collect();
            if elsewhere.is_empty() {
                return Ok(());
            }
            if Instant::now() > until {
                return Err(format!(
                    "not every long-lived client received from instance {instance} within {deadline:?}: {elsewhere:?}"
                ));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Each client's sessions, once their streams have ended; call after
    /// [`stop_reconnecting`](Self::stop_reconnecting) and the last stop.
    fn finish(mut self) -> Vec<(String, Vec<Session>)> {
        std::mem::take(&mut self.clients)
            .into_iter()
            .map(|client| {
                let sessions = client.thread.join().expect("a long-lived client panicked");
                (client.name, sessions)
            })
            .collect()
    }

    /// The clients' current streams are their last: for the last stop.
    fn stop_reconnecting(&self) {
        self.reconnect.store(false, Ordering::SeqCst);
    }
}

impl Drop for LongLived {
    fn drop(&mut self) {
        self.stop_reconnecting();
    }
}

/// What happened when, for a failure's report.
#[derive(Default)]
struct Timeline(Vec<(Duration, String)>);

impl Timeline {
    fn note(&mut self, began: Instant, event: String) {
        self.0.push((began.elapsed(), event));
    }
}

fn ms(duration: Duration) -> String {
    format!("{:.0} ms", duration.as_secs_f64() * 1000.0)
}

/// Starts instance `number` of `binary` on `slot`.
fn start_instance(binary: &str, slot: Slot, number: usize) -> Service {
    fixture(binary)
        .env("APP_ADDR", format!("127.0.0.1:{}", slot.app))
        .env("LIFECYCLE_PROBE_ADDR", format!("127.0.0.1:{}", slot.probe))
        .env(
            "LIFECYCLE_DRAIN_DELAY_MS",
            DRAIN_DELAY.as_millis().to_string(),
        )
        .env(
            "LIFECYCLE_CONNECTION_DRAIN_MS",
            CONNECTION_DRAIN.as_millis().to_string(),
        )
        .env("GREETING", format!("instance {number}"))
        .start()
        .unwrap_or_else(|e| panic!("instance {number} on slot {}: {e:?}", slot.name))
}

/// Stops `old` (on `slot`) as the kubelet does, and measures meanwhile how
/// long after the signal HAProxy took it out of rotation.
fn replace_out(haproxy: &Haproxy, old: &mut Service, slot: Slot) -> (StopReport, Option<Duration>) {
    let signalled = Instant::now();
    let done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let watcher = scope.spawn(|| {
            while !done.load(Ordering::SeqCst) {
                let status = haproxy.status(slot.name);
                if !status.is_empty() && status != "UP" {
                    return Some(signalled.elapsed());
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            None
        });
        let stopped = old.stop(Stop::grace(GRACE));
        done.store(true, Ordering::SeqCst);
        (stopped, watcher.join().unwrap())
    })
}

/// Rolls `binary` through `replacements()` replacements behind HAProxy
/// under a steady load in `mode`, with long-lived clients connected too
/// when `long_lived` (a service with `/events` and `/ws`), and asserts that
/// nothing was lost and that every stream ended cleanly.
fn rolling(service: &str, binary: &str, mode: Mode, long_lived: bool) {
    let replacements = replacements();
    let slots = [
        Slot {
            name: "a",
            app: slot_port(),
            probe: slot_port(),
        },
        Slot {
            name: "b",
            app: slot_port(),
            probe: slot_port(),
        },
    ];
    let haproxy = Haproxy::start(&slots, mode);
    let began = Instant::now();
    let mut timeline = Timeline::default();

    let mut current = start_instance(binary, slots[0], 0);
    // Slot b must be DOWN too before the load starts: HAProxy counts a
    // server as up until its first check fails.
    haproxy
        .wait_for(&[("a", "UP"), ("b", "DOWN")], ROUTING_DEADLINE)
        .unwrap_or_else(|e| panic!("{e}\nhaproxy:\n{}", haproxy.stderr_text()));
    timeline.note(began, "instance 0 in rotation on slot a".into());
    let mut load = Load::start(haproxy.frontend, mode, began);
    load.wait_answer_from(0, ROUTING_DEADLINE)
        .unwrap_or_else(|e| panic!("{e}\nhaproxy:\n{}", haproxy.stderr_text()));
    let streams = long_lived.then(|| LongLived::start(haproxy.frontend, began));
    if let Some(streams) = &streams {
        streams
            .wait_all_on(0, ROUTING_DEADLINE)
            .unwrap_or_else(|e| panic!("{e}\nhaproxy:\n{}", haproxy.stderr_text()));
        timeline.note(began, "long-lived clients on instance 0".into());
    }

    let mut exits = Vec::new();
    let mut stop_times = Vec::new();
    let mut taken_out = Vec::new();
    let mut answered_while_stopping = Vec::new();
    for number in 1..=replacements {
        let old_slot = slots[(number - 1) % 2];
        let slot = slots[number % 2];
        timeline.note(
            began,
            format!("instance {number} starting on slot {}", slot.name),
        );
        let new = start_instance(binary, slot, number);
        // Routed to by HAProxy itself: in rotation on its stats socket,
        // and answering the load's requests.
        let routed = haproxy
            .wait_for(&[(slot.name, "UP")], ROUTING_DEADLINE)
            .and_then(|()| load.wait_answer_from(number, ROUTING_DEADLINE));
        if let Err(error) = routed {
            panic!(
                "instance {number}: {error}\nits log:\n{}\nhaproxy:\n{}",
                new.log().join("\n"),
                haproxy.stderr_text()
            );
        }
        timeline.note(
            began,
            format!("instance {number} answering through HAProxy"),
        );

        timeline.note(began, format!("SIGTERM to instance {}", number - 1));
        let answered_before = load.answered();
        let (stopped, out_after) = replace_out(&haproxy, &mut current, old_slot);
        answered_while_stopping.push(load.answered() - answered_before);
        timeline.note(
            began,
            format!(
                "instance {} exited: {} after {} (out of rotation after {}, /readyz failing after {})",
                number - 1,
                stopped.exit,
                ms(stopped.signal_to_exit),
                out_after.map_or("never".into(), ms),
                stopped.unready_after.map_or("never seen".into(), ms),
            ),
        );
        if stopped.exit.code != Some(0) {
            timeline.note(
                began,
                format!("instance {} log:\n{}", number - 1, stopped.log.join("\n")),
            );
        }
        exits.push(stopped.exit);
        // lifecycle's one line when it had to end connections.
        let drain_ended = stopped
            .log
            .iter()
            .find(|line| line.contains("connection drain over"))
            .cloned();
        stop_times.push((stopped.signal_to_exit, drain_ended));
        taken_out.push(out_after);
        current = new;
        // Every stream of the old instance ended, and its client is on the
        // new one.
        if let Some(streams) = &streams {
            if let Err(error) = streams.wait_all_on(number, ROUTING_DEADLINE) {
                panic!(
                    "instance {number}: {error}\nhaproxy:\n{}",
                    haproxy.stderr_text()
                );
            }
            timeline.note(began, format!("long-lived clients on instance {number}"));
        }
    }
    load.finish();
    if let Some(streams) = &streams {
        streams.stop_reconnecting();
    }
    let last = current.stop(Stop::grace(GRACE));
    let sessions = streams.map(LongLived::finish).unwrap_or_default();
    // HAProxy's connections to the instances: opened, and reused for
    // another request.
    let (backend_connects, backend_reuses) = (
        haproxy.backend_counter("connect"),
        haproxy.backend_counter("reuse"),
    );
    let client_connections = load.counts.connections.load(Ordering::SeqCst);

    let counts = &load.counts;
    let sent = counts.sent.load(Ordering::SeqCst);
    let failed = counts.failed.load(Ordering::SeqCst);
    let non_2xx = counts.non_2xx.load(Ordering::SeqCst);
    let exits_0 = exits.iter().filter(|exit| exit.code == Some(0)).count();
    let streams_line = if long_lived {
        let count = |prefix: &str| -> usize {
            sessions
                .iter()
                .filter(|(name, _)| name.starts_with(prefix))
                .map(|(_, sessions)| sessions.len())
                .sum()
        };
        let unclean: usize = sessions
            .iter()
            .map(|(_, sessions)| sessions.iter().filter(|s| s.end.is_err()).count())
            .sum();
        format!(
            " event_streams={} websockets={} unclean_ends={unclean}",
            count(Kind::Events.name()),
            count(Kind::WebSocket.name())
        )
    } else {
        String::new()
    };
    eprintln!(
        "reliability: rolling {service} {}: replacements={replacements} requests={sent} failed={failed} non_2xx={non_2xx} old_exits_0={exits_0}{streams_line}",
        mode.name()
    );
    let slowest_out = taken_out.iter().flatten().max().copied();
    let slowest_exit = stop_times.iter().map(|(took, _)| *took).max();
    eprintln!(
        "rolling {service} {}: answers per instance {:?}; HAProxy took the old instance out at most {} after SIGTERM (drain delay {}), which exited at most {} after it; answered while an old instance stopped: {answered_while_stopping:?}; connections: {client_connections} from the clients, {backend_connects} to the instances, {backend_reuses} reuses",
        mode.name(),
        counts.by_instance.lock().unwrap(),
        slowest_out.map_or("-".into(), ms),
        ms(DRAIN_DELAY),
        slowest_exit.map_or("-".into(), ms),
    );

    let report = || {
        let mut events: Vec<(Duration, String)> = timeline
            .0
            .iter()
            .cloned()
            .chain(
                counts
                    .failures
                    .lock()
                    .unwrap()
                    .iter()
                    .map(|(at, what)| (*at, format!("LOST: {what}"))),
            )
            .collect();
        events.sort_by_key(|(at, _)| *at);
        let events: Vec<String> = events
            .iter()
            .map(|(at, what)| format!("  +{:>6} {what}", ms(*at)))
            .collect();
        let sessions: Vec<String> = sessions
            .iter()
            .flat_map(|(name, sessions)| {
                sessions.iter().map(move |session| {
                    format!(
                        "  {name}: +{}..+{} instance {:?}, {} received, {:?}",
                        ms(session.opened),
                        ms(session.ended),
                        session.instance,
                        session.received,
                        session.end
                    )
                })
            })
            .collect();
        format!(
            "timeline (first {SHOWN} losses):\n{}\nlong-lived sessions:\n{}\nhaproxy:\n{}",
            events.join("\n"),
            sessions.join("\n"),
            haproxy.stderr_text()
        )
    };
    assert!(
        failed == 0 && non_2xx == 0,
        "{failed} of {sent} requests failed ({non_2xx} non-2xx)\n{}",
        report()
    );
    assert_eq!(
        exits_0,
        replacements,
        "old instances' exits: {exits:?}\n{}",
        report()
    );
    assert_eq!(last.exit.code, Some(0), "the last instance: {}", last.exit);
    // Every connection to an old instance closed on its own, before
    // lifecycle's connection drain would have ended it.
    for (number, (took, drain_ended)) in stop_times.iter().enumerate() {
        assert!(
            *took < DRAIN_DELAY + CONNECTION_DRAIN && drain_ended.is_none(),
            "instance {number} exited {took:?} after SIGTERM (the drain delay and the connection drain: {:?}); {drain_ended:?}\n{}",
            DRAIN_DELAY + CONNECTION_DRAIN,
            report()
        );
    }
    // Each long-lived client was served by every instance in turn, each
    // session ending cleanly: its stream ended at the stop, and the client
    // reconnected to the next instance and heard from it.
    let expected: Vec<Option<usize>> = (0..=replacements).map(Some).collect();
    for (name, sessions) in &sessions {
        let kind = if name.starts_with(Kind::Events.name()) {
            Kind::Events
        } else {
            Kind::WebSocket
        };
        let instances: Vec<Option<usize>> = sessions.iter().map(|s| s.instance).collect();
        assert!(
            instances == expected
                && sessions
                    .iter()
                    .all(|s| s.end.is_ok() && s.received >= kind.least_received()),
            "{name}: sessions on instances {instances:?}, not one clean session on each of {expected:?}\n{}",
            report()
        );
    }
    // HAProxy took each old instance out of rotation while it still
    // served: the drain delay covered the checks, so the run tested the
    // product and not luck.
    for (number, out) in taken_out.iter().enumerate() {
        assert!(
            out.is_some_and(|out| out < DRAIN_DELAY),
            "instance {number} taken out of rotation after {:?}, not within the drain delay {DRAIN_DELAY:?}\n{}",
            out,
            report()
        );
    }
    // The mode is the one claimed: in keep-alive the clients kept their
    // connections to HAProxy through the replacements and HAProxy reused
    // its connections to the instances; in close every request had
    // connections of its own on both sides.
    match mode {
        Mode::KeepAlive => assert!(
            client_connections < sent / 10 && backend_reuses > sent / 2,
            "not keep-alive: {client_connections} client connections, {backend_reuses} reuses of HAProxy's connections to the instances, for {sent} requests"
        ),
        Mode::Close => assert!(
            client_connections == sent && backend_reuses == 0 && backend_connects >= sent,
            "not a connection per request: {client_connections} client connections, {backend_connects} connections to the instances, {backend_reuses} reused, for {sent} requests"
        ),
    }
    // The load ran across every replacement.
    assert!(
        answered_while_stopping.iter().all(|answered| *answered > 0),
        "answered while each old instance stopped: {answered_while_stopping:?}\n{}",
        report()
    );
}

#[test]
fn quickstart_rolled_behind_haproxy_with_keep_alive_loses_nothing() {
    let _serial = serial();
    rolling("quickstart", QUICKSTART, Mode::KeepAlive, false);
}

#[test]
fn quickstart_rolled_behind_haproxy_with_a_connection_per_request_loses_nothing() {
    let _serial = serial();
    rolling("quickstart", QUICKSTART, Mode::Close, false);
}

#[test]
fn axum_service_rolled_behind_haproxy_with_keep_alive_and_streams_loses_nothing() {
    let _serial = serial();
    rolling("axum-service", AXUM_SERVICE, Mode::KeepAlive, true);
}

#[test]
fn axum_service_rolled_behind_haproxy_with_a_connection_per_request_and_streams_loses_nothing() {
    let _serial = serial();
    rolling("axum-service", AXUM_SERVICE, Mode::Close, true);
}
