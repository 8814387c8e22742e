//! Under `panic = "log"` a panicking task is logged and the service keeps
//! serving.

// Waits for the service's stdout with the Linux harness (lifecycle-tests).
#![cfg(target_os = "linux")]

use std::time::Duration;

use lifecycle_testing::{Endpoint, Service, Stop};
use lifecycle_tests::ServiceExt;

const PANIC_LOG: &str = env!("CARGO_BIN_EXE_panic-log");
const DEADLINE: Duration = Duration::from_secs(15);

#[test]
fn under_panic_log_a_panicking_task_is_logged_and_the_service_keeps_serving() {
    let mut service = Service::builder(PANIC_LOG)
        .env("RUST_LOG", "info")
        .start()
        .unwrap();
    service.wait_for_stdout("task panic observed", DEADLINE);
    assert!(service
        .wait_for_log("panicked at examples/panic-log/src/main.rs:", DEADLINE)
        .unwrap()
        .contains("task exploded under panic = log"));
    assert!(service.is_running());
    assert_eq!(service.probe(Endpoint::Livez).status, Some(200));
    assert_eq!(service.probe(Endpoint::Readyz).status, Some(200));
    let stopped = service.stop(Stop::grace(DEADLINE));
    assert_eq!(stopped.exit.code, Some(0), "{stopped:?}");
    assert!(!stopped.killed);
}
