//! Redis going away, hanging and coming back: readiness follows it,
//! liveness never asks it, and the consumer loop neither errs on an idle
//! queue nor wedges on a silent connection.

// A real redis-server, partitioned, from the Linux harness (lifecycle-tests).
#![cfg(target_os = "linux")]

mod support;

use std::time::{Duration, Instant};

use lifecycle_testing::{Endpoint, Service, Stop};
use lifecycle_tests::partition::Partition;
use lifecycle_tests::redis::RedisServer;
use support::{blocked_in_blmove, llen, push_jobs, wait_until, worker};

const GRACE: Duration = Duration::from_secs(20);
/// The liveness limit these tests give the consumer loop: the lowest the
/// worker accepts.
const STALL_MS: u64 = 4500;

/// Probes `endpoint` every 50 ms for `period`, and panics unless every
/// answer passes.
#[track_caller]
fn passes_throughout(service: &Service, endpoint: Endpoint, period: Duration) {
    let until = Instant::now() + period;
    while Instant::now() < until {
        service.assert_passing(endpoint);
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn readiness_follows_redis_and_liveness_never_asks_it() {
    let mut redis = RedisServer::start();
    redis.halt();

    // Without Redis the worker starts all the same…
    let mut service = worker(&redis.url(), "w1", 50)
        .env("CONSUMER_STALL_MS", STALL_MS.to_string())
        .start()
        .unwrap();
    // …out of rotation, with Redis's own error as the reason.
    service.assert_failing(Endpoint::Readyz);
    let ready = service.verbose(Endpoint::Readyz);
    let check = ready.check("redis").expect("a readiness check named redis");
    assert!(!check.passed, "{ready:?}");
    assert!(
        check
            .reason
            .as_deref()
            .unwrap_or("")
            .contains("Connection refused"),
        "{ready:?}"
    );
    service.assert_passing(Endpoint::Livez);

    // Ready within a second of Redis coming back.
    redis.resume();
    let back = Instant::now();
    service
        .wait_passing(Endpoint::Readyz, Duration::from_secs(1))
        .unwrap();
    assert!(
        back.elapsed() <= Duration::from_secs(1),
        "{:?}",
        back.elapsed()
    );
    // The consumer came back by itself.
    push_jobs(&redis, &["after-outage".into()]);
    wait_until(
        "the job pushed after the outage done",
        Duration::from_secs(5),
        || (redis.list("done") == ["after-outage"]).then_some(()),
    );

    // Redis gone again: out of rotation, never restarted, however long.
    redis.halt();
    service
        .wait_failing(Endpoint::Readyz, Duration::from_secs(1))
        .unwrap();
    passes_throughout(
        &service,
        Endpoint::Livez,
        Duration::from_millis(STALL_MS + 1000),
    );
    service.assert_failing(Endpoint::Readyz);

    let stopped = service.stop(Stop::grace(GRACE));
    assert_eq!(stopped.exit.code, Some(0), "{stopped:?}");
}

#[test]
fn an_idle_queue_is_no_error_and_the_readiness_ping_never_waits_behind_the_blocking_move() {
    let redis = RedisServer::start();
    let mut service = worker(&redis.url(), "w1", 100).start().unwrap();
    service
        .wait_passing(Endpoint::Readyz, Duration::from_secs(5))
        .unwrap();
    // The queue is empty: the consumer sits in BLMOVE, a second at a time.
    // A PING queued behind it would wait up to a second and fail the
    // check's 500 ms timeout.
    passes_throughout(&service, Endpoint::Readyz, Duration::from_millis(3000));
    // Three blocks ended without a job: none of them was an error.
    let failures: Vec<_> = service
        .log()
        .into_iter()
        .filter(|line| line.contains("taking jobs failed"))
        .collect();
    assert!(failures.is_empty(), "{failures:?}");

    // A job pushed to the idle queue is taken by the waiting BLMOVE at once.
    let pushed = Instant::now();
    push_jobs(&redis, &["idle-1".into()]);
    wait_until("idle-1 done", Duration::from_secs(5), || {
        (redis.list("done") == ["idle-1"]).then_some(())
    });
    assert!(
        pushed.elapsed() < Duration::from_millis(1000),
        "{:?}",
        pushed.elapsed()
    );

    // A SIGTERM is noticed within the block.
    let stopped = service.stop(Stop::grace(GRACE));
    assert_eq!(stopped.exit.code, Some(0), "{stopped:?}");
    assert!(
        stopped.signal_to_exit < Duration::from_millis(2500),
        "{stopped:?}"
    );
}

#[test]
fn a_silent_redis_never_wedges_the_consumer() {
    let redis = RedisServer::start();
    let network = Partition::new(redis.port());
    let mut service = worker(&network.redis_url(), "w1", 50)
        .env("CONSUMER_STALL_MS", STALL_MS.to_string())
        .start()
        .unwrap();
    service
        .wait_passing(Endpoint::Readyz, Duration::from_secs(5))
        .unwrap();
    let waiting = || blocked_in_blmove(&redis).then_some(());
    wait_until(
        "the consumer waiting in BLMOVE",
        Duration::from_secs(5),
        waiting,
    );

    // Redis stops answering in the middle of that BLMOVE, without a reset:
    // readiness fails on the PING's timeout, and the BLMOVE gives up on its
    // response timeout instead of waiting forever, so the loop's heartbeat
    // goes on well past the liveness limit.
    network.cut();
    service
        .wait_failing(Endpoint::Readyz, Duration::from_secs(2))
        .unwrap();
    passes_throughout(
        &service,
        Endpoint::Livez,
        Duration::from_millis(STALL_MS + 1000),
    );
    service
        .wait_for_log("taking jobs failed", Duration::from_secs(1))
        .unwrap();

    // Back for new connections; those that saw the cut stay dead: ready
    // again on a new connection, and taking jobs.
    network.restore();
    service
        .wait_passing(Endpoint::Readyz, Duration::from_secs(3))
        .unwrap();
    push_jobs(&redis, &["after-partition".into()]);
    wait_until("after-partition done", Duration::from_secs(5), || {
        (llen(&redis, "done") == 1).then_some(())
    });

    // A SIGTERM while Redis is silent still ends the loop, and the stop.
    wait_until(
        "the consumer waiting in BLMOVE",
        Duration::from_secs(5),
        waiting,
    );
    network.cut();
    let stopped = service.stop(Stop::grace(GRACE));
    assert_eq!(stopped.exit.code, Some(0), "{stopped:?}");
    assert!(
        stopped.signal_to_exit < Duration::from_secs(5),
        "{stopped:?}"
    );
}
