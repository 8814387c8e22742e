//! Configuration: a `LIFECYCLE_*` environment variable wins over the
//! `#[service_main]` argument, which wins over the default. A bad value is
//! an error that names the variable and the accepted form (exit 2).
//!
//! The variables and their parsing are in [`env`]; the stop signal, which
//! is read before anything else runs, in [`stop_signal`].

mod env;
mod stop_signal;
#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[cfg(target_os = "linux")]
pub(crate) use self::env::pid1_wanted;
pub(crate) use self::env::{
    log_format, process_env, ConfigError, Env, DRAIN_DELAY, METRICS, PROBE_ADDR, PROBE_ADDR_FILE,
    STOP_SIGNAL, TERMINATION_LOG,
};
use self::env::{
    metrics, millis, pid1, probe_protocol, raw, reasons, var, CONNECTION_DRAIN, SHUTDOWN_TIMEOUT,
    STALL_THRESHOLD,
};
use self::stop_signal::stop_signal;
pub(crate) use self::stop_signal::stop_signal_wanted;
pub use self::stop_signal::StopSignal;

/// What `#[service_main]`'s arguments say; generated code builds it, and
/// the macro has validated every value. `None` leaves the variable or the
/// default to decide.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// `probe_addr`, an `IP:PORT`.
    pub probe_addr: Option<&'static str>,
    /// `shutdown_timeout_ms`.
    pub shutdown_timeout_ms: Option<u64>,
    /// `drain_delay_ms`.
    pub drain_delay_ms: Option<u64>,
    /// `connection_drain_ms`.
    pub connection_drain_ms: Option<u64>,
    /// `stall_threshold_ms`.
    pub stall_threshold_ms: Option<u64>,
    /// `max_tasks`: adds the built-in `tasks` liveness check.
    pub max_tasks: Option<u64>,
    /// `panic`.
    pub panic: PanicPolicy,
    /// `flavor`.
    pub flavor: Flavor,
    /// `worker_threads` (multi-thread flavor only).
    pub worker_threads: Option<u64>,
    /// `tracing`: install the default log subscriber.
    pub tracing: bool,
    /// `reasons`: who reads the checks' reasons in probe answers.
    pub reasons: ReasonsPolicy,
    /// `probe_protocol`: what the manifest's probes and the exec probe speak.
    pub probe_protocol: ProbeProtocol,
    /// `metrics`: serve `GET /metrics`, and annotate the manifest's pod
    /// template for Prometheus.
    pub metrics: bool,
    /// `pid1`: when the process is PID 1, run the service as its child
    /// behind a minimal init (signals forwarded, orphans reaped).
    pub pid1: bool,
    /// `stop_signal`: the signal that starts the graceful stop besides
    /// SIGTERM and SIGINT.
    pub stop_signal: StopSignal,
}

/// `#[service_main(probe_protocol = "…")]`, env `LIFECYCLE_PROBE_PROTOCOL`:
/// what the probes of `--lifecycle-manifest` and `--lifecycle-probe`
/// speak. The probe server answers both either way (with the `grpc`
/// feature); this only picks what the kubelet is told to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProbeProtocol {
    /// `httpGet` probes of `/livez`, `/readyz`, `/startupz`.
    #[default]
    Http,
    /// `grpc` probes: `grpc.health.v1.Health/Check` of the services
    /// `livez`, `readyz`, `startupz` (cargo feature `grpc`).
    Grpc,
}

/// Expands to nothing when the runtime is built with its `grpc` feature,
/// and to a compile error naming the feature when it is not: what
/// `#[service_main(probe_protocol = "grpc")]` invokes, with the literal,
/// every token spanned on it so that the error points there.
#[cfg(feature = "grpc")]
#[doc(hidden)]
#[macro_export]
macro_rules! require_grpc_feature {
    ($protocol:literal) => {};
}

/// Expands to nothing when the runtime is built with its `grpc` feature,
/// and to a compile error naming the feature when it is not: what
/// `#[service_main(probe_protocol = "grpc")]` invokes, with the literal,
/// every token spanned on it so that the error points there.
#[cfg(not(feature = "grpc"))]
#[doc(hidden)]
#[macro_export]
macro_rules! require_grpc_feature {
    ($protocol:literal) => {
        ::core::compile_error!(
            "`probe_protocol = \"grpc\"` needs lifecycle-runtime's cargo feature `grpc`: enable it (`lifecycle-runtime = { version = \"…\", features = [\"grpc\"] }`), or leave `probe_protocol` out for HTTP probes"
        );
    };
}

/// `#[service_main(reasons = "…")]`, env `LIFECYCLE_REASONS`: who reads
/// the checks' reasons (and detail values) in probe answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReasonsPolicy {
    /// Peers on loopback only (`kubectl port-forward`, `kubectl exec`);
    /// every other peer reads `reason withheld`, as kube-apiserver does.
    #[default]
    Loopback,
    /// Every peer.
    Show,
}

/// `#[service_main(panic = "…")]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PanicPolicy {
    /// A panic outside a check or hook exits 101 at once.
    Crash,
    /// Rust's own behaviour, logged; a panic in `main` still exits 101.
    Log,
}

/// `#[service_main(flavor = "…")]`: the application runtime's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// tokio's multi-thread runtime.
    MultiThread,
    /// tokio's current-thread runtime: everything on the thread of `main`.
    CurrentThread,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum LogFormat {
    #[default]
    Text,
    Json,
}

/// The settings in force, after the environment has had its say.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) probe_addr: SocketAddr,
    /// Where to write the bound probe address, once listening.
    pub(crate) probe_addr_file: Option<PathBuf>,
    pub(crate) shutdown_timeout: Duration,
    pub(crate) drain_delay: Duration,
    /// Where the drain delay came from, for the start-up log.
    pub(crate) drain_delay_source: &'static str,
    /// The drain delay in force on Kubernetes: the configured one, or the
    /// Kubernetes default. What the generated manifest plans for.
    pub(crate) cluster_drain_delay: Duration,
    /// How long connections accepted through `net::TcpListener` have to
    /// close after `shutdown_signal()`, before lifecycle ends them.
    pub(crate) connection_drain: Duration,
    pub(crate) stall_threshold: Duration,
    pub(crate) max_tasks: Option<u64>,
    pub(crate) reasons: ReasonsPolicy,
    pub(crate) probe_protocol: ProbeProtocol,
    /// `GET /metrics` is served, and the manifest carries the Prometheus
    /// annotations.
    pub(crate) metrics: bool,
    /// The signal that starts the graceful stop besides SIGTERM and
    /// SIGINT; SIGTERM unless configured.
    pub(crate) stop_signal: StopSignal,
}
const DEFAULT_PROBE_ADDR: &str = "0.0.0.0:8081";
const DEFAULT_SHUTDOWN_TIMEOUT_MS: u64 = 25_000;
const DEFAULT_STALL_THRESHOLD_MS: u64 = 10_000;
/// Long enough for a request in flight to finish; an SSE stream or a
/// WebSocket that ignores the stop is ended after it.
const DEFAULT_CONNECTION_DRAIN_MS: u64 = 5_000;
/// On Kubernetes, endpoints are removed from load balancers asynchronously
/// after the pod is marked terminating; keep serving a while.
const KUBERNETES_DRAIN_DELAY_MS: u64 = 5_000;
impl Settings {
    pub(crate) fn resolve(config: &ServiceConfig, env: Env<'_>) -> Result<Settings, ConfigError> {
        const ADDR_EXPECTED: &str =
            "an IP address and port, e.g. 0.0.0.0:8081 (port 0 picks a free port)";
        let probe_addr = match var(env, PROBE_ADDR, ADDR_EXPECTED)? {
            Some(value) => value.trim().parse().map_err(|_| ConfigError {
                variable: PROBE_ADDR,
                value,
                expected: ADDR_EXPECTED,
            })?,
            None => config
                .probe_addr
                .unwrap_or(DEFAULT_PROBE_ADDR)
                .parse()
                .expect("#[service_main] validated probe_addr at compile time"),
        };
        let on_kubernetes = raw(env, "KUBERNETES_SERVICE_HOST").is_some();
        let default_drain = if on_kubernetes {
            KUBERNETES_DRAIN_DELAY_MS
        } else {
            0
        };
        let drain_delay = millis(env, DRAIN_DELAY, config.drain_delay_ms, default_drain, 0)?;
        let drain_delay_source = if raw(env, DRAIN_DELAY).is_some() {
            "from LIFECYCLE_DRAIN_DELAY_MS"
        } else if config.drain_delay_ms.is_some() {
            "from #[service_main(drain_delay_ms)]"
        } else if on_kubernetes {
            "the default on Kubernetes: KUBERNETES_SERVICE_HOST is set"
        } else {
            "the default off Kubernetes: KUBERNETES_SERVICE_HOST is not set"
        };
        let explicit = raw(env, DRAIN_DELAY).is_some() || config.drain_delay_ms.is_some();
        let cluster_drain_delay = if explicit {
            drain_delay
        } else {
            Duration::from_millis(KUBERNETES_DRAIN_DELAY_MS)
        };
        // Decided before anything ran (`pid1_wanted`); checked here, where
        // a bad value is reported as every other is.
        pid1(env, config.pid1)?;
        Ok(Settings {
            probe_addr,
            // A path is bytes: one that is no UTF-8 is a path all the same.
            probe_addr_file: raw(env, PROBE_ADDR_FILE).map(PathBuf::from),
            shutdown_timeout: millis(
                env,
                SHUTDOWN_TIMEOUT,
                config.shutdown_timeout_ms,
                DEFAULT_SHUTDOWN_TIMEOUT_MS,
                1,
            )?,
            drain_delay,
            drain_delay_source,
            cluster_drain_delay,
            connection_drain: millis(
                env,
                CONNECTION_DRAIN,
                config.connection_drain_ms,
                DEFAULT_CONNECTION_DRAIN_MS,
                0,
            )?,
            stall_threshold: millis(
                env,
                STALL_THRESHOLD,
                config.stall_threshold_ms,
                DEFAULT_STALL_THRESHOLD_MS,
                1,
            )?,
            max_tasks: config.max_tasks,
            reasons: reasons(env, config.reasons)?,
            probe_protocol: probe_protocol(env, config.probe_protocol)?,
            metrics: metrics(env, config.metrics)?,
            stop_signal: stop_signal(env, config.stop_signal)?,
        })
    }
}

/// What `#[service_main]` without arguments builds: the tests of every
/// module start from it and change the fields they are about.
#[cfg(test)]
impl ServiceConfig {
    pub(crate) fn defaults() -> ServiceConfig {
        ServiceConfig {
            probe_addr: None,
            shutdown_timeout_ms: None,
            drain_delay_ms: None,
            connection_drain_ms: None,
            stall_threshold_ms: None,
            max_tasks: None,
            panic: PanicPolicy::Crash,
            flavor: Flavor::MultiThread,
            worker_threads: None,
            tracing: true,
            reasons: ReasonsPolicy::Loopback,
            probe_protocol: ProbeProtocol::Http,
            metrics: true,
            pid1: true,
            stop_signal: StopSignal::Sigterm,
        }
    }
}
