//! The cache and the write buffer: warmed from Redis at start-up, read
//! through on a miss, written behind, and every acknowledged write in Redis
//! once the process has exited 0 (or an exit 1 that says how many were
//! lost).

// Against a real redis-server started by the Linux harness (lifecycle-tests).
#![cfg(target_os = "linux")]

mod support;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use lifecycle_testing::probe::DEFAULT_TIMEOUT;
use lifecycle_testing::{Endpoint, Stop};
use lifecycle_tests::redis::RedisServer;

use support::{builder, hash, Client, REQUEST_TIMEOUT};

/// A flush interval the tests never reach: only the shutdown hook writes.
const NEVER: &str = "86400000";

#[test]
fn every_put_acknowledged_before_sigterm_is_in_redis_after_the_exit() {
    let redis = RedisServer::start();
    let mut service = builder(&redis)
        .env("FLUSH_INTERVAL_MS", NEVER)
        .start()
        .unwrap();
    let app = service.app_addr().unwrap();

    // 50 items, each written twice: the second value is the one to keep.
    let mut expected = BTreeMap::new();
    let mut client = Client::keep_alive(app);
    for round in 0..2 {
        for item in 0..50 {
            let (id, value) = (format!("item-{item}"), format!("value-{item}-{round}"));
            let answer = client.put(&format!("/items/{id}"), &value).unwrap();
            assert_eq!(answer.status, 200, "{answer:?}");
            assert_eq!(answer.body, format!(r#"{{"id":"{id}","value":"{value}"}}"#));
            expected.insert(id, value);
        }
    }
    // Read back from the cache at once…
    let answer = client.get("/items/item-7").unwrap();
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (200, r#"{"id":"item-7","value":"value-7-1"}"#)
    );
    let live = service.probe_path("/livez/store?verbose", DEFAULT_TIMEOUT);
    assert!(
        live.body
            .starts_with("[+]store ok (cached_items=50, pending_writes=50)"),
        "{live}"
    );
    // …and behind: nothing in Redis yet, so what is there after the exit
    // was written by the stop.
    assert_eq!(redis.command(&["EXISTS", "items"]), ":0");

    let stopped = service.stop(Stop::grace(Duration::from_secs(15)));
    assert_eq!(stopped.exit.code, Some(0), "{stopped:?}");
    assert!(
        stopped
            .log
            .iter()
            .any(|line| line.contains("shutdown: 50 buffered write(s) flushed to Redis")),
        "{:?}",
        stopped.log
    );
    assert_eq!(hash(&redis, "items"), expected);
}

#[test]
fn the_cache_is_warmed_at_start_up_and_read_through_on_a_miss() {
    let mut redis = RedisServer::start();
    assert_eq!(
        redis.command(&["HSET", "items", "a", "from-redis-a", "b", "from-redis-b"]),
        ":2"
    );
    let mut service = builder(&redis).start().unwrap();
    service
        .wait_for_log(
            "cache warmed with 2 item(s) from Redis",
            Duration::from_secs(5),
        )
        .unwrap();
    let app = service.app_addr().unwrap();
    service
        .wait_passing(Endpoint::Readyz, Duration::from_secs(5))
        .unwrap();

    // Written by another instance after this one started: read through.
    assert_eq!(redis.command(&["HSET", "items", "c", "from-redis-c"]), ":1");
    let answer = Client::new(app).get("/items/c").unwrap();
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (200, r#"{"id":"c","value":"from-redis-c"}"#)
    );
    let answer = Client::new(app).get("/items/none").unwrap();
    assert_eq!(answer.status, 404, "{answer:?}");

    // Redis gone: what was warmed or read through is still served.
    redis.halt();
    service
        .wait_failing(Endpoint::Readyz, Duration::from_secs(2))
        .unwrap();
    for (id, value) in [
        ("a", "from-redis-a"),
        ("b", "from-redis-b"),
        ("c", "from-redis-c"),
    ] {
        let answer = Client::new(app).get(&format!("/items/{id}")).unwrap();
        assert_eq!(
            (answer.status, answer.body),
            (200, format!(r#"{{"id":"{id}","value":"{value}"}}"#))
        );
    }
    // Nothing buffered: the stop has nothing to flush and exits 0 without
    // Redis.
    let stopped = service.stop(Stop::grace(Duration::from_secs(15)));
    assert_eq!(stopped.exit.code, Some(0), "{stopped:?}");
}

#[test]
fn writes_reach_redis_while_running_and_a_write_redis_cannot_take_fails_the_stop() {
    let mut redis = RedisServer::start();
    let mut service = builder(&redis)
        .env("FLUSH_INTERVAL_MS", "100")
        .start()
        .unwrap();
    let app = service.app_addr().unwrap();

    // The periodic flush writes it while the service runs.
    let answer = Client::new(app).put("/items/early", "flushed").unwrap();
    assert_eq!(answer.status, 200, "{answer:?}");
    let until = Instant::now() + Duration::from_secs(5);
    while redis.command(&["HGET", "items", "early"]) != "$7\nflushed" {
        assert!(Instant::now() < until, "not flushed within 5 s");
        std::thread::sleep(Duration::from_millis(20));
    }

    // A write acknowledged while Redis is down stays buffered; if Redis is
    // still down at the stop, the exit says it was lost.
    redis.halt();
    let answer = Client::new(app).put("/items/late", "lost").unwrap();
    assert_eq!(answer.status, 200, "{answer:?}");
    let stopped = service.stop(Stop::grace(Duration::from_secs(15)));
    assert_eq!(stopped.exit.code, Some(1), "{stopped:?}");
    let message = stopped.termination_message.unwrap_or_default();
    assert!(
        message.contains("on_shutdown hook \"flush_writes\" failed: 1 write(s) not flushed to Redis: Connection refused"),
        "{message}"
    );
}

/// `ConnectInfo<PeerAddr>` gives the handler the client's address through
/// lifecycle's listener: the `PUT` is logged with the address the client's
/// own socket has.
#[test]
fn each_write_is_logged_with_the_clients_address() {
    let redis = RedisServer::start();
    let mut service = builder(&redis)
        .env("RUST_LOG", "info,axum_redis=debug")
        .start()
        .unwrap();
    let app = service.app_addr().unwrap();

    let mut stream = TcpStream::connect_timeout(&app, REQUEST_TIMEOUT).unwrap();
    stream.set_read_timeout(Some(REQUEST_TIMEOUT)).unwrap();
    let client = stream.local_addr().unwrap();
    let body = r#"{"value":"mine"}"#;
    write!(
        stream,
        "PUT /items/whose HTTP/1.1\r\nHost: axum-redis\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");

    let line = service
        .wait_for_log(r#"item "whose" written by "#, REQUEST_TIMEOUT)
        .unwrap();
    assert!(line.ends_with(&format!(" written by {client}")), "{line}");
    let stopped = service.stop(Stop::grace(Duration::from_secs(15)));
    assert_eq!(stopped.exit.code, Some(0), "{stopped:?}");
}
