//! The stop signal: its names and its numbers.

use std::fmt;

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
    #[cfg(any(not(windows), test))]
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
