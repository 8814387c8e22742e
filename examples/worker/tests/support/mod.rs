//! What the worker's tests share: the worker started against a Redis of
//! the test's own, and waits on Redis's state.

// Each test file uses its own part of this module.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use lifecycle_testing::ServiceBuilder;
use lifecycle_tests::fixture;
use lifecycle_tests::redis::RedisServer;

pub const WORKER: &str = env!("CARGO_BIN_EXE_worker");

/// The worker with identity `id`, on the Redis at `redis_url`, whose jobs
/// take `job_ms`.
pub fn worker(redis_url: &str, id: &str, job_ms: u64) -> ServiceBuilder {
    fixture(WORKER)
        .env("REDIS_URL", redis_url)
        .env("WORKER_ID", id)
        .env("JOB_MS", job_ms.to_string())
        .env("WORKER_CONCURRENCY", "4")
}

/// The length of the list `key`.
pub fn llen(redis: &RedisServer, key: &str) -> usize {
    let reply = redis.command(&["LLEN", key]);
    reply
        .strip_prefix(':')
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("LLEN {key}: {reply:?}"))
}

/// Pushes `jobs` on the queue, as a producer does.
pub fn push_jobs(redis: &RedisServer, jobs: &[String]) {
    let mut args = vec!["LPUSH", "jobs"];
    args.extend(jobs.iter().map(String::as_str));
    let reply = redis.command(&args);
    assert!(reply.starts_with(':'), "LPUSH: {reply:?}");
}

/// Whether a client of `redis` is blocked in a `BLMOVE` now: the consumer
/// loop waits for a job.
pub fn blocked_in_blmove(redis: &RedisServer) -> bool {
    redis
        .command(&["CLIENT", "LIST"])
        .lines()
        .any(|client| client.contains(" flags=b ") && client.contains(" cmd=blmove "))
}

/// Calls `probe` until it returns `Some`, or panics naming `what` at the
/// deadline.
#[track_caller]
pub fn wait_until<T>(what: &str, deadline: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let until = Instant::now() + deadline;
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(Instant::now() < until, "not within {deadline:?}: {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}
