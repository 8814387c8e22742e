//! A real `redis-server` (the Debian package) for the examples' tests:
//! started on a free port of its own, in-memory only, stopped when
//! dropped, and restartable on the same port to play a Redis outage.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::free_port;

/// How long a start may take before the test fails.
const START_DEADLINE: Duration = Duration::from_secs(10);

/// A `redis-server` this test started; killed when dropped.
pub struct RedisServer {
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts `redis-server` on a free port and waits until it answers
    /// `PING`. Panics naming the package when it is not installed: a test
    /// that needs Redis fails rather than skips (`./scripts/test` installs
    /// it).
    pub fn start() -> RedisServer {
        let dir = std::env::temp_dir().join(format!(
            "lifecycle-redis-{}-{}",
            std::process::id(),
            free_port()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let mut server = RedisServer {
            port: free_port(),
            dir,
            child: None,
        };
        server.resume();
        server
    }

    /// `redis://127.0.0.1:PORT`, for `REDIS_URL`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills the server (SIGKILL, as a crash or a lost node would) and
    /// waits for it: its port refuses connections from now on.
    pub fn halt(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port (empty: nothing is saved)
    /// and waits until it answers `PING`.
    pub fn resume(&mut self) {
        assert!(self.child.is_none(), "redis-server is running already");
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start redis-server ({e}): install the Debian package redis-server, as ./scripts/test does"
                )
            });
        self.child = Some(child);
        let until = Instant::now() + START_DEADLINE;
        loop {
            if self
                .try_command(&["PING"])
                .is_ok_and(|reply| reply == "+PONG")
            {
                return;
            }
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!("redis-server exited at start: {status}");
                }
            }
            assert!(
                Instant::now() < until,
                "redis-server did not answer PING on port {} within {START_DEADLINE:?}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends one command and returns its reply's first line as RESP
    /// gives it (`+OK`, `:3`, `$-1`, `*2`, …) followed, for a bulk string
    /// or an array of bulk strings, by their values one a line.
    pub fn command(&self, args: &[&str]) -> String {
        self.try_command(args)
            .unwrap_or_else(|e| panic!("redis {args:?}: {e}"))
    }

    fn try_command(&self, args: &[&str]) -> std::io::Result<String> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port))?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        let mut request = format!("*{}\r\n", args.len());
        for arg in args {
            request.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
        }
        stream.write_all(request.as_bytes())?;
        // QUIT after it: the server closes, so the whole reply is read.
        stream.write_all(b"*1\r\n$4\r\nQUIT\r\n")?;
        let mut reply = String::new();
        stream.read_to_string(&mut reply)?;
        let reply = reply.strip_suffix("+OK\r\n").unwrap_or(&reply);
        Ok(flatten(reply))
    }

    /// The values of the list `key`, first to last.
    pub fn list(&self, key: &str) -> Vec<String> {
        let reply = self.command(&["LRANGE", key, "0", "-1"]);
        reply.lines().skip(1).map(str::to_owned).collect()
    }
}

/// A RESP reply as lines: the header, then each bulk string's value.
fn flatten(reply: &str) -> String {
    let mut lines = Vec::new();
    let mut parts = reply.split("\r\n").filter(|l| !l.is_empty());
    if let Some(first) = parts.next() {
        lines.push(first.to_owned());
    }
    let mut rest: Vec<&str> = parts.collect();
    // Bulk strings come as `$LEN` then the value: keep the values.
    rest.retain(|l| !l.starts_with('$'));
    lines.extend(rest.into_iter().map(str::to_owned));
    lines.join("\n")
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.halt();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_of_its_own_answers_stops_and_comes_back_on_its_port() {
        let mut redis = RedisServer::start();
        assert_eq!(redis.command(&["SET", "k", "v"]), "+OK");
        assert_eq!(redis.command(&["GET", "k"]), "$1\nv");
        assert_eq!(redis.command(&["RPUSH", "l", "a", "b"]), ":2");
        assert_eq!(redis.list("l"), ["a", "b"]);
        redis.halt();
        assert!(TcpStream::connect(("127.0.0.1", redis.port())).is_err());
        redis.resume();
        assert_eq!(redis.command(&["GET", "k"]), "$-1", "nothing was saved");
    }
}
