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
