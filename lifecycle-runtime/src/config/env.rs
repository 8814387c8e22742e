//! The `LIFECYCLE_*` variables, read as given or from a test's table,
//! and the parse of each: a bad value is a [`ConfigError`] that names the
//! variable and the accepted form.

use std::ffi::OsString;
use std::fmt;
use std::time::Duration;

use super::service_config::{ProbeProtocol, ReasonsPolicy, ServiceConfig};
use super::stop_signal::StopSignal;

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
const MAX_MILLIS: u64 = 86_400_000;
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
pub(super) fn raw(env: Env<'_>, name: &str) -> Option<OsString> {
    env(name).filter(|v| !v.to_str().is_some_and(|text| text.trim().is_empty()))
}

/// Reads one variable as text: a value that is no UTF-8 is a bad value
/// (none of the text forms accepts one), named with what is `expected`.
pub(super) fn var(
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

pub(super) fn millis(
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

/// `LIFECYCLE_LOG_FORMAT`: how the default log subscriber writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum LogFormat {
    #[default]
    Text,
    Json,
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

pub(super) fn reasons(
    env: Env<'_>,
    from_attribute: ReasonsPolicy,
) -> Result<ReasonsPolicy, ConfigError> {
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

pub(super) fn probe_protocol(
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
pub(super) fn metrics(env: Env<'_>, from_attribute: bool) -> Result<bool, ConfigError> {
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
pub(super) fn pid1(env: Env<'_>, from_attribute: bool) -> Result<bool, ConfigError> {
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
/// must fork before any thread exists, long before `Settings::resolve`).
/// A bad value is `false`: no fork, and the service, run as usual, exits 2
/// when `Settings::resolve` reports the same value through the same parse.
#[cfg(any(target_os = "linux", test))]
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
pub(super) fn stop_signal(
    env: Env<'_>,
    from_attribute: StopSignal,
) -> Result<StopSignal, ConfigError> {
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
/// runs (the handlers come before `Settings::resolve`). A bad value is
/// SIGTERM: nothing but the usual handlers, and the service, run as usual,
/// exits 2 when `Settings::resolve` reports the same value through the
/// same parse.
pub(crate) fn stop_signal_wanted(config: &ServiceConfig, env: Env<'_>) -> StopSignal {
    stop_signal(env, config.stop_signal).unwrap_or_default()
}
