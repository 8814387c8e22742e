//! The probe server: hyper on its own OS thread and its own runtime, so a
//! saturated or stalled application runtime still gets a precise answer in
//! time (checks themselves run on the application runtime). Hardened
//! against slow, idle and oversized clients, and against its own panics:
//! whatever the panic policy, a panic here is logged and the server keeps
//! answering.
//!
//! This module starts the thread and runs the accept loop; the others
//! listen and accept ([`listener`]), keep the connection table
//! ([`connections`]), serve one connection ([`serve`]) and guard its IO
//! ([`guards`]).

mod connections;
mod guards;
mod listener;
mod serve;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::Request;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use self::connections::ConnectionTable;
#[cfg(feature = "fuzzing")]
pub(crate) use self::serve::HttpSettings;
pub(crate) use self::serve::{http_settings, serve_connection};
use crate::panics::contained;
use crate::probe::http::Answer;
use crate::probe::http::RequestProtocol;
use crate::stop_budget::STOP_GRACE;

/// A running probe server.
pub(crate) struct ProbeServer {
    pub(crate) local_addr: SocketAddr,
    stop: CancellationToken,
    thread: Option<JoinHandle<()>>,
}

impl ProbeServer {
    /// Binds `addr` now (so a bad address fails start-up at once) and
    /// serves on a new thread, answering each request with `answer`, which
    /// is told the [`RequestProtocol`] it speaks; each request carries its
    /// connection's [`Peer`](crate::probe::reasons::Peer) in its
    /// extensions.
    pub(crate) fn start<A, Fut>(addr: SocketAddr, answer: A) -> io::Result<ProbeServer>
    where
        A: Fn(Request<Incoming>, RequestProtocol) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Answer> + Send + 'static,
    {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let listener = {
            // The listener registers with the runtime that will serve it.
            let _entered = runtime.enter();
            listener::listen(addr)?
        };
        let local_addr = listener.local_addr()?;
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        let thread = std::thread::Builder::new()
            .name("lifecycle-probes".into())
            .spawn(move || {
                crate::call::timers_never_blocked_on_this_thread();
                runtime.block_on(async move {
                    // The accept loop is a task, queued behind the
                    // connections it has just admitted: as the future that
                    // `block_on` drives, it would be polled with a fresh
                    // budget of 128 accepts after every 61 tasks run, and
                    // a flood would be admitted twice as fast as its
                    // connections ran, so sockets would pile up past the
                    // cap, and evictions at the cap would close connections
                    // not read yet, the kubelet's probe among them.
                    let serving = tokio::spawn(crate::call::task(serve_until_stopped(
                        listener,
                        Arc::new(answer),
                        stopped,
                    )));
                    let _ = serving.await;
                });
                // Connections still open are dropped with the runtime.
                runtime.shutdown_background();
            })?;
        Ok(ProbeServer {
            local_addr,
            stop,
            thread: Some(thread),
        })
    }

    /// Stops accepting and closes every connection.
    pub(crate) fn stop(mut self) {
        self.stop.cancel();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Accepts until `stop`, started again should the accept loop ever panic,
/// then lets the connections it admitted end gracefully, for
/// [`STOP_GRACE`] at most.
async fn serve_until_stopped<A, Fut>(listener: TcpListener, answer: Arc<A>, stop: CancellationToken)
where
    A: Fn(Request<Incoming>, RequestProtocol) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Answer> + Send + 'static,
{
    let graceful = GracefulShutdown::new();
    let connections = Arc::new(ConnectionTable::new());
    while contained(
        "probe server's accept loop",
        accept_loop(&listener, &answer, &connections, &stop, &graceful),
    )
    .await
    .is_err()
    {
        // A panic that recurs at once must not spin this thread.
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Closed now, not after the grace: a probe that connects during the
    // stop is refused at once rather than left in the backlog.
    drop(listener);
    // Answers in flight are written, HTTP/2 clients get a GOAWAY and the
    // end of their streams.
    let _ = tokio::time::timeout(STOP_GRACE, graceful.shutdown()).await;
}

/// Admits each connection accepted into `connections` and serves it on a
/// task of its own, watched by `graceful`, until `stop`.
async fn accept_loop<A, Fut>(
    listener: &TcpListener,
    answer: &Arc<A>,
    connections: &Arc<ConnectionTable>,
    stop: &CancellationToken,
    graceful: &GracefulShutdown,
) where
    A: Fn(Request<Incoming>, RequestProtocol) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Answer> + Send + 'static,
{
    let http = http_settings();
    loop {
        let (stream, peer) = tokio::select! {
            _ = stop.cancelled() => return,
            accepted = listener::accept(listener) => accepted,
        };
        let admitted = connections.admit();
        let _ = stream.set_nodelay(true);
        let connection = serve_connection(
            &http,
            stream,
            peer,
            answer.clone(),
            admitted.busy,
            graceful.watcher(),
        );
        let close = admitted.close;
        let connections = connections.clone();
        tokio::spawn(crate::call::task(async move {
            let _ = contained("probe server's connection", async {
                // On the stop, `graceful` ends it; on an eviction, it is
                // dropped at once.
                tokio::select! {
                    _ = connection => {}
                    _ = close.cancelled() => {}
                }
            })
            .await;
            connections.release(admitted.id);
        }));
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::sync::atomic::{AtomicU32, Ordering};

    use hyper::StatusCode;

    use super::*;
    use crate::probe::http::plain;

    fn exchange(addr: SocketAddr, path: &str) -> String {
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: probe\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        answer
    }

    #[test]
    fn a_panic_in_the_probe_server_is_contained_and_it_keeps_answering() {
        // Stands for either panic policy: counts what it would act on.
        static UNCONTAINED: AtomicU32 = AtomicU32::new(0);
        crate::panics::install_with(|description| {
            eprintln!("uncontained: {description}");
            UNCONTAINED.fetch_add(1, Ordering::SeqCst);
        });
        let answer = |request: Request<Incoming>, _: RequestProtocol| async move {
            if request.uri().path() == "/explode" {
                panic!("the probe server's own code exploded");
            }
            plain(StatusCode::OK, "ok\n")
        };
        let server = ProbeServer::start("127.0.0.1:0".parse().unwrap(), answer).unwrap();
        let exploded = exchange(server.local_addr, "/explode");
        assert!(
            exploded.starts_with("HTTP/1.1 500 "),
            "a panicking answer is a 500: {exploded:?}"
        );
        for _ in 0..3 {
            let answer = exchange(server.local_addr, "/livez");
            assert!(answer.starts_with("HTTP/1.1 200 "), "{answer:?}");
        }
        let _ = std::panic::take_hook();
        assert_eq!(
            UNCONTAINED.load(Ordering::SeqCst),
            0,
            "the panic reached the panic policy"
        );
        server.stop();
    }
}
