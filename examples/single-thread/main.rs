//! A service on tokio's `current_thread` runtime: checks still run on the
//! application's own runtime (here, the one thread that runs `main`), and
//! the probe server still answers from its own thread.

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
    // For the stall test: block the runtime's only thread, as a blocking
    // call in async code would.
    if std::env::var_os("SINGLE_THREAD_BLOCK").is_some() {
        tokio::time::sleep(Duration::from_millis(300)).await;
        println!("blocking the runtime thread");
        std::thread::sleep(Duration::from_secs(30));
    }
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
