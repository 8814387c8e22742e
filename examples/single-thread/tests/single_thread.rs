//! A `current_thread` service runs its checks on its own thread, its
//! probe server answers, and it stops cleanly.

use std::time::Duration;

use lifecycle_testing::probe::DEFAULT_TIMEOUT;
use lifecycle_testing::{Endpoint, Service};

const SINGLE_THREAD: &str = env!("CARGO_BIN_EXE_single-thread");
const DEADLINE: Duration = Duration::from_secs(10);

#[test]
fn a_current_thread_service_runs_its_checks_on_its_own_thread() {
    let mut service = Service::builder(SINGLE_THREAD).spawn().unwrap();
    service.wait_passing(Endpoint::Readyz, DEADLINE).unwrap();
    let ready = service.probe_path("/readyz?verbose", DEFAULT_TIMEOUT);
    assert_eq!(ready.status, Some(200), "{ready}");
    assert_eq!(
        ready.body,
        "[+]lifecycle ok\n[+]ticking ok\nreadyz check passed\n"
    );
    assert_eq!(service.probe(Endpoint::Livez).status, Some(200));

    // Its `main` returns on the stop: a clean exit at once, not the
    // shutdown timeout's exit 1 (or the kill at the end of the grace). The
    // kit's graceful stop is a signal: Unix only. On Windows it can only
    // kill the service.
    #[cfg(unix)]
    {
        let stopped = service.stop(lifecycle_testing::Stop::grace(DEADLINE));
        assert_eq!(stopped.exit.code, Some(0), "{stopped:?}");
        assert!(
            stopped.signal_to_exit < Duration::from_secs(2),
            "{stopped:?}"
        );
    }
    #[cfg(not(unix))]
    service.kill().unwrap();
}
