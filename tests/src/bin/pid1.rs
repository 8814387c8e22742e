//! A service for the PID-1 suite (`tests/tests/pid1.rs`), which runs it as
//! the first process of a new PID namespace.
//!
//! It prints `running pid=P ppid=Q` when `main` runs (P is 2 and Q is 1
//! behind lifecycle's init, P is 1 without it), then obeys one command per
//! line on stdin, each answered on stdout:
//!
//! - `orphans N`: runs `sh -c 'sleep 0.1 &'` N times, each waited for: the
//!   `sleep` is orphaned as its shell exits, and handed to PID 1 to reap;
//!   answers `spawned N`;
//! - `census`: answers `census zombies=Z sleeping=S`: the zombies in the
//!   namespace (its own /proc, `unshare --mount-proc`) and the `sleep`
//!   processes still alive;
//! - `fail`: `main` returns an error (exit 1 and a termination message).
//!
//! Its `on_shutdown` hook takes `PID1_SHUTDOWN_MS` milliseconds and prints
//! `shutdown start` and `shutdown end`.

use std::io::{BufRead, Write};
use std::time::Duration;

use lifecycle_runtime::{on_shutdown, service_main};

/// One line on stdout, flushed at once. A closed stdout (the test gave up)
/// loses the line rather than panicking, which would change the exit code.
fn say(line: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{line}");
    let _ = stdout.flush();
}

#[on_shutdown(timeout_ms = 20000)]
async fn slow_shutdown() {
    say("shutdown start");
    let ms = std::env::var("PID1_SHUTDOWN_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    tokio::time::sleep(Duration::from_millis(ms)).await;
    say("shutdown end");
}

fn orphans(count: usize) {
    for _ in 0..count {
        let status = std::process::Command::new("sh")
            .args(["-c", "sleep 0.1 &"])
            .status()
            .expect("run sh");
        assert!(status.success(), "sh: {status}");
    }
    say(&format!("spawned {count}"));
}

/// Zombies and live `sleep` processes among all of /proc.
fn census() {
    let (mut zombies, mut sleeping) = (0, 0);
    for entry in std::fs::read_dir("/proc").expect("read /proc").flatten() {
        // A process gone since the listing is simply not counted.
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // `PID (COMM) STATE …`, where COMM may hold anything but ends at
        // the last parenthesis.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let comm = &stat[open + 1..close];
        let state = stat[close + 1..].trim_start().chars().next();
        if state == Some('Z') {
            zombies += 1;
        } else if comm == "sleep" {
            sleeping += 1;
        }
    }
    say(&format!("census zombies={zombies} sleeping={sleeping}"));
}

#[service_main(probe_addr = "127.0.0.1:0")]
async fn main() -> Result<(), String> {
    // SAFETY: getpid and getppid have no preconditions.
    let (pid, ppid) = unsafe { (libc::getpid(), libc::getppid()) };
    say(&format!("running pid={pid} ppid={ppid}"));
    let (fail_tx, mut fail_rx) = tokio::sync::mpsc::channel::<()>(1);
    // Commands are few and quick: a plain thread reads them, and this one
    // keeps the service's own tasks free.
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { return };
            let mut words = line.split_whitespace();
            match (words.next(), words.next()) {
                (Some("orphans"), Some(n)) => orphans(n.parse().expect("orphans N")),
                (Some("census"), None) => census(),
                (Some("fail"), None) => {
                    let _ = fail_tx.blocking_send(());
                }
                _ => say(&format!("unknown command {line:?}")),
            }
        }
    });
    tokio::select! {
        () = lifecycle_runtime::shutdown_signal() => Ok(()),
        Some(()) = fail_rx.recv() => Err("asked to fail".to_owned()),
    }
}
