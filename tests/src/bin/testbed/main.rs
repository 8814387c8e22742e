//! The service the end-to-end tests drive: an HTTP application (`/`,
//! `/slow?ms=N`, `/phase`) with one check or hook per behaviour under test,
//! switched by `TESTBED_*` variables at start and by commands on stdin at
//! run time (see `control.rs`). Logs go to stderr; acks and the record of
//! what ran (`hook NAME start`, …) to stdout.
//!
//! Run it by hand: `cargo run -p lifecycle-tests --bin testbed`, then
//! `curl -s 'localhost:PORT/readyz?verbose'` with the port it logs.

mod control;

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use lifecycle_runtime::metrics::prometheus_client::metrics::counter::Counter;
use lifecycle_runtime::{
    liveness, on_shutdown, on_startup, readiness, service_main, startup, Health,
};
use tokio::net::TcpListener;

// Linked for its checks and hooks alone.
use library_checks as _;

fn env_flag(name: &str) -> bool {
    std::env::var_os(name).is_some()
}

#[on_startup(order = -100)]
fn start_control() {
    control::start();
}

/// Holds start-up until the test says `set release` (TESTBED_HOLD_STARTUP),
/// or fails it (TESTBED_STARTUP_FAIL).
#[on_startup(timeout_ms = 30000)]
async fn warm_up() -> Result<(), String> {
    println!("hook warm_up start");
    if env_flag("TESTBED_STARTUP_FAIL") {
        return Err("cache warm-up failed (TESTBED_STARTUP_FAIL is set)".into());
    }
    if env_flag("TESTBED_HOLD_STARTUP") {
        println!("warm_up holding");
        control::wait_for("release").await;
    }
    WARMED_UP.store(true, Ordering::SeqCst);
    Ok(())
}

/// Set once `warm_up` has run: what the background check needs, as a
/// pool an `on_startup` hook creates.
static WARMED_UP: AtomicBool = AtomicBool::new(false);

/// A plain `fn` that blocks its thread for TESTBED_BLOCKING_STARTUP_MS:
/// nothing can cancel it, so a stop during it must wait for it to return.
#[on_startup(timeout_ms = 30000)]
fn blocking_warm_up() {
    if let Some(work) = env_millis("TESTBED_BLOCKING_STARTUP_MS") {
        println!("hook blocking_warm_up start");
        std::thread::sleep(work);
        println!("hook blocking_warm_up end");
    }
}

/// Follows the `down` flag: the readiness check toggled at run time; with
/// the `refused` flag, it fails with an error whose cause is the system's
/// (its reason keeps it).
#[readiness(timeout_ms = 200)]
async fn toggle() -> Result<(), ToggleError> {
    if control::is_set("refused") {
        Err(ToggleError::Refused(std::io::Error::from_raw_os_error(
            libc::ECONNREFUSED,
        )))
    } else if control::is_set("down") {
        Err(ToggleError::Down)
    } else {
        Ok(())
    }
}

#[derive(Debug)]
enum ToggleError {
    Down,
    Refused(std::io::Error),
}

impl std::fmt::Display for ToggleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ToggleError::Down => "toggled down by the test",
            ToggleError::Refused(_) => "error connecting to server",
        })
    }
}

impl std::error::Error for ToggleError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ToggleError::Down => None,
            ToggleError::Refused(cause) => Some(cause),
        }
    }
}

/// Never answers when TESTBED_HANG is set.
#[readiness(timeout_ms = 200)]
async fn hang() {
    if env_flag("TESTBED_HANG") {
        std::future::pending::<()>().await;
    }
}

/// A plain fn that blocks its thread when TESTBED_BLOCK is set.
#[readiness(name = "blocking-io", timeout_ms = 300)]
fn blocking_io() -> bool {
    if env_flag("TESTBED_BLOCK") {
        std::thread::sleep(Duration::from_secs(5));
    }
    true
}

/// Panics when TESTBED_PANIC is set.
#[readiness]
fn boom() -> bool {
    if env_flag("TESTBED_PANIC") {
        panic!("boom: the check exploded");
    }
    true
}

/// Always failing, but not critical: reported, never fails /readyz.
#[readiness(name = "optional-cache", critical = false)]
fn optional_cache() -> Result<(), &'static str> {
    Err("cache unreachable")
}

static COALESCED_RUNS: AtomicU64 = AtomicU64::new(0);
static BACKGROUND_RUNS: AtomicU64 = AtomicU64::new(0);

/// On demand; takes TESTBED_SLOW_CHECK_MS. Counts its runs (`/runs`).
#[readiness(timeout_ms = 3000)]
async fn coalesced() {
    COALESCED_RUNS.fetch_add(1, Ordering::SeqCst);
    if let Some(work) = env_millis("TESTBED_SLOW_CHECK_MS") {
        tokio::time::sleep(work).await;
    }
}

/// In the background every 200 ms; fails until `warm_up` has run (it
/// checks what start-up made); follows the `background-down` flag.
/// Counts its runs (`/runs`).
#[readiness(interval_ms = 200)]
fn background() -> Result<(), &'static str> {
    BACKGROUND_RUNS.fetch_add(1, Ordering::SeqCst);
    if !WARMED_UP.load(Ordering::SeqCst) {
        Err("warm_up has not run")
    } else if control::is_set("background-down") {
        Err("background flag down")
    } else {
        Ok(())
    }
}

/// Fails with a megabyte of reason, and a megabyte-long detail, when
/// TESTBED_HUGE_REASON is set: answers stay bounded.
#[readiness(name = "huge-reason")]
fn huge_reason() -> Health {
    if !env_flag("TESTBED_HUGE_REASON") {
        return Health::up();
    }
    // 'é' is two bytes: a cut must fall between characters.
    Health::down(format!("x{}", "é".repeat(1 << 19))).with_detail("dump", "y".repeat(1 << 20))
}

/// Fails with a reason (and a detail) that would forge lines of a verbose
/// answer, were they not escaped, when TESTBED_NEWLINE_REASON is set.
#[readiness(name = "newline-reason")]
fn newline_reason() -> Health {
    if !env_flag("TESTBED_NEWLINE_REASON") {
        return Health::up();
    }
    Health::down("x\n[+]fake ok\nreadyz check passed")
        .with_detail("note", "a\r\n[+]fake2 ok\u{1b}[0m")
}

/// With TESTBED_HUGE_REASON, passes with 64 details of a kilobyte each:
/// its line alone is longer than an answer. Its name sorts last.
#[readiness(name = "too-many-details")]
fn too_many_details() -> Health {
    let mut health = Health::up();
    if env_flag("TESTBED_HUGE_REASON") {
        for i in 0..64 {
            health = health.with_detail(format!("d{i}"), "z".repeat(1024));
        }
    }
    health
}

#[liveness(timeout_ms = 100)]
fn event_loop() -> Health {
    Health::up()
        .with_detail("workers", 2)
        .with_detail("mode", "test")
}

#[startup]
async fn migrations() -> bool {
    true
}

/// Holds a guard whose drop panics (TESTBED_DROP_PANIC) past its timeout:
/// the panic comes when the time-out drops the check.
#[startup(name = "drop-guard", timeout_ms = 100)]
async fn drop_guard() -> bool {
    struct PanicsOnDrop;
    impl Drop for PanicsOnDrop {
        fn drop(&mut self) {
            panic!("guard dropped on cancel");
        }
    }
    if env_flag("TESTBED_DROP_PANIC") {
        let _guard = PanicsOnDrop;
        tokio::time::sleep(Duration::from_secs(1)).await;
        std::mem::forget(_guard);
    }
    true
}

/// Preflight: TESTBED_PREFLIGHT_FAIL makes one fail.
#[lifecycle_runtime::preflight]
fn config_present() -> Result<(), String> {
    if env_flag("TESTBED_PREFLIGHT_FAIL") {
        return Err("TESTBED_PREFLIGHT_FAIL is set".into());
    }
    Ok(())
}

#[lifecycle_runtime::preflight(name = "disk-writable")]
async fn disk_writable() -> bool {
    true
}

// Shutdown hooks, recording what runs when on stdout.

async fn recorded(name: &str, work: Duration) {
    println!("hook {name} start");
    tokio::time::sleep(work).await;
    println!("hook {name} end");
}

fn env_millis(name: &str) -> Option<Duration> {
    let value = std::env::var(name).ok()?;
    Some(Duration::from_millis(value.parse().expect("milliseconds")))
}

// The hooks' budget (2 s + 10 s + 2 s) fits the default shutdown timeout
// with the default connection drain: the stop waits for main until the
// hooks' latest start, 25 s - 14 s - 250 ms after the signal.
#[on_shutdown(order = 0, timeout_ms = 2000)]
async fn stop_intake() {
    recorded("stop_intake", Duration::ZERO).await;
}

#[on_shutdown(order = 1, name = "close-a")]
async fn close_a() {
    recorded("close-a", Duration::from_millis(200)).await;
}

#[on_shutdown(order = 1, name = "close-b")]
async fn close_b() {
    recorded("close-b", Duration::from_millis(200)).await;
}

/// Fails when TESTBED_HOOK_FAIL is set.
#[on_shutdown(order = 1)]
async fn faulty() -> Result<(), String> {
    recorded("faulty", Duration::ZERO).await;
    if env_flag("TESTBED_HOOK_FAIL") {
        return Err("flush failed: disk full".into());
    }
    Ok(())
}

/// Panics when TESTBED_HOOK_PANIC is set.
#[on_shutdown(order = 1)]
fn explosive() {
    println!("hook explosive start");
    if env_flag("TESTBED_HOOK_PANIC") {
        panic!("hook exploded");
    }
    println!("hook explosive end");
}

/// Takes TESTBED_HOOK_SLOW_MS when set.
#[on_shutdown(order = 1, name = "slow-flush", timeout_ms = 10000)]
async fn slow_flush() {
    recorded(
        "slow-flush",
        env_millis("TESTBED_HOOK_SLOW_MS").unwrap_or_default(),
    )
    .await;
}

#[on_shutdown(order = 2, timeout_ms = 2000)]
fn last() {
    println!("hook last start");
    println!("hook last end");
}

// The application.

/// The application's own metric, in lifecycle's registry: served on the
/// probe port's `/metrics` as `testbed_requests_total`.
static REQUESTS: once_cell::sync::Lazy<Counter> = once_cell::sync::Lazy::new(|| {
    lifecycle_runtime::metrics::register(|registry| {
        let requests = Counter::default();
        registry.register(
            "testbed_requests",
            "Requests the application answered",
            requests.clone(),
        );
        requests
    })
});

async fn app(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    REQUESTS.inc();
    let body = match request.uri().path() {
        "/slow" => {
            println!("slow request started");
            let ms = request
                .uri()
                .query()
                .and_then(|q| q.strip_prefix("ms="))
                .and_then(|ms| ms.parse().ok())
                .unwrap_or(500);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            "slow done".to_owned()
        }
        "/phase" => format!("{:?}", lifecycle_runtime::phase()),
        "/runs" => format!(
            "coalesced={} background={}",
            COALESCED_RUNS.load(Ordering::SeqCst),
            BACKGROUND_RUNS.load(Ordering::SeqCst)
        ),
        _ => "ok".to_owned(),
    };
    Ok(Response::new(Full::new(Bytes::from(body))))
}

/// How many lines `set log-flood` logs: about 600 KB, more than a pipe
/// holds (64 KiB) and than lifecycle queues before it drops lines.
const LOG_FLOOD_LINES: u32 = 5000;

/// Reacts to the commands that need the application runtime.
fn spawn_command_handlers() {
    tokio::spawn(async {
        control::wait_for("spawn-panic").await;
        tokio::spawn(async { panic!("task exploded") });
    });
    tokio::spawn(async {
        control::wait_for("thread-panic").await;
        std::thread::spawn(|| panic!("thread exploded"));
    });
    tokio::spawn(async {
        control::wait_for("tracked-work").await;
        let token = lifecycle_runtime::shutdown_token();
        lifecycle_runtime::spawn(async move {
            token.cancelled().await;
            tokio::time::sleep(Duration::from_millis(300)).await;
            println!("tracked task finished");
        });
        println!("tracked task started");
    });
    tokio::spawn(async {
        control::wait_for("spawn-many").await;
        for _ in 0..100 {
            tokio::spawn(control::wait_until_clear("spawn-many"));
        }
        println!("spawned many");
    });
    tokio::spawn(async {
        control::wait_for("block-workers").await;
        // More blocking tasks than workers: every worker ends up in one.
        for _ in 0..16 {
            tokio::spawn(async { std::thread::sleep(Duration::from_secs(20)) });
        }
    });
    tokio::spawn(async {
        control::wait_for("log-flood").await;
        // From a thread of its own: with a log pipe nobody reads, whatever
        // blocks on it is this thread, not the application runtime.
        std::thread::spawn(|| {
            for line in 0..LOG_FLOOD_LINES {
                tracing::info!(line, "log flood: {}", "filler ".repeat(12));
            }
            println!("log flood done");
        });
    });
    tokio::spawn(async {
        control::wait_for("hold-registry").await;
        // An application whose registration blocks on something else
        // while it has the registry.
        std::thread::spawn(|| {
            lifecycle_runtime::metrics::register(|_registry| {
                println!("registry held");
                std::thread::sleep(Duration::from_secs(20));
            });
        });
    });
    tokio::spawn(async {
        control::wait_for("busy-cpu").await;
        // Busy but progressing: CPU-heavy tasks that yield every millisecond.
        for _ in 0..8 {
            tokio::spawn(async {
                let until = Instant::now() + Duration::from_secs(3);
                while Instant::now() < until {
                    let slice = Instant::now() + Duration::from_millis(1);
                    while Instant::now() < slice {
                        std::hint::spin_loop();
                    }
                    tokio::task::yield_now().await;
                }
            });
        }
        println!("busy-cpu started");
    });
}

#[service_main(probe_addr = "127.0.0.1:0", max_tasks = 50)]
async fn main() -> Result<(), String> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    once_cell::sync::Lazy::force(&REQUESTS);
    println!("app listening on http://{addr}");
    spawn_command_handlers();
    println!("main running");
    let graceful = GracefulShutdown::new();
    let shutdown = lifecycle_runtime::shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let connection = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service_fn(app));
                tokio::spawn(graceful.watch(connection));
            }
            _ = &mut shutdown => break,
            _ = control::wait_for("quit") => break,
            _ = control::wait_for("fail") => return Err("the test asked main to fail".into()),
            // 'é' is two bytes: the message is cut mid-character at 4096.
            _ = control::wait_for("fail-long") => return Err("é".repeat(3000)),
        }
    }
    drop(listener);
    println!("main finishing in-flight requests");
    graceful.shutdown().await;
    println!("main returning");
    Ok(())
}
