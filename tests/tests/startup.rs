//! Start-up order, configuration and exit codes of real processes.

use std::net::TcpListener;
use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

use lifecycle_tests::Service;

const TESTBED: &str = env!("CARGO_BIN_EXE_testbed");
const TESTBED_DUPLICATES: &str = env!("CARGO_BIN_EXE_testbed-duplicates");
const DEADLINE: Duration = Duration::from_secs(10);

#[test]
fn startupz_and_readyz_fail_until_the_on_startup_hooks_finish() {
    let mut service = Service::start(TESTBED, &[("TESTBED_HOLD_STARTUP", "1")]);
    // The hook holds start-up until the test releases it.
    let startup = service.get("/startupz?verbose");
    assert_eq!(startup.status, 503);
    assert!(
        startup.body.starts_with(
            "[-]lifecycle failed: preflight checks and on_startup hooks have not finished\n"
        ),
        "{}",
        startup.body
    );
    let ready = service.get("/readyz");
    assert_eq!(
        (ready.status, ready.body.as_str()),
        (503, "[-]lifecycle failed: start-up has not finished\n")
    );
    assert_eq!(
        service.get("/livez").status,
        200,
        "liveness does not wait for start-up"
    );

    service.command("set release");
    service.wait_for_stdout("main running", DEADLINE);
    assert_eq!(service.get("/startupz").status, 200);
    assert_eq!(service.get("/readyz").status, 200);
}

#[test]
fn a_failing_on_startup_hook_exits_1_and_main_never_runs() {
    let mut service = Service::spawn(TESTBED, &[("TESTBED_STARTUP_FAIL", "1")]);
    let status = service.wait_exit(DEADLINE);
    assert_eq!(status.code(), Some(1));
    let log = service.stderr_text();
    assert!(
        log.contains("on_startup hook \"warm_up\" failed: cache warm-up failed"),
        "{log}"
    );
    assert!(!log.contains("start-up finished"), "{log}");
}

#[test]
fn main_returning_err_exits_1_and_ok_exits_0() {
    let mut failing = Service::start(TESTBED, &[]);
    let mut passing = Service::start(TESTBED, &[]);
    failing.wait_for_status("/startupz", 200, DEADLINE);
    passing.wait_for_status("/startupz", 200, DEADLINE);

    failing.send("set fail");
    assert_eq!(failing.wait_exit(DEADLINE).code(), Some(1));
    assert!(failing
        .stderr_text()
        .contains("main returned an error: \"the test asked main to fail\""));

    passing.send("set quit");
    assert_eq!(passing.wait_exit(DEADLINE).code(), Some(0));
}

#[test]
fn a_bad_lifecycle_variable_exits_2_naming_it() {
    for (variable, value) in [
        ("LIFECYCLE_DRAIN_DELAY_MS", "soon"),
        ("LIFECYCLE_SHUTDOWN_TIMEOUT_MS", "-5"),
        ("LIFECYCLE_STALL_THRESHOLD_MS", "0"),
        ("LIFECYCLE_PROBE_ADDR", "localhost"),
        ("LIFECYCLE_LOG_FORMAT", "xml"),
    ] {
        let mut service = Service::spawn(TESTBED, &[(variable, value)]);
        let status = service.wait_exit(DEADLINE);
        assert_eq!(status.code(), Some(2), "{variable}={value}");
        let log = service.stderr_text();
        assert!(log.contains(&format!("{variable}=\"{value}\"")), "{log}");
        assert!(log.contains("expected"), "{log}");
        assert!(!log.contains("main running"));
    }
}

#[test]
fn duplicate_check_names_exit_2_naming_both_places() {
    let mut service = Service::spawn(TESTBED_DUPLICATES, &[]);
    assert_eq!(service.wait_exit(DEADLINE).code(), Some(2));
    let log = service.stderr_text();
    assert!(
        log.contains("duplicate readiness check name \"database\": registered at tests/src/bin/testbed-duplicates.rs:"),
        "{log}"
    );
}

#[test]
fn the_probe_address_comes_from_the_environment_first() {
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let addr = format!("127.0.0.1:{port}");
    let service = Service::start(TESTBED, &[("LIFECYCLE_PROBE_ADDR", &addr)]);
    assert_eq!(
        service.probes.as_deref(),
        Some(format!("http://{addr}").as_str())
    );
    service.wait_for_status("/livez", 200, DEADLINE);
}

#[test]
fn an_address_in_use_exits_1() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let mut service = Service::spawn(TESTBED, &[("LIFECYCLE_PROBE_ADDR", &addr)]);
    let status = service.wait_exit(DEADLINE);
    assert_eq!(status.code(), Some(1));
    assert!(status.signal().is_none());
    assert!(service
        .stderr_text()
        .contains(&format!("cannot bind the probe server to {addr}")));
}

#[test]
fn json_logs_with_lifecycle_log_format() {
    let service = Service::start(TESTBED, &[("LIFECYCLE_LOG_FORMAT", "json")]);
    let line = service
        .wait_for_log("probe server listening", DEADLINE)
        .unwrap();
    let record: serde_json::Value = serde_json::from_str(&line).expect("a JSON log line");
    assert_eq!(record["level"], "INFO");
    assert!(record["fields"]["message"]
        .as_str()
        .unwrap()
        .starts_with("probe server listening on http://127.0.0.1:"));
}
