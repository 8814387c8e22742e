//! Probe answers bounded by the checks' timeouts, whatever the checks do.
//! Timing-sensitive, so its own test binary, with its tests run one at a
//! time (cargo runs test binaries one after another).

use std::sync::Mutex;
use std::time::Duration;

use lifecycle_testing::probe::ProbeAnswer;
use lifecycle_testing::{Endpoint, Service, Stop};
use lifecycle_tests::{
    fixture, http_get, raise_open_file_limit, wait_accepted, ServiceExt, CLIENT_TIMEOUT,
};

const TESTBED: &str = env!("CARGO_BIN_EXE_testbed");
/// Blocks its current_thread runtime's only thread after 300 ms.
const SINGLE_THREAD_BLOCK: &str = env!("CARGO_BIN_EXE_single-thread-block");
const DEADLINE: Duration = Duration::from_secs(10);
/// The documented bound is the largest timeout + 50 ms; this margin keeps
/// the assertion true on a loaded 2-core machine running a debug build.
const MARGIN: Duration = Duration::from_millis(250);

static SERIAL: Mutex<()> = Mutex::new(());

/// Asserts that `answer` came within `bound` plus the margin.
fn assert_answered_within(answer: &ProbeAnswer, bound: Duration) {
    assert!(
        answer.elapsed < bound + MARGIN,
        "took {:?}, bound {bound:?} + margin {MARGIN:?}: {answer}",
        answer.elapsed
    );
}

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[test]
fn a_hanging_check_fails_readyz_within_its_timeout() {
    let _serial = serial();
    let service = fixture(TESTBED).env("TESTBED_HANG", "1").start().unwrap();
    for _ in 0..5 {
        let ready = service.probe(Endpoint::Readyz);
        assert_eq!(ready.status, Some(503), "{ready}");
        assert_eq!(ready.body, "[-]hang failed: timed out after 200 ms\n");
        assert!(
            ready.elapsed >= Duration::from_millis(200),
            "answered before the timeout: {:?}",
            ready.elapsed
        );
        assert_answered_within(&ready, Duration::from_millis(200 + 50));
    }
    assert!(service.is_running());
    assert_eq!(service.probe(Endpoint::Livez).status, Some(200));
}

#[test]
fn a_blocking_check_fails_readyz_within_its_timeout() {
    let _serial = serial();
    let service = fixture(TESTBED).env("TESTBED_BLOCK", "1").start().unwrap();
    let ready = service.get("/readyz?verbose");
    assert_eq!(ready.status, Some(503), "{ready}");
    assert!(
        ready
            .body
            .contains("[-]blocking-io failed: timed out after 300 ms\n"),
        "{}",
        ready.body
    );
    assert_answered_within(&ready, Duration::from_millis(300 + 50));

    // The first call is still blocked: no second thread is started beside
    // it, and the answer says why.
    let threads = || {
        let status = std::fs::read_to_string(format!("/proc/{}/status", service.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("Threads:"))
            .unwrap()
            .trim()
            .parse::<u32>()
            .unwrap()
    };
    let before = threads();
    for _ in 0..20 {
        let one = service.get("/readyz/blocking-io");
        assert_eq!(one.status, Some(503), "{one}");
        assert!(
            one.body
                .starts_with("[-]blocking-io failed: the previous run has not returned after "),
            "{}",
            one.body
        );
    }
    assert!(
        threads() <= before + 1,
        "threads grew from {before} to {}",
        threads()
    );
    assert!(service.is_running());
}

#[test]
fn a_panicking_check_is_that_checks_failure_and_the_process_lives_on() {
    let _serial = serial();
    let service = fixture(TESTBED).env("TESTBED_PANIC", "1").start().unwrap();
    for _ in 0..3 {
        let ready = service.probe(Endpoint::Readyz);
        assert_eq!(ready.status, Some(503), "{ready}");
        assert_eq!(
            ready.body,
            "[-]boom failed: panicked: boom: the check exploded\n"
        );
    }
    assert!(service.is_running());
    assert_eq!(service.probe(Endpoint::Livez).status, Some(200));
    assert_eq!(service.get("/readyz/toggle").status, Some(200));
}

#[test]
fn sigterm_drains_then_stops_in_order_and_exits_0() {
    let _serial = serial();
    let mut service = fixture(TESTBED)
        .env("LIFECYCLE_DRAIN_DELAY_MS", "300")
        .spawn()
        .unwrap();
    service.wait_passing(Endpoint::Readyz, DEADLINE).unwrap();
    let app = service.app_url();
    service.command("set tracked-work");
    service.wait_for_stdout("tracked task started", DEADLINE);

    // A request in flight when SIGTERM arrives.
    let slow_url = format!("{app}/slow?ms=800");
    let in_flight = std::thread::spawn(move || http_get(&slow_url));
    service.wait_for_stdout("slow request started", DEADLINE);

    let signalled = std::time::Instant::now();
    service.signal(libc::SIGTERM);
    let ready = loop {
        let ready = service.probe(Endpoint::Readyz);
        if ready.status == Some(503) || signalled.elapsed() > Duration::from_secs(1) {
            break ready;
        }
    };
    let out_of_rotation = signalled.elapsed();
    assert_eq!(ready.status, Some(503), "{ready}");
    assert!(
        out_of_rotation < Duration::from_millis(50) + MARGIN,
        "/readyz failed {out_of_rotation:?} after SIGTERM"
    );
    assert_eq!(ready.body, "[-]lifecycle failed: shutting down\n");
    // Still serving during the drain delay, and still alive.
    assert_eq!(
        http_get(&format!("{app}/phase")).unwrap(),
        (200, "Draining".into())
    );
    assert_eq!(service.probe(Endpoint::Livez).status, Some(200));
    assert!(
        signalled.elapsed() < Duration::from_millis(300),
        "the checks above ran inside the drain delay"
    );

    assert_eq!(
        in_flight.join().unwrap().unwrap(),
        (200, "slow done".into())
    );
    assert_eq!(service.wait_exit(DEADLINE).unwrap().code, Some(0));
    assert_eq!(
        service.termination_message(),
        None,
        "no termination message on exit 0"
    );

    let lines = service.stdout();
    let at = |line: &str| {
        lines
            .iter()
            .position(|l| l == line)
            .unwrap_or_else(|| panic!("no line {line:?} in {lines:#?}"))
    };
    // main returns, tracked tasks end, then the hooks by ascending order.
    assert!(at("main returning") < at("hook stop_intake start"));
    assert!(at("tracked task finished") < at("hook stop_intake start"));
    assert!(at("hook stop_intake end") < at("hook close-a start"));
    // Equal orders overlap: both started before either ended.
    let first_end = at("hook close-a end").min(at("hook close-b end"));
    assert!(at("hook close-a start") < first_end && at("hook close-b start") < first_end);
    assert!(at("hook close-a end").max(at("hook close-b end")) < at("hook last start"));
}

#[test]
fn a_hook_past_the_shutdown_deadline_exits_1_naming_it() {
    let _serial = serial();
    let mut service = fixture(TESTBED)
        .env("TESTBED_HOOK_SLOW_MS", "60000")
        .env("LIFECYCLE_SHUTDOWN_TIMEOUT_MS", "1000")
        .spawn()
        .unwrap();
    service.wait_for_stdout("main running", DEADLINE);
    // A grace period well past the deadline: the service ends by itself.
    let stopped = service.stop(Stop::grace(DEADLINE));
    let took = stopped.signal_to_exit;
    assert_eq!(stopped.exit.code, Some(1), "{stopped:?}");
    assert!(!stopped.killed);
    assert!(
        took >= Duration::from_millis(1000),
        "exited early: {took:?}"
    );
    assert!(
        took < Duration::from_millis(2000),
        "deadline + 1 s passed: {took:?}"
    );
    let message = stopped.termination_message.unwrap();
    assert!(
        message.starts_with("shutdown did not finish within 1000 ms of SIGTERM; still running: on_shutdown hook \"slow-flush\""),
        "{message}"
    );
}

/// Probes `path` every 20 ms until `done` says so or `deadline` passes,
/// asserting that every answer came in under `max_latency`.
fn probe_until(
    service: &Service,
    path: &str,
    max_latency: Duration,
    deadline: Duration,
    done: impl Fn(&ProbeAnswer) -> bool,
) -> (ProbeAnswer, Duration) {
    let started = std::time::Instant::now();
    loop {
        // The client's own timeout, not the kubelet's: the latency is
        // what is measured.
        let answer = service.probe_path(path, CLIENT_TIMEOUT);
        assert!(
            answer.elapsed < max_latency,
            "{path} took {:?} to answer: {answer}",
            answer.elapsed
        );
        if done(&answer) {
            return (answer, started.elapsed());
        }
        assert!(
            started.elapsed() < deadline,
            "{path} did not change within {deadline:?}: {}",
            answer.body
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The bound for a probe during a stall; the margin covers a
/// debug build on a loaded machine.
const PROBE_LATENCY: Duration = Duration::from_millis(100);

#[test]
fn every_worker_blocked_fails_the_runtime_check_and_probes_still_answer() {
    let _serial = serial();
    let mut service = fixture(TESTBED)
        .env("LIFECYCLE_STALL_THRESHOLD_MS", "1000")
        .spawn()
        .unwrap();
    service.wait_passing(Endpoint::Readyz, DEADLINE).unwrap();
    service.command("set block-workers");
    let blocked = std::time::Instant::now();
    let (live, _) = probe_until(
        &service,
        "/livez?verbose",
        PROBE_LATENCY,
        Duration::from_secs(5),
        |answer| answer.status == Some(503),
    );
    let detected = blocked.elapsed();
    assert!(
        detected < Duration::from_millis(1000 + 1000),
        "stall seen after {detected:?}"
    );
    assert!(
        live.body.contains("[-]runtime failed: no progress for "),
        "{}",
        live.body
    );
    // Readiness runs async checks on the stalled runtime: they time out
    // (after 3 s, past the kubelet's default timeout).
    let ready = service.probe_path("/readyz", CLIENT_TIMEOUT);
    assert_eq!(ready.status, Some(503), "{ready}");
    assert_answered_within(&ready, Duration::from_millis(3000 + 50));
    // The background check's runner is stalled too: its last result goes
    // stale after interval 200 + timeout 500 + 1000 ms.
    let (background, _) = probe_until(
        &service,
        "/readyz/background",
        PROBE_LATENCY,
        Duration::from_secs(5),
        |answer| answer.status == Some(503),
    );
    assert!(
        background
            .body
            .starts_with("[-]background failed: stale: the last result is "),
        "{}",
        background.body
    );
    assert!(service.is_running());
}

#[test]
fn a_blocked_current_thread_runtime_fails_the_runtime_check() {
    let _serial = serial();
    let service = fixture(SINGLE_THREAD_BLOCK)
        .env("LIFECYCLE_STALL_THRESHOLD_MS", "1000")
        .spawn()
        .unwrap();
    service.wait_for_stdout("blocking the runtime thread", DEADLINE);
    let blocked = std::time::Instant::now();
    let (live, _) = probe_until(
        &service,
        "/livez?verbose",
        PROBE_LATENCY,
        Duration::from_secs(5),
        |answer| answer.status == Some(503),
    );
    assert!(blocked.elapsed() < Duration::from_millis(1000 + 1000));
    assert!(
        live.body.contains("[-]runtime failed: no progress for "),
        "{}",
        live.body
    );
}

#[test]
fn a_busy_but_progressing_runtime_stays_live() {
    let _serial = serial();
    let mut service = fixture(TESTBED)
        .env("LIFECYCLE_STALL_THRESHOLD_MS", "1000")
        .spawn()
        .unwrap();
    service.wait_passing(Endpoint::Readyz, DEADLINE).unwrap();
    service.command("set busy-cpu");
    service.wait_for_stdout("busy-cpu started", DEADLINE);
    let started = std::time::Instant::now();
    while started.elapsed() < Duration::from_millis(2500) {
        let live = service.get("/livez/runtime");
        assert_eq!(live.status, Some(200), "{live}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_hundred_concurrent_probes_share_one_run() {
    let _serial = serial();
    let service = fixture(TESTBED)
        .env("TESTBED_SLOW_CHECK_MS", "1500")
        .start()
        .unwrap();
    service.wait_for_stdout("main running", DEADLINE);
    let runs = || service.coalesced_runs();
    let before = runs();
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(100));
    let threads: Vec<_> = (0..100)
        .map(|_| {
            let addr = service.probe_addr();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                // The check takes 1.5 s, within its own 3 s timeout.
                lifecycle_testing::probe::http_probe(addr, "/readyz/coalesced", CLIENT_TIMEOUT)
            })
        })
        .collect();
    for thread in threads {
        let answer = thread.join().unwrap();
        assert_eq!(answer.status, Some(200), "{answer}");
    }
    assert_eq!(runs() - before, 1, "100 concurrent probes, one run");
}

#[test]
fn a_background_result_change_shows_within_one_interval() {
    let _serial = serial();
    let mut service = fixture(TESTBED).spawn().unwrap();
    service.wait_for_status("/readyz/background", 200, DEADLINE);
    service.command("set background-down");
    let (answer, took) = probe_until(
        &service,
        "/readyz/background",
        Duration::from_secs(1),
        Duration::from_secs(5),
        |answer| answer.status == Some(503),
    );
    assert_eq!(answer.body, "[-]background failed: background flag down\n");
    // One 200 ms interval, plus the margin.
    assert!(took < Duration::from_millis(200) + MARGIN, "took {took:?}");
    service.command("clear background-down");
    service.wait_for_status("/readyz/background", 200, Duration::from_secs(1));
}

#[test]
fn a_thousand_slow_connections_do_not_delay_probes() {
    use std::io::{Read, Write};
    let _serial = serial();
    raise_open_file_limit(1100);
    let service = fixture(TESTBED).spawn().unwrap();
    service.wait_passing(Endpoint::Readyz, DEADLINE).unwrap();
    let rss_before = service.rss_kib();

    // Each sends half a request and then nothing.
    let held: Vec<std::net::TcpStream> = (0..1000)
        .map(|_| {
            let mut stream = std::net::TcpStream::connect(service.probe_addr()).unwrap();
            stream
                .write_all(b"GET /livez HTTP/1.1\r\nHost: probe\r\nX-Slow: ")
                .unwrap();
            stream
        })
        .collect();
    // What the held connections do to probes, once the server has them:
    // the connect burst itself waits in the listen backlog until accepted,
    // and a probe sent meanwhile waits behind it.
    wait_accepted(service.probe_addr(), DEADLINE);
    let opened = std::time::Instant::now();
    for _ in 0..20 {
        let live = service.probe(Endpoint::Livez);
        assert_eq!(live.status, Some(200), "{live}");
        assert!(
            live.elapsed < PROBE_LATENCY,
            "probe took {:?}",
            live.elapsed
        );
    }
    let rss_during = service.rss_kib();
    assert!(
        rss_during < rss_before + 64 * 1024,
        "RSS grew from {rss_before} KiB to {rss_during} KiB"
    );

    // Every held connection is closed by the server: evicted to make room,
    // or by the 2 s header timeout.
    for mut stream in held {
        let left = (opened + Duration::from_secs(2) + Duration::from_secs(3))
            .saturating_duration_since(std::time::Instant::now());
        stream
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .unwrap();
        let mut buffer = [0u8; 256];
        match stream.read(&mut buffer) {
            // 0: closed; otherwise hyper's 408 before closing.
            Ok(n) => assert!(n == 0 || buffer.starts_with(b"HTTP/1.1 408"), "{n} bytes"),
            Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
        }
    }
    assert_eq!(service.probe(Endpoint::Livez).status, Some(200));
}

#[test]
fn connections_busy_on_a_slow_check_do_not_lock_out_new_probes() {
    use std::io::Write;
    let _serial = serial();
    raise_open_file_limit(1100);
    let service = fixture(TESTBED)
        .env("TESTBED_SLOW_CHECK_MS", "2500")
        .spawn()
        .unwrap();
    service.wait_passing(Endpoint::Livez, DEADLINE).unwrap();
    service.wait_for_stdout("main running", DEADLINE);
    // More than the cap of 512, each waiting on the same slow check.
    let busy: Vec<std::net::TcpStream> = (0..600)
        .map(|_| {
            let mut stream = std::net::TcpStream::connect(service.probe_addr()).unwrap();
            stream
                .write_all(b"GET /readyz/coalesced HTTP/1.1\r\nHost: probe\r\n\r\n")
                .unwrap();
            stream
        })
        .collect();
    // Once the server has them all (see above).
    wait_accepted(service.probe_addr(), DEADLINE);
    for _ in 0..10 {
        let live = service.probe(Endpoint::Livez);
        assert_eq!(live.status, Some(200), "{live}");
        assert!(
            live.elapsed < PROBE_LATENCY,
            "probe took {:?}",
            live.elapsed
        );
    }
    drop(busy);
}
