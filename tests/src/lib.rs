//! What the end-to-end tests share: start a service binary as a real child
//! process and talk to it the way the kubelet does, over TCP with a real
//! HTTP client, and with real signals.
//!
//! Every function takes the path of the binary to start. An integration
//! test names one of its own package's binaries with `CARGO_BIN_EXE_NAME`,
//! which cargo sets only for those: the fixtures in `tests/src/bin/` for
//! this crate's tests, an example's own binary for that example's tests.
//!
//! ```ignore
//! // tests/tests/probes.rs
//! use lifecycle_tests::Service;
//!
//! let service = Service::started(env!("CARGO_BIN_EXE_testbed"), &[]);
//! assert_eq!(service.get("/readyz").status, 200);
//! ```

pub mod kubernetes;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a debug build on a loaded 2-core machine may take to start.
pub const START_DEADLINE: Duration = Duration::from_secs(30);

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A fresh path for `LIFECYCLE_TERMINATION_LOG`, not yet created.
pub fn termination_log_path() -> std::path::PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let path = std::env::temp_dir().join(format!(
        "lifecycle-termination-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_file(&path);
    path
}

/// How long [`run`] waits for the process to exit.
pub const RUN_DEADLINE: Duration = Duration::from_secs(15);

/// Runs `bin ARGS` to its exit: (exit code, stdout lines, stderr).
pub fn run(
    bin: impl AsRef<Path>,
    args: &[&str],
    env: &[(&str, &str)],
) -> (Option<i32>, Vec<String>, String) {
    let mut service = Service::spawn_with_args(bin, args, env);
    let status = service.wait_exit(RUN_DEADLINE);
    (status.code(), service.stdout_lines(), service.stderr_text())
}

/// A running service process.
pub struct Service {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
    /// `http://127.0.0.1:PORT` of the probe server, once it is listening.
    pub probes: Option<String>,
    client: reqwest::blocking::Client,
}

pub struct Answer {
    pub status: u16,
    pub body: String,
    pub headers: reqwest::header::HeaderMap,
    pub elapsed: Duration,
}

impl Service {
    /// Spawns the binary at `bin` with `env` added to a clean
    /// `LIFECYCLE_*`-free environment, without waiting for anything.
    pub fn spawn(bin: impl AsRef<Path>, env: &[(&str, &str)]) -> Service {
        Service::spawn_with_args(bin, &[], env)
    }

    /// Spawns `bin` with command-line `args` as well.
    pub fn spawn_with_args(bin: impl AsRef<Path>, args: &[&str], env: &[(&str, &str)]) -> Service {
        let bin = bin.as_ref();
        let mut command = Command::new(bin);
        command.args(args);
        for (key, _) in std::env::vars() {
            if key.starts_with("LIFECYCLE_")
                || key.starts_with("TESTBED_")
                || key == "KUBERNETES_SERVICE_HOST"
            {
                command.env_remove(key);
            }
        }
        command
            .envs(env.iter().copied())
            .env("RUST_LOG", "info")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()));
        let stdin = child.stdin.take();
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let out = child.stdout.take().unwrap();
        let lines = stdout.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                lines.lock().unwrap().push(line);
            }
        });
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let err = child.stderr.take().unwrap();
        let lines = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                eprintln!("[child] {line}");
                lines.lock().unwrap().push(line);
            }
        });
        // Like the kubelet: a new connection for every probe.
        let client = reqwest::blocking::Client::builder()
            .no_proxy()
            .pool_max_idle_per_host(0)
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        Service {
            child,
            stdin,
            stdout,
            stderr,
            probes: None,
            client,
        }
    }

    /// Spawns `bin` and waits until start-up has finished (`/startupz` 200).
    pub fn started(bin: impl AsRef<Path>, env: &[(&str, &str)]) -> Service {
        let service = Service::start(bin, env);
        service.wait_for_status("/startupz", 200, START_DEADLINE);
        service
    }

    /// Spawns `bin` and waits until its probe server listens.
    pub fn start(bin: impl AsRef<Path>, env: &[(&str, &str)]) -> Service {
        let bin = bin.as_ref();
        let mut service = Service::spawn(bin, env);
        let line = service
            .wait_for_log("probe server listening on http://", START_DEADLINE)
            .unwrap_or_else(|| {
                panic!(
                    "{} never logged its probe address:\n{}",
                    bin.display(),
                    service.stderr_text()
                )
            });
        let start = line.find("http://").unwrap();
        let addr: String = line[start..]
            .chars()
            .take_while(|c| !c.is_whitespace() && *c != '"')
            .collect();
        service.probes = Some(addr);
        service
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn stderr_text(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }

    /// Waits for a stderr line containing `needle`.
    pub fn wait_for_log(&self, needle: &str, deadline: Duration) -> Option<String> {
        let until = Instant::now() + deadline;
        loop {
            if let Some(line) = self
                .stderr
                .lock()
                .unwrap()
                .iter()
                .find(|l| l.contains(needle))
            {
                return Some(line.clone());
            }
            if Instant::now() > until {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Every stdout line so far.
    pub fn stdout_lines(&self) -> Vec<String> {
        self.stdout.lock().unwrap().clone()
    }

    /// Waits for a stdout line equal to `expected`, at index `from` or later.
    pub fn wait_for_stdout_from(&self, from: usize, expected: &str, deadline: Duration) {
        let until = Instant::now() + deadline;
        loop {
            if self
                .stdout
                .lock()
                .unwrap()
                .iter()
                .skip(from)
                .any(|l| l == expected)
            {
                return;
            }
            if Instant::now() > until {
                panic!(
                    "no stdout line {expected:?} within {deadline:?}; stdout: {:?}\nstderr:\n{}",
                    self.stdout_lines(),
                    self.stderr_text()
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Waits for a stdout line equal to `expected`.
    pub fn wait_for_stdout(&self, expected: &str, deadline: Duration) {
        self.wait_for_stdout_from(0, expected, deadline);
    }

    /// Sends a control command without waiting for its ack: for commands
    /// that end the process, which may exit before it acknowledges.
    pub fn send(&mut self, command: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{command}").unwrap();
        stdin.flush().unwrap();
    }

    /// Sends a control command and waits until the service applied it.
    pub fn command(&mut self, command: &str) {
        let from = self.stdout.lock().unwrap().len();
        self.send(command);
        self.wait_for_stdout_from(from, &format!("ack {command}"), Duration::from_secs(10));
    }

    /// `127.0.0.1:PORT` of the probe server.
    pub fn probe_addr(&self) -> String {
        self.probes.as_ref().expect("probe server started")["http://".len()..].to_owned()
    }

    /// The application's address, from its `app listening on` line.
    pub fn app_url(&self) -> String {
        self.stdout_lines()
            .iter()
            .find_map(|l| l.strip_prefix("app listening on ").map(str::to_owned))
            .expect("the application's address")
    }

    /// The process's resident set size in KiB, from /proc.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .expect("VmRSS in /proc/PID/status")
    }

    fn url(&self, path: &str) -> String {
        format!(
            "{}{}",
            self.probes.as_ref().expect("probe server started"),
            path
        )
    }

    pub fn request(&self, method: reqwest::Method, path: &str, accept: Option<&str>) -> Answer {
        let mut request = self.client.request(method, self.url(path));
        if let Some(accept) = accept {
            request = request.header("Accept", accept);
        }
        let started = Instant::now();
        let response = request.send().unwrap_or_else(|e| panic!("GET {path}: {e}"));
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.text().unwrap();
        Answer {
            status,
            body,
            headers,
            elapsed: started.elapsed(),
        }
    }

    pub fn get(&self, path: &str) -> Answer {
        self.request(reqwest::Method::GET, path, None)
    }

    /// Probes `path` until it answers `status`, or panics at the deadline.
    pub fn wait_for_status(&self, path: &str, status: u16, deadline: Duration) -> Answer {
        let until = Instant::now() + deadline;
        loop {
            let answer = self.get(path);
            if answer.status == status {
                return answer;
            }
            if Instant::now() > until {
                panic!(
                    "{path} still {} after {deadline:?}: {}",
                    answer.status, answer.body
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for the process to exit, or panics at the deadline.
    pub fn wait_exit(&mut self, deadline: Duration) -> ExitStatus {
        let until = Instant::now() + deadline;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // Let the reader thread drain the last lines.
                std::thread::sleep(Duration::from_millis(50));
                return status;
            }
            if Instant::now() > until {
                panic!(
                    "process still running after {deadline:?}:\n{}",
                    self.stderr_text()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Sends `signal` (e.g. `libc::SIGTERM`) to the process.
    pub fn signal(&self, signal: i32) {
        let pid = i32::try_from(self.child.id()).unwrap();
        // SAFETY: kill(2) with a valid signal number has no memory effects.
        let result = unsafe { libc::kill(pid, signal) };
        assert_eq!(result, 0, "kill({pid}, {signal})");
    }

    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A plain GET with a fresh client (so a fresh connection), for the
/// application rather than the probes.
pub fn http_get(url: &str) -> reqwest::Result<(u16, String)> {
    let response = reqwest::blocking::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()?
        .get(url)
        .send()?;
    Ok((response.status().as_u16(), response.text()?))
}

/// Writes `request` to a new connection and reads until the server closes
/// it or `wait` passes: what a misbehaving client would see.
pub fn raw_exchange(addr: &str, request: &[u8], wait: Duration) -> String {
    use std::io::Read;
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(wait)).unwrap();
    // The server may answer and close before it has read everything.
    let _ = stream.write_all(request);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

/// The first line of an HTTP answer, e.g. `HTTP/1.1 200 OK`.
pub fn status_line(answer: &str) -> &str {
    answer.lines().next().unwrap_or("")
}
