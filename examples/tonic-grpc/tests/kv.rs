//! The key-value API over a real Redis, driven by a tonic client: what is
//! set can be read back (and is in Redis), the caller's mistakes and a
//! missing key have their own status codes, and a Redis outage answers
//! `UNAVAILABLE` with the reason, which clients may retry elsewhere.

// Against a real redis-server started by the Linux harness (lifecycle-tests).
#![cfg(target_os = "linux")]

mod support;

use std::time::Duration;

use lifecycle_testing::{Endpoint, Stop};
use lifecycle_tests::redis::RedisServer;
use tonic::Code;

use support::{assert_code, builder, Client};

#[test]
fn what_is_set_is_got_back_and_is_in_redis() {
    let redis = RedisServer::start();
    let mut service = builder(&redis).start().unwrap();
    let app = Client::connect(service.app_addr().unwrap());

    app.set("greeting", "hello, gRPC").unwrap();
    assert_eq!(app.get("greeting").unwrap(), "hello, gRPC");
    // Under the example's prefix, out of the way of other keys.
    assert_eq!(redis.command(&["GET", "kv:greeting"]), "$11\nhello, gRPC");
    // Overwritten, and read from Redis (nothing is cached): another
    // instance's write shows at once.
    app.set("greeting", "hi").unwrap();
    assert_eq!(redis.command(&["SET", "kv:other", "from Redis"]), "+OK");
    assert_eq!(app.get("greeting").unwrap(), "hi");
    assert_eq!(app.get("other").unwrap(), "from Redis");

    let message = assert_code(app.get("nothing"), Code::NotFound);
    assert_eq!(message, r#"no value for key "nothing""#);
    assert_code(app.get(""), Code::InvalidArgument);
    assert_code(app.set("", "x"), Code::InvalidArgument);

    let stopped = service.stop(Stop::grace(Duration::from_secs(15)));
    assert_eq!(stopped.exit.code, Some(0), "{stopped:?}");
}

#[test]
fn a_redis_outage_answers_unavailable_with_the_reason_until_redis_is_back() {
    let mut redis = RedisServer::start();
    let mut service = builder(&redis).start().unwrap();
    let app = Client::connect(service.app_addr().unwrap());
    app.set("kept", "in memory only").unwrap();

    redis.halt();
    service
        .wait_failing(Endpoint::Readyz, Duration::from_secs(2))
        .unwrap();
    let message = assert_code(app.get("kept"), Code::Unavailable);
    assert!(
        message.starts_with("Redis is unreachable: ") && message.contains("Connection refused"),
        "{message}"
    );
    assert_code(app.set("kept", "lost"), Code::Unavailable);

    // Back (empty: the test's Redis saves nothing), and calls succeed on
    // the same client connection: the outage cost the service nothing.
    redis.resume();
    service
        .wait_passing(Endpoint::Readyz, Duration::from_secs(1))
        .unwrap();
    assert_code(app.get("kept"), Code::NotFound);
    app.set("kept", "again").unwrap();
    assert_eq!(app.get("kept").unwrap(), "again");

    let stopped = service.stop(Stop::grace(Duration::from_secs(15)));
    assert_eq!(stopped.exit.code, Some(0), "{stopped:?}");
}

/// A `REDIS_URL` that cannot be parsed is a mistake no wait fixes: the
/// preflight check stops the start (exit 1), and the initContainer
/// (`--lifecycle-preflight`) too.
#[test]
fn a_malformed_redis_url_stops_the_start() {
    let env = [
        ("REDIS_URL", "redis:/nowhere"),
        ("LIFECYCLE_PROBE_ADDR", "127.0.0.1:0"),
        ("APP_ADDR", "127.0.0.1:0"),
    ];
    let (code, _, stderr) = lifecycle_tests::run(support::TONIC_GRPC, &[], &env);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("preflight check \"redis_url_is_valid\" failed: REDIS_URL: "),
        "{stderr}"
    );
    assert!(!stderr.contains("serving gRPC on"), "{stderr}");

    let (code, stdout, stderr) =
        lifecycle_tests::run(support::TONIC_GRPC, &["--lifecycle-preflight"], &env);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stdout
            .iter()
            .any(|l| l.starts_with("[-]redis_url_is_valid failed: REDIS_URL: ")),
        "{stdout:?}"
    );
}
