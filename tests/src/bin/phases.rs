//! A service with one slow step per phase of its life, for the signal suite
//! (`tests/tests/signals.rs`): the test sends SIGTERM or SIGINT at a random
//! moment inside a chosen phase and checks what ran.
//!
//! In order: a preflight check (`async`; with `PHASES_PREFLIGHT_BLOCKING_MS`
//! a plain-`fn` one beside it), an `async fn` `on_startup` hook (with
//! `PHASES_STARTUP_ASYNC_BLOCKS` it blocks its worker thread instead of
//! awaiting, so that an abort takes effect only when it is done), a
//! plain-`fn` `on_startup` hook that blocks its thread (nothing can cancel
//! it), `main` serving until `shutdown_signal()` (the drain delay
//! shows as `drain start` when the phase becomes `Draining` and `drain end`
//! when the signal completes), then three `on_shutdown` hooks of ascending
//! order, the middle one a plain `fn` (which logs every 100 µs with
//! `PHASES_CHATTY_SHUTDOWN`; the last one slows stderr down and leaves a
//! thread flooding the log with `PHASES_LOG_FLOOD`). Each step takes the milliseconds of
//! its `PHASES_*_MS` variable (0 when unset); the drain takes
//! `LIFECYCLE_DRAIN_DELAY_MS`. With `PHASES_MAIN_RETURN_MS`, `main` returns
//! by itself after that long, so that a first signal can land in the
//! shutdown hooks of a stop that began without one.
//!
//! Every step writes `hook NAME start t=US` and `hook NAME end t=US` to
//! stdout, flushed at once, `US` being CLOCK_MONOTONIC in microseconds: the
//! clock is the machine's, so the test places its own signals on the same
//! time line and knows where each one landed, whatever the scheduler did
//! to either process. An `async` step dropped before it finished (start-up
//! abandoned) writes `hook NAME cancelled t=US` instead of `end`.

use std::io::Write;
use std::time::Duration;

use lifecycle_runtime::{on_shutdown, on_startup, preflight, readiness, service_main, Phase};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

/// Microseconds of CLOCK_MONOTONIC, the clock the test reads too.
fn monotonic_us() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes the timespec it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    now.tv_sec as u64 * 1_000_000 + now.tv_nsec as u64 / 1_000
}

/// Writes one record line, flushed, so the test sees it as it happens. The
/// clock is read under the lock, so that the lines' order is their time
/// stamps' order even when two threads record at once. A closed stdout
/// (the test gave up) loses the line rather than panicking inside a hook,
/// which would change the exit code under test.
fn record(name: &str, event: &str) {
    let mut stdout = std::io::stdout().lock();
    let line = format!("hook {name} {event} t={}\n", monotonic_us());
    let _ = stdout.write_all(line.as_bytes());
    let _ = stdout.flush();
}

fn millis(variable: &str) -> Duration {
    std::env::var(variable)
        .ok()
        .filter(|v| !v.is_empty())
        .map(|v| {
            Duration::from_millis(
                v.parse()
                    .unwrap_or_else(|_| panic!("{variable}={v:?}: expected milliseconds")),
            )
        })
        .unwrap_or_default()
}

/// Writes `hook NAME cancelled` if dropped before [`Unfinished::finish`]:
/// how an `async` step shows that start-up abandoned it.
struct Unfinished(&'static str);

impl Unfinished {
    fn finish(self) {
        std::mem::forget(self);
    }
}

impl Drop for Unfinished {
    fn drop(&mut self) {
        record(self.0, "cancelled");
    }
}

/// An `async` step: a timer, which a dropped future stops at once.
async fn async_step(name: &'static str, variable: &str) {
    let unfinished = Unfinished(name);
    record(name, "start");
    tokio::time::sleep(millis(variable)).await;
    record(name, "end");
    unfinished.finish();
}

/// An `async` step that blocks its worker thread instead of awaiting (as
/// a blocking call in async code does), then yields: an abort takes effect
/// only there, at its first `.await`.
async fn blocking_async_step(name: &'static str, variable: &str) {
    let unfinished = Unfinished(name);
    record(name, "start");
    std::thread::sleep(millis(variable));
    tokio::task::yield_now().await;
    record(name, "end");
    unfinished.finish();
}

/// A plain-`fn` step: blocks its thread, and nothing can stop it.
fn blocking_step(name: &'static str, variable: &str) {
    record(name, "start");
    std::thread::sleep(millis(variable));
    record(name, "end");
}

#[preflight(name = "preflight")]
async fn preflight_step() -> bool {
    async_step("preflight", "PHASES_PREFLIGHT_MS").await;
    true
}

/// A second preflight check, a plain `fn`, running beside the first when
/// `PHASES_PREFLIGHT_BLOCKING_MS` is set (and recorded only then).
#[preflight(name = "preflight-blocking")]
fn preflight_blocking() -> bool {
    if std::env::var_os("PHASES_PREFLIGHT_BLOCKING_MS").is_some() {
        blocking_step("preflight-blocking", "PHASES_PREFLIGHT_BLOCKING_MS");
    }
    true
}

/// With `PHASES_STARTUP_ASYNC_BLOCKS` set, blocks its worker thread rather
/// than awaiting its timer.
#[on_startup(order = 0, name = "startup-async")]
async fn startup_async() {
    if std::env::var_os("PHASES_STARTUP_ASYNC_BLOCKS").is_some() {
        blocking_async_step("startup-async", "PHASES_STARTUP_ASYNC_MS").await;
    } else {
        async_step("startup-async", "PHASES_STARTUP_ASYNC_MS").await;
    }
}

#[on_startup(order = 1, name = "startup-blocking")]
fn startup_blocking() {
    blocking_step("startup-blocking", "PHASES_STARTUP_BLOCKING_MS");
}

#[readiness(timeout_ms = 200)]
async fn accepting() -> bool {
    true
}

// Timeouts well above any step, and small enough that their sum and the
// drain fit the default 25 s shutdown timeout (no budget warning).
#[on_shutdown(order = 1, name = "shutdown-1", timeout_ms = 5000)]
async fn shutdown_1() {
    async_step("shutdown-1", "PHASES_SHUTDOWN_1_MS").await;
}

/// With `PHASES_CHATTY_SHUTDOWN` set, logs a line every 100 µs meanwhile,
/// as a busy service would while another thread decides to exit.
#[on_shutdown(order = 2, name = "shutdown-2", timeout_ms = 5000)]
fn shutdown_2() {
    if std::env::var_os("PHASES_CHATTY_SHUTDOWN").is_none() {
        return blocking_step("shutdown-2", "PHASES_SHUTDOWN_2_MS");
    }
    record("shutdown-2", "start");
    let until = std::time::Instant::now() + millis("PHASES_SHUTDOWN_2_MS");
    while std::time::Instant::now() < until {
        tracing::info!("shutdown-2 still working");
        std::thread::sleep(Duration::from_micros(100));
    }
    record("shutdown-2", "end");
}

/// With `PHASES_LOG_FLOOD` set, slows stderr down and starts a thread that
/// logs as fast as it can, to the end: lifecycle's queue to stderr stays
/// full while its writer still makes progress, so the exit that follows
/// spends its whole drain time (250 ms) before the process is gone.
#[on_shutdown(order = 3, name = "shutdown-3", timeout_ms = 5000)]
async fn shutdown_3() {
    // Started first: by the hook's end the queue is full.
    if std::env::var_os("PHASES_LOG_FLOOD").is_some() {
        throttle_stderr();
        std::thread::spawn(|| loop {
            tracing::info!("flooding the log while the process exits");
        });
    }
    async_step("shutdown-3", "PHASES_SHUTDOWN_3_MS").await;
}

/// Puts a pipe in front of stderr (fd 2), forwarded to the real one at
/// 4 KiB every 2 ms: a reader slower than the flood, so that the queue
/// stays full, fast enough that each write completes well within the 20 ms
/// after which an exit takes stderr for stalled and stops waiting.
fn throttle_stderr() {
    use std::fs::File;
    use std::io::Read;
    use std::os::fd::FromRawFd;

    let mut fds = [0; 2];
    // SAFETY: pipe, dup and dup2 on descriptors this process owns; each
    // File below takes sole ownership of one that nothing else closes.
    let (mut slow, mut real) = unsafe {
        assert_eq!(libc::pipe(fds.as_mut_ptr()), 0, "pipe");
        let real = libc::dup(2);
        assert!(real >= 0, "dup stderr");
        assert_eq!(libc::dup2(fds[1], 2), 2, "dup2 onto stderr");
        libc::close(fds[1]);
        (File::from_raw_fd(fds[0]), File::from_raw_fd(real))
    };
    std::thread::spawn(move || {
        let mut chunk = [0; 4096];
        while let Ok(read @ 1..) = slow.read(&mut chunk) {
            let _ = real.write_all(&chunk[..read]);
            std::thread::sleep(Duration::from_millis(2));
        }
    });
}

#[service_main(probe_addr = "127.0.0.1:0")]
async fn main() {
    record("main", "start");
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the application's port");
    // No notification exists for `Draining`: a poll every millisecond
    // places the drain's start on the time line closely enough.
    let drain_watch = tokio::spawn(async {
        while lifecycle_runtime::phase() != Phase::Draining {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        record("drain", "start");
    });
    let returns_after =
        std::env::var_os("PHASES_MAIN_RETURN_MS").map(|_| millis("PHASES_MAIN_RETURN_MS"));
    let returns = async move {
        match returns_after {
            Some(after) => tokio::time::sleep(after).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(returns);
    let shutdown = lifecycle_runtime::shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => {
                record("drain", "end");
                break;
            }
            _ = &mut returns => break,
            accepted = listener.accept() => {
                if let Ok((mut stream, _)) = accepted {
                    tokio::spawn(async move {
                        let _ = stream
                            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
                            .await;
                    });
                }
            }
        }
    }
    // Returning by itself, main never saw a drain: no record of one.
    drain_watch.abort();
    record("main", "end");
}
