//! Signals, the ordered shutdown, the panic policy, exit codes and the
//! termination message, on real processes with real signals.

use std::time::Duration;

use lifecycle_tests::{termination_log_path, Service};

const TESTBED: &str = env!("CARGO_BIN_EXE_testbed");
/// The panic-log example with a panic in main.
const PANIC_LOG_MAIN: &str = env!("CARGO_BIN_EXE_panic-log-main");
const DEADLINE: Duration = Duration::from_secs(15);

fn running_testbed(env: &[(&str, &str)]) -> Service {
    let service = Service::started(TESTBED, env);
    service.wait_for_stdout("main running", DEADLINE);
    service
}

fn position(lines: &[String], line: &str) -> usize {
    lines
        .iter()
        .position(|l| l == line)
        .unwrap_or_else(|| panic!("no line {line:?} in {lines:#?}"))
}

#[test]
fn a_second_sigterm_during_a_slow_hook_exits_143_at_once() {
    let log = termination_log_path();
    let mut service = running_testbed(&[
        ("TESTBED_HOOK_SLOW_MS", "60000"),
        ("LIFECYCLE_TERMINATION_LOG", log.to_str().unwrap()),
    ]);
    service.signal(libc::SIGTERM);
    service.wait_for_stdout("hook slow-flush start", DEADLINE);
    service.signal(libc::SIGTERM);
    // "At once": long before the 60 s hook or the 25 s deadline.
    let status = service.wait_exit(Duration::from_secs(3));
    assert_eq!(status.code(), Some(143));
    let message = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        message,
        "SIGTERM received again during shutdown: exiting at once"
    );
}

#[test]
fn sigint_twice_exits_130() {
    let mut service = running_testbed(&[("TESTBED_HOOK_SLOW_MS", "60000")]);
    service.signal(libc::SIGINT);
    service.wait_for_stdout("hook slow-flush start", DEADLINE);
    service.signal(libc::SIGINT);
    assert_eq!(service.wait_exit(Duration::from_secs(3)).code(), Some(130));
}

#[test]
fn a_failing_and_a_panicking_hook_do_not_stop_the_later_ones() {
    let log = termination_log_path();
    let mut service = running_testbed(&[
        ("TESTBED_HOOK_FAIL", "1"),
        ("TESTBED_HOOK_PANIC", "1"),
        ("LIFECYCLE_TERMINATION_LOG", log.to_str().unwrap()),
    ]);
    service.signal(libc::SIGTERM);
    assert_eq!(service.wait_exit(DEADLINE).code(), Some(1));
    let lines = service.stdout_lines();
    assert!(position(&lines, "hook explosive start") < position(&lines, "hook last start"));
    assert!(position(&lines, "hook faulty end") < position(&lines, "hook last start"));
    position(&lines, "hook last end");
    assert!(!lines.contains(&"hook explosive end".to_string()));
    let message = std::fs::read_to_string(&log).unwrap();
    assert!(
        message.contains("on_shutdown hook \"faulty\" failed: flush failed: disk full"),
        "{message}"
    );
    assert!(
        message.contains("on_shutdown hook \"explosive\" panicked: hook exploded"),
        "{message}"
    );
    let stderr = service.stderr_text();
    assert!(
        stderr
            .lines()
            .last()
            .unwrap()
            .contains("exiting with code 1"),
        "the reason is the last line logged:\n{stderr}"
    );
}

#[test]
fn main_returning_err_writes_the_termination_log() {
    let log = termination_log_path();
    let mut service = running_testbed(&[("LIFECYCLE_TERMINATION_LOG", log.to_str().unwrap())]);
    service.send("set fail");
    assert_eq!(service.wait_exit(DEADLINE).code(), Some(1));
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "main returned an error: \"the test asked main to fail\""
    );
    // The shutdown hooks ran all the same.
    service.wait_for_stdout("hook last end", DEADLINE);
}

#[test]
fn a_long_termination_message_is_cut_on_a_character_boundary() {
    let log = termination_log_path();
    let mut service = running_testbed(&[("LIFECYCLE_TERMINATION_LOG", log.to_str().unwrap())]);
    service.send("set fail-long");
    assert_eq!(service.wait_exit(DEADLINE).code(), Some(1));
    let full = format!("main returned an error: \"{}\"", "é".repeat(3000));
    assert!(full.len() > 4096 && !full.is_char_boundary(4096));
    let bytes = std::fs::read(&log).unwrap();
    let message = String::from_utf8(bytes).expect("cut on a character boundary");
    assert_eq!(message.len(), 4095);
    assert!(full.starts_with(&message));
}

#[test]
fn a_panic_in_a_spawned_task_exits_101_with_its_location() {
    let log = termination_log_path();
    let mut service = running_testbed(&[("LIFECYCLE_TERMINATION_LOG", log.to_str().unwrap())]);
    service.send("set spawn-panic");
    assert_eq!(service.wait_exit(DEADLINE).code(), Some(101));
    let message = std::fs::read_to_string(&log).unwrap();
    assert!(
        message.contains("panicked at tests/src/bin/testbed/main.rs:"),
        "{message}"
    );
    assert!(message.ends_with(": task exploded"), "{message}");
    assert!(service.stderr_text().contains("task exploded"));
}

#[test]
fn a_panic_in_another_thread_exits_101() {
    let log = termination_log_path();
    let mut service = running_testbed(&[("LIFECYCLE_TERMINATION_LOG", log.to_str().unwrap())]);
    service.send("set thread-panic");
    assert_eq!(service.wait_exit(DEADLINE).code(), Some(101));
    let message = std::fs::read_to_string(&log).unwrap();
    assert!(
        message.contains("panicked at tests/src/bin/testbed/main.rs:"),
        "{message}"
    );
    assert!(message.ends_with(": thread exploded"), "{message}");
}

#[test]
fn sigterm_during_start_up_abandons_it_and_runs_the_shutdown_hooks() {
    let log = termination_log_path();
    let mut service = Service::start(
        TESTBED,
        &[
            ("TESTBED_HOLD_STARTUP", "1"),
            ("LIFECYCLE_TERMINATION_LOG", log.to_str().unwrap()),
        ],
    );
    service.wait_for_stdout("warm_up holding", DEADLINE);
    assert_eq!(service.get("/startupz").status, 503);
    service.signal(libc::SIGTERM);
    assert_eq!(service.wait_exit(DEADLINE).code(), Some(0));
    let lines = service.stdout_lines();
    assert!(!lines.contains(&"main running".to_string()), "{lines:?}");
    position(&lines, "hook stop_intake start");
    position(&lines, "hook last end");
    assert!(!log.exists(), "no termination message on exit 0");
    assert!(service.stderr_text().contains("start-up abandoned"));
}

#[test]
fn mark_broken_fails_livez_with_its_reason() {
    let mut service = running_testbed(&[]);
    service.command("set broken");
    let live = service.get("/livez");
    assert_eq!(live.status, 503);
    assert_eq!(
        live.body,
        "[-]lifecycle failed: marked broken: database pool poisoned\n"
    );
    assert_eq!(
        service.get("/readyz").status,
        200,
        "readiness is another matter"
    );
    assert_eq!(service.get("/healthz").status, 503);
}

#[test]
fn set_ready_false_fails_readyz_until_set_ready_true() {
    let mut service = running_testbed(&[]);
    service.command("set unready");
    let ready = service.get("/readyz");
    assert_eq!(
        (ready.status, ready.body.as_str()),
        (
            503,
            "[-]lifecycle failed: taken out of rotation by set_ready(false)\n"
        )
    );
    assert_eq!(service.get("/livez").status, 200);
    service.command("clear unready");
    assert_eq!(service.get("/readyz").status, 200);
}

#[test]
fn startupz_stays_failed_while_an_abandoned_start_up_shuts_down() {
    let service = Service::start(
        TESTBED,
        &[
            ("TESTBED_HOLD_STARTUP", "1"),
            ("TESTBED_HOOK_SLOW_MS", "3000"),
        ],
    );
    service.wait_for_stdout("warm_up holding", DEADLINE);
    service.signal(libc::SIGTERM);
    service.wait_for_stdout("hook slow-flush start", DEADLINE);
    assert_eq!(service.get("/startupz").status, 503);
    assert_eq!(service.get("/readyz").status, 503);
}

#[test]
fn readyz_fails_once_main_returns_while_tracked_tasks_finish() {
    let mut service = running_testbed(&[]);
    service.command("set tracked-work");
    service.wait_for_stdout("tracked task started", DEADLINE);
    service.send("set quit");
    service.wait_for_stdout("main returning", DEADLINE);
    let ready = service.get("/readyz");
    assert!(
        !service
            .stdout_lines()
            .contains(&"tracked task finished".to_string()),
        "probed while the tracked task was still running"
    );
    assert_eq!(
        (ready.status, ready.body.as_str()),
        (503, "[-]lifecycle failed: shutting down\n")
    );
    assert_eq!(service.wait_exit(DEADLINE).code(), Some(0));
}

#[test]
fn a_check_that_panics_when_its_time_out_drops_it_is_contained() {
    let mut service = Service::start(TESTBED, &[("TESTBED_DROP_PANIC", "1")]);
    service.wait_for_stdout("main running", DEADLINE);
    let startup = service.get("/startupz/drop-guard");
    assert_eq!(startup.status, 503);
    assert_eq!(
        startup.body,
        "[-]drop-guard failed: timed out after 100 ms\n"
    );
    std::thread::sleep(Duration::from_millis(200));
    assert!(service.is_running(), "{}", service.stderr_text());
    assert_eq!(service.get("/livez").status, 200);
}

#[test]
fn under_panic_log_a_panic_in_main_runs_the_hooks_and_exits_101() {
    let log = termination_log_path();
    let mut service = Service::start(
        PANIC_LOG_MAIN,
        &[("LIFECYCLE_TERMINATION_LOG", log.to_str().unwrap())],
    );
    assert_eq!(service.wait_exit(DEADLINE).code(), Some(101));
    service.wait_for_stdout("hook goodbye ran", DEADLINE);
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "main panicked: main exploded under panic = log"
    );
}
