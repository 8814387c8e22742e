//! What the example's tests share: the service started against a Redis of
//! the test's own, and a small HTTP/1.1 client for its JSON API that
//! either opens a new connection per request or keeps one alive.

#![allow(dead_code)] // each test file uses its own part of it

use std::collections::BTreeMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use lifecycle_testing::{RequestError, Service, ServiceBuilder};
use lifecycle_tests::fixture;
use lifecycle_tests::redis::RedisServer;

pub const AXUM_REDIS: &str = env!("CARGO_BIN_EXE_axum-redis");

/// How long the application may take to log its address.
pub const START_DEADLINE: Duration = Duration::from_secs(15);

/// How long one request may take before it counts as failed.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// The example on a free application port (and, by the kit, a free probe
/// port), talking to `redis`.
pub fn builder(redis: &RedisServer) -> ServiceBuilder {
    fixture(AXUM_REDIS)
        .env("APP_ADDR", "127.0.0.1:0")
        .env("REDIS_URL", redis.url())
}

/// The application's address, from the line it logs once it listens
/// (`serving on http://ADDR; Redis at URL`).
pub fn app_addr(service: &Service) -> SocketAddr {
    let line = service
        .wait_for_log("serving on http://", START_DEADLINE)
        .unwrap();
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split(';').next())
        .unwrap_or_default();
    addr.parse()
        .unwrap_or_else(|_| panic!("no address in {line:?}"))
}

/// The hash `key` in `redis`, field by field.
pub fn hash(redis: &RedisServer, key: &str) -> BTreeMap<String, String> {
    let reply = redis.command(&["HGETALL", key]);
    let mut lines = reply.lines();
    let header = lines.next().unwrap_or_default();
    assert!(header.starts_with('*'), "HGETALL {key}: {reply:?}");
    let fields: Vec<&str> = lines.collect();
    assert!(fields.len().is_multiple_of(2), "HGETALL {key}: {reply:?}");
    fields
        .chunks(2)
        .map(|pair| (pair[0].to_owned(), pair[1].to_owned()))
        .collect()
}

/// An answer of the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub body: String,
    /// The server closes the connection after it (`Connection: close`).
    pub closes: bool,
}

/// A client of the API. With `keep_alive` it sends its requests one after
/// another on one connection, opening a new one only when the server said
/// it closes the last (`Connection: close`) or the last one failed;
/// without, each request has a new connection and says `Connection: close`.
pub struct Client {
    addr: SocketAddr,
    keep_alive: bool,
    connection: Option<BufReader<TcpStream>>,
    /// Whether the last request went on a connection that had carried
    /// one before.
    pub reused: bool,
}

impl Client {
    /// A new connection per request.
    pub fn new(addr: SocketAddr) -> Client {
        Client {
            addr,
            keep_alive: false,
            connection: None,
            reused: false,
        }
    }

    /// One connection kept alive.
    pub fn keep_alive(addr: SocketAddr) -> Client {
        Client {
            keep_alive: true,
            ..Client::new(addr)
        }
    }

    pub fn get(&mut self, path: &str) -> Result<Answer, RequestError> {
        self.request("GET", path, None)
    }

    /// `PUT path` with `{"value": VALUE}`.
    pub fn put(&mut self, path: &str, value: &str) -> Result<Answer, RequestError> {
        assert!(
            !value.contains(['"', '\\']) && !value.chars().any(char::is_control),
            "a value that needs no JSON escaping: {value:?}"
        );
        self.request("PUT", path, Some(&format!(r#"{{"value":"{value}"}}"#)))
    }

    fn request(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&str>,
    ) -> Result<Answer, RequestError> {
        self.reused = self.connection.is_some();
        let result = self.exchange(method, path, body);
        match &result {
            Ok(answer) if self.keep_alive && !answer.closes => {}
            _ => self.connection = None,
        }
        result.map_err(|error| {
            let error = RequestError::from_io(&error);
            let on = if self.reused { "a reused" } else { "a new" };
            RequestError::new(
                error.kind(),
                format!("{} (on {on} connection)", error.message()),
            )
        })
    }

    fn exchange(&mut self, method: &str, path: &str, body: Option<&str>) -> io::Result<Answer> {
        if self.connection.is_none() {
            let stream = TcpStream::connect_timeout(&self.addr, REQUEST_TIMEOUT)?;
            stream.set_nodelay(true)?;
            stream.set_read_timeout(Some(REQUEST_TIMEOUT))?;
            stream.set_write_timeout(Some(REQUEST_TIMEOUT))?;
            self.connection = Some(BufReader::new(stream));
        }
        let connection = self.connection.as_mut().unwrap();
        let mut request = format!("{method} {path} HTTP/1.1\r\nHost: axum-redis\r\n");
        if !self.keep_alive {
            request.push_str("Connection: close\r\n");
        }
        if let Some(body) = body {
            request.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            ));
        } else {
            request.push_str("\r\n");
        }
        connection.get_mut().write_all(request.as_bytes())?;
        read_answer(connection)
    }
}

/// Reads one answer with a `Content-Length` body (what axum sends for
/// JSON). A connection closed before the whole answer is an unexpected
/// end of file, which the load counts as a reset.
fn read_answer(connection: &mut BufReader<TcpStream>) -> io::Result<Answer> {
    let mut line = String::new();
    let mut next_line = |line: &mut String| -> io::Result<()> {
        line.clear();
        if connection.read_line(line)? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the connection closed before a whole answer",
            ));
        }
        Ok(())
    };
    next_line(&mut line)?;
    let malformed = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_owned());
    let mut words = line.split_whitespace();
    let version = words.next().unwrap_or_default().to_owned();
    let status: u16 = words
        .next()
        .and_then(|status| status.parse().ok())
        .ok_or_else(|| malformed(&format!("a malformed status line {line:?}")))?;
    let mut length = None;
    let mut closes = version == "HTTP/1.0";
    loop {
        next_line(&mut line)?;
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header
            .split_once(':')
            .ok_or_else(|| malformed(&format!("a malformed header {header:?}")))?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = value.parse::<usize>().ok();
        } else if name.eq_ignore_ascii_case("connection") {
            closes = value.eq_ignore_ascii_case("close");
        }
    }
    let length = length.ok_or_else(|| malformed("an answer without Content-Length"))?;
    let mut body = vec![0; length];
    connection.read_exact(&mut body)?;
    Ok(Answer {
        status,
        body: String::from_utf8_lossy(&body).into_owned(),
        closes,
    })
}

/// A TCP relay in front of Redis that plays a network partition, the
/// outage a killed `redis-server` cannot: while cut, nothing passes either
/// way on the connections it relays, which stay open without a reset (as
/// when a node is lost or a network path drops packets), and the
/// connections opened meanwhile are accepted and never answered. Once
/// mended, new connections pass again; those cut stay dead, as a TCP
/// connection to a replaced node does.
pub struct Partition {
    addr: SocketAddr,
    state: std::sync::Arc<RelayState>,
}

#[derive(Default)]
struct RelayState {
    /// Whether new connections are held instead of relayed.
    cut: std::sync::atomic::AtomicBool,
    /// How many cuts there were: a connection relayed before the last one
    /// is dead.
    cuts: std::sync::atomic::AtomicU64,
    stopped: std::sync::atomic::AtomicBool,
    /// The connections accepted while cut, held open unanswered.
    held: std::sync::Mutex<Vec<TcpStream>>,
}

impl Partition {
    /// Relays 127.0.0.1:`upstream` on a free port of its own.
    pub fn new(upstream: u16) -> Partition {
        use std::sync::atomic::Ordering::SeqCst;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let state = std::sync::Arc::new(RelayState::default());
        let relay = state.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if relay.stopped.load(SeqCst) {
                    return;
                }
                let Ok(client) = client else { continue };
                if relay.cut.load(SeqCst) {
                    relay.held.lock().unwrap().push(client);
                    continue;
                }
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue; // dropped: the client sees the connection close
                };
                let born = relay.cuts.load(SeqCst);
                for (from, to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    let relay = relay.clone();
                    std::thread::spawn(move || pump(from, to, born, &relay));
                }
            }
        });
        Partition { addr, state }
    }

    /// `redis://ADDR`, for `REDIS_URL`.
    pub fn url(&self) -> String {
        format!("redis://{}", self.addr)
    }

    /// From now on nothing passes.
    pub fn cut(&self) {
        use std::sync::atomic::Ordering::SeqCst;
        self.state.cuts.fetch_add(1, SeqCst);
        self.state.cut.store(true, SeqCst);
    }

    /// New connections pass again; the ones cut stay dead.
    pub fn mend(&self) {
        self.state
            .cut
            .store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Copies `from` to `to` until either closes; once the relay was cut after
/// this connection was made, reads and drops instead, so that the sender
/// never learns.
fn pump(mut from: TcpStream, mut to: TcpStream, born: u64, relay: &RelayState) {
    use std::sync::atomic::Ordering::SeqCst;
    // A read time-out, only to notice that the relay was dropped.
    let _ = from.set_read_timeout(Some(Duration::from_millis(100)));
    let mut buffer = [0u8; 16 * 1024];
    while !relay.stopped.load(SeqCst) {
        match from.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => {
                let dead = relay.cuts.load(SeqCst) > born;
                if !dead && to.write_all(&buffer[..read]).is_err() {
                    break;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(_) => break,
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Write);
}

impl Drop for Partition {
    fn drop(&mut self) {
        use std::sync::atomic::Ordering::SeqCst;
        self.state.stopped.store(true, SeqCst);
        self.state.held.lock().unwrap().clear();
        // Wakes the accept loop so that it sees the stop.
        let _ = TcpStream::connect(self.addr);
    }
}
