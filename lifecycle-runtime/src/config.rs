//! Configuration: a `LIFECYCLE_*` environment variable wins over the
//! `#[service_main]` argument, which wins over the default. A bad value is
//! an error that names the variable and the accepted form (exit 2).

use std::ffi::OsString;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

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

/// `#[service_main(stop_signal = "…")]`, env `LIFECYCLE_STOP_SIGNAL`: the
/// signal that starts the graceful stop as SIGTERM does (SIGTERM and SIGINT
/// always do), and that the manifest asks the kubelet to send
/// (`lifecycle.stopSignal`). Unix only.
///
/// Only signals a service can take as a request to stop: none that cannot
/// be caught (SIGKILL, SIGSTOP), none that the kernel raises on a fault
/// (SIGSEGV, SIGBUS, SIGFPE, SIGILL), none that reports something else
/// (SIGCHLD, SIGPIPE). Each is named as Kubernetes spells it, upper case;
/// the argument and the variable also take it without the `SIG` prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StopSignal {
    /// What the kubelet sends unless told otherwise.
    #[default]
    Sigterm,
    /// Ctrl-C in a terminal.
    Sigint,
    /// What some images stop on (nginx's graceful stop, for one).
    Sigquit,
    /// The terminal's hang-up.
    Sighup,
    /// The first user-defined signal.
    Sigusr1,
    /// The second user-defined signal.
    Sigusr2,
    /// The terminal's resize (httpd's graceful stop).
    Sigwinch,
}

impl StopSignal {
    /// Every stop signal, in the order messages list them.
    pub const ALL: [StopSignal; 7] = [
        StopSignal::Sigterm,
        StopSignal::Sigint,
        StopSignal::Sigquit,
        StopSignal::Sighup,
        StopSignal::Sigusr1,
        StopSignal::Sigusr2,
        StopSignal::Sigwinch,
    ];

    /// What is accepted, for the error on any other value (every name of
    /// [`StopSignal::ALL`], in order: a test keeps them together). Windows
    /// takes SIGTERM alone, and says so.
    #[cfg_attr(windows, allow(dead_code))]
    pub(crate) const EXPECTED: &'static str = "one of SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1, SIGUSR2, SIGWINCH (upper case, the SIG prefix optional)";

    /// The name as Kubernetes spells it (`lifecycle.stopSignal`), and as
    /// the log does: `"SIGQUIT"`.
    pub fn as_str(self) -> &'static str {
        match self {
            StopSignal::Sigterm => "SIGTERM",
            StopSignal::Sigint => "SIGINT",
            StopSignal::Sigquit => "SIGQUIT",
            StopSignal::Sighup => "SIGHUP",
            StopSignal::Sigusr1 => "SIGUSR1",
            StopSignal::Sigusr2 => "SIGUSR2",
            StopSignal::Sigwinch => "SIGWINCH",
        }
    }

    /// The stop signal `name` names, `"SIGQUIT"` or `"QUIT"`, exactly so
    /// (upper case, nothing around it); `None` for any other text.
    pub fn parse(name: &str) -> Option<StopSignal> {
        StopSignal::ALL.into_iter().find(|signal| {
            let full = signal.as_str();
            name == full || Some(name) == full.strip_prefix("SIG")
        })
    }

    /// The signal's number on this system (they differ between Linux and
    /// the BSDs: SIGUSR1 is 10 on Linux, 30 on macOS).
    #[cfg(unix)]
    pub(crate) fn number(self) -> i32 {
        match self {
            StopSignal::Sigterm => libc::SIGTERM,
            StopSignal::Sigint => libc::SIGINT,
            StopSignal::Sigquit => libc::SIGQUIT,
            StopSignal::Sighup => libc::SIGHUP,
            StopSignal::Sigusr1 => libc::SIGUSR1,
            StopSignal::Sigusr2 => libc::SIGUSR2,
            StopSignal::Sigwinch => libc::SIGWINCH,
        }
    }
}

impl fmt::Display for StopSignal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
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

pub(crate) const PROBE_ADDR: &str = "LIFECYCLE_PROBE_ADDR";
pub(crate) const PROBE_ADDR_FILE: &str = "LIFECYCLE_PROBE_ADDR_FILE";
pub(crate) const SHUTDOWN_TIMEOUT: &str = "LIFECYCLE_SHUTDOWN_TIMEOUT_MS";
pub(crate) const DRAIN_DELAY: &str = "LIFECYCLE_DRAIN_DELAY_MS";
pub(crate) const CONNECTION_DRAIN: &str = "LIFECYCLE_CONNECTION_DRAIN_MS";
pub(crate) const STALL_THRESHOLD: &str = "LIFECYCLE_STALL_THRESHOLD_MS";
pub(crate) const LOG_FORMAT: &str = "LIFECYCLE_LOG_FORMAT";
pub(crate) const TERMINATION_LOG: &str = "LIFECYCLE_TERMINATION_LOG";
pub(crate) const REASONS: &str = "LIFECYCLE_REASONS";
pub(crate) const PROBE_PROTOCOL: &str = "LIFECYCLE_PROBE_PROTOCOL";
pub(crate) const METRICS: &str = "LIFECYCLE_METRICS";
pub(crate) const PID1: &str = "LIFECYCLE_PID1";
pub(crate) const STOP_SIGNAL: &str = "LIFECYCLE_STOP_SIGNAL";

/// The largest millisecond value, as a variable or an argument: a day.
/// Anything larger is a mistake, and the sums made
/// of these (deadlines, the manifest's grace period) stay far from overflow.
pub(crate) const MAX_MILLIS: u64 = 86_400_000;

const DEFAULT_PROBE_ADDR: &str = "0.0.0.0:8081";
const DEFAULT_SHUTDOWN_TIMEOUT_MS: u64 = 25_000;
const DEFAULT_STALL_THRESHOLD_MS: u64 = 10_000;
/// Long enough for a request in flight to finish; an SSE stream or a
/// WebSocket that ignores the stop is ended after it.
const DEFAULT_CONNECTION_DRAIN_MS: u64 = 5_000;
/// On Kubernetes, endpoints are removed from load balancers asynchronously
/// after the pod is marked terminating; keep serving a while.
const KUBERNETES_DRAIN_DELAY_MS: u64 = 5_000;

/// A bad value in a `LIFECYCLE_*` variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ConfigError {
    pub(crate) variable: &'static str,
    pub(crate) value: String,
    pub(crate) expected: &'static str,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid configuration: {}={:?}: expected {}",
            self.variable, self.value, self.expected
        )
    }
}

/// Where variables are read from: the process environment
/// ([`process_env`]), or a test's table. Values are `OsString`s, as the
/// environment holds bytes: a value that is no UTF-8 must be seen, not
/// taken for unset.
pub(crate) type Env<'a> = &'a dyn Fn(&str) -> Option<OsString>;

/// The process environment.
pub(crate) fn process_env(name: &str) -> Option<OsString> {
    std::env::var_os(name)
}

/// Reads one variable as given; unset, empty and blank all mean "not
/// given". Bytes that are no UTF-8 are given (and no blank).
fn raw(env: Env<'_>, name: &str) -> Option<OsString> {
    env(name).filter(|v| !v.to_str().is_some_and(|text| text.trim().is_empty()))
}

/// Reads one variable as text: a value that is no UTF-8 is a bad value
/// (none of the text forms accepts one), named with what is `expected`.
fn var(
    env: Env<'_>,
    variable: &'static str,
    expected: &'static str,
) -> Result<Option<String>, ConfigError> {
    raw(env, variable)
        .map(|value| {
            value.into_string().map_err(|value| ConfigError {
                variable,
                value: value.to_string_lossy().into_owned(),
                expected,
            })
        })
        .transpose()
}

fn millis(
    env: Env<'_>,
    variable: &'static str,
    from_attribute: Option<u64>,
    default: u64,
    min: u64,
) -> Result<Duration, ConfigError> {
    let expected = if min == 0 {
        "a whole number of milliseconds from 0 to 86400000 (a day), e.g. 5000"
    } else {
        "a whole number of milliseconds from 1 to 86400000 (a day), e.g. 5000"
    };
    let ms = match var(env, variable, expected)? {
        Some(value) => match value.trim().parse::<u64>() {
            Ok(ms) if (min..=MAX_MILLIS).contains(&ms) => ms,
            _ => {
                return Err(ConfigError {
                    variable,
                    value,
                    expected,
                })
            }
        },
        None => from_attribute.unwrap_or(default),
    };
    Ok(Duration::from_millis(ms))
}

pub(crate) fn log_format(env: Env<'_>) -> Result<LogFormat, ConfigError> {
    const EXPECTED: &str = "\"json\" or \"text\"";
    match var(env, LOG_FORMAT, EXPECTED)? {
        None => Ok(LogFormat::Text),
        Some(value) => match value.trim().to_ascii_lowercase().as_str() {
            "json" => Ok(LogFormat::Json),
            "text" | "plain" => Ok(LogFormat::Text),
            _ => Err(ConfigError {
                variable: LOG_FORMAT,
                value,
                expected: EXPECTED,
            }),
        },
    }
}

fn reasons(env: Env<'_>, from_attribute: ReasonsPolicy) -> Result<ReasonsPolicy, ConfigError> {
    const EXPECTED: &str = "\"show\" or \"loopback\"";
    match var(env, REASONS, EXPECTED)? {
        None => Ok(from_attribute),
        Some(value) => match value.trim().to_ascii_lowercase().as_str() {
            "show" => Ok(ReasonsPolicy::Show),
            "loopback" => Ok(ReasonsPolicy::Loopback),
            _ => Err(ConfigError {
                variable: REASONS,
                value,
                expected: EXPECTED,
            }),
        },
    }
}

fn probe_protocol(
    env: Env<'_>,
    from_attribute: ProbeProtocol,
) -> Result<ProbeProtocol, ConfigError> {
    const EXPECTED: &str = "\"http\" or \"grpc\"";
    // The one value the variable may not take in a binary without gRPC:
    // the manifest would send the kubelet to a protocol nobody answers.
    const WITHOUT_GRPC: &str = "\"http\": this binary was built without lifecycle-runtime's cargo feature `grpc`, which \"grpc\" needs";
    let Some(value) = var(env, PROBE_PROTOCOL, EXPECTED)? else {
        // `"grpc"` as an argument without the feature is a compile error.
        return Ok(from_attribute);
    };
    match value.trim().to_ascii_lowercase().as_str() {
        "http" => Ok(ProbeProtocol::Http),
        "grpc" if cfg!(feature = "grpc") => Ok(ProbeProtocol::Grpc),
        "grpc" => Err(ConfigError {
            variable: PROBE_PROTOCOL,
            value,
            expected: WITHOUT_GRPC,
        }),
        _ => Err(ConfigError {
            variable: PROBE_PROTOCOL,
            value,
            expected: EXPECTED,
        }),
    }
}

/// `LIFECYCLE_METRICS`: `on` or `off`, the words the documentation uses; `true`
/// and `false`, `1` and `0` are taken too, as a switch is often written
/// so. Nothing else: a typo must not turn the metrics off unnoticed.
///
/// Without the `metrics` cargo feature there are none: off by default, and
/// asking for them is a bad value naming the feature.
fn metrics(env: Env<'_>, from_attribute: bool) -> Result<bool, ConfigError> {
    const EXPECTED: &str = "\"on\" or \"off\" (or \"true\" or \"false\", \"1\" or \"0\")";
    const WITHOUT_METRICS: &str = "\"off\": this binary was built without lifecycle-runtime's cargo feature `metrics`, which serving them needs";
    match var(env, METRICS, EXPECTED)? {
        None => Ok(from_attribute && cfg!(feature = "metrics")),
        Some(value) => match value.trim().to_ascii_lowercase().as_str() {
            "on" | "true" | "1" if cfg!(feature = "metrics") => Ok(true),
            "on" | "true" | "1" => Err(ConfigError {
                variable: METRICS,
                value,
                expected: WITHOUT_METRICS,
            }),
            "off" | "false" | "0" => Ok(false),
            _ => Err(ConfigError {
                variable: METRICS,
                value,
                expected: EXPECTED,
            }),
        },
    }
}

/// `LIFECYCLE_PID1`: `on` or `off`, with the same spellings as
/// `LIFECYCLE_METRICS`, and nothing else.
fn pid1(env: Env<'_>, from_attribute: bool) -> Result<bool, ConfigError> {
    const EXPECTED: &str = "\"on\" or \"off\" (or \"true\" or \"false\", \"1\" or \"0\")";
    match var(env, PID1, EXPECTED)? {
        None => Ok(from_attribute),
        Some(value) => match value.trim().to_ascii_lowercase().as_str() {
            "on" | "true" | "1" => Ok(true),
            "off" | "false" | "0" => Ok(false),
            _ => Err(ConfigError {
                variable: PID1,
                value,
                expected: EXPECTED,
            }),
        },
    }
}

/// Whether the PID-1 init is wanted, read before anything else runs (it
/// must fork before any thread exists, long before [`Settings::resolve`]).
/// A bad value is `false`: no fork, and the service, run as usual, exits 2
/// when `Settings::resolve` reports the same value through the same parse.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub(crate) fn pid1_wanted(config: &ServiceConfig, env: Env<'_>) -> bool {
    pid1(env, config.pid1).unwrap_or(false)
}

/// `LIFECYCLE_STOP_SIGNAL`: a [`StopSignal`] by name, upper case as in the
/// argument, blanks around it ignored as in every variable.
///
/// Windows has no signals: a Windows container is stopped with the
/// console's events, and a Windows pod allows no stop signal but SIGTERM
/// and SIGKILL. There SIGTERM is taken (it changes nothing) and any other
/// name is a bad value.
fn stop_signal(env: Env<'_>, from_attribute: StopSignal) -> Result<StopSignal, ConfigError> {
    #[cfg(windows)]
    const EXPECTED: &str = "SIGTERM or nothing: Windows stops a service with its console events, and Windows pods allow only SIGTERM and SIGKILL";
    #[cfg(not(windows))]
    const EXPECTED: &str = StopSignal::EXPECTED;
    let Some(value) = var(env, STOP_SIGNAL, EXPECTED)? else {
        return Ok(from_attribute);
    };
    match StopSignal::parse(value.trim()) {
        Some(signal) if cfg!(not(windows)) || signal == StopSignal::Sigterm => Ok(signal),
        _ => Err(ConfigError {
            variable: STOP_SIGNAL,
            value,
            expected: EXPECTED,
        }),
    }
}

/// The stop signal to install a handler for, read before anything else
/// runs (the handlers come before [`Settings::resolve`]). A bad value is
/// SIGTERM: nothing but the usual handlers, and the service, run as usual,
/// exits 2 when `Settings::resolve` reports the same value through the
/// same parse.
pub(crate) fn stop_signal_wanted(config: &ServiceConfig, env: Env<'_>) -> StopSignal {
    stop_signal(env, config.stop_signal).unwrap_or_default()
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config() -> ServiceConfig {
        ServiceConfig {
            probe_addr: Some("127.0.0.1:9000"),
            drain_delay_ms: Some(100),
            ..ServiceConfig::defaults()
        }
    }

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<OsString> {
        let map: HashMap<String, OsString> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), OsString::from(v)))
            .collect();
        move |name| map.get(name).cloned()
    }

    /// `before`, a byte that no UTF-8 text holds, then `after`.
    #[cfg(unix)]
    fn not_utf8(before: &str, after: &str) -> OsString {
        use std::os::unix::ffi::OsStringExt;
        let mut bytes = before.as_bytes().to_vec();
        bytes.push(0xff);
        bytes.extend_from_slice(after.as_bytes());
        OsString::from_vec(bytes)
    }

    /// `before`, a lone UTF-16 surrogate (what Windows allows in a
    /// variable and no UTF-8 text holds), then `after`.
    #[cfg(windows)]
    fn not_utf8(before: &str, after: &str) -> OsString {
        use std::os::windows::ffi::OsStringExt;
        let mut wide: Vec<u16> = before.encode_utf16().collect();
        wide.push(0xD800);
        wide.extend(after.encode_utf16());
        OsString::from_wide(&wide)
    }

    #[test]
    fn a_value_that_is_no_utf8_is_a_bad_value_not_an_unset_one() {
        for variable in [
            SHUTDOWN_TIMEOUT,
            DRAIN_DELAY,
            CONNECTION_DRAIN,
            STALL_THRESHOLD,
            PROBE_ADDR,
            REASONS,
            PROBE_PROTOCOL,
            METRICS,
            PID1,
            STOP_SIGNAL,
        ] {
            let bytes = not_utf8("5", "0");
            let env = move |name: &str| (name == variable).then(|| bytes.clone());
            let err = Settings::resolve(&config(), &env).unwrap_err();
            assert_eq!(err.variable, variable);
            assert!(err.to_string().contains("expected "), "{err}");
        }
        let env = |name: &str| (name == LOG_FORMAT).then(|| not_utf8("js", "on"));
        assert_eq!(log_format(&env).unwrap_err().variable, LOG_FORMAT);
        // A path is bytes, and taken as they are.
        let path = not_utf8("/tmp/addr-", "");
        let given = path.clone();
        let env = move |name: &str| (name == PROBE_ADDR_FILE).then(|| given.clone());
        let settings = Settings::resolve(&config(), &env).unwrap();
        assert_eq!(settings.probe_addr_file, Some(PathBuf::from(path)));
    }

    #[test]
    fn empty_and_blank_values_count_as_unset() {
        for blank in ["", "  ", "\t"] {
            for variable in [
                SHUTDOWN_TIMEOUT,
                DRAIN_DELAY,
                CONNECTION_DRAIN,
                PROBE_ADDR,
                PROBE_ADDR_FILE,
                REASONS,
                PROBE_PROTOCOL,
                METRICS,
                PID1,
                STOP_SIGNAL,
            ] {
                // Off by the argument: a blank variable must not turn them on.
                let without_metrics = ServiceConfig {
                    metrics: false,
                    ..config()
                };
                let settings =
                    Settings::resolve(&without_metrics, &env(&[(variable, blank)])).unwrap();
                assert_eq!(settings.drain_delay, Duration::from_millis(100));
                assert_eq!(settings.probe_addr_file, None);
                assert!(!settings.metrics, "{variable}={blank:?}");
                assert_eq!(settings.stop_signal, StopSignal::Sigterm);
            }
            // Blank is unset: the argument's `true` stands.
            assert!(pid1_wanted(&config(), &env(&[(PID1, blank)])));
            assert_eq!(
                log_format(&env(&[(LOG_FORMAT, blank)])),
                Ok(LogFormat::Text)
            );
        }
    }

    #[test]
    fn environment_beats_attribute_beats_default() {
        let settings = Settings::resolve(&config(), &env(&[(DRAIN_DELAY, "300")])).unwrap();
        assert_eq!(settings.drain_delay, Duration::from_millis(300));
        assert_eq!(settings.probe_addr, "127.0.0.1:9000".parse().unwrap());
        assert_eq!(settings.shutdown_timeout, Duration::from_millis(25_000));
        let settings = Settings::resolve(&config(), &env(&[])).unwrap();
        assert_eq!(settings.drain_delay, Duration::from_millis(100));
    }

    #[test]
    fn kubernetes_changes_the_default_drain_delay_only() {
        let mut cfg = config();
        cfg.drain_delay_ms = None;
        let on_k8s = env(&[("KUBERNETES_SERVICE_HOST", "10.0.0.1")]);
        assert_eq!(
            Settings::resolve(&cfg, &on_k8s).unwrap().drain_delay,
            Duration::from_millis(5_000)
        );
        assert_eq!(
            Settings::resolve(&cfg, &env(&[])).unwrap().drain_delay,
            Duration::ZERO
        );
    }

    #[test]
    fn bad_values_name_the_variable() {
        let err = Settings::resolve(&config(), &env(&[(SHUTDOWN_TIMEOUT, "soon")])).unwrap_err();
        assert_eq!(err.variable, SHUTDOWN_TIMEOUT);
        assert!(err
            .to_string()
            .contains("LIFECYCLE_SHUTDOWN_TIMEOUT_MS=\"soon\""));
        let err = Settings::resolve(&config(), &env(&[(PROBE_ADDR, "8081")])).unwrap_err();
        assert_eq!(err.variable, PROBE_ADDR);
        let err = Settings::resolve(&config(), &env(&[(STALL_THRESHOLD, "0")])).unwrap_err();
        assert_eq!(err.variable, STALL_THRESHOLD);
        let err = Settings::resolve(&config(), &env(&[(REASONS, "everyone")])).unwrap_err();
        assert_eq!(err.variable, REASONS);
        assert!(
            err.to_string().contains("\"show\" or \"loopback\""),
            "{err}"
        );
        assert_eq!(
            log_format(&env(&[(LOG_FORMAT, "xml")]))
                .unwrap_err()
                .variable,
            LOG_FORMAT
        );
    }

    #[test]
    fn every_millisecond_variable_is_at_most_a_day() {
        for variable in [SHUTDOWN_TIMEOUT, DRAIN_DELAY, STALL_THRESHOLD] {
            let day = Settings::resolve(&config(), &env(&[(variable, "86400000")]));
            assert!(day.is_ok(), "{variable}=86400000 is a day: {day:?}");
            for absurd in ["86400001", "18446744073709551615", "18446744073709551616"] {
                let err = Settings::resolve(&config(), &env(&[(variable, absurd)])).unwrap_err();
                assert_eq!(err.variable, variable);
                let message = err.to_string();
                assert!(
                    message.contains(variable) && message.contains("86400000"),
                    "names the variable and the bound: {message}"
                );
            }
        }
    }

    #[test]
    fn reasons_follow_the_variable_over_the_argument() {
        let mut shown = config();
        shown.reasons = ReasonsPolicy::Show;
        let resolve = |config: &ServiceConfig, pairs: &[(&str, &str)]| {
            Settings::resolve(config, &env(pairs)).unwrap().reasons
        };
        assert_eq!(resolve(&config(), &[]), ReasonsPolicy::Loopback);
        assert_eq!(resolve(&shown, &[]), ReasonsPolicy::Show);
        assert_eq!(
            resolve(&shown, &[(REASONS, "loopback")]),
            ReasonsPolicy::Loopback
        );
        assert_eq!(
            resolve(&config(), &[(REASONS, " Show ")]),
            ReasonsPolicy::Show
        );
    }

    #[test]
    fn the_probe_protocol_follows_the_variable_over_the_argument() {
        let mut grpc = config();
        grpc.probe_protocol = ProbeProtocol::Grpc;
        let resolve = |config: &ServiceConfig, pairs: &[(&str, &str)]| {
            Settings::resolve(config, &env(pairs)).map(|s| s.probe_protocol)
        };
        assert_eq!(resolve(&config(), &[]), Ok(ProbeProtocol::Http));
        assert_eq!(resolve(&grpc, &[]), Ok(ProbeProtocol::Grpc));
        assert_eq!(
            resolve(&grpc, &[(PROBE_PROTOCOL, " HTTP ")]),
            Ok(ProbeProtocol::Http)
        );
        for bad in ["h2", "https", "grpc,http", "tcp", "1"] {
            let err = resolve(&config(), &[(PROBE_PROTOCOL, bad)]).unwrap_err();
            assert_eq!(err.variable, PROBE_PROTOCOL);
            let message = err.to_string();
            assert!(
                message.contains(&format!("LIFECYCLE_PROBE_PROTOCOL={bad:?}"))
                    && message.contains("expected \"http\" or \"grpc\""),
                "{message}"
            );
        }
    }

    #[test]
    #[cfg(feature = "metrics")]
    fn metrics_follow_the_variable_over_the_argument() {
        let without = ServiceConfig {
            metrics: false,
            ..config()
        };
        let resolve = |config: &ServiceConfig, pairs: &[(&str, &str)]| {
            Settings::resolve(config, &env(pairs)).map(|s| s.metrics)
        };
        assert_eq!(resolve(&config(), &[]), Ok(true));
        assert_eq!(resolve(&without, &[]), Ok(false));
        for off in ["off", "OFF", " Off ", "false", "False", "0"] {
            assert_eq!(resolve(&config(), &[(METRICS, off)]), Ok(false), "{off:?}");
        }
        for on in ["on", "ON", " On\t", "true", "TRUE", "1"] {
            assert_eq!(resolve(&without, &[(METRICS, on)]), Ok(true), "{on:?}");
        }
        // Words other switches take elsewhere, numbers, typos, lists: none
        // is a guess at what was meant.
        for bad in [
            "yes", "no", "enabled", "disabled", "of", "2", "-1", "on,off", "o n",
        ] {
            let err = resolve(&config(), &[(METRICS, bad)]).unwrap_err();
            assert_eq!(err.variable, METRICS);
            let message = err.to_string();
            assert!(
                message.starts_with(&format!(
                    "invalid configuration: LIFECYCLE_METRICS={bad:?}: expected \"on\" or \"off\""
                )),
                "{message}"
            );
        }
    }

    #[test]
    fn pid1_follows_the_variable_over_the_argument() {
        let without = ServiceConfig {
            pid1: false,
            ..config()
        };
        let resolve = |config: &ServiceConfig, pairs: &[(&str, &str)]| {
            Settings::resolve(config, &env(pairs)).map(|_| ())
        };
        assert!(pid1_wanted(&config(), &env(&[])));
        assert!(!pid1_wanted(&without, &env(&[])));
        for off in ["off", "OFF", " Off ", "false", "False", "0"] {
            assert_eq!(resolve(&config(), &[(PID1, off)]), Ok(()), "{off:?}");
            assert!(!pid1_wanted(&config(), &env(&[(PID1, off)])), "{off:?}");
        }
        for on in ["on", "ON", " On\t", "true", "TRUE", "1"] {
            assert_eq!(resolve(&without, &[(PID1, on)]), Ok(()), "{on:?}");
            assert!(pid1_wanted(&without, &env(&[(PID1, on)])), "{on:?}");
        }
        for bad in ["yes", "no", "tini", "of", "2", "on,off", "o n"] {
            let err = resolve(&config(), &[(PID1, bad)]).unwrap_err();
            assert_eq!(err.variable, PID1);
            let message = err.to_string();
            assert!(
                message.starts_with(&format!(
                    "invalid configuration: LIFECYCLE_PID1={bad:?}: expected \"on\" or \"off\""
                )),
                "{message}"
            );
            // No fork on a bad value: the service runs and exits 2.
            assert!(!pid1_wanted(&config(), &env(&[(PID1, bad)])), "{bad:?}");
        }
    }

    #[test]
    fn stop_signals_are_named_as_kubernetes_spells_them_with_or_without_sig() {
        let names: Vec<&str> = StopSignal::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(
            names,
            ["SIGTERM", "SIGINT", "SIGQUIT", "SIGHUP", "SIGUSR1", "SIGUSR2", "SIGWINCH"]
        );
        for signal in StopSignal::ALL {
            let name = signal.as_str();
            assert_eq!(StopSignal::parse(name), Some(signal));
            assert_eq!(StopSignal::parse(&name[3..]), Some(signal), "{name}");
            assert_eq!(signal.to_string(), name);
        }
        let listed: Vec<&str> = StopSignal::EXPECTED
            .trim_start_matches("one of ")
            .split(" (")
            .next()
            .unwrap()
            .split(", ")
            .collect();
        assert_eq!(listed, names, "the error lists exactly the accepted ones");
        assert_eq!(StopSignal::default(), StopSignal::Sigterm);
    }

    #[test]
    fn a_stop_signal_is_upper_case_and_exact() {
        for bad in [
            "sigquit",
            "quit",
            "SigQuit",
            "SIG",
            "",
            "SIGQUIT ",
            " QUIT",
            "SIGSIGQUIT",
            "3",
            "SIGQUIT,SIGTERM",
        ] {
            assert_eq!(StopSignal::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn signals_that_cannot_mean_stop_are_no_stop_signal() {
        // Uncatchable, raised by a fault, or reporting something else: as
        // an argument or a variable, with or without the prefix.
        for name in [
            "SIGKILL",
            "SIGSTOP",
            "SIGCHLD",
            "SIGPIPE",
            "SIGSEGV",
            "SIGBUS",
            "SIGFPE",
            "SIGILL",
            "SIGABRT",
            "SIGTRAP",
            "SIGSYS",
            "SIGALRM",
            "SIGCONT",
            "SIGTSTP",
            "SIGTTIN",
            "SIGURG",
            "SIGRTMIN",
            "SIGRTMIN+1",
        ] {
            for given in [name, &name[3..]] {
                assert_eq!(StopSignal::parse(given), None, "{given}");
                let err = Settings::resolve(&config(), &env(&[(STOP_SIGNAL, given)])).unwrap_err();
                assert_eq!(err.variable, STOP_SIGNAL);
                let message = err.to_string();
                assert!(
                    message.starts_with(&format!(
                        "invalid configuration: LIFECYCLE_STOP_SIGNAL={given:?}: expected "
                    )),
                    "{message}"
                );
                // Never taken for the default, before the settings either.
                assert_eq!(
                    stop_signal_wanted(&config(), &env(&[(STOP_SIGNAL, given)])),
                    StopSignal::Sigterm
                );
            }
        }
    }

    #[cfg(unix)]
    #[test]
    fn the_stop_signal_follows_the_variable_over_the_argument() {
        let quit = ServiceConfig {
            stop_signal: StopSignal::Sigquit,
            ..config()
        };
        let resolve = |config: &ServiceConfig, pairs: &[(&str, &str)]| {
            Settings::resolve(config, &env(pairs)).map(|s| s.stop_signal)
        };
        assert_eq!(resolve(&config(), &[]), Ok(StopSignal::Sigterm));
        assert_eq!(resolve(&quit, &[]), Ok(StopSignal::Sigquit));
        assert_eq!(
            resolve(&quit, &[(STOP_SIGNAL, "SIGTERM")]),
            Ok(StopSignal::Sigterm)
        );
        for (given, signal) in [
            ("SIGHUP", StopSignal::Sighup),
            ("USR1", StopSignal::Sigusr1),
            (" SIGUSR2\t", StopSignal::Sigusr2),
            ("WINCH", StopSignal::Sigwinch),
            ("INT", StopSignal::Sigint),
        ] {
            assert_eq!(resolve(&config(), &[(STOP_SIGNAL, given)]), Ok(signal));
            assert_eq!(
                stop_signal_wanted(&config(), &env(&[(STOP_SIGNAL, given)])),
                signal
            );
        }
        assert_eq!(stop_signal_wanted(&quit, &env(&[])), StopSignal::Sigquit);
        for bad in ["sigquit", "quit", "SIGQUIT,SIGTERM", "15"] {
            let err = resolve(&quit, &[(STOP_SIGNAL, bad)]).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!(
                    "invalid configuration: LIFECYCLE_STOP_SIGNAL={bad:?}: expected one of SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1, SIGUSR2, SIGWINCH (upper case, the SIG prefix optional)"
                )
            );
            // A bad value installs nothing but the usual handlers, not
            // even the argument's.
            assert_eq!(
                stop_signal_wanted(&quit, &env(&[(STOP_SIGNAL, bad)])),
                StopSignal::Sigterm
            );
        }
    }

    #[cfg(unix)]
    #[test]
    fn stop_signals_have_this_systems_numbers() {
        let numbers: Vec<i32> = StopSignal::ALL.iter().map(|s| s.number()).collect();
        #[cfg(target_os = "linux")]
        assert_eq!(numbers, [15, 2, 3, 1, 10, 12, 28]);
        #[cfg(target_os = "macos")]
        assert_eq!(numbers, [15, 2, 3, 1, 30, 31, 28]);
        let _ = numbers;
    }

    #[cfg(windows)]
    #[test]
    fn on_windows_the_stop_signal_can_only_be_sigterm() {
        for term in ["SIGTERM", "TERM"] {
            let settings = Settings::resolve(&config(), &env(&[(STOP_SIGNAL, term)])).unwrap();
            assert_eq!(settings.stop_signal, StopSignal::Sigterm);
        }
        for other in ["SIGQUIT", "SIGINT", "HUP"] {
            let err = Settings::resolve(&config(), &env(&[(STOP_SIGNAL, other)])).unwrap_err();
            assert_eq!(err.variable, STOP_SIGNAL);
            assert!(
                err.to_string()
                    .contains("Windows pods allow only SIGTERM and SIGKILL"),
                "{err}"
            );
        }
    }

    #[cfg(feature = "grpc")]
    #[test]
    fn grpc_probes_are_taken_with_the_feature() {
        let settings = Settings::resolve(&config(), &env(&[(PROBE_PROTOCOL, "grpc")])).unwrap();
        assert_eq!(settings.probe_protocol, ProbeProtocol::Grpc);
        let settings = Settings::resolve(&config(), &env(&[(PROBE_PROTOCOL, "gRPC")])).unwrap();
        assert_eq!(settings.probe_protocol, ProbeProtocol::Grpc);
    }

    #[test]
    #[cfg(not(feature = "metrics"))]
    fn without_the_metrics_feature_there_are_none_and_asking_is_a_bad_value() {
        let settings = Settings::resolve(&config(), &env(&[])).unwrap();
        assert!(!settings.metrics, "off by default without the feature");
        let off = Settings::resolve(&config(), &env(&[(METRICS, "off")])).unwrap();
        assert!(!off.metrics);
        let message = Settings::resolve(&config(), &env(&[(METRICS, "on")]))
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("built without lifecycle-runtime's cargo feature `metrics`"),
            "{message}"
        );
    }

    #[cfg(not(feature = "grpc"))]
    #[test]
    fn grpc_probes_without_the_feature_are_a_bad_value_naming_it() {
        let err = Settings::resolve(&config(), &env(&[(PROBE_PROTOCOL, "grpc")])).unwrap_err();
        assert_eq!(err.variable, PROBE_PROTOCOL);
        let message = err.to_string();
        assert!(
            message
                .starts_with("invalid configuration: LIFECYCLE_PROBE_PROTOCOL=\"grpc\": expected ")
                && message.contains("built without lifecycle-runtime's cargo feature `grpc`"),
            "{message}"
        );
    }
}
