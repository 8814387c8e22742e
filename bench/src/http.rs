//! Probes as the kubelet sends them: a new connection, one `GET` with
//! `Connection: close`, the answer read to the end.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// One probe's answer.
pub struct Answer {
    pub status: u16,
    pub body: String,
    /// From the connect to the last byte read.
    pub latency: Duration,
}

/// Sends one kubelet-style probe of `path` to `addr`; an error when the
/// connection fails or no whole answer comes within `timeout`.
pub fn probe(addr: SocketAddr, path: &str, timeout: Duration) -> Result<Answer, String> {
    let start = Instant::now();
    let mut stream = TcpStream::connect_timeout(&addr, timeout).map_err(|e| e.to_string())?;
    let left = timeout
        .saturating_sub(start.elapsed())
        .max(Duration::from_millis(1));
    stream
        .set_read_timeout(Some(left))
        .map_err(|e| e.to_string())?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: kube-probe/1.33\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .map_err(|e| e.to_string())?;
    let mut answer = Vec::with_capacity(1024);
    stream.read_to_end(&mut answer).map_err(|e| {
        if start.elapsed() >= timeout {
            format!("no answer within {} ms", timeout.as_millis())
        } else {
            e.to_string()
        }
    })?;
    let latency = start.elapsed();
    let text = String::from_utf8_lossy(&answer);
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| {
            format!(
                "not an HTTP answer: {:?}",
                text.chars().take(80).collect::<String>()
            )
        })?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default();
    Ok(Answer {
        status,
        body,
        latency,
    })
}

/// Probes `path` until it answers `status`, or fails naming what it last
/// saw once `deadline` has passed.
pub fn wait_for(
    addr: SocketAddr,
    path: &str,
    status: u16,
    deadline: Duration,
) -> Result<(), String> {
    let start = Instant::now();
    let mut last = String::from("nothing yet");
    while start.elapsed() < deadline {
        match probe(addr, path, Duration::from_secs(1)) {
            Ok(answer) if answer.status == status => return Ok(()),
            Ok(answer) => last = format!("{} {}", answer.status, answer.body.trim()),
            Err(error) => last = error,
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    Err(format!(
        "{path} on {addr} did not answer {status} within {} ms (last: {last})",
        deadline.as_millis()
    ))
}
