//! Signals, the ordered shutdown, the panic policy, exit codes and the
//! termination message, on real processes with real signals.

use std::time::{Duration, Instant};

use lifecycle_testing::{Endpoint, Service, Stop};
use lifecycle_tests::{fixture, ServiceExt};

const TESTBED: &str = env!("CARGO_BIN_EXE_testbed");
/// The panic-log example with a panic in main.
const PANIC_LOG_MAIN: &str = env!("CARGO_BIN_EXE_panic-log-main");
const DEADLINE: Duration = Duration::from_secs(15);

/// The testbed started, with `env`, and its main running.
fn running_testbed(env: &[(&str, &str)]) -> Service {
    let service = env
        .iter()
        .fold(fixture(TESTBED), |builder, (key, value)| {
            builder.env(key, value)
        })
        .start()
        .unwrap();
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
    let mut service = running_testbed(&[("TESTBED_HOOK_SLOW_MS", "60000")]);
    service.signal(libc::SIGTERM);
    service.wait_for_stdout("hook slow-flush start", DEADLINE);
    service.signal(libc::SIGTERM);
    // "At once": long before the 60 s hook or the 25 s deadline.
    let exit = service.wait_exit(Duration::from_secs(3)).unwrap();
    assert_eq!(exit.code, Some(143));
    assert_eq!(
        service.termination_message().as_deref(),
        Some("SIGTERM received again during shutdown: exiting at once")
    );
}

#[test]
fn sigint_twice_exits_130() {
    let mut service = running_testbed(&[("TESTBED_HOOK_SLOW_MS", "60000")]);
    service.signal(libc::SIGINT);
    service.wait_for_stdout("hook slow-flush start", DEADLINE);
    service.signal(libc::SIGINT);
    assert_eq!(
        service.wait_exit(Duration::from_secs(3)).unwrap().code,
        Some(130)
    );
}

#[test]
fn a_failing_and_a_panicking_hook_do_not_stop_the_later_ones() {
    let mut service = running_testbed(&[("TESTBED_HOOK_FAIL", "1"), ("TESTBED_HOOK_PANIC", "1")]);
    let stopped = service.stop(Stop::grace(DEADLINE));
    assert_eq!(stopped.exit.code, Some(1), "{stopped:?}");
    let lines = service.stdout();
    assert!(position(&lines, "hook explosive start") < position(&lines, "hook last start"));
    assert!(position(&lines, "hook faulty end") < position(&lines, "hook last start"));
    position(&lines, "hook last end");
    assert!(!lines.contains(&"hook explosive end".to_string()));
    let message = stopped.termination_message.unwrap();
    assert!(
        message.contains("on_shutdown hook \"faulty\" failed: flush failed: disk full"),
        "{message}"
    );
    assert!(
        message.contains("on_shutdown hook \"explosive\" panicked: hook exploded"),
        "{message}"
    );
    assert!(
        stopped.log.last().unwrap().contains("exiting with code 1"),
        "the reason is the last line logged:\n{}",
        stopped.log.join("\n")
    );
}

#[test]
fn main_returning_err_writes_the_termination_log() {
    let mut service = running_testbed(&[]);
    service.send("set fail");
    assert_eq!(service.wait_exit(DEADLINE).unwrap().code, Some(1));
    assert_eq!(
        service.termination_message().as_deref(),
        Some("main returned an error: \"the test asked main to fail\"")
    );
    // The shutdown hooks ran all the same.
    service.wait_for_stdout("hook last end", DEADLINE);
}

#[test]
fn a_long_termination_message_is_cut_on_a_character_boundary() {
    let mut service = running_testbed(&[]);
    service.send("set fail-long");
    assert_eq!(service.wait_exit(DEADLINE).unwrap().code, Some(1));
    let full = format!("main returned an error: \"{}\"", "é".repeat(3000));
    assert!(full.len() > 4096 && !full.is_char_boundary(4096));
    // Read as UTF-8: `None` if the cut split a character.
    let message = service
        .termination_message()
        .expect("a message, cut on a character boundary");
    assert_eq!(message.len(), 4095);
    assert!(full.starts_with(&message));
}

#[test]
fn a_panic_in_a_spawned_task_exits_101_with_its_location() {
    let mut service = running_testbed(&[]);
    service.send("set spawn-panic");
    assert_eq!(service.wait_exit(DEADLINE).unwrap().code, Some(101));
    let message = service.termination_message().unwrap();
    assert!(
        message.contains("panicked at tests/src/bin/testbed/main.rs:"),
        "{message}"
    );
    assert!(message.ends_with(": task exploded"), "{message}");
    assert!(service.log_text().contains("task exploded"));
}

#[test]
fn a_panic_in_another_thread_exits_101() {
    let mut service = running_testbed(&[]);
    service.send("set thread-panic");
    assert_eq!(service.wait_exit(DEADLINE).unwrap().code, Some(101));
    let message = service.termination_message().unwrap();
    assert!(
        message.contains("panicked at tests/src/bin/testbed/main.rs:"),
        "{message}"
    );
    assert!(message.ends_with(": thread exploded"), "{message}");
}

#[test]
fn sigterm_during_start_up_abandons_it_and_runs_the_shutdown_hooks() {
    let mut service = fixture(TESTBED)
        .env("TESTBED_HOLD_STARTUP", "1")
        .spawn()
        .unwrap();
    service.wait_for_stdout("warm_up holding", DEADLINE);
    assert_eq!(service.probe(Endpoint::Startupz).status, Some(503));
    let stopped = service.stop(Stop::grace(DEADLINE));
    assert_eq!(stopped.exit.code, Some(0), "{stopped:?}");
    let lines = service.stdout();
    assert!(!lines.contains(&"main running".to_string()), "{lines:?}");
    position(&lines, "hook stop_intake start");
    position(&lines, "hook last end");
    assert_eq!(
        stopped.termination_message, None,
        "no termination message on exit 0"
    );
    assert!(stopped.log.join("\n").contains("start-up abandoned"));
}

#[test]
fn mark_broken_fails_livez_with_its_reason() {
    let mut service = running_testbed(&[]);
    service.command("set broken");
    let live = service.probe(Endpoint::Livez);
    assert_eq!(live.status, Some(503));
    assert_eq!(
        live.body,
        "[-]lifecycle failed: marked broken: database pool poisoned\n"
    );
    assert_eq!(
        service.probe(Endpoint::Readyz).status,
        Some(200),
        "readiness is another matter"
    );
    assert_eq!(service.probe(Endpoint::Healthz).status, Some(503));
}

#[test]
fn out_of_rotation_guards_fail_readyz_oldest_first_until_each_drops_cancelled_or_not() {
    let mut service = running_testbed(&[]);
    // A guard held by a task, then one held by the control thread.
    service.command("set reload");
    service.command("set reindex");
    let ready = service.probe(Endpoint::Readyz);
    assert_eq!(
        (ready.status, ready.body.as_str()),
        (
            Some(503),
            "[-]lifecycle failed: out of rotation: reloading config; rebuilding index\n"
        )
    );
    assert_eq!(service.probe(Endpoint::Livez).status, Some(200));

    // The task is cancelled at its `.await`: its guard drops with it.
    service.command("clear reload");
    let deadline = Instant::now() + DEADLINE;
    loop {
        let ready = service.probe(Endpoint::Readyz);
        if ready.body == "[-]lifecycle failed: out of rotation: rebuilding index\n" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the cancelled guard never dropped: {ready}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    service.command("clear reindex");
    assert_eq!(service.probe(Endpoint::Readyz).status, Some(200));
}

#[test]
fn startupz_stays_failed_while_an_abandoned_start_up_shuts_down() {
    let service = fixture(TESTBED)
        .env("TESTBED_HOLD_STARTUP", "1")
        .env("TESTBED_HOOK_SLOW_MS", "3000")
        .spawn()
        .unwrap();
    service.wait_for_stdout("warm_up holding", DEADLINE);
    service.signal(libc::SIGTERM);
    service.wait_for_stdout("hook slow-flush start", DEADLINE);
    assert_eq!(service.probe(Endpoint::Startupz).status, Some(503));
    assert_eq!(service.probe(Endpoint::Readyz).status, Some(503));
}

#[test]
fn readyz_fails_once_main_returns_while_tracked_tasks_finish() {
    let mut service = running_testbed(&[]);
    service.command("set tracked-work");
    service.wait_for_stdout("tracked task started", DEADLINE);
    service.send("set quit");
    service.wait_for_stdout("main returning", DEADLINE);
    let ready = service.probe(Endpoint::Readyz);
    assert!(
        !service
            .stdout()
            .contains(&"tracked task finished".to_string()),
        "probed while the tracked task was still running"
    );
    assert_eq!(
        (ready.status, ready.body.as_str()),
        (Some(503), "[-]lifecycle failed: shutting down\n")
    );
    assert_eq!(service.wait_exit(DEADLINE).unwrap().code, Some(0));
}

#[test]
fn a_check_that_panics_when_its_time_out_drops_it_is_contained() {
    let service = fixture(TESTBED)
        .env("TESTBED_DROP_PANIC", "1")
        .spawn()
        .unwrap();
    service.wait_for_stdout("main running", DEADLINE);
    let startup = service.get("/startupz/drop-guard");
    assert_eq!(startup.status, Some(503));
    assert_eq!(
        startup.body,
        "[-]drop-guard failed: timed out after 100 ms\n"
    );
    std::thread::sleep(Duration::from_millis(200));
    assert!(service.is_running(), "{}", service.log_text());
    assert_eq!(service.probe(Endpoint::Livez).status, Some(200));
}

#[test]
fn under_panic_log_a_panic_in_main_runs_the_hooks_and_exits_101() {
    let mut service = fixture(PANIC_LOG_MAIN).spawn().unwrap();
    assert_eq!(service.wait_exit(DEADLINE).unwrap().code, Some(101));
    service.wait_for_stdout("hook goodbye ran", DEADLINE);
    assert_eq!(
        service.termination_message().as_deref(),
        Some("main panicked: main exploded under panic = log")
    );
}
