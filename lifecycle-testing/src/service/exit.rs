//! How the service's process ends: its [`Exit`], and the waits and kills
//! that lead to it.

use std::fmt;
use std::time::{Duration, Instant};

use super::{Service, KILLED_DEADLINE, OUTPUT_DRAIN, POLL};
use crate::error::{Error, ErrorKind};
use crate::sync::lock;

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exit {
    /// The exit code, when it exited.
    pub code: Option<i32>,
    /// The signal that killed it, when one did.
    ///
    /// Unix only: Windows has no signals. A process ended there by
    /// [`Service::kill`] (TerminateProcess) has an exit code, the one
    /// the killer chose.
    #[cfg(unix)]
    pub signal: Option<i32>,
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        #[cfg(unix)]
        if let (None, Some(signal)) = (self.code, self.signal) {
            return write!(f, "killed by signal {signal}");
        }
        match self.code {
            Some(code) => write!(f, "exit code {code}"),
            None => f.write_str("ended"),
        }
    }
}

impl From<std::process::ExitStatus> for Exit {
    fn from(status: std::process::ExitStatus) -> Exit {
        Exit {
            code: status.code(),
            #[cfg(unix)]
            signal: std::os::unix::process::ExitStatusExt::signal(&status),
        }
    }
}

impl Service {
    pub(crate) fn try_exit(&self) -> Option<Exit> {
        let mut exit = lock(&self.exit);
        if exit.is_none() {
            let mut child = lock(&self.child);
            *exit = child.try_wait().ok().flatten().map(Exit::from);
        }
        *exit
    }

    /// SIGKILL on Unix, TerminateProcess on Windows (std's
    /// `Child::kill`); nothing if the process has ended.
    pub(crate) fn send_kill(&self) {
        let _ = lock(&self.child).kill();
    }

    /// Kills the process at once, as the kubelet does at the end of the
    /// grace period, and waits for it to end; its log and stdout are then
    /// complete. A process that had already ended is left as it was: its
    /// own exit is returned.
    ///
    /// On Unix it gets SIGKILL; on Windows, where it is the only way the
    /// kit ends a service, TerminateProcess (std's `Child::kill`): it ends
    /// with an exit code, and no shutdown of its own runs.
    pub fn kill(&mut self) -> Result<Exit, Error> {
        self.send_kill();
        self.wait_exit(KILLED_DEADLINE)
    }

    /// The error for a wait that cannot succeed: the process is gone.
    pub(super) fn exited_while(&self, exit: Exit, waiting: &str) -> Error {
        self.drain_output();
        let reason = self
            .termination_message()
            .map(|m| format!(": {m}"))
            .unwrap_or_default();
        self.error(
            ErrorKind::Exited,
            format!(
                "{} exited ({exit}) while {waiting}{reason}",
                self.program.display()
            ),
        )
    }

    /// Whether the process is still running.
    pub fn is_running(&self) -> bool {
        self.try_exit().is_none()
    }

    /// Once the process has exited: lets the readers take the last lines
    /// still in the pipes, so that the log and stdout are complete.
    pub(super) fn drain_output(&self) {
        let until = Instant::now() + OUTPUT_DRAIN;
        self.stdout.wait_ended(until);
        self.stderr.wait_ended(until);
    }

    /// Waits for the process to end by itself, up to `deadline`; its log
    /// and stdout are then complete.
    pub fn wait_exit(&mut self, deadline: Duration) -> Result<Exit, Error> {
        let until = Instant::now() + deadline;
        loop {
            if let Some(exit) = self.try_exit() {
                self.drain_output();
                return Ok(exit);
            }
            if Instant::now() > until {
                return Err(self.error(
                    ErrorKind::TimedOut,
                    format!("still running after {} ms", deadline.as_millis()),
                ));
            }
            std::thread::sleep(POLL);
        }
    }
}
