//! Attribute macros for [lifecycle]. Use them through `lifecycle_runtime`,
//! which re-exports every one; this crate only parses, validates and emits
//! code that calls into the runtime by absolute path.
//!
//! [lifecycle]: https://docs.rs/lifecycle-runtime

use proc_macro::TokenStream;

mod args;
mod register;
mod service_main;
mod signature;

use register::Kind;

/// Replaces `#[tokio::main]`: builds the runtime, starts the probe server,
/// runs the preflight checks and `on_startup` hooks, then the body of `main`.
///
/// Arguments (all optional): `probe_addr = "0.0.0.0:8081"`,
/// `shutdown_timeout_ms = 25000`, `drain_delay_ms = 0`,
/// `stall_threshold_ms = 10000`, `max_tasks = N`,
/// `panic = "crash" | "log"`, `flavor = "multi_thread" | "current_thread"`,
/// `worker_threads = N`, `tracing = bool`,
/// `reasons = "loopback" | "show"` (who reads the checks' reasons in probe
/// answers: peers on loopback only, by default, or every peer),
/// `probe_protocol = "http" | "grpc"` (what `--lifecycle-manifest` and
/// `--lifecycle-probe` speak; `"grpc"` needs lifecycle-runtime's cargo
/// feature `grpc`),
/// `metrics = bool` (true: `GET /metrics` on the probe port, and the
/// Prometheus annotations in `--lifecycle-manifest`),
/// `crate = "path"`. Every millisecond value is at most 86400000 (a day).
/// `main` may return `()` or `Result<(), E: Debug>`; `Err` exits 1.
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
/// Arguments: `name = "…"`, `timeout_ms = 500`, `critical = bool`, `crate = "path"`.
/// Return `bool`, `()`, `Result<(), E: Display>` or `lifecycle_runtime::Health`.
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
///
/// Arguments: `name`, `timeout_ms = 500`, `critical = bool`,
/// `interval_ms = N` (run in the background; probes read the latest result),
/// `crate`.
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

/// Registers a startup check, served on `/startupz` and `/startupz/NAME`;
/// same arguments as [`macro@readiness`].
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
/// failure exits 1. Arguments: `name`, `timeout_ms = 10000`, `crate`.
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
/// Arguments: `name`, `order = 0`, `timeout_ms = 60000`, `crate`.
/// Return `()` or `Result<(), E: Display>`.
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
/// concurrently), each bounded by `timeout_ms` (default 10000).
/// Arguments: `name`, `order = 0`, `timeout_ms`, `crate`.
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
