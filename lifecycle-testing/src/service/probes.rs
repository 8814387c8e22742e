//! Probing the service from outside as the kubelet does: once, until a
//! verdict, or asserting one.

use std::time::{Duration, Instant};

use super::process::{Service, POLL};
use crate::error::{Error, ErrorKind};
use crate::probe::{http_probe, Endpoint, ProbeAnswer, VerboseAnswer, DEFAULT_TIMEOUT};

impl Service {
    /// Probes `endpoint` once, as the kubelet does, with its default 1 s
    /// timeout.
    pub fn probe(&self, endpoint: Endpoint) -> ProbeAnswer {
        self.probe_path(endpoint.path(), DEFAULT_TIMEOUT)
    }

    /// Probes any path (`/readyz/db`, `/livez?exclude=x`), within `timeout`.
    pub fn probe_path(&self, path: &str, timeout: Duration) -> ProbeAnswer {
        http_probe(self.probe_addr(), path, timeout)
    }

    /// Probes gRPC health service `service` (`livez`, `readyz/db`, `""`)
    /// once on the probe port, as the kubelet's gRPC prober does, with its
    /// default 1 s timeout.
    #[cfg(feature = "grpc")]
    #[cfg_attr(docsrs, doc(cfg(feature = "grpc")))]
    pub fn grpc_probe(&self, service: &str) -> crate::grpc::GrpcAnswer {
        crate::grpc::grpc_probe(self.probe_addr(), service, DEFAULT_TIMEOUT)
    }

    /// Opens a gRPC `Watch` of health service `service` on the probe port,
    /// connecting within 5 s.
    #[cfg(feature = "grpc")]
    #[cfg_attr(docsrs, doc(cfg(feature = "grpc")))]
    pub fn grpc_watch(&self, service: &str) -> Result<crate::grpc::GrpcWatch, Error> {
        crate::grpc::GrpcWatch::open(self.probe_addr(), service, Duration::from_secs(5))
            .map_err(|e| self.error(e.kind(), e.message().to_owned()))
    }

    /// Probes `endpoint` with `?verbose` and reads its per-check lines.
    pub fn verbose(&self, endpoint: Endpoint) -> VerboseAnswer {
        self.probe_path(&format!("{}?verbose", endpoint.path()), DEFAULT_TIMEOUT)
            .verbose()
    }

    /// Why `endpoint` did not do what was expected: the expectation and
    /// the endpoint's verbose answer now.
    fn explain(&self, endpoint: Endpoint, expectation: &str) -> String {
        let verbose = self.probe_path(&format!("{}?verbose", endpoint.path()), DEFAULT_TIMEOUT);
        format!("{endpoint} {expectation}\nits verbose answer: {verbose}")
    }

    /// Panics, with the verbose answer and the last log lines, unless
    /// `endpoint` passes now.
    #[track_caller]
    pub fn assert_passing(&self, endpoint: Endpoint) -> ProbeAnswer {
        let answer = self.probe(endpoint);
        if !answer.passed() {
            let why = self.explain(endpoint, "should pass but failed");
            panic!("{}", self.error(ErrorKind::UnexpectedAnswer, why));
        }
        answer
    }

    /// Panics, with the verbose answer and the last log lines, unless
    /// `endpoint` fails now with an answer of the service's: a failing
    /// status, a redirect the probe could not follow to its end (the tenth,
    /// or to an unusable `Location`), or a time-out. A refused or reset
    /// connection does not pass:
    /// nothing listens, and "not ready" from a service that is not running
    /// proves nothing. When no answer is what you expect (a stopped
    /// service), say so with
    /// [`assert_failing_or_unreachable`](Self::assert_failing_or_unreachable).
    #[track_caller]
    pub fn assert_failing(&self, endpoint: Endpoint) -> ProbeAnswer {
        let answer = self.assert_failing_or_unreachable(endpoint);
        if !answer.answered {
            let why = format!(
                "{endpoint} should fail with the service's answer, but {answer}\n(nothing \
                 answered: use assert_failing_or_unreachable if the service is meant to be gone)"
            );
            panic!("{}", self.error(ErrorKind::UnexpectedAnswer, why));
        }
        answer
    }

    /// Panics, with the verbose answer and the last log lines, if
    /// `endpoint` passes now: a refused or reset connection counts as
    /// failing, as it does for the kubelet. For a service meant to be gone
    /// or going; otherwise [`assert_failing`](Self::assert_failing).
    #[track_caller]
    pub fn assert_failing_or_unreachable(&self, endpoint: Endpoint) -> ProbeAnswer {
        let answer = self.probe(endpoint);
        if answer.passed() {
            let why = self.explain(endpoint, "should fail but passed");
            panic!("{}", self.error(ErrorKind::UnexpectedAnswer, why));
        }
        answer
    }

    /// Probes `endpoint` as the kubelet does until it passes, up to
    /// `deadline`, and returns the passing answer: for a state the service
    /// reaches on its own (ready once a dependency is back). The error is
    /// [`ErrorKind::TimedOut`] with the endpoint's verbose answer, or
    /// [`ErrorKind::Exited`] at once if the process exits meanwhile, both
    /// with the last log lines.
    pub fn wait_passing(
        &self,
        endpoint: Endpoint,
        deadline: Duration,
    ) -> Result<ProbeAnswer, Error> {
        self.wait_verdict(endpoint, true, deadline)
    }

    /// Probes `endpoint` until it fails with an answer of the service's
    /// (as [`assert_failing`](Self::assert_failing) judges it), up to
    /// `deadline`, and returns the failing answer (not ready once a
    /// dependency is down); errors as [`wait_passing`](Self::wait_passing)
    /// does.
    pub fn wait_failing(
        &self,
        endpoint: Endpoint,
        deadline: Duration,
    ) -> Result<ProbeAnswer, Error> {
        self.wait_verdict(endpoint, false, deadline)
    }

    fn wait_verdict(
        &self,
        endpoint: Endpoint,
        passing: bool,
        deadline: Duration,
    ) -> Result<ProbeAnswer, Error> {
        let until = Instant::now() + deadline;
        loop {
            let answer = self.probe(endpoint);
            if answer.passed() == passing && (passing || answer.answered) {
                return Ok(answer);
            }
            let state = if passing { "pass" } else { "fail" };
            if let Some(exit) = self.try_exit() {
                return Err(self.exited_while(exit, &format!("waiting for {endpoint} to {state}")));
            }
            if Instant::now() > until {
                let why = self.explain(
                    endpoint,
                    &format!("did not {state} within {} ms", deadline.as_millis()),
                );
                return Err(self.error(ErrorKind::TimedOut, why));
            }
            std::thread::sleep(POLL);
        }
    }

    /// Waits until `/startupz` passes, as the kubelet's startup probe does:
    /// [`wait_passing`](Self::wait_passing)`(Endpoint::Startupz, deadline)`.
    pub fn wait_started(&self, deadline: Duration) -> Result<(), Error> {
        self.wait_passing(Endpoint::Startupz, deadline).map(drop)
    }
}
