//! SIGTERM and SIGINT, and the shutdown deadline, watched from a thread of
//! their own: a stalled application runtime still leaves rotation at once,
//! still exits on a second signal and still cannot overrun its deadline.
//!
//! The handlers are installed first thing in `run_service`, before logging
//! and configuration, so that no signal takes the default action once
//! `main` runs. Each handler only writes a byte to a socket of its own
//! signal; the thread, started later, reads them: a signal that came before
//! it is remembered there and acted on as soon as it runs.

use std::io;
use std::os::unix::net::UnixStream as StdUnixStream;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UnixStream;

use crate::exit::{self, terminate};
use crate::lifecycle::Lifecycle;

const SIGINT: i32 = signal_hook::consts::SIGINT;
const SIGTERM: i32 = signal_hook::consts::SIGTERM;

fn name(signo: i32) -> &'static str {
    if signo == SIGTERM {
        "SIGTERM"
    } else {
        "SIGINT"
    }
}

/// The handlers' read ends: one byte on `term` for each SIGTERM, on `int`
/// for each SIGINT, kept until read.
pub(crate) struct Handlers {
    term: StdUnixStream,
    int: StdUnixStream,
}

/// Installs the SIGTERM and SIGINT handlers: from now on neither takes the
/// default action; each is recorded until [`start`] or [`default_action`]
/// acts on it. A few system calls, nothing else.
pub(crate) fn install() -> io::Result<Handlers> {
    let (term, term_write) = StdUnixStream::pair()?;
    signal_hook::low_level::pipe::register(SIGTERM, term_write)?;
    let (int, int_write) = StdUnixStream::pair()?;
    signal_hook::low_level::pipe::register(SIGINT, int_write)?;
    Ok(Handlers { term, int })
}

/// The handlers' sockets on the current runtime.
struct Received {
    term: UnixStream,
    int: UnixStream,
}

impl Received {
    fn new(handlers: Handlers) -> io::Result<Received> {
        handlers.term.set_nonblocking(true)?;
        handlers.int.set_nonblocking(true)?;
        Ok(Received {
            term: UnixStream::from_std(handlers.term)?,
            int: UnixStream::from_std(handlers.int)?,
        })
    }

    /// The next signal, the earliest first: what was received before the
    /// call is still there to read.
    async fn next(&self) -> i32 {
        tokio::select! {
            biased;
            () = one(&self.term) => SIGTERM,
            () = one(&self.int) => SIGINT,
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

fn current_thread_runtime() -> io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

/// Starts the thread that requests the stop of `lifecycle` on the first
/// signal (received now or before), exits on the second, and enforces the
/// shutdown deadline from the moment a stop is requested.
pub(crate) fn start(
    handlers: Handlers,
    lifecycle: Arc<Lifecycle>,
    shutdown_timeout: Duration,
) -> io::Result<()> {
    spawn_signal_thread(handlers, move |runtime, signals| {
        runtime.block_on(async move {
                let cause = tokio::select! {
                    signo = signals.next() => {
                        lifecycle.request_stop();
                        tracing::info!("{} received: leaving rotation and shutting down", name(signo));
                        Some(signo)
                    }
                    _ = lifecycle.stop_requested() => None,
                };
                let deadline = tokio::time::sleep(shutdown_timeout);
                tokio::pin!(deadline);
                let mut signalled = cause.is_some();
                loop {
                    tokio::select! {
                        signo = signals.next() => {
                            if signalled {
                                terminate(
                                    128 + signo,
                                    &format!("{} received again during shutdown: exiting at once", name(signo)),
                                );
                            }
                            // The first signal of a stop that began otherwise.
                            signalled = true;
                            tracing::info!("{} received: already shutting down", name(signo));
                        }
                        _ = &mut deadline => {
                            let since = match cause {
                                Some(signo) => format!("of {}", name(signo)),
                                None => "of the stop".to_owned(),
                            };
                            terminate(
                                exit::FAILURE,
                                &format!(
                                    "shutdown did not finish within {} ms {since}; still running: {}",
                                    shutdown_timeout.as_millis(),
                                    lifecycle.still_running()
                                ),
                            );
                        }
                    }
                }
            });
    })
}

/// For the modes that serve nothing (`--lifecycle-preflight`, `-probe`,
/// `-manifest`): a signal, received now or before, ends the process as
/// the default action would have.
pub(crate) fn default_action(handlers: Handlers) -> io::Result<()> {
    spawn_signal_thread(handlers, |runtime, signals| {
        let signo = runtime.block_on(signals.next());
        let _ = signal_hook::low_level::emulate_default_handler(signo);
        std::process::exit(128 + signo)
    })
}

/// Runs `body` on the `lifecycle-signals` thread with a runtime of its own
/// and the signals the handlers recorded, from the first one on.
fn spawn_signal_thread(
    handlers: Handlers,
    body: impl FnOnce(tokio::runtime::Runtime, Received) + Send + 'static,
) -> io::Result<()> {
    let runtime = current_thread_runtime()?;
    let signals = {
        let _on = runtime.enter();
        Received::new(handlers)?
    };
    std::thread::Builder::new()
        .name("lifecycle-signals".into())
        .spawn(move || body(runtime, signals))?;
    Ok(())
}
