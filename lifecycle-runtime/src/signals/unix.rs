//! Unix: SIGTERM and SIGINT. Each handler (signal-hook's, async-signal-safe)
//! only writes a byte to a socket of its own signal; the signal thread
//! reads them, so a signal that came before it ran is still there to act
//! on, and two signals are two bytes.

use std::io;
use std::os::unix::net::UnixStream as StdUnixStream;

use tokio::net::UnixStream;

use super::StopEvent;

const SIGINT: i32 = signal_hook::consts::SIGINT;
const SIGTERM: i32 = signal_hook::consts::SIGTERM;

/// The handlers' read ends: one byte on `term` for each SIGTERM, on `int`
/// for each SIGINT, kept until read.
pub(crate) struct Handlers {
    term: StdUnixStream,
    int: StdUnixStream,
}

/// Installs the SIGTERM and SIGINT handlers: from now on neither takes the
/// default action. A few system calls, nothing else.
pub(crate) fn install() -> io::Result<Handlers> {
    let (term, term_write) = StdUnixStream::pair()?;
    signal_hook::low_level::pipe::register(SIGTERM, term_write)?;
    let (int, int_write) = StdUnixStream::pair()?;
    signal_hook::low_level::pipe::register(SIGINT, int_write)?;
    Ok(Handlers { term, int })
}

/// The handlers' sockets on the signal thread's runtime.
pub(crate) struct Received {
    term: UnixStream,
    int: UnixStream,
}

impl Received {
    /// Must be called inside the runtime that will poll [`Received::next`].
    pub(crate) fn new(handlers: Handlers) -> io::Result<Received> {
        handlers.term.set_nonblocking(true)?;
        handlers.int.set_nonblocking(true)?;
        Ok(Received {
            term: UnixStream::from_std(handlers.term)?,
            int: UnixStream::from_std(handlers.int)?,
        })
    }

    /// The next signal, SIGTERM first when both wait: what was received
    /// before the call is still there to read. Cancel-safe.
    pub(crate) async fn next(&mut self) -> StopEvent {
        tokio::select! {
            biased;
            () = one(&self.term) => StopEvent::Sigterm,
            () = one(&self.int) => StopEvent::Sigint,
        }
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

/// Ends the process as the signal's default action would have: killed by
/// it, so that the parent sees the signal, not an exit code.
pub(crate) fn default_action(event: StopEvent) -> ! {
    let signo = match event {
        StopEvent::Sigint => SIGINT,
        _ => SIGTERM,
    };
    let _ = signal_hook::low_level::emulate_default_handler(signo);
    // Only if the default action did not end the process.
    std::process::exit(event.exit_code())
}
