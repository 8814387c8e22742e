//! Attribute macros for [lifecycle]. Use them through `lifecycle_runtime`,
//! which re-exports every one; this crate only parses, validates and emits
//! code that calls into the runtime by absolute path.
//!
//! [lifecycle]: https://docs.rs/lifecycle-runtime

use proc_macro::TokenStream;

mod args;
mod builtin_checks;
mod register;
mod service_main;
mod signature;

use register::Kind;

/// Replaces `#[tokio::main]`: builds the runtime, starts the probe server,
/// runs the preflight checks and `on_startup` hooks, then the body of `main`.
///
/// `main` may return `()` or `Result<(), E: Debug>`; `Err` exits 1.
///
/// # Arguments
///
/// All optional; each `LIFECYCLE_*` variable named overrides its argument.
/// Every millisecond value is at most 86400000 (a day).
///
/// - `probe_addr = "0.0.0.0:8081"`: the probe server's address
///   (`LIFECYCLE_PROBE_ADDR`); port 0 picks a free one.
/// - `shutdown_timeout_ms = 25000`: the bound on the whole stop, from the
///   signal (`LIFECYCLE_SHUTDOWN_TIMEOUT_MS`).
/// - `drain_delay_ms = 0`: how long the instance keeps serving, out of
///   rotation, before `shutdown_signal()` completes; 5000 when
///   `KUBERNETES_SERVICE_HOST` is set (`LIFECYCLE_DRAIN_DELAY_MS`).
/// - `connection_drain_ms = 5000`: how long connections accepted through
///   `net::TcpListener` have to close after `shutdown_signal()` before
///   lifecycle ends them (`LIFECYCLE_CONNECTION_DRAIN_MS`).
/// - `stall_threshold_ms = 10000`: how long the application runtime may
///   make no progress before `/livez` fails
///   (`LIFECYCLE_STALL_THRESHOLD_MS`).
/// - `max_tasks = N`: `/livez` fails while more tasks than this are
///   alive; no limit by default.
/// - `panic = "crash" | "log"`: a panic outside a check or hook exits 101
///   (`"crash"`, the default) or is only logged.
/// - `flavor = "multi_thread" | "current_thread"`: the tokio runtime.
/// - `worker_threads = N`: its worker threads (the number of cores by
///   default).
/// - `tracing = bool`: install the default log subscriber (true; needs the
///   cargo feature `tracing-subscriber`).
/// - `reasons = "loopback" | "show"`: who reads the checks' reasons in
///   probe answers: peers on loopback only (the default) or every peer
///   (`LIFECYCLE_REASONS`).
/// - `probe_protocol = "http" | "grpc"`: what `--lifecycle-manifest` and
///   `--lifecycle-probe` speak (`LIFECYCLE_PROBE_PROTOCOL`); `"grpc"` needs
///   the cargo feature `grpc`.
/// - `metrics = bool`: `GET /metrics` on the probe port, and the Prometheus
///   annotations in `--lifecycle-manifest` (true; `LIFECYCLE_METRICS`).
/// - `pid1 = bool`: as PID 1 on Linux (a container without an init), run
///   the service as the child of a minimal init that forwards signals and
///   reaps orphans (true; `LIFECYCLE_PID1`); no effect elsewhere.
/// - `stop_signal = "SIGQUIT"`: a signal that starts the graceful stop as
///   SIGTERM does (SIGTERM and SIGINT still do), and that
///   `--lifecycle-manifest` names in `lifecycle.stopSignal`
///   (`LIFECYCLE_STOP_SIGNAL`): `SIGINT`, `SIGQUIT`, `SIGHUP`, `SIGUSR1`,
///   `SIGUSR2` or `SIGWINCH`, upper case, the `SIG` prefix optional
///   (`"SIGTERM"` by default). Unix only: any other than `"SIGTERM"` is a
///   compile error on Windows.
/// - `crate = "path"`: lifecycle-runtime's path, for a renamed dependency.
///
/// ```no_run
/// use lifecycle_runtime::service_main;
///
/// #[service_main(probe_addr = "127.0.0.1:8081")]
/// async fn main() -> Result<(), std::io::Error> {
///     let listener = std::net::TcpListener::bind("127.0.0.1:8080")?;
///     # drop(listener);
///     Ok(())
/// }
/// ```
///
/// stands for
///
/// ```ignore
/// fn main() {
///     async fn __lifecycle_service_main() -> Result<(), std::io::Error> { /* body */ }
///     let __lifecycle_config = ::lifecycle_runtime::__private::ServiceConfig {
///         probe_addr: Some("127.0.0.1:8081"), /* … */
///     };
///     ::lifecycle_runtime::__private::run_service(__lifecycle_config, || async {
///         <Result<(), std::io::Error> as ::lifecycle_runtime::__private::MainOutcome>
///             ::into_main_outcome(__lifecycle_service_main().await)
///     })
/// }
/// ```
#[proc_macro_attribute]
pub fn service_main(args: TokenStream, item: TokenStream) -> TokenStream {
    service_main::expand(args.into(), item.into()).into()
}

/// Registers a liveness check, served on `/livez` and `/livez/NAME`.
///
/// Liveness answers "is this process beyond repair?": never check a
/// dependency here (a database outage would restart every pod).
/// Return `bool`, `()`, `Result<(), E: Display>` or `lifecycle_runtime::Health`;
/// an `Err` is the reason, with its causes when it is a `std::error::Error`.
///
/// # Arguments
///
/// - `name = "…"`: the check's name in paths and answers (the function's
///   name by default).
/// - `timeout_ms = 500`: a check that has not answered by then fails.
/// - `critical = bool`: `false` reports the check but never fails its
///   endpoint (true).
/// - `crate = "path"`: lifecycle-runtime's path, for a renamed dependency.
///
/// ```
/// use lifecycle_runtime::liveness;
///
/// #[liveness(timeout_ms = 100)]
/// fn event_loop_alive() -> bool {
///     true
/// }
/// # fn main() {}
/// ```
///
/// stands for the function unchanged plus
///
/// ```ignore
/// ::lifecycle_runtime::__private::inventory::submit! {
///     ::lifecycle_runtime::__private::CheckRegistration {
///         kind: CheckKind::Liveness, name: "event_loop_alive", timeout_ms: Some(100),
///         critical: true, interval_ms: None, call: Call::Blocking(/* calls the fn */), /* … */
///     }
/// }
/// ```
#[proc_macro_attribute]
pub fn liveness(args: TokenStream, item: TokenStream) -> TokenStream {
    register::expand(Kind::Liveness, args.into(), item.into()).into()
}

/// Registers a readiness check, served on `/readyz` and `/readyz/NAME`.
/// Returns as [`macro@liveness`] does.
///
/// # Arguments
///
/// - `name = "…"`: the check's name (the function's name by default).
/// - `timeout_ms = 500`: a check that has not answered by then fails.
/// - `critical = bool`: `false` reports the check but never fails its
///   endpoint (true).
/// - `interval_ms = N`: run in the background every N ms, from the end of
///   start-up; probes read the latest result and never cause a run.
/// - `crate = "path"`: lifecycle-runtime's path, for a renamed dependency.
///
/// ```
/// use lifecycle_runtime::readiness;
///
/// #[readiness(timeout_ms = 100)]
/// async fn database() -> Result<(), std::io::Error> {
///     Ok(()) // ping the pool here
/// }
/// # fn main() {}
/// ```
#[proc_macro_attribute]
pub fn readiness(args: TokenStream, item: TokenStream) -> TokenStream {
    register::expand(Kind::Readiness, args.into(), item.into()).into()
}

/// Registers a startup check, served on `/startupz` and `/startupz/NAME`.
/// Returns as [`macro@liveness`] does.
///
/// # Arguments
///
/// - `name = "…"`: the check's name (the function's name by default).
/// - `timeout_ms = 500`: a check that has not answered by then fails.
/// - `critical = bool`: `false` reports the check but never fails its
///   endpoint (true).
/// - `interval_ms = N`: run in the background every N ms, from the end of
///   start-up; probes read the latest result and never cause a run.
/// - `crate = "path"`: lifecycle-runtime's path, for a renamed dependency.
///
/// ```
/// use lifecycle_runtime::{startup, Health};
///
/// #[startup]
/// fn cache_warm() -> Health {
///     Health::up().with_detail("entries", 1024)
/// }
/// # fn main() {}
/// ```
#[proc_macro_attribute]
pub fn startup(args: TokenStream, item: TokenStream) -> TokenStream {
    register::expand(Kind::Startup, args.into(), item.into()).into()
}

/// Registers a preflight check: run once before the `on_startup` hooks; any
/// failure exits 1. `--lifecycle-preflight` runs them alone. Returns as
/// [`macro@liveness`] does.
///
/// # Arguments
///
/// - `name = "…"`: the check's name (the function's name by default).
/// - `timeout_ms = 10000`: a check that has not answered by then fails.
/// - `crate = "path"`: lifecycle-runtime's path, for a renamed dependency.
///
/// ```
/// use lifecycle_runtime::preflight;
///
/// #[preflight]
/// fn config_file_present() -> Result<(), String> {
///     Ok(())
/// }
/// # fn main() {}
/// ```
#[proc_macro_attribute]
pub fn preflight(args: TokenStream, item: TokenStream) -> TokenStream {
    register::expand(Kind::Preflight, args.into(), item.into()).into()
}

/// Registers a hook run at start-up, in ascending `order` (equal orders run
/// concurrently), before `main`'s body. A failure or a time-out exits 1.
/// Return `()` or `Result<(), E: Display>`.
///
/// # Arguments
///
/// - `name = "…"`: the hook's name in logs (the function's name by
///   default).
/// - `order = 0`: hooks run in ascending order; equal orders together.
/// - `timeout_ms = 60000`: a hook still running then fails.
/// - `crate = "path"`: lifecycle-runtime's path, for a renamed dependency.
///
/// ```
/// use lifecycle_runtime::on_startup;
///
/// #[on_startup(order = -1, timeout_ms = 5000)]
/// async fn open_pool() -> Result<(), std::io::Error> {
///     Ok(())
/// }
/// # fn main() {}
/// ```
#[proc_macro_attribute]
pub fn on_startup(args: TokenStream, item: TokenStream) -> TokenStream {
    register::expand(Kind::OnStartup, args.into(), item.into()).into()
}

/// Registers a hook run at shutdown, in ascending `order` (equal orders run
/// concurrently), each bounded by its timeout; a failing hook is logged
/// and the later ones still run. Return `()` or `Result<(), E: Display>`.
///
/// # Arguments
///
/// - `name = "…"`: the hook's name in logs (the function's name by
///   default).
/// - `order = 0`: hooks run in ascending order; equal orders together.
/// - `timeout_ms = 10000`: a hook still running then fails.
/// - `crate = "path"`: lifecycle-runtime's path, for a renamed dependency.
///
/// ```
/// use lifecycle_runtime::on_shutdown;
///
/// #[on_shutdown(order = 1)]
/// async fn flush_metrics() {}
/// # fn main() {}
/// ```
#[proc_macro_attribute]
pub fn on_shutdown(args: TokenStream, item: TokenStream) -> TokenStream {
    register::expand(Kind::OnShutdown, args.into(), item.into()).into()
}
