//! Unix: SIGTERM, SIGINT and the configured stop signal. Each handler
//! (signal-hook's, async-signal-safe) only writes a byte to a socket of its
//! own signal; the signal thread reads them, so a signal that came before
//! it ran is still there to act on, and two signals are two bytes.

use std::io;
use std::os::unix::net::UnixStream as StdUnixStream;

use tokio::net::UnixStream;

use super::event::StopEvent;
use crate::config::StopSignal;
use crate::exit::Exit;

/// The handlers' read ends: one byte on `term` for each SIGTERM, on `int`
/// for each SIGINT, on `other` for each of the configured stop signal when
/// it is neither, kept until read.
pub(crate) struct Handlers {
    term: StdUnixStream,
    int: StdUnixStream,
    other: Option<(StopSignal, StdUnixStream)>,
}

/// Installs the handlers of SIGTERM, SIGINT and `stop_signal`: from now on
/// none takes the default action. A few system calls, nothing else.
pub(crate) fn install(stop_signal: StopSignal) -> io::Result<Handlers> {
    let other = match stop_signal {
        StopSignal::Sigterm | StopSignal::Sigint => None,
        other => Some((other, handler(other)?)),
    };
    Ok(Handlers {
        term: handler(StopSignal::Sigterm)?,
        int: handler(StopSignal::Sigint)?,
        other,
    })
}

impl Handlers {
    /// The stop signal installed besides SIGTERM and SIGINT, or SIGTERM.
    pub(crate) fn stop_signal(&self) -> StopSignal {
        self.other
            .as_ref()
            .map_or(StopSignal::Sigterm, |(signal, _)| *signal)
    }
}

/// Installs the handler of `signal`, which writes to the socket returned.
fn handler(signal: StopSignal) -> io::Result<StdUnixStream> {
    let (read, write) = StdUnixStream::pair()?;
    signal_hook::low_level::pipe::register(signal.number(), write)?;
    Ok(read)
}

/// The handlers' sockets on the signal thread's runtime.
pub(crate) struct Received {
    term: UnixStream,
    int: UnixStream,
    other: Option<(StopSignal, UnixStream)>,
}

impl Received {
    /// Must be called inside the runtime that will poll [`Received::next`].
    pub(crate) fn new(handlers: Handlers) -> io::Result<Received> {
        let on_runtime = |socket: StdUnixStream| {
            socket.set_nonblocking(true)?;
            UnixStream::from_std(socket)
        };
        Ok(Received {
            term: on_runtime(handlers.term)?,
            int: on_runtime(handlers.int)?,
            other: match handlers.other {
                Some((signal, socket)) => Some((signal, on_runtime(socket)?)),
                None => None,
            },
        })
    }

    /// The next signal, SIGTERM first, then SIGINT, when several wait: what
    /// was received before the call is still there to read. Cancel-safe.
    pub(crate) async fn next(&mut self) -> StopEvent {
        let other = async {
            match &self.other {
                Some((signal, socket)) => {
                    one(socket).await;
                    *signal
                }
                None => std::future::pending().await,
            }
        };
        let signal = tokio::select! {
            biased;
            () = one(&self.term) => StopSignal::Sigterm,
            () = one(&self.int) => StopSignal::Sigint,
            signal = other => signal,
        };
        StopEvent::Signal(signal)
    }
}

/// Completes when a byte is read from `socket`: one signal. Cancel-safe.
async fn one(socket: &UnixStream) {
    loop {
        if socket.readable().await.is_err() {
            return std::future::pending().await;
        }
        match socket.try_read(&mut [0; 1]) {
            Ok(1) => return,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            // The write end lives as long as the process: never closed.
            _ => return std::future::pending().await,
        }
    }
}

/// What the signals do while no thread watches them: the handlers stay
/// installed, recording into sockets nobody reads.
pub(crate) const UNWATCHED: &str = "are ignored until this run ends";

/// Does what the signal's default action would have: ends the process,
/// killed by the signal so that the parent sees it rather than an exit
/// code; or, for a signal whose default is to be ignored (SIGWINCH),
/// returns.
pub(crate) fn default_action(event: StopEvent) {
    let signo = match event {
        StopEvent::Signal(signal) => signal.number(),
        // The console's events, which exist here only in the tests.
        #[cfg(test)]
        _ => libc::SIGTERM,
    };
    // Returns only when the default action is to ignore the signal (it
    // ends the process otherwise), or when `signo` is unknown to it.
    if signal_hook::low_level::emulate_default_handler(signo).is_err() {
        Exit::quiet(event.exit_code()).exit()
    }
}
