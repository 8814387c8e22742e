//! The probe server's request handling, for the fuzz targets in `fuzz/`
//! (cargo feature `fuzzing`; not a public API). A [`ProbeHarness`] serves
//! one connection over any byte stream exactly as the probe server serves
//! each accepted socket: the same HTTP settings
//! (`probe::server::http_settings`: HTTP/1, and HTTP/2 with the `grpc`
//! feature), the same service with its panic containment
//! (`probe::server::serve_connection`), the same answers
//! (`probe::Responder`) from a real `Evaluator` over the checks the fuzz
//! target registered. Only the socket and the accept loop are left out.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::Request;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::config::ReasonsPolicy;
use crate::lifecycle::Lifecycle;
use crate::probe::http::RequestProtocol;
use crate::probe::{server, Evaluator, Responder};
use crate::registry;

/// How long an HTTP/2 stream's answer may run on once its connection has
/// ended: far beyond any check's time-out in the fuzz targets, whose
/// answers come within it plus 50 ms.
const ANSWERS_OUTLIVE: Duration = Duration::from_secs(1);

/// The lifecycle state a [`ProbeHarness`] answers from.
#[derive(Debug, Clone, Copy, Default)]
pub struct State {
    /// Start-up finished (`Running`, `/startupz` passed).
    pub started: bool,
    /// A stop was requested (`Draining`).
    pub stopping: bool,
    /// `mark_broken` was called.
    pub broken: bool,
    /// An `out_of_rotation` guard is held.
    pub withdrawn: bool,
    /// `max_tasks`, for the built-in `tasks` check.
    pub max_tasks: Option<u64>,
    /// `reasons = "show"`: reasons for every peer.
    pub reasons_shown: bool,
}

/// The probe server's connection handling over a stream of the caller's,
/// on the current tokio runtime, which also runs the registered checks.
pub struct ProbeHarness {
    lifecycle: Arc<Lifecycle>,
    responder: Arc<Responder>,
    http: server::HttpSettings,
    graceful: GracefulShutdown,
}

/// How a connection served by [`ProbeHarness::serve`] ended.
#[derive(Debug)]
pub struct Served {
    /// hyper's error, if the connection ended on one (a malformed request,
    /// a time-out, …): the client's fault, not a failure.
    pub error: Option<String>,
    /// Whether the connection was still marked busy (answering a request)
    /// once it had ended: it never should be, or the connection table
    /// would keep evicting the wrong connections.
    pub busy_after: bool,
}

impl ProbeHarness {
    /// A harness over the checks registered in this binary, in `state`.
    /// Call it inside a tokio runtime (with time enabled).
    pub fn new(state: State) -> ProbeHarness {
        let lifecycle = Arc::new(Lifecycle::new());
        if state.started {
            let _ = lifecycle.finish_startup();
            lifecycle.latch_startup_passed();
        }
        if state.stopping {
            lifecycle.request_stop();
        }
        if state.broken {
            lifecycle.mark_broken("the fuzz target said so".into());
        }
        if state.withdrawn {
            // Held for the harness's life: its lifecycle is its own.
            lifecycle.out_of_rotation("the fuzz target said so".into());
        }
        lifecycle.heartbeat().beat();
        let evaluator = Arc::new(Evaluator::new(
            lifecycle.clone(),
            tokio::runtime::Handle::current(),
            Duration::from_secs(10),
            state.max_tasks,
            registry::probe_checks(),
        ));
        evaluator.start_background_checks();
        let reasons = if state.reasons_shown {
            ReasonsPolicy::Show
        } else {
            ReasonsPolicy::Loopback
        };
        ProbeHarness {
            lifecycle,
            responder: Arc::new(Responder::new(
                evaluator,
                reasons,
                #[cfg(feature = "grpc")]
                tokio_util::sync::CancellationToken::new(),
                // `/metrics` is fuzzed too.
                #[cfg(feature = "metrics")]
                true,
            )),
            http: server::http_settings(),
            graceful: GracefulShutdown::new(),
        }
    }

    /// Serves `stream` as a connection from `peer` until it ends, as the
    /// probe server serves an accepted socket.
    pub async fn serve<S>(&self, stream: S, peer: SocketAddr) -> Served
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        // Stands for the application runtime's heartbeat task.
        self.lifecycle.heartbeat().beat();
        let responder = self.responder.clone();
        let answer = move |request: Request<Incoming>, protocol: RequestProtocol| {
            responder.answer(request, protocol)
        };
        let busy = Arc::new(AtomicUsize::new(0));
        let result = server::serve_connection(
            &self.http,
            stream,
            peer,
            Arc::new(answer),
            busy.clone(),
            self.graceful.watcher(),
        )
        .await;
        // HTTP/2 answers each stream in a task of its own (hyper spawns
        // them), which may outlive the connection by its checks' time-out
        // when the client left (the real server releases the connection's
        // slot at its end all the same): wait that long for them, so that
        // only an answer marked busy for good is reported.
        let answers_end = tokio::time::Instant::now() + ANSWERS_OUTLIVE;
        while busy.load(Ordering::SeqCst) != 0 && tokio::time::Instant::now() < answers_end {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        Served {
            error: result.err().map(|e| e.to_string()),
            busy_after: busy.load(Ordering::SeqCst) != 0,
        }
    }
}
