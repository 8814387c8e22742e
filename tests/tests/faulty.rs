//! Faulty user code (issue 11, item 5): checks and hooks that panic (with
//! payloads that are no string too), hang, block their thread, deadlock on
//! a mutex, spin, return a megabyte of reason or a reason that would forge
//! lines, or call `std::process::exit`. The `faulty` fixture misbehaves as
//! its `FAULTY` variable says.
//!
//! What lifecycle promises, and these tests hold it to:
//! - every probe answer comes within the largest timeout of the checks it
//!   runs + 50 ms, at most 10 KiB, its verdict line last, with
//!   no line a reason forged, and the status the checks' results make;
//! - a check that panics is that check's failure, `panicked: MESSAGE`
//!   (`Box<dyn Any>` for a payload that is no string, as `std` prints
//!   it, even one whose drop panics too), and the process and the probe
//!   server keep running;
//! - a failing, panicking or timed-out `on_startup` hook exits 1 and the
//!   `on_shutdown` hooks still run, once every `on_startup` hook has
//!   returned (a stop waits for those still running up to the hooks'
//!   latest start, the deadline less their budget and 250 ms, and then
//!   exits 1 after them naming what still runs); a failing, panicking or
//!   timed-out `on_shutdown` hook makes the exit 1 and the later hooks still run; the
//!   reason is the termination message (at most 4096 bytes) and the last
//!   line logged;
//! - `std::process::exit(N)` in user code is the user's choice (lifecycle
//!   offers `mark_broken` instead): the process exits with N, the
//!   code the user passed, at once; lifecycle never gets control back, so
//!   no termination message is written and no later hook runs.
//!
//! Timing-sensitive, so its own test binary, one test at a time.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use lifecycle_testing::probe::{MAX_BODY, USER_AGENT};
use lifecycle_testing::{Endpoint, Service, Stop};
use lifecycle_tests::{fixture, termination_log_path, try_request, ServiceExt};

const FAULTY: &str = env!("CARGO_BIN_EXE_faulty");
/// How long anything that should be quick may take on a loaded machine.
const DEADLINE: Duration = Duration::from_secs(15);
/// Every check of the fixture has `timeout_ms = 200`.
const CHECK_TIMEOUT: Duration = Duration::from_millis(200);
/// Every faulty hook of the fixture has `timeout_ms = 300`.
const HOOK_TIMEOUT: Duration = Duration::from_millis(300);
/// The shutdown timeout the tests configure.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_millis(3000);
/// When the `on_shutdown` hooks start at the latest, counted from the
/// stop: the shutdown timeout less their budget (300 ms for order 0,
/// 1000 ms for order 1) and 250 ms.
const HOOKS_LATEST_START: Duration = Duration::from_millis(3000 - 1300 - 250);
/// How the exit names what the hooks no longer waited for.
const STILL_RUNNING: &str =
    "the on_shutdown hooks ran at their latest start and are done; still running: ";
/// What lifecycle adds to a check's timeout for an answer.
const SLACK: Duration = Duration::from_millis(50);
/// The documented bound plus this keeps an assertion true on a loaded
/// 2-core machine running a debug build (as in deadlines.rs).
const MARGIN: Duration = Duration::from_millis(250);
/// What a stop with nothing slow in it may take, from the signal to the
/// exit, on that machine.
const QUICK_STOP: Duration = Duration::from_millis(1000);
/// The exit code the fixture passes to `std::process::exit`.
const USER_EXIT_CODE: i32 = 3;
/// A reason or a detail value in a probe answer is at most this long.
const MAX_VALUE: usize = 512;
/// A termination message is at most this long.
const MAX_TERMINATION_MESSAGE: usize = 4096;

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The fixture's checks: (name, the endpoint that runs it, an `async fn`).
const CHECKS: [(&str, Endpoint, bool); 6] = [
    ("live-async", Endpoint::Livez, true),
    ("live-fn", Endpoint::Livez, false),
    ("ready-async", Endpoint::Readyz, true),
    ("ready-fn", Endpoint::Readyz, false),
    ("start-async", Endpoint::Startupz, true),
    ("start-fn", Endpoint::Startupz, false),
];

/// The fixture with `FAULTY` set to `faulty` and a 3 s shutdown timeout.
fn faulty(faulty: &str) -> lifecycle_testing::ServiceBuilder {
    fixture(FAULTY).env("FAULTY", faulty).env(
        "LIFECYCLE_SHUTDOWN_TIMEOUT_MS",
        SHUTDOWN_TIMEOUT.as_millis().to_string(),
    )
}

/// `TARGET:MODE,…` for every target in `targets`.
fn selection(targets: &[&str], mode: &str) -> String {
    targets
        .iter()
        .map(|target| format!("{target}:{mode}"))
        .collect::<Vec<_>>()
        .join(",")
}

// What a faulty check's reason must read.

/// Whether `reason` is what the check `target` gives in `mode`, as a text
/// answer shows it (control characters escaped).
fn expected_reason(mode: &str, target: &str, is_async: bool, reason: &str) -> bool {
    let timed_out = format!("timed out after {} ms", CHECK_TIMEOUT.as_millis());
    match mode {
        "panic-u32" | "panic-struct" | "panic-drop" => reason == "panicked: Box<dyn Any>",
        "panic-string" => reason == format!("panicked: {target} exploded"),
        "hang" | "sleep" | "deadlock" | "spin" => {
            reason == timed_out
                || (!is_async
                    && reason.starts_with("the previous run has not returned after ")
                    && reason.ends_with(" ms (a plain fn cannot be cancelled)"))
        }
        "huge" => {
            reason.len() <= MAX_VALUE
                && reason.starts_with(&format!("{target}:xxxx"))
                && reason.ends_with('…')
        }
        "newline" => reason == format!("{target}\\n[+]fake ok\\nreadyz check passed"),
        other => panic!("no expectation for mode {other}"),
    }
}

/// Modes in which an `async fn` check blocks the worker it runs on.
fn blocks_workers(mode: &str) -> bool {
    matches!(mode, "sleep" | "deadlock" | "spin")
}

// Probing.

/// One answer, read whole (the kubelet reads 10 KiB; this reads all, to
/// see that there is no more).
struct Asked {
    path: String,
    status: u16,
    body: String,
    elapsed: Duration,
}

impl std::fmt::Display for Asked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown: String = self.body.chars().take(2000).collect();
        write!(
            f,
            "GET {} -> {} in {} ms, {} bytes:\n{shown}",
            self.path,
            self.status,
            self.elapsed.as_millis(),
            self.body.len()
        )
    }
}

/// What the probes of one test saw.
#[derive(Default)]
struct Tally {
    cases: usize,
    probes: usize,
    max: Duration,
}

impl Tally {
    /// Probes `path` as the kubelet does (a new connection, its
    /// `User-Agent`), reading the whole answer; asserts that it came within
    /// `bound` + the margin and is at most 10 KiB.
    fn ask(&mut self, service: &Service, path: &str, bound: Duration) -> Asked {
        let started = Instant::now();
        let answer = try_request(
            service.probe_addr(),
            "GET",
            path,
            &[("User-Agent", USER_AGENT)],
        )
        .unwrap_or_else(|e| {
            panic!(
                "GET {path}: no answer after {} ms: {e}\nlog:\n{}",
                started.elapsed().as_millis(),
                service.log_text()
            )
        });
        let asked = Asked {
            path: path.to_owned(),
            status: answer.status,
            body: answer.body,
            elapsed: started.elapsed(),
        };
        self.probes += 1;
        self.max = self.max.max(asked.elapsed);
        assert!(
            asked.elapsed < bound + MARGIN,
            "bound {} ms + margin {} ms: {asked}",
            bound.as_millis(),
            MARGIN.as_millis()
        );
        assert!(asked.body.len() <= MAX_BODY, "over 10 KiB: {asked}");
        asked
    }
}

/// The reason of each `[-]NAME failed: REASON` line of a text answer.
fn failures(body: &str) -> Vec<(&str, &str)> {
    body.lines()
        .filter_map(|line| line.strip_prefix("[-]"))
        .filter_map(|rest| rest.split_once(" failed: "))
        .collect()
}

/// Asserts what no text answer may hold: a line that is no check's line
/// nor the verdict (a reason broke out of its line), a forged `[+]` line.
fn assert_no_forged_lines(asked: &Asked, verbose: Option<&str>) {
    let lines: Vec<&str> = asked.body.lines().collect();
    let (checks, verdict) = match verbose {
        Some(endpoint) => {
            let verdict = lines.last().copied().unwrap_or_default();
            let expected = if asked.status == 200 {
                format!("{endpoint} check passed")
            } else {
                format!("{endpoint} check failed")
            };
            assert_eq!(verdict, expected, "the verdict line is last: {asked}");
            (&lines[..lines.len() - 1], Some(verdict))
        }
        None => (&lines[..], None),
    };
    for line in checks {
        assert!(
            line.starts_with("[-]") || line.starts_with("[+]") || *line == "ok",
            "a line that is no check's: {line:?} in {asked}"
        );
        assert!(!line.starts_with("[+]fake"), "a forged line: {asked}");
    }
    if verdict.is_none() && asked.status != 200 {
        assert!(
            checks.iter().all(|line| line.starts_with("[-]")),
            "a failing answer lists failures only: {asked}"
        );
    }
}

/// Asserts that every faulty check `asked` reports failed as `mode` makes
/// it, and that every other check of the fixture listed passes (`steady`
/// may fail too when workers are blocked).
fn assert_reasons(asked: &Asked, mode: &str, targets: &[&str]) {
    let failed = failures(&asked.body);
    for (name, _, is_async) in CHECKS {
        let Some(&(_, reason)) = failed.iter().find(|(n, _)| *n == name) else {
            continue;
        };
        assert!(
            targets.contains(&name),
            "{name} is not faulty, yet failed: {asked}"
        );
        assert!(
            expected_reason(mode, name, is_async, reason),
            "{name} in mode {mode}: unexpected reason {reason:?} in {asked}"
        );
    }
    // With every worker blocked, a sound async check times out too, and
    // the runtime check fails once the stall lasts its threshold.
    for (name, reason) in &failed {
        let known = CHECKS.iter().any(|(n, _, _)| n == name);
        let blocked = blocks_workers(mode)
            && ((*name == "steady" && expected_reason(mode, name, true, reason))
                || (*name == "runtime" && reason.starts_with("no progress for ")));
        assert!(known || blocked, "{name} failed: {asked}");
    }
}

/// The checks of the fixture that `endpoint` runs.
fn checks_of(endpoint: Endpoint) -> Vec<&'static str> {
    CHECKS
        .iter()
        .filter(|(_, kind, _)| match endpoint {
            Endpoint::Healthz => *kind == Endpoint::Livez || *kind == Endpoint::Readyz,
            other => *kind == other,
        })
        .map(|(name, _, _)| *name)
        .collect()
}

/// One round of the kubelet's probes, and more: each endpoint plain,
/// verbose and in JSON, and each check on its own.
fn probe_round(tally: &mut Tally, service: &Service, mode: &str, targets: &[&str]) {
    let bound = CHECK_TIMEOUT + SLACK;
    let endpoints = [
        (Endpoint::Livez, "livez"),
        (Endpoint::Readyz, "readyz"),
        (Endpoint::Startupz, "startupz"),
        (Endpoint::Healthz, "healthz"),
    ];
    for (endpoint, word) in endpoints {
        let faulty = checks_of(endpoint)
            .iter()
            .any(|name| targets.contains(name));
        let status = if faulty { 503 } else { 200 };

        let plain = tally.ask(service, endpoint.path(), bound);
        assert_eq!(plain.status, status, "{plain}");
        assert_no_forged_lines(&plain, None);
        assert_reasons(&plain, mode, targets);

        let verbose = tally.ask(service, &format!("{}?verbose", endpoint.path()), bound);
        assert_eq!(verbose.status, status, "{verbose}");
        assert_no_forged_lines(&verbose, Some(word));
        assert_reasons(&verbose, mode, targets);
        for name in checks_of(endpoint) {
            let listed = verbose.body.lines().any(|line| {
                line == format!("[+]{name} ok") || line.starts_with(&format!("[-]{name} failed: "))
            });
            assert!(listed, "{name} is listed: {verbose}");
            if targets.contains(&name) {
                assert!(
                    verbose.body.contains(&format!("[-]{name} failed: ")),
                    "{name} fails: {verbose}"
                );
            }
        }

        let json = tally.ask(service, &format!("{}?format=json", endpoint.path()), bound);
        assert_eq!(json.status, status, "{json}");
        let document: serde_json::Value =
            serde_json::from_str(&json.body).unwrap_or_else(|e| panic!("not JSON ({e}): {json}"));
        assert_eq!(
            document["status"],
            if faulty { "DOWN" } else { "UP" },
            "{json}"
        );
        for check in document["checks"].as_array().expect("checks") {
            let name = check["name"].as_str().unwrap_or_default();
            if let Some(reason) = check["data"]["reason"].as_str() {
                assert!(reason.len() <= MAX_VALUE, "{name}'s reason: {json}");
            }
            if targets.contains(&name) {
                assert_eq!(check["status"], "DOWN", "{name}: {json}");
            }
        }
    }
    for (name, endpoint, _) in CHECKS {
        let one = tally.ask(service, &format!("{}/{name}", endpoint.path()), bound);
        if targets.contains(&name) {
            assert_eq!(one.status, 503, "{one}");
            assert_eq!(failures(&one.body).len(), 1, "{one}");
            assert_eq!(one.body.lines().count(), 1, "one line: {one}");
        } else {
            assert_eq!(one.status, 200, "{one}");
            assert_eq!(one.body, "ok", "{one}");
        }
        assert_no_forged_lines(&one, None);
        assert_reasons(&one, mode, targets);
    }
    let steady = tally.ask(service, "/readyz/steady", bound);
    if !blocks_workers(mode) || targets.iter().all(|t| !t.ends_with("-async")) {
        assert_eq!(
            steady.status, 200,
            "a sound check beside faulty ones: {steady}"
        );
    }
}

/// How a case's service must stop on SIGTERM.
#[derive(Clone, Copy, Debug)]
enum Ending {
    /// At once, with 0: nothing the faulty checks did holds the stop up
    /// (a plain `fn` blocked on the blocking pool is left behind).
    Clean,
    /// `async fn` checks blocked every worker of the application runtime:
    /// the async `on_shutdown` hook cannot run there and times out (its
    /// timeout on lifecycle's own clock), the plain `fn` ones run on the
    /// blocking pool, and the process exits 1 at once, naming the hook.
    HookTimedOut,
}

/// Starts the fixture with `targets` misbehaving in `mode`, probes it two
/// rounds (the second meets the calls the first left blocked), checks it
/// lives on, then stops it and checks how it ends.
fn check_case(tally: &mut Tally, mode: &str, targets: &[&str], ending: Ending) {
    let context = format!("mode {mode}, faulty {targets:?}");
    tally.cases += 1;
    let mut service = faulty(&selection(targets, mode))
        .spawn()
        .unwrap_or_else(|e| panic!("{context}: {e}"));
    // Start-up is over (the startup checks may never pass: /startupz is
    // not waited for).
    service.wait_for_stdout("main running", DEADLINE);
    for _ in 0..2 {
        probe_round(tally, &service, mode, targets);
    }
    assert!(service.is_running(), "{context}: the process died");
    if mode == "spin" {
        // The spinning runs end after 2 s and give their workers back.
        service.wait_for_status("/readyz/steady", 200, DEADLINE);
    }
    let stopped = service.stop(Stop::grace(DEADLINE));
    assert!(!stopped.killed, "{context}: {stopped:?}");
    match ending {
        Ending::Clean => {
            assert_eq!(stopped.exit.code, Some(0), "{context}: {stopped:?}");
            assert!(
                stopped.signal_to_exit < QUICK_STOP,
                "{context}: the stop took {:?}",
                stopped.signal_to_exit
            );
            assert!(
                service.stdout().iter().any(|l| l == "hook last end"),
                "{context}: the shutdown hooks ran"
            );
        }
        Ending::HookTimedOut => {
            assert_eq!(stopped.exit.code, Some(1), "{context}: {stopped:?}");
            assert!(
                stopped.signal_to_exit < HOOK_TIMEOUT + QUICK_STOP,
                "{context}: exited {:?} after SIGTERM",
                stopped.signal_to_exit
            );
            let message = stopped.termination_message.unwrap_or_default();
            assert_eq!(
                message, "on_shutdown hook \"on-shutdown-async\" timed out after 300 ms",
                "{context}"
            );
            assert!(
                service.stdout().iter().any(|l| l == "hook last end"),
                "{context}: the later hooks ran"
            );
        }
    }
}

#[test]
fn faulty_checks_answer_in_time_bounded_unforged_and_the_process_lives_on() {
    let _serial = serial();
    let started = Instant::now();
    let all: Vec<&str> = CHECKS.iter().map(|(name, _, _)| *name).collect();
    let plain_fns: Vec<&str> = CHECKS
        .iter()
        .filter(|(_, _, is_async)| !is_async)
        .map(|(name, _, _)| *name)
        .collect();
    let async_fns: Vec<&str> = CHECKS
        .iter()
        .filter(|(_, _, is_async)| *is_async)
        .map(|(name, _, _)| *name)
        .collect();
    let mut tally = Tally::default();
    // Every check at once: liveness, readiness and startup, async and not.
    for mode in [
        "panic-u32",
        "panic-struct",
        "panic-drop",
        "panic-string",
        "hang",
        "spin",
        "huge",
        "newline",
    ] {
        check_case(&mut tally, mode, &all, Ending::Clean);
    }
    // Blocking for good: plain fns take blocking-pool threads, which never
    // hold up the exit; async fns take the two workers, which the stop's
    // async hook then lacks.
    for mode in ["sleep", "deadlock"] {
        check_case(&mut tally, mode, &plain_fns, Ending::Clean);
        check_case(&mut tally, mode, &async_fns, Ending::HookTimedOut);
    }
    eprintln!(
        "reliability: faulty: cases={} probes={} max_ms={} ({} s)",
        tally.cases,
        tally.probes,
        tally.max.as_millis(),
        started.elapsed().as_secs()
    );
}

// Hooks.

/// The reason a faulty hook `target` gives in `mode`, as the termination
/// message and the log show it.
fn hook_reason(mode: &str, target: &str) -> String {
    match mode {
        "panic-u32" | "panic-struct" | "panic-drop" => "panicked: Box<dyn Any>".to_owned(),
        "panic-string" => format!("panicked: {target} exploded"),
        "hang" | "sleep" | "deadlock" | "spin" => {
            format!("timed out after {} ms", HOOK_TIMEOUT.as_millis())
        }
        "huge" => format!("failed: {target}:xxxx"),
        "newline" => format!("failed: {target}\\n[+]fake ok\\nreadyz check passed"),
        other => panic!("no expectation for mode {other}"),
    }
}

const HOOK_MODES: [&str; 10] = [
    "panic-u32",
    "panic-struct",
    "panic-drop",
    "panic-string",
    "hang",
    "sleep",
    "spin",
    "deadlock",
    "huge",
    "newline",
];

/// Asserts that the log says why the process exited, last, on one line of
/// bounded length, with no line forged by a reason.
fn assert_exit_logged(context: &str, log: &[String], code: i32, message: &str) {
    let last = log.last().map(String::as_str).unwrap_or_default();
    assert!(
        last.contains(&format!("exiting with code {code}: ")),
        "{context}: the reason is the last line logged; last: {:?}",
        last.chars().take(300).collect::<String>()
    );
    assert!(
        last.contains(message.get(..200.min(message.len())).unwrap_or(message)),
        "{context}: the last line logged says what the termination message says: {:?}",
        last.chars().take(300).collect::<String>()
    );
    for line in log {
        // Container runtimes split longer lines (16 KiB).
        assert!(
            line.len() <= 16 * 1024,
            "{context}: a log line of {} bytes",
            line.len()
        );
        // Each line is a record of the subscriber, with its timestamp: a
        // reason did not break out of its line.
        assert!(
            line.len() > 20
                && line.as_bytes()[..4].iter().all(u8::is_ascii_digit)
                && line.as_bytes()[10] == b'T',
            "{context}: a line that is no log record: {line:?}"
        );
        assert!(
            !line.contains("panicked at") && !line.contains("stack backtrace"),
            "{context}: a contained panic is no crash: {line:?}"
        );
    }
}

/// Asserts a termination message: bounded, and naming each hook of
/// `targets` (the first at least, when a huge reason fills it) with its
/// reason in `mode`.
fn assert_hook_message(context: &str, message: &str, kind: &str, targets: &[&str], mode: &str) {
    assert!(
        message.len() <= MAX_TERMINATION_MESSAGE,
        "{context}: a termination message of {} bytes",
        message.len()
    );
    assert!(!message.contains('\n'), "{context}: one line: {message:?}");
    let named: Vec<bool> = targets
        .iter()
        .map(|target| {
            message.contains(&format!(
                "{kind} hook \"{target}\" {}",
                hook_reason(mode, target)
            ))
        })
        .collect();
    if mode == "huge" {
        assert!(named.iter().any(|n| *n), "{context}: {message}");
    } else {
        assert!(named.iter().all(|n| *n), "{context}: {message}");
    }
}

/// The on_startup hooks of `targets` that never return in `mode`: a stop
/// waits for them before the on_shutdown hooks (they may hold what those
/// release), and the shutdown deadline ends the process first. An aborted
/// async hook stops at its next `.await`: one that hangs there is gone.
fn stuck_on_startup_hooks<'a>(mode: &str, targets: &[&'a str]) -> Vec<&'a str> {
    match mode {
        "hang" => targets
            .iter()
            .copied()
            .filter(|t| !t.ends_with("-async"))
            .collect(),
        "sleep" | "deadlock" => targets.to_vec(),
        _ => Vec::new(),
    }
}

#[test]
fn a_faulty_on_startup_hook_fails_start_up_with_1_in_time() {
    let _serial = serial();
    let targets = ["on-startup-async", "on-startup-fn"];
    for mode in HOOK_MODES {
        let context = format!("on_startup hooks in mode {mode}");
        let termination_log = termination_log_path();
        let started = Instant::now();
        let (code, stdout, log) = lifecycle_tests::run(
            FAULTY,
            &[],
            &[
                ("FAULTY", &selection(&targets, mode)),
                ("LIFECYCLE_PROBE_ADDR", "127.0.0.1:0"),
                ("LIFECYCLE_SHUTDOWN_TIMEOUT_MS", "3000"),
                (
                    "LIFECYCLE_TERMINATION_LOG",
                    termination_log.to_str().unwrap(),
                ),
            ],
        );
        let took = started.elapsed();
        assert_eq!(code, Some(1), "{context}: {log}");
        assert!(!stdout.iter().any(|l| l == "main running"), "{context}");
        let message = std::fs::read_to_string(&termination_log).unwrap_or_default();
        let _ = std::fs::remove_file(&termination_log);
        let lines: Vec<String> = log.lines().map(str::to_owned).collect();
        assert_exit_logged(&context, &lines, 1, &message);
        let stuck = stuck_on_startup_hooks(mode, &targets);
        if stuck.is_empty() {
            // From the spawn: the process's own start, the hooks' timeout
            // (or the 2 s a spinning hook takes to give its thread back,
            // which the stop waits for), the shutdown hooks, the exit.
            let bound = if mode == "spin" {
                Duration::from_millis(2000)
            } else {
                HOOK_TIMEOUT
            };
            assert!(
                took < bound + QUICK_STOP + MARGIN,
                "{context}: exited after {} ms",
                took.as_millis()
            );
            assert!(
                stdout.iter().any(|l| l == "hook last end"),
                "{context}: the on_shutdown hooks run after a failed start-up: {stdout:?}"
            );
            assert_hook_message(&context, &message, "on_startup", &targets, mode);
        } else {
            // Start-up failed in time, and said why; the stop waited for
            // the hooks still running up to the on_shutdown hooks' latest
            // start, ran those, and named what was still running.
            for target in targets {
                let failed = format!("on_startup hook \"{target}\" {}", hook_reason(mode, target));
                assert!(
                    log.contains(&failed),
                    "{context}: {failed:?} logged:\n{log}"
                );
            }
            assert!(
                took >= HOOK_TIMEOUT + HOOKS_LATEST_START
                    && took < HOOK_TIMEOUT + SHUTDOWN_TIMEOUT + MARGIN,
                "{context}: exited after {} ms",
                took.as_millis()
            );
            assert!(
                stdout.iter().any(|l| l == "hook last end"),
                "{context}: the on_shutdown hooks got their time: {stdout:?}"
            );
            assert!(message.contains(STILL_RUNNING), "{context}: {message}");
            for target in &stuck {
                assert!(
                    message.contains(&format!("on_startup hook \"{target}\"")),
                    "{context}: names {target}: {message}"
                );
            }
        }
    }
}

#[test]
fn on_startup_hooks_that_block_every_worker_still_time_out_in_time() {
    let _serial = serial();
    // Two async hooks blocking the two workers of the application runtime,
    // whose workers drive its timers: the hooks' time-outs must not need
    // them.
    let targets = ["on-startup-async", "on-startup-async-2"];
    let service = faulty(&selection(&targets, "sleep")).spawn().unwrap();
    let listening = Instant::now();
    let failed = service
        .wait_for_log("on_startup hook \"on-startup-async", DEADLINE)
        .unwrap();
    assert!(
        listening.elapsed() < HOOK_TIMEOUT + QUICK_STOP,
        "start-up failed {} ms after the probe server listened",
        listening.elapsed().as_millis()
    );
    for target in targets {
        assert!(
            failed.contains(&format!(
                "on_startup hook \"{target}\" timed out after 300 ms"
            )),
            "{failed}"
        );
    }
    let mut service = service;
    let exit = service.wait_exit(DEADLINE).unwrap();
    assert_eq!(exit.code, Some(1));
    // The stalled workers keep the async on_shutdown hook from running
    // (it times out); the plain fn ones run on the blocking pool. Then
    // the exit names the hooks that still block the workers.
    let message = service.termination_message().unwrap_or_default();
    assert!(
        message.contains("on_shutdown hook \"on-shutdown-async\" timed out after 300 ms"),
        "{message}"
    );
    let (_, running) = message.split_once(STILL_RUNNING).expect(&message);
    for target in targets {
        assert!(
            running.contains(&format!("on_startup hook \"{target}\"")),
            "{message}"
        );
    }
}

#[test]
fn a_faulty_on_shutdown_hook_makes_the_exit_1_and_the_later_hooks_run() {
    let _serial = serial();
    let targets = ["on-shutdown-async", "on-shutdown-fn"];
    for mode in HOOK_MODES {
        let context = format!("on_shutdown hooks in mode {mode}");
        let mut service = faulty(&selection(&targets, mode))
            .start()
            .unwrap_or_else(|e| panic!("{context}: {e}"));
        service.wait_for_stdout("main running", DEADLINE);
        let stopped = service.stop(Stop::grace(DEADLINE));
        assert!(!stopped.killed, "{context}: {stopped:?}");
        assert_eq!(stopped.exit.code, Some(1), "{context}: {stopped:?}");
        assert!(
            stopped.signal_to_exit < HOOK_TIMEOUT + QUICK_STOP,
            "{context}: exited {} ms after SIGTERM",
            stopped.signal_to_exit.as_millis()
        );
        assert!(
            service.stdout().iter().any(|l| l == "hook last end"),
            "{context}: the later hook ran: {:?}",
            service.stdout()
        );
        let message = stopped.termination_message.clone().unwrap_or_default();
        assert_hook_message(&context, &message, "on_shutdown", &targets, mode);
        assert_exit_logged(&context, &stopped.log, 1, &message);
    }
}

#[test]
fn a_panic_after_the_timeout_with_a_payload_that_panics_on_drop_crashes_nothing() {
    let _serial = serial();
    // Nobody waits for these runs any more when they panic: their payload
    // is disposed of where they ran, and its drop panics in turn.
    let targets = [
        "ready-async",
        "ready-fn",
        "on-shutdown-async",
        "on-shutdown-fn",
    ];
    let mut service = faulty(&selection(&targets, "late-panic-drop"))
        .start()
        .unwrap();
    service.wait_for_stdout("main running", DEADLINE);
    for name in ["ready-async", "ready-fn"] {
        let one = service.get(&format!("/readyz/{name}"));
        assert_eq!(
            one.body,
            format!(
                "[-]{name} failed: timed out after {} ms\n",
                CHECK_TIMEOUT.as_millis()
            ),
            "{one}"
        );
        service.wait_for_stdout(&format!("{name} panics late"), DEADLINE);
    }
    // Both panicked, and the process lives on.
    assert!(service.is_running(), "{}", service.log_text());
    assert_eq!(service.probe(Endpoint::Livez).status, Some(200));
    // The hooks time out, then panic late, during the stop: exit 1, not
    // 101. (The async hook blocks a worker; whether a hook's time-out or
    // its late panic is seen first depends on a worker being free to
    // drive the timer, so either reason will do. No probe during the stop:
    // a readiness run would take the other worker.)
    service.signal(libc::SIGTERM);
    let exit = service.wait_exit(DEADLINE).unwrap();
    assert_eq!(exit.code, Some(1), "{}", service.log_text());
    let message = service.termination_message().unwrap_or_default();
    for target in ["on-shutdown-async", "on-shutdown-fn"] {
        let named =
            |reason: &str| message.contains(&format!("on_shutdown hook \"{target}\" {reason}"));
        assert!(
            named("timed out after 300 ms") || named("panicked: Box<dyn Any>"),
            "{target}: {message}"
        );
    }
}

#[test]
fn the_exits_reason_is_the_last_line_logged_while_another_thread_logs_on() {
    let _serial = serial();
    // A thread of the application's logs every millisecond as the process
    // exits: nothing comes after the exit's reason.
    for run in 0..3 {
        for target in ["on-startup-async", "on-shutdown-fn"] {
            let context = format!("run {run}: {target} failing while a thread logs");
            let mut service = faulty(&format!("{target}:chatty"))
                .spawn()
                .unwrap_or_else(|e| panic!("{context}: {e}"));
            if target.starts_with("on-shutdown") {
                service.wait_for_stdout("main running", DEADLINE);
                service.signal(libc::SIGTERM);
            }
            let exit = service.wait_exit(DEADLINE).unwrap();
            assert_eq!(exit.code, Some(1), "{context}");
            let log = service.log();
            let reason = format!("{target}\" failed: {target} gave up while a thread chatters");
            assert!(
                log.iter().any(|l| l.contains("chatter ")),
                "{context}: the thread logged"
            );
            let last = log.last().map(String::as_str).unwrap_or_default();
            assert!(
                last.contains("exiting with code 1: ") && last.contains(&reason),
                "{context}: the last line logged is {last:?}"
            );
        }
    }
}

#[test]
fn process_exit_in_a_check_or_a_hook_exits_with_the_users_code() {
    let _serial = serial();
    // A check: the process ends during the probe that runs it, which gets
    // no answer.
    for (name, endpoint, _) in CHECKS {
        let context = format!("{name} calling process::exit");
        let mut service = faulty(&format!("{name}:exit"))
            .spawn()
            .unwrap_or_else(|e| panic!("{context}: {e}"));
        service.wait_for_stdout("main running", DEADLINE);
        let answer = service.probe_path(&format!("{}/{name}", endpoint.path()), DEADLINE);
        assert_eq!(answer.status, None, "{context}: {answer}");
        let exit = service.wait_exit(DEADLINE).unwrap();
        assert_eq!(exit.code, Some(USER_EXIT_CODE), "{context}: {exit}");
    }
    // An on_startup hook: start-up never finishes.
    for target in ["on-startup-async", "on-startup-fn"] {
        let context = format!("{target} calling process::exit");
        let (code, stdout, log) = lifecycle_tests::run(
            FAULTY,
            &[],
            &[
                ("FAULTY", &format!("{target}:exit")),
                ("LIFECYCLE_PROBE_ADDR", "127.0.0.1:0"),
            ],
        );
        assert_eq!(code, Some(USER_EXIT_CODE), "{context}: {log}");
        assert!(!stdout.iter().any(|l| l == "main running"), "{context}");
    }
    // An on_shutdown hook: the stop ends there.
    for target in ["on-shutdown-async", "on-shutdown-fn"] {
        let context = format!("{target} calling process::exit");
        let mut service = faulty(&format!("{target}:exit"))
            .start()
            .unwrap_or_else(|e| panic!("{context}: {e}"));
        service.wait_for_stdout("main running", DEADLINE);
        let stopped = service.stop(Stop::grace(DEADLINE));
        assert!(!stopped.killed, "{context}: {stopped:?}");
        assert_eq!(stopped.exit.code, Some(USER_EXIT_CODE), "{context}");
        assert!(
            stopped.signal_to_exit < QUICK_STOP,
            "{context}: {stopped:?}"
        );
    }
}
