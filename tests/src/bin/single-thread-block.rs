//! A service on tokio's `current_thread` runtime that blocks the runtime's
//! only thread, as a blocking call in async code would: for the stall test
//! (`tests/deadlines.rs`). Prints `blocking the runtime thread` first.

use std::time::Duration;

use lifecycle_runtime::service_main;

#[service_main(flavor = "current_thread", probe_addr = "127.0.0.1:0")]
async fn main() {
    tokio::time::sleep(Duration::from_millis(300)).await;
    println!("blocking the runtime thread");
    std::thread::sleep(Duration::from_secs(30));
}
