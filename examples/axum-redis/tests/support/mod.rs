//! What the example's tests share: the service started against a Redis of
//! the test's own, and a small HTTP/1.1 client for its JSON API that
//! either opens a new connection per request or keeps one alive.

#![allow(dead_code)] // each test file uses its own part of it

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use lifecycle_testing::{Error, ServiceBuilder};
use lifecycle_tests::redis::RedisServer;
pub use lifecycle_tests::Answer;
use lifecycle_tests::{fixture, KeepAliveClient};

pub const AXUM_REDIS: &str = env!("CARGO_BIN_EXE_axum-redis");

/// How long one request may take before it counts as failed.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// The example on a free application port (and, by the kit, a free probe
/// port), talking to `redis`.
pub fn builder(redis: &RedisServer) -> ServiceBuilder {
    fixture(AXUM_REDIS)
        .env("APP_ADDR", "127.0.0.1:0")
        .env("REDIS_URL", redis.url())
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

/// A client of the API. With `keep_alive` it sends its requests one after
/// another on one connection, opening a new one only when the server said
/// it closes the last (`Connection: close`) or the last one failed;
/// without, each request has a new connection and says `Connection: close`.
pub struct Client {
    connection: KeepAliveClient,
    keep_alive: bool,
}

impl Client {
    /// A new connection per request.
    pub fn new(addr: SocketAddr) -> Client {
        Client {
            connection: KeepAliveClient::new(addr, REQUEST_TIMEOUT),
            keep_alive: false,
        }
    }

    /// One connection kept alive.
    pub fn keep_alive(addr: SocketAddr) -> Client {
        Client {
            keep_alive: true,
            ..Client::new(addr)
        }
    }

    /// Whether the last request went on a connection that had carried one
    /// before.
    pub fn reused(&self) -> bool {
        self.connection.reused
    }

    pub fn get(&mut self, path: &str) -> Result<Answer, Error> {
        self.request("GET", path, None)
    }

    /// `PUT path` with `{"value": VALUE}`.
    pub fn put(&mut self, path: &str, value: &str) -> Result<Answer, Error> {
        assert!(
            !value.contains(['"', '\\']) && !value.chars().any(char::is_control),
            "a value that needs no JSON escaping: {value:?}"
        );
        self.request("PUT", path, Some(&format!(r#"{{"value":"{value}"}}"#)))
    }

    fn request(&mut self, method: &str, path: &str, body: Option<&str>) -> Result<Answer, Error> {
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
        let result = self.connection.send(request.as_bytes());
        if !self.keep_alive {
            self.connection.close();
        }
        result.map_err(|error| Error::from_io(&error))
    }
}
