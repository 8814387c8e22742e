//! What stops the service, and the shutdown deadline, watched from a
//! thread of their own: a stalled application runtime still leaves
//! rotation at once, still exits on a second stop event and still cannot
//! overrun its deadline.
//!
//! The stop events are SIGTERM, SIGINT and the configured stop signal
//! ([`StopSignal`]) on unix ([`unix`]), the console control events on
//! Windows ([`windows`]); which event is a stop, what it is called and the
//! exit code of a second one are decided in [`event`], the same on every
//! system.
//!
//! The handlers are installed first thing in `run_service`, before logging
//! and configuration, so that no stop event takes the default action once
//! `main` runs. They only record the event; the thread, started later,
//! reads it: an event that came before it is remembered there and acted on
//! as soon as it runs.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use crate::config::StopSignal;
use crate::failures::Failure;
use crate::lifecycle::Lifecycle;

pub(crate) mod event;
#[cfg(unix)]
mod unix;
#[cfg(unix)]
use unix as platform;
#[cfg(windows)]
mod windows;
#[cfg(windows)]
use windows as platform;

use platform::Received;
pub(crate) use platform::{install, Handlers, UNWATCHED};

/// What stops the service here, for messages: SIGTERM, SIGINT and
/// `stop_signal`.
#[cfg(unix)]
pub(crate) fn watched(stop_signal: StopSignal) -> String {
    match stop_signal {
        StopSignal::Sigterm | StopSignal::Sigint => "SIGTERM and SIGINT".to_owned(),
        other => format!("SIGTERM, SIGINT and {other}"),
    }
}

/// What stops the service here, for messages (Windows has no stop
/// signal but its console's events).
#[cfg(windows)]
pub(crate) fn watched(_stop_signal: StopSignal) -> String {
    "the console's stop events (Ctrl-C, Ctrl-Break, close, shutdown)".to_owned()
}

fn current_thread_runtime() -> io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

/// Starts the thread that requests the stop of `lifecycle` on the first
/// signal (received now or before), exits on the second, and enforces the
/// shutdown deadline from the moment a stop is requested.
pub(crate) fn start(
    handlers: Handlers,
    lifecycle: Arc<Lifecycle>,
    shutdown_timeout: Duration,
) -> io::Result<()> {
    spawn_signal_thread(handlers, move |runtime, mut signals| {
        runtime.block_on(async move {
                let cause = tokio::select! {
                    event = signals.next() => {
                        lifecycle.request_stop();
                        tracing::info!("{} received: leaving rotation and shutting down", event.as_str());
                        Some(event)
                    }
                    _ = lifecycle.stop_requested() => None,
                };
                let deadline = tokio::time::sleep(shutdown_timeout);
                tokio::pin!(deadline);
                let mut signalled = cause.is_some();
                loop {
                    tokio::select! {
                        event = signals.next() => {
                            if signalled {
                                Failure::StopEventAgain(event).exit_now();
                            }
                            // The first stop event of a stop that began otherwise.
                            signalled = true;
                            tracing::info!("{} received: already shutting down", event.as_str());
                        }
                        _ = &mut deadline => {
                            Failure::Deadline {
                                timeout: shutdown_timeout,
                                cause,
                                running: lifecycle.still_running(),
                            }
                            .exit_now();
                        }
                    }
                }
            });
    })
}

/// For the modes that serve nothing (`--lifecycle-preflight`, `-probe`,
/// `-manifest`): a signal, received now or before, does what its default
/// action would have: it ends the process, or (SIGWINCH) nothing.
pub(crate) fn default_action(handlers: Handlers) -> io::Result<()> {
    spawn_signal_thread(handlers, |runtime, mut signals| loop {
        let event = runtime.block_on(signals.next());
        platform::default_action(event);
    })
}

/// Runs `body` on the `lifecycle-signals` thread with a runtime of its own
/// and the signals the handlers recorded, from the first one on.
fn spawn_signal_thread(
    handlers: Handlers,
    body: impl FnOnce(tokio::runtime::Runtime, Received) + Send + 'static,
) -> io::Result<()> {
    let runtime = current_thread_runtime()?;
    let signals = {
        let _on = runtime.enter();
        Received::new(handlers)?
    };
    std::thread::Builder::new()
        .name("lifecycle-signals".into())
        .spawn(move || body(runtime, signals))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[cfg(unix)]
    use crate::config::StopSignal;

    #[cfg(unix)]
    #[test]
    fn the_messages_name_the_configured_stop_signal() {
        assert_eq!(super::watched(StopSignal::Sigterm), "SIGTERM and SIGINT");
        assert_eq!(super::watched(StopSignal::Sigint), "SIGTERM and SIGINT");
        assert_eq!(
            super::watched(StopSignal::Sigquit),
            "SIGTERM, SIGINT and SIGQUIT"
        );
    }
}
