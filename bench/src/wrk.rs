//! wrk (Debian's package) as the load generator of the throughput figures:
//! one thread, a few connections, either a new connection per request
//! (`Connection: close`, as the kubelet probes) or keep-alive.

use std::process::Command;
use std::time::Duration;

/// What one wrk run reports.
pub struct Run {
    pub requests: u64,
    pub per_second: f64,
    /// Connect, read, write and timeout errors, and answers other than
    /// 2xx or 3xx: a round with any is reported, not hidden.
    pub errors: u64,
}

/// Loads `url` for `duration` with `connections` connections.
pub fn run(
    url: &str,
    duration: Duration,
    connections: u32,
    new_connection_each: bool,
) -> Result<Run, String> {
    let mut command = Command::new("wrk");
    command
        .arg("-t1")
        .arg(format!("-c{connections}"))
        .arg(format!("-d{}s", duration.as_secs().max(1)))
        .arg("--timeout")
        .arg("2s");
    if new_connection_each {
        command.arg("-H").arg("Connection: close");
    }
    command
        .arg("-H")
        .arg("User-Agent: kube-probe/1.33")
        .arg(url);
    let output = command
        .output()
        .map_err(|e| format!("wrk: {e} (install Debian's wrk)"))?;
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(format!(
            "wrk {url}: {}\n{text}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let requests = text
        .lines()
        .find_map(|line| {
            line.trim()
                .split_once(" requests in ")
                .map(|(n, _)| n.trim().parse::<u64>())
        })
        .and_then(Result::ok)
        .ok_or_else(|| format!("wrk printed no request count:\n{text}"))?;
    let per_second = text
        .lines()
        .find_map(|line| {
            line.trim()
                .strip_prefix("Requests/sec:")
                .map(|n| n.trim().parse::<f64>())
        })
        .and_then(Result::ok)
        .ok_or_else(|| format!("wrk printed no rate:\n{text}"))?;
    let mut errors = 0;
    for line in text.lines() {
        let line = line.trim();
        if let Some(counts) = line.strip_prefix("Socket errors:") {
            errors += counts
                .split(',')
                .filter_map(|part| part.split_whitespace().last()?.parse::<u64>().ok())
                .sum::<u64>();
        }
        if let Some(count) = line.strip_prefix("Non-2xx or 3xx responses:") {
            errors += count.trim().parse::<u64>().unwrap_or(0);
        }
    }
    Ok(Run {
        requests,
        per_second,
        errors,
    })
}

/// wrk's version line, for the report.
pub fn version() -> String {
    Command::new("wrk")
        .arg("--version")
        .output()
        .map(|o| {
            let text = String::from_utf8_lossy(&o.stdout).to_string()
                + &String::from_utf8_lossy(&o.stderr);
            text.lines()
                .next()
                .unwrap_or("")
                .split(" Copyright")
                .next()
                .unwrap_or("")
                .trim()
                .to_string()
        })
        .unwrap_or_else(|e| format!("wrk: {e}"))
}
