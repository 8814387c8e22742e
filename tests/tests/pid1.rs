//! PID 1, for real: the `pid1` fixture runs
//! as the first process of a new PID namespace (`unshare --pid --fork
//! --mount-proc`, which needs root, as in CI and `./scripts/test`), where
//! the kernel gives it what a container without an init gives it: no
//! default signal actions, every orphan to reap.
//!
//! `unshare --fork` starts one process, the namespace's PID 1, and exits
//! with its exit code (or dies of its signal). The tests signal that
//! process by its PID on this side (the host's), as the container runtime
//! does, and read the namespace's own view (PIDs, zombies) from the
//! fixture's answers. The tests run one at a time: each namespace holds a
//! service and up to 200 short-lived processes.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lifecycle_tests::termination_log_path;

const FIXTURE: &str = env!("CARGO_BIN_EXE_pid1");
/// For anything to happen: far beyond what each step takes, even on a
/// loaded two-core machine running a debug build.
const DEADLINE: Duration = Duration::from_secs(30);

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The children of `pid` (host PIDs), from /proc.
fn children(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect()
}

fn comm(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim()
        .to_owned()
}

fn kill(pid: u32, signal: i32) {
    // SAFETY: kill takes plain integers.
    let sent = unsafe { libc::kill(pid as libc::pid_t, signal) };
    assert_eq!(
        sent,
        0,
        "kill({pid}, {signal}): {}",
        std::io::Error::last_os_error()
    );
}

/// The fixture as a PID namespace's first process.
struct Namespace {
    unshare: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
    /// Every stdout line read so far, for failure messages.
    seen: Vec<String>,
    stderr: Arc<Mutex<String>>,
    /// The namespace's PID 1, as this side numbers it.
    init: u32,
    termination_log: PathBuf,
}

impl Namespace {
    /// Starts the fixture with `env` (and none of this process's
    /// `LIFECYCLE_*` variables) and waits for `main` to run.
    fn start(env: &[(&str, &str)]) -> Namespace {
        let termination_log = termination_log_path();
        let mut command = Command::new("unshare");
        command.args(["--pid", "--fork", "--mount-proc", FIXTURE]);
        for (key, _) in std::env::vars_os() {
            let key_text = key.to_string_lossy();
            if key_text.starts_with("LIFECYCLE_") || key_text == "KUBERNETES_SERVICE_HOST" {
                command.env_remove(&key);
            }
        }
        let mut unshare = command
            .env("RUST_LOG", "info")
            .env("LIFECYCLE_TERMINATION_LOG", &termination_log)
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run unshare (util-linux): {e}"));
        let stdin = unshare.stdin.take().unwrap();
        let (send, lines) = mpsc::channel();
        let stdout = BufReader::new(unshare.stdout.take().unwrap());
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                if send.send(line).is_err() {
                    return;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut pipe = unshare.stderr.take().unwrap();
        let collected = stderr.clone();
        std::thread::spawn(move || {
            let mut chunk = [0; 4096];
            while let Ok(read @ 1..) = pipe.read(&mut chunk) {
                collected
                    .lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&chunk[..read]));
            }
        });
        let until = Instant::now() + DEADLINE;
        let init = loop {
            if let Some(&init) = children(unshare.id()).first() {
                break init;
            }
            if let Some(status) = unshare.try_wait().unwrap() {
                panic!(
                    "unshare exited ({status}) before starting the namespace's PID 1 (are the tests run as root?): {}",
                    stderr.lock().unwrap()
                );
            }
            assert!(Instant::now() < until, "unshare started no process");
            std::thread::sleep(Duration::from_millis(5));
        };
        let mut namespace = Namespace {
            unshare,
            stdin,
            lines,
            seen: Vec::new(),
            stderr,
            init,
            termination_log,
        };
        namespace.expect_line("running ");
        namespace
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// The next stdout line that starts with `prefix`, within the deadline.
    fn expect_line(&mut self, prefix: &str) -> String {
        let until = Instant::now() + DEADLINE;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.starts_with(prefix) {
                        return line;
                    }
                }
                Err(error) => panic!(
                    "no line starting with {prefix:?} ({error}); stdout so far: {:#?}\nstderr: {}",
                    self.seen,
                    self.stderr()
                ),
            }
        }
    }

    /// Sends `command` and returns the answer, the line starting with
    /// `answer`.
    fn command(&mut self, command: &str, answer: &str) -> String {
        writeln!(self.stdin, "{command}").unwrap();
        self.stdin.flush().unwrap();
        self.expect_line(answer)
    }

    /// `(zombies, sleeping)`, as the namespace's /proc says.
    fn census(&mut self) -> (usize, usize) {
        let line = self.command("census", "census ");
        let number = |key: &str| -> usize {
            line.split_whitespace()
                .find_map(|word| word.strip_prefix(key))
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("{key} in {line:?}"))
        };
        (number("zombies="), number("sleeping="))
    }

    /// Polls the census until `done` holds, within the deadline.
    fn census_until(&mut self, what: &str, done: impl Fn(usize, usize) -> bool) -> (usize, usize) {
        let until = Instant::now() + DEADLINE;
        loop {
            let (zombies, sleeping) = self.census();
            if done(zombies, sleeping) {
                return (zombies, sleeping);
            }
            assert!(
                Instant::now() < until,
                "{what}: still zombies={zombies} sleeping={sleeping} after {DEADLINE:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The service's process, the init's child running the fixture (the
    /// `sleep` orphans are its children too), as this side numbers it.
    fn service(&self) -> u32 {
        let services: Vec<u32> = children(self.init)
            .into_iter()
            .filter(|&pid| comm(pid) == "pid1")
            .collect();
        assert_eq!(
            services.len(),
            1,
            "one service under the init: {services:?}"
        );
        services[0]
    }

    /// Waits for the namespace to end: the exit status of its PID 1.
    fn wait_exit(&mut self) -> ExitStatus {
        let until = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = self.unshare.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < until,
                "the namespace's PID 1 still runs after {DEADLINE:?}; stdout: {:#?}\nstderr: {}",
                self.seen,
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn termination_message(&self) -> Option<String> {
        std::fs::read_to_string(&self.termination_log).ok()
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        if self.unshare.try_wait().ok().flatten().is_none() {
            // From outside, SIGKILL ends a namespace's PID 1, and with it
            // every process in the namespace.
            // SAFETY: kill takes plain integers.
            unsafe { libc::kill(self.init as libc::pid_t, libc::SIGKILL) };
            let _ = self.unshare.wait();
        }
        let _ = std::fs::remove_file(&self.termination_log);
    }
}

/// SIGTERM or SIGINT (or the stop signal `env` configures) to PID 1: the
/// graceful stop runs in the service, one signal's worth (a second would
/// exit 143 or 130 at once), the `on_shutdown` hook to its end, and PID 1
/// exits 0. The hook takes 3.5 s: no timeout of PID 1's own cuts it short.
fn graceful_stop(signal: i32, name: &str, env: &[(&str, &str)]) {
    let mut namespace = Namespace::start(&[&[("PID1_SHUTDOWN_MS", "3500")][..], env].concat());
    let running = namespace.seen.last().unwrap().clone();
    assert_eq!(
        running, "running pid=2 ppid=1",
        "the service runs as the init's child"
    );
    let service = namespace.service();
    let signalled = Instant::now();
    kill(namespace.init, signal);
    namespace.expect_line("shutdown start");
    namespace.expect_line("shutdown end");
    let status = namespace.wait_exit();
    let took = signalled.elapsed();
    let stderr = namespace.stderr();
    assert_eq!(status.code(), Some(0), "{name}: {status}; stderr: {stderr}");
    assert!(
        took >= Duration::from_millis(3500),
        "{name}: exited after {took:?}"
    );
    assert_eq!(
        stderr.matches(&format!("{name} received")).count(),
        1,
        "{name} reaches the service once: {stderr}"
    );
    assert!(!stderr.contains("received again"), "{stderr}");
    assert!(
        !std::path::Path::new(&format!("/proc/{service}")).exists(),
        "the service is gone with its namespace"
    );
    assert_eq!(
        namespace.termination_message(),
        None,
        "no message on exit 0"
    );
}

#[test]
fn sigterm_to_pid1_stops_the_service_gracefully_and_exits_0_past_3_s() {
    let _serial = serial();
    graceful_stop(libc::SIGTERM, "SIGTERM", &[]);
}

#[test]
fn sigint_to_pid1_exits_0_not_130() {
    let _serial = serial();
    graceful_stop(libc::SIGINT, "SIGINT", &[]);
}

/// The configured stop signal is forwarded as every other is, and stops
/// the service as SIGTERM does.
#[test]
fn the_configured_stop_signal_is_forwarded_and_stops_the_service_gracefully() {
    let _serial = serial();
    graceful_stop(
        libc::SIGQUIT,
        "SIGQUIT",
        &[("LIFECYCLE_STOP_SIGNAL", "SIGQUIT")],
    );
}

/// A second stop signal through PID 1 reaches the service while its hook
/// runs: it exits at once with 128 + 3, PID 1 with it, and the reason is
/// the termination message.
#[test]
fn a_second_configured_stop_signal_through_pid1_exits_131() {
    let _serial = serial();
    let mut namespace = Namespace::start(&[
        ("PID1_SHUTDOWN_MS", "15000"),
        ("LIFECYCLE_STOP_SIGNAL", "QUIT"),
    ]);
    kill(namespace.init, libc::SIGQUIT);
    namespace.expect_line("shutdown start");
    let second = Instant::now();
    kill(namespace.init, libc::SIGQUIT);
    let status = namespace.wait_exit();
    let took = second.elapsed();
    assert_eq!(
        status.code(),
        Some(131),
        "{status}; stderr: {}",
        namespace.stderr()
    );
    assert!(
        took < Duration::from_secs(5),
        "exited {took:?} after the second SIGQUIT"
    );
    assert_eq!(
        namespace.termination_message().as_deref(),
        Some("SIGQUIT received again during shutdown: exiting at once")
    );
}

/// Signals the service has no handler for reach it all the same: it dies
/// of them, and PID 1 exits 128 + N as a shell would report it.
#[test]
fn other_signals_are_forwarded_and_a_death_by_signal_n_exits_128_plus_n() {
    let _serial = serial();
    for (signal, code) in [(libc::SIGHUP, 129), (libc::SIGUSR2, 140)] {
        let mut namespace = Namespace::start(&[]);
        kill(namespace.init, signal);
        let status = namespace.wait_exit();
        assert_eq!(
            status.code(),
            Some(code),
            "signal {signal}: {status}; stderr: {}",
            namespace.stderr()
        );
    }
}

#[test]
fn sigkill_of_the_service_makes_pid1_exit_137() {
    let _serial = serial();
    let mut namespace = Namespace::start(&[]);
    let service = namespace.service();
    kill(service, libc::SIGKILL);
    let status = namespace.wait_exit();
    // An exit code, not a death by signal: PID 1 itself exited 137.
    assert_eq!(status.code(), Some(137), "{status}");
}

/// Orphans handed to PID 1, 200 in four rounds, are all reaped: none is
/// left a zombie once they have ended.
#[test]
fn orphans_leave_no_zombies() {
    let _serial = serial();
    let mut namespace = Namespace::start(&[]);
    for _ in 0..4 {
        namespace.command("orphans 50", "spawned 50");
    }
    namespace.census_until("every orphan ended and reaped", |zombies, sleeping| {
        zombies == 0 && sleeping == 0
    });
    kill(namespace.init, libc::SIGTERM);
    assert_eq!(namespace.wait_exit().code(), Some(0));
}

/// `LIFECYCLE_PID1=off`: the service is PID 1 itself (nothing forked), the
/// orphans it is handed stay zombies (what the census counts, so the test
/// above can fail), and SIGTERM still stops it gracefully.
#[test]
fn with_lifecycle_pid1_off_nothing_forks_and_orphans_stay_zombies() {
    let _serial = serial();
    let mut namespace = Namespace::start(&[("LIFECYCLE_PID1", "off")]);
    assert_eq!(namespace.seen.last().unwrap(), "running pid=1 ppid=0");
    assert_eq!(comm(namespace.init), "pid1");
    assert!(
        children(namespace.init).is_empty(),
        "no child: {:?}",
        children(namespace.init)
    );
    namespace.command("orphans 20", "spawned 20");
    let (zombies, _) = namespace.census_until("every orphan ended", |_, sleeping| sleeping == 0);
    assert_eq!(zombies, 20, "nobody reaps them");
    kill(namespace.init, libc::SIGTERM);
    assert_eq!(namespace.wait_exit().code(), Some(0));
}

/// A failure's exit code and termination message are the service's own,
/// the same with and without the init.
#[test]
fn the_termination_message_is_written_as_without_pid1() {
    let _serial = serial();
    let mut outcomes = Vec::new();
    for pid1 in ["on", "off"] {
        let mut namespace = Namespace::start(&[("LIFECYCLE_PID1", pid1)]);
        writeln!(namespace.stdin, "fail").unwrap();
        let status = namespace.wait_exit();
        let message = namespace.termination_message();
        outcomes.push((status.code(), message));
    }
    let (code, message) = &outcomes[0];
    assert_eq!(*code, Some(1), "{outcomes:?}");
    assert!(
        message
            .as_deref()
            .is_some_and(|m| m.contains("asked to fail")),
        "{outcomes:?}"
    );
    assert_eq!(outcomes[0], outcomes[1], "with the init, then without");
}

/// A bad `LIFECYCLE_PID1` is no reason to fork: the service, PID 1 itself,
/// reports it as any bad value, exit 2 naming the variable.
#[test]
fn a_bad_lifecycle_pid1_exits_2_naming_it() {
    let _serial = serial();
    let termination_log = termination_log_path();
    let output = Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", FIXTURE])
        .env("LIFECYCLE_PID1", "maybe")
        .env("LIFECYCLE_TERMINATION_LOG", &termination_log)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let message = std::fs::read_to_string(&termination_log).unwrap();
    let _ = std::fs::remove_file(&termination_log);
    assert!(
        message.starts_with("invalid configuration: LIFECYCLE_PID1=\"maybe\""),
        "{message}"
    );
}
