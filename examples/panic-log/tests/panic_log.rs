//! Under `panic = "log"` a panicking task is logged and the service keeps
//! serving.

use std::time::Duration;

use lifecycle_tests::Service;

const PANIC_LOG: &str = env!("CARGO_BIN_EXE_panic-log");
const DEADLINE: Duration = Duration::from_secs(15);

#[test]
fn under_panic_log_a_panicking_task_is_logged_and_the_service_keeps_serving() {
    let mut service = Service::start(PANIC_LOG, &[]);
    service.wait_for_stdout("task panic observed", DEADLINE);
    assert!(service
        .wait_for_log("panicked at examples/panic-log/src/main.rs:", DEADLINE)
        .unwrap()
        .contains("task exploded under panic = log"));
    assert!(service.is_running());
    assert_eq!(service.get("/livez").status, 200);
    assert_eq!(service.get("/readyz").status, 200);
    service.signal(libc::SIGTERM);
    assert_eq!(service.wait_exit(DEADLINE).code(), Some(0));
}
