//! # lifecycle
//!
//! Makes a tokio service speak Kubernetes' language: liveness, readiness and
//! startup probes, preflight checks, ordered start-up and shutdown hooks,
//! and exit codes that tell the truth, each one attribute away.
//!
//! ```no_run
//! use lifecycle_runtime::{on_startup, readiness, service_main};
//!
//! #[readiness(timeout_ms = 100)]
//! async fn database() -> Result<(), std::io::Error> {
//!     Ok(()) // ping the pool
//! }
//!
//! #[on_startup]
//! async fn warm_cache() {}
//!
//! #[service_main]
//! async fn main() {
//!     // serve here; probes answer on 0.0.0.0:8081 (/livez, /readyz, /startupz)
//! }
//! ```
//!
//! The contract (endpoints, variables, exit codes) is in the README.

mod checks;
mod config;
mod exit;
mod flags;
mod health;
mod logging;
mod manifest;
mod panics;
mod probe;
mod registry;
mod report;
mod service;
mod shutdown;
mod signals;
mod state;

pub use health::Health;
pub use lifecycle_macros::{
    liveness, on_shutdown, on_startup, preflight, readiness, service_main, startup,
};
pub use state::Phase;
pub use tokio_util::sync::CancellationToken;

use std::future::Future;

/// Completes when the application must stop serving: after SIGTERM or
/// SIGINT and the drain delay. Made to be passed to hyper's or axum's
/// `with_graceful_shutdown`.
///
/// ```no_run
/// # async fn serve() {
/// let listener = tokio::net::TcpListener::bind("0.0.0.0:8080").await.unwrap();
/// tokio::select! {
///     _ = async { loop { let _ = listener.accept().await; } } => {}
///     _ = lifecycle_runtime::shutdown_signal() => {} // stop accepting, finish in-flight work
/// }
/// # }
/// ```
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    shutdown::SHUTDOWN.serving_ends.clone().cancelled_owned()
}

/// A token cancelled at the same moment [`shutdown_signal`] completes.
/// Cancelling it yourself affects only its own children.
pub fn shutdown_token() -> CancellationToken {
    shutdown::SHUTDOWN.serving_ends.child_token()
}

/// Spawns a tracked task on the application runtime: shutdown waits for
/// every tracked task to end before it runs the `on_shutdown` hooks.
/// Must be called from within the application runtime.
pub fn spawn<F>(future: F) -> tokio::task::JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    shutdown::SHUTDOWN.tracker.spawn(future)
}

/// The phase the service is in.
pub fn phase() -> Phase {
    state::STATE.phase()
}

/// Takes the instance out of rotation (`false`: `/readyz` fails) or puts it
/// back (`true`), by hand, e.g. while a cache reloads.
pub fn set_ready(ready: bool) {
    state::STATE.set_withdrawn(!ready);
}

/// Fails `/livez` from now on with `reason`, so the kubelet restarts the
/// container: the way to give up without `process::exit` skipping cleanup.
/// The first reason given is kept.
pub fn mark_broken(reason: impl Into<String>) {
    let reason = reason.into();
    tracing::error!(%reason, "marked broken: /livez fails from now on");
    state::STATE.mark_broken(reason);
}

/// What generated code calls; not a public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::config::{Flavor, PanicPolicy, ServiceConfig};
    pub use crate::health::{HookOutcome, IntoHealth, IntoHookOutcome, MainOutcome};
    pub use crate::registry::{
        BoxFuture, Call, CheckKind, CheckRegistration, HookKind, HookRegistration, Site,
    };
    pub use crate::service::run_service;
    pub use inventory;
}
