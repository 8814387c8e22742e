//! The service the end-to-end tests drive: one check or hook per behaviour
//! under test, switched by `TESTBED_*` variables at start and by commands on
//! stdin at run time (see `control.rs`). Logs go to stderr, acks to stdout.
//!
//! Run it by hand: `cargo run --bin testbed`, then
//! `curl -s 'localhost:PORT/readyz?verbose'` with the port it logs.

mod control;

use std::time::Duration;

use lifecycle_runtime::{liveness, on_startup, readiness, service_main, startup, Health};

// Linked for its checks and hooks alone.
use checks_lib as _;

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
    if env_flag("TESTBED_STARTUP_FAIL") {
        return Err("cache warm-up failed (TESTBED_STARTUP_FAIL is set)".into());
    }
    if env_flag("TESTBED_HOLD_STARTUP") {
        control::wait_for("release").await;
    }
    Ok(())
}

/// Follows the `down` flag: the readiness check toggled at run time.
#[readiness(timeout_ms = 200)]
async fn toggle() -> Result<(), String> {
    if control::is_set("down") {
        Err("toggled down by the test".into())
    } else {
        Ok(())
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

#[service_main(probe_addr = "127.0.0.1:0")]
async fn main() -> Result<(), String> {
    println!("main running");
    tokio::select! {
        _ = control::wait_for("quit") => Ok(()),
        _ = control::wait_for("fail") => Err("the test asked main to fail".into()),
    }
}
