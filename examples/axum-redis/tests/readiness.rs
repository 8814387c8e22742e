//! Readiness follows Redis, liveness never does: the example starts
//! without Redis (out of rotation, never restarted), turns ready within a
//! second of Redis coming up, leaves rotation when Redis goes away and
//! comes back within a second of its return.

// A real redis-server, partitioned, from the Linux harness (lifecycle-tests).
#![cfg(target_os = "linux")]

mod support;

use std::time::{Duration, Instant};

use lifecycle_testing::{Endpoint, Kubelet, Manifest, Service, Stop};
use lifecycle_tests::partition::Partition;
use lifecycle_tests::redis::RedisServer;
use lifecycle_tests::run;

use support::{builder, Client};

/// The promise: ready again within a second of Redis answering.
const BACK_WITHIN: Duration = Duration::from_secs(1);
/// How long an outage may take to show on `/readyz` (the check runs every
/// 250 ms).
const GONE_WITHIN: Duration = Duration::from_secs(2);

/// `/readyz` fails with the `redis` check's connection error; `/livez`
/// passes.
fn assert_out_of_rotation_for_redis(service: &Service) {
    let ready = service.verbose(Endpoint::Readyz);
    assert_eq!(ready.passed, Some(false), "{ready:?}");
    let redis = ready.check("redis").expect("a redis check");
    let reason = redis.reason.as_deref().unwrap_or_default();
    assert!(
        !redis.passed && reason.contains("Connection refused"),
        "{redis:?}"
    );
    // Liveness never asks Redis.
    service.assert_passing(Endpoint::Livez);
}

/// Waits for `/readyz` to pass and returns how long that took.
fn ready_after(service: &Service, since: Instant) -> Duration {
    service
        .wait_passing(Endpoint::Readyz, BACK_WITHIN)
        .unwrap_or_else(|e| panic!("not ready within {BACK_WITHIN:?} of Redis answering: {e}"));
    since.elapsed()
}

#[test]
fn readiness_follows_redis_going_away_and_coming_back() {
    let mut redis = RedisServer::start();
    redis.halt();

    // No Redis: the service starts all the same (`start` waits for
    // /startupz), cold, and says why.
    let builder = builder(&redis);
    let kubelet = Kubelet::new(Manifest::from_builder(&builder).unwrap()).time_scale(0.1);
    let mut service = builder.start().unwrap();
    service
        .wait_for_log("cache not warmed, starting cold", Duration::from_secs(5))
        .unwrap();
    let app = service.app_addr().unwrap();
    assert_out_of_rotation_for_redis(&service);
    // An item it has not cached cannot be read: a 503 that says why.
    let answer = Client::new(app).get("/items/missing").unwrap();
    assert_eq!(answer.status, 503, "{answer:?}");
    assert!(answer.body.contains("Redis is unreachable"), "{answer:?}");

    // Watched by the kubelet through the outage: out of rotation, never
    // restarted. A crash loop would show here.
    let report = kubelet.watch(&service, Duration::from_secs(2));
    report.assert_never_restarted();
    report.assert_never_joined_endpoints();

    // Redis comes up: ready within a second.
    redis.resume();
    let took = ready_after(&service, Instant::now());
    eprintln!("ready {took:?} after Redis came up");

    // Redis goes away (killed, as a lost node): out of rotation, alive.
    redis.halt();
    service.wait_failing(Endpoint::Readyz, GONE_WITHIN).unwrap();
    assert_out_of_rotation_for_redis(&service);

    // And back: the shared connection is re-established, ready within a
    // second, and the API reads Redis again.
    redis.resume();
    let took = ready_after(&service, Instant::now());
    eprintln!("ready {took:?} after Redis came back");
    let answer = Client::new(app).get("/items/missing").unwrap();
    assert_eq!(answer.status, 404, "{answer:?}");

    let stopped = service.stop(Stop::grace(Duration::from_secs(15)));
    assert_eq!(stopped.exit.code, Some(0), "{stopped:?}");
}

/// Redis lost without a word (a partition, a node gone): its connections
/// stay open and nothing answers. The PING times out within the check's
/// own time-out, and once Redis answers again (here: new connections pass,
/// the old ones stay dead, as with a replaced node at the same address)
/// the service is ready within a second on a new connection, instead of
/// waiting on the dead one for ever.
#[test]
fn readiness_comes_back_after_a_partition_on_a_new_connection() {
    let redis = RedisServer::start();
    let partition = Partition::new(redis.port());
    let mut service = builder(&redis)
        .env("REDIS_URL", partition.redis_url())
        .start()
        .unwrap();
    service
        .wait_passing(Endpoint::Readyz, Duration::from_secs(5))
        .unwrap();

    partition.cut();
    service.wait_failing(Endpoint::Readyz, GONE_WITHIN).unwrap();
    let ready = service.verbose(Endpoint::Readyz);
    let check = ready.check("redis").expect("a redis check");
    let reason = check.reason.as_deref().unwrap_or_default();
    // Redis's client gave up within its own time-outs, before the
    // framework's (`timed out after 900 ms`) had to.
    assert!(
        !check.passed && reason.contains("timed out") && !reason.contains("900 ms"),
        "{check:?}"
    );
    service.assert_passing(Endpoint::Livez);

    partition.restore();
    let took = ready_after(&service, Instant::now());
    eprintln!("ready {took:?} after the partition ended");

    let stopped = service.stop(Stop::grace(Duration::from_secs(15)));
    assert_eq!(stopped.exit.code, Some(0), "{stopped:?}");
}

/// The opposite of an outage: a configuration mistake (a `REDIS_URL` that
/// cannot be parsed, a flush interval of 0) is one no wait fixes, so a
/// preflight check stops the service (and, run alone by
/// `--lifecycle-preflight`, the initContainer) with exit 1 and the reason.
#[test]
fn a_configuration_mistake_stops_the_start() {
    for (variable, value, check) in [
        ("REDIS_URL", "redis:/nowhere", "redis_url_is_valid"),
        ("FLUSH_INTERVAL_MS", "0", "flush_interval_is_valid"),
    ] {
        let env = [
            (variable, value),
            ("LIFECYCLE_PROBE_ADDR", "127.0.0.1:0"),
            ("APP_ADDR", "127.0.0.1:0"),
        ];
        let (code, _, stderr) = run(support::AXUM_REDIS, &[], &env);
        assert_eq!(code, Some(1), "{stderr}");
        let reason = format!("preflight check \"{check}\" failed: {variable}: ");
        assert!(stderr.contains(&reason), "{stderr}");
        assert!(!stderr.contains("serving on"), "{stderr}");

        let (code, stdout, stderr) = run(support::AXUM_REDIS, &["--lifecycle-preflight"], &env);
        assert_eq!(code, Some(1), "{stderr}");
        let line = format!("[-]{check} failed: {variable}: ");
        assert!(stdout.iter().any(|l| l.starts_with(&line)), "{stdout:?}");
    }
}

/// `REDIS_URL` may carry a password: the logs name Redis by host and port
/// only.
#[test]
fn the_logs_name_redis_without_its_password() {
    let mut redis = RedisServer::start();
    redis.halt();
    let url = format!("redis://:s3cret@127.0.0.1:{}", redis.port());
    let mut service = builder(&redis).env("REDIS_URL", &url).start().unwrap();
    let line = service
        .wait_for_log("serving on http://", Duration::from_secs(5))
        .unwrap();
    assert!(
        line.ends_with(&format!("; Redis at 127.0.0.1:{}", redis.port())),
        "{line}"
    );
    let stopped = service.stop(Stop::grace(Duration::from_secs(15)));
    assert_eq!(stopped.exit.code, Some(0), "{stopped:?}");
    assert!(
        stopped.log.iter().all(|line| !line.contains("s3cret")),
        "{:?}",
        stopped.log
    );
}
