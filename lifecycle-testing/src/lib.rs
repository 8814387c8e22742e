//! Test a lifecycle service the way the kubelet sees it, in `cargo test`:
//! start your binary, probe it as the kubelet's HTTP prober does, run the
//! kubelet's probe loops from the service's own manifest, and prove that a
//! graceful stop under load loses nothing.
//!
//! Add it as a dev-dependency and write an end-to-end test in your
//! service's crate (`tests/lifecycle.rs`), where cargo sets
//! `CARGO_BIN_EXE_<name>` to your binary:
//!
//! ```no_run
//! use std::time::Duration;
//!
//! use lifecycle_testing::{Endpoint, Kubelet, Manifest, Service};
//! # #[cfg(unix)]
//! use lifecycle_testing::{http_get, Error, Load, Stop};
//!
//! # fn main() -> Result<(), lifecycle_testing::Error> {
//! # let binary = "my-service";
//! // let binary = env!("CARGO_BIN_EXE_my-service");
//! let builder = Service::builder(binary)
//!     .env("APP_ADDR", "127.0.0.1:0")
//!     // Keep serving while load balancers take the pod out (the default on Kubernetes is 5000).
//!     .env("LIFECYCLE_DRAIN_DELAY_MS", "500")
//!     .env("DATABASE_URL", "postgres://127.0.0.1:1/down"); // a dependency that is down
//! // The probes of `my-service --lifecycle-manifest`, their periods ten times faster.
//! let kubelet = Kubelet::new(Manifest::from_builder(&builder)?).time_scale(0.1);
//! let mut service = builder.start()?; // probe port 0; waits for /startupz
//!
//! // In this fault: out of rotation, never restarted.
//! service.assert_failing(Endpoint::Readyz);
//! let readyz = service.verbose(Endpoint::Readyz);
//! assert!(!readyz.check("database").unwrap().passed);
//! let report = kubelet.watch(&service, Duration::from_secs(3)); // probes for 3 s
//! report.assert_never_restarted();
//! report.assert_never_joined_endpoints();
//!
//! // A graceful stop under load loses no request and exits 0 (Unix: the
//! // stop is SIGTERM).
//! # #[cfg(unix)]
//! # {
//! // Bound through lifecycle_runtime::net::TcpListener, on port 0.
//! let app = service.app_addr()?;
//! // One request of the load: Ok for an answer the test accepts.
//! let load = Load::new(move || match http_get(app, "/", Duration::from_secs(2))? {
//!     (200, _) => Ok(()),
//!     (status, _) => Err(Error::unexpected_status(status)),
//! })
//! // 4 clients back to back after a 200 ms warm-up (the defaults); a load
//! // balancer still routes to the pod 250 ms after the signal, well within
//! // the drain delay: every request sent until then must be answered.
//! .routed_for(Duration::from_millis(250));
//! // SIGTERM, then SIGKILL if the service still runs 30 s later.
//! let (report, stopped) = load.across_stop(&mut service, Stop::grace(Duration::from_secs(30)));
//! report.assert_nothing_lost();
//! assert_eq!(stopped.exit.code, Some(0));
//! assert!(stopped.unready_after.is_some() && !stopped.killed);
//! # }
//! # Ok(())
//! # }
//! ```
//!
//! # What is where
//!
//! Each module holds what a test reaches for at one step; the names of the
//! example above are at the root too.
//!
//! - [`service`]: start and stop the binary. [`Service::builder`] sets its
//!   arguments and variables and [`ServiceBuilder::start`] starts it on
//!   probe port 0 (it learns the bound address from
//!   `LIFECYCLE_PROBE_ADDR_FILE`, so logs may be JSON or off) with a
//!   temporary termination log, and waits for `/startupz`. Then wait for
//!   what the service does on its own: [`Service::wait_passing`] and
//!   [`Service::wait_failing`] probe an endpoint until it passes or fails
//!   (failing is the service's own answer: a refused connection is not
//!   one; [`Service::assert_failing_or_unreachable`] accepts it),
//!   [`Service::wait_for_log`] waits for a log line. `Service::stop` takes
//!   a `Stop` (`Stop::grace(Duration::from_secs(30))`: SIGTERM, then
//!   SIGKILL 30 s later) and returns a `StopReport`: the exit, its timing,
//!   when `/readyz` failed, the termination message and the log (Unix
//!   only, as is the `load` module: see Platforms below).
//!   [`Service::kill`] kills at once.
//! - [`probe`]: probe as the kubelet does ([`Service::probe`], any address
//!   with [`probe::http_probe`]): a new connection, `User-Agent:
//!   kube-probe/…`, success on 200–399, at most 10 KiB read, redirects
//!   followed on the same host (the tenth fails; another host passes with
//!   a warning), a time-out.
//!   [`Service::verbose`] reads a `?verbose` answer check by check. A
//!   failed assertion ([`Service::assert_passing`]) prints the endpoint's
//!   verbose answer and the last log lines.
//! - [`kubelet`]: a [`Kubelet`] runs the startup, liveness and readiness
//!   probe loops on the [`Manifest`]'s schedule (the binary's own, or the
//!   one you deploy: [`Manifest::from_file`]) and reports restarts with
//!   their back-off, endpoint changes and the startup budget:
//!   [`Kubelet::watch`] for a while, or [`Kubelet::start`] in the
//!   background while the test acts on the service, then waits until the
//!   kubelet reacts. [`Kubelet::run`] runs the process itself: it kills it
//!   as the kubelet does (`preStop`, the stop signal, the grace period,
//!   SIGKILL) and starts it again after the back-off;
//!   [`kubelet::KubeletSession::delete_pod`] terminates the pod.
//! - `load` (Unix): a `Load` keeps requests flowing across a stop and
//!   counts what was lost.
//! - [`http`]: requests to the application: [`http_get`], or an
//!   [`HttpRequest`] with any method, headers and a body.
//! - `grpc` (cargo feature `grpc`): gRPC health probes and `Watch`
//!   streams; the kubelet runs a manifest's `grpc:` probes.
//! - [`checks`]: run a crate's checks in process, without a service.
//! - [`Error`] is the kit's one error type, classified by an
//!   [`ErrorKind`]: a service that did not start or exited while waited
//!   on, a deadline that passed, a manifest the kit cannot follow, or a
//!   request that got no good answer (refused, reset, timed out,
//!   unexpected), which is how a load counts it.
//!
//! # Checks in process
//!
//! [`run_checks`] runs the checks registered in the test binary, without a
//! service: from a unit test of the crate that defines them, or from an
//! integration test when they live in a library crate it links (`use
//! my_checks as _;`). A binary's own checks are not linked into its
//! `tests/` (cargo links the library, not `main.rs`), so keep checks in
//! `src/lib.rs` to test them this way:
//!
//! ```
//! use lifecycle_testing::{run_checks, CheckKind};
//!
//! #[lifecycle_runtime::liveness]
//! fn worker_alive() -> bool {
//!     true
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let results = run_checks(CheckKind::Liveness).await;
//! assert!(results.iter().any(|r| r.name() == "worker_alive" && r.health().is_up()));
//! # }
//! ```
//!
//! # Platforms
//!
//! On Linux and macOS, everything. On Windows: starting a service, its
//! probes (HTTP and gRPC), the [`Kubelet`]'s probe loops, [`run_checks`],
//! the [`http`] client, and [`Service::kill`]; not the graceful stop
//! (`Stop`, `StopReport`, `Service::stop`, `Service::signal`) nor what
//! builds on it (the `load` module), nor [`service::Exit`]'s `signal`: the
//! kit stops a service with a signal, Windows has none, and std cannot send
//! a process the console event lifecycle stops on there.

#![warn(missing_docs, unreachable_pub)]
// docs.rs (`--cfg docsrs`, nightly): each item says which cargo feature
// or system it needs.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod error;
#[cfg(feature = "grpc")]
pub mod grpc;
pub mod http;
pub mod kubelet;
// Across a stop, which is a signal: Unix only.
#[cfg(unix)]
pub mod load;
pub mod probe;
pub mod service;
mod sync;
mod wire;

pub use error::{Error, ErrorKind};
pub use http::{http_get, HttpRequest};
pub use kubelet::{Kubelet, Manifest};
#[cfg(unix)]
pub use load::Load;
pub use probe::Endpoint;
#[cfg(unix)]
pub use service::Stop;
pub use service::{Service, ServiceBuilder};

pub use checks::{run_checks, CheckKind};

/// In-process checks: run the checks a crate registers, from its own unit
/// tests or an integration test of a library crate, without starting a
/// service (see the crate documentation).
pub mod checks {
    pub use lifecycle_runtime::{run_checks, CheckKind, CheckResult};
}
