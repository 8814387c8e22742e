//! Configuration: a `LIFECYCLE_*` environment variable wins over the
//! `#[service_main]` argument, which wins over the default. A bad value is
//! an error that names the variable and the accepted form (exit 2).
//!
//! The arguments are in [`service_config`], the stop signal's names in
//! [`stop_signal`], the variables and their parsing in [`env`], and the
//! settings they resolve to in [`settings`].

mod env;
mod service_config;
mod settings;
mod stop_signal;
#[cfg(test)]
mod tests;

#[cfg(target_os = "linux")]
pub(crate) use self::env::pid1_wanted;
pub(crate) use self::env::{
    log_format, process_env, stop_signal_wanted, ConfigError, LogFormat, DRAIN_DELAY, METRICS,
    PROBE_ADDR, PROBE_ADDR_FILE, STOP_SIGNAL, TERMINATION_LOG,
};
pub use self::service_config::{Flavor, PanicPolicy, ProbeProtocol, ReasonsPolicy, ServiceConfig};
pub(crate) use self::settings::Settings;
pub use self::stop_signal::StopSignal;
