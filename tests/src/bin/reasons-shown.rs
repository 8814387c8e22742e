//! A service with `#[service_main(reasons = "show")]`: its checks' reasons
//! are shown to every peer, not only to those on loopback.

use lifecycle_runtime::{readiness, service_main};

/// Always failing, with a reason that would be a secret.
#[readiness]
fn database() -> Result<(), &'static str> {
    Err("cannot reach postgres://app@db.internal:5432")
}

#[service_main(reasons = "show", probe_addr = "127.0.0.1:0")]
async fn main() {
    lifecycle_runtime::shutdown_signal().await;
}
