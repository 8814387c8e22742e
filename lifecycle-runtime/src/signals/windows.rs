//! Windows: the console control events, through tokio's handler
//! (`SetConsoleCtrlHandler`). Ctrl-C, Ctrl-Break, the console's close and
//! the system's shutdown (what a Windows container receives on a stop) are
//! stops; logoff is not, and is left to Windows.
//!
//! tokio's handler keeps the handler thread of a close or shutdown event
//! parked, so Windows does not end the process when the handler returns;
//! it still ends it when its own timeout passes (about 5 s for a
//! container, `WaitToKillServiceTimeout` and `cexecsvc`'s
//! `ProcessShutdownTimeoutSeconds`), whatever the shutdown timeout says.
//!
//! An event that came before the signal thread ran is remembered by the
//! listener; two of the same kind before it reads them count as one.

use std::io;

use tokio::signal::windows::{CtrlBreak, CtrlC, CtrlClose, CtrlShutdown};

use super::event::{console, StopEvent};
use crate::config::StopSignal;
use crate::exit::{Code, Exit};

/// The listeners, registered first thing: an event from then on is
/// recorded, never Windows' default action.
pub(crate) struct Handlers {
    ctrl_c: CtrlC,
    ctrl_break: CtrlBreak,
    ctrl_close: CtrlClose,
    ctrl_shutdown: CtrlShutdown,
}

/// Registers the listeners for the events that stop the service. (No
/// stop signal but SIGTERM is accepted here, and the console's events
/// stand for it.)
pub(crate) fn install(_stop_signal: StopSignal) -> io::Result<Handlers> {
    Ok(Handlers {
        ctrl_c: tokio::signal::windows::ctrl_c()?,
        ctrl_break: tokio::signal::windows::ctrl_break()?,
        ctrl_close: tokio::signal::windows::ctrl_close()?,
        ctrl_shutdown: tokio::signal::windows::ctrl_shutdown()?,
    })
}

impl Handlers {
    /// No stop signal but SIGTERM here.
    pub(crate) fn stop_signal(&self) -> StopSignal {
        StopSignal::Sigterm
    }
}

/// The listeners on the signal thread's runtime.
pub(crate) struct Received {
    handlers: Handlers,
}

impl Received {
    pub(crate) fn new(handlers: Handlers) -> io::Result<Received> {
        Ok(Received { handlers })
    }

    /// The next stop event, the system's shutdown first when several wait.
    /// Cancel-safe. Each listener's event goes through
    /// [`StopEvent::from_console_event`], the one place (tested on every
    /// system) that says which console event is which stop.
    pub(crate) async fn next(&mut self) -> StopEvent {
        let handlers = &mut self.handlers;
        loop {
            let event = tokio::select! {
                biased;
                Some(()) = handlers.ctrl_shutdown.recv() => console::CTRL_SHUTDOWN_EVENT,
                Some(()) = handlers.ctrl_close.recv() => console::CTRL_CLOSE_EVENT,
                Some(()) = handlers.ctrl_break.recv() => console::CTRL_BREAK_EVENT,
                Some(()) = handlers.ctrl_c.recv() => console::CTRL_C_EVENT,
                else => return std::future::pending().await,
            };
            if let Some(stop) = StopEvent::from_console_event(event) {
                return stop;
            }
        }
    }
}

/// Ends the process as Windows' default handler would have
/// ([`Code::ConsoleInterrupt`]), through `exit.rs` as every exit: the
/// queued log lines get their bounded moment first. Every stop event ends
/// it: this never returns, unlike the unix side's for a signal ignored by
/// default.
pub(crate) fn default_action(_event: StopEvent) {
    Exit::quiet(Code::ConsoleInterrupt).exit()
}

/// What the stop events do while no thread watches them: the listeners
/// are gone with the thread that could not start, so Windows' default
/// handler runs.
pub(crate) const UNWATCHED: &str = "end the process at once, as Windows' default does";
