//! Python's `grpcio-health-checking`, a gRPC health client nobody in this
//! project wrote, driven through `tests/python/health_client.py`: each
//! command runs the script once and parses the one JSON document it
//! prints.
//!
//! The interpreter is `LIFECYCLE_PYTHON`, which `./scripts/test` sets to
//! the venv it creates (`$CARGO_TARGET_DIR/python-venv`, with the package
//! installed), or else that venv's when it exists beside this test binary.
//! Without one a test fails, saying how to get it: it never skips.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The script, in this crate.
const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/python/health_client.py");

/// How long one run of the script may take: Python's start (about 0.3 s
/// for `import grpc`) and its calls, whose own deadlines are 10 s (30 s for
/// a Watch): beyond, the script hangs.
const RUN_DEADLINE: Duration = Duration::from_secs(45);

/// What to do when there is no interpreter with the package.
const HOW_TO_GET_IT: &str = "run ./scripts/test, which creates the venv \
    ($CARGO_TARGET_DIR/python-venv, default target/python-venv) with \
    `pip install grpcio-health-checking` and exports LIFECYCLE_PYTHON; or \
    create one yourself and set LIFECYCLE_PYTHON=/path/to/venv/bin/python";

/// The interpreter to run the script with; panics, saying how to get one,
/// when there is none or it lacks the package.
pub fn interpreter() -> PathBuf {
    let python = match std::env::var_os("LIFECYCLE_PYTHON") {
        Some(python) => PathBuf::from(python),
        None => {
            // target/debug/deps/THIS-TEST → target/python-venv.
            let beside = std::env::current_exe().ok().and_then(|exe| {
                let target = exe.parent()?.parent()?.parent()?;
                Some(target.join("python-venv/bin/python3"))
            });
            match beside {
                Some(python) if python.exists() => python,
                _ => {
                    panic!("LIFECYCLE_PYTHON is not set and no target/python-venv: {HOW_TO_GET_IT}")
                }
            }
        }
    };
    let probe = Command::new(&python)
        .args(["-c", "import grpc, grpc_health.v1.health_pb2_grpc"])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {} ({e}): {HOW_TO_GET_IT}", python.display()));
    assert!(
        probe.status.success(),
        "{} cannot import grpcio-health-checking ({}): {HOW_TO_GET_IT}",
        python.display(),
        String::from_utf8_lossy(&probe.stderr).trim()
    );
    python
}

/// Runs `health_client.py ARGS` to its end: its JSON document, and its
/// stderr. Panics if it fails or overruns `RUN_DEADLINE` (45 s).
pub fn run_script(args: &[&str]) -> (Value, String) {
    let mut child = Command::new(interpreter())
        .arg(SCRIPT)
        .args(args)
        // Python's own buffering would hold the output until the end
        // anyway; unbuffered, a killed script still shows its progress.
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {SCRIPT}: {e}"));
    let until = Instant::now() + RUN_DEADLINE;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > until {
            let _ = child.kill();
            let output = child.wait_with_output().unwrap();
            panic!(
                "health_client.py {args:?} still running after {RUN_DEADLINE:?}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        output.status.success(),
        "health_client.py {args:?} failed ({}): {stderr}",
        output.status
    );
    let document = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("health_client.py {args:?}: not JSON ({e}): {stdout}"));
    (document, stderr)
}

/// `Check` on each of `names`: the status, or `code:NAME` for a call that
/// failed with that status code (`code:NOT_FOUND`).
pub fn check(addr: SocketAddr, names: &[String]) -> BTreeMap<String, String> {
    let mut args = vec!["check".to_owned(), addr.to_string()];
    args.extend(names.iter().cloned());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    strings(run_script(&args).0)
}

/// `List`: every name with its status (`code:NAME` alone if it failed).
pub fn list(addr: SocketAddr) -> BTreeMap<String, String> {
    strings(run_script(&["list", &addr.to_string()]).0)
}

fn strings(document: Value) -> BTreeMap<String, String> {
    serde_json::from_value(document.clone())
        .unwrap_or_else(|e| panic!("not a map of strings ({e}): {document}"))
}

/// One Watch stream as `watch-stop` saw it.
#[derive(Debug, Clone)]
pub struct Watched {
    /// What it watched: `NAME@ADDR`.
    pub target: String,
    /// Each message's status and when it came, in ms since the kill()
    /// (negative before it).
    pub events: Vec<(String, f64)>,
    /// How the stream ended; `None` if it had not ended when the script
    /// gave up.
    pub end: Option<Ended>,
}

impl Watched {
    /// The statuses it was sent, in order.
    pub fn statuses(&self) -> Vec<&str> {
        self.events
            .iter()
            .map(|(status, _)| status.as_str())
            .collect()
    }
}

/// The end of a Watch stream, as grpcio reports it.
#[derive(Debug, Clone)]
pub struct Ended {
    /// The status code's name: `OK` when the server ended the stream with
    /// status OK, as a clean end is.
    pub code: String,
    /// When, in ms since the kill().
    pub at: f64,
    /// The status's details (empty for most `OK`s).
    pub details: String,
}

/// Opens a Watch on each `(addr, name)` of `targets`, waits for each one's
/// first message, sends SIGTERM to `pid` and follows the streams to their
/// end: what each saw, in the order of `targets`, and the script's stderr.
pub fn watch_stop(pid: u32, targets: &[(SocketAddr, &str)]) -> (Vec<Watched>, String) {
    let targets: Vec<String> = targets
        .iter()
        .map(|(addr, name)| format!("{name}@{addr}"))
        .collect();
    let mut args = vec!["watch-stop".to_owned(), pid.to_string()];
    args.extend(targets.iter().cloned());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (document, stderr) = run_script(&args);
    let watched = targets
        .into_iter()
        .map(|target| {
            let stream = &document[target.as_str()];
            let events = stream["events"]
                .as_array()
                .unwrap_or_else(|| panic!("no events for {target:?}: {document}"))
                .iter()
                .map(|event| {
                    (
                        event[0].as_str().expect("a status").to_owned(),
                        event[1].as_f64().expect("milliseconds"),
                    )
                })
                .collect();
            let end = (!stream["end"].is_null()).then(|| Ended {
                code: stream["end"][0].as_str().expect("a code").to_owned(),
                at: stream["end"][1].as_f64().expect("milliseconds"),
                details: stream["end"][2].as_str().expect("details").to_owned(),
            });
            Watched {
                target,
                events,
                end,
            }
        })
        .collect();
    (watched, stderr)
}
