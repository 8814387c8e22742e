//! The crate's checks, run in-process as a unit test would: no service, no
//! probe server, only what the registered checks say.

use lifecycle_testing::{run_checks, CheckKind};

// Linked for its registrations: a test that names nothing else of the
// crate still gets its checks.
use library_checks as _;

#[tokio::test]
async fn the_library_worker_check_reports_its_connection() {
    let results = run_checks(CheckKind::Liveness).await;
    let names: Vec<&str> = results.iter().map(|r| r.name()).collect();
    assert_eq!(names, ["library_worker"]);
    let worker = &results[0];
    assert!(worker.critical());
    assert!(worker.health().is_up(), "{worker:?}");
    // No service started, so its on_startup hook has not connected.
    let details = worker.health().details();
    assert_eq!(details.len(), 1, "{details:?}");
    assert_eq!(details[0].0, "connected");
    assert_eq!(details[0].1.as_bool(), Some(false));
}

#[tokio::test]
async fn the_crate_registers_no_readiness_check() {
    assert!(run_checks(CheckKind::Readiness).await.is_empty());
}
