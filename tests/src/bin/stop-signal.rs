//! A service that stops on SIGQUIT, `#[service_main(stop_signal =
//! "SIGQUIT")]`, for the stop-signal tests of the signal suite
//! (`tests/tests/signals.rs`).
//!
//! `main` prints `main start`, then `main end` once `shutdown_signal()`
//! completes (after the drain delay); its `on_shutdown` hook takes
//! `STOP_SIGNAL_SHUTDOWN_MS` milliseconds (0 when unset) and prints
//! `shutdown start` and `shutdown end`. Each line is flushed at once.

use std::io::Write;
use std::time::Duration;

use lifecycle_runtime::{on_shutdown, readiness, service_main};

/// One line on stdout, flushed at once. A closed stdout (the test gave up)
/// loses the line rather than panicking, which would change the exit code.
fn say(line: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{line}");
    let _ = stdout.flush();
}

#[readiness(timeout_ms = 200)]
async fn accepting() -> bool {
    true
}

// Well above the tests' 300 ms, and with the drain within the default
// shutdown timeout (no budget warning).
#[on_shutdown(timeout_ms = 10000)]
async fn release() {
    say("shutdown start");
    let ms = std::env::var("STOP_SIGNAL_SHUTDOWN_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    tokio::time::sleep(Duration::from_millis(ms)).await;
    say("shutdown end");
}

#[service_main(probe_addr = "127.0.0.1:0", stop_signal = "SIGQUIT")]
async fn main() {
    say("main start");
    lifecycle_runtime::shutdown_signal().await;
    say("main end");
}
