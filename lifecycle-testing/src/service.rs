//! Starting and stopping a service binary as the kubelet runs it: started
//! on probe port 0, probed from outside, stopped with SIGTERM and a grace
//! period (on Unix; on Windows, killed).
//!
//! [`Service::builder`] sets up the program, its arguments and variables
//! ([`ServiceBuilder`]); [`ServiceBuilder::start`] starts it and waits for
//! `/startupz`. A `Stop` says how to stop it, and the `StopReport` what
//! the stop showed (Unix only); an [`Exit`] is how its process ended.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::error::{Error, ErrorKind};
use crate::probe::{http_probe, Endpoint, ProbeAnswer, VerboseAnswer, DEFAULT_TIMEOUT};

/// How long a service may take to bind its probe port, by default: a debug
/// build on a loaded machine.
const DEFAULT_START_DEADLINE: Duration = Duration::from_secs(30);
/// How many log lines a failure shows.
pub(crate) const LOG_TAIL: usize = 20;
/// How often waits look again.
const POLL: Duration = Duration::from_millis(10);
/// How long a killed process may take to end: the system tears it down at
/// once, unless it is stuck in the kernel.
const KILLED_DEADLINE: Duration = Duration::from_secs(10);
/// How long, once the process has exited, the readers may take to reach
/// the end of its output (longer only if another process holds the pipes).
const OUTPUT_DRAIN: Duration = Duration::from_secs(1);

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

/// How to stop a service: a signal, a grace period, perhaps a second
/// signal. At the end of the grace period the service is killed, as the
/// kubelet does.
///
/// Unix only: the stop is a signal (SIGTERM, as the kubelet sends). On
/// Windows a process gets no signal from another, and std has no way to
/// send it a console event; [`Service::kill`] ends it there.
#[cfg(unix)]
#[derive(Debug, Clone, Copy)]
pub struct Stop {
    signal: i32,
    grace: Duration,
    second_signal_after: Option<Duration>,
}

#[cfg(unix)]
impl Stop {
    /// SIGTERM, then SIGKILL after `grace` (the pod's
    /// `terminationGracePeriodSeconds`).
    pub fn grace(grace: Duration) -> Stop {
        Stop {
            signal: libc::SIGTERM,
            grace,
            second_signal_after: None,
        }
    }

    /// Another signal than SIGTERM (SIGINT, as Ctrl-C sends).
    #[must_use]
    pub fn signal(mut self, signal: i32) -> Stop {
        self.signal = signal;
        self
    }

    /// Sends the signal again `after` the first, as an impatient operator
    /// would.
    #[must_use]
    pub fn second_signal_after(mut self, after: Duration) -> Stop {
        self.second_signal_after = Some(after);
        self
    }
}

/// What a stop showed: how the process ended, when, whether `/readyz`
/// failed first, and what it wrote.
///
/// Unix only, as [`Stop`] is.
#[cfg(unix)]
#[derive(Debug, Clone)]
pub struct StopReport {
    /// How the process ended.
    pub exit: Exit,
    /// From the first signal to the exit.
    pub signal_to_exit: Duration,
    /// When `/readyz` first answered a failing status to a probe sent after
    /// the signal (at most one probe round trip late); `None` if no probe
    /// saw that while the process ran: a service with no drain delay may
    /// exit within milliseconds, before the next probe. A refused
    /// connection does not count: it is not the service saying "not ready".
    pub unready_after: Option<Duration>,
    /// The grace period ran out and the service was killed with SIGKILL.
    pub killed: bool,
    /// What the service wrote to its termination log, if anything.
    pub termination_message: Option<String>,
    /// Every log line (stderr) of the service.
    pub log: Vec<String>,
}

/// Lines of one of the service's output streams, collected as they come.
#[derive(Clone, Default)]
pub(crate) struct Lines {
    lines: Arc<Mutex<Vec<String>>>,
    /// The stream has ended: every line is in.
    ended: Arc<AtomicBool>,
}

impl Lines {
    fn collect(stream: impl std::io::Read + Send + 'static) -> Lines {
        let lines = Lines::default();
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                sink.lines
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(line);
            }
            sink.ended.store(true, Ordering::SeqCst);
        });
        lines
    }

    /// Waits until the stream has ended, or `until`.
    fn wait_ended(&self, until: Instant) {
        while !self.ended.load(Ordering::SeqCst) && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    fn all(&self) -> Vec<String> {
        self.lines.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub(crate) fn tail(&self, count: usize) -> Vec<String> {
        let lines = self.all();
        lines[lines.len().saturating_sub(count)..].to_vec()
    }

    fn find(&self, needle: &str) -> Option<String> {
        self.lines
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .find(|l| l.contains(needle))
            .cloned()
    }
}

/// A folder of the service's own files, removed with it.
pub(crate) struct Scratch(pub(crate) PathBuf);

impl Scratch {
    pub(crate) fn new() -> std::io::Result<Scratch> {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "lifecycle-testing-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&path)?;
        Ok(Scratch(path))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
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
        for (key, value) in &self.env {
            match value {
                Some(value) => command.env(key, value),
                None => command.env_remove(key),
            };
        }
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
            .env
            .iter()
            .rev()
            .find(|(key, _)| key == "LIFECYCLE_PROBE_ADDR_FILE")
            .and_then(|(_, value)| value.clone().map(PathBuf::from))
            .unwrap_or(addr_file);
        let termination_log = self
            .env
            .iter()
            .rev()
            .find(|(key, _)| key == "LIFECYCLE_TERMINATION_LOG")
            .and_then(|(_, value)| value.clone().map(PathBuf::from))
            .unwrap_or(termination_log);
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                Error::new(
                    ErrorKind::Spawn,
                    format!("cannot start {}: {e}", self.program.display()),
                )
            })?;
        let spawned = Instant::now();
        let stdin = child.stdin.take();
        let stdout = Lines::collect(child.stdout.take().expect("piped stdout"));
        let stderr = Lines::collect(child.stderr.take().expect("piped stderr"));
        let mut service = Service {
            program: self.program,
            spawned,
            pid: child.id(),
            child: Mutex::new(child),
            stdin,
            stdout,
            stderr,
            probe_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            addr_file: addr_file.clone(),
            start_deadline: self.start_deadline,
            termination_log,
            exit: Mutex::new(None),
            _scratch: scratch,
        };
        let probe_addr = service.poll_until(
            "its probe server listened",
            "did not bind its probe port",
            || {
                let text = std::fs::read_to_string(&addr_file).ok()?;
                // The first line; the application's addresses follow it.
                text.lines().next()?.parse::<SocketAddr>().ok()
            },
        )?;
        service.probe_addr = reachable(probe_addr);
        Ok(service)
    }

    /// Starts the service and waits until `/startupz` passes.
    pub fn start(self) -> Result<Service, Error> {
        let until = Instant::now() + self.start_deadline;
        let service = self.spawn()?;
        service.wait_started(until.saturating_duration_since(Instant::now()))?;
        Ok(service)
    }
}

/// Where a client on this host reaches a server bound to `bound`.
fn reachable(bound: SocketAddr) -> SocketAddr {
    let ip = match bound.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, bound.port())
}

/// A running service binary. Dropping it kills the process.
pub struct Service {
    program: PathBuf,
    /// When the process started: a container's start, for the kubelet.
    spawned: Instant,
    /// Behind a lock so that waits through `&self` notice an exit.
    child: Mutex<Child>,
    pid: u32,
    stdin: Option<ChildStdin>,
    stdout: Lines,
    stderr: Lines,
    probe_addr: SocketAddr,
    /// The address file: the probe address, then the application's.
    addr_file: PathBuf,
    start_deadline: Duration,
    termination_log: PathBuf,
    exit: Mutex<Option<Exit>>,
    _scratch: Scratch,
}

impl Service {
    /// Sets up `program` (usually `env!("CARGO_BIN_EXE_<name>")`) to start.
    pub fn builder(program: impl AsRef<Path>) -> ServiceBuilder {
        ServiceBuilder {
            program: program.as_ref().to_owned(),
            args: Vec::new(),
            env: Vec::new(),
            start_deadline: DEFAULT_START_DEADLINE,
        }
    }

    /// Starts `program` with no arguments or variables of its own and
    /// waits until `/startupz` passes.
    pub fn start(program: impl AsRef<Path>) -> Result<Service, Error> {
        Service::builder(program).start()
    }

    /// The probe server's address.
    pub fn probe_addr(&self) -> SocketAddr {
        self.probe_addr
    }

    /// The addresses the application bound through
    /// `lifecycle_runtime::net::TcpListener` so far, in order (an
    /// unspecified IP given as loopback): with `APP_ADDR=127.0.0.1:0`, a
    /// test finds the application's port without reading its log.
    pub fn app_addrs(&self) -> Vec<SocketAddr> {
        std::fs::read_to_string(&self.addr_file)
            .unwrap_or_default()
            .lines()
            .filter_map(|line| line.strip_prefix("app ")?.parse().ok())
            .map(reachable)
            .collect()
    }

    /// The first address the application bound through
    /// `lifecycle_runtime::net::TcpListener`, waiting for it up to the
    /// start deadline.
    pub fn app_addr(&self) -> Result<SocketAddr, Error> {
        self.poll_until(
            "its application bound a lifecycle_runtime::net::TcpListener",
            "did not bind a lifecycle_runtime::net::TcpListener",
            || self.app_addrs().first().copied(),
        )
    }

    /// Polls `found` until it finds something, the process exits (an error
    /// saying it exited before `awaited`) or the start deadline passes (an
    /// error saying it `missed` within it).
    fn poll_until<T>(
        &self,
        awaited: &str,
        missed: &str,
        mut found: impl FnMut() -> Option<T>,
    ) -> Result<T, Error> {
        let until = Instant::now() + self.start_deadline;
        loop {
            if let Some(found) = found() {
                return Ok(found);
            }
            if let Some(exit) = self.try_exit() {
                return Err(self.error(
                    ErrorKind::Exited,
                    format!(
                        "{} exited ({exit}) before {awaited}",
                        self.program.display()
                    ),
                ));
            }
            if Instant::now() > until {
                return Err(self.error(
                    ErrorKind::TimedOut,
                    format!(
                        "{} {missed} within {} ms",
                        self.program.display(),
                        self.start_deadline.as_millis()
                    ),
                ));
            }
            std::thread::sleep(POLL);
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// An error of `kind` showing the service's last log lines.
    fn error(&self, kind: ErrorKind, message: String) -> Error {
        Error::with_log(kind, message, self.stderr.tail(LOG_TAIL))
    }

    /// When the process started.
    pub(crate) fn spawned(&self) -> Instant {
        self.spawned
    }

    /// The service's log (stderr), as it grows.
    pub(crate) fn log_lines(&self) -> Lines {
        self.stderr.clone()
    }

    /// Probes `endpoint` once, as the kubelet does, with its default 1 s
    /// timeout.
    pub fn probe(&self, endpoint: Endpoint) -> ProbeAnswer {
        self.probe_path(endpoint.path(), DEFAULT_TIMEOUT)
    }

    /// Probes any path (`/readyz/db`, `/livez?exclude=x`), within `timeout`.
    pub fn probe_path(&self, path: &str, timeout: Duration) -> ProbeAnswer {
        http_probe(self.probe_addr, path, timeout)
    }

    /// Probes gRPC health service `service` (`livez`, `readyz/db`, `""`)
    /// once on the probe port, as the kubelet's gRPC prober does, with its
    /// default 1 s timeout.
    #[cfg(feature = "grpc")]
    #[cfg_attr(docsrs, doc(cfg(feature = "grpc")))]
    pub fn grpc_probe(&self, service: &str) -> crate::grpc::GrpcAnswer {
        crate::grpc::grpc_probe(self.probe_addr, service, DEFAULT_TIMEOUT)
    }

    /// Opens a gRPC `Watch` of health service `service` on the probe port,
    /// connecting within 5 s.
    #[cfg(feature = "grpc")]
    #[cfg_attr(docsrs, doc(cfg(feature = "grpc")))]
    pub fn grpc_watch(&self, service: &str) -> Result<crate::grpc::GrpcWatch, Error> {
        crate::grpc::GrpcWatch::open(self.probe_addr, service, Duration::from_secs(5))
            .map_err(|e| self.error(e.kind(), e.message().to_owned()))
    }

    /// Probes `endpoint` with `?verbose` and reads its per-check lines.
    pub fn verbose(&self, endpoint: Endpoint) -> VerboseAnswer {
        self.probe_path(&format!("{}?verbose", endpoint.path()), DEFAULT_TIMEOUT)
            .verbose()
    }

    /// Why `endpoint` did not do what was expected: the expectation and
    /// the endpoint's verbose answer now.
    fn explain(&self, endpoint: Endpoint, expectation: &str) -> String {
        let verbose = self.probe_path(&format!("{}?verbose", endpoint.path()), DEFAULT_TIMEOUT);
        format!("{endpoint} {expectation}\nits verbose answer: {verbose}")
    }

    /// Panics, with the verbose answer and the last log lines, unless
    /// `endpoint` passes now.
    #[track_caller]
    pub fn assert_passing(&self, endpoint: Endpoint) -> ProbeAnswer {
        let answer = self.probe(endpoint);
        if !answer.passed() {
            let why = self.explain(endpoint, "should pass but failed");
            panic!("{}", self.error(ErrorKind::UnexpectedAnswer, why));
        }
        answer
    }

    /// Panics, with the verbose answer and the last log lines, unless
    /// `endpoint` fails now with an answer of the service's: a failing
    /// status, a redirect the probe could not follow to its end (the tenth,
    /// or to an unusable `Location`), or a time-out. A refused or reset
    /// connection does not pass:
    /// nothing listens, and "not ready" from a service that is not running
    /// proves nothing. When no answer is what you expect (a stopped
    /// service), say so with
    /// [`assert_failing_or_unreachable`](Self::assert_failing_or_unreachable).
    #[track_caller]
    pub fn assert_failing(&self, endpoint: Endpoint) -> ProbeAnswer {
        let answer = self.probe(endpoint);
        if answer.passed() {
            let why = self.explain(endpoint, "should fail but passed");
            panic!("{}", self.error(ErrorKind::UnexpectedAnswer, why));
        }
        if !answer.answered {
            let why = format!(
                "{endpoint} should fail with the service's answer, but {answer}\n(nothing \
                 answered: use assert_failing_or_unreachable if the service is meant to be gone)"
            );
            panic!("{}", self.error(ErrorKind::UnexpectedAnswer, why));
        }
        answer
    }

    /// Panics, with the verbose answer and the last log lines, if
    /// `endpoint` passes now: a refused or reset connection counts as
    /// failing, as it does for the kubelet. For a service meant to be gone
    /// or going; otherwise [`assert_failing`](Self::assert_failing).
    #[track_caller]
    pub fn assert_failing_or_unreachable(&self, endpoint: Endpoint) -> ProbeAnswer {
        let answer = self.probe(endpoint);
        if answer.passed() {
            let why = self.explain(endpoint, "should fail but passed");
            panic!("{}", self.error(ErrorKind::UnexpectedAnswer, why));
        }
        answer
    }

    /// Probes `endpoint` as the kubelet does until it passes, up to
    /// `deadline`, and returns the passing answer: for a state the service
    /// reaches on its own (ready once a dependency is back). The error is
    /// [`ErrorKind::TimedOut`] with the endpoint's verbose answer, or
    /// [`ErrorKind::Exited`] at once if the process exits meanwhile, both
    /// with the last log lines.
    pub fn wait_passing(
        &self,
        endpoint: Endpoint,
        deadline: Duration,
    ) -> Result<ProbeAnswer, Error> {
        self.wait_verdict(endpoint, true, deadline)
    }

    /// Probes `endpoint` until it fails with an answer of the service's
    /// (as [`assert_failing`](Self::assert_failing) judges it), up to
    /// `deadline`, and returns the failing answer (not ready once a
    /// dependency is down); errors as [`wait_passing`](Self::wait_passing)
    /// does.
    pub fn wait_failing(
        &self,
        endpoint: Endpoint,
        deadline: Duration,
    ) -> Result<ProbeAnswer, Error> {
        self.wait_verdict(endpoint, false, deadline)
    }

    fn wait_verdict(
        &self,
        endpoint: Endpoint,
        passing: bool,
        deadline: Duration,
    ) -> Result<ProbeAnswer, Error> {
        let until = Instant::now() + deadline;
        loop {
            let answer = self.probe(endpoint);
            if answer.passed() == passing && (passing || answer.answered) {
                return Ok(answer);
            }
            let state = if passing { "pass" } else { "fail" };
            if let Some(exit) = self.try_exit() {
                return Err(self.exited_while(exit, &format!("waiting for {endpoint} to {state}")));
            }
            if Instant::now() > until {
                let why = self.explain(
                    endpoint,
                    &format!("did not {state} within {} ms", deadline.as_millis()),
                );
                return Err(self.error(ErrorKind::TimedOut, why));
            }
            std::thread::sleep(POLL);
        }
    }

    /// Waits until `/startupz` passes, as the kubelet's startup probe does:
    /// [`wait_passing`](Self::wait_passing)`(Endpoint::Startupz, deadline)`.
    pub fn wait_started(&self, deadline: Duration) -> Result<(), Error> {
        self.wait_passing(Endpoint::Startupz, deadline).map(drop)
    }

    /// Every log line (stderr) so far.
    pub fn log(&self) -> Vec<String> {
        self.stderr.all()
    }

    /// Every stdout line so far.
    pub fn stdout(&self) -> Vec<String> {
        self.stdout.all()
    }

    /// Waits for a log line (stderr, where lifecycle logs) containing
    /// `needle`. lifecycle's own lines count too: `probe server listening
    /// on http://…` contains "listening on http://", so look for your
    /// application's own words.
    pub fn wait_for_log(&self, needle: &str, deadline: Duration) -> Result<String, Error> {
        let until = Instant::now() + deadline;
        loop {
            if let Some(line) = self.stderr.find(needle) {
                return Ok(line);
            }
            if let Some(exit) = self.try_exit() {
                // Every line is in once the output is drained.
                self.drain_output();
                if let Some(line) = self.stderr.find(needle) {
                    return Ok(line);
                }
                return Err(
                    self.exited_while(exit, &format!("waiting for a log line with {needle:?}"))
                );
            }
            if Instant::now() > until {
                return Err(self.error(
                    ErrorKind::TimedOut,
                    format!(
                        "no log line with {needle:?} within {} ms",
                        deadline.as_millis()
                    ),
                ));
            }
            std::thread::sleep(POLL);
        }
    }

    /// The service's standard input, to drive a test fixture.
    pub fn stdin(&mut self) -> &mut ChildStdin {
        self.stdin.as_mut().expect("stdin is piped")
    }

    /// What the service wrote to its termination log, if anything.
    pub fn termination_message(&self) -> Option<String> {
        std::fs::read_to_string(&self.termination_log).ok()
    }

    /// Sends `signal` (`libc::SIGTERM`, …) to the process, unless it has
    /// already ended.
    ///
    /// Unix only: Windows has no signals (see [`Stop`]).
    #[cfg(unix)]
    pub fn signal(&self, signal: i32) {
        // Held across the kill: the child cannot be reaped meanwhile.
        let exit = self.exit.lock().unwrap_or_else(|p| p.into_inner());
        if exit.is_some() {
            return;
        }
        let mut child = self.child.lock().unwrap_or_else(|p| p.into_inner());
        if let Ok(Some(_)) = child.try_wait() {
            // Reaped just now: `try_exit` reads the status it kept.
            return;
        }
        let pid = libc::pid_t::try_from(self.pid).expect("a pid fits pid_t");
        // SAFETY: kill(2) has no memory effects; the child is not reaped
        // (checked above, under the lock), so the pid is still ours.
        unsafe { libc::kill(pid, signal) };
    }

    pub(crate) fn try_exit(&self) -> Option<Exit> {
        let mut exit = self.exit.lock().unwrap_or_else(|p| p.into_inner());
        if exit.is_none() {
            let mut child = self.child.lock().unwrap_or_else(|p| p.into_inner());
            *exit = child.try_wait().ok().flatten().map(Exit::from);
        }
        *exit
    }

    /// SIGKILL on Unix, TerminateProcess on Windows (std's
    /// `Child::kill`); nothing if the process has ended.
    pub(crate) fn send_kill(&self) {
        let _ = self.child.lock().unwrap_or_else(|p| p.into_inner()).kill();
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
    fn exited_while(&self, exit: Exit, waiting: &str) -> Error {
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
    fn drain_output(&self) {
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

    /// Stops the service as `stop` says, as the kubelet does: the signal
    /// (SIGTERM), then SIGKILL once the grace period has passed;
    /// `Stop::grace(Duration::from_secs(30))` is the kubelet's default
    /// stop. Meanwhile it probes `/readyz` to see when the service took
    /// itself out of rotation. Returns once the process has exited, with
    /// its log and stdout complete.
    ///
    /// Unix only (see [`Stop`]); on Windows, [`kill`](Self::kill).
    #[cfg(unix)]
    pub fn stop(&mut self, stop: Stop) -> StopReport {
        let addr = self.probe_addr;
        let signalled = Instant::now();
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        // Watches for the moment readiness fails, as an endpoints
        // controller would see it.
        let watcher = {
            let done = done.clone();
            std::thread::spawn(move || {
                while !done.load(Ordering::SeqCst) {
                    // Only a probe sent after the signal, answered with a
                    // failing status: a refused connection or a time-out
                    // is not the service saying "not ready".
                    let sent = Instant::now();
                    let answer = http_probe(addr, Endpoint::Readyz.path(), DEFAULT_TIMEOUT);
                    if sent >= signalled && answer.status.is_some() && !answer.passed() {
                        return Some(signalled.elapsed());
                    }
                    std::thread::sleep(POLL);
                }
                None
            })
        };
        self.signal(stop.signal);
        let mut second_sent = false;
        let mut kill_sent = false;
        let exit = loop {
            if let Some(exit) = self.try_exit() {
                break exit;
            }
            let elapsed = signalled.elapsed();
            if let Some(after) = stop.second_signal_after {
                if !second_sent && elapsed >= after {
                    self.signal(stop.signal);
                    second_sent = true;
                }
            }
            if elapsed >= stop.grace && !kill_sent {
                self.send_kill();
                kill_sent = true;
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        let signal_to_exit = signalled.elapsed();
        // The process may have exited by itself just before the kill.
        let killed = kill_sent && exit.signal == Some(libc::SIGKILL);
        done.store(true, Ordering::SeqCst);
        // A probe the watcher sent after the exit fails too: only a
        // failure seen while the process still ran counts.
        let unready_after = watcher
            .join()
            .ok()
            .flatten()
            .filter(|after| *after <= signal_to_exit);
        self.drain_output();
        StopReport {
            exit,
            signal_to_exit,
            unready_after,
            killed,
            termination_message: self.termination_message(),
            log: self.log(),
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if self.try_exit().is_none() {
            let child = self.child.get_mut().unwrap_or_else(|p| p.into_inner());
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
