//! The quick-start example serves its application and its probes.

use std::time::Duration;

use lifecycle_testing::probe::DEFAULT_TIMEOUT;
use lifecycle_testing::{http_get, Endpoint, Service};

const QUICKSTART: &str = env!("CARGO_BIN_EXE_quickstart");

#[test]
fn quickstart_serves_the_application_and_the_probes() {
    // The kit puts the probes on a free port; the application too.
    let mut service = Service::builder(QUICKSTART)
        .env("APP_ADDR", "127.0.0.1:0")
        .env("GREETING", "hi there")
        .env("RUST_LOG", "info")
        .spawn()
        .unwrap();
    // Where the application listens, as lifecycle's listener published it.
    let app = service.app_addr().unwrap();
    service
        .wait_for_log(&format!("serving on http://{app}"), Duration::from_secs(10))
        .expect("the application logs its address");
    let answer = http_get(app, "/", Duration::from_secs(10)).unwrap();
    assert_eq!(answer, (200, "hi there\n".to_string()));

    service
        .wait_passing(Endpoint::Readyz, Duration::from_secs(10))
        .unwrap();
    let ready = service.verbose(Endpoint::Readyz);
    assert_eq!(ready.passed, Some(true), "{ready:?}");
    let accepting = ready.check("accepting_connections").unwrap();
    assert!(
        accepting.passed && !accepting.excluded && accepting.details.is_empty(),
        "{accepting:?}"
    );
    let live = service.probe_path("/livez/serving?verbose", DEFAULT_TIMEOUT);
    assert_eq!(live.status, Some(200), "{live}");
    assert!(
        live.body.starts_with("[+]serving ok (requests_served=1)"),
        "{}",
        live.body
    );

    // The kit's graceful stop is a signal: Unix only. On Windows it can
    // only kill the service, and no shutdown hook runs.
    #[cfg(unix)]
    {
        let stopped = service.stop(lifecycle_testing::Stop::grace(Duration::from_secs(15)));
        assert_eq!(stopped.exit.code, Some(0), "{stopped:?}");
        assert!(!stopped.killed);
        assert!(stopped
            .log
            .iter()
            .any(|line| line.contains("shutdown hook: 1 request(s) served in all")));
    }
    #[cfg(not(unix))]
    service.kill().unwrap();
}
