//! Floods (issue 11, suite item 4): ten thousand connections in bursts, two
//! thousand idle keep-alive connections, and connect-and-reset storms
//! against the probe server, while a kubelet-style prober probes `/livez`
//! and `/readyz` every ~100 ms with the kubelet's 1 s timeout.
//!
//! Each case asserts that every probe passed within that timeout, that the
//! service's peak RSS stayed under 64 MiB, that it never held many more
//! sockets than the probe server's cap, and that its open file descriptors
//! come back to their baseline once the flood is over: every connection was
//! eventually closed by the server. A last case stops the service while a
//! burst arrives, so that only the kernel's listen backlog holds it; and
//! one starts the service under a low open-file limit, so that `accept`
//! fails with EMFILE, and counts the lines its pauses log. Each
//! prints one line `reliability: floods CASE: …` with its figures, for
//! RELIABILITY.md (shown with `-- --nocapture`, or when the case fails).
//!
//! Timing-sensitive (probe latencies on a loaded machine), so its own test
//! binary, its tests one at a time. `LIFECYCLE_SUITE=full` runs the same
//! sizes as the default: the issue's, which fit in the default run's time.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use lifecycle_testing::probe::{http_probe, ProbeAnswer, DEFAULT_TIMEOUT};
use lifecycle_testing::{Endpoint, Service};
use lifecycle_tests::{accept_queue, fixture, raise_open_file_limit};

const TESTBED: &str = env!("CARGO_BIN_EXE_testbed");
/// For anything waited on: generous, for a loaded 2-core machine.
const DEADLINE: Duration = Duration::from_secs(10);
/// The bound on the service's peak resident set.
const PEAK_RSS_LIMIT_KIB: u64 = 64 * 1024;
/// The probe server's header read timeout (`HEADER_READ_TIMEOUT` in
/// lifecycle-runtime/src/probe/server/guards.rs), which also closes keep-alive
/// connections left idle.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(2);
/// The probe server's cap on open connections (`MAX_CONNECTIONS` in
/// probe/server/connections.rs; the README's Hardening promises a cap).
const MAX_CONNECTIONS: usize = 512;
/// How many connections the accept loop may admit in one turn before the
/// connections it evicted have run and closed their sockets: tokio's
/// cooperative budget, 128 operations per turn of a task.
const ADMITTED_PER_TURN: usize = 128;
/// The probe server's listen backlog (`LISTEN_BACKLOG` in
/// probe/server/listener.rs).
const LISTEN_BACKLOG: usize = 1024;
/// The kubelet's period, shortened: a probe every 100 ms.
const PROBE_EVERY: Duration = Duration::from_millis(100);
/// Threads opening the flood's connections.
const CLIENT_THREADS: usize = 4;
/// A flood connection's connect: a SYN dropped on a full accept queue is
/// sent again after 1 s, then 3 s.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A whole probe request, keep-alive (HTTP/1.1's default).
const REQUEST: &[u8] = b"GET /livez HTTP/1.1\r\nHost: flood\r\n\r\n";
/// A whole probe request, closed by the server after its answer.
const REQUEST_CLOSE: &[u8] = b"GET /livez HTTP/1.1\r\nHost: flood\r\nConnection: close\r\n\r\n";
/// The start of a request, its headers never finished.
const PARTIAL_REQUEST: &[u8] = b"GET /livez HTTP/1.1\r\nHost: fl";

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// How big each flood is.
struct Sizes {
    /// Bursts of connections, each of `burst` connections.
    bursts: usize,
    burst: usize,
    /// Idle keep-alive connections, all held at once.
    idle: usize,
    /// Connect-and-reset storms, each of `resets` connections, as fast as
    /// the client threads go. A storm fits in the probe server's listen
    /// backlog, so the kernel queues all of it whatever the server does
    /// meanwhile; at half the backlog, a probe behind a whole storm still
    /// has half its timeout to spare on a loaded machine. A flood that outruns the accept loop for longer fills any
    /// backlog, and then the kernel drops SYNs, the kubelet's among them
    /// (sent again after 1 s, the probe's whole timeout): against that, a
    /// server on one thread has nothing more to offer than its backlog.
    storms: usize,
    resets: usize,
}

/// The sizes, in the default run as under `LIFECYCLE_SUITE=full`:
/// the whole file takes well under a minute on a 2-core machine.
fn sizes() -> Sizes {
    Sizes {
        bursts: 20,
        burst: 500,
        idle: 2000,
        storms: 20,
        resets: 500,
    }
}

/// The service's open file descriptors, or 0 once it is gone.
fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|entries| entries.count())
        .unwrap_or(0)
}

/// What the service's descriptors are, by kind (`socket`, `pipe`,
/// `anon_inode:[eventpoll]`, a path), for a failure's message.
fn describe_fds(pid: u32) -> String {
    let mut kinds = BTreeMap::<String, usize>::new();
    if let Ok(entries) = std::fs::read_dir(format!("/proc/{pid}/fd")) {
        for entry in entries.flatten() {
            let target = std::fs::read_link(entry.path())
                .map(|t| t.to_string_lossy().into_owned())
                .unwrap_or_else(|_| "?".into());
            // `socket:[12345]` → `socket`: the inode says nothing here.
            let kind = match target.split_once(":[") {
                Some((kind, _)) if !kind.starts_with("anon_inode") => kind.to_owned(),
                _ => target,
            };
            *kinds.entry(kind).or_default() += 1;
        }
    }
    format!("{kinds:?}")
}

/// A `KEY: N kB` line of /proc/PID/status, in KiB.
fn status_kib(pid: u32, key: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{key} in /proc/{pid}/status"))
}

/// Waits until `ready` gives a value, or panics with `what` at the
/// deadline.
fn wait_until<T>(
    deadline: Duration,
    what: impl Fn() -> String,
    mut ready: impl FnMut() -> Option<T>,
) -> T {
    let until = Instant::now() + deadline;
    loop {
        if let Some(value) = ready() {
            return value;
        }
        assert!(Instant::now() < until, "{}", what());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A testbed to flood, with its file descriptors counted at rest.
struct Flood {
    service: Service,
    fds_baseline: usize,
}

impl Flood {
    fn start(needed_fds: u64) -> Flood {
        raise_open_file_limit(needed_fds);
        let service = fixture(TESTBED).start().unwrap();
        service.wait_passing(Endpoint::Readyz, DEADLINE).unwrap();
        // Every path a probe takes has run once (a check on the blocking
        // pool, the log), so nothing opened lazily by the first probes
        // counts as a leak of the flood.
        for endpoint in [Endpoint::Livez, Endpoint::Readyz, Endpoint::Startupz] {
            service.assert_passing(endpoint);
        }
        // At rest: the last probe's connection is closed by the server a
        // moment after the client has read its answer, so the count is
        // taken once it has held still for 200 ms.
        let pid = service.pid();
        let mut last = (open_fds(pid), Instant::now());
        let fds_baseline = wait_until(
            DEADLINE,
            || {
                format!(
                    "the service's descriptors never held still: {}",
                    describe_fds(pid)
                )
            },
            || {
                let now = open_fds(pid);
                if now != last.0 {
                    last = (now, Instant::now());
                }
                (last.1.elapsed() >= Duration::from_millis(200)).then_some(now)
            },
        );
        Flood {
            service,
            fds_baseline,
        }
    }

    fn addr(&self) -> SocketAddr {
        self.service.probe_addr()
    }

    fn pid(&self) -> u32 {
        self.service.pid()
    }

    /// Waits until the service has taken in every connection the kernel
    /// queued for it and closed those the flood is done with: its accept
    /// queue empty, and no more descriptors than at rest besides the
    /// prober's connection and the one before it, which the server may not
    /// have dropped yet.
    fn wait_digested(&self, deadline: Duration, when: &str) {
        if let Err(e) = self.digested(deadline) {
            panic!("{when}: {e}");
        }
    }

    /// [`wait_digested`](Self::wait_digested), saying what is left at the
    /// deadline.
    fn digested(&self, deadline: Duration) -> Result<(), String> {
        let (pid, addr) = (self.pid(), self.addr());
        let most = self.fds_baseline + 2;
        let until = Instant::now() + deadline;
        loop {
            if accept_queue(addr) == 0 && open_fds(pid) <= most {
                return Ok(());
            }
            if Instant::now() > until {
                return Err(format!(
                    "after {deadline:?}, the service still has {} descriptors open, at most \
                     {most} wanted (baseline {}): {}; {} connections queued",
                    open_fds(pid),
                    self.fds_baseline,
                    describe_fds(pid),
                    accept_queue(addr)
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Ends a case whose clients are done: probes go on until the service
    /// has digested the flood (`digest` at most), then the prober's figures
    /// are checked, the peak RSS read, the descriptors awaited back at
    /// their baseline, and the report line printed (before the assertions,
    /// so that a failure reports its figures too).
    fn finish(self, case: &str, connections: usize, prober: Prober, digest: Duration) {
        let digested = self.digested(digest);
        // One probe per 100 ms from the flood's start, allowing for a slow
        // machine, and two at the least: the prober watched the flood.
        let min_probes =
            (prober.started.elapsed().as_millis() / PROBE_EVERY.as_millis() / 2).max(2) as usize;
        let watch = prober.finish();
        let pid = self.pid();
        let peak_rss_kib = status_kib(pid, "VmHWM:");
        // Every connection of the flood has been closed by one side or the
        // other: the server's side must be closed too. Exactly the
        // baseline: the probes before it already opened whatever the
        // service opens lazily, and the prober is stopped.
        let until = Instant::now() + DEADLINE;
        let fds_after = loop {
            let now = open_fds(pid);
            if now <= self.fds_baseline || Instant::now() > until {
                break now;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let latencies = watch.latencies_ms();
        let p99 = percentile(&latencies, 0.99);
        let max = latencies.last().copied().unwrap_or(0.0);
        eprintln!(
            "reliability: floods {case}: connections={connections} probes={} p99_ms={p99:.1} \
             max_ms={max:.1} peak_rss_mib={:.1} fds_baseline={} fds_after={fds_after} \
             fds_peak={} accept_queue_peak={}",
            watch.answers.len(),
            peak_rss_kib as f64 / 1024.0,
            self.fds_baseline,
            watch.fds_peak,
            watch.queue_peak,
        );
        watch.assert_all_passed(case, min_probes);
        if let Err(e) = digested {
            panic!("{case}: {e}");
        }
        assert!(
            peak_rss_kib < PEAK_RSS_LIMIT_KIB,
            "{case}: peak RSS {peak_rss_kib} KiB, over {PEAK_RSS_LIMIT_KIB} KiB"
        );
        assert_eq!(
            fds_after,
            self.fds_baseline,
            "{case}: the service's descriptors did not come back to their baseline within \
             {DEADLINE:?}: {}",
            describe_fds(pid)
        );
        // The cap held: at most its connections, those evicted in the
        // accept loop's last turn and not closed yet, and the one being
        // admitted.
        let most = self.fds_baseline + MAX_CONNECTIONS + ADMITTED_PER_TURN + 1;
        assert!(
            watch.fds_peak <= most,
            "{case}: the service had {} descriptors open at once, at most {most} wanted \
             (baseline {})",
            watch.fds_peak,
            self.fds_baseline
        );
    }
}

/// The value at or under which `fraction` of the `sorted` values lie
/// (nearest rank).
fn percentile(sorted: &[f64], fraction: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (fraction * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The kubelet's prober: `/livez` and `/readyz` in turn, a new connection
/// each, 1 s timeout, every 100 ms; it also samples the service's open
/// descriptors and its accept queue as it goes.
struct Prober {
    started: Instant,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Watch>>,
    /// Probes sent by the test itself, counted with the prober's.
    more: Vec<ProbeAnswer>,
}

/// What the prober saw.
struct Watch {
    answers: Vec<ProbeAnswer>,
    fds_peak: usize,
    queue_peak: usize,
}

impl Prober {
    fn start(flood: &Flood) -> Prober {
        let (addr, pid) = (flood.addr(), flood.pid());
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut watch = Watch {
                answers: Vec::new(),
                fds_peak: 0,
                queue_peak: 0,
            };
            let mut next = Instant::now();
            for round in 0.. {
                if stopped.load(Ordering::SeqCst) {
                    break;
                }
                let endpoint = if round % 2 == 0 {
                    Endpoint::Livez
                } else {
                    Endpoint::Readyz
                };
                watch
                    .answers
                    .push(http_probe(addr, endpoint.path(), DEFAULT_TIMEOUT));
                watch.fds_peak = watch.fds_peak.max(open_fds(pid));
                watch.queue_peak = watch.queue_peak.max(accept_queue(addr));
                // A steady cadence, as the kubelet's; a late probe does not
                // make the next ones come in a rush.
                next = (next + PROBE_EVERY).max(Instant::now());
                std::thread::sleep(next.saturating_duration_since(Instant::now()));
            }
            watch
        });
        Prober {
            started: Instant::now(),
            stop,
            thread: Some(thread),
            more: Vec::new(),
        }
    }

    fn finish(mut self) -> Watch {
        self.stop.store(true, Ordering::SeqCst);
        let mut watch = self
            .thread
            .take()
            .expect("finished once")
            .join()
            .expect("the prober does not panic");
        watch.answers.append(&mut self.more);
        watch
    }
}

impl Drop for Prober {
    /// A failing flood does not leave the prober probing.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

impl Watch {
    /// The probes' latencies in milliseconds, sorted.
    fn latencies_ms(&self) -> Vec<f64> {
        let mut latencies: Vec<f64> = self
            .answers
            .iter()
            .map(|a| a.elapsed.as_secs_f64() * 1000.0)
            .collect();
        latencies.sort_by(f64::total_cmp);
        latencies
    }

    /// Every probe passed within the kubelet's timeout, and there were
    /// enough of them to have watched the flood.
    fn assert_all_passed(&self, case: &str, min_probes: usize) {
        assert!(
            self.answers.len() >= min_probes,
            "{case}: only {} probes during the flood, at least {min_probes} wanted",
            self.answers.len()
        );
        let failed: Vec<String> = self
            .answers
            .iter()
            .enumerate()
            .filter(|(_, a)| !a.passed() || a.elapsed >= DEFAULT_TIMEOUT)
            .map(|(i, a)| format!("probe {i}: {a}"))
            .collect();
        assert!(
            failed.is_empty(),
            "{case}: {} of {} probes failed or took the kubelet's {DEFAULT_TIMEOUT:?}:\n{}",
            failed.len(),
            self.answers.len(),
            failed.join("\n")
        );
    }
}

fn connect(addr: SocketAddr) -> TcpStream {
    TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)
        .unwrap_or_else(|e| panic!("flood connection to {addr}: {e}"))
}

/// Closes `stream` with a reset (SO_LINGER 0) rather than a FIN.
fn reset(stream: TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt reads a valid `linger` of the size given, on a
    // socket that `stream` keeps open for the call.
    let set = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(set, 0, "SO_LINGER: {}", io::Error::last_os_error());
    drop(stream);
}

/// Reads one answer off a keep-alive connection (its head, then
/// `Content-Length` bytes of body) and gives its status line.
fn read_answer(stream: &mut TcpStream) -> io::Result<String> {
    let mut received = Vec::new();
    let mut chunk = [0u8; 1024];
    let head_end = loop {
        if let Some(end) = received.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
        let read = stream.read(&mut chunk)?;
        if read == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        received.extend_from_slice(&chunk[..read]);
    };
    let head = String::from_utf8_lossy(&received[..head_end]).into_owned();
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, head.clone()))?;
    let mut body = received.len() - head_end;
    while body < length {
        let read = stream.read(&mut chunk)?;
        if read == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        body += read;
    }
    Ok(head.lines().next().unwrap_or("").to_owned())
}

/// Runs `part(thread)` on [`CLIENT_THREADS`] threads at once and sums what
/// they give.
fn on_client_threads<T: Send>(part: impl Fn(usize) -> T + Sync) -> Vec<T> {
    std::thread::scope(|scope| {
        let threads: Vec<_> = (0..CLIENT_THREADS)
            .map(|thread| {
                let part = &part;
                scope.spawn(move || part(thread))
            })
            .collect();
        threads
            .into_iter()
            .map(|t| t.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    })
}

/// One thread's share of a burst: `count` connections opened at once,
/// every other one sending a whole request (its answer read to the end,
/// the server closing) and the rest nothing before they are closed. How
/// many answers came, every one a 200.
fn burst_share(addr: SocketAddr, count: usize) -> usize {
    // A request goes out as soon as its connection is up, as a client's
    // does: one written only once the whole share had connected would wait
    // on the slowest connect, and a connection silent that long may be
    // closed by the header read timeout, rightly.
    let mut streams: Vec<TcpStream> = (0..count)
        .map(|i| {
            let mut stream = connect(addr);
            if i % 2 == 0 {
                stream.write_all(REQUEST_CLOSE).unwrap();
            }
            stream
        })
        .collect();
    let mut answered = 0;
    for stream in streams.iter_mut().step_by(2) {
        stream.set_read_timeout(Some(DEADLINE)).unwrap();
        let mut answer = Vec::new();
        stream
            .read_to_end(&mut answer)
            .unwrap_or_else(|e| panic!("a burst's request: {e}"));
        let answer = String::from_utf8_lossy(&answer);
        assert!(
            answer.starts_with("HTTP/1.1 200 OK\r\n") && answer.ends_with("\r\n\r\nok"),
            "a burst's request: {answer:?}"
        );
        answered += 1;
    }
    // The other half close without having said a word.
    drop(streams);
    answered
}

#[test]
fn ten_thousand_connections_in_bursts_leave_probes_answering_and_nothing_open() {
    let _serial = serial();
    let sizes = sizes();
    let flood = Flood::start(sizes.burst as u64 + 256);
    let prober = Prober::start(&flood);
    let mut answered = 0;
    for burst in 0..sizes.bursts {
        answered += on_client_threads(|_| burst_share(flood.addr(), sizes.burst / CLIENT_THREADS))
            .into_iter()
            .sum::<usize>();
        // Every connection of the burst is closed on the client's side:
        // the server closes its own before the next burst, which so never
        // meets the cap (at most the prober's connections besides). A
        // burst under the cap evicts nothing, so every request of it must
        // be answered.
        flood.wait_digested(DEADLINE, &format!("after burst {burst}"));
    }
    let share = sizes.burst / CLIENT_THREADS;
    let connections = sizes.bursts * share * CLIENT_THREADS;
    // Every other connection of a share sent a request, its first included.
    let requests = sizes.bursts * share.div_ceil(2) * CLIENT_THREADS;
    assert_eq!(answered, requests, "every request answered");
    flood.finish("bursts", connections, prober, DEADLINE);
}

/// One thread's share of the idle connections: each sends one request,
/// reads its answer and stays open, saying nothing more.
fn idle_share(addr: SocketAddr, count: usize) -> Vec<TcpStream> {
    (0..count)
        .map(|_| {
            let mut stream = connect(addr);
            stream.set_read_timeout(Some(DEADLINE)).unwrap();
            stream.write_all(REQUEST).unwrap();
            let status = read_answer(&mut stream)
                .unwrap_or_else(|e| panic!("an idle connection's request: {e}"));
            assert_eq!(status, "HTTP/1.1 200 OK");
            stream
        })
        .collect()
}

/// Whether the server has closed `stream`: it reads the end (perhaps after
/// hyper's 408), or a reset, rather than waiting.
fn closed_by_server(stream: &mut TcpStream) -> Result<(), String> {
    stream
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut rest = Vec::new();
    match stream.read_to_end(&mut rest) {
        Ok(_) if rest.is_empty() || rest.starts_with(b"HTTP/1.1 408 ") => Ok(()),
        Ok(_) => Err(format!("closed after {:?}", String::from_utf8_lossy(&rest))),
        Err(e) if e.kind() == io::ErrorKind::ConnectionReset => Ok(()),
        Err(e) => Err(format!("still open ({e})")),
    }
}

#[test]
fn two_thousand_idle_keep_alive_connections_are_closed_and_probes_keep_answering() {
    let _serial = serial();
    let sizes = sizes();
    let flood = Flood::start(sizes.idle as u64 + 256);
    let prober = Prober::start(&flood);
    let mut held: Vec<TcpStream> =
        on_client_threads(|_| idle_share(flood.addr(), sizes.idle / CLIENT_THREADS))
            .into_iter()
            .flatten()
            .collect();
    // The client holds every connection open; the server closes each of
    // them anyway: the oldest evicted at the cap as newer ones came, the
    // rest by the header read timeout, which also bounds the wait for a
    // keep-alive connection's next request. Probes go on meanwhile.
    flood.wait_digested(
        HEADER_READ_TIMEOUT + DEADLINE,
        "idle connections held by the client",
    );
    let still_open: Vec<String> = held
        .iter_mut()
        .enumerate()
        .filter_map(|(i, stream)| closed_by_server(stream).err().map(|e| format!("{i}: {e}")))
        .collect();
    assert!(
        still_open.is_empty(),
        "{} of {} idle connections not closed by the server: {:?}",
        still_open.len(),
        held.len(),
        &still_open[..still_open.len().min(10)]
    );
    let connections = held.len();
    flood.finish("idle keep-alive", connections, prober, DEADLINE);
    drop(held);
}

/// One thread's share of the storm: connect, then nothing, half a request
/// or a whole one, then a reset, `count` times.
fn reset_share(addr: SocketAddr, count: usize) {
    for i in 0..count {
        let mut stream = connect(addr);
        // A reset may come before the server has read anything: the write
        // is what a client sends, not what the server must see.
        match i % 3 {
            0 => {}
            1 => stream.write_all(PARTIAL_REQUEST).unwrap(),
            _ => stream.write_all(REQUEST).unwrap(),
        }
        reset(stream);
    }
}

#[test]
fn connect_and_reset_storms_leave_probes_answering_and_nothing_open() {
    let _serial = serial();
    let sizes = sizes();
    let flood = Flood::start(256);
    let prober = Prober::start(&flood);
    for storm in 0..sizes.storms {
        on_client_threads(|_| reset_share(flood.addr(), sizes.resets / CLIENT_THREADS));
        // Probes go on while the server takes in what the kernel queued.
        flood.wait_digested(DEADLINE, &format!("after storm {storm}"));
    }
    let connections = sizes.storms * (sizes.resets / CLIENT_THREADS) * CLIENT_THREADS;
    flood.finish("connect-and-reset", connections, prober, DEADLINE);
}

/// A burst that comes while the service cannot run: more connections than
/// std's listen backlog of 128 and than the probe server's cap, fewer than
/// its backlog.
const PAUSED_BURST: usize = 1000;
/// One connection of the paused burst in so many sends a request, the
/// others nothing: enough idle ones to fill the cap, and the kubelet's
/// probe, behind them all, waits for 250 answers rather than 500 (a debug
/// build on a loaded machine takes up to half a millisecond a connection).
const PAUSED_REQUEST_EVERY: usize = 4;
/// A connection the kernel queues completes at once; one whose SYN it
/// dropped on a full accept queue is tried again only after 1 s.
const QUEUED_CONNECT: Duration = Duration::from_millis(500);

/// The state letter of /proc/PID/stat: `T` once stopped by a signal.
fn process_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // After the command's name, in parentheses, which may hold spaces.
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .next()?
        .chars()
        .next()
}

#[test]
fn a_burst_that_comes_while_the_probe_server_cannot_run_is_queued_and_answered() {
    let _serial = serial();
    let somaxconn: usize = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .map(|text| text.trim().parse().unwrap())
        .unwrap_or(4096);
    assert!(
        somaxconn >= LISTEN_BACKLOG,
        "net.core.somaxconn is {somaxconn}: the kernel caps every listen backlog there, \
         below the probe server's {LISTEN_BACKLOG}"
    );
    let flood = Flood::start(PAUSED_BURST as u64 + 256);
    let (pid, addr) = (flood.pid(), flood.addr());
    // The whole service stopped, as a probe thread that gets no CPU for a
    // moment on a loaded node: only the kernel takes the connections, and
    // queues them for the accept loop, up to the listen backlog.
    flood.service.signal(libc::SIGSTOP);
    wait_until(
        DEADLINE,
        || format!("the service did not stop: {:?}", process_state(pid)),
        || (process_state(pid) == Some('T')).then_some(()),
    );
    let paused = Instant::now();
    let mut streams: Vec<TcpStream> = (0..PAUSED_BURST)
        .map(|i| {
            let mut stream =
                TcpStream::connect_timeout(&addr, QUEUED_CONNECT).unwrap_or_else(|e| {
                    flood.service.signal(libc::SIGCONT);
                    panic!(
                        "connection {i} of the burst was not queued ({e}): the accept queue \
                         holds {}",
                        accept_queue(addr)
                    )
                });
            if i % PAUSED_REQUEST_EVERY == 0 {
                stream.write_all(REQUEST_CLOSE).unwrap();
            }
            stream
        })
        .collect();
    // The kubelet's probe comes behind the burst; the service runs again
    // once the probe is queued, and the probe's one second counts from its
    // connection.
    let queued =
        std::thread::spawn(move || http_probe(addr, Endpoint::Livez.path(), DEFAULT_TIMEOUT));
    wait_until(
        DEADLINE,
        || format!("the probe never queued: {} queued", accept_queue(addr)),
        || (accept_queue(addr) > PAUSED_BURST || queued.is_finished()).then_some(()),
    );
    flood.service.signal(libc::SIGCONT);
    let mut prober = Prober::start(&flood);
    prober.started = paused;
    let queued = queued.join().unwrap();
    assert!(
        queued.passed() && queued.elapsed < DEFAULT_TIMEOUT,
        "the probe behind the burst: {queued}"
    );
    prober.more.push(queued);
    // Every request among them is answered: at the cap, the server evicts
    // idle connections, never one it has not read yet.
    let unanswered: Vec<String> = streams
        .iter_mut()
        .step_by(PAUSED_REQUEST_EVERY)
        .filter_map(|stream| {
            stream.set_read_timeout(Some(DEADLINE)).unwrap();
            let mut answer = Vec::new();
            match stream.read_to_end(&mut answer) {
                Ok(_) if answer.starts_with(b"HTTP/1.1 200 OK\r\n") => None,
                Ok(_) => Some(format!("{:?}", String::from_utf8_lossy(&answer))),
                Err(e) => Some(e.to_string()),
            }
        })
        .collect();
    assert!(
        unanswered.is_empty(),
        "{} of the {} queued requests were not answered (closed before they were read): {:?}",
        unanswered.len(),
        PAUSED_BURST.div_ceil(PAUSED_REQUEST_EVERY),
        &unanswered[..unanswered.len().min(5)]
    );
    drop(streams);
    flood.finish("paused burst", PAUSED_BURST, prober, DEADLINE);
}

/// The descriptors the service may open beyond those it holds at rest in
/// the out-of-descriptors case: a few dozen held connections take them
/// all.
const SPARE_FDS: usize = 24;
/// The pause of the probe server's accept loop after an error that is not
/// the connection's own (`ACCEPT_PAUSE` in probe/server/listener.rs).
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);
/// The probe server's line for such an error; users grep it.
const ACCEPT_FAILED: &str = "probe server accept failed";

/// Sets this process's soft limit on open files, which a process it spawns
/// inherits; returns the previous one.
fn set_open_file_soft_limit(soft: u64) -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit write to and read from a valid rlimit.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        let previous = limit.rlim_cur;
        limit.rlim_cur = soft;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
        previous
    }
}

/// Out of descriptors, `accept` fails with EMFILE: the probe server logs
/// it and pauses rather than spinning (at most one line per pause), and
/// answers probes again once the connections it holds are closed (an idle
/// one after the header read timeout).
#[test]
fn out_of_descriptors_the_accept_loop_pauses_and_then_answers_again() {
    let _serial = serial();
    // At rest the testbed holds a few dozen descriptors; measured first,
    // then a second testbed starts under a limit just above that.
    let rest = {
        let service = fixture(TESTBED).start().unwrap();
        service.wait_passing(Endpoint::Readyz, DEADLINE).unwrap();
        service.assert_passing(Endpoint::Livez);
        open_fds(service.pid())
    };
    let limit = (rest + SPARE_FDS) as u64;
    let previous = set_open_file_soft_limit(limit);
    let started = fixture(TESTBED).start();
    set_open_file_soft_limit(previous);
    let service = started.unwrap();
    service.wait_passing(Endpoint::Readyz, DEADLINE).unwrap();
    let addr = service.probe_addr();

    // More connections than descriptors are free, none sending a byte:
    // the kernel queues them all, the server takes what it can and then
    // meets EMFILE until its header read timeout closes those it took.
    let flooded = Instant::now();
    let held: Vec<TcpStream> = (0..2 * SPARE_FDS)
        .map(|_| TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT).unwrap())
        .collect();
    service.wait_for_log(ACCEPT_FAILED, DEADLINE).unwrap();
    wait_until(
        DEADLINE + HEADER_READ_TIMEOUT,
        || format!("no probe passed after EMFILE: {:#?}", service.log()),
        || {
            http_probe(addr, Endpoint::Livez.path(), DEFAULT_TIMEOUT)
                .passed()
                .then_some(())
        },
    );
    let recovered = flooded.elapsed();
    // The lines logged so far, each of them before `logged`: the server
    // may still meet EMFILE on the connections it has yet to take.
    let log = service.log();
    let logged = flooded.elapsed();
    drop(held);

    let failures: Vec<&String> = log
        .iter()
        .filter(|line| line.contains(ACCEPT_FAILED))
        .collect();
    assert!(
        failures
            .iter()
            .all(|line| line.contains("Too many open files")),
        "{failures:#?}"
    );
    eprintln!(
        "reliability: floods out of descriptors: limit={limit} accept_failures={} \
         recovered_ms={} logged_ms={}",
        failures.len(),
        recovered.as_millis(),
        logged.as_millis()
    );
    // One line per pause at the most: a loop that retried at once (or
    // every 10 ms) would log ten times as many.
    let most = (logged.as_millis() / ACCEPT_PAUSE.as_millis()) as usize + 2;
    assert!(
        failures.len() <= most,
        "{} accept failures logged in {logged:?}, at most {most} wanted (one per {ACCEPT_PAUSE:?})",
        failures.len()
    );
    service.wait_passing(Endpoint::Readyz, DEADLINE).unwrap();
}
