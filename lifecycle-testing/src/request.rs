//! What became of one request: an answer, or an error the kit can count
//! ([`ErrorKind`], [`RequestError`]), and [`http_get`], a small client for
//! a `Load`'s closure or any test of the application.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use crate::http::{self, BodyLimit};

/// The largest answer [`http_get`] reads.
const MAX_ANSWER: usize = 16 * 1024 * 1024;

/// What became of a request that got no answer, as the load counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The connection was refused: nothing listened, the request was
    /// never received.
    Refused,
    /// The connection broke under the request: reset, broken pipe, or
    /// closed before a whole answer came. The service may or may not have
    /// acted on it.
    Reset,
    /// Anything else: a time-out, a malformed answer, an unexpected status.
    Failed,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorKind::Refused => "refused",
            ErrorKind::Reset => "reset",
            ErrorKind::Failed => "failed",
        })
    }
}

/// Why one request of the load got no (good) answer.
///
/// An [`io::Error`] converts into one, classified by its kind, so a closure
/// written on `std::net` can use `?`; [`from_error`](Self::from_error)
/// classifies another client's error by the I/O error in its chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestError {
    pub(crate) kind: ErrorKind,
    pub(crate) message: String,
}

impl RequestError {
    /// An error of `kind`, described by `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> RequestError {
        RequestError {
            kind,
            message: message.into(),
        }
    }

    /// The connection was refused.
    pub fn refused(message: impl Into<String>) -> RequestError {
        RequestError::new(ErrorKind::Refused, message)
    }

    /// The connection broke under the request.
    pub fn reset(message: impl Into<String>) -> RequestError {
        RequestError::new(ErrorKind::Reset, message)
    }

    /// Any other failure.
    pub fn failed(message: impl Into<String>) -> RequestError {
        RequestError::new(ErrorKind::Failed, message)
    }

    /// An answer with a status the closure does not accept (a failure).
    pub fn status(status: u16) -> RequestError {
        RequestError::failed(format!("answered HTTP {status}"))
    }

    /// Classifies an I/O error: refused; reset, aborted, broken pipe or an
    /// unexpected end of file are [`ErrorKind::Reset`]; anything else,
    /// time-outs included, [`ErrorKind::Failed`].
    pub fn from_io(error: &io::Error) -> RequestError {
        let kind = match error.kind() {
            io::ErrorKind::ConnectionRefused => ErrorKind::Refused,
            io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::UnexpectedEof => ErrorKind::Reset,
            _ => ErrorKind::Failed,
        };
        let message = match error.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
                format!("timed out ({error})")
            }
            _ => error.to_string(),
        };
        RequestError { kind, message }
    }

    /// Classifies any client's error (reqwest's, hyper's…) by the first
    /// [`io::Error`] in its chain of sources, [`ErrorKind::Failed`] when
    /// there is none; the message is the whole chain.
    pub fn from_error(error: &(dyn std::error::Error + 'static)) -> RequestError {
        let mut message = error.to_string();
        let mut kind = None;
        let mut current = Some(error);
        while let Some(error) = current {
            if kind.is_none() {
                if let Some(io) = error.downcast_ref::<io::Error>() {
                    kind = Some(RequestError::from_io(io).kind);
                }
            }
            current = error.source();
            if let Some(source) = current {
                let text = source.to_string();
                if !message.contains(&text) {
                    message = format!("{message}: {text}");
                }
            }
        }
        RequestError {
            kind: kind.unwrap_or(ErrorKind::Failed),
            message,
        }
    }

    /// How the load counts it.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// What went wrong.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl From<io::Error> for RequestError {
    fn from(error: io::Error) -> RequestError {
        RequestError::from_io(&error)
    }
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)
    }
}

impl std::error::Error for RequestError {}

/// Sends `GET path` to `addr` on a new connection (`Connection: close`)
/// and reads the whole answer, all within `timeout`: the status and the
/// body (`Content-Length`, chunked, or up to the end of the connection),
/// lossily decoded. A small client for a `Load`'s closure (on Unix) or a
/// test's own requests; any other client will do.
///
/// Errors are classified as [`RequestError::from_io`] says; a connection
/// closed before a whole answer came is [`ErrorKind::Reset`]. Any status is
/// an answer: judging it is the caller's business (see
/// [`RequestError::status`]).
pub fn http_get(
    addr: SocketAddr,
    path: &str,
    timeout: Duration,
) -> Result<(u16, String), RequestError> {
    http::get(
        addr,
        path,
        timeout,
        "lifecycle-testing",
        BodyLimit::Refuse(MAX_ANSWER),
    )
    .map(|(status, body)| (status, String::from_utf8_lossy(&body).into_owned()))
    .map_err(|error| RequestError::from_io(&error))
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::time::Instant;

    use crate::http::find;

    use super::*;

    /// Raw OS error codes, as sockets report them.
    #[cfg(unix)]
    mod os_error {
        pub(super) const REFUSED: i32 = libc::ECONNREFUSED;
        pub(super) const RESET: i32 = libc::ECONNRESET;
        /// Writing to a connection the peer has closed.
        pub(super) const BROKEN: i32 = libc::EPIPE;
        pub(super) const TIMED_OUT: i32 = libc::ETIMEDOUT;
    }

    /// Winsock's codes (winsock2.h), which std reads as the same kinds.
    #[cfg(windows)]
    mod os_error {
        /// WSAECONNREFUSED.
        pub(super) const REFUSED: i32 = 10061;
        /// WSAECONNRESET.
        pub(super) const RESET: i32 = 10054;
        /// WSAECONNABORTED: what Windows says of a connection the peer has
        /// closed under a write.
        pub(super) const BROKEN: i32 = 10053;
        /// WSAETIMEDOUT.
        pub(super) const TIMED_OUT: i32 = 10060;
    }

    #[test]
    fn io_errors_are_classified() {
        let kind = |kind: io::ErrorKind| RequestError::from(io::Error::from(kind)).kind();
        assert_eq!(kind(io::ErrorKind::ConnectionRefused), ErrorKind::Refused);
        for reset in [
            io::ErrorKind::ConnectionReset,
            io::ErrorKind::ConnectionAborted,
            io::ErrorKind::BrokenPipe,
            io::ErrorKind::UnexpectedEof,
        ] {
            assert_eq!(kind(reset), ErrorKind::Reset, "{reset:?}");
        }
        for failed in [
            io::ErrorKind::TimedOut,
            io::ErrorKind::WouldBlock,
            io::ErrorKind::InvalidData,
            io::ErrorKind::PermissionDenied,
        ] {
            assert_eq!(kind(failed), ErrorKind::Failed, "{failed:?}");
        }
        let timed_out = RequestError::from(io::Error::from(io::ErrorKind::WouldBlock));
        assert!(timed_out.message().starts_with("timed out"), "{timed_out}");
        // Raw OS errors, as sockets report them.
        let os = |errno| RequestError::from(io::Error::from_raw_os_error(errno)).kind();
        assert_eq!(os(os_error::REFUSED), ErrorKind::Refused);
        assert_eq!(os(os_error::RESET), ErrorKind::Reset);
        assert_eq!(os(os_error::BROKEN), ErrorKind::Reset);
        assert_eq!(os(os_error::TIMED_OUT), ErrorKind::Failed);
        assert_eq!(RequestError::status(503).kind(), ErrorKind::Failed);
        assert_eq!(RequestError::status(503).message(), "answered HTTP 503");
    }

    #[derive(Debug)]
    struct Wrapper(io::Error);

    impl fmt::Display for Wrapper {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("error sending request")
        }
    }

    impl std::error::Error for Wrapper {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn another_clients_errors_are_classified_by_their_io_source() {
        let reset = io::Error::from_raw_os_error(os_error::RESET);
        // The system's own words for it ("Connection reset by peer" on
        // Linux).
        let reset_text = reset.to_string();
        let error = RequestError::from_error(&Wrapper(reset));
        assert_eq!(error.kind(), ErrorKind::Reset);
        assert_eq!(
            error.message(),
            format!("error sending request: {reset_text}"),
            "{error}"
        );
        let plain = io::Error::other("no io source below");
        let error = RequestError::from_error(&Wrapper(plain));
        assert_eq!(error.kind(), ErrorKind::Failed);
        let fmt_error = RequestError::from_error(&fmt::Error);
        assert_eq!(fmt_error.kind(), ErrorKind::Failed);
    }

    /// A one-shot server: answers each connection with the next of
    /// `answers` (raw bytes), then closes it.
    fn serve(answers: Vec<Vec<u8>>) -> SocketAddr {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for answer in answers {
                let (mut stream, _) = listener.accept().unwrap();
                let mut request = Vec::new();
                let mut chunk = [0u8; 1024];
                while find(&request, b"\r\n\r\n").is_none() {
                    let read = stream.read(&mut chunk).unwrap();
                    if read == 0 {
                        break;
                    }
                    request.extend_from_slice(&chunk[..read]);
                }
                let _ = stream.write_all(&answer);
            }
        });
        addr
    }

    #[test]
    fn http_get_reads_every_framing_and_classifies_a_cut_answer() {
        let addr = serve(vec![
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
        assert_eq!(timed_out.kind(), ErrorKind::Failed, "{timed_out}");
        assert!(timed_out.message().starts_with("timed out"), "{timed_out}");
        assert!(started.elapsed() < Duration::from_secs(2));
        drop(silent);
    }
}
