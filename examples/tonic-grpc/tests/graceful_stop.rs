//! A SIGTERM stops the gRPC server gracefully: through the drain delay
//! `readyz` and the overall status `""` say `NOT_SERVING` on the
//! application's own port while calls are still served and `livez` stays
//! `SERVING`; then the listener closes, a call in flight is answered, and
//! the process exits 0.

// A real redis-server from the Linux harness (lifecycle-tests); libc signals.
#![cfg(target_os = "linux")]

mod support;

use std::net::TcpStream;
use std::time::{Duration, Instant};

use lifecycle_runtime::grpc::proto::health_check_response::ServingStatus;
use lifecycle_testing::Endpoint;
use lifecycle_tests::redis::RedisServer;

use support::{assert_status, builder, wait_until, Client};

const DEADLINE: Duration = Duration::from_secs(10);

#[test]
fn the_drain_delay_serves_calls_while_health_says_leave() {
    const DRAIN_DELAY: Duration = Duration::from_millis(1500);
    let redis = RedisServer::start();
    let mut service = builder(&redis)
        .env(
            "LIFECYCLE_DRAIN_DELAY_MS",
            DRAIN_DELAY.as_millis().to_string(),
        )
        .start()
        .unwrap();
    let app = Client::connect(service.app_addr().unwrap());
    app.wait_for("readyz", ServingStatus::Serving, DEADLINE);
    assert_status(&app, "", ServingStatus::Serving);

    let signalled = Instant::now();
    service.signal(libc::SIGTERM);
    // Clients and proxies that health-check the application's port see it
    // leave at once (the documented 100 ms, with room for a loaded
    // machine)…
    let took = app.wait_for("readyz", ServingStatus::NotServing, DEADLINE);
    assert!(
        took < Duration::from_millis(500),
        "readyz left after {took:?}"
    );
    assert_status(&app, "", ServingStatus::NotServing);
    assert_status(&app, "livez", ServingStatus::Serving);
    service.assert_failing(Endpoint::Readyz);
    // …and until the drain delay is over, calls are still served, on the
    // connection the client already had.
    app.set("during-drain", "served").unwrap();
    assert_eq!(app.get("during-drain").unwrap(), "served");
    assert!(
        signalled.elapsed() < DRAIN_DELAY,
        "the calls came after the drain delay: the test proves nothing"
    );

    let exit = service.wait_exit(DEADLINE).unwrap();
    assert_eq!(exit.code, Some(0), "{:?}", service.log());
    assert!(signalled.elapsed() >= DRAIN_DELAY);
}

#[test]
fn a_call_in_flight_when_the_listener_closes_is_answered_and_the_exit_is_0() {
    let redis = RedisServer::start();
    let mut service = builder(&redis).start().unwrap();
    let addr = service.app_addr().unwrap();
    let app = Client::connect(addr);
    service.wait_passing(Endpoint::Readyz, DEADLINE).unwrap();

    // Redis holds every write until told otherwise, so a `Set` stays in
    // flight as long as the test needs: in Redis, its client blocked.
    assert_eq!(redis.command(&["CLIENT", "PAUSE", "60000", "WRITE"]), "+OK");
    let call = app.spawn_set("in-flight", "answered");
    let sent = Instant::now();
    wait_until("the Set blocked in Redis", DEADLINE, || {
        redis
            .command(&["CLIENT", "LIST"])
            .lines()
            .any(|client| client.contains(" flags=b ") && client.contains(" cmd=set "))
            .then_some(())
    });

    service.signal(libc::SIGTERM);
    // The drain delay is 0 here: the server stops accepting at once…
    wait_until("the application's listener closed", DEADLINE, || {
        TcpStream::connect(addr).is_err().then_some(())
    });
    assert!(service.is_running(), "{:?}", service.log());
    assert!(!call.is_finished(), "the call ended before Redis answered");
    // …and waits for the call in flight: Redis answers, the client gets
    // its `Ok`, the write is there.
    assert_eq!(redis.command(&["CLIENT", "UNPAUSE"]), "+OK");
    let answer = app.finish(call);
    assert!(
        answer.is_ok(),
        "{answer:?} after {:?} in flight; log: {:?}",
        sent.elapsed(),
        service.log()
    );
    assert_eq!(redis.command(&["GET", "kv:in-flight"]), "$8\nanswered");

    let exit = service.wait_exit(DEADLINE).unwrap();
    assert_eq!(exit.code, Some(0), "{:?}", service.log());
    assert!(
        service
            .log()
            .iter()
            .any(|line| line.contains("gRPC server stopped; every call in flight was answered")),
        "{:?}",
        service.log()
    );
}
