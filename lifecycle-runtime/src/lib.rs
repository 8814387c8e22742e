//! Makes a tokio service speak Kubernetes' language: liveness, readiness
//! and startup probes, preflight checks, ordered start-up and shutdown
//! hooks, a graceful stop on SIGTERM inside the grace period, and exit
//! codes that tell the truth — each one attribute away.
//!
//! ```no_run
//! use lifecycle_runtime::{liveness, on_shutdown, on_startup, readiness, service_main};
//!
//! /// Readiness is where dependencies belong: failing it takes the pod out
//! /// of rotation without restarting it.
//! #[readiness(timeout_ms = 100)]
//! async fn database() -> Result<(), std::io::Error> {
//!     Ok(()) // ping the pool
//! }
//!
//! /// Liveness answers only "is this process beyond repair?".
//! #[liveness]
//! fn event_loop() -> bool {
//!     true
//! }
//!
//! #[on_startup]
//! async fn warm_cache() -> Result<(), String> {
//!     Ok(())
//! }
//!
//! #[on_shutdown(order = 1)]
//! async fn flush_metrics() {}
//!
//! #[service_main] // instead of #[tokio::main]
//! async fn main() {
//!     // Serve until lifecycle_runtime::shutdown_signal() completes.
//!     // Probes answer on 0.0.0.0:8081: /livez, /readyz, /startupz, /healthz.
//!     lifecycle_runtime::shutdown_signal().await;
//! }
//! ```
//!
//! With axum, hand [`shutdown_signal`] to `with_graceful_shutdown`:
//!
//! ```no_run
//! use axum::{routing::get, Router};
//! use lifecycle_runtime::{service_main, shutdown_signal};
//!
//! #[service_main]
//! async fn main() -> std::io::Result<()> {
//!     let app = Router::new().route("/", get(|| async { "hello" }));
//!     // lifecycle's listener (cargo feature `axum`): the stop waits for its
//!     // connections, and ends those that outlive the connection drain.
//!     let listener = lifecycle_runtime::net::TcpListener::bind("0.0.0.0:8080").await?;
//!     axum::serve(listener, app)
//!         .with_graceful_shutdown(shutdown_signal())
//!         .await
//! }
//! ```
//!
//! # Overview
//!
//! Attributes register what the service checks and does: each check
//! answers one of the probes, each hook runs at start-up or at the stop,
//! and [`macro@service_main`] runs the service around them. The probe
//! server answers on a port of its own; a stop signal takes the instance
//! out of rotation, waits for the drain, ends `main`, runs the hooks and
//! exits with a code that says why. The reference follows:
//!
//! - [Attributes](#attributes): the checks, the hooks and
//!   `#[service_main]`'s arguments;
//! - [Probe endpoints](#probe-endpoints), [gRPC health](#grpc-health) and
//!   [Metrics](#metrics): what the probe port answers;
//! - [Runtime API](#runtime-api): the functions the application calls;
//! - [Configuration](#configuration): the `LIFECYCLE_*` variables;
//! - [Start-up, shutdown and exit codes](#start-up-shutdown-and-exit-codes),
//!   with the platforms and panics;
//! - [Command-line flags](#command-line-flags);
//! - [Cargo features](#cargo-features) and the minimum Rust version.
//!
#![doc = include_str!("../docs/attributes.md")]
#![doc = include_str!("../docs/probes.md")]
#![doc = include_str!("../docs/runtime-api.md")]
#![doc = include_str!("../docs/configuration.md")]
#![doc = include_str!("../docs/stop-and-exit-codes.md")]
#![doc = include_str!("../docs/flags.md")]
#![doc = include_str!("../docs/features.md")]
#![warn(missing_docs, unreachable_pub)]
// docs.rs (`--cfg docsrs`, nightly): each item says which cargo feature
// it needs.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod address_file;
mod audit;
mod binary;
mod call;
mod checks;
mod config;
mod exec_probe;
mod exit;
mod failures;
mod flags;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
#[cfg(feature = "grpc")]
#[cfg_attr(docsrs, doc(cfg(feature = "grpc")))]
pub mod grpc;
mod health;
mod hooks;
mod lifecycle;
mod logging;
mod manifest;
#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub mod metrics;
pub mod net;
#[cfg(feature = "metrics")]
mod observed;
mod panics;
mod pid1;
mod probe;
mod registry;
mod service;
mod shutdown;
mod signals;
mod special_file;
mod stop_budget;
mod text;

pub use checks::CheckResult;
pub use health::Health;
pub use lifecycle::Phase;
pub use lifecycle_macros::{
    liveness, on_shutdown, on_startup, preflight, readiness, service_main, startup,
};
pub use registry::CheckKind;
pub use tokio_util::sync::CancellationToken;

use std::future::Future;

use lifecycle::Lifecycle;

// The quick start of the README that crates.io shows, compiled with the
// doc tests so that it keeps to the code.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// Completes when the application must stop serving: after SIGTERM or
/// SIGINT and the drain delay (or once `main` returned, or start-up
/// failed). Made for axum's and hyper's `with_graceful_shutdown`.
///
/// ```no_run
/// use axum::{routing::get, Router};
/// use lifecycle_runtime::{service_main, shutdown_signal};
///
/// #[service_main]
/// async fn main() -> std::io::Result<()> {
///     let app = Router::new().route("/", get(|| async { "hello" }));
///     let listener = lifecycle_runtime::net::TcpListener::bind("0.0.0.0:8080").await?;
///     axum::serve(listener, app)
///         .with_graceful_shutdown(shutdown_signal()) // stop accepting, finish in-flight requests
///         .await
/// }
/// ```
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    Lifecycle::global()
        .shutdown_token()
        .clone()
        .cancelled_owned()
}

/// Yields `stream`'s items until [`shutdown_signal`] completes, then
/// ends: a response streamed from it finishes properly instead of being
/// cut by the connection drain. An SSE response
/// sends its last chunk, and the client's `EventSource` reconnects, to an
/// instance still in rotation; a tonic server stream ends with status
/// `OK`.
///
/// ```no_run
/// use std::convert::Infallible;
/// use std::time::Duration;
///
/// use axum::response::sse::{Event, Sse};
/// use futures_util::stream::{self, Stream};
///
/// async fn ticks() -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
///     let ticks = stream::unfold(0u64, |n| async move {
///         tokio::time::sleep(Duration::from_secs(1)).await;
///         Some((Ok(Event::default().data(n.to_string())), n + 1))
///     });
///     Sse::new(lifecycle_runtime::until_shutdown(ticks))
/// }
/// ```
///
/// A WebSocket has no such end of its own: its handler selects on
/// [`shutdown_signal`] and sends a Close frame with code 1001 (Going
/// Away), as `examples/streams` shows.
pub fn until_shutdown<S>(stream: S) -> impl futures_core::Stream<Item = S::Item>
where
    S: futures_core::Stream,
{
    use futures_util::StreamExt;
    stream.take_until(shutdown_signal())
}

/// A token cancelled at the same moment [`shutdown_signal`] completes.
/// Cancelling it yourself affects only its own children.
///
/// ```no_run
/// # async fn work() {}
/// #[lifecycle_runtime::service_main]
/// async fn main() {
///     let stop = lifecycle_runtime::shutdown_token();
///     while !stop.is_cancelled() {
///         tokio::select! {
///             _ = stop.cancelled() => break,
///             _ = work() => {}
///         }
///     }
/// }
/// ```
pub fn shutdown_token() -> CancellationToken {
    Lifecycle::global().shutdown_token().child_token()
}

/// Spawns a tracked task on the application runtime: shutdown waits for
/// every tracked task to end before it runs the `on_shutdown` hooks (and
/// the shutdown timeout bounds that wait).
///
/// # Panics
///
/// When called outside a tokio runtime, like [`tokio::spawn`]: call it
/// from the body of `main`, a task, or a check or hook. The panic, and
/// the task's spawn location that tokio records, are the caller's
/// (`#[track_caller]`, as tokio-util's `TaskTracker::spawn`).
///
/// ```no_run
/// #[lifecycle_runtime::service_main]
/// async fn main() {
///     let stop = lifecycle_runtime::shutdown_token();
///     lifecycle_runtime::spawn(async move {
///         stop.cancelled().await;
///         // flush what this worker holds; on_shutdown hooks run after this
///     });
///     lifecycle_runtime::shutdown_signal().await;
/// }
/// ```
#[track_caller]
pub fn spawn<F>(future: F) -> tokio::task::JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    Lifecycle::global().tracker().spawn(future)
}

/// The phase the service is in.
///
/// ```
/// use lifecycle_runtime::Phase;
///
/// // Before (and outside) #[service_main], the service is starting.
/// assert_eq!(lifecycle_runtime::phase(), Phase::Starting);
/// ```
pub fn phase() -> Phase {
    Lifecycle::global().phase()
}

/// Takes the instance out of rotation until the returned guard drops, e.g.
/// while a cache reloads: `/readyz` fails with `out of rotation: REASON`.
/// The instance is back in rotation when the guard drops, however the
/// work that held it ends: returned, cancelled at an `.await`, or
/// unwound by a panic. Several guards may be held at once: the reason
/// then lists them oldest first (`out of rotation: reloading config;
/// rebuilding index`), and the instance is back when the last drops.
/// Taking a guard or dropping one wakes gRPC `Watch` streams, as every
/// change does. It never brings back an instance that is starting or
/// shutting down: those phases fail `/readyz` whatever the guards say.
///
/// Bind the guard to a name (`_out`, not `_`): `let _ = …` drops it at
/// once, which `#[must_use]` does not catch.
///
/// ```no_run
/// # async fn reload_cache() {}
/// # async fn example() {
/// let _out = lifecycle_runtime::out_of_rotation("reloading config");
/// reload_cache().await;
/// // `_out` drops here: back in rotation.
/// # }
/// ```
pub fn out_of_rotation(reason: impl Into<String>) -> OutOfRotation {
    let lifecycle = Lifecycle::global().clone();
    let guard = lifecycle.out_of_rotation(reason.into());
    OutOfRotation { lifecycle, guard }
}

/// Keeps the instance out of rotation until it drops: see
/// [`out_of_rotation`]. (As tokio-util's `DropGuard`, the state is undone
/// by `Drop`, so no path out of the work can leave it set.)
#[must_use = "the instance is back in rotation as soon as the guard drops: bind it, `let _out = ...`"]
pub struct OutOfRotation {
    lifecycle: std::sync::Arc<Lifecycle>,
    guard: u64,
}

impl std::fmt::Debug for OutOfRotation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutOfRotation")
            .field("guard", &self.guard)
            .finish_non_exhaustive()
    }
}

// Held across `.await`s in tasks that move between threads.
const _: fn() = || {
    fn send<T: Send>() {}
    send::<OutOfRotation>();
};

impl Drop for OutOfRotation {
    fn drop(&mut self) {
        self.lifecycle.back_in_rotation(self.guard);
    }
}

/// Fails `/livez` from now on with `reason`, so the kubelet restarts the
/// container: the way to give up without `process::exit` skipping
/// cleanup. The first reason given is kept.
///
/// ```no_run
/// # struct Pool;
/// # impl Pool { fn is_poisoned(&self) -> bool { false } }
/// # let pool = Pool;
/// if pool.is_poisoned() {
///     lifecycle_runtime::mark_broken("database pool poisoned: restart me");
/// }
/// ```
pub fn mark_broken(reason: impl Into<String>) {
    let reason = reason.into();
    tracing::error!(%reason, "marked broken: /livez fails from now on");
    Lifecycle::global().mark_broken(reason);
}

/// Runs every check of `kind` registered in this binary once, each bounded
/// by its timeout, on the current tokio runtime, and returns their results
/// by name: a unit test of a crate that defines checks can see what they
/// say without starting the service. A background check (`interval_ms`)
/// runs once here too; a time-out or a panic is that check's `down`.
///
/// A plain `fn` check that never returns is reported `timed out`, but it
/// keeps its blocking-pool thread, and a runtime waits for that thread
/// when it is dropped (as `#[tokio::test]` does at the end of the test):
/// test such a check on a runtime you shut down with
/// `Runtime::shutdown_background`.
///
/// # Panics
///
/// When called outside a tokio runtime.
///
/// ```
/// use lifecycle_runtime::{readiness, run_checks, CheckKind, Health};
///
/// #[readiness(name = "disk")]
/// fn disk_has_room() -> Health {
///     Health::down("97% full").with_detail("free_mb", 120)
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let results = run_checks(CheckKind::Readiness).await;
/// let disk = results.iter().find(|r| r.name() == "disk").unwrap();
/// assert_eq!(disk.health().reason(), Some("97% full"));
/// # }
/// ```
pub async fn run_checks(kind: CheckKind) -> Vec<CheckResult> {
    let app = tokio::runtime::Handle::current();
    let checks: Vec<_> = registry::checks(kind)
        .into_iter()
        .map(checks::Check::new)
        .collect();
    futures_util::future::join_all(checks.iter().map(|check| check.run(&app))).await
}

/// What generated code calls; not a public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::config::{
        Flavor, PanicPolicy, ProbeProtocol, ReasonsPolicy, ServiceConfig, StopSignal,
    };
    pub use crate::health::{
        HealthFromReturn, HealthWithBoxedCauses, HealthWithCauses, HookOutcome,
        HookOutcomeFromReturn, HookOutcomeWithBoxedCauses, HookOutcomeWithCauses, IntoHealth,
        IntoHookOutcome, MainOutcome, Returned,
    };
    pub use crate::probe::endpoint::BUILTIN_CHECK_NAMES;
    pub use crate::registry::{
        BoxFuture, Call, CheckKind, CheckRegistration, HookKind, HookRegistration, Site,
    };
    pub use crate::require_default_subscriber;
    pub use crate::require_grpc_feature;
    pub use crate::service::run_service;
    pub use inventory;
}
