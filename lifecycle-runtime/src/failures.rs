//! What failed: before serving, in start-up, in the body of `main`, in
//! the stop, in a call of user code, and a panic that ends the process;
//! each failure names what failed and how. A failing process's exit code
//! and termination message are derived from its failures here, and
//! nowhere else. The modes that judge something other than the service
//! (`--lifecycle-probe`, `--lifecycle-check-manifest`) are no failure of
//! the service's: they exit with their verdict, and write no termination
//! message.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::config::{ConfigError, PROBE_ADDR_FILE};
use crate::exit::{terminate, Code, Exit, TERMINATION_MESSAGE_MAX};
use crate::flags::FlagError;
use crate::registry::{DuplicateName, HookKind};
use crate::signals::event::StopEvent;
use crate::text::one_line;

/// One failure of the service's, as its termination message words it.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The handlers of the stop signals could not be installed; `watched`
    /// names the signals.
    SignalHandlers { watched: String, error: io::Error },
    /// The thread that watches the stop signals could not start.
    SignalThread { watched: String, error: io::Error },
    /// A `LIFECYCLE_*` variable with a value it does not accept.
    Config(ConfigError),
    /// A `--lifecycle-*` flag given wrongly.
    Flags(FlagError),
    /// Checks or hooks of one kind sharing a name.
    DuplicateNames(Vec<DuplicateName>),
    /// The application runtime could not be built.
    Runtime(io::Error),
    /// The probe server could not bind its address.
    ProbeBind { addr: SocketAddr, error: io::Error },
    /// The probe address could not be written to `LIFECYCLE_PROBE_ADDR_FILE`.
    ProbeAddrFile { path: PathBuf, error: io::Error },
    /// A preflight check that did not pass, with its reason.
    Preflight { name: String, reason: String },
    /// A hook that did not succeed.
    Hook {
        kind: HookKind,
        name: &'static str,
        failure: HookFailure,
    },
    /// The body of `main` returned `Err` (formatted with `Debug`).
    MainReturned(String),
    /// The body of `main` panicked (under `panic = "log"`: under `"crash"`
    /// the process is gone already).
    MainPanicked(String),
    /// What the `on_shutdown` hooks, started at their latest, could wait
    /// for no longer.
    StillRunning(String),
    /// `--lifecycle-preflight`: the lines of the checks that failed.
    PreflightChecks(Vec<String>),
    /// A second stop event during the stop: the exit is at once, with the
    /// event's code.
    StopEventAgain(StopEvent),
    /// The stop did not finish within the shutdown timeout counted from
    /// `cause` (a stop event, or a stop requested otherwise).
    Deadline {
        timeout: Duration,
        cause: Option<StopEvent>,
        running: String,
    },
    /// `--lifecycle-manifest`: no manifest can be made from the settings.
    Manifest(ManifestError),
    /// `--lifecycle-manifest`: the manifest did not reach stdout.
    ManifestStdout(io::Error),
    /// A panic under `panic = "crash"`, anywhere: the process ends at once,
    /// and the panic's own description (thread, place, message) is the
    /// termination message.
    Crash(String),
}

/// Why a bounded call of user code (`call::run_bounded`) has no value: it
/// did not return in time, or at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CallFailure {
    TimedOut(Duration),
    Panicked(String),
    /// The application runtime is shutting down and dropped the task.
    Cancelled,
}

/// The reason a check's or hook's failure gives.
impl fmt::Display for CallFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallFailure::TimedOut(after) => write!(f, "timed out after {} ms", after.as_millis()),
            CallFailure::Panicked(message) => write!(f, "panicked: {message}"),
            CallFailure::Cancelled => {
                f.write_str("cancelled: the application runtime is shutting down")
            }
        }
    }
}

/// Why `--lifecycle-manifest` can make no manifest: the probe address the
/// settings give is one the kubelet cannot probe.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ManifestError {
    /// A loopback address: the kubelet probes the pod's IP.
    LoopbackProbeAddr(SocketAddr),
    /// Port 0: the port is only known once bound.
    ProbePortZero(SocketAddr),
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ManifestError::LoopbackProbeAddr(addr) => write!(
                f,
                "the probe address {addr} is a loopback address, which the kubelet (probing the pod's IP) cannot reach: bind 0.0.0.0 or [::] with LIFECYCLE_PROBE_ADDR or #[service_main(probe_addr)]"
            ),
            ManifestError::ProbePortZero(addr) => write!(
                f,
                "the probe address {addr} has port 0, which the kubelet cannot probe: set LIFECYCLE_PROBE_ADDR or #[service_main(probe_addr)] to a fixed port"
            ),
        }
    }
}

/// How a hook failed.
#[derive(Debug)]
pub(crate) enum HookFailure {
    /// It returned `Err` with this reason.
    Failed(String),
    /// It did not return: it timed out, panicked or was cancelled.
    Call(CallFailure),
}

impl fmt::Display for HookFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HookFailure::Failed(error) => write!(f, "failed: {error}"),
            HookFailure::Call(failure) => failure.fmt(f),
        }
    }
}

impl Failure {
    /// The exit code this failure alone ends the process with.
    fn code(&self) -> Code {
        match self {
            Failure::Config(_)
            | Failure::Flags(_)
            | Failure::DuplicateNames(_)
            | Failure::ProbeAddrFile { .. } => Code::BadConfig,
            Failure::MainPanicked(_) | Failure::Crash(_) => Code::Panic,
            Failure::SignalHandlers { .. }
            | Failure::SignalThread { .. }
            | Failure::Runtime(_)
            | Failure::ProbeBind { .. }
            | Failure::Preflight { .. }
            | Failure::Hook { .. }
            | Failure::MainReturned(_)
            | Failure::StillRunning(_)
            | Failure::PreflightChecks(_)
            | Failure::Deadline { .. }
            | Failure::ManifestStdout(_) => Code::Failure,
            Failure::Manifest(_) => Code::BadConfig,
            Failure::StopEventAgain(event) => event.exit_code(),
        }
    }
}

impl Failure {
    /// Ends the process now with this failure's code and termination
    /// message: for the failures no run can wait on (the stop's second
    /// event and its deadline, decided on the signal thread; a panic under
    /// `panic = "crash"`, on the thread that panicked).
    pub(crate) fn exit_now(self) -> ! {
        terminate(self.code(), &self.to_string())
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::SignalHandlers { watched, error } => {
                write!(f, "cannot install the handlers of {watched}: {error}")
            }
            Failure::SignalThread { watched, error } => {
                write!(f, "cannot start the thread that watches {watched}: {error}")
            }
            Failure::Config(error) => error.fmt(f),
            Failure::Flags(error) => error.fmt(f),
            Failure::DuplicateNames(clashes) => {
                for (i, clash) in clashes.iter().enumerate() {
                    let DuplicateName {
                        kind,
                        what,
                        name,
                        first,
                        again,
                    } = clash;
                    let separator = if i == 0 { "" } else { "; " };
                    write!(
                        f,
                        "{separator}duplicate {kind} {what} name \"{name}\": registered at {first} and at {again}; give one of them `name = \"...\"`"
                    )?;
                }
                Ok(())
            }
            Failure::Runtime(error) => write!(f, "cannot build the application runtime: {error}"),
            Failure::ProbeBind { addr, error } => write!(
                f,
                "cannot bind the probe server to {addr} (set LIFECYCLE_PROBE_ADDR to another address): {error}"
            ),
            Failure::ProbeAddrFile { path, error } => write!(
                f,
                "invalid configuration: {PROBE_ADDR_FILE}={:?}: cannot write the probe address there: {error}",
                path.display()
            ),
            Failure::Preflight { name, reason } => {
                write!(f, "preflight check \"{name}\" failed: {reason}")
            }
            // The user's words, as a check's reason in the log: on one line
            // (a newline would forge log lines and end the exit's line
            // early), and no longer than a termination message (a megabyte
            // would not fit the log queue, and be lost).
            Failure::Hook {
                kind,
                name,
                failure,
            } => write!(
                f,
                "{} hook \"{name}\" {}",
                kind.as_str(),
                one_line(&failure.to_string(), TERMINATION_MESSAGE_MAX)
            ),
            Failure::MainReturned(error) => write!(f, "main returned an error: {error}"),
            Failure::MainPanicked(message) => write!(f, "main panicked: {message}"),
            Failure::StillRunning(running) => write!(
                f,
                "the on_shutdown hooks ran at their latest start and are done; still running: {running}"
            ),
            Failure::PreflightChecks(lines) => write!(f, "preflight failed: {}", lines.join("; ")),
            Failure::StopEventAgain(event) => write!(
                f,
                "{} received again during shutdown: exiting at once",
                event.as_str()
            ),
            Failure::Deadline {
                timeout,
                cause,
                running,
            } => {
                write!(f, "shutdown did not finish within {} ms ", timeout.as_millis())?;
                match cause {
                    Some(event) => write!(f, "of {}", event.as_str())?,
                    None => f.write_str("of the stop")?,
                }
                write!(f, "; still running: {running}")
            }
            Failure::Manifest(error) => error.fmt(f),
            Failure::ManifestStdout(error) => {
                write!(f, "cannot write the manifest to stdout: {error}")
            }
            Failure::Crash(description) => f.write_str(description),
        }
    }
}

/// The failures of one run, in the order they happened.
#[derive(Debug, Default)]
pub(crate) struct Failures(Vec<Failure>);

impl Failures {
    pub(crate) fn push(&mut self, failure: Failure) {
        self.0.push(failure);
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The exit code: a panic of `main`'s is 101 whatever else failed.
    /// Otherwise every failure has the same code: a failure before serving
    /// (a bad configuration among them, 2) ends the run alone, and what
    /// fails in start-up, in `main` and in the stop is 1.
    fn code(&self) -> Code {
        if self.0.iter().any(|failure| failure.code() == Code::Panic) {
            return Code::Panic;
        }
        self.0.first().map_or(Code::Success, Failure::code)
    }

    /// How the process ends: 0 with no failure; otherwise their code, and
    /// every failure in the termination message.
    pub(crate) fn exit(self) -> Exit {
        match self.code() {
            Code::Success => Exit::success(),
            code => Exit::failure(code, self.to_string()),
        }
    }
}

impl FromIterator<Failure> for Failures {
    fn from_iter<I: IntoIterator<Item = Failure>>(failures: I) -> Self {
        Failures(failures.into_iter().collect())
    }
}

impl Extend<Failure> for Failures {
    fn extend<I: IntoIterator<Item = Failure>>(&mut self, failures: I) {
        self.0.extend(failures);
    }
}

impl IntoIterator for Failures {
    type Item = Failure;
    type IntoIter = std::vec::IntoIter<Failure>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

/// Each failure's text, joined with `"; "`: the termination message.
impl fmt::Display for Failures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, failure) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{failure}")?;
        }
        Ok(())
    }
}

/// A failure that ends the run alone.
impl From<Failure> for Exit {
    fn from(failure: Failure) -> Exit {
        Failures(vec![failure]).exit()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::registry::Site;

    fn hook(failure: HookFailure) -> Failure {
        Failure::Hook {
            kind: HookKind::OnShutdown,
            name: "flush",
            failure,
        }
    }

    #[test]
    fn the_exit_says_every_failure_and_a_panic_of_main_is_its_code() {
        let failures: Failures = [
            hook(HookFailure::Failed("disk\nfull".into())),
            hook(HookFailure::Call(CallFailure::TimedOut(
                Duration::from_millis(20),
            ))),
            Failure::MainPanicked("boom".into()),
        ]
        .into_iter()
        .collect();
        assert_eq!(
            failures.exit(),
            Exit::failure(
                Code::Panic,
                "on_shutdown hook \"flush\" failed: disk\\nfull; on_shutdown hook \"flush\" timed out after 20 ms; main panicked: boom"
            )
        );
        let returned: Failures = [Failure::MainReturned("Oops".into())].into_iter().collect();
        assert_eq!(
            returned.exit(),
            Exit::failure(Code::Failure, "main returned an error: Oops")
        );
        assert_eq!(Failures::default().exit(), Exit::success());
        let site = |line| Site {
            module: "svc",
            file: "src/main.rs",
            line,
        };
        let clashes = vec![
            DuplicateName {
                kind: "readiness",
                what: "check",
                name: "db",
                first: site(3),
                again: site(9),
            },
            DuplicateName {
                kind: "on_shutdown",
                what: "hook",
                name: "flush",
                first: site(12),
                again: site(20),
            },
        ];
        assert_eq!(
            Exit::from(Failure::DuplicateNames(clashes)),
            Exit::failure(
                Code::BadConfig,
                "duplicate readiness check name \"db\": registered at src/main.rs:3 and at src/main.rs:9; \
                 give one of them `name = \"...\"`; \
                 duplicate on_shutdown hook name \"flush\": registered at src/main.rs:12 and at src/main.rs:20; \
                 give one of them `name = \"...\"`"
            )
        );
    }
}
