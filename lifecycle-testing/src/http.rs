//! The kit's HTTP client for the application: one request on a new
//! connection, for a `Load`'s closure or any request of a
//! test. [`http_get`] sends a `GET`; an [`HttpRequest`] any method, with
//! headers and a body. Any other client will do; [`Error::from_error`]
//! classifies its errors.

use std::net::SocketAddr;
use std::time::Duration;

use crate::error::Error;
use crate::wire::{self, BodyLimit, Outgoing};

/// The largest answer the client reads.
const MAX_ANSWER: usize = 16 * 1024 * 1024;

/// The `User-Agent` the client sends, unless told otherwise.
const USER_AGENT: &str = "lifecycle-testing";

/// Sends `GET path` to `addr` on a new connection and reads the whole
/// answer, all within `timeout`: [`HttpRequest::get`]`(path)`, sent.
///
/// - `addr`: where the application listens
///   ([`Service::app_addr`](crate::Service::app_addr) finds it when it
///   binds port 0 through lifecycle's listener).
/// - `path`: the request target, query included (`/items?page=2`).
/// - `timeout`: the bound of the whole exchange, from connecting to the
///   last byte of the answer.
///
/// Returns the status and the body, as [`HttpRequest::send`] does: any
/// status is an answer, judging it is the caller's business
/// ([`Error::unexpected_status`]).
///
/// # Panics
/// When `path` does not start with `/`, or holds a space or a control
/// character.
pub fn http_get(addr: SocketAddr, path: &str, timeout: Duration) -> Result<(u16, String), Error> {
    HttpRequest::get(path).send(addr, timeout)
}

/// One HTTP/1.1 request to the application, with any method, headers and
/// a body: built once, sent as often as wanted (from a
/// `Load`'s closure, say), each time on a new connection
/// (`Connection: close`).
///
/// ```no_run
/// use std::time::Duration;
///
/// use lifecycle_testing::{Error, HttpRequest, Service};
///
/// # fn main() -> Result<(), Error> {
/// # let binary = "my-service";
/// let service = Service::builder(binary).env("APP_ADDR", "127.0.0.1:0").start()?;
/// let app = service.app_addr()?;
///
/// // axum's `Json` extractor wants the content type.
/// let create = HttpRequest::post("/items")
///     .header("Content-Type", "application/json")
///     .body(r#"{"name":"lamp"}"#);
/// match create.send(app, Duration::from_secs(2))? {
///     (201, _) => {}
///     (status, body) => panic!("POST /items answered {status}: {body}"),
/// }
/// # Ok(())
/// # }
/// ```
///
/// The kit sends `Host` (the address), `User-Agent: lifecycle-testing` and
/// `Accept: */*` unless [`header`](Self::header) sets them, the body's
/// `Content-Length` (for `POST`, `PUT` and `PATCH` even when it is empty),
/// and `Connection: close`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl HttpRequest {
    /// A request of `method` (`GET`, `OPTIONS`, any token) for `path`, the
    /// request target, query included (`/items?page=2`); no headers of its
    /// own, no body.
    ///
    /// # Panics
    /// When `method` is not an HTTP token (empty, or with a space or a
    /// separator), or `path` does not start with `/` or holds a space or a
    /// control character.
    pub fn new(method: &str, path: &str) -> HttpRequest {
        assert!(
            is_token(method),
            "HttpRequest: {method:?} is not an HTTP method (a token: letters, digits, `!#$%&'*+-.^_|~`)"
        );
        assert!(
            path.starts_with('/') && !path.chars().any(|c| c == ' ' || c.is_control()),
            "HttpRequest: the path {path:?} must start with `/` and hold no space or control \
             character (percent-encode them)"
        );
        HttpRequest {
            method: method.to_owned(),
            path: path.to_owned(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// `GET path` (see [`new`](Self::new)).
    pub fn get(path: &str) -> HttpRequest {
        HttpRequest::new("GET", path)
    }

    /// `POST path` (see [`new`](Self::new)).
    pub fn post(path: &str) -> HttpRequest {
        HttpRequest::new("POST", path)
    }

    /// `PUT path` (see [`new`](Self::new)).
    pub fn put(path: &str) -> HttpRequest {
        HttpRequest::new("PUT", path)
    }

    /// `DELETE path` (see [`new`](Self::new)).
    pub fn delete(path: &str) -> HttpRequest {
        HttpRequest::new("DELETE", path)
    }

    /// Adds the header `name: value` (`Content-Type: application/json`,
    /// `Authorization: Bearer …`); one named `Host`, `User-Agent` or
    /// `Accept` replaces the kit's.
    ///
    /// # Panics
    /// When `name` is not an HTTP token, `value` holds a line break or
    /// another control character than a tab, or `name` is one the kit
    /// sets from the request itself: `Content-Length` (set the
    /// [`body`](Self::body)), `Transfer-Encoding` or `Connection`.
    #[must_use]
    pub fn header(mut self, name: &str, value: &str) -> HttpRequest {
        assert!(
            is_token(name),
            "HttpRequest::header: {name:?} is not a header name (a token: letters, digits, `!#$%&'*+-.^_|~`)"
        );
        assert!(
            !value.chars().any(|c| c.is_control() && c != '\t'),
            "HttpRequest::header: the value of {name} holds a line break or a control character: {value:?}"
        );
        for (kit, why) in [
            (
                "Content-Length",
                "the kit sets it from the body: set the body",
            ),
            (
                "Transfer-Encoding",
                "the kit sends the body whole, with its Content-Length",
            ),
            ("Connection", "the kit sends `Connection: close`"),
        ] {
            assert!(
                !name.eq_ignore_ascii_case(kit),
                "HttpRequest::header: {name} is not set by hand: {why}"
            );
        }
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Sets the body: text, JSON, bytes (anything that converts into
    /// `Vec<u8>`), sent as is with its `Content-Length`. Say what it is
    /// with a `Content-Type` [`header`](Self::header).
    #[must_use]
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> HttpRequest {
        self.body = body.into();
        self
    }

    /// Sends the request to `addr` on a new connection and reads the whole
    /// answer, all within `timeout` (from connecting to the last byte of
    /// the answer): the status and the body (`Content-Length`, chunked, or
    /// up to the end of the connection), lossily decoded as UTF-8.
    ///
    /// Any status is an answer: judging it is the caller's business
    /// ([`Error::unexpected_status`]). Errors are classified as
    /// [`Error::from_io`] says: a connection closed before a whole answer
    /// came is [`ErrorKind::Reset`](crate::ErrorKind::Reset), a malformed
    /// answer or one over 16 MiB
    /// [`ErrorKind::UnexpectedAnswer`](crate::ErrorKind::UnexpectedAnswer).
    pub fn send(&self, addr: SocketAddr, timeout: Duration) -> Result<(u16, String), Error> {
        let request = Outgoing {
            method: &self.method,
            path: &self.path,
            user_agent: USER_AGENT,
            headers: &self.headers,
            body: &self.body,
        };
        wire::exchange(addr, &request, timeout, BodyLimit::Refuse(MAX_ANSWER))
            .map(|(status, body)| (status, String::from_utf8_lossy(&body).into_owned()))
            .map_err(|error| Error::from_io(&error))
    }
}

/// Whether `text` is an HTTP token (RFC 9110): a method or a header name.
fn is_token(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::sync::mpsc;
    use std::time::Instant;

    use crate::error::ErrorKind;
    use crate::wire::find;

    use super::*;

    /// A one-shot server: answers each connection with the next of
    /// `answers` (raw bytes), then closes it; each request it read (head
    /// and `Content-Length` body) comes out of the receiver.
    fn serve(answers: Vec<Vec<u8>>) -> (SocketAddr, mpsc::Receiver<String>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (requests, received) = mpsc::channel();
        std::thread::spawn(move || {
            for answer in answers {
                let (mut stream, _) = listener.accept().unwrap();
                let mut request = Vec::new();
                let mut chunk = [0u8; 1024];
                let complete = |request: &[u8]| {
                    let Some(end) = find(request, b"\r\n\r\n") else {
                        return false;
                    };
                    let head = String::from_utf8_lossy(&request[..end]).to_ascii_lowercase();
                    let length = head
                        .lines()
                        .find_map(|line| line.strip_prefix("content-length: "))
                        .map_or(0, |n| n.parse::<usize>().unwrap());
                    request.len() >= end + 4 + length
                };
                while !complete(&request) {
                    let read = stream.read(&mut chunk).unwrap();
                    if read == 0 {
                        break;
                    }
                    request.extend_from_slice(&chunk[..read]);
                }
                let _ = requests.send(String::from_utf8_lossy(&request).into_owned());
                let _ = stream.write_all(&answer);
            }
        });
        (addr, received)
    }

    #[test]
    fn http_get_reads_every_framing_and_classifies_a_cut_answer() {
        let (addr, _) = serve(vec![
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello and more".to_vec(),
            b"HTTP/1.1 503 Service Unavailable\r\nTransfer-Encoding: chunked\r\n\r\n4;x=y\r\ndown\r\n3\r\n!!!\r\n0\r\n\r\n"
                .to_vec(),
            b"HTTP/1.0 200 OK\r\n\r\nto the end".to_vec(),
            b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\ncut".to_vec(),
            Vec::new(),
        ]);
        let timeout = Duration::from_secs(5);
        assert_eq!(http_get(addr, "/", timeout), Ok((200, "hello".into())));
        assert_eq!(http_get(addr, "/", timeout), Ok((503, "down!!!".into())));
        assert_eq!(http_get(addr, "/", timeout), Ok((200, "to the end".into())));
        let cut = http_get(addr, "/", timeout).unwrap_err();
        assert_eq!(cut.kind(), ErrorKind::Reset, "{cut}");
        assert!(cut.message().contains("after 3 of 50 body bytes"), "{cut}");
        let nothing = http_get(addr, "/", timeout).unwrap_err();
        assert_eq!(nothing.kind(), ErrorKind::Reset, "{nothing}");
        assert!(nothing.message().contains("before an answer"), "{nothing}");
    }

    #[test]
    fn http_get_classifies_refusals_and_time_outs() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let refused = http_get(closed, "/", Duration::from_secs(1)).unwrap_err();
        assert_eq!(refused.kind(), ErrorKind::Refused, "{refused}");

        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let started = Instant::now();
        let timed_out = http_get(
            silent.local_addr().unwrap(),
            "/",
            Duration::from_millis(200),
        )
        .unwrap_err();
        assert_eq!(timed_out.kind(), ErrorKind::TimedOut, "{timed_out}");
        assert!(timed_out.message().starts_with("timed out"), "{timed_out}");
        assert!(started.elapsed() < Duration::from_secs(2));
        drop(silent);
    }

    #[test]
    fn a_request_sends_its_method_headers_and_body() {
        let (addr, requests) = serve(vec![
            b"HTTP/1.1 201 Created\r\nContent-Length: 7\r\n\r\ncreated".to_vec(),
            b"HTTP/1.1 200 OK\r\nContent-Length: 40\r\n\r\n".to_vec(),
            b"HTTP/1.1 204 No Content\r\n\r\n".to_vec(),
        ]);
        let timeout = Duration::from_secs(5);
        let create = HttpRequest::post("/items?x=1")
            .header("Content-Type", "application/json")
            .header("user-agent", "my-test")
            .body(r#"{"name":"lamp"}"#);
        assert_eq!(create.send(addr, timeout), Ok((201, "created".into())));
        let sent = requests.recv().unwrap();
        assert!(sent.starts_with("POST /items?x=1 HTTP/1.1\r\n"), "{sent}");
        assert!(
            sent.contains("\r\nContent-Type: application/json\r\n"),
            "{sent}"
        );
        assert!(sent.contains("\r\nuser-agent: my-test\r\n"), "{sent}");
        assert!(!sent.contains("lifecycle-testing"), "replaced: {sent}");
        assert!(sent.contains("\r\nContent-Length: 15\r\n"), "{sent}");
        assert!(sent.contains("\r\nConnection: close\r\n"), "{sent}");
        assert!(sent.ends_with("\r\n\r\n{\"name\":\"lamp\"}"), "{sent}");

        // A HEAD's answer has a length and no body.
        let head = HttpRequest::new("HEAD", "/items").send(addr, timeout);
        assert_eq!(head, Ok((200, String::new())));
        let sent = requests.recv().unwrap();
        assert!(sent.starts_with("HEAD /items HTTP/1.1\r\n"), "{sent}");
        assert!(!sent.contains("Content-Length"), "{sent}");

        // A PUT with no body still says so.
        let put = HttpRequest::put("/items/1").send(addr, timeout);
        assert_eq!(put, Ok((204, String::new())));
        let sent = requests.recv().unwrap();
        assert!(sent.contains("\r\nContent-Length: 0\r\n"), "{sent}");
    }

    #[test]
    fn a_malformed_request_is_refused_naming_what_to_fix() {
        let message = |build: fn() -> HttpRequest| {
            let panic = std::panic::catch_unwind(build).unwrap_err();
            panic.downcast_ref::<String>().cloned().unwrap()
        };
        assert!(message(|| HttpRequest::get("items")).contains("must start with `/`"));
        assert!(message(|| HttpRequest::get("/a b")).contains("no space"));
        assert!(message(|| HttpRequest::new("GET /", "/")).contains("not an HTTP method"));
        assert!(
            message(|| HttpRequest::get("/").header("Content-Length", "3"))
                .contains("Content-Length is not set by hand: the kit sets it from the body")
        );
        assert!(
            message(|| HttpRequest::get("/").header("X-A", "b\r\nX-B: c"))
                .contains("the value of X-A holds a line break")
        );
        assert!(message(|| HttpRequest::get("/").header("X A", "b")).contains("not a header name"));
    }
}
