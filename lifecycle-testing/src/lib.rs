//! Test a lifecycle service the way the kubelet sees it, in `cargo test`:
//! start your binary, probe it as the kubelet's HTTP prober does, stop it
//! with SIGTERM and a grace period, and check what the kubelet would have
//! seen.
//!
//! Add it as a dev-dependency and write an end-to-end test in your
//! service's crate (`tests/lifecycle.rs`), where cargo sets
//! `CARGO_BIN_EXE_<name>` to your binary:
//!
//! ```no_run
//! use std::time::Duration;
//!
//! use lifecycle_testing::{Endpoint, Service};
//!
//! # fn main() -> Result<(), lifecycle_testing::Error> {
//! # let binary = "my-service";
//! // let binary = env!("CARGO_BIN_EXE_my-service");
//! let mut service = Service::builder(binary)
//!     .env("DATABASE_URL", "postgres://127.0.0.1:1/nowhere") // a dependency that is down
//!     .start()?; // probe port 0; waits for /startupz
//!
//! // Out of rotation, never restarted.
//! service.assert_failing(Endpoint::Readyz);
//! service.assert_passing(Endpoint::Livez);
//! let readyz = service.verbose(Endpoint::Readyz);
//! assert!(readyz.check("database").unwrap().reason.as_deref().unwrap().contains("refused"));
//!
//! // A graceful stop inside the grace period, exit code 0.
//! let stopped = service.stop(Duration::from_secs(30));
//! assert_eq!(stopped.exit.code, Some(0));
//! assert!(!stopped.killed);
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs, unreachable_pub)]

mod kubelet;
mod load;
mod probe;
mod service;

pub use kubelet::{
    EventKind, Kubelet, KubeletEvent, KubeletReport, Manifest, ProbeKind, ProbeSpec, Probed, Watch,
};
pub use load::{http_get, ErrorKind, Failure, Load, LoadReport, RequestError, SignalOffset};
pub use probe::{
    probe, CheckLine, Endpoint, ProbeAnswer, Verbose, DEFAULT_TIMEOUT, MAX_BODY, USER_AGENT,
};
pub use service::{Error, Exit, Service, ServiceBuilder, Stop, Stopped};

/// In-process checks: run the checks a crate registers from its own unit
/// tests, without starting a service.
pub use lifecycle_runtime::{run_checks, CheckKind, CheckResult};
