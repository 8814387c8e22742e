//! `panic = "log"`: a panicking task is logged (with its location) and the
//! service keeps serving, as plain Rust would. The default, `"crash"`,
//! would have exited 101. A panic in `main` itself still runs the shutdown
//! hooks, then exits 101.
//!
//! ```text
//! cargo run -p panic-log
//! ```

use lifecycle_runtime::{on_shutdown, service_main};

#[on_shutdown]
fn goodbye() {
    println!("hook goodbye ran");
}

#[service_main(panic = "log", probe_addr = "127.0.0.1:0")]
async fn main() {
    let task = tokio::spawn(async { panic!("task exploded under panic = log") });
    if task.await.is_err() {
        println!("task panic observed");
    }
    lifecycle_runtime::shutdown_signal().await;
}
