//! SIGTERM and SIGINT, and the shutdown deadline, watched from a thread of
//! their own: a stalled application runtime still leaves rotation at once,
//! still exits on a second signal and still cannot overrun its deadline.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use tokio::signal::unix::{signal, Signal, SignalKind};

use crate::exit::{self, terminate};
use crate::lifecycle::Lifecycle;

const SIGINT: i32 = 2;
const SIGTERM: i32 = 15;

fn name(signo: i32) -> &'static str {
    if signo == SIGTERM {
        "SIGTERM"
    } else {
        "SIGINT"
    }
}

async fn next_signal(term: &mut Signal, int: &mut Signal) -> i32 {
    tokio::select! {
        _ = term.recv() => SIGTERM,
        _ = int.recv() => SIGINT,
    }
}

/// Installs the handlers (before returning, so that no early signal takes
/// the default action) and starts the thread that requests the stop of
/// `lifecycle` on the first signal, exits on the second, and enforces the
/// shutdown deadline from the moment a stop is requested.
pub(crate) fn start(lifecycle: Arc<Lifecycle>, shutdown_timeout: Duration) -> io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (mut term, mut int) = runtime.block_on(async {
        Ok::<_, io::Error>((
            signal(SignalKind::terminate())?,
            signal(SignalKind::interrupt())?,
        ))
    })?;
    std::thread::Builder::new()
        .name("lifecycle-signals".into())
        .spawn(move || {
            runtime.block_on(async move {
                let cause = tokio::select! {
                    signo = next_signal(&mut term, &mut int) => {
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
                        signo = next_signal(&mut term, &mut int) => {
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
        })?;
    Ok(())
}
