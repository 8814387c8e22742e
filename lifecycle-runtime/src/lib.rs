//! Makes a tokio service speak Kubernetes' language: liveness, readiness
//! and startup probes, preflight checks, ordered start-up and shutdown
//! hooks, a graceful stop on SIGTERM inside the grace period, and exit
//! codes that tell the truth — each one attribute away.
//!
//! ```no_run
//! use lifecycle_runtime::{liveness, on_shutdown, on_startup, readiness, service_main};
//!
//! /// Readiness is where dependencies belong: failing it takes the pod out
//! /// of rotation without restarting it.
//! #[readiness(timeout_ms = 100)]
//! async fn database() -> Result<(), std::io::Error> {
//!     Ok(()) // ping the pool
//! }
//!
//! /// Liveness answers only "is this process beyond repair?".
//! #[liveness]
//! fn event_loop() -> bool {
//!     true
//! }
//!
//! #[on_startup]
//! async fn warm_cache() -> Result<(), String> {
//!     Ok(())
//! }
//!
//! #[on_shutdown(order = 1)]
//! async fn flush_metrics() {}
//!
//! #[service_main] // instead of #[tokio::main]
//! async fn main() {
//!     // Serve until lifecycle_runtime::shutdown_signal() completes.
//!     // Probes answer on 0.0.0.0:8081: /livez, /readyz, /startupz, /healthz.
//!     lifecycle_runtime::shutdown_signal().await;
//! }
//! ```
//!
//! With axum, hand [`shutdown_signal`] to `with_graceful_shutdown`:
//!
//! ```no_run
//! use axum::{routing::get, Router};
//! use lifecycle_runtime::{service_main, shutdown_signal};
//!
//! #[service_main]
//! async fn main() -> std::io::Result<()> {
//!     let app = Router::new().route("/", get(|| async { "hello" }));
//!     // lifecycle's listener (cargo feature `axum`): the stop waits for its
//!     // connections, and ends those that outlive the connection drain.
//!     let listener = lifecycle_runtime::net::TcpListener::bind("0.0.0.0:8080").await?;
//!     axum::serve(listener, app)
//!         .with_graceful_shutdown(shutdown_signal())
//!         .await
//! }
//! ```
//!
//! # Attributes
//!
//! Each registration attribute works on a free `fn` or `async fn` with no
//! parameters, in any crate linked into the binary (a library crate of
//! yours included: a binary links a crate it names, `use my_checks as _;`
//! is enough). A plain `fn` runs on the blocking pool; an `async fn` on the
//! application runtime, so it may use your pools and clients. A mistake is
//! a compile error on the offending token.
//!
//! | attribute | arguments (all optional) | returns |
//! | --- | --- | --- |
//! | `#[liveness]` | `name`, `timeout_ms` (500), `critical` (true) | `bool`, `()`, `Result<(), E: Display>`, `Health` |
//! | `#[readiness]` | same, plus `interval_ms` | same |
//! | `#[startup]` | same as `#[readiness]` | same |
//! | `#[preflight]` | `name`, `timeout_ms` (10000) | same |
//! | `#[on_startup]` | `name`, `order` (0), `timeout_ms` (60000) | `()`, `Result<(), E: Display>` |
//! | `#[on_shutdown]` | `name`, `order` (0), `timeout_ms` (10000) | `()`, `Result<(), E: Display>` |
//! | `#[service_main]` | `probe_addr`, `shutdown_timeout_ms`, `drain_delay_ms`, `connection_drain_ms`, `stall_threshold_ms`, `max_tasks`, `panic`, `flavor`, `worker_threads`, `tracing`, `reasons`, `probe_protocol`, `metrics`, `pid1`, `stop_signal` | `()`, `Result<(), E: Debug>` |
//!
//! Every attribute also takes `crate = "path"` for a renamed dependency.
//!
//! - An `Err` is the failure's reason: a `std::error::Error` (or a
//!   `Box<dyn Error>`) with its
//!   causes (`source()`), joined as anyhow's `{:#}` does
//!   (`error connecting to server: Connection refused (os error 111)`),
//!   any other `Display` type in its alternate form (the whole chain for
//!   `anyhow::Error`).
//! - `name`: the check's or hook's name, in probe paths (`/readyz/NAME`)
//!   and answers; the function's name by default. Unique per kind (a
//!   duplicate exits 2 at start-up); `lifecycle`, `runtime` and `tasks` are
//!   the built-in checks'.
//! - `timeout_ms`: a check that has not answered by then fails with
//!   `timed out after N ms`; one that panics fails with
//!   `panicked: MESSAGE`, and the process keeps running. A hook past its
//!   timeout fails too.
//! - `critical = false`: the check is run and reported, but never fails
//!   its endpoint.
//! - `interval_ms = N` (readiness, startup): the check runs in the
//!   background every N ms and probes read the latest result, so probes
//!   never cause I/O. It starts when start-up has finished (after the
//!   `on_startup` hooks, which may create what it checks), with a first
//!   run at once that a probe in the meantime waits for, so `/readyz` can
//!   pass as soon as `/startupz` does; during start-up it fails with
//!   `not yet run`.
//!   Without it, a check runs when probed, and concurrent probes of the
//!   same check share one run.
//! - `order`: hooks run in ascending order; equal orders run concurrently.
//! - [`macro@preflight`] checks run once before the `on_startup` hooks; any
//!   failure exits 1. `--lifecycle-preflight` runs them alone.
//!
//! A registration attribute keeps your function as written and submits a
//! registration for it to [`inventory`](https://docs.rs/inventory): no
//! call from `main` is needed. [`macro@service_main`] turns `async fn main`
//! into a plain `fn main` that builds the tokio runtime, starts the probe
//! server, runs start-up, your body and the graceful stop, and exits with
//! the code below. Its arguments:
//!
//! - `probe_addr = "0.0.0.0:8081"`: where the probe server listens.
//! - `shutdown_timeout_ms = 25000`, `drain_delay_ms`, `stall_threshold_ms = 10000`:
//!   see Configuration.
//! - `max_tasks = N`: adds the built-in `tasks` liveness check.
//! - `panic = "crash" | "log"`: see Panics.
//! - `flavor = "multi_thread" | "current_thread"`, `worker_threads = N`:
//!   the application runtime, as with `#[tokio::main]`.
//! - `reasons = "loopback" | "show"` (`"loopback"`): who reads the checks'
//!   reasons and detail values in probe answers; see Probe endpoints.
//! - `probe_protocol = "http" | "grpc"` (`"http"`): what the probes of
//!   `--lifecycle-manifest` and `--lifecycle-probe` speak: `httpGet` of
//!   `/livez` and the like, or gRPC health's `Check` of the services
//!   `livez`, `readyz`, `startupz`. `"grpc"` needs the cargo feature
//!   `grpc`: without it, it is a compile error naming the feature.
//! - `metrics = bool` (true): serve the metrics on `GET /metrics` of the
//!   probe port, and annotate the pod template of `--lifecycle-manifest`
//!   for Prometheus (`prometheus.io/scrape`, `prometheus.io/port`,
//!   `prometheus.io/path`). `false` (or `LIFECYCLE_METRICS=off`): a 404
//!   there, and no annotations.
//! - `pid1 = bool` (true): when the process is PID 1 (a container
//!   without an init), run the service as the child of a minimal init, as
//!   tini would: every signal forwarded to it once, orphans reaped, its
//!   exit code passed on. No effect when the process is not PID 1, nor on
//!   systems other than Linux (PID 1 without an init is the container
//!   case). `false` (or `LIFECYCLE_PID1=off`): the service is PID 1 itself.
//! - `stop_signal = "SIGQUIT"` (`"SIGTERM"`): a signal that starts the
//!   graceful stop as SIGTERM does (SIGTERM and SIGINT still do), for an
//!   image whose stop signal is another: `SIGINT`, `SIGQUIT`, `SIGHUP`,
//!   `SIGUSR1`, `SIGUSR2` or `SIGWINCH`, upper case as Kubernetes spells
//!   them, the `SIG` prefix optional; any other is a compile error naming
//!   these. `--lifecycle-manifest` then sets the container's
//!   `lifecycle.stopSignal`, so that the kubelet sends it. Unix only: on
//!   Windows, whose pods allow only SIGTERM and SIGKILL, any other than
//!   `"SIGTERM"` is a compile error.
//! - `tracing = bool` (true): install the default log subscriber (cargo
//!   feature `tracing-subscriber`, on by default; without the feature,
//!   `tracing = true` is a compile error naming it). It writes to stderr
//!   without ever blocking: a log pipe that stalls or breaks loses lines
//!   (counted, and reported once it drains), never delays a state change,
//!   the shutdown deadline or the exit.
//!
//! # Probe endpoints
//!
//! The probe server runs on its own OS thread with its own runtime, so a
//! saturated or stalled application runtime still gets a precise failing
//! answer in time. Checks run on the application runtime.
//!
//! | path | 200 when | otherwise |
//! | --- | --- | --- |
//! | `/livez` | every critical liveness check passes, the application runtime is not stalled, `mark_broken` was never called | 503 |
//! | `/readyz` | start-up has finished, no shutdown has begun, no `out_of_rotation` guard is held, every critical readiness check passes | 503 |
//! | `/startupz` | preflight checks and `on_startup` hooks have finished and every critical startup check passes; once passed, it stays passed | 503 |
//! | `/healthz` | `/livez` and `/readyz` both pass | 503 |
//! | `/livez/NAME`, `/readyz/NAME`, `/startupz/NAME` | that one check passes | 503, or 404 for an unknown name |
//!
//! - `GET` and `HEAD`; other methods 405 with `Allow: GET, HEAD`; other
//!   paths 404.
//! - Body: `ok`, or one `[-]NAME failed: REASON` line per failing check.
//! - `?verbose`: every check, `[+]NAME ok` or `[-]NAME failed: REASON`,
//!   then `livez check passed` (or `failed`), as kube-apiserver does.
//! - `?exclude=NAME` (repeatable) leaves a check out: `[+]NAME excluded: ok`.
//! - `Accept: application/json` or `?format=json`: a MicroProfile Health
//!   document, `{"status":"UP","checks":[{"name":…,"status":…,"data":{…}}]}`.
//! - Reasons are for loopback: the probe port listens on every interface
//!   and reasons carry connection strings and host names, so, as
//!   kube-apiserver does, an answer to a peer outside loopback says
//!   `[-]NAME failed: reason withheld` (JSON: `"reason": "reason withheld"`)
//!   and every detail value reads `withheld`. The kubelet reads only the
//!   status code; `kubectl port-forward` and `kubectl exec … curl` arrive
//!   on loopback (`127.0.0.0/8`, `::1`, `::ffff:127.0.0.0/104`) and see
//!   everything. `LIFECYCLE_REASONS=show` or
//!   `#[service_main(reasons = "show")]` shows them to every peer. Each
//!   change of a check's result (failing, a new reason, passing again) is
//!   logged once, with its reason.
//! - Every answer comes within the largest timeout of the checks it runs
//!   plus 50 ms, whatever the checks do.
//! - Bounded, whatever the checks return: a reason or a detail's value is
//!   one line of at most 512 bytes (a longer one is cut on a character
//!   boundary and ends with `…`), and an answer at most 10 KiB, what the
//!   kubelet reads. In text, control characters are escaped, so that a
//!   reason cannot add lines that read as passing checks: `\n`, `\r` and
//!   `\t` as a backslash and a letter, others (ESC, NUL, Unicode line
//!   separators, …) as `\u{1b}` and the like; JSON answers rely on the
//!   encoder's own escaping.
//!   A longer text answer ends with a line `… N more checks` (then the
//!   verdict line, which stays last); a longer JSON answer drops whole
//!   checks from the end and adds `"truncated": N`.
//! - Built-in checks: `lifecycle` on every endpoint (the framework's own
//!   state: start-up, shutdown, [`out_of_rotation`], [`mark_broken`]); on
//!   `/livez`, `runtime` (no progress of the application runtime for
//!   `stall_threshold_ms`) and, with `max_tasks = N`, `tasks`.
//!
//! # gRPC health
//!
//! With the cargo feature `grpc`, the probe port also speaks plaintext
//! HTTP/2 and serves `grpc.health.v1.Health` (`Check`, `Watch`, `List`)
//! from the same checks and phase, for the kubelet's `grpc:` probes, gRPC
//! clients' health checking and proxies: service names `livez`, `readyz`,
//! `startupz`, `livez/NAME` and the like, and `""` for `/healthz`. The
//! `grpc` module (documented when the feature is on) has the details, and
//! `grpc::health_service()` the same service for the application's own
//! tonic server. `#[service_main(probe_protocol = "grpc")]` points the
//! manifest's probes and `--lifecycle-probe` at it.
//!
//! # Metrics
//!
//! `GET /metrics` on the probe port: Prometheus metrics of the checks,
//! probes, phases, hooks and the application runtime, in the OpenMetrics
//! text format, with the application's own if it registers them with
//! `metrics::register(|registry| …)` (cargo feature `metrics`, on by
//! default; at run time `metrics = false` or `LIFECYCLE_METRICS=off` turns
//! it off). A
//! scrape never runs a check. The `metrics` module lists the series.
//!
//! # Runtime API
//!
//! | item | what it does |
//! | --- | --- |
//! | `shutdown_signal()` | a future that completes when the application must stop serving (after the drain delay); pass it to `with_graceful_shutdown` |
//! | `shutdown_token()` | a `CancellationToken` (tokio-util) cancelled at the same moment |
//! | `spawn(fut)` | spawns a tracked task; shutdown waits for tracked tasks before running `on_shutdown` hooks |
//! | `out_of_rotation(reason)` | takes the instance out of rotation until the returned guard drops (`out of rotation: REASON`; several guards listed oldest first) |
//! | `mark_broken(reason)` | fails `/livez` from then on, so the kubelet restarts the container: the way to give up instead of `process::exit` |
//! | `phase()` | `Starting`, `Running`, `Draining`, `Stopping` |
//! | `run_checks(kind)` | runs the checks of one kind registered in this binary and returns their results, without a service: for a crate's own unit tests |
//!
//! # Configuration
//!
//! An environment variable wins over the `#[service_main]` argument, which
//! wins over the default. An empty variable counts as unset. A bad value
//! exits 2 with a message naming the variable and the accepted form; a
//! value that is not UTF-8 is a bad value, except for a path, taken as its
//! bytes. A `LIFECYCLE_PROBE_ADDR_FILE` that cannot be written exits 2; a
//! FIFO or a device there is written in place, never replaced. Every
//! millisecond value, as a variable or an argument (`timeout_ms` and
//! `interval_ms` included), is at most 86400000 (a day): more exits 2, or
//! is a compile error on the argument.
//!
//! | variable | argument | default |
//! | --- | --- | --- |
//! | `LIFECYCLE_PROBE_ADDR` | `probe_addr` | `0.0.0.0:8081` (port 0 picks a free port; the bound address is logged) |
//! | `LIFECYCLE_PROBE_ADDR_FILE` | | unset; when set, the bound address (`IP:PORT` and a newline) is written there once the probe server listens, then a line `app IP:PORT` for each `net::TcpListener` the application binds |
//! | `LIFECYCLE_SHUTDOWN_TIMEOUT_MS` | `shutdown_timeout_ms` | 25000 |
//! | `LIFECYCLE_DRAIN_DELAY_MS` | `drain_delay_ms` | 0, or 5000 when `KUBERNETES_SERVICE_HOST` is set |
//! | `LIFECYCLE_CONNECTION_DRAIN_MS` | `connection_drain_ms` | 5000: how long connections accepted through `net::TcpListener` have to close after `shutdown_signal()` before lifecycle ends them |
//! | `LIFECYCLE_STALL_THRESHOLD_MS` | `stall_threshold_ms` | 10000 |
//! | `LIFECYCLE_LOG_FORMAT` | | `text`; `json` for JSON lines |
//! | `LIFECYCLE_REASONS` | `reasons` | `loopback`: checks' reasons and detail values only for peers on loopback, `reason withheld` for the others; `show`: for every peer |
//! | `LIFECYCLE_PROBE_PROTOCOL` | `probe_protocol` | `http`: `--lifecycle-manifest` emits `httpGet` probes and `--lifecycle-probe` asks over HTTP; `grpc` (cargo feature `grpc`): `grpc:` probes of the services `livez`, `readyz`, `startupz`, and the exec probe asks gRPC health's `Check`. `grpc` in a binary built without the feature exits 2 |
//! | `LIFECYCLE_METRICS` | `metrics` | `on`: `GET /metrics` on the probe port, and the `prometheus.io/scrape`, `prometheus.io/port` and `prometheus.io/path` annotations on the pod template of `--lifecycle-manifest`; `off`: `/metrics` answers 404 and the pod template has none of them. `true`/`false` and `1`/`0` are taken too |
//! | `LIFECYCLE_PID1` | `pid1` | `on`: when the process is PID 1 (a container without an init) on Linux, the service runs as the child of a minimal init that forwards every signal to it once, reaps orphans and exits with its code; no effect otherwise (not PID 1, or another system). `off`: the service is PID 1 itself. `true`/`false` and `1`/`0` are taken too |
//! | `LIFECYCLE_STOP_SIGNAL` | `stop_signal` | `SIGTERM`; `SIGINT`, `SIGQUIT`, `SIGHUP`, `SIGUSR1`, `SIGUSR2` or `SIGWINCH` (upper case, as Kubernetes spells them, the `SIG` prefix optional) also starts the graceful stop, as SIGTERM and SIGINT still do, and `--lifecycle-manifest` sets `lifecycle.stopSignal`; any other signal exits 2. Unix only: on Windows anything but `SIGTERM` exits 2 |
//! | `LIFECYCLE_TERMINATION_LOG` | | `/dev/termination-log` when it exists and is writable |
//! | `RUST_LOG` | | `info`; comma-separated `level`, `target=level` and `target` directives; the full `EnvFilter` syntax with the cargo feature `env-filter` |
//!
//! # Start-up, shutdown and exit codes
//!
//! Start-up, in order: the probe server is up (`/startupz` and `/readyz`
//! answer 503) → preflight checks → `on_startup` hooks by ascending
//! `order` → [`Phase::Running`], `/startupz` passes → the body of `main`.
//!
//! On SIGTERM, SIGINT or the `stop_signal`: [`Phase::Draining`], `/readyz` answers 503 at
//! once (`/livez` stays 200) → the drain delay, while load balancers take
//! the pod out → [`shutdown_signal`] completes; `main` finishes its
//! in-flight work and returns; tracked tasks ([`spawn`]) are awaited;
//! connections accepted through [`net::TcpListener`] are awaited, and
//! those still open `connection_drain_ms` later are ended → [`Phase::Stopping`]:
//! `on_shutdown` hooks by ascending `order`, each bounded by its timeout,
//! a failure logged and the later ones still run → exit. The whole stop is
//! bounded by the shutdown timeout, and the hooks always get their time:
//! they start at the latest at the deadline less their budget and 250 ms,
//! and what they no longer waited for, still running after them, exits 1
//! (`still running: …`). A second signal exits at once. A signal during start-up abandons it: `main` never
//! runs, the `on_shutdown` hooks do. The handlers are installed first
//! thing, before logging and configuration: a signal in the first
//! milliseconds is remembered and acted on, never the default action.
//!
//! | situation | exit code |
//! | --- | --- |
//! | `main` returned `()` or `Ok`, or graceful shutdown finished in time with every hook succeeding | 0 |
//! | `main` returned `Err`; a preflight check or `on_startup` hook failed or timed out; the probe address could not be bound; an `on_shutdown` hook failed or timed out; the shutdown deadline passed; `main`, a tracked task or a connection had not ended when the `on_shutdown` hooks did (`still running: …`) | 1 |
//! | a bad `LIFECYCLE_*` value, duplicate check names | 2 |
//! | a panic under `panic = "crash"` | 101 |
//! | a second SIGTERM / SIGINT during shutdown, or of the stop signal N (`stop_signal`) | 143 / 130, 128 + N (131 for SIGQUIT) |
//! | Windows: a second stop event during shutdown: Ctrl-Break, the console's close, `CTRL_SHUTDOWN_EVENT` / Ctrl-C | 143 / 130 |
//!
//! On every non-zero exit the reason is the last line logged (on one
//! line, nothing logged after it) and is written (at most 4096 bytes) to
//! `LIFECYCLE_TERMINATION_LOG`, else to
//! `/dev/termination-log`, so that `kubectl describe pod` shows it. Only a
//! regular file or a character device is written, without blocking;
//! anything else is reported on stderr and never holds up the exit.
//!
//! ## Platforms
//!
//! - **Linux**, the deployment target: everything.
//! - **macOS**, for development: everything but PID-1 mode (`pid1` has no
//!   effect there).
//! - **Windows**: builds and stops gracefully. The stop events are Ctrl-C,
//!   Ctrl-Break, the console's close and `CTRL_SHUTDOWN_EVENT` (what a
//!   Windows container receives when stopped), through tokio's handler;
//!   logoff is not a stop. A second one exits as a second signal does on
//!   Linux: 130 after Ctrl-C, 143 after the others. Windows ends a
//!   container's process about 5 s after `CTRL_SHUTDOWN_EVENT`, whatever
//!   the shutdown timeout says (the registry's `WaitToKillServiceTimeout`
//!   and `cexecsvc`'s `ProcessShutdownTimeoutSeconds`), so the deadline
//!   and the hooks' time are not guaranteed there as on Linux; at
//!   start-up a warning says when the drain delay and the hooks' budget
//!   reach those 5 s. After the console's close or
//!   `CTRL_SHUTDOWN_EVENT`, a later event may never reach the process
//!   (tokio keeps that event's handler running so that Windows does not
//!   end the process at once, and the console delivers one event at a
//!   time): the stop then ends on its own, at the shutdown deadline, or by
//!   Windows' kill. The termination message goes to
//!   `LIFECYCLE_TERMINATION_LOG` when set (`/dev/termination-log` rarely
//!   exists there). The probe server on `[::]` takes IPv4 too, as on
//!   Linux; [`net::TcpListener::bind`] binds as tokio's does, IPv6 only
//!   on Windows.
//!
//! ## Panics
//!
//! With `panic = "crash"` (the default) a panic anywhere outside a check or
//! hook (the body of `main`, a spawned task, another thread) is logged with
//! its location, written to the termination log, and the process exits 101
//! at once: a panic swallowed by a task would leave a half-dead service.
//! `panic = "log"` keeps Rust's own behaviour and only logs, except that a
//! panic in the body of `main` runs the hooks and exits 101. A panic in a
//! check or hook is always that check's or hook's failure.
//!
//! # Command-line flags
//!
//! Handled before the body of `main` runs; every other argument is left to
//! the application.
//!
//! | flag | what it does |
//! | --- | --- |
//! | `--lifecycle-preflight` | runs the preflight checks only, one line per check (`[+]NAME ok` / `[-]NAME failed: REASON`), exits 0 if all pass else 1 |
//! | `--lifecycle-probe livez\|readyz\|startupz` | asks the running instance, exits 0 on 200 else 1; under `probe_protocol = "grpc"`, asks gRPC health's `Check` of the service named after the endpoint, prints the status and exits 0 on `SERVING` else 1 |
//! | `--lifecycle-manifest` | prints the Kubernetes pod template derived from this binary and exits 0; its probes are `grpc:` probes (`service: livez\|readyz\|startupz`) under `probe_protocol = "grpc"`, and its pod metadata carries the `prometheus.io/*` annotations unless metrics are off |
//! | `--lifecycle-manifest job` | prints a Kubernetes JobSpec instead (a Job's `spec`, or a CronJob's `jobTemplate.spec`) and exits 0: the same container, without probes, in a pod template with `restartPolicy: Never`; `backoffLimit: 6`; a `podFailurePolicy` from the exit codes: 2 (invalid configuration) fails the Job at once, a pod with the `DisruptionTarget` condition is replaced without counting, any other failure counts against `backoffLimit`. Another value than `job` exits 2 |
//! | `--lifecycle-check-manifest PATH\|-` | reads Kubernetes YAML from PATH (`-`: stdin), one document or many, and checks every container that runs this binary (named like it) against its checks, hooks and the configuration the container's own `env` gives, never the environment it runs in; one line per finding, `error\|warning KIND/NAME container C: …; the binary needs …; fix: …`, then a summary; exits 0 without error, 1 with one at least, 2 when the input cannot be read or no container runs this binary |
//! | `--lifecycle-container NAME` | with `--lifecycle-check-manifest`: checks the container named NAME instead of the one named like the binary; alone it exits 2 |
//!
//! # Cargo features
//!
//! - `tracing-subscriber` (default): the log subscriber `#[service_main]`
//!   installs unless `tracing = false`. Leave it out
//!   (`default-features = false`) when you install your own. It reads
//!   `RUST_LOG` as comma-separated `level`, `target=level` and `target`
//!   directives (`info`, `my_crate=debug,hyper=warn`). A value with a span
//!   or field directive (`my_crate[request]=debug`), or with a directive
//!   it cannot read, is logged once as a warning naming `env-filter`, and
//!   `info` is used.
//! - `env-filter`: `RUST_LOG` in the full syntax of tracing-subscriber's
//!   `EnvFilter` (span and field directives, regular expressions) for that
//!   subscriber; it turns `tracing-subscriber` on. Off by default: it
//!   brings the regex crates, which took longer to compile than the rest
//!   of the subscriber.
//! - `metrics` (default): `GET /metrics` and the `metrics` module; without
//!   it, nothing of prometheus-client is built.
//! - `grpc`: gRPC health on the probe port and for the application's tonic
//!   server (the `grpc` module). It brings tonic's code-generation
//!   support and prost, not tonic's transport; without it, nothing of
//!   tonic is built. `probe_protocol = "grpc"` needs it.
//!
//! # Minimum Rust version
//!
//! The workspace declares `rust-version = "1.88"`: the highest
//! `rust-version` in its locked dependency tree, test tooling included
//! (trybuild, and reqwest's URL parser). The runtime's own dependencies,
//! every feature on, need 1.85 (tokio, hyper-util, tracing-subscriber).

#![warn(missing_docs, unreachable_pub)]
// docs.rs (`--cfg docsrs`, nightly): each item says which cargo feature
// it needs.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod address_file;
mod audit;
mod call;
mod checks;
mod config;
mod exec_probe;
mod exit;
mod flags;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
#[cfg(feature = "grpc")]
#[cfg_attr(docsrs, doc(cfg(feature = "grpc")))]
pub mod grpc;
mod health;
mod hooks;
mod lifecycle;
mod logging;
mod manifest;
#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub mod metrics;
pub mod net;
#[cfg(feature = "metrics")]
mod observed;
mod panics;
mod pid1;
mod probe;
mod registry;
mod service;
mod shutdown;
mod signals;
mod special_file;
mod text;

pub use checks::CheckResult;
pub use health::Health;
pub use lifecycle::Phase;
pub use lifecycle_macros::{
    liveness, on_shutdown, on_startup, preflight, readiness, service_main, startup,
};
pub use registry::CheckKind;
pub use tokio_util::sync::CancellationToken;

use std::future::Future;

use lifecycle::Lifecycle;

// The quick start of the README that crates.io shows, compiled with the
// doc tests so that it keeps to the code.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// Completes when the application must stop serving: after SIGTERM or
/// SIGINT and the drain delay (or once `main` returned, or start-up
/// failed). Made for axum's and hyper's `with_graceful_shutdown`.
///
/// ```no_run
/// use axum::{routing::get, Router};
/// use lifecycle_runtime::{service_main, shutdown_signal};
///
/// #[service_main]
/// async fn main() -> std::io::Result<()> {
///     let app = Router::new().route("/", get(|| async { "hello" }));
///     let listener = lifecycle_runtime::net::TcpListener::bind("0.0.0.0:8080").await?;
///     axum::serve(listener, app)
///         .with_graceful_shutdown(shutdown_signal()) // stop accepting, finish in-flight requests
///         .await
/// }
/// ```
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    Lifecycle::global().serving_ends().clone().cancelled_owned()
}

/// Yields `stream`'s items until [`shutdown_signal`] completes, then
/// ends: a response streamed from it finishes properly instead of being
/// cut by the connection drain. An SSE response
/// sends its last chunk, and the client's `EventSource` reconnects, to an
/// instance still in rotation; a tonic server stream ends with status
/// `OK`.
///
/// ```no_run
/// use std::convert::Infallible;
/// use std::time::Duration;
///
/// use axum::response::sse::{Event, Sse};
/// use futures_util::stream::{self, Stream};
///
/// async fn ticks() -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
///     let ticks = stream::unfold(0u64, |n| async move {
///         tokio::time::sleep(Duration::from_secs(1)).await;
///         Some((Ok(Event::default().data(n.to_string())), n + 1))
///     });
///     Sse::new(lifecycle_runtime::until_shutdown(ticks))
/// }
/// ```
///
/// A WebSocket has no such end of its own: its handler selects on
/// [`shutdown_signal`] and sends a Close frame with code 1001 (Going
/// Away), as `examples/streams` shows.
pub fn until_shutdown<S>(stream: S) -> impl futures_core::Stream<Item = S::Item>
where
    S: futures_core::Stream,
{
    use futures_util::StreamExt;
    stream.take_until(shutdown_signal())
}

/// A token cancelled at the same moment [`shutdown_signal`] completes.
/// Cancelling it yourself affects only its own children.
///
/// ```no_run
/// # async fn work() {}
/// #[lifecycle_runtime::service_main]
/// async fn main() {
///     let stop = lifecycle_runtime::shutdown_token();
///     while !stop.is_cancelled() {
///         tokio::select! {
///             _ = stop.cancelled() => break,
///             _ = work() => {}
///         }
///     }
/// }
/// ```
pub fn shutdown_token() -> CancellationToken {
    Lifecycle::global().serving_ends().child_token()
}

/// Spawns a tracked task on the application runtime: shutdown waits for
/// every tracked task to end before it runs the `on_shutdown` hooks (and
/// the shutdown timeout bounds that wait).
///
/// # Panics
///
/// When called outside a tokio runtime, like [`tokio::spawn`]: call it
/// from the body of `main`, a task, or a check or hook. The panic, and
/// the task's spawn location that tokio records, are the caller's
/// (`#[track_caller]`, as tokio-util's `TaskTracker::spawn`).
///
/// ```no_run
/// #[lifecycle_runtime::service_main]
/// async fn main() {
///     let stop = lifecycle_runtime::shutdown_token();
///     lifecycle_runtime::spawn(async move {
///         stop.cancelled().await;
///         // flush what this worker holds; on_shutdown hooks run after this
///     });
///     lifecycle_runtime::shutdown_signal().await;
/// }
/// ```
#[track_caller]
pub fn spawn<F>(future: F) -> tokio::task::JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    Lifecycle::global().tracker().spawn(future)
}

/// The phase the service is in.
///
/// ```
/// use lifecycle_runtime::Phase;
///
/// // Before (and outside) #[service_main], the service is starting.
/// assert_eq!(lifecycle_runtime::phase(), Phase::Starting);
/// ```
pub fn phase() -> Phase {
    Lifecycle::global().phase()
}

/// Takes the instance out of rotation until the returned guard drops, e.g.
/// while a cache reloads: `/readyz` fails with `out of rotation: REASON`.
/// The instance is back in rotation when the guard drops, however the
/// work that held it ends: returned, cancelled at an `.await`, or
/// unwound by a panic. Several guards may be held at once: the reason
/// then lists them oldest first (`out of rotation: reloading config;
/// rebuilding index`), and the instance is back when the last drops.
/// Taking a guard or dropping one wakes gRPC `Watch` streams, as every
/// change does. It never brings back an instance that is starting or
/// shutting down: those phases fail `/readyz` whatever the guards say.
///
/// Bind the guard to a name (`_out`, not `_`): `let _ = …` drops it at
/// once, which `#[must_use]` does not catch.
///
/// ```no_run
/// # async fn reload_cache() {}
/// # async fn example() {
/// let _out = lifecycle_runtime::out_of_rotation("reloading config");
/// reload_cache().await;
/// // `_out` drops here: back in rotation.
/// # }
/// ```
pub fn out_of_rotation(reason: impl Into<String>) -> OutOfRotation {
    let lifecycle = Lifecycle::global().clone();
    let guard = lifecycle.out_of_rotation(reason.into());
    OutOfRotation { lifecycle, guard }
}

/// Keeps the instance out of rotation until it drops: see
/// [`out_of_rotation`]. (As tokio-util's `DropGuard`, the state is undone
/// by `Drop`, so no path out of the work can leave it set.)
#[must_use = "the instance is back in rotation as soon as the guard drops: bind it, `let _out = ...`"]
pub struct OutOfRotation {
    lifecycle: std::sync::Arc<Lifecycle>,
    guard: u64,
}

impl std::fmt::Debug for OutOfRotation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutOfRotation")
            .field("guard", &self.guard)
            .finish_non_exhaustive()
    }
}

// Held across `.await`s in tasks that move between threads.
const _: fn() = || {
    fn send<T: Send>() {}
    send::<OutOfRotation>();
};

impl Drop for OutOfRotation {
    fn drop(&mut self) {
        self.lifecycle.back_in_rotation(self.guard);
    }
}

/// Fails `/livez` from now on with `reason`, so the kubelet restarts the
/// container: the way to give up without `process::exit` skipping
/// cleanup. The first reason given is kept.
///
/// ```no_run
/// # struct Pool;
/// # impl Pool { fn is_poisoned(&self) -> bool { false } }
/// # let pool = Pool;
/// if pool.is_poisoned() {
///     lifecycle_runtime::mark_broken("database pool poisoned: restart me");
/// }
/// ```
pub fn mark_broken(reason: impl Into<String>) {
    let reason = reason.into();
    tracing::error!(%reason, "marked broken: /livez fails from now on");
    Lifecycle::global().mark_broken(reason);
}

/// Runs every check of `kind` registered in this binary once, each bounded
/// by its timeout, on the current tokio runtime, and returns their results
/// by name: a unit test of a crate that defines checks can see what they
/// say without starting the service. A background check (`interval_ms`)
/// runs once here too; a time-out or a panic is that check's `down`.
///
/// A plain `fn` check that never returns is reported `timed out`, but it
/// keeps its blocking-pool thread, and a runtime waits for that thread
/// when it is dropped (as `#[tokio::test]` does at the end of the test):
/// test such a check on a runtime you shut down with
/// `Runtime::shutdown_background`.
///
/// # Panics
///
/// When called outside a tokio runtime.
///
/// ```
/// use lifecycle_runtime::{readiness, run_checks, CheckKind, Health};
///
/// #[readiness(name = "disk")]
/// fn disk_has_room() -> Health {
///     Health::down("97% full").with_detail("free_mb", 120)
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let results = run_checks(CheckKind::Readiness).await;
/// let disk = results.iter().find(|r| r.name() == "disk").unwrap();
/// assert_eq!(disk.health().reason(), Some("97% full"));
/// # }
/// ```
pub async fn run_checks(kind: CheckKind) -> Vec<CheckResult> {
    let app = tokio::runtime::Handle::current();
    let checks: Vec<_> = registry::checks(kind)
        .into_iter()
        .map(checks::Check::new)
        .collect();
    futures_util::future::join_all(checks.iter().map(|check| check.run(&app))).await
}

/// What generated code calls; not a public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::config::{
        Flavor, PanicPolicy, ProbeProtocol, ReasonsPolicy, ServiceConfig, StopSignal,
    };
    pub use crate::health::{
        HealthFromReturn, HealthWithBoxedCauses, HealthWithCauses, HookOutcome,
        HookOutcomeFromReturn, HookOutcomeWithBoxedCauses, HookOutcomeWithCauses, IntoHealth,
        IntoHookOutcome, MainOutcome, Returned,
    };
    pub use crate::probe::endpoint::BUILTIN_CHECK_NAMES;
    pub use crate::registry::{
        BoxFuture, Call, CheckKind, CheckRegistration, HookKind, HookRegistration, Site,
    };
    pub use crate::require_default_subscriber;
    pub use crate::require_grpc_feature;
    pub use crate::service::run_service;
    pub use inventory;
}
