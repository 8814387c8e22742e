//! The load a benchmark puts on a service's application runtime, chosen by
//! `BENCH_LOAD`, shared by every Rust service under test (included with
//! `#[path]`, so each stays a copy of what a user would write plus this).
//!
//! - `idle` (default): nothing.
//! - `busy`: four CPU-bound tasks per worker, each spinning for 1 ms and
//!   then yielding: every worker is busy, none is stuck.
//! - `block`: two tasks per worker that block their thread for an hour:
//!   every worker is stuck, as with a blocking call made in async code.

use std::time::{Duration, Instant};

/// Spawns the load `BENCH_LOAD` names onto the current runtime. Call it
/// from outside the runtime's workers (the body of `main`), so that the
/// tasks land in the shared queue and every worker takes some.
pub fn spawn() {
    let workers = tokio::runtime::Handle::current().metrics().num_workers();
    match std::env::var("BENCH_LOAD").as_deref() {
        Err(_) | Ok("idle") => {}
        Ok("busy") => {
            for _ in 0..4 * workers {
                tokio::spawn(async {
                    loop {
                        let start = Instant::now();
                        while start.elapsed() < Duration::from_millis(1) {
                            std::hint::spin_loop();
                        }
                        tokio::task::yield_now().await;
                    }
                });
            }
        }
        Ok("block") => {
            for _ in 0..2 * workers {
                tokio::spawn(async { std::thread::sleep(Duration::from_secs(3600)) });
            }
        }
        Ok(other) => {
            eprintln!("BENCH_LOAD must be idle, busy or block, not {other:?}");
            std::process::exit(2);
        }
    }
}

/// The address to serve on: `BENCH_ADDR`, set by the benchmark driver.
#[allow(dead_code)] // the lifecycle services are told theirs by LIFECYCLE_PROBE_ADDR
pub fn addr() -> std::net::SocketAddr {
    let addr = std::env::var("BENCH_ADDR").unwrap_or_else(|_| "127.0.0.1:8080".into());
    addr.parse().unwrap_or_else(|_| {
        eprintln!("BENCH_ADDR must be IP:PORT, not {addr:?}");
        std::process::exit(2);
    })
}
