//! Starting and stopping a service binary as the kubelet runs it: started
//! on probe port 0, probed from outside, stopped with SIGTERM and a grace
//! period (on Unix; on Windows, killed).
//!
//! [`Service::builder`] sets up the program, its arguments and variables
//! ([`ServiceBuilder`]); [`ServiceBuilder::start`] starts it and waits for
//! `/startupz`. A `Stop` says how to stop it, and the `StopReport` what
//! the stop showed (Unix only); an [`Exit`] is how its process ended.

mod builder;
mod exit;
mod output;
mod scratch;
// The stop is a signal: Unix only.
#[cfg(unix)]
mod stop;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::error::{Error, ErrorKind};
use crate::probe::{http_probe, Endpoint, ProbeAnswer, VerboseAnswer, DEFAULT_TIMEOUT};
pub use builder::ServiceBuilder;
pub use exit::Exit;
pub(crate) use output::{tail, Lines};
pub(crate) use scratch::Scratch;
#[cfg(unix)]
pub use stop::{Stop, StopReport};

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
        ServiceBuilder::new(program.as_ref())
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
