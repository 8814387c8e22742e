//! A hostile environment, its configuration part (issue 11, item 6): the
//! probe port already taken, and bad values in every `LIFECYCLE_*`
//! variable lifecycle reads. (Stderr closed, broken or stalled, and the
//! termination log at a FIFO, a directory, `/dev/full` or in a missing
//! directory are in hostile.rs.)
//!
//! As the README's Configuration says: a bad
//! value exits 2 with a message naming the variable and the accepted form;
//! an empty variable counts as unset; a millisecond value is at most
//! 86 400 000; the probe address that cannot be bound exits 1. The
//! termination log is the exception: failing to write it is reported on
//! stderr and never changes the exit code, so no value of
//! `LIFECYCLE_TERMINATION_LOG` is a configuration error.
//!
//! `LIFECYCLE_PROBE_PROTOCOL=grpc` is taken here: this crate builds the
//! runtime with its `grpc` feature. Without it, the runtime's unit tests
//! (`cargo test -p lifecycle-runtime --no-default-features`) check that it
//! exits 2 naming the feature.
//!
//! `LIFECYCLE_METRICS` takes `on` and `off`, and `true`/`false`
//! and `1`/`0`, in any case; `off` serves all the same (the manifest's
//! side of it is in kubernetes.rs).
//!
//! `LIFECYCLE_PID1` takes the same words as
//! `LIFECYCLE_METRICS`; the testbed is not PID 1 here, so `on` changes
//! nothing and the service serves (its PID-1 side is in pid1.rs).

use std::ffi::{OsStr, OsString};
use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lifecycle_tests::Scratch;

const TESTBED: &str = env!("CARGO_BIN_EXE_testbed");
/// How long a run to a configuration error may take, from the spawn, on a
/// loaded machine running a debug build (it is milliseconds otherwise).
const DEADLINE: Duration = Duration::from_secs(10);

/// One at a time: each case is a process of its own, and a loaded machine
/// makes deadlines flaky.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The testbed, started with none of the test process's `LIFECYCLE_*` and
/// `TESTBED_*` variables, its probe server on a free loopback port, its
/// termination log in a scratch folder, then `env`; stdout and stderr read
/// into lines. Killed when dropped.
struct Testbed {
    child: Child,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
    spawned: Instant,
    termination_log: PathBuf,
    _scratch: Scratch,
}

fn collect(stream: impl std::io::Read + Send + 'static) -> Arc<Mutex<Vec<String>>> {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).split(b'\n') {
            let Ok(line) = line else { return };
            sink.lock()
                .unwrap()
                .push(String::from_utf8_lossy(&line).into_owned());
        }
    });
    lines
}

impl Testbed {
    fn spawn(env: &[(&str, &OsStr)]) -> Testbed {
        let scratch = Scratch::new("lifecycle-hostile-config");
        let termination_log = env
            .iter()
            .find(|(key, _)| *key == "LIFECYCLE_TERMINATION_LOG")
            .map(|(_, value)| PathBuf::from(value))
            .unwrap_or_else(|| scratch.path("termination-log"));
        let mut command = Command::new(TESTBED);
        for (key, _) in std::env::vars_os() {
            let text = key.to_string_lossy();
            if text.starts_with("LIFECYCLE_")
                || text.starts_with("TESTBED_")
                || text == "KUBERNETES_SERVICE_HOST"
                || text == "RUST_BACKTRACE"
            {
                command.env_remove(&key);
            }
        }
        command
            .env("RUST_LOG", "info")
            .env("LIFECYCLE_PROBE_ADDR", "127.0.0.1:0")
            .env("LIFECYCLE_SHUTDOWN_TIMEOUT_MS", "3000")
            .env("LIFECYCLE_TERMINATION_LOG", &termination_log)
            .envs(env.iter().map(|(key, value)| (key, value)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let spawned = Instant::now();
        let mut child = command.spawn().expect("spawn the testbed");
        let stdout = collect(child.stdout.take().unwrap());
        let stderr = collect(child.stderr.take().unwrap());
        Testbed {
            child,
            stdout,
            stderr,
            spawned,
            termination_log,
            _scratch: scratch,
        }
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }

    fn stdout_has(&self, line: &str) -> bool {
        self.stdout.lock().unwrap().iter().any(|l| l == line)
    }

    /// The exit status and how long after the spawn it came; panics past
    /// `deadline`.
    fn exit_within(&mut self, deadline: Duration, context: &str) -> (ExitStatus, Duration) {
        let until = Instant::now() + deadline;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let took = self.spawned.elapsed();
                // The pipes close with the process: let the readers finish.
                let lines_until = Instant::now() + Duration::from_secs(2);
                while Instant::now() < lines_until
                    && Arc::strong_count(&self.stderr) + Arc::strong_count(&self.stdout) > 2
                {
                    std::thread::sleep(Duration::from_millis(2));
                }
                return (status, took);
            }
            assert!(
                Instant::now() < until,
                "{context}: still running {} ms later; log:\n{}",
                deadline.as_millis(),
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Waits until `main` runs; panics if the process exits first.
    fn wait_running(&mut self, context: &str) {
        let until = Instant::now() + DEADLINE;
        while !self.stdout_has("main running") {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "{context}: exited ({status}) before main ran; log:\n{}",
                    self.stderr()
                );
            }
            assert!(
                Instant::now() < until,
                "{context}: main not running; log:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn sigterm(&self) {
        // SAFETY: kill(2) on our own child, not yet waited for.
        assert_eq!(
            unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) },
            0
        );
    }

    fn termination_message(&self) -> Option<String> {
        std::fs::read(&self.termination_log)
            .ok()
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
    }
}

impl Drop for Testbed {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn assert_code(status: ExitStatus, code: i32, context: &str, log: &str) {
    assert!(
        status.signal().is_none(),
        "{context}: killed by signal {:?}; log:\n{log}",
        status.signal()
    );
    assert_eq!(status.code(), Some(code), "{context}; log:\n{log}");
}

/// Asserts that nothing panicked: a configuration error is no crash.
fn assert_no_panic(context: &str, log: &str) {
    for word in ["panicked", "stack backtrace", "RUST_BACKTRACE"] {
        assert!(
            !log.contains(word),
            "{context}: {word:?} in the log:\n{log}"
        );
    }
}

// The table.

/// What a value must lead to.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Outcome {
    /// Exit 2 at start-up, naming the variable.
    BadConfig,
    /// Taken (empty counts as unset): the service starts and stops cleanly.
    Serves,
}

/// Non-UTF-8 bytes, as `OsStr` carries them: valid text around one byte
/// (0xff) that no UTF-8 text holds.
fn not_utf8(before: &str, after: &str) -> OsString {
    let mut bytes = before.as_bytes().to_vec();
    bytes.push(0xff);
    bytes.extend_from_slice(after.as_bytes());
    OsString::from_vec(bytes)
}

/// The values of a millisecond variable that are not one, for a variable
/// whose least value is `min`.
fn bad_millis(min: u64) -> Vec<OsString> {
    let mut values: Vec<OsString> = [
        "soon",
        "-5",
        "-1",
        "1.5",
        "5s",
        "5 000",
        "0x10",
        "1e3",
        "５",
        "86400001",
        "18446744073709551615",
        "18446744073709551616",
        "99999999999999999999999999",
    ]
    .into_iter()
    .map(OsString::from)
    .collect();
    if min > 0 {
        values.push("0".into());
    }
    values.push(not_utf8("50", "0"));
    values
}

/// Makes a FIFO at `path`.
fn mkfifo(path: &Path) {
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: mkfifo(3) with a valid C string.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
}

/// Makes a character device at `path` that behaves as `/dev/full` (1, 7):
/// every write fails with ENOSPC. Only root may; `false` otherwise.
fn mknod_full(path: &Path) -> bool {
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: mknod(2) with a valid C string.
    unsafe { libc::mknod(c_path.as_ptr(), libc::S_IFCHR | 0o666, libc::makedev(1, 7)) == 0 }
}

#[test]
fn a_bad_value_in_any_lifecycle_variable_exits_2_naming_it() {
    let _serial = serial();
    let started = Instant::now();
    let files = Scratch::new("lifecycle-hostile-config");
    let regular = files.path("regular-file");
    std::fs::write(&regular, "a file, not a folder").unwrap();
    let fifo = files.path("fifo");
    mkfifo(&fifo);
    let device = files.path("full");
    let have_device = mknod_full(&device);

    let mut table: Vec<(&str, OsString, Outcome)> = Vec::new();
    let mut row = |variable: &'static str, value: OsString, outcome: Outcome| {
        table.push((variable, value, outcome));
    };
    for (variable, min) in [
        ("LIFECYCLE_DRAIN_DELAY_MS", 0),
        ("LIFECYCLE_CONNECTION_DRAIN_MS", 0),
        ("LIFECYCLE_SHUTDOWN_TIMEOUT_MS", 1),
        ("LIFECYCLE_STALL_THRESHOLD_MS", 1),
    ] {
        for value in bad_millis(min) {
            row(variable, value, Outcome::BadConfig);
        }
        for unset in ["", "   "] {
            row(variable, unset.into(), Outcome::Serves);
        }
    }
    for value in [
        "localhost:8081",
        "8081",
        ":8081",
        "127.0.0.1",
        "127.0.0.1:",
        "127.0.0.1:65536",
        "127.0.0.1:-1",
        "256.0.0.1:80",
        "[::1]",
        "http://127.0.0.1:0",
        "127.0.0.1:0/",
        "127.0.0.1:0,127.0.0.1:1",
    ] {
        row("LIFECYCLE_PROBE_ADDR", value.into(), Outcome::BadConfig);
    }
    row(
        "LIFECYCLE_PROBE_ADDR",
        not_utf8("127.0.0.1:", "0"),
        Outcome::BadConfig,
    );
    row("LIFECYCLE_PROBE_ADDR", "".into(), Outcome::Serves);
    for path in [
        files.dir().to_path_buf(),
        files.path("no").join("such").join("folder").join("addr"),
        regular.join("addr"),
        // A FIFO nobody reads: writing would block.
        fifo.clone(),
    ]
    .into_iter()
    .chain(have_device.then(|| device.clone()))
    {
        row(
            "LIFECYCLE_PROBE_ADDR_FILE",
            path.into_os_string(),
            Outcome::BadConfig,
        );
    }
    row("LIFECYCLE_PROBE_ADDR_FILE", "".into(), Outcome::Serves);
    for value in ["xml", "jsonl", "json,text", "1", "yes"] {
        row("LIFECYCLE_LOG_FORMAT", value.into(), Outcome::BadConfig);
    }
    row(
        "LIFECYCLE_LOG_FORMAT",
        not_utf8("js", "on"),
        Outcome::BadConfig,
    );
    row("LIFECYCLE_LOG_FORMAT", "".into(), Outcome::Serves);
    for value in ["everyone", "hide", "true", "1", "show,loopback"] {
        row("LIFECYCLE_REASONS", value.into(), Outcome::BadConfig);
    }
    row(
        "LIFECYCLE_REASONS",
        not_utf8("sh", "ow"),
        Outcome::BadConfig,
    );
    row("LIFECYCLE_REASONS", "".into(), Outcome::Serves);
    for value in ["h2", "https", "grpc,http", "http2", "1", "grpcs"] {
        row("LIFECYCLE_PROBE_PROTOCOL", value.into(), Outcome::BadConfig);
    }
    row(
        "LIFECYCLE_PROBE_PROTOCOL",
        not_utf8("gr", "pc"),
        Outcome::BadConfig,
    );
    for value in ["", "http", "grpc", " GRPC "] {
        row("LIFECYCLE_PROBE_PROTOCOL", value.into(), Outcome::Serves);
    }
    // Words a switch takes elsewhere, and near misses: none is a guess.
    for value in ["yes", "enabled", "of", "2", "on,off"] {
        row("LIFECYCLE_METRICS", value.into(), Outcome::BadConfig);
    }
    row("LIFECYCLE_METRICS", not_utf8("of", "f"), Outcome::BadConfig);
    for value in ["", "on", "off", " OFF ", "true", "0"] {
        row("LIFECYCLE_METRICS", value.into(), Outcome::Serves);
    }
    for value in ["yes", "tini", "of", "2", "on,off"] {
        row("LIFECYCLE_PID1", value.into(), Outcome::BadConfig);
    }
    row("LIFECYCLE_PID1", not_utf8("of", "f"), Outcome::BadConfig);
    for value in ["", "on", "off", " OFF ", "true", "0"] {
        row("LIFECYCLE_PID1", value.into(), Outcome::Serves);
    }

    let mut slowest = Duration::ZERO;
    for (variable, value, outcome) in &table {
        let context = format!("{variable}={value:?}");
        let mut testbed = Testbed::spawn(&[(variable, value)]);
        match outcome {
            Outcome::BadConfig => {
                let (status, took) = testbed.exit_within(DEADLINE, &context);
                slowest = slowest.max(took);
                let log = testbed.stderr();
                assert_code(status, 2, &context, &log);
                assert_no_panic(&context, &log);
                assert!(!testbed.stdout_has("main running"), "{context}: main ran");
                let last = log.lines().last().unwrap_or_default();
                assert!(
                    last.contains(&format!(
                        "exiting with code 2: invalid configuration: {variable}="
                    )),
                    "{context}: the last line logged names the variable:\n{log}"
                );
                let message = testbed.termination_message().unwrap_or_default();
                assert!(
                    message.starts_with(&format!("invalid configuration: {variable}=")),
                    "{context}: termination message {message:?}"
                );
                // The accepted form, or why the path will not do.
                assert!(
                    message.contains(": expected ") || message.contains(": cannot write "),
                    "{context}: says what is wrong: {message:?}"
                );
            }
            Outcome::Serves => {
                testbed.wait_running(&context);
                testbed.sigterm();
                let (status, _) = testbed.exit_within(DEADLINE, &context);
                let log = testbed.stderr();
                assert_code(status, 0, &context, &log);
                assert_no_panic(&context, &log);
            }
        }
    }
    // Still a FIFO, still a device: a bad path is not replaced.
    use std::os::unix::fs::FileTypeExt;
    assert!(std::fs::metadata(&fifo).unwrap().file_type().is_fifo());
    if have_device {
        assert!(std::fs::metadata(&device)
            .unwrap()
            .file_type()
            .is_char_device());
    }
    eprintln!(
        "reliability: hostile config: values={} slowest_exit_ms={} ({} s)",
        table.len(),
        slowest.as_millis(),
        started.elapsed().as_secs()
    );
}

#[test]
fn a_probe_address_file_that_is_no_utf8_is_a_path_like_any_other() {
    let _serial = serial();
    // Paths are bytes on Unix: one that is no UTF-8 is still a path, and
    // the address goes there, not to some lossy rendering of it.
    let files = Scratch::new("lifecycle-hostile-config");
    let path = files.path(not_utf8("addr-", ".txt"));
    let mut testbed = Testbed::spawn(&[("LIFECYCLE_PROBE_ADDR_FILE", path.as_os_str())]);
    testbed.wait_running("a probe address file named in bytes");
    let written = std::fs::read_to_string(&path).expect("the address, written there");
    let addr: std::net::SocketAddr = written.trim_end().parse().unwrap();
    assert_eq!(written, format!("{addr}\n"));
    let answer = lifecycle_testing::probe::http_probe(addr, "/livez", Duration::from_secs(1));
    assert_eq!(answer.status, Some(200), "{answer}");
    testbed.sigterm();
    let (status, _) = testbed.exit_within(DEADLINE, "a probe address file named in bytes");
    assert_code(
        status,
        0,
        "a probe address file named in bytes",
        &testbed.stderr(),
    );
}

#[test]
fn a_probe_address_file_that_is_a_fifo_with_a_reader_gets_the_address() {
    let _serial = serial();
    // A supervisor that waits on a FIFO for the address reads it there;
    // the FIFO is written, not replaced by a file.
    let files = Scratch::new("lifecycle-hostile-config");
    let fifo = files.path("addr");
    mkfifo(&fifo);
    // The reader is there before the service: opened without blocking
    // (which needs no writer), then read until a whole line came.
    let reader = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&fifo)
        .unwrap();
    let mut testbed = Testbed::spawn(&[("LIFECYCLE_PROBE_ADDR_FILE", fifo.as_os_str())]);
    let mut written = Vec::new();
    let until = Instant::now() + DEADLINE;
    while !written.ends_with(b"\n") {
        let mut buffer = [0u8; 64];
        match (&reader).read(&mut buffer) {
            Ok(n) => written.extend_from_slice(&buffer[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => panic!("reading the FIFO: {e}"),
        }
        assert!(
            Instant::now() < until,
            "no address in the FIFO; log:\n{}",
            testbed.stderr()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let written = String::from_utf8(written).unwrap();
    let addr: std::net::SocketAddr = written.trim_end().parse().unwrap();
    testbed.wait_running("a probe address FIFO");
    assert_eq!(
        lifecycle_testing::probe::http_probe(addr, "/livez", Duration::from_secs(1)).status,
        Some(200)
    );
    use std::os::unix::fs::FileTypeExt;
    assert!(std::fs::metadata(&fifo).unwrap().file_type().is_fifo());
    testbed.sigterm();
    let (status, _) = testbed.exit_within(DEADLINE, "a probe address FIFO");
    assert_code(status, 0, "a probe address FIFO", &testbed.stderr());
}

#[test]
fn no_value_of_the_termination_log_is_a_configuration_error() {
    let _serial = serial();
    // A failed start-up (exit 1) with the termination log at odd paths:
    // the exit code stays 1, whatever the path (hostile.rs has a FIFO, a
    // directory, /dev/full and a missing directory).
    let files = Scratch::new("lifecycle-hostile-config");
    let regular = files.path("regular-file");
    std::fs::write(&regular, "a file, not a folder").unwrap();
    let in_bytes = files.path(not_utf8("termination-", ".log"));
    let under_a_file = regular.join("termination-log");
    let cases: [(&str, &OsStr, Option<&Path>); 3] = [
        (
            "a path that is no UTF-8",
            in_bytes.as_os_str(),
            Some(&in_bytes),
        ),
        (
            "a path under a regular file",
            under_a_file.as_os_str(),
            None,
        ),
        ("empty: unset", OsStr::new(""), None),
    ];
    for (what, value, written_at) in cases {
        let mut testbed = Testbed::spawn(&[
            ("LIFECYCLE_TERMINATION_LOG", value),
            ("TESTBED_STARTUP_FAIL", OsStr::new("1")),
        ]);
        let (status, _) = testbed.exit_within(DEADLINE, what);
        let log = testbed.stderr();
        assert_code(status, 1, what, &log);
        assert_no_panic(what, &log);
        assert!(
            log.lines()
                .last()
                .unwrap_or_default()
                .contains("exiting with code 1: on_startup hook \"warm_up\" failed"),
            "{what}: the reason is the last line logged:\n{log}"
        );
        match written_at {
            Some(path) => {
                let message = std::fs::read_to_string(path).expect("written there");
                assert!(
                    message.contains("cache warm-up failed"),
                    "{what}: {message:?}"
                );
            }
            None if !value.is_empty() => assert!(
                log.contains("could not write the termination message to "),
                "{what}: the failure is reported:\n{log}"
            ),
            None => {}
        }
    }
}

#[test]
fn a_probe_port_already_taken_exits_1_naming_the_address_and_the_variable() {
    let _serial = serial();
    // The port held by another socket, on the same address or one that
    // overlaps it (a wildcard and a specific address of the same port).
    let taken_here = TcpListener::bind("127.0.0.1:0").unwrap();
    let port_here = taken_here.local_addr().unwrap().port();
    let taken_everywhere = TcpListener::bind("0.0.0.0:0").unwrap();
    let port_everywhere = taken_everywhere.local_addr().unwrap().port();
    let cases = [
        ("the same address", format!("127.0.0.1:{port_here}")),
        (
            "the wildcard over a taken loopback port",
            format!("0.0.0.0:{port_here}"),
        ),
        (
            "loopback under a taken wildcard",
            format!("127.0.0.1:{port_everywhere}"),
        ),
    ];
    for (what, addr) in cases {
        let mut testbed = Testbed::spawn(&[("LIFECYCLE_PROBE_ADDR", OsStr::new(&addr))]);
        let (status, took) = testbed.exit_within(DEADLINE, what);
        let log = testbed.stderr();
        assert_code(status, 1, what, &log);
        assert_no_panic(what, &log);
        assert!(took < DEADLINE, "{what}: {took:?}");
        assert!(!testbed.stdout_has("main running"), "{what}: main ran");
        let message = testbed.termination_message().unwrap_or_default();
        assert!(
            message.starts_with(&format!("cannot bind the probe server to {addr}"))
                && message.contains("LIFECYCLE_PROBE_ADDR")
                && message.contains("in use"),
            "{what}: termination message {message:?}"
        );
        let last = log.lines().last().unwrap_or_default();
        assert!(
            last.contains(&format!("exiting with code 1: {message}")),
            "{what}: the last line logged:\n{log}"
        );
    }
    drop((taken_here, taken_everywhere));
}
