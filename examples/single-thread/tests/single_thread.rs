//! A `current_thread` service runs its checks on its own thread, and its
//! probe server answers.

use std::time::Duration;

use lifecycle_tests::Service;

const SINGLE_THREAD: &str = env!("CARGO_BIN_EXE_single-thread");
const DEADLINE: Duration = Duration::from_secs(10);

#[test]
fn a_current_thread_service_runs_its_checks_on_its_own_thread() {
    let service = Service::start(SINGLE_THREAD, &[]);
    let ready = service.wait_for_status("/readyz?verbose", 200, DEADLINE);
    assert_eq!(
        ready.body,
        "[+]lifecycle ok\n[+]ticking ok\nreadyz check passed\n"
    );
    assert_eq!(service.get("/livez").status, 200);
}
