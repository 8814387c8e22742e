//! The settings in force: `#[service_main]`'s arguments with the
//! environment's say over them, and the defaults under both.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::env::{
    metrics, millis, pid1, probe_protocol, raw, reasons, stop_signal, var, ConfigError, Env,
    CONNECTION_DRAIN, DRAIN_DELAY, PROBE_ADDR, PROBE_ADDR_FILE, SHUTDOWN_TIMEOUT, STALL_THRESHOLD,
};
use super::service_config::{ProbeProtocol, ReasonsPolicy, ServiceConfig};
use super::stop_signal::StopSignal;

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
