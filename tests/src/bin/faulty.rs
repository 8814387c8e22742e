//! Faulty user code: a liveness, a readiness and a startup check, each as
//! an `async fn` and as a plain `fn`, and `on_startup` and `on_shutdown`
//! hooks, each as an `async fn` and as a plain `fn`, that misbehave as
//! `FAULTY` says: a comma-separated list of `TARGET:MODE`.
//!
//! Targets: `live-async`, `live-fn`, `ready-async`, `ready-fn`,
//! `start-async`, `start-fn` (checks, 200 ms timeouts), `on-startup-async`,
//! `on-startup-async-2`, `on-startup-fn`, `on-shutdown-async`,
//! `on-shutdown-fn` (hooks, 300 ms timeouts). Modes:
//!
//! - `panic-u32`: `std::panic::panic_any(42u32)`;
//! - `panic-struct`: `panic_any` with a struct of ours;
//! - `panic-string`: `panic_any` with a `String`;
//! - `panic-drop`: `panic_any` with a payload whose drop panics too;
//! - `late-panic-drop`: blocks 500 ms (past its timeout, when nobody
//!   waits for it any more), prints `TARGET panics late`, then panics as
//!   `panic-drop` does;
//! - `hang`: never returns (an `async fn` stays pending; a plain `fn`
//!   parks its thread);
//! - `sleep`: `std::thread::sleep` for an hour, blocking its thread (a
//!   worker of the application runtime, for an `async fn`);
//! - `spin`: a busy loop of 2 s, then fails;
//! - `deadlock`: locks a `std::sync::Mutex` that another thread holds
//!   forever;
//! - `huge`: fails with a reason of a megabyte;
//! - `newline`: fails with a reason that would forge lines of a verbose
//!   answer were it not escaped;
//! - `exit`: `std::process::exit(3)`;
//! - `chatty`: starts a thread that logs a line every millisecond, for
//!   good, then fails once it has logged one.
//!
//! The application runtime has two workers. A readiness check `steady`
//! always passes; the `on_shutdown` hook `last` (order 1) prints `hook last end` on stdout, to show that the
//! hooks after a faulty one still run. Each faulty target prints
//! `TARGET entered` on stdout when it starts misbehaving. `main` prints
//! `main running`, then serves nothing until the stop.

use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use lifecycle_runtime::{liveness, on_shutdown, on_startup, readiness, service_main, startup};

/// The exit code `exit` passes to `std::process::exit`.
const EXIT_CODE: i32 = 3;

/// How long `late-panic-drop` blocks before it panics: past the timeouts.
const LATE: Duration = Duration::from_millis(500);

/// How long `spin` burns its thread.
const SPIN: Duration = Duration::from_secs(2);

/// A panic payload that is neither `&str` nor `String`.
#[derive(Debug)]
#[allow(dead_code)]
struct Payload {
    code: u32,
    what: &'static str,
}

/// A panic payload whose drop panics too.
struct PanicsOnDrop;

impl Drop for PanicsOnDrop {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            panic!("the payload's drop exploded");
        }
    }
}

/// The mode `FAULTY` gives `target`, if any.
fn mode(target: &str) -> Option<&'static str> {
    static FAULTY: OnceLock<Vec<(String, &'static str)>> = OnceLock::new();
    let faulty = FAULTY.get_or_init(|| {
        let text = std::env::var("FAULTY").unwrap_or_default();
        text.split(',')
            .filter(|item| !item.trim().is_empty())
            .map(|item| {
                let (target, mode) = item
                    .trim()
                    .split_once(':')
                    .unwrap_or_else(|| panic!("FAULTY: {item:?} is not TARGET:MODE"));
                let mode: &'static str = Box::leak(mode.to_owned().into_boxed_str());
                (target.to_owned(), mode)
            })
            .collect()
    });
    faulty
        .iter()
        .find(|(name, _)| name == target)
        .map(|(_, mode)| *mode)
}

/// A mutex that a thread of its own holds forever, once asked for.
fn held_forever() -> &'static Mutex<()> {
    static LOCK: Mutex<()> = Mutex::new(());
    static HOLDER: OnceLock<()> = OnceLock::new();
    HOLDER.get_or_init(|| {
        let (locked, is_locked) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _guard = LOCK.lock().unwrap();
            locked.send(()).unwrap();
            loop {
                std::thread::park();
            }
        });
        is_locked.recv().unwrap();
    });
    &LOCK
}

/// What a faulty target does in `mode`, on its own thread; `Ok` for a
/// target with no mode. `hang` is left to the caller (async or not).
fn misbehave(target: &str, mode: &str) -> Result<(), String> {
    println!("{target} entered");
    match mode {
        "panic-u32" => std::panic::panic_any(42u32),
        "panic-struct" => std::panic::panic_any(Payload {
            code: 7,
            what: "a struct payload",
        }),
        "panic-string" => std::panic::panic_any(format!("{target} exploded")),
        "panic-drop" => std::panic::panic_any(PanicsOnDrop),
        "late-panic-drop" => {
            std::thread::sleep(LATE);
            println!("{target} panics late");
            std::panic::panic_any(PanicsOnDrop)
        }
        "sleep" => {
            std::thread::sleep(Duration::from_secs(3600));
            Ok(())
        }
        "spin" => {
            let until = Instant::now() + SPIN;
            while Instant::now() < until {
                std::hint::spin_loop();
            }
            Err(format!("{target} spun for {} ms", SPIN.as_millis()))
        }
        "deadlock" => {
            let _guard = held_forever().lock();
            Err(format!("{target} got a lock held forever"))
        }
        "huge" => Err(format!("{target}:{}", "x".repeat(1 << 20))),
        "newline" => Err(format!("{target}\n[+]fake ok\nreadyz check passed")),
        "exit" => std::process::exit(EXIT_CODE),
        "chatty" => {
            let (chatting, has_chatted) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                for n in 0u64.. {
                    tracing::info!("chatter {n}");
                    let _ = chatting.send(());
                    std::thread::sleep(Duration::from_millis(1));
                }
            });
            // It has logged once before the failure: it logs on meanwhile.
            let _ = has_chatted.recv();
            Err(format!("{target} gave up while a thread chatters"))
        }
        "hang" => loop {
            std::thread::park();
        },
        other => panic!("FAULTY: unknown mode {other:?} for {target}"),
    }
}

/// A plain `fn` target.
fn plain(target: &str) -> Result<(), String> {
    match mode(target) {
        None => Ok(()),
        Some(mode) => misbehave(target, mode),
    }
}

/// An `async fn` target: `hang` stays pending, the rest as a plain `fn`
/// does, on the application runtime's worker.
async fn asynchronous(target: &str) -> Result<(), String> {
    match mode(target) {
        None => Ok(()),
        Some("hang") => {
            println!("{target} entered");
            std::future::pending().await
        }
        Some(mode) => {
            // A yield first: the call really is a task of the runtime.
            tokio::task::yield_now().await;
            misbehave(target, mode)
        }
    }
}

#[liveness(name = "live-async", timeout_ms = 200)]
async fn live_async() -> Result<(), String> {
    asynchronous("live-async").await
}

#[liveness(name = "live-fn", timeout_ms = 200)]
fn live_fn() -> Result<(), String> {
    plain("live-fn")
}

#[readiness(name = "ready-async", timeout_ms = 200)]
async fn ready_async() -> Result<(), String> {
    asynchronous("ready-async").await
}

#[readiness(name = "ready-fn", timeout_ms = 200)]
fn ready_fn() -> Result<(), String> {
    plain("ready-fn")
}

/// Always passes: beside a faulty check, a sound one.
#[readiness(timeout_ms = 200)]
async fn steady() -> Result<(), String> {
    Ok(())
}

#[startup(name = "start-async", timeout_ms = 200)]
async fn start_async() -> Result<(), String> {
    asynchronous("start-async").await
}

#[startup(name = "start-fn", timeout_ms = 200)]
fn start_fn() -> Result<(), String> {
    plain("start-fn")
}

#[on_startup(name = "on-startup-async", timeout_ms = 300)]
async fn on_startup_async() -> Result<(), String> {
    asynchronous("on-startup-async").await
}

/// A second one, beside it: two async hooks that block take both workers.
#[on_startup(name = "on-startup-async-2", timeout_ms = 300)]
async fn on_startup_async_2() -> Result<(), String> {
    asynchronous("on-startup-async-2").await
}

#[on_startup(name = "on-startup-fn", timeout_ms = 300)]
fn on_startup_fn() -> Result<(), String> {
    plain("on-startup-fn")
}

#[on_shutdown(name = "on-shutdown-async", timeout_ms = 300)]
async fn on_shutdown_async() -> Result<(), String> {
    asynchronous("on-shutdown-async").await
}

#[on_shutdown(name = "on-shutdown-fn", timeout_ms = 300)]
fn on_shutdown_fn() -> Result<(), String> {
    plain("on-shutdown-fn")
}

#[on_shutdown(order = 1, timeout_ms = 1000)]
fn last() {
    println!("hook last end");
}

/// Two workers, whatever the machine: an `async fn` that blocks its
/// thread takes one of them for good, and two such runs stall the runtime.
#[service_main(probe_addr = "127.0.0.1:0", worker_threads = 2)]
async fn main() {
    println!("main running");
    lifecycle_runtime::shutdown_signal().await;
    println!("main returning");
}
