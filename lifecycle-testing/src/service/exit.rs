//! How a process ended: its exit code, or the signal that killed it.

use std::fmt;

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exit {
    /// The exit code, when it exited.
    pub code: Option<i32>,
    /// The signal that killed it, when one did.
    ///
    /// Unix only: Windows has no signals. A process ended there by
    /// [`Service::kill`](crate::Service::kill) (TerminateProcess) has an exit code, the one
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
