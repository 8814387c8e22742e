//! The events that stop the service, the same on every system: which
//! event is a stop, what the log calls it and the exit code of a second
//! one.

#[cfg(unix)]
use crate::config::StopSignal;
use crate::exit::Code;

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
}
