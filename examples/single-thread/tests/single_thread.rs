//! A `current_thread` service runs its checks on its own thread, and its
//! probe server answers.

use std::time::Duration;

use lifecycle_testing::{Endpoint, Service, DEFAULT_TIMEOUT};

const SINGLE_THREAD: &str = env!("CARGO_BIN_EXE_single-thread");
const DEADLINE: Duration = Duration::from_secs(10);

#[test]
fn a_current_thread_service_runs_its_checks_on_its_own_thread() {
    let service = Service::builder(SINGLE_THREAD).spawn().unwrap();
    service.wait_for(Endpoint::Readyz, true, DEADLINE).unwrap();
    let ready = service.probe_path("/readyz?verbose", DEFAULT_TIMEOUT);
    assert_eq!(ready.status, Some(200), "{ready}");
    assert_eq!(
        ready.body,
        "[+]lifecycle ok\n[+]ticking ok\nreadyz check passed\n"
    );
    assert_eq!(service.probe(Endpoint::Livez).status, Some(200));
}
