//! Every supported return type, on `fn` and `async fn`, and the `crate`
//! override for a renamed dependency.

use lifecycle_runtime::{liveness, on_shutdown, on_startup, preflight, readiness, startup, Health};

extern crate lifecycle_runtime as renamed;

#[derive(Debug)]
struct MyError;

impl std::fmt::Display for MyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("my error")
    }
}

#[liveness]
fn returns_bool() -> bool {
    true
}

#[liveness(name = "unit", timeout_ms = 50, critical = false)]
async fn returns_unit() {}

#[readiness(interval_ms = 1000)]
fn returns_result() -> Result<(), MyError> {
    Ok(())
}

#[readiness(name = "io-result")]
async fn returns_io_result() -> std::io::Result<()> {
    Ok(())
}

#[startup]
fn returns_health() -> Health {
    Health::up().with_detail("k", "v")
}

#[startup(timeout_ms = 2000, critical = true, interval_ms = 10)]
async fn returns_health_async() -> Health {
    Health::down("not yet")
}

#[preflight(name = "config", timeout_ms = 10000)]
fn preflight_box_error() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    Ok(())
}

#[on_startup(order = -5)]
async fn hook_unit() {}

#[on_startup(order = 3, timeout_ms = 100, name = "open-pool")]
fn hook_result() -> Result<(), String> {
    Ok(())
}

#[on_shutdown]
async fn flush() -> Result<(), MyError> {
    Ok(())
}

#[renamed::readiness(crate = "renamed")]
fn through_a_renamed_crate() -> bool {
    true
}

mod nested {
    #[lifecycle_runtime::liveness(crate = "::lifecycle_runtime")]
    pub(crate) fn in_a_module() -> bool {
        true
    }
}

fn main() {}
