//! The service's process: its handles and output streams, the addresses
//! it bound, the waits on it and the ways it ends.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::exit::Exit;
use super::output::{Lines, LOG_TAIL};
use super::scratch::Scratch;
use crate::error::{Error, ErrorKind};
use crate::sync::lock;

/// How often waits look again.
pub(super) const POLL: Duration = Duration::from_millis(10);
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
    /// Starts `command`, which runs `program`, with its streams piped, and
    /// waits until its probe server has written its address to
    /// `addr_file`, within `start_deadline`.
    pub(super) fn spawn(
        program: PathBuf,
        mut command: Command,
        addr_file: PathBuf,
        termination_log: PathBuf,
        start_deadline: Duration,
        scratch: Scratch,
    ) -> Result<Service, Error> {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                Error::new(
                    ErrorKind::Spawn,
                    format!("cannot start {}: {e}", program.display()),
                )
            })?;
        let spawned = Instant::now();
        let stdin = child.stdin.take();
        let stdout = Lines::collect(child.stdout.take().expect("piped stdout"));
        let stderr = Lines::collect(child.stderr.take().expect("piped stderr"));
        let mut service = Service {
            program,
            spawned,
            pid: child.id(),
            child: Mutex::new(child),
            stdin,
            stdout,
            stderr,
            probe_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            addr_file: addr_file.clone(),
            start_deadline,
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
    pub(super) fn error(&self, kind: ErrorKind, message: String) -> Error {
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

    /// Sends `signal` (`libc::SIGTERM`, …) to the process, unless it has
    /// already ended.
    ///
    /// Unix only: Windows has no signals (see [`Stop`](crate::Stop)).
    #[cfg(unix)]
    pub fn signal(&self, signal: i32) {
        // Held across the kill: the child cannot be reaped meanwhile.
        let exit = lock(&self.exit);
        if exit.is_some() {
            return;
        }
        let mut child = lock(&self.child);
        if let Ok(Some(_)) = child.try_wait() {
            // Reaped just now: `try_exit` reads the status it kept.
            return;
        }
        let pid = libc::pid_t::try_from(self.pid).expect("a pid fits pid_t");
        // SAFETY: kill(2) has no memory effects; the child is not reaped
        // (checked above, under the lock), so the pid is still ours.
        unsafe { libc::kill(pid, signal) };
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
