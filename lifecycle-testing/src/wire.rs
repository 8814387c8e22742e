//! One HTTP/1.1 exchange on a new connection (`Connection: close`), std
//! only, bounded by one time-out over the whole exchange: what the kit's
//! probes and its HTTP client both send.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// How much of a head the client reads before it gives up.
const MAX_HEAD: usize = 64 * 1024;

/// What to do with a body longer than the client reads.
#[derive(Debug, Clone, Copy)]
pub(crate) enum BodyLimit {
    /// Read this much and leave the rest unread, as the kubelet does.
    Truncate(usize),
    /// A longer answer is an error.
    Refuse(usize),
}

impl BodyLimit {
    fn bytes(self) -> usize {
        match self {
            BodyLimit::Truncate(n) | BodyLimit::Refuse(n) => n,
        }
    }

    /// Whether `read` body bytes are all the client wants.
    fn satisfied(self, read: usize) -> bool {
        matches!(self, BodyLimit::Truncate(n) if read >= n)
    }
}

fn left(timeout: Duration, started: Instant) -> io::Result<Duration> {
    timeout
        .checked_sub(started.elapsed())
        .filter(|left| !left.is_zero())
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no whole answer within {} ms", timeout.as_millis()),
            )
        })
}

/// One request to send.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Outgoing<'a> {
    /// `GET`, `POST`…
    pub(crate) method: &'a str,
    /// The request target, query included.
    pub(crate) path: &'a str,
    /// `User-Agent`, unless `headers` has one.
    pub(crate) user_agent: &'a str,
    /// Headers to send after the kit's own; one named `Host`, `User-Agent`
    /// or `Accept` replaces the kit's.
    pub(crate) headers: &'a [(String, String)],
    /// The body, sent with its `Content-Length`.
    pub(crate) body: &'a [u8],
}

impl Outgoing<'_> {
    /// The request's bytes, head and body.
    fn bytes(&self, addr: SocketAddr) -> Vec<u8> {
        let Outgoing {
            method,
            path,
            user_agent,
            headers,
            body,
        } = *self;
        let given = |name: &str| headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name));
        let mut head = format!("{method} {path} HTTP/1.1\r\n");
        for (name, value) in [
            ("Host", addr.to_string()),
            ("User-Agent", user_agent.to_owned()),
            ("Accept", "*/*".to_owned()),
        ] {
            if !given(name) {
                head.push_str(&format!("{name}: {value}\r\n"));
            }
        }
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        // A method that defines a body gets a length even when it is
        // empty: a server may otherwise wait for one, or answer 411.
        let defines_body = ["POST", "PUT", "PATCH"]
            .iter()
            .any(|m| method.eq_ignore_ascii_case(m));
        if !body.is_empty() || defines_body {
            head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        head.push_str("Connection: close\r\n\r\n");
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(body);
        bytes
    }
}

/// An HTTP answer as read off the wire, before anyone judges it: its
/// status, its `Location` header, its body.
#[derive(Debug)]
pub(crate) struct RawAnswer {
    pub(crate) status: u16,
    pub(crate) location: Option<String>,
    pub(crate) body: Vec<u8>,
}

/// Sends `GET path` to `addr` (the `Host` header is `host`): a
/// [`round_trip`] with no body.
pub(crate) fn get(
    addr: SocketAddr,
    host: &str,
    path: &str,
    timeout: Duration,
    user_agent: &str,
    limit: BodyLimit,
) -> io::Result<RawAnswer> {
    let headers = [("Host".to_owned(), host.to_owned())];
    let request = Outgoing {
        method: "GET",
        path,
        user_agent,
        headers: &headers,
        body: &[],
    };
    round_trip(addr, &request, timeout, limit)
}

/// Sends `request` to `addr` and reads the status and the body
/// (`Content-Length`, chunked, or up to the end of the connection), all
/// within `timeout`. A connection closed before a whole answer (or the
/// part `limit` reads) is an [`io::ErrorKind::UnexpectedEof`].
pub(crate) fn exchange(
    addr: SocketAddr,
    request: &Outgoing<'_>,
    timeout: Duration,
    limit: BodyLimit,
) -> io::Result<(u16, Vec<u8>)> {
    round_trip(addr, request, timeout, limit).map(|answer| (answer.status, answer.body))
}

/// [`exchange`], with the `Location` header.
fn round_trip(
    addr: SocketAddr,
    request: &Outgoing<'_>,
    timeout: Duration,
    limit: BodyLimit,
) -> io::Result<RawAnswer> {
    let started = Instant::now();
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_nodelay(true)?;
    stream.set_write_timeout(Some(left(timeout, started)?))?;
    // One write, as a buffered client sends it: `write!` on the socket
    // would send each piece as its own segment (no Nagle), and a server
    // reading once would see half a request.
    stream.write_all(&request.bytes(addr))?;
    let mut incoming = Incoming {
        stream,
        received: Vec::new(),
        cap: MAX_HEAD + limit.bytes(),
        timeout,
        started,
    };
    let head_end = incoming.read_head()?;
    let head = Head::parse(&String::from_utf8_lossy(&incoming.received[..head_end]))?;
    // The answer to a HEAD has the headers of a GET's, and no body.
    let no_body =
        head.status == 204 || head.status == 304 || request.method.eq_ignore_ascii_case("HEAD");
    let mut body = if no_body {
        Vec::new()
    } else {
        incoming.read_body(head_end + 4, &head, limit)?
    };
    if let BodyLimit::Truncate(n) = limit {
        body.truncate(n);
    } else if body.len() > limit.bytes() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("a body larger than {} bytes", limit.bytes()),
        ));
    }
    Ok(RawAnswer {
        status: head.status,
        location: head.location,
        body,
    })
}

/// What the client reads of an answer's head.
struct Head {
    status: u16,
    chunked: bool,
    /// `Content-Length`.
    length: Option<usize>,
    location: Option<String>,
}

impl Head {
    /// Reads the status line and the headers the client uses.
    fn parse(head: &str) -> io::Result<Head> {
        let status = head
            .lines()
            .next()
            .filter(|line| line.starts_with("HTTP/"))
            .and_then(|line| line.split_whitespace().nth(1))
            .and_then(|code| code.parse().ok())
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no HTTP status line"))?;
        let header = |wanted: &str| {
            head.lines().skip(1).find_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.trim()
                    .eq_ignore_ascii_case(wanted)
                    .then(|| value.trim().to_owned())
            })
        };
        let chunked = header("transfer-encoding")
            .is_some_and(|value| value.to_ascii_lowercase().contains("chunked"));
        let length =
            match header("content-length") {
                Some(value) => Some(value.parse::<usize>().map_err(|_| {
                    io::Error::new(io::ErrorKind::InvalidData, "a bad Content-Length")
                })?),
                None => None,
            };
        Ok(Head {
            status,
            chunked,
            length,
            location: header("location"),
        })
    }
}

/// The answer as it arrives: the connection and what came through it so
/// far, bounded in size and in time.
struct Incoming {
    stream: TcpStream,
    received: Vec<u8>,
    /// The most the client reads: a head and the body `limit` allows.
    cap: usize,
    timeout: Duration,
    started: Instant,
}

impl Incoming {
    /// Reads more: the count read, 0 at the end of the connection.
    fn read_more(&mut self) -> io::Result<usize> {
        self.stream
            .set_read_timeout(Some(left(self.timeout, self.started)?))?;
        let mut chunk = [0u8; 8192];
        let read = self.stream.read(&mut chunk)?;
        self.received.extend_from_slice(&chunk[..read]);
        if self.received.len() > self.cap {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("answer larger than {} bytes", self.cap),
            ));
        }
        Ok(read)
    }

    /// Reads up to the end of the head: where it ends (before its blank
    /// line).
    fn read_head(&mut self) -> io::Result<usize> {
        loop {
            if let Some(end) = find(&self.received, b"\r\n\r\n") {
                return Ok(end);
            }
            if self.received.len() > MAX_HEAD {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "head too large"));
            }
            if self.read_more()? == 0 {
                return Err(eof(if self.received.is_empty() {
                    "before an answer"
                } else {
                    "in the answer's head"
                }));
            }
        }
    }

    /// Reads the body that starts at `body_start`, as `head` frames it, up
    /// to what `limit` wants.
    fn read_body(
        &mut self,
        body_start: usize,
        head: &Head,
        limit: BodyLimit,
    ) -> io::Result<Vec<u8>> {
        if head.chunked {
            loop {
                let (body, complete) = dechunk(&self.received[body_start..])?;
                if complete || limit.satisfied(body.len()) {
                    return Ok(body);
                }
                if self.read_more()? == 0 {
                    return Err(eof("in a chunked body"));
                }
            }
        }
        let read = |incoming: &Incoming| incoming.received.len() - body_start;
        if let Some(length) = head.length {
            while read(self) < length && !limit.satisfied(read(self)) {
                if self.read_more()? == 0 {
                    return Err(eof(&format!("after {} of {length} body bytes", read(self))));
                }
            }
            let end = (body_start + length).min(self.received.len());
            return Ok(self.received[body_start..end].to_vec());
        }
        while !limit.satisfied(read(self)) && self.read_more()? != 0 {}
        Ok(self.received[body_start..].to_vec())
    }
}

/// The connection closed too early: `what` says where in the answer.
fn eof(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        format!("connection closed {what}"),
    )
}

/// Decodes a chunked body: what it holds so far, and whether it is whole.
fn dechunk(mut data: &[u8]) -> io::Result<(Vec<u8>, bool)> {
    let bad = || io::Error::new(io::ErrorKind::InvalidData, "a bad chunked body");
    let mut body = Vec::new();
    loop {
        let Some(line_end) = find(data, b"\r\n") else {
            return Ok((body, false));
        };
        let size_text = std::str::from_utf8(&data[..line_end]).map_err(|_| bad())?;
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| bad())?;
        data = &data[line_end + 2..];
        if size == 0 {
            // Trailers, then an empty line.
            let complete = find(data, b"\r\n").is_some();
            return Ok((body, complete));
        }
        if data.len() < size + 2 {
            body.extend_from_slice(&data[..size.min(data.len())]);
            return Ok((body, false));
        }
        body.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

/// Where `needle` first stands in `haystack`.
pub(crate) fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}
