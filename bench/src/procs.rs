//! The services under test as child processes: started on a free port with
//! a clean environment, their CPU time and memory read from `/proc`, and
//! stopped (SIGKILL) when dropped.

use std::fs::File;
use std::net::{SocketAddr, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A free port on loopback: bound by the kernel, then released for the
/// service to take.
pub fn free_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free port on loopback");
    listener.local_addr().expect("the port's address")
}

/// The command for `binary` in `bin_dir`, its environment cleared of what
/// would change its behaviour: lifecycle's variables, `RUST_LOG`, and
/// `KUBERNETES_SERVICE_HOST` (which turns on a 5 s drain delay).
pub fn command(bin_dir: &Path, binary: &str) -> Command {
    let mut command = Command::new(bin_dir.join(binary));
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if key.starts_with("LIFECYCLE_")
            || key.starts_with("BENCH_")
            || key == "RUST_LOG"
            || key == "KUBERNETES_SERVICE_HOST"
            || key == "GOMAXPROCS"
        {
            command.env_remove(key.as_ref());
        }
    }
    command.stdin(Stdio::null()).stdout(Stdio::null());
    // SAFETY: prctl(2) only, which is async-signal-safe, between fork and
    // exec: a service outlives no driver (one killed mid-run would leave
    // spinning load behind, on every core).
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
    command
}

/// A process's resident memory, in KiB.
pub struct Memory {
    pub rss: u64,
    pub anonymous: u64,
    pub executable: u64,
}

/// A running service.
pub struct Service {
    pub name: String,
    pub addr: SocketAddr,
    child: Option<Child>,
    log: PathBuf,
}

impl Service {
    /// Starts `command`, which serves on `addr`; its stderr goes to a file
    /// shown if it fails.
    pub fn start(name: &str, mut command: Command, addr: SocketAddr) -> Result<Service, String> {
        let log =
            std::env::temp_dir().join(format!("lifecycle-bench-{}-{name}.log", std::process::id()));
        let file = File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
        command.stderr(file);
        let child = command
            .spawn()
            .map_err(|e| format!("{name}: cannot start {:?}: {e}", command.get_program()))?;
        Ok(Service {
            name: name.to_string(),
            addr,
            child: Some(child),
            log,
        })
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().map_or(0, |child| child.id() as i32)
    }

    /// The tail of what the service wrote to stderr, for an error message.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(10)..].join("\n")
    }

    /// Fails with the service's log when it is not running.
    pub fn ensure_running(&mut self) -> Result<(), String> {
        if let Some(child) = self.child.as_mut() {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!(
                    "{} exited ({status}):\n{}",
                    self.name,
                    self.log_tail()
                ));
            }
        }
        Ok(())
    }

    /// User plus system CPU time of the whole process (every thread), in
    /// the kernel's clock ticks (10 ms each).
    pub fn cpu_ticks(&self) -> Result<u64, String> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid()))
            .map_err(|e| format!("{}: {e}", self.name))?;
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest)
            .unwrap_or("")
            .split_whitespace()
            .collect();
        // After the command name: state is field 3, utime 14, stime 15.
        let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<u64>().ok());
        Ok(field(14).unwrap_or(0) + field(15).unwrap_or(0))
    }

    /// The resident set size in KiB, and of it the anonymous memory (heap,
    /// stacks) and the pages of the executable itself (its code and
    /// read-only data, as far as they were touched), from `smaps`.
    pub fn memory_kib(&self) -> Result<Memory, String> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .map_err(|e| format!("{}: {e}", self.name))?;
        let field = |name: &str| {
            status
                .lines()
                .find_map(|line| line.strip_prefix(name))
                .and_then(|value| value.split_whitespace().next()?.parse().ok())
                .ok_or_else(|| format!("{}: no {name} in /proc/PID/status", self.name))
        };
        let executable = std::fs::read_link(format!("/proc/{}/exe", self.pid()))
            .map_err(|e| format!("{}: {e}", self.name))?;
        let smaps = std::fs::read_to_string(format!("/proc/{}/smaps", self.pid()))
            .map_err(|e| format!("{}: {e}", self.name))?;
        // A mapping's header line names its file last; its `Rss:` line
        // follows.
        let mut in_executable = false;
        let mut executable_kib = 0;
        for line in smaps.lines() {
            if let Some(kib) = line.strip_prefix("Rss:") {
                if in_executable {
                    executable_kib += kib
                        .split_whitespace()
                        .next()
                        .and_then(|kib| kib.parse::<u64>().ok())
                        .unwrap_or(0);
                }
            } else if line.split_whitespace().next().is_some_and(|range| {
                range.contains('-') && range.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
            }) {
                in_executable = line
                    .split_whitespace()
                    .nth(5)
                    .is_some_and(|path| std::path::Path::new(path) == executable);
            }
        }
        Ok(Memory {
            rss: field("VmRSS:")?,
            anonymous: field("RssAnon:")?,
            executable: executable_kib,
        })
    }

    /// Sends SIGTERM and waits for the exit: the time from the signal to
    /// the process reaped, and its exit code.
    pub fn terminate(&mut self) -> Result<(Duration, Option<i32>), String> {
        let mut child = self.child.take().ok_or("already stopped")?;
        let start = Instant::now();
        // SAFETY: kill(2) on our own child, which has not been reaped.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let status = child.wait().map_err(|e| e.to_string())?;
        Ok((start.elapsed(), status.code()))
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_file(&self.log);
    }
}
