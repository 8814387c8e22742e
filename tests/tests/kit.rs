//! The test kit's own guarantees, against the testbed: it finds the probe
//! port without reading the log, and reports a stop as the kubelet would
//! see it (exit code, readiness, a second signal, SIGKILL at the end of the
//! grace period, the termination message).

use std::time::{Duration, Instant};

use lifecycle_testing::{Endpoint, Service, Stop};
use lifecycle_tests::{fixture, run, ServiceExt};

const TESTBED: &str = env!("CARGO_BIN_EXE_testbed");
const DEADLINE: Duration = Duration::from_secs(15);

#[test]
fn the_probe_address_comes_from_the_address_file_whatever_the_log() {
    // JSON logs: no plain `probe server listening on` line to parse.
    let json = Service::builder(TESTBED)
        .env("LIFECYCLE_LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .spawn()
        .unwrap();
    assert_ne!(json.probe_addr().port(), 0);
    json.wait_passing(Endpoint::Startupz, DEADLINE).unwrap();
    json.assert_passing(Endpoint::Livez);
    let line = json
        .wait_for_log("probe server listening", DEADLINE)
        .unwrap();
    let record: serde_json::Value = serde_json::from_str(&line).expect("a JSON log line");
    assert_eq!(
        record["fields"]["message"],
        format!("probe server listening on http://{}", json.probe_addr()),
        "the address the kit found is the one the service bound"
    );

    // No log at all.
    let silent = Service::builder(TESTBED)
        .env("RUST_LOG", "off")
        .spawn()
        .unwrap();
    assert_ne!(silent.probe_addr().port(), 0);
    silent.wait_passing(Endpoint::Startupz, DEADLINE).unwrap();
    silent.assert_passing(Endpoint::Readyz);
    assert_eq!(silent.log(), Vec::<String>::new(), "nothing logged");
}

#[test]
fn stopping_a_healthy_service_reports_a_clean_exit_and_readiness_first() {
    let mut service = fixture(TESTBED).start().unwrap();
    service.wait_for_stdout("main running", DEADLINE);
    service.assert_passing(Endpoint::Readyz);
    let stopped = service.stop(Stop::grace(DEADLINE));
    assert_eq!(stopped.exit.code, Some(0), "{stopped:?}");
    assert_eq!(stopped.exit.signal, None);
    assert!(!stopped.killed);
    let unready_after = stopped
        .unready_after
        .unwrap_or_else(|| panic!("/readyz never failed while it ran: {stopped:?}"));
    assert!(
        unready_after < stopped.signal_to_exit,
        "out of rotation after {unready_after:?}, exited after {:?}",
        stopped.signal_to_exit
    );
    assert_eq!(stopped.termination_message, None);
    assert!(
        stopped.log.last().unwrap().contains("exiting with code 0"),
        "{:?}",
        stopped.log
    );
}

#[test]
fn a_second_sigterm_during_a_slow_shutdown_exits_143() {
    let mut service = fixture(TESTBED)
        .env("TESTBED_HOOK_SLOW_MS", "5000")
        .start()
        .unwrap();
    service.wait_for_stdout("main running", DEADLINE);
    let stopped = service.stop(
        Stop::grace(Duration::from_secs(30)).second_signal_after(Duration::from_millis(1000)),
    );
    assert_eq!(stopped.exit.code, Some(143), "{stopped:?}");
    assert!(!stopped.killed);
    // At the second signal, not at the end of the 5 s hook.
    assert!(
        stopped.signal_to_exit >= Duration::from_millis(1000)
            && stopped.signal_to_exit < Duration::from_millis(5000),
        "{:?}",
        stopped.signal_to_exit
    );
    assert!(service
        .stdout()
        .contains(&"hook slow-flush start".to_owned()));
    assert!(!service.stdout().contains(&"hook slow-flush end".to_owned()));
    assert_eq!(
        stopped.termination_message.as_deref(),
        Some("SIGTERM received again during shutdown: exiting at once")
    );
}

#[test]
fn a_shutdown_longer_than_the_grace_period_is_killed() {
    let mut service = fixture(TESTBED)
        .env("TESTBED_HOOK_SLOW_MS", "5000")
        .start()
        .unwrap();
    service.wait_for_stdout("main running", DEADLINE);
    let stopped = service.stop(Stop::grace(Duration::from_millis(500)));
    assert!(stopped.killed, "{stopped:?}");
    assert_eq!(stopped.exit.signal, Some(libc::SIGKILL));
    assert_eq!(stopped.exit.code, None);
    assert!(
        stopped.signal_to_exit >= Duration::from_millis(500)
            && stopped.signal_to_exit < Duration::from_millis(5000),
        "{:?}",
        stopped.signal_to_exit
    );
    assert!(service
        .stdout()
        .contains(&"hook slow-flush start".to_owned()));
    assert!(!service.stdout().contains(&"hook slow-flush end".to_owned()));
}

#[test]
fn kill_ends_a_service_at_once_and_then_returns_the_same_exit() {
    let mut service = fixture(TESTBED).start().unwrap();
    service.wait_for_stdout("main running", DEADLINE);
    let killed = service.kill().unwrap();
    assert_eq!(killed.signal, Some(libc::SIGKILL), "{killed}");
    assert_eq!(killed.code, None);
    assert!(!service.is_running());
    // No stop ran: the log is complete, and it has no stop in it.
    assert!(
        !service
            .log()
            .iter()
            .any(|line| line.contains("shutting down")),
        "{:#?}",
        service.log()
    );
    // Killing what has ended leaves it as it was.
    let again = service.kill().unwrap();
    assert_eq!((again.code, again.signal), (killed.code, killed.signal));
}

#[test]
fn a_failing_services_termination_message_is_what_it_wrote() {
    let mut service = fixture(TESTBED)
        .env("TESTBED_STARTUP_FAIL", "1")
        .spawn()
        .unwrap();
    let exit = service.wait_exit(DEADLINE).unwrap();
    assert_eq!(exit.code, Some(1));
    let message = service
        .termination_message()
        .expect("a termination message");
    assert_eq!(
        message,
        "on_startup hook \"warm_up\" failed: cache warm-up failed (TESTBED_STARTUP_FAIL is set)"
    );
    // The same reason is the last line logged.
    assert!(
        service.log().last().unwrap().contains(&message),
        "{:?}",
        service.log()
    );
}

#[test]
fn waiting_on_a_service_that_exited_fails_at_once_with_its_reason() {
    let started = Instant::now();
    let error = Service::builder(TESTBED)
        .env("TESTBED_STARTUP_FAIL", "1")
        .start_deadline(Duration::from_secs(60))
        .start()
        .err()
        .expect("start-up failed, so start() fails");
    let message = error.to_string();
    assert!(
        message.contains("exited (exit code 1) while waiting for /startupz to pass: on_startup hook \"warm_up\" failed"),
        "{message}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "not the whole start deadline: {:?}",
        started.elapsed()
    );
}

#[test]
fn an_address_file_in_a_missing_folder_exits_2_naming_the_variable() {
    let missing = std::env::temp_dir()
        .join(format!("lifecycle-kit-missing-{}", std::process::id()))
        .join("probe-addr");
    assert!(!missing.parent().unwrap().exists());
    // Not through the kit, which would set its own address file.
    let (code, stdout, log) = run(
        TESTBED,
        &[],
        &[
            ("LIFECYCLE_PROBE_ADDR", "127.0.0.1:0"),
            ("LIFECYCLE_PROBE_ADDR_FILE", missing.to_str().unwrap()),
        ],
    );
    assert_eq!(code, Some(2), "{log}");
    assert!(
        log.contains(&format!(
            "LIFECYCLE_PROBE_ADDR_FILE={:?}",
            missing.display().to_string()
        )),
        "{log}"
    );
    assert!(!stdout.contains(&"main running".to_owned()), "{stdout:?}");
}

#[test]
fn assert_failing_wants_the_services_own_answer_unless_told_otherwise() {
    let mut service = fixture(TESTBED).start().unwrap();
    let readiness_down = |service: &mut Service| {
        use std::io::Write;
        writeln!(service.stdin(), "set down").unwrap();
        service.stdin().flush().unwrap();
        service.wait_failing(Endpoint::Readyz, DEADLINE).unwrap()
    };
    let down = readiness_down(&mut service);
    assert_eq!(down.status, Some(503), "{down}");
    service.assert_failing(Endpoint::Readyz);
    service.kill().unwrap();

    // Nothing listens now: not the service saying "not ready".
    let refused = std::panic::catch_unwind(|| service.assert_failing(Endpoint::Readyz))
        .expect_err("a refused connection is not a failing answer");
    let message = refused.downcast_ref::<String>().unwrap();
    assert!(
        message.contains("nothing answered: use assert_failing_or_unreachable"),
        "{message}"
    );
    let gone = service.assert_failing_or_unreachable(Endpoint::Readyz);
    assert_eq!(gone.status, None, "{gone}");
    // Waiting for a failure of a process that is gone is an error, not a
    // refused connection taken for one.
    let error = service
        .wait_failing(Endpoint::Readyz, Duration::from_secs(1))
        .unwrap_err();
    assert_eq!(
        error.kind(),
        lifecycle_testing::ErrorKind::Exited,
        "{error}"
    );
}
