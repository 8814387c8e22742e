//! A hostile environment: a log pipe nobody reads, a log pipe whose reader
//! went away, a termination log that is no file, a SIGTERM in the first
//! moments of the process. The kit pipes stderr and reads it, so these
//! tests start the testbed themselves with `std::process::Command`.
//! Timing-sensitive, so its own test binary, one test at a time.

use std::io::{BufRead, BufReader, PipeReader, Write};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lifecycle_testing::probe::http_probe;
use lifecycle_tests::Scratch;

const TESTBED: &str = env!("CARGO_BIN_EXE_testbed");
/// How long anything that should be quick may take on a loaded machine.
const DEADLINE: Duration = Duration::from_secs(15);
/// The shutdown timeout the tests configure.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_millis(3000);
/// What a loaded 2-core machine running debug builds may add to a bound.
const MARGIN: Duration = Duration::from_secs(3);

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Calls `ready` until it gives a value, or panics naming `what` once
/// `deadline` has passed.
fn wait_until<T>(deadline: Duration, what: &str, mut ready: impl FnMut() -> Option<T>) -> T {
    let until = Instant::now() + deadline;
    loop {
        if let Some(value) = ready() {
            return value;
        }
        assert!(
            Instant::now() < until,
            "{what}: not within {} ms",
            deadline.as_millis()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The testbed with stderr where the test says, stdout read into lines,
/// stdin for its commands. Killed when dropped.
struct Testbed {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Arc<Mutex<Vec<String>>>,
    /// The process closed its stdout: it exited.
    stdout_ended: Arc<AtomicBool>,
    scratch: Scratch,
    termination_log: PathBuf,
}

impl Testbed {
    /// Starts the testbed with the test process's own `LIFECYCLE_*` and
    /// `TESTBED_*` variables removed, a free probe port published to a
    /// file, a 3 s shutdown timeout, the termination log in its scratch
    /// folder (unless `env` says otherwise), then `env`.
    fn spawn(env: &[(&str, &str)], stderr: Stdio) -> Testbed {
        let scratch = Scratch::new("lifecycle-hostile");
        let mut command = Command::new(TESTBED);
        for (key, _) in std::env::vars_os() {
            let key_text = key.to_string_lossy();
            if key_text.starts_with("LIFECYCLE_")
                || key_text.starts_with("TESTBED_")
                || key_text == "KUBERNETES_SERVICE_HOST"
            {
                command.env_remove(&key);
            }
        }
        let termination_log = env
            .iter()
            .find(|(key, _)| *key == "LIFECYCLE_TERMINATION_LOG")
            .map(|(_, value)| PathBuf::from(value))
            .unwrap_or_else(|| scratch.path("termination-log"));
        command
            .env("RUST_LOG", "info")
            .env("LIFECYCLE_PROBE_ADDR", "127.0.0.1:0")
            .env("LIFECYCLE_PROBE_ADDR_FILE", scratch.path("probe-addr"))
            .env(
                "LIFECYCLE_SHUTDOWN_TIMEOUT_MS",
                SHUTDOWN_TIMEOUT.as_millis().to_string(),
            )
            .env("LIFECYCLE_TERMINATION_LOG", &termination_log)
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr);
        let mut child = command.spawn().expect("spawn the testbed");
        // `command` goes out of scope here, and with it the parent's copy
        // of whatever stderr was: the child holds the only write end.
        drop(command);
        let stdin = child.stdin.take();
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stdout_ended = Arc::new(AtomicBool::new(false));
        let (lines, ended) = (stdout.clone(), stdout_ended.clone());
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                lines.lock().unwrap().push(line);
            }
            ended.store(true, Ordering::SeqCst);
        });
        Testbed {
            child,
            stdin,
            stdout,
            stdout_ended,
            scratch,
            termination_log,
        }
    }

    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// The probe server's address, once it listens.
    fn probe_addr(&mut self) -> SocketAddr {
        let file = self.scratch.path("probe-addr");
        let until = Instant::now() + DEADLINE;
        loop {
            if let Ok(text) = std::fs::read_to_string(&file) {
                // The first line: the application's addresses may follow.
                if let Ok(addr) = text.lines().next().unwrap_or("").parse() {
                    return addr;
                }
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("the testbed exited ({status}) before its probe server listened");
            }
            assert!(
                Instant::now() < until,
                "the testbed did not publish its probe address"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Waits until `/startupz` passes; returns the probe address.
    fn started(&mut self) -> SocketAddr {
        let addr = self.probe_addr();
        wait_until(DEADLINE, "/startupz passes", || {
            (http_probe(addr, "/startupz", Duration::from_secs(1)).status == Some(200))
                .then_some(())
        });
        addr
    }

    fn has_line(&self, needle: &str) -> bool {
        self.stdout
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains(needle))
    }

    /// Waits for a line with `needle` on stdout; fails at once when stdout
    /// ends without it (the process exited).
    fn wait_for_line(&mut self, needle: &str) {
        let until = Instant::now() + DEADLINE;
        while !self.has_line(needle) {
            if self.stdout_ended.load(Ordering::SeqCst) && !self.has_line(needle) {
                let status = self.exit_within(DEADLINE);
                panic!(
                    "exited ({status}) without {needle:?} on stdout: {:?}",
                    self.stdout.lock().unwrap()
                );
            }
            assert!(
                Instant::now() < until,
                "no {needle:?} on stdout within {} ms: {:?}",
                DEADLINE.as_millis(),
                self.stdout.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Sends a control command and waits for its acknowledgement.
    fn command(&mut self, line: &str) {
        self.send(line);
        self.wait_for_line(&format!("ack {line}"));
    }

    /// Sends a command without waiting for its ack: for commands that end
    /// the process, which may exit before it acknowledges.
    fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on our own child's pid, which we have not waited
        // for yet, so it cannot have been reused.
        assert_eq!(unsafe { libc::kill(self.pid(), signal) }, 0);
    }

    /// The exit status, waiting at most `deadline`; panics past it.
    fn exit_within(&mut self, deadline: Duration) -> ExitStatus {
        let until = Instant::now() + deadline;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < until,
                "the testbed still runs {} ms later (stdout: {:?})",
                deadline.as_millis(),
                self.stdout.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn termination_message(&self) -> Option<String> {
        std::fs::read_to_string(&self.termination_log).ok()
    }
}

impl Drop for Testbed {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Asserts that the process exited with `code`, not by a signal.
fn assert_code(status: ExitStatus, code: i32, context: &str) {
    assert!(
        status.signal().is_none(),
        "{context}: killed by signal {:?}{}",
        status.signal(),
        if status.core_dumped() {
            " (core dumped)"
        } else {
            ""
        }
    );
    assert_eq!(status.code(), Some(code), "{context}");
}

/// Waits until the pipe that `reader` reads holds as much as it can: the
/// writer would block.
fn wait_until_full(reader: &PipeReader) {
    let fd = reader.as_raw_fd();
    // SAFETY: fcntl(2) and ioctl(2) on a pipe this test owns, the ioctl
    // writing one int.
    let capacity = unsafe { libc::fcntl(fd, libc::F_GETPIPE_SZ) };
    assert!(capacity > 0, "F_GETPIPE_SZ");
    wait_until(DEADLINE, "the log pipe fills up", || {
        let mut queued: libc::c_int = 0;
        assert_eq!(unsafe { libc::ioctl(fd, libc::FIONREAD, &mut queued) }, 0);
        // A blocked write of a line leaves less than a line's room.
        (queued > capacity - 4096).then_some(())
    });
}

// A pipe nobody reads.

#[test]
fn a_stalled_log_pipe_neither_keeps_the_service_in_rotation_nor_delays_its_exit() {
    let _serial = serial();
    let (reader, writer) = std::io::pipe().unwrap();
    let mut testbed = Testbed::spawn(&[], writer.into());
    let addr = testbed.started();
    testbed.command("set log-flood");
    wait_until_full(&reader);

    let signalled = Instant::now();
    testbed.signal(libc::SIGTERM);
    let bound = Duration::from_secs(1);
    loop {
        let left = bound.saturating_sub(signalled.elapsed());
        assert!(!left.is_zero(), "/readyz still not 503 1 s after SIGTERM");
        let ready = http_probe(addr, "/readyz", left);
        if ready.status == Some(503) {
            break;
        }
    }
    let status = testbed.exit_within(SHUTDOWN_TIMEOUT + MARGIN);
    assert_code(status, 0, "a graceful stop with a stalled log pipe");
    // The shutdown hooks ran to the end.
    testbed.wait_for_line("hook last end");
    drop(reader);
}

#[test]
fn a_stalled_log_pipe_does_not_hold_up_the_shutdown_deadline() {
    let _serial = serial();
    let (reader, writer) = std::io::pipe().unwrap();
    // A shutdown hook that outlasts the shutdown timeout.
    let mut testbed = Testbed::spawn(&[("TESTBED_HOOK_SLOW_MS", "60000")], writer.into());
    testbed.started();
    testbed.command("set log-flood");
    wait_until_full(&reader);

    let signalled = Instant::now();
    testbed.signal(libc::SIGTERM);
    let status = testbed.exit_within(SHUTDOWN_TIMEOUT + MARGIN);
    assert_code(status, 1, "the shutdown deadline with a stalled log pipe");
    assert!(
        signalled.elapsed() >= SHUTDOWN_TIMEOUT,
        "exited before the deadline: {:?}",
        signalled.elapsed()
    );
    let message = testbed.termination_message().unwrap_or_default();
    assert!(
        message.contains("shutdown did not finish within 3000 ms"),
        "termination message: {message:?}"
    );
    drop(reader);
}

#[test]
fn a_stalled_log_pipe_drops_lines_and_reports_how_many_once_it_drains() {
    let _serial = serial();
    let (reader, writer) = std::io::pipe().unwrap();
    let mut testbed = Testbed::spawn(&[], writer.into());
    testbed.started();
    testbed.command("set log-flood");
    wait_until_full(&reader);
    // Logging never blocked the thread that logs: it dropped lines.
    testbed.wait_for_line("log flood done");

    let log = Arc::new(Mutex::new(Vec::<String>::new()));
    let lines = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(reader).lines() {
            let Ok(line) = line else { return };
            lines.lock().unwrap().push(line);
        }
    });
    let report = wait_until(DEADLINE, "the report of dropped lines", || {
        log.lock()
            .unwrap()
            .iter()
            .find(|l| l.contains("log lines dropped"))
            .cloned()
    });
    let dropped: u64 = report
        .split("dropped=")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no dropped=N in {report:?}"));
    assert!(dropped > 0, "{report}");

    testbed.signal(libc::SIGTERM);
    let status = testbed.exit_within(SHUTDOWN_TIMEOUT + MARGIN);
    assert_code(status, 0, "a graceful stop once the log pipe drains");
}

// A pipe whose reader went away.

#[test]
fn a_log_pipe_closed_from_the_start_neither_aborts_nor_loses_the_termination_message() {
    let _serial = serial();
    // A healthy run: starts, serves, stops with 0.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let mut testbed = Testbed::spawn(&[], writer.into());
    testbed.started();
    testbed.signal(libc::SIGTERM);
    let status = testbed.exit_within(SHUTDOWN_TIMEOUT + MARGIN);
    assert_code(status, 0, "a graceful stop with stderr closed");
    testbed.wait_for_line("hook last end");

    // A failing run: 1, and the termination message says why.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let mut testbed = Testbed::spawn(&[("TESTBED_STARTUP_FAIL", "1")], writer.into());
    let status = testbed.exit_within(DEADLINE);
    assert_code(status, 1, "a failed start-up with stderr closed");
    let message = testbed.termination_message().unwrap_or_default();
    assert!(
        message.contains("cache warm-up failed"),
        "termination message: {message:?}"
    );
}

/// Starts the testbed with stderr a pipe, then closes the pipe's reader:
/// from now on every log line fails.
fn start_then_close_stderr() -> (Testbed, SocketAddr) {
    let (reader, writer) = std::io::pipe().unwrap();
    let mut testbed = Testbed::spawn(&[], writer.into());
    let addr = testbed.started();
    drop(reader);
    (testbed, addr)
}

#[test]
fn a_log_pipe_closed_mid_run_neither_aborts_nor_loses_the_termination_message() {
    let _serial = serial();
    // Logs after the close, then a graceful stop: 0.
    let (mut testbed, addr) = start_then_close_stderr();
    testbed.command("set log-flood");
    testbed.wait_for_line("log flood done");
    assert_eq!(
        http_probe(addr, "/readyz", Duration::from_secs(1)).status,
        Some(200)
    );
    testbed.signal(libc::SIGTERM);
    let status = testbed.exit_within(SHUTDOWN_TIMEOUT + MARGIN);
    assert_code(status, 0, "a graceful stop after stderr closed");
    testbed.wait_for_line("hook last end");

    // main fails: 1, with the termination message.
    let (mut testbed, _) = start_then_close_stderr();
    testbed.send("set fail");
    let status = testbed.exit_within(SHUTDOWN_TIMEOUT + MARGIN);
    assert_code(status, 1, "main failing after stderr closed");
    let message = testbed.termination_message().unwrap_or_default();
    assert!(
        message.contains("the test asked main to fail"),
        "termination message: {message:?}"
    );

    // A panic under panic = "crash": 101 from the panic hook, which must
    // not panic itself (that aborts), with the termination message.
    let (mut testbed, _) = start_then_close_stderr();
    testbed.send("set spawn-panic");
    let status = testbed.exit_within(DEADLINE);
    assert_code(status, 101, "a crash after stderr closed");
    let message = testbed.termination_message().unwrap_or_default();
    assert!(
        message.contains("task exploded"),
        "termination message: {message:?}"
    );
}

// A termination log that is no regular file.

#[test]
fn a_termination_log_that_is_no_file_never_hangs_the_exit() {
    let _serial = serial();
    let scratch = Scratch::new("lifecycle-hostile");
    let fifo = scratch.path("fifo");
    let path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo(3) with a valid C string.
    assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o600) }, 0);
    let missing = scratch.path("no").join("such").join("dir").join("log");
    let cases: [(&str, &Path); 4] = [
        ("a FIFO nobody reads", &fifo),
        ("a directory", scratch.dir()),
        ("/dev/full", Path::new("/dev/full")),
        ("a file in a missing directory", &missing),
    ];
    for (what, path) in cases {
        let path_text = path.to_str().unwrap();
        let started = Instant::now();
        let (code, _, stderr) = lifecycle_tests::run(
            TESTBED,
            &[],
            &[
                ("LIFECYCLE_PROBE_ADDR", "127.0.0.1:0"),
                ("LIFECYCLE_TERMINATION_LOG", path_text),
                ("TESTBED_STARTUP_FAIL", "1"),
            ],
        );
        let took = started.elapsed();
        assert_eq!(code, Some(1), "{what}: {stderr}");
        assert!(
            took < Duration::from_secs(10),
            "{what}: took {} ms",
            took.as_millis()
        );
        assert!(
            stderr.contains("termination message") && stderr.contains(path_text),
            "{what}: the failure to write it is reported: {stderr}"
        );
        assert!(
            stderr.contains("exiting with code 1: "),
            "{what}: the reason is still logged: {stderr}"
        );
    }
    // Still a FIFO: nothing replaced it.
    use std::os::unix::fs::FileTypeExt;
    assert!(std::fs::metadata(&fifo).unwrap().file_type().is_fifo());
}

// A SIGTERM in the first moments.

/// The signals the process `pid` ignores and catches (`SigIgn`, `SigCgt`).
fn signal_masks(pid: i32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let mask = |name: &str| {
        let value = status.lines().find_map(|l| l.strip_prefix(name))?;
        u64::from_str_radix(value.trim(), 16).ok()
    };
    Some((mask("SigIgn:")?, mask("SigCgt:")?))
}

fn bit(signal: i32) -> u64 {
    1 << (signal - 1)
}

#[test]
fn a_sigterm_in_the_first_milliseconds_of_main_stops_the_service_gracefully() {
    let _serial = serial();
    // 8000 filter directives (for targets that never log) make setting up
    // logging take tens of milliseconds: the window to land a SIGTERM in,
    // after main began and before logging and configuration are done.
    let rust_log: String = std::iter::once("info".to_owned())
        .chain((0..8000).map(|i| format!("n{i}=debug")))
        .collect::<Vec<_>>()
        .join(",");
    for run in 0..20 {
        let mut testbed = Testbed::spawn(&[("RUST_LOG", &rust_log)], Stdio::null());
        let pid = testbed.pid();
        // Rust's runtime ignores SIGPIPE just before it calls main (the
        // spawning side reset it to the default): main runs next.
        while signal_masks(pid).is_some_and(|(ignored, _)| ignored & bit(libc::SIGPIPE) == 0) {
            std::hint::spin_loop();
        }
        // The SIGTERM handler comes first thing in main: send the signal as
        // soon as it is there, during the logging set-up; without it, past
        // a moment that is still far into that set-up.
        let main_began = Instant::now();
        while main_began.elapsed() < Duration::from_millis(30)
            && signal_masks(pid).is_some_and(|(_, caught)| caught & bit(libc::SIGTERM) == 0)
        {
            std::hint::spin_loop();
        }
        testbed.signal(libc::SIGTERM);
        let status = testbed.exit_within(DEADLINE);
        assert_code(status, 0, &format!("run {run}: SIGTERM as main began"));
        // The shutdown hooks ran.
        testbed.wait_for_line("hook last end");
    }
}
