//! Start-up order, configuration and exit codes of real processes.

use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use lifecycle_testing::Endpoint;
use lifecycle_tests::{fixture, run, ServiceExt};

const TESTBED: &str = env!("CARGO_BIN_EXE_testbed");
const TESTBED_DUPLICATES: &str = env!("CARGO_BIN_EXE_testbed-duplicates");
const DEADLINE: Duration = Duration::from_secs(10);

#[test]
fn startupz_and_readyz_fail_until_the_on_startup_hooks_finish() {
    let mut service = fixture(TESTBED)
        .env("TESTBED_HOLD_STARTUP", "1")
        .spawn()
        .unwrap();
    // The hook holds start-up until the test releases it.
    let startup = service.get("/startupz?verbose");
    assert_eq!(startup.status, Some(503), "{startup}");
    assert!(
        startup.body.starts_with(
            "[-]lifecycle failed: preflight checks and on_startup hooks have not finished\n"
        ),
        "{}",
        startup.body
    );
    // Background checks start when start-up has finished.
    let ready = service.probe(Endpoint::Readyz);
    assert_eq!(
        (ready.status, ready.body.as_str()),
        (
            Some(503),
            "[-]lifecycle failed: start-up has not finished\n\
             [-]background failed: not yet run: background checks start when start-up has finished\n"
        )
    );
    assert_eq!(
        service.probe(Endpoint::Livez).status,
        Some(200),
        "liveness does not wait for start-up"
    );

    service.command("set release");
    service.wait_for_stdout("main running", DEADLINE);
    assert_eq!(service.probe(Endpoint::Startupz).status, Some(200));
    assert_eq!(service.probe(Endpoint::Readyz).status, Some(200));
}

#[test]
fn background_checks_start_when_start_up_has_finished_and_readyz_passes_with_startupz() {
    let mut service = fixture(TESTBED)
        .env("TESTBED_HOLD_STARTUP", "1")
        .spawn()
        .unwrap();
    service.wait_for_stdout("warm_up holding", DEADLINE);
    // What the check needs does not exist yet: it has not run.
    let background = service.get("/readyz/background?verbose");
    assert_eq!(background.status, Some(503), "{background}");
    assert!(
        background.body.contains(
            "[-]background failed: not yet run: background checks start when start-up has finished"
        ),
        "{}",
        background.body
    );

    service.command("set release");
    service.wait_passing(Endpoint::Startupz, DEADLINE).unwrap();
    // The first probe after start-up gets the first run's result.
    let ready = service.get("/readyz?verbose");
    assert_eq!(ready.status, Some(200), "{ready}");
    assert!(ready.body.contains("[+]background ok"), "{}", ready.body);
    service.wait_for_stdout("main running", DEADLINE);
    assert!(
        !service.log_text().contains("warm_up has not run"),
        "a clean start logs no failing check:\n{}",
        service.log_text()
    );
}

#[test]
fn a_rust_log_the_default_filter_cannot_read_is_one_warning_naming_env_filter_then_info() {
    let service = fixture(TESTBED)
        .env("RUST_LOG", "debug,testbed[request]=trace")
        .start()
        .unwrap();
    let warning = service
        .wait_for_log("env-filter", DEADLINE)
        .expect("a warning naming the feature");
    assert!(
        warning.contains("has the span or field directive `testbed[request]=trace`")
            && warning.contains("logging at `info` instead"),
        "{warning}"
    );
    // At info: lifecycle's own info lines, and none at debug.
    service
        .wait_for_log("probe server listening", DEADLINE)
        .unwrap();
    let log = service.log();
    assert_eq!(
        log.iter()
            .filter(|line| line.contains("env-filter"))
            .count(),
        1,
        "{log:#?}"
    );
    assert!(!log.iter().any(|line| line.contains("DEBUG")), "{log:#?}");
}

#[test]
fn a_failing_on_startup_hook_exits_1_and_main_never_runs() {
    let mut service = fixture(TESTBED)
        .env("TESTBED_STARTUP_FAIL", "1")
        .spawn()
        .unwrap();
    let exit = service.wait_exit(DEADLINE).unwrap();
    assert_eq!(exit.code, Some(1));
    let log = service.log_text();
    assert!(
        log.contains("on_startup hook \"warm_up\" failed: cache warm-up failed"),
        "{log}"
    );
    assert!(!log.contains("start-up finished"), "{log}");
}

#[test]
fn main_returning_err_exits_1_and_ok_exits_0() {
    let mut failing = fixture(TESTBED).start().unwrap();
    let mut passing = fixture(TESTBED).start().unwrap();

    failing.send("set fail");
    assert_eq!(failing.wait_exit(DEADLINE).unwrap().code, Some(1));
    assert!(failing
        .log_text()
        .contains("main returned an error: \"the test asked main to fail\""));

    passing.send("set quit");
    assert_eq!(passing.wait_exit(DEADLINE).unwrap().code, Some(0));
}

#[test]
fn a_bad_lifecycle_variable_exits_2_naming_it() {
    // These exit before the probe server listens: run to their exit.
    for (variable, value) in [
        ("LIFECYCLE_DRAIN_DELAY_MS", "soon"),
        ("LIFECYCLE_SHUTDOWN_TIMEOUT_MS", "-5"),
        ("LIFECYCLE_STALL_THRESHOLD_MS", "0"),
        ("LIFECYCLE_PROBE_ADDR", "localhost"),
        ("LIFECYCLE_LOG_FORMAT", "xml"),
        ("LIFECYCLE_REASONS", "everyone"),
    ] {
        let (code, stdout, log) = run(TESTBED, &[], &[(variable, value)]);
        assert_eq!(code, Some(2), "{variable}={value}");
        assert!(log.contains(&format!("{variable}=\"{value}\"")), "{log}");
        assert!(log.contains("expected"), "{log}");
        assert!(!log.contains("main running"));
        assert!(!stdout.contains(&"main running".to_string()), "{stdout:?}");
    }
}

#[test]
fn an_absurd_millisecond_value_exits_2_naming_the_variable_and_the_bound() {
    // Once taken, and printed by the manifest as a grace period of
    // 36893488147419109 s.
    for variable in [
        "LIFECYCLE_SHUTDOWN_TIMEOUT_MS",
        "LIFECYCLE_DRAIN_DELAY_MS",
        "LIFECYCLE_STALL_THRESHOLD_MS",
    ] {
        for args in [&[][..], &["--lifecycle-manifest"][..]] {
            let (code, stdout, log) = run(
                TESTBED,
                args,
                &[
                    (variable, "18446744073709551615"),
                    ("LIFECYCLE_PROBE_ADDR", "0.0.0.0:9100"),
                ],
            );
            assert_eq!(code, Some(2), "{variable} {args:?}: {log}");
            assert!(
                log.contains(&format!("{variable}=\"18446744073709551615\"")),
                "names the variable: {log}"
            );
            assert!(log.contains("86400000"), "names the bound: {log}");
            assert!(!stdout.iter().any(|l| l.contains("main running")));
            assert!(
                !stdout
                    .iter()
                    .any(|l| l.contains("terminationGracePeriodSeconds")),
                "no manifest: {stdout:?}"
            );
        }
    }
    // A day is the largest value taken.
    let (code, stdout, log) = run(
        TESTBED,
        &["--lifecycle-manifest"],
        &[
            ("LIFECYCLE_SHUTDOWN_TIMEOUT_MS", "86400000"),
            ("LIFECYCLE_PROBE_ADDR", "0.0.0.0:9100"),
        ],
    );
    assert_eq!(code, Some(0), "{log}");
    // A day (the drain delay within it) + 5 s to exit.
    assert!(
        stdout
            .iter()
            .any(|l| l.trim() == "terminationGracePeriodSeconds: 86405"),
        "{stdout:?}"
    );
}

#[test]
fn duplicate_check_names_exit_2_naming_both_places() {
    let (code, _, log) = run(TESTBED_DUPLICATES, &[], &[]);
    assert_eq!(code, Some(2));
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
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    // Over the kit's own `127.0.0.1:0`.
    let service = fixture(TESTBED)
        .env("LIFECYCLE_PROBE_ADDR", addr.to_string())
        .spawn()
        .unwrap();
    assert_eq!(service.probe_addr(), addr);
    service.wait_passing(Endpoint::Livez, DEADLINE).unwrap();
}

#[test]
fn an_address_in_use_exits_1() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    // It never listens: run to its exit.
    let (code, _, log) = run(TESTBED, &[], &[("LIFECYCLE_PROBE_ADDR", &addr)]);
    // An exit code, so not killed by a signal.
    assert_eq!(code, Some(1));
    assert!(log.contains(&format!("cannot bind the probe server to {addr}")));
}

#[test]
fn json_logs_with_lifecycle_log_format() {
    let service = fixture(TESTBED)
        .env("LIFECYCLE_LOG_FORMAT", "json")
        .spawn()
        .unwrap();
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

#[test]
fn a_stop_during_a_blocking_on_startup_hook_waits_for_it_before_the_on_shutdown_hooks() {
    // A plain fn cannot be cancelled: the on_shutdown hooks may release what
    // it is still acquiring, so they must not start before it returns.
    let mut service = fixture(TESTBED)
        .env("TESTBED_BLOCKING_STARTUP_MS", "1500")
        .spawn()
        .unwrap();
    service.wait_for_stdout("hook blocking_warm_up start", DEADLINE);
    service.signal(libc::SIGTERM);
    let exit = service.wait_exit(DEADLINE).unwrap();
    let stdout = service.stdout();
    let position = |line: &str| {
        stdout
            .iter()
            .position(|l| l == line)
            .unwrap_or_else(|| panic!("no {line:?} in {stdout:?}"))
    };
    assert!(
        position("hook blocking_warm_up end") < position("hook stop_intake start"),
        "an on_shutdown hook ran while the on_startup hook still ran: {stdout:?}"
    );
    assert_eq!(exit.code, Some(0), "{exit}\n{}", service.log_text());
    assert!(
        service.log_text().contains(
            "waiting for on_startup hook \"blocking_warm_up\" (tests/src/bin/testbed/main.rs"
        ),
        "{}",
        service.log_text()
    );
}
