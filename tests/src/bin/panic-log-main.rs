//! The `panic-log` example with a panic in `main` itself: under
//! `panic = "log"` a panicking task is only logged, but a panic in `main`
//! still runs the shutdown hooks, then exits 101.

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
    panic!("main exploded under panic = log");
}
