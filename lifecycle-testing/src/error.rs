//! The kit's one error type: what went wrong, classified by an
//! [`ErrorKind`], with the service's last log lines when there is a service.

use std::fmt;
use std::io;

/// What kind of thing went wrong: [`Error::kind`].
///
/// A request's kinds ([`Refused`](Self::Refused), [`Reset`](Self::Reset),
/// [`TimedOut`](Self::TimedOut), [`UnexpectedAnswer`](Self::UnexpectedAnswer))
/// are how a `Load` counts a request that got no good
/// answer; the others say why a service could not be started or did not do
/// what the test waited for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A request's connection was refused: nothing listened, the request
    /// was never received.
    Refused,
    /// A request's connection broke under it: reset, aborted, a broken
    /// pipe, or closed before a whole answer came. The service may or may
    /// not have acted on it.
    Reset,
    /// A request outlasted its time-out, or a wait its deadline (the
    /// service's start, a probe's verdict, a log line, an exit, a kubelet
    /// session's condition).
    TimedOut,
    /// An answer came, but not one the test accepts: a status or a body it
    /// rejects ([`Error::unexpected_status`],
    /// [`Error::unexpected_answer`]), a malformed HTTP answer, a gRPC
    /// stream that ended.
    UnexpectedAnswer,
    /// The program could not be run (not found, not executable), or the
    /// kit could not make its temporary folder.
    Spawn,
    /// The service exited while the kit waited for something: its probe
    /// port, a probe's verdict, a log line.
    Exited,
    /// `--lifecycle-manifest` failed or printed what the kit cannot read,
    /// or the YAML given to [`Manifest::parse`](crate::Manifest::parse) is
    /// not a pod template the kit can follow (the message says what to
    /// fix).
    InvalidManifest,
    /// Anything else: another I/O error, a request's closure that panicked.
    Other,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorKind::Refused => "refused",
            ErrorKind::Reset => "reset",
            ErrorKind::TimedOut => "timed out",
            ErrorKind::UnexpectedAnswer => "unexpected answer",
            ErrorKind::Spawn => "spawn failed",
            ErrorKind::Exited => "exited",
            ErrorKind::InvalidManifest => "invalid manifest",
            ErrorKind::Other => "other",
        })
    }
}

/// Why something the kit did failed: a service that would not start or did
/// not do what was waited for, a manifest it cannot follow, a request that
/// got no good answer.
///
/// Its [`kind`](Self::kind) classifies it; its `Display` form is the
/// message, then the service's last log lines when a service was involved.
/// Its `Debug` form, which `unwrap` prints, is the same with the kind in
/// front.
///
/// An [`io::Error`] converts into one (classified by
/// [`from_io`](Self::from_io)), so a `Load`'s closure
/// written on `std::net` can use `?`; [`from_error`](Self::from_error)
/// classifies another client's error (reqwest's, hyper's…).
#[derive(Clone, PartialEq, Eq)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    log_tail: Vec<String>,
}

impl Error {
    /// An error of `kind`, described by `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error::with_log(kind, message, Vec::new())
    }

    /// An error showing `log_tail` as the service's last log lines.
    pub(crate) fn with_log(
        kind: ErrorKind,
        message: impl Into<String>,
        log_tail: Vec<String>,
    ) -> Error {
        Error {
            kind,
            message: message.into(),
            log_tail,
        }
    }

    /// An answer with an HTTP status the test does not accept
    /// ([`ErrorKind::UnexpectedAnswer`], "answered HTTP 503").
    pub fn unexpected_status(status: u16) -> Error {
        Error::new(
            ErrorKind::UnexpectedAnswer,
            format!("answered HTTP {status}"),
        )
    }

    /// An answer the test does not accept for another reason (its body),
    /// described by `message` ([`ErrorKind::UnexpectedAnswer`]).
    pub fn unexpected_answer(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::UnexpectedAnswer, message)
    }

    /// Classifies an I/O error: a refused connection is
    /// [`ErrorKind::Refused`]; a reset, aborted or broken connection or an
    /// unexpected end of file [`ErrorKind::Reset`]; a time-out
    /// [`ErrorKind::TimedOut`]; malformed data
    /// [`ErrorKind::UnexpectedAnswer`]; anything else [`ErrorKind::Other`].
    pub fn from_io(error: &io::Error) -> Error {
        let kind = match error.kind() {
            io::ErrorKind::ConnectionRefused => ErrorKind::Refused,
            io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::UnexpectedEof => ErrorKind::Reset,
            // A socket's read time-out is WouldBlock on Unix.
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => ErrorKind::TimedOut,
            io::ErrorKind::InvalidData => ErrorKind::UnexpectedAnswer,
            _ => ErrorKind::Other,
        };
        let message = match kind {
            // The system's words for a time-out ("Resource temporarily
            // unavailable") do not say so.
            ErrorKind::TimedOut => format!("timed out ({error})"),
            _ => error.to_string(),
        };
        Error::new(kind, message)
    }

    /// Classifies any client's error (reqwest's, hyper's…) by the first
    /// [`io::Error`] in its chain of sources, as [`from_io`](Self::from_io)
    /// does, [`ErrorKind::Other`] when there is none; the message is the
    /// whole chain.
    pub fn from_error(error: &(dyn std::error::Error + 'static)) -> Error {
        let mut message = error.to_string();
        let mut kind = None;
        let mut current = Some(error);
        while let Some(error) = current {
            if kind.is_none() {
                if let Some(io) = error.downcast_ref::<io::Error>() {
                    kind = Some(Error::from_io(io).kind);
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
        Error::new(kind.unwrap_or(ErrorKind::Other), message)
    }

    /// What kind of thing went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// What went wrong, without the service's log lines.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl From<io::Error> for Error {
    fn from(error: io::Error) -> Error {
        Error::from_io(&error)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if !self.log_tail.is_empty() {
            write!(f, "\nthe service's last log lines:")?;
            for line in &self.log_tail {
                write!(f, "\n  {line}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {self}", self.kind)
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
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
        let kind = |kind: io::ErrorKind| Error::from(io::Error::from(kind)).kind();
        assert_eq!(kind(io::ErrorKind::ConnectionRefused), ErrorKind::Refused);
        for reset in [
            io::ErrorKind::ConnectionReset,
            io::ErrorKind::ConnectionAborted,
            io::ErrorKind::BrokenPipe,
            io::ErrorKind::UnexpectedEof,
        ] {
            assert_eq!(kind(reset), ErrorKind::Reset, "{reset:?}");
        }
        for timed_out in [io::ErrorKind::TimedOut, io::ErrorKind::WouldBlock] {
            assert_eq!(kind(timed_out), ErrorKind::TimedOut, "{timed_out:?}");
        }
        assert_eq!(
            kind(io::ErrorKind::InvalidData),
            ErrorKind::UnexpectedAnswer
        );
        assert_eq!(kind(io::ErrorKind::PermissionDenied), ErrorKind::Other);
        assert!(Error::from(io::Error::from(io::ErrorKind::WouldBlock))
            .message()
            .starts_with("timed out ("));
        // Raw OS errors, as sockets report them.
        let os = |errno| Error::from(io::Error::from_raw_os_error(errno)).kind();
        assert_eq!(os(os_error::REFUSED), ErrorKind::Refused);
        assert_eq!(os(os_error::RESET), ErrorKind::Reset);
        assert_eq!(os(os_error::BROKEN), ErrorKind::Reset);
        assert_eq!(os(os_error::TIMED_OUT), ErrorKind::TimedOut);
        let status = Error::unexpected_status(503);
        assert_eq!(status.kind(), ErrorKind::UnexpectedAnswer);
        assert_eq!(status.message(), "answered HTTP 503");
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
        let error = Error::from_error(&Wrapper(reset));
        assert_eq!(error.kind(), ErrorKind::Reset);
        assert_eq!(
            error.message(),
            format!("error sending request: {reset_text}"),
            "{error}"
        );
        let plain = io::Error::other("no io source below");
        assert_eq!(Error::from_error(&Wrapper(plain)).kind(), ErrorKind::Other);
        assert_eq!(Error::from_error(&fmt::Error).kind(), ErrorKind::Other);
    }

    #[test]
    fn the_log_tail_follows_the_message_and_debug_names_the_kind() {
        let error = Error::with_log(
            ErrorKind::Exited,
            "my-service exited (exit code 2) before its probe server listened",
            vec!["invalid configuration: APP_ADDR".into()],
        );
        assert_eq!(
            error.to_string(),
            "my-service exited (exit code 2) before its probe server listened\n\
             the service's last log lines:\n  invalid configuration: APP_ADDR"
        );
        assert!(format!("{error:?}").starts_with("Exited: my-service exited"));
        assert_eq!(
            error.message(),
            "my-service exited (exit code 2) before its probe server listened"
        );
    }
}
