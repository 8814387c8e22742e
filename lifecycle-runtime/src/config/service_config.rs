//! What `#[service_main]`'s arguments say: [`ServiceConfig`], which the
//! generated code builds, and the values its arguments take.

use super::stop_signal::StopSignal;

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
