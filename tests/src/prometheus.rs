//! A real Prometheus server (the Debian package `prometheus`) for the
//! metrics tests: started on a free port of its own with a configuration
//! that scrapes the given targets, queried over its HTTP API, killed when
//! dropped.
//!
//! It scrapes itself too (job `prometheus`), so that a test can read its
//! own counters of rejected samples (`prometheus_target_scrapes_*`).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::free_port;

/// How long a start may take before the test fails.
const START_DEADLINE: Duration = Duration::from_secs(20);

/// How long one request to the HTTP API may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// The job the scraped targets are in.
pub const JOB: &str = "lifecycle";

/// One element of an instant vector: its labels (`__name__` included when
/// the query keeps it) and its value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

impl Sample {
    /// The value of label `name`, `""` when it has none.
    pub fn label(&self, name: &str) -> &str {
        self.labels.get(name).map_or("", String::as_str)
    }
}

/// An active target, as `/api/v1/targets` lists it.
#[derive(Debug, Clone)]
pub struct Target {
    pub job: String,
    pub scrape_url: String,
    /// `up`, `down` or `unknown` (not scraped yet).
    pub health: String,
    /// The last scrape's error, `""` when it had none.
    pub last_error: String,
}

/// A `prometheus` this test started; killed when dropped.
pub struct Prometheus {
    addr: SocketAddr,
    dir: PathBuf,
    child: Child,
}

impl Prometheus {
    /// Starts `prometheus` on a free port, scraping `targets` (job
    /// [`JOB`], path `/metrics`) and itself every `scrape_interval`, and
    /// waits until it is ready. Panics naming the package when it is not
    /// installed: a test that needs Prometheus fails rather than skips
    /// (`./scripts/test` installs it).
    pub fn start(targets: &[SocketAddr], scrape_interval: Duration) -> Prometheus {
        let port = free_port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let dir = std::env::temp_dir().join(format!(
            "lifecycle-prometheus-{}-{port}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("data")).unwrap();
        let interval = format!("{}ms", scrape_interval.as_millis());
        let list = |addrs: &[SocketAddr]| {
            addrs
                .iter()
                .map(|a| format!("'{a}'"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        // The scrape timeout may not exceed the interval.
        let config = format!(
            "global:\n  scrape_interval: {interval}\n  scrape_timeout: {interval}\n\
             scrape_configs:\n\
             \x20 - job_name: {JOB}\n    metrics_path: /metrics\n    static_configs:\n      - targets: [{}]\n\
             \x20 - job_name: prometheus\n    static_configs:\n      - targets: [{}]\n",
            list(targets),
            list(&[addr]),
        );
        let config_file = dir.join("prometheus.yml");
        std::fs::write(&config_file, config).unwrap();
        let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config_file.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .args(["--log.level=warn", "--storage.tsdb.retention.time=1h"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start prometheus ({e}): install the Debian package prometheus, \
                     as ./scripts/test does"
                )
            });
        let mut prometheus = Prometheus { addr, dir, child };
        let until = Instant::now() + START_DEADLINE;
        loop {
            if matches!(prometheus.get("/-/ready"), Ok((200, _))) {
                return prometheus;
            }
            if let Ok(Some(status)) = prometheus.child.try_wait() {
                panic!(
                    "prometheus exited at start: {status}\n{}",
                    prometheus.log_text()
                );
            }
            assert!(
                Instant::now() < until,
                "prometheus not ready on {addr} within {START_DEADLINE:?}\n{}",
                prometheus.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Its address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// What it logged (warnings and errors).
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default()
    }

    /// An instant query: the elements of the vector it evaluates to (a
    /// scalar as one element without labels). Panics on an error.
    pub fn query(&self, promql: &str) -> Vec<Sample> {
        self.try_query(promql)
            .unwrap_or_else(|e| panic!("query {promql:?}: {e}\n{}", self.log_text()))
    }

    /// An instant query, or why it failed.
    pub fn try_query(&self, promql: &str) -> Result<Vec<Sample>, String> {
        let data = self.api(&format!("/api/v1/query?query={}", encode(promql)))?;
        let result = &data["result"];
        match data["resultType"].as_str() {
            Some("vector") => result
                .as_array()
                .ok_or("no result array")?
                .iter()
                .map(|element| {
                    let labels = element["metric"]
                        .as_object()
                        .ok_or("no metric")?
                        .iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                        .collect();
                    Ok(Sample {
                        labels,
                        value: value(&element["value"])?,
                    })
                })
                .collect(),
            Some("scalar") => Ok(vec![Sample {
                labels: BTreeMap::new(),
                value: value(result)?,
            }]),
            other => Err(format!("a result of type {other:?}: {data}")),
        }
    }

    /// The value of a query that gives one element, `None` while it gives
    /// none; panics when it gives more.
    pub fn value(&self, promql: &str) -> Option<f64> {
        let samples = self.query(promql);
        assert!(samples.len() <= 1, "{promql} gave {samples:?}");
        samples.first().map(|s| s.value)
    }

    /// Queries `promql` until `predicate` holds of its result, which it
    /// returns, or panics at the deadline with the last result.
    pub fn wait_for(
        &self,
        promql: &str,
        predicate: impl Fn(&[Sample]) -> bool,
        deadline: Duration,
    ) -> Vec<Sample> {
        let until = Instant::now() + deadline;
        loop {
            let samples = self.query(promql);
            if predicate(&samples) {
                return samples;
            }
            assert!(
                Instant::now() < until,
                "{promql} still {samples:?} after {deadline:?}\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until `promql` gives exactly one element, of value `expected`.
    pub fn wait_for_value(&self, promql: &str, expected: f64, deadline: Duration) {
        self.wait_for(promql, |s| s.len() == 1 && s[0].value == expected, deadline);
    }

    /// The active targets.
    pub fn targets(&self) -> Vec<Target> {
        let data = self
            .api("/api/v1/targets?state=active")
            .unwrap_or_else(|e| panic!("targets: {e}"));
        data["activeTargets"]
            .as_array()
            .expect("activeTargets")
            .iter()
            .map(|t| {
                let text = |key: &str| t[key].as_str().unwrap_or_default().to_owned();
                Target {
                    job: t["labels"]["job"].as_str().unwrap_or_default().to_owned(),
                    scrape_url: text("scrapeUrl"),
                    health: text("health"),
                    last_error: text("lastError"),
                }
            })
            .collect()
    }

    /// Waits until the target at `addr` has been scraped successfully, and
    /// returns it; panics at the deadline with its last error.
    pub fn wait_target_up(&self, addr: SocketAddr, deadline: Duration) -> Target {
        let url = format!("http://{addr}/metrics");
        let until = Instant::now() + deadline;
        loop {
            let targets = self.targets();
            let target = targets.iter().find(|t| t.scrape_url == url);
            if let Some(target) = target.filter(|t| t.health == "up") {
                return target.clone();
            }
            assert!(
                Instant::now() < until,
                "target {url} not up after {deadline:?}: {targets:?}\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `data` of an API answer whose `status` is `success`.
    fn api(&self, path: &str) -> Result<Value, String> {
        let (status, body) = self.get(path).map_err(|e| e.to_string())?;
        let mut json: Value = serde_json::from_str(&body)
            .map_err(|e| format!("status {status}, not JSON ({e}): {body}"))?;
        if json["status"] != "success" {
            return Err(format!("status {status}: {body}"));
        }
        Ok(json["data"].take())
    }

    /// A GET over HTTP/1.0: the answer is delimited by the connection's
    /// close, never chunked, whatever its size.
    fn get(&self, path: &str) -> std::io::Result<(u16, String)> {
        let mut stream = TcpStream::connect_timeout(&self.addr, REQUEST_TIMEOUT)?;
        stream.set_read_timeout(Some(REQUEST_TIMEOUT))?;
        stream.set_write_timeout(Some(REQUEST_TIMEOUT))?;
        write!(stream, "GET {path} HTTP/1.0\r\nHost: {}\r\n\r\n", self.addr)?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer)?;
        let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("a malformed answer: {head}")))?;
        Ok((status, body.to_owned()))
    }
}

/// A sample's value, `[timestamp, "value"]`.
fn value(pair: &Value) -> Result<f64, String> {
    let text = pair[1]
        .as_str()
        .ok_or_else(|| format!("no value in {pair}"))?;
    match text {
        "NaN" => Ok(f64::NAN),
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        _ => text.parse().map_err(|e| format!("value {text:?}: {e}")),
    }
}

/// Percent-encodes a query parameter's value.
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The sample lines of a scrape in the text formats: every line but
/// comments (`# HELP`, `# TYPE`, `# UNIT`, `# EOF`) and blank ones.
pub fn sample_lines(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_a_query() {
        assert_eq!(
            encode("up{job=\"a b\"}"),
            "up%7Bjob%3D%22a%20b%22%7D".to_owned()
        );
    }

    #[test]
    fn a_server_of_its_own_scrapes_itself_and_answers_queries() {
        let prometheus = Prometheus::start(&[], Duration::from_secs(1));
        let me = prometheus.wait_target_up(prometheus.addr(), Duration::from_secs(10));
        assert_eq!(
            (me.job.as_str(), me.last_error.as_str()),
            ("prometheus", "")
        );
        prometheus.wait_for_value("up{job=\"prometheus\"}", 1.0, Duration::from_secs(10));
        assert_eq!(prometheus.value("1 + 1"), Some(2.0));
        assert!(prometheus.try_query("up{").is_err());
    }
}
