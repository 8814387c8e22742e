//! The binary of the "existing crate" story: a service whose checks and
//! hooks live in its library crate (`src/lib.rs`, `library_checks`), and
//! whose `main` calls none of them.
//!
//! ```text
//! cargo run -p library-checks
//! curl 'localhost:8081/livez?verbose'    # [+]library_worker ok (connected=true)
//! ```

use lifecycle_runtime::service_main;

// The one line. A library's checks and hooks are registered only if the
// library is linked into the binary, and a binary links a crate only if it
// names it: without this line (nothing else of `library_checks` is used
// here) its checks would silently be missing, and its hook would not run.
use library_checks as _;

#[service_main]
async fn main() {
    let probes = std::env::var("LIFECYCLE_PROBE_ADDR")
        .ok()
        .filter(|addr| !addr.is_empty())
        .unwrap_or_else(|| "0.0.0.0:8081".into());
    let port = probes.rsplit_once(':').map_or("8081", |(_, port)| port);
    tracing::info!("the library's checks are registered; no application of its own to serve");
    tracing::info!("try: curl 'localhost:{port}/livez?verbose'");
    // A real service would serve until then; this one only waits.
    lifecycle_runtime::shutdown_signal().await;
}
