//! The probe server: hyper on its own OS thread and its own runtime, so a
//! saturated or stalled application runtime still gets a precise answer in
//! time. Checks themselves run on the application runtime.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;

use crate::checks::{Check, CheckResult, OwnTask};
use crate::health::Health;
use crate::registry::{self, CheckKind};
use crate::report::{self, Entry, Evaluation};
use crate::shutdown::SHUTDOWN;
use crate::state::{Phase, STATE};

/// A probe's request line and headers fit well inside this; anything larger
/// is not a probe.
const MAX_HEADER_BYTES: usize = 16 * 1024;
const MAX_HEADERS: usize = 64;
/// The kubelet sends its whole request at once; a connection that has not
/// by then is idle or hostile.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(2);
const MAX_CONNECTIONS: usize = 512;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Livez,
    Readyz,
    Startupz,
    Healthz,
}

impl Endpoint {
    fn parse(segment: &str) -> Option<Endpoint> {
        match segment {
            "livez" => Some(Endpoint::Livez),
            "readyz" => Some(Endpoint::Readyz),
            "startupz" => Some(Endpoint::Startupz),
            "healthz" => Some(Endpoint::Healthz),
            _ => None,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Endpoint::Livez => "livez",
            Endpoint::Readyz => "readyz",
            Endpoint::Startupz => "startupz",
            Endpoint::Healthz => "healthz",
        }
    }
}

/// Everything a probe needs, shared by the server's connections.
pub(crate) struct Prober {
    app: Handle,
    stall_threshold: Duration,
    max_tasks: Option<u64>,
    liveness: Vec<Arc<Check>>,
    readiness: Vec<Arc<Check>>,
    startup: Vec<Arc<Check>>,
}

impl Prober {
    /// Also starts the background runners of the checks with `interval_ms`;
    /// they stop when a shutdown is requested.
    pub(crate) fn new(app: Handle, stall_threshold: Duration, max_tasks: Option<u64>) -> Prober {
        let load = |kind| -> Vec<Arc<Check>> {
            registry::checks(kind).into_iter().map(Check::new).collect()
        };
        let (liveness, readiness, startup) = (
            load(CheckKind::Liveness),
            load(CheckKind::Readiness),
            load(CheckKind::Startup),
        );
        for check in liveness.iter().chain(&readiness).chain(&startup) {
            check.start_background(&app, SHUTDOWN.requested.clone());
        }
        Prober {
            app,
            stall_threshold,
            max_tasks,
            liveness,
            readiness,
            startup,
        }
    }

    fn lifecycle_liveness(&self) -> Health {
        match STATE.broken() {
            Some(reason) => Health::down(format!("marked broken: {reason}")),
            None => Health::up(),
        }
    }

    fn lifecycle_readiness(&self) -> Health {
        if STATE.withdrawn() {
            return Health::down("taken out of rotation by set_ready(false)");
        }
        if SHUTDOWN.requested.is_cancelled() {
            return Health::down("shutting down");
        }
        match STATE.phase() {
            Phase::Running => Health::up(),
            Phase::Starting => Health::down("start-up has not finished"),
            Phase::Draining | Phase::Stopping => Health::down("shutting down"),
        }
    }

    fn lifecycle_startup(&self) -> Health {
        if STATE.startup_finished() {
            Health::up()
        } else {
            Health::down("preflight checks and on_startup hooks have not finished")
        }
    }

    /// The runtime's own checks for an endpoint: computed from memory,
    /// never waiting on the application.
    fn builtins(&self, endpoint: Endpoint) -> Vec<CheckResult> {
        let lifecycle = match endpoint {
            Endpoint::Livez => self.lifecycle_liveness(),
            Endpoint::Readyz => self.lifecycle_readiness(),
            Endpoint::Startupz => self.lifecycle_startup(),
            Endpoint::Healthz => {
                let live = self.lifecycle_liveness();
                if live.is_up() {
                    self.lifecycle_readiness()
                } else {
                    live
                }
            }
        };
        let mut builtins = vec![CheckResult::builtin("lifecycle", lifecycle)];
        if matches!(endpoint, Endpoint::Livez | Endpoint::Healthz) {
            builtins.push(CheckResult::builtin("runtime", self.runtime_health()));
            if let Some(max) = self.max_tasks {
                builtins.push(CheckResult::builtin("tasks", self.tasks_health(max)));
            }
        }
        builtins
    }

    fn runtime_health(&self) -> Health {
        let silent = STATE.since_last_beat();
        if silent > self.stall_threshold {
            Health::down(format!("no progress for {} ms", silent.as_millis()))
        } else {
            Health::up()
        }
    }

    fn tasks_health(&self, max: u64) -> Health {
        // The application's tasks: lifecycle's own are left out.
        let alive = (self.app.metrics().num_alive_tasks() as u64).saturating_sub(OwnTask::alive());
        let health = if alive > max {
            Health::down(format!("{alive} tasks alive, more than max_tasks = {max}"))
        } else {
            Health::up()
        };
        health.with_detail("alive", alive).with_detail("max", max)
    }

    fn user_checks(&self, endpoint: Endpoint) -> Vec<&Arc<Check>> {
        match endpoint {
            Endpoint::Livez => self.liveness.iter().collect(),
            Endpoint::Readyz => self.readiness.iter().collect(),
            Endpoint::Startupz => self.startup.iter().collect(),
            Endpoint::Healthz => self.liveness.iter().chain(&self.readiness).collect(),
        }
    }

    /// Runs what `endpoint` (or only its check `only`) needs, leaving out
    /// `excludes`. `None` when `only` names no check of this endpoint.
    async fn evaluate(
        &self,
        endpoint: Endpoint,
        only: Option<&str>,
        excludes: &[String],
    ) -> Option<Evaluation> {
        let mut builtins = self.builtins(endpoint);
        let mut checks = self.user_checks(endpoint);
        if let Some(name) = only {
            builtins.retain(|b| b.name == name);
            checks.retain(|c| c.name() == name);
            if builtins.is_empty() && checks.is_empty() {
                return None;
            }
        }
        let excluded = |name: &str| excludes.iter().any(|e| e == name);
        let unmatched_excludes = excludes
            .iter()
            .filter(|e| {
                !builtins.iter().any(|b| &b.name == *e) && !checks.iter().any(|c| c.name() == *e)
            })
            .cloned()
            .collect();

        // Once passed, /startupz stays passed: the kubelet has moved on to
        // liveness and readiness, so its checks are not run again.
        let latched = endpoint == Endpoint::Startupz && STATE.startup_passed();
        let to_run: Vec<_> = checks
            .iter()
            .filter(|c| !excluded(c.name()) && !latched)
            .map(|c| c.result(&self.app))
            .collect();
        let mut results = futures_util::future::join_all(to_run).await.into_iter();

        let mut entries = Vec::new();
        for builtin in builtins {
            entries.push(if excluded(&builtin.name) {
                Entry::Excluded(builtin.name)
            } else {
                Entry::Ran(builtin)
            });
        }
        for check in checks {
            entries.push(if excluded(check.name()) {
                Entry::Excluded(check.name().to_owned())
            } else if latched {
                Entry::Ran(CheckResult {
                    critical: check.registration.critical,
                    ..CheckResult::builtin(check.name(), Health::up())
                })
            } else {
                Entry::Ran(results.next().expect("one result per check run"))
            });
        }
        let evaluation = Evaluation {
            endpoint: endpoint.label(),
            entries,
            unmatched_excludes,
            single: only.is_some(),
        };
        let whole_endpoint = only.is_none() && excludes.is_empty();
        if endpoint == Endpoint::Startupz && whole_endpoint && evaluation.passed() {
            STATE.latch_startup_passed();
        }
        Some(evaluation)
    }

    async fn answer(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        let method = request.method();
        if method != Method::GET && method != Method::HEAD {
            let mut response = plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return response;
        }
        let path = request.uri().path();
        let mut segments = path.strip_prefix('/').unwrap_or(path).splitn(2, '/');
        let endpoint = match segments.next().and_then(Endpoint::parse) {
            Some(endpoint) => endpoint,
            None => return not_found(),
        };
        let only = match segments.next() {
            Some(name) if name.is_empty() || endpoint == Endpoint::Healthz => return not_found(),
            other => other,
        };
        let query = Query::parse(request.uri().query().unwrap_or(""));
        let wants_json = query.json
            || request
                .headers()
                .get_all(header::ACCEPT)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .any(|v| v.contains("application/json"));
        let evaluation = match self.evaluate(endpoint, only, &query.excludes).await {
            Some(evaluation) => evaluation,
            None => return not_found(),
        };
        let status = if evaluation.passed() {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        if wants_json {
            respond(status, "application/json", report::json(&evaluation))
        } else {
            respond(
                status,
                "text/plain; charset=utf-8",
                report::text(&evaluation, query.verbose),
            )
        }
    }
}

/// The query parameters probes understand.
#[derive(Debug, Default)]
struct Query {
    verbose: bool,
    json: bool,
    excludes: Vec<String>,
}

impl Query {
    fn parse(query: &str) -> Query {
        let mut parsed = Query::default();
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            match &*key {
                "verbose" => parsed.verbose = !matches!(&*value, "false" | "0"),
                "format" => parsed.json = value == "json",
                "exclude" => parsed.excludes.push(value.into_owned()),
                _ => {}
            }
        }
        parsed
    }
}

fn respond(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

fn plain(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    respond(status, "text/plain; charset=utf-8", body.to_owned())
}

fn not_found() -> Response<Full<Bytes>> {
    plain(StatusCode::NOT_FOUND, "not found\n")
}

/// A running probe server.
pub(crate) struct ProbeServer {
    pub(crate) local_addr: SocketAddr,
    stop: CancellationToken,
    thread: Option<JoinHandle<()>>,
}

impl ProbeServer {
    /// Binds `addr` now (so a bad address fails start-up at once) and
    /// serves on a new thread.
    pub(crate) fn start(addr: SocketAddr, prober: Prober) -> io::Result<ProbeServer> {
        let listener = std::net::TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let local_addr = listener.local_addr()?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        let thread = std::thread::Builder::new()
            .name("lifecycle-probes".into())
            .spawn(move || {
                runtime.block_on(async move {
                    match tokio::net::TcpListener::from_std(listener) {
                        Ok(listener) => serve(listener, Arc::new(prober), stopped).await,
                        Err(e) => tracing::error!("probe server cannot use its socket: {e}"),
                    }
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

/// The open connections, oldest first. At the cap, the oldest connection
/// that is not answering a probe right now (idle, or still sending its
/// headers) is closed to make room, or failing that the oldest of all: a
/// new connection, as the kubelet opens for each probe, always gets in,
/// and the count of sockets stays bounded.
struct Connections {
    open: Mutex<VecDeque<Slot>>,
    next_id: AtomicU64,
}

struct Slot {
    id: u64,
    busy: Arc<AtomicBool>,
    close: CancellationToken,
}

impl Connections {
    fn new() -> Connections {
        Connections {
            open: Mutex::new(VecDeque::new()),
            next_id: AtomicU64::new(0),
        }
    }

    /// A slot for a new connection, closing an old one at the cap.
    fn admit(&self) -> (u64, Arc<AtomicBool>, CancellationToken) {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if open.len() >= MAX_CONNECTIONS {
            let oldest_idle = open
                .iter()
                .position(|slot| !slot.busy.load(Ordering::SeqCst))
                .unwrap_or(0);
            if let Some(evicted) = open.remove(oldest_idle) {
                evicted.close.cancel();
            }
        }
        let slot = Slot {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            busy: Arc::new(AtomicBool::new(false)),
            close: CancellationToken::new(),
        };
        let admitted = (slot.id, slot.busy.clone(), slot.close.clone());
        open.push_back(slot);
        admitted
    }

    fn release(&self, id: u64) {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(index) = open.iter().position(|slot| slot.id == id) {
            open.remove(index);
        }
    }
}

/// Marks a connection busy while it answers a request.
struct Busy(Arc<AtomicBool>);

impl Busy {
    fn enter(flag: &Arc<AtomicBool>) -> Busy {
        flag.store(true, Ordering::SeqCst);
        Busy(flag.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

async fn serve(listener: tokio::net::TcpListener, prober: Arc<Prober>, stop: CancellationToken) {
    let mut http = http1::Builder::new();
    // The header timeout also closes keep-alive connections left idle.
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_headers(MAX_HEADERS)
        .max_buf_size(MAX_HEADER_BYTES)
        .keep_alive(true);
    let connections = Arc::new(Connections::new());
    loop {
        let (stream, _peer) = tokio::select! {
            _ = stop.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: back off, retry.
                    tracing::warn!("probe server accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let (id, busy, close) = connections.admit();
        let _ = stream.set_nodelay(true);
        let prober = prober.clone();
        let connection = http.serve_connection(
            TokioIo::new(stream),
            service_fn(move |request| {
                let prober = prober.clone();
                let busy = Busy::enter(&busy);
                async move {
                    let response = prober.answer(request).await;
                    drop(busy);
                    Ok::<_, Infallible>(response)
                }
            }),
        );
        let stop = stop.clone();
        let connections = connections.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = connection => {}
                _ = close.cancelled() => {}
                _ = stop.cancelled() => {}
            }
            connections.release(id);
        });
    }
}
