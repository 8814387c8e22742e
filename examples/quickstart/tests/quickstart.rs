//! The quick-start example serves its application and its probes.

use std::time::Duration;

use lifecycle_tests::{http_get, Service};

const QUICKSTART: &str = env!("CARGO_BIN_EXE_quickstart");

#[test]
fn quickstart_serves_the_application_and_the_probes() {
    let mut service = Service::start(
        QUICKSTART,
        &[
            ("LIFECYCLE_PROBE_ADDR", "127.0.0.1:0"),
            ("APP_ADDR", "127.0.0.1:0"),
            ("GREETING", "hi there"),
        ],
    );
    let line = service
        .wait_for_log("serving on http://", Duration::from_secs(10))
        .expect("the application logs its address");
    let app = &line[line.find("http://").unwrap()..];
    let answer = http_get(app.trim()).unwrap();
    assert_eq!(answer, (200, "hi there\n".to_string()));

    let ready = service.wait_for_status("/readyz?verbose", 200, Duration::from_secs(10));
    assert!(
        ready.body.contains("[+]accepting_connections ok\n"),
        "{}",
        ready.body
    );
    let live = service.get("/livez/serving?verbose");
    assert_eq!(live.status, 200);
    assert!(
        live.body.starts_with("[+]serving ok (requests_served=1)"),
        "{}",
        live.body
    );

    service.signal(libc::SIGTERM);
    assert_eq!(service.wait_exit(Duration::from_secs(15)).code(), Some(0));
    assert!(service
        .stderr_text()
        .contains("shutdown hook: 1 request(s) served in all"));
}
