//! Probe answers bounded by the checks' timeouts, whatever the checks do.
//! Timing-sensitive, so its own test binary, with its tests run one at a
//! time (cargo runs test binaries one after another).

mod support;

use std::sync::Mutex;
use std::time::Duration;

use support::Service;

const DEADLINE: Duration = Duration::from_secs(10);
/// The contract's bound is the largest timeout + 50 ms; this margin keeps
/// the assertion true on a loaded 2-core machine running a debug build.
const MARGIN: Duration = Duration::from_millis(250);

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[test]
fn a_hanging_check_fails_readyz_within_its_timeout() {
    let _serial = serial();
    let mut service = Service::start("testbed", &[("TESTBED_HANG", "1")]);
    service.wait_for_status("/startupz", 200, DEADLINE);
    for _ in 0..5 {
        let ready = service.get("/readyz");
        assert_eq!(ready.status, 503);
        assert_eq!(ready.body, "[-]hang failed: timed out after 200 ms\n");
        assert!(
            ready.elapsed >= Duration::from_millis(200),
            "answered before the timeout: {:?}",
            ready.elapsed
        );
        assert!(
            ready.elapsed < Duration::from_millis(200 + 50) + MARGIN,
            "took {:?}",
            ready.elapsed
        );
    }
    assert!(service.is_running());
    assert_eq!(service.get("/livez").status, 200);
}

#[test]
fn a_blocking_check_fails_readyz_within_its_timeout() {
    let _serial = serial();
    let mut service = Service::start("testbed", &[("TESTBED_BLOCK", "1")]);
    service.wait_for_status("/startupz", 200, DEADLINE);
    let ready = service.get("/readyz?verbose");
    assert_eq!(ready.status, 503);
    assert!(
        ready
            .body
            .contains("[-]blocking-io failed: timed out after 300 ms\n"),
        "{}",
        ready.body
    );
    assert!(
        ready.elapsed < Duration::from_millis(300 + 50) + MARGIN,
        "took {:?}",
        ready.elapsed
    );
    assert!(service.is_running());
}

#[test]
fn a_panicking_check_is_that_checks_failure_and_the_process_lives_on() {
    let _serial = serial();
    let mut service = Service::start("testbed", &[("TESTBED_PANIC", "1")]);
    service.wait_for_status("/startupz", 200, DEADLINE);
    for _ in 0..3 {
        let ready = service.get("/readyz");
        assert_eq!(ready.status, 503);
        assert_eq!(
            ready.body,
            "[-]boom failed: panicked: boom: the check exploded\n"
        );
    }
    assert!(service.is_running());
    assert_eq!(service.get("/livez").status, 200);
    assert_eq!(service.get("/readyz/toggle").status, 200);
}

/// Sends a GET to the application (not the probes) at `url`.
fn app_get(url: &str) -> reqwest::Result<(u16, String)> {
    let response = reqwest::blocking::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()?
        .get(url)
        .send()?;
    Ok((response.status().as_u16(), response.text()?))
}

#[test]
fn sigterm_drains_then_stops_in_order_and_exits_0() {
    let _serial = serial();
    let log = support::termination_log_path();
    let mut service = Service::start(
        "testbed",
        &[
            ("LIFECYCLE_DRAIN_DELAY_MS", "300"),
            ("LIFECYCLE_TERMINATION_LOG", log.to_str().unwrap()),
        ],
    );
    service.wait_for_status("/readyz", 200, DEADLINE);
    let app = service
        .stdout_lines()
        .iter()
        .find_map(|l| l.strip_prefix("app listening on ").map(str::to_owned))
        .expect("the application's address");
    service.command("set tracked-work");
    service.wait_for_stdout("tracked task started", DEADLINE);

    // A request in flight when SIGTERM arrives.
    let slow_url = format!("{app}/slow?ms=800");
    let in_flight = std::thread::spawn(move || app_get(&slow_url));
    service.wait_for_stdout("slow request started", DEADLINE);

    let signalled = std::time::Instant::now();
    service.signal(libc::SIGTERM);
    let ready = loop {
        let ready = service.get("/readyz");
        if ready.status == 503 || signalled.elapsed() > Duration::from_secs(1) {
            break ready;
        }
    };
    let out_of_rotation = signalled.elapsed();
    assert_eq!(ready.status, 503);
    assert!(
        out_of_rotation < Duration::from_millis(50) + MARGIN,
        "/readyz failed {out_of_rotation:?} after SIGTERM"
    );
    assert_eq!(ready.body, "[-]lifecycle failed: shutting down\n");
    // Still serving during the drain delay, and still alive.
    assert_eq!(
        app_get(&format!("{app}/phase")).unwrap(),
        (200, "Draining".into())
    );
    assert_eq!(service.get("/livez").status, 200);
    assert!(
        signalled.elapsed() < Duration::from_millis(300),
        "the checks above ran inside the drain delay"
    );

    assert_eq!(
        in_flight.join().unwrap().unwrap(),
        (200, "slow done".into())
    );
    assert_eq!(service.wait_exit(DEADLINE).code(), Some(0));
    assert!(!log.exists(), "no termination message on exit 0");

    let lines = service.stdout_lines();
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
    let log = support::termination_log_path();
    let mut service = Service::start(
        "testbed",
        &[
            ("TESTBED_HOOK_SLOW_MS", "60000"),
            ("LIFECYCLE_SHUTDOWN_TIMEOUT_MS", "1000"),
            ("LIFECYCLE_TERMINATION_LOG", log.to_str().unwrap()),
        ],
    );
    service.wait_for_stdout("main running", DEADLINE);
    let signalled = std::time::Instant::now();
    service.signal(libc::SIGTERM);
    let status = service.wait_exit(DEADLINE);
    let took = signalled.elapsed();
    assert_eq!(status.code(), Some(1));
    assert!(
        took >= Duration::from_millis(1000),
        "exited early: {took:?}"
    );
    assert!(
        took < Duration::from_millis(2000),
        "deadline + 1 s passed: {took:?}"
    );
    let message = std::fs::read_to_string(&log).unwrap();
    assert!(
        message.starts_with("shutdown did not finish within 1000 ms of SIGTERM; still running: on_shutdown hook \"slow-flush\""),
        "{message}"
    );
}
