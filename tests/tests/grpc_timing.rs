//! gRPC health in time: `Watch` sees phase changes within 100 ms and check
//! changes within their interval (or a second), one poll serves every
//! watcher of a name, `Check` answers within the checks' timeout + 50 ms,
//! and a stalled application runtime fails `livez` rather than hanging the
//! call. Timing-sensitive, so its own test binary, run one test at a time.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use lifecycle_testing::grpc::{GrpcWatchEvent, ServingStatus};
use lifecycle_testing::Endpoint;
use lifecycle_tests::{fixture, ServiceExt};

const TESTBED: &str = env!("CARGO_BIN_EXE_testbed");
const SINGLE_THREAD_BLOCK: &str = env!("CARGO_BIN_EXE_single-thread-block");
const DEADLINE: Duration = Duration::from_secs(10);
/// The documented bounds are exact; this margin keeps the assertions true
/// on a loaded 2-core machine running a debug build, where the client's
/// own threads may wait that long to be scheduled.
const MARGIN: Duration = Duration::from_millis(150);
/// The documented bound for a phase change to reach a watcher.
const PHASE_BOUND: Duration = Duration::from_millis(100);

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

#[test]
fn watch_sees_sigterm_at_once_while_livez_serves_through_the_drain() {
    let _serial = serial();
    let mut service = fixture(TESTBED)
        .env("LIFECYCLE_DRAIN_DELAY_MS", "1500")
        .start()
        .unwrap();
    let mut ready = service.grpc_watch("readyz").unwrap();
    let mut overall = service.grpc_watch("").unwrap();
    let mut live = service.grpc_watch("livez").unwrap();
    for watch in [&mut ready, &mut overall, &mut live] {
        assert_eq!(
            watch.next(DEADLINE),
            GrpcWatchEvent::Status(ServingStatus::Serving)
        );
    }
    let signalled = Instant::now();
    service.signal(libc::SIGTERM);
    let took_ready = ready
        .wait_for(ServingStatus::NotServing, DEADLINE)
        .expect("readyz NOT_SERVING");
    let took_overall = overall
        .wait_for(ServingStatus::NotServing, DEADLINE)
        .expect("\"\" NOT_SERVING");
    let seen = signalled.elapsed();
    println!(
        "reliability: gRPC Watch after SIGTERM: readyz NOT_SERVING in {} ms, \"\" in {} ms",
        took_ready.as_millis(),
        seen.as_millis()
    );
    assert!(
        took_ready < PHASE_BOUND + MARGIN && seen < PHASE_BOUND + MARGIN,
        "readyz after {took_ready:?}, \"\" after {took_overall:?} (bound {PHASE_BOUND:?} + {MARGIN:?})"
    );
    // livez serves on through the drain: no message until the stream ends,
    // cleanly, when the probe server stops.
    let ended = live.next(DEADLINE);
    assert_eq!(
        ended,
        GrpcWatchEvent::Ended,
        "livez's Watch during the drain"
    );
    assert!(
        signalled.elapsed() >= Duration::from_millis(1500),
        "the livez stream ended before the drain was over"
    );
    assert_eq!(ready.next(DEADLINE), GrpcWatchEvent::Ended);
    assert_eq!(service.wait_exit(DEADLINE).unwrap().code, Some(0));
}

#[test]
fn watch_sees_the_end_of_start_up_at_once() {
    let _serial = serial();
    let mut service = fixture(TESTBED)
        .env("TESTBED_HOLD_STARTUP", "1")
        .spawn()
        .unwrap();
    service.wait_for_stdout("warm_up holding", DEADLINE);
    let mut startup = service.grpc_watch("startupz").unwrap();
    let mut ready = service.grpc_watch("readyz").unwrap();
    for watch in [&mut startup, &mut ready] {
        assert_eq!(
            watch.next(DEADLINE),
            GrpcWatchEvent::Status(ServingStatus::NotServing)
        );
    }
    let released = Instant::now();
    service.send("set release");
    startup
        .wait_for(ServingStatus::Serving, DEADLINE)
        .expect("startupz SERVING");
    ready
        .wait_for(ServingStatus::Serving, DEADLINE)
        .expect("readyz SERVING");
    let took = released.elapsed();
    println!(
        "reliability: gRPC Watch after start-up: SERVING in {} ms",
        took.as_millis()
    );
    assert!(took < PHASE_BOUND + MARGIN, "took {took:?}");
}

#[test]
fn watch_sees_check_changes_within_their_interval_or_a_second() {
    let _serial = serial();
    let mut service = fixture(TESTBED).start().unwrap();
    // In the background every 200 ms.
    let mut background = service.grpc_watch("readyz/background").unwrap();
    // On demand: polled once a second while watched.
    let mut toggle = service.grpc_watch("readyz/toggle").unwrap();
    let mut ready = service.grpc_watch("readyz").unwrap();
    for watch in [&mut background, &mut toggle, &mut ready] {
        assert_eq!(
            watch.next(DEADLINE),
            GrpcWatchEvent::Status(ServingStatus::Serving)
        );
    }

    let changed = Instant::now();
    service.command("set background-down");
    let took = background
        .wait_for(ServingStatus::NotServing, DEADLINE)
        .unwrap();
    assert!(
        changed.elapsed() < Duration::from_millis(200) + MARGIN,
        "a 200 ms background check took {took:?}"
    );
    ready.wait_for(ServingStatus::NotServing, DEADLINE).unwrap();
    service.command("clear background-down");
    background
        .wait_for(ServingStatus::Serving, DEADLINE)
        .unwrap();
    ready.wait_for(ServingStatus::Serving, DEADLINE).unwrap();

    let changed = Instant::now();
    service.command("set down");
    toggle
        .wait_for(ServingStatus::NotServing, DEADLINE)
        .unwrap();
    let took = changed.elapsed();
    println!(
        "reliability: gRPC Watch of an on-demand check: NOT_SERVING in {} ms",
        took.as_millis()
    );
    assert!(
        took < Duration::from_secs(1) + MARGIN,
        "an on-demand check took {took:?}"
    );
    assert_eq!(service.probe(Endpoint::Readyz).status, Some(503));
}

#[test]
fn one_poll_a_second_serves_every_watcher_of_a_name_and_stops_with_them() {
    let _serial = serial();
    let service = fixture(TESTBED).start().unwrap();
    service.wait_for_stdout("main running", DEADLINE);
    let runs = || service.coalesced_runs();
    let mut watchers: Vec<_> = (0..10)
        .map(|_| service.grpc_watch("readyz/coalesced").unwrap())
        .collect();
    // Start-up passed long ago: neither a watcher of startupz nor probes
    // of it are changes that wake the other polls.
    watchers.push(service.grpc_watch("startupz").unwrap());
    for watch in &mut watchers {
        assert_eq!(
            watch.next(DEADLINE),
            GrpcWatchEvent::Status(ServingStatus::Serving)
        );
    }
    let before = runs();
    let watched = Instant::now();
    while watched.elapsed() < Duration::from_secs(3) {
        assert!(service.probe(Endpoint::Startupz).passed());
        assert!(service.grpc_probe("startupz").passed());
        std::thread::sleep(Duration::from_millis(50));
    }
    let during = runs() - before;
    let seconds = watched.elapsed().as_secs_f64();
    println!(
        "reliability: 10 gRPC watchers of one on-demand check: {during} runs in {seconds:.1} s"
    );
    // One run a second for all ten: 3, give or take the edges.
    assert!(
        (2..=5).contains(&during),
        "{during} runs in {seconds:.1} s for 10 watchers"
    );
    drop(watchers);
    // The poll stops with its last watcher: at most a run in flight ends.
    std::thread::sleep(Duration::from_millis(500));
    let after_close = runs();
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(runs(), after_close, "the check still ran with no watcher");
}

#[test]
fn sigterm_reaches_a_watcher_at_once_after_another_change_during_a_slow_check() {
    let _serial = serial();
    let mut service = fixture(TESTBED)
        .env("TESTBED_SLOW_CHECK_MS", "800")
        .env("LIFECYCLE_DRAIN_DELAY_MS", "1500")
        .start()
        .unwrap();
    let mut ready = service.grpc_watch("readyz").unwrap();
    assert_eq!(
        ready.next(DEADLINE),
        GrpcWatchEvent::Status(ServingStatus::Serving)
    );
    // Each guard dropped is a change: the first starts a run of the
    // 800 ms check, the second comes during it.
    service.command("clear unready");
    service.command("clear unready");
    let signalled = Instant::now();
    service.signal(libc::SIGTERM);
    let took = ready.wait_for(ServingStatus::NotServing, DEADLINE).unwrap();
    println!(
        "reliability: gRPC Watch after SIGTERM during a slow check: NOT_SERVING in {} ms",
        signalled.elapsed().as_millis()
    );
    assert!(
        took < PHASE_BOUND + MARGIN,
        "took {took:?}: the watcher waited for the 800 ms check"
    );
    assert_eq!(service.wait_exit(DEADLINE).unwrap().code, Some(0));
}

#[test]
fn a_hanging_check_fails_a_grpc_check_within_its_timeout() {
    let _serial = serial();
    let service = fixture(TESTBED).env("TESTBED_HANG", "1").start().unwrap();
    for _ in 0..5 {
        let answer = service.grpc_probe("readyz");
        assert_eq!(answer.status, Some(ServingStatus::NotServing), "{answer}");
        assert!(
            answer.elapsed >= Duration::from_millis(200)
                && answer.elapsed < Duration::from_millis(200 + 50) + MARGIN,
            "{answer}: the hang check's timeout is 200 ms"
        );
    }
    assert!(service.grpc_probe("livez").passed());
}

#[test]
fn a_stalled_runtime_fails_livez_over_grpc_in_time() {
    let _serial = serial();
    let service = fixture(SINGLE_THREAD_BLOCK)
        .env("LIFECYCLE_STALL_THRESHOLD_MS", "1000")
        .spawn()
        .unwrap();
    service.wait_for_stdout("blocking the runtime thread", DEADLINE);
    let blocked = Instant::now();
    loop {
        let answer = service.grpc_probe("livez");
        assert!(
            answer.elapsed < Duration::from_secs(1),
            "a hung call: {answer}"
        );
        if answer.status == Some(ServingStatus::NotServing) {
            break;
        }
        assert_eq!(answer.status, Some(ServingStatus::Serving), "{answer}");
        assert!(blocked.elapsed() < Duration::from_secs(5), "still {answer}");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(blocked.elapsed() < Duration::from_millis(1000 + 1000));
}
