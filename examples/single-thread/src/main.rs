//! A service on tokio's `current_thread` runtime: checks still run on the
//! application's own runtime (here, the one thread that runs `main`), and
//! the probe server still answers from its own thread.
//!
//! ```text
//! cargo run -p single-thread
//! ```

use std::time::Duration;

use lifecycle_runtime::{readiness, service_main};

/// Ready once `main` has done its first tick of work.
#[readiness(timeout_ms = 200)]
async fn ticking() -> Result<(), &'static str> {
    // `current_thread` runs this task on the thread that runs `main`.
    let name = std::thread::current().name().map(str::to_owned);
    if name.as_deref() == Some("main") {
        Ok(())
    } else {
        Err("check ran off the application thread")
    }
}

#[service_main(flavor = "current_thread", probe_addr = "127.0.0.1:0")]
async fn main() {
    let stop = lifecycle_runtime::shutdown_signal();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            // Return on SIGTERM or Ctrl-C: a `main` that never returns
            // holds the stop up until the shutdown timeout, then exits 1.
            _ = &mut stop => return,
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
    }
}
