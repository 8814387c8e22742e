//! The default `tracing` subscriber (cargo feature `tracing-subscriber`):
//! honours `RUST_LOG` (default `info`), writes to stderr, and JSON lines
//! with `LIFECYCLE_LOG_FORMAT=json`.

use crate::config::LogFormat;

#[cfg(feature = "tracing-subscriber")]
pub(crate) fn install(format: LogFormat) {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;

    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    // `try_init` fails only when the application already installed a
    // subscriber, which is then the one to use.
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// Without the feature, `#[service_main]` with `tracing = true` does not
/// compile (see `require_default_subscriber!` below), so this is never
/// reached with `tracing = true`.
#[cfg(not(feature = "tracing-subscriber"))]
pub(crate) fn install(_format: LogFormat) {}

/// Expands to nothing when the default subscriber is built in, and to a
/// compile error naming the feature when it is not: what
/// `#[service_main]` with `tracing = true` (the default) invokes.
#[cfg(feature = "tracing-subscriber")]
#[doc(hidden)]
#[macro_export]
macro_rules! require_default_subscriber {
    () => {};
}

/// Expands to nothing when the default subscriber is built in, and to a
/// compile error naming the feature when it is not: what
/// `#[service_main]` with `tracing = true` (the default) invokes.
#[cfg(not(feature = "tracing-subscriber"))]
#[doc(hidden)]
#[macro_export]
macro_rules! require_default_subscriber {
    () => {
        ::core::compile_error!(
            "#[service_main] installs a log subscriber unless `tracing = false`, and that needs lifecycle-runtime's cargo feature `tracing-subscriber` (on by default): enable it, or write #[service_main(tracing = false)] and install your own subscriber"
        );
    };
}
