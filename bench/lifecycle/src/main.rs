//! The lifecycle service of the benchmark: `/livez` runs one plain-`fn`
//! liveness check, `/readyz` three readiness checks (an `async fn`, a plain
//! `fn` and a non-critical one). The application does nothing but the load
//! `BENCH_LOAD` asks for.

// Linux only, not ported: on another system this is the first error, and
// it says why.
#[cfg(not(target_os = "linux"))]
compile_error!("bench-lifecycle is a service of lifecycle's Linux benchmark (bench/run); it is not built for other systems");

use lifecycle_runtime::{liveness, readiness, service_main, Health};

#[path = "../../app_load.rs"]
mod app_load;

#[liveness]
fn event_loop() -> bool {
    true
}

#[readiness]
async fn database() -> Result<(), std::io::Error> {
    Ok(())
}

#[readiness]
fn configuration() -> bool {
    true
}

#[readiness(critical = false)]
fn cache() -> Health {
    Health::up().with_detail("entries", 0)
}

#[service_main]
async fn main() {
    app_load::spawn();
    lifecycle_runtime::shutdown_signal().await;
}
