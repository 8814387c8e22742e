//! What the worker's tests share: the worker started against a Redis of
//! the test's own, waits on Redis's state, and a TCP proxy that freezes
//! like a network partition.

// Each test file uses its own part of this module.
#![allow(dead_code)]

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
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

/// A TCP proxy to a local port that can freeze: while frozen it forwards
/// nothing either way and new connections hang after the TCP handshake,
/// as a network partition or a hung server does (no reset, no answer).
/// Thawing closes the connections that saw the freeze, as a partition
/// that outlived them does, and forwards new ones again.
pub struct Freezer {
    addr: SocketAddr,
    state: Arc<FreezerState>,
}

#[derive(Default)]
struct FreezerState {
    frozen: AtomicBool,
    /// Bumped by each thaw: connections of an older generation close.
    generation: AtomicU64,
    closed: AtomicBool,
}

impl Freezer {
    /// Starts forwarding 127.0.0.1:ANY to 127.0.0.1:`upstream`.
    pub fn start(upstream: u16) -> Freezer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(FreezerState::default());
        let shared = state.clone();
        std::thread::spawn(move || {
            while !shared.closed.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((client, _)) => {
                        client.set_nonblocking(false).unwrap();
                        if let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) {
                            let generation = shared.generation.load(Ordering::SeqCst);
                            pump(&shared, &client, &server, generation);
                            pump(&shared, &server, &client, generation);
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(e) => panic!("freezer accept: {e}"),
                }
            }
        });
        Freezer { addr, state }
    }

    /// `redis://` at the proxy.
    pub fn url(&self) -> String {
        format!("redis://{}", self.addr)
    }

    pub fn freeze(&self) {
        self.state.frozen.store(true, Ordering::SeqCst);
    }

    pub fn thaw(&self) {
        self.state.generation.fetch_add(1, Ordering::SeqCst);
        self.state.frozen.store(false, Ordering::SeqCst);
    }
}

impl Drop for Freezer {
    fn drop(&mut self) {
        self.state.closed.store(true, Ordering::SeqCst);
    }
}

/// Forwards `from` to `to` on a thread of its own until either side closes,
/// the freezer closes or a thaw retires this connection's generation.
fn pump(state: &Arc<FreezerState>, from: &TcpStream, to: &TcpStream, generation: u64) {
    let state = state.clone();
    let (mut from, mut to) = (from.try_clone().unwrap(), to.try_clone().unwrap());
    from.set_read_timeout(Some(Duration::from_millis(10)))
        .unwrap();
    std::thread::spawn(move || {
        let mut buffer = [0u8; 16 * 1024];
        loop {
            if state.closed.load(Ordering::SeqCst)
                || state.generation.load(Ordering::SeqCst) != generation
            {
                break;
            }
            if state.frozen.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            }
            match from.read(&mut buffer) {
                Ok(0) => break,
                Ok(read) => {
                    if to.write_all(&buffer[..read]).is_err() {
                        break;
                    }
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(_) => break,
            }
        }
        let _ = from.shutdown(Shutdown::Both);
        let _ = to.shutdown(Shutdown::Both);
    });
}
