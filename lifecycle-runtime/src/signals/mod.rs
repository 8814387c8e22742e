//! What stops the service, and the shutdown deadline, watched from a
//! thread of their own: a stalled application runtime still leaves
//! rotation at once, still exits on a second stop event and still cannot
//! overrun its deadline.
//!
//! The stop events are SIGTERM, SIGINT and the configured stop signal
//! ([`StopSignal`]) on unix ([`unix`]), the console control events on
//! Windows ([`windows`]); which event is a stop, what it is called and the
//! exit code of a second one are decided here, the same on every system
//! ([`StopEvent`]).
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
use crate::exit::{terminate, Code};
use crate::lifecycle::Lifecycle;

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

/// The Windows console control events, as `wincon.h` numbers them (and
/// tokio's handler receives them). Used on Windows, tested everywhere.
#[cfg(any(windows, test))]
pub(crate) mod console {
    pub(crate) const CTRL_C_EVENT: u32 = 0;
    pub(crate) const CTRL_BREAK_EVENT: u32 = 1;
    pub(crate) const CTRL_CLOSE_EVENT: u32 = 2;
    /// No stop: named for the tests that say so.
    #[cfg(test)]
    pub(crate) const CTRL_LOGOFF_EVENT: u32 = 5;
    pub(crate) const CTRL_SHUTDOWN_EVENT: u32 = 6;
}

/// An event that asks the service to stop: the first starts the graceful
/// stop, a second during it exits at once with [`StopEvent::exit_code`].
///
/// The console's events exist on Windows, and in the tests everywhere.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StopEvent {
    /// Unix: SIGTERM (what the kubelet sends unless told otherwise), SIGINT
    /// (Ctrl-C in a terminal), or the configured stop signal.
    #[cfg(unix)]
    Signal(StopSignal),
    /// Windows: Ctrl-C in the console.
    #[cfg(any(windows, test))]
    CtrlC,
    /// Windows: Ctrl-Break in the console.
    #[cfg(any(windows, test))]
    CtrlBreak,
    /// Windows: the console window is being closed.
    #[cfg(any(windows, test))]
    CtrlClose,
    /// Windows: the system is shutting down; what a Windows container
    /// receives when it is stopped.
    #[cfg(any(windows, test))]
    CtrlShutdown,
}

#[cfg(any(windows, test))]
impl StopEvent {
    /// A Windows console control event, or `None` for one that is not a
    /// stop: logoff (a service outlives its user's session) or an unknown
    /// number.
    pub(crate) fn from_console_event(event: u32) -> Option<StopEvent> {
        match event {
            console::CTRL_C_EVENT => Some(StopEvent::CtrlC),
            console::CTRL_BREAK_EVENT => Some(StopEvent::CtrlBreak),
            console::CTRL_CLOSE_EVENT => Some(StopEvent::CtrlClose),
            console::CTRL_SHUTDOWN_EVENT => Some(StopEvent::CtrlShutdown),
            _ => None,
        }
    }
}

impl StopEvent {
    /// The event as the log names it.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            #[cfg(unix)]
            StopEvent::Signal(signal) => signal.as_str(),
            #[cfg(any(windows, test))]
            StopEvent::CtrlC => "Ctrl-C",
            #[cfg(any(windows, test))]
            StopEvent::CtrlBreak => "Ctrl-Break",
            #[cfg(any(windows, test))]
            StopEvent::CtrlClose => "the console's close event",
            #[cfg(any(windows, test))]
            StopEvent::CtrlShutdown => "CTRL_SHUTDOWN_EVENT",
        }
    }

    /// The exit code of a second stop event during the stop, or of one
    /// where no service runs: 128 + the signal's number, as a shell reports
    /// a process the signal ended (this system's number: SIGUSR1 is 138 on
    /// Linux, 158 on macOS). Windows follows Linux: Ctrl-C is an interrupt
    /// (130, as SIGINT), the others ask the service to terminate (143, as
    /// SIGTERM).
    pub(crate) fn exit_code(self) -> Code {
        #[cfg(any(windows, test))]
        const SIGINT: i32 = 2;
        #[cfg(any(windows, test))]
        const SIGTERM: i32 = 15;
        match self {
            #[cfg(unix)]
            StopEvent::Signal(signal) => Code::Signal(signal.number()),
            #[cfg(any(windows, test))]
            StopEvent::CtrlC => Code::Signal(SIGINT),
            #[cfg(any(windows, test))]
            StopEvent::CtrlBreak | StopEvent::CtrlClose | StopEvent::CtrlShutdown => {
                Code::Signal(SIGTERM)
            }
        }
    }
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
                                terminate(
                                    event.exit_code(),
                                    &format!("{} received again during shutdown: exiting at once", event.as_str()),
                                );
                            }
                            // The first stop event of a stop that began otherwise.
                            signalled = true;
                            tracing::info!("{} received: already shutting down", event.as_str());
                        }
                        _ = &mut deadline => {
                            let since = match cause {
                                Some(event) => format!("of {}", event.as_str()),
                                None => "of the stop".to_owned(),
                            };
                            terminate(
                                Code::Failure,
                                &format!(
                                    "shutdown did not finish within {} ms {since}; still running: {}",
                                    shutdown_timeout.as_millis(),
                                    lifecycle.still_running()
                                ),
                            );
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
    use super::console::*;
    use super::StopEvent;
    #[cfg(unix)]
    use crate::config::StopSignal;

    #[test]
    fn windows_console_events_stop_as_linux_signals_do() {
        let stop =
            |event| StopEvent::from_console_event(event).map(|stop| stop.exit_code().as_i32());
        // Ctrl-C is an interrupt, as SIGINT is.
        assert_eq!(stop(CTRL_C_EVENT), Some(130));
        #[cfg(unix)]
        assert_eq!(
            stop(CTRL_C_EVENT),
            Some(StopEvent::Signal(StopSignal::Sigint).exit_code().as_i32())
        );
        // Ctrl-Break, the console's close and the system's shutdown (a
        // Windows container's stop) ask to terminate, as SIGTERM does.
        for event in [CTRL_BREAK_EVENT, CTRL_CLOSE_EVENT, CTRL_SHUTDOWN_EVENT] {
            assert_eq!(stop(event), Some(143), "event {event}");
            #[cfg(unix)]
            assert_eq!(
                stop(event),
                Some(StopEvent::Signal(StopSignal::Sigterm).exit_code().as_i32())
            );
        }
        // Logoff is no stop, nor is a number Windows may add later.
        assert_eq!(StopEvent::from_console_event(CTRL_LOGOFF_EVENT), None);
        assert_eq!(StopEvent::from_console_event(3), None);
        assert_eq!(StopEvent::from_console_event(7), None);
    }

    #[test]
    fn each_stop_event_is_named_as_the_log_says_it() {
        #[cfg(unix)]
        for signal in StopSignal::ALL {
            assert_eq!(StopEvent::Signal(signal).as_str(), signal.as_str());
        }
        assert_eq!(
            StopEvent::from_console_event(CTRL_C_EVENT)
                .unwrap()
                .as_str(),
            "Ctrl-C"
        );
        assert_eq!(
            StopEvent::from_console_event(CTRL_SHUTDOWN_EVENT)
                .unwrap()
                .as_str(),
            "CTRL_SHUTDOWN_EVENT"
        );
    }

    #[cfg(unix)]
    #[test]
    fn unix_signals_exit_with_128_plus_their_number() {
        let exit = |signal| StopEvent::Signal(signal).exit_code().as_i32();
        assert_eq!(exit(StopSignal::Sigterm), 128 + libc::SIGTERM);
        assert_eq!(exit(StopSignal::Sigint), 128 + libc::SIGINT);
        assert_eq!(exit(StopSignal::Sigquit), 131);
        assert_eq!(exit(StopSignal::Sighup), 129);
        assert_eq!(exit(StopSignal::Sigusr1), 128 + libc::SIGUSR1);
        assert_eq!(exit(StopSignal::Sigusr2), 128 + libc::SIGUSR2);
        assert_eq!(exit(StopSignal::Sigwinch), 156);
    }

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
