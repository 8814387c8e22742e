//! Setting up a service to start: its program, arguments and environment.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::process::Service;
use super::scratch::Scratch;
use crate::error::{Error, ErrorKind};

/// How long a service may take to bind its probe port, by default: a debug
/// build on a loaded machine.
const DEFAULT_START_DEADLINE: Duration = Duration::from_secs(30);

impl Service {
    /// Sets up `program` (usually `env!("CARGO_BIN_EXE_<name>")`) to start.
    pub fn builder(program: impl AsRef<Path>) -> ServiceBuilder {
        ServiceBuilder::new(program.as_ref())
    }

    /// Starts `program` with no arguments or variables of its own and
    /// waits until `/startupz` passes.
    pub fn start(program: impl AsRef<Path>) -> Result<Service, Error> {
        Service::builder(program).start()
    }
}

/// Sets up a service to start: its program, arguments and environment.
#[derive(Debug, Clone)]
pub struct ServiceBuilder {
    program: PathBuf,
    args: Vec<OsString>,
    env: Vec<(OsString, Option<OsString>)>,
    start_deadline: Duration,
}

impl ServiceBuilder {
    /// `program`, with no arguments or variables of its own and the
    /// default start deadline.
    fn new(program: &Path) -> ServiceBuilder {
        ServiceBuilder {
            program: program.to_owned(),
            args: Vec::new(),
            env: Vec::new(),
            start_deadline: DEFAULT_START_DEADLINE,
        }
    }

    /// Adds a command-line argument.
    #[must_use]
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    /// Adds command-line arguments.
    #[must_use]
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Sets an environment variable (a `LIFECYCLE_*` one overrides what
    /// the kit sets: `LIFECYCLE_PROBE_ADDR` to `127.0.0.1:0`, the address
    /// and termination-log files to temporary paths).
    #[must_use]
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.env
            .push((key.as_ref().to_owned(), Some(value.as_ref().to_owned())));
        self
    }

    /// Removes an environment variable the test process has.
    #[must_use]
    pub fn env_remove(mut self, key: impl AsRef<OsStr>) -> Self {
        self.env.push((key.as_ref().to_owned(), None));
        self
    }

    /// How long [`spawn`](Self::spawn) waits for the probe port, and
    /// [`start`](Self::start) for the port and `/startupz` in all (30 s by
    /// default).
    #[must_use]
    pub fn start_deadline(mut self, deadline: Duration) -> Self {
        self.start_deadline = deadline;
        self
    }

    /// The program, its test process's own lifecycle settings removed,
    /// then `defaults`, then the variables the test set (which win); no
    /// arguments.
    pub(crate) fn command(&self, defaults: &[(&str, &OsStr)]) -> Command {
        let mut command = Command::new(&self.program);
        // The test process's own lifecycle settings are not the service's.
        for (key, _) in std::env::vars_os() {
            let key_text = key.to_string_lossy();
            if key_text.starts_with("LIFECYCLE_") || key_text == "KUBERNETES_SERVICE_HOST" {
                command.env_remove(&key);
            }
        }
        for (key, value) in defaults {
            command.env(key, value);
        }
        self.apply_env(&mut command);
        command
    }

    /// Sets the variables the test set on `command` (a `preStop` hook's,
    /// run in the service's environment).
    pub(crate) fn apply_env(&self, command: &mut Command) {
        for (key, value) in &self.env {
            match value {
                Some(value) => command.env(key, value),
                None => command.env_remove(key),
            };
        }
    }

    /// The path the test set `key` to last, if it set one.
    fn path_set(&self, key: &str) -> Option<PathBuf> {
        let (_, value) = self.env.iter().rev().find(|(k, _)| k == key)?;
        value.clone().map(PathBuf::from)
    }

    /// The program to run.
    pub(crate) fn program(&self) -> &Path {
        &self.program
    }

    /// The deadline set by [`start_deadline`](Self::start_deadline).
    pub(crate) fn deadline(&self) -> Duration {
        self.start_deadline
    }

    /// Starts the service and waits until its probe server listens; it may
    /// still be starting.
    pub fn spawn(self) -> Result<Service, Error> {
        let scratch = Scratch::new().map_err(|e| {
            Error::new(
                ErrorKind::Spawn,
                format!("cannot make a temporary folder: {e}"),
            )
        })?;
        let addr_file = scratch.0.join("probe-addr");
        let termination_log = scratch.0.join("termination-log");
        let mut command = self.command(&[
            ("LIFECYCLE_PROBE_ADDR", OsStr::new("127.0.0.1:0")),
            ("LIFECYCLE_PROBE_ADDR_FILE", addr_file.as_os_str()),
            ("LIFECYCLE_TERMINATION_LOG", termination_log.as_os_str()),
        ]);
        command.args(&self.args);
        // The service may have been told to write elsewhere.
        let addr_file = self
            .path_set("LIFECYCLE_PROBE_ADDR_FILE")
            .unwrap_or(addr_file);
        let termination_log = self
            .path_set("LIFECYCLE_TERMINATION_LOG")
            .unwrap_or(termination_log);
        Service::spawn(
            self.program,
            command,
            addr_file,
            termination_log,
            self.start_deadline,
            scratch,
        )
    }

    /// Starts the service and waits until `/startupz` passes.
    pub fn start(self) -> Result<Service, Error> {
        let until = Instant::now() + self.start_deadline;
        let service = self.spawn()?;
        service.wait_started(until.saturating_duration_since(Instant::now()))?;
        Ok(service)
    }
}
