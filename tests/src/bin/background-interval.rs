//! A service whose readiness check runs in the background every 5 s, more
//! than a probe's period may be: the audit's `periodSeconds` warning
//! (tests/tests/check_manifest.rs).

use lifecycle_runtime::{readiness, service_main};

/// Cheap, but read from memory between runs 5 s apart.
#[readiness(interval_ms = 5000)]
fn replica_lag() -> bool {
    true
}

#[service_main(probe_addr = "127.0.0.1:0")]
async fn main() {
    lifecycle_runtime::shutdown_signal().await;
}
