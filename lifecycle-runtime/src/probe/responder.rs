//! What the probe server answers each request with: an HTTP probe, or with
//! the `grpc` feature a gRPC health call (HTTP/2 with a gRPC content type).
//! One value for the server and the fuzz harness, so that both answer
//! alike.

use std::sync::Arc;

use futures_util::FutureExt;
use hyper::body::Incoming;
use hyper::Request;
#[cfg(feature = "grpc")]
use tokio_util::sync::CancellationToken;

use crate::config::{ProbeProtocol, ReasonsPolicy};
#[cfg(feature = "metrics")]
use crate::probe::endpoint::METRICS_PATH;
use crate::probe::evaluate::Evaluator;
use crate::probe::http::{self, Answer};
use crate::registry::BoxFuture;

/// Answers probe requests from one evaluator.
#[derive(Clone)]
pub(crate) struct Responder {
    evaluator: Arc<Evaluator>,
    reasons: ReasonsPolicy,
    /// `GET /metrics` is served.
    #[cfg(feature = "metrics")]
    metrics: bool,
    #[cfg(feature = "grpc")]
    grpc: crate::grpc::HealthServer<crate::grpc::HealthService>,
}

impl Responder {
    /// Answers from `evaluator`, its reasons for whom `reasons` allows; with
    /// the `grpc` feature, gRPC `Watch` streams end once `streams_end` is
    /// cancelled; with the `metrics` feature, `/metrics` is served if
    /// `metrics` says so.
    pub(crate) fn new(
        evaluator: Arc<Evaluator>,
        reasons: ReasonsPolicy,
        #[cfg(feature = "grpc")] streams_end: CancellationToken,
        #[cfg(feature = "metrics")] metrics: bool,
    ) -> Responder {
        Responder {
            #[cfg(feature = "metrics")]
            metrics,
            #[cfg(feature = "grpc")]
            grpc: crate::grpc::probe_port_service(evaluator.clone(), streams_end),
            evaluator,
            reasons,
        }
    }

    /// The answer to `request`, which speaks `protocol`.
    pub(crate) fn answer(
        &self,
        request: Request<Incoming>,
        protocol: ProbeProtocol,
    ) -> BoxFuture<Answer> {
        #[cfg(feature = "grpc")]
        if protocol == ProbeProtocol::Grpc {
            use tonic::codegen::Service;
            // Always ready, and infallible: errors are gRPC statuses.
            let mut grpc = self.grpc.clone();
            return async move {
                match grpc.call(request).await {
                    Ok(answer) => answer,
                    Err(never) => match never {},
                }
            }
            .boxed();
        }
        // Without the `grpc` feature, the server tells every request HTTP.
        #[cfg(not(feature = "grpc"))]
        debug_assert_eq!(protocol, ProbeProtocol::Http);
        let this = self.clone();
        async move {
            #[cfg(feature = "metrics")]
            if request.uri().path() == METRICS_PATH && this.metrics {
                let answer = http::metrics(&request).await;
                crate::metrics::probe_answered(
                    "http",
                    "metrics".into(),
                    crate::metrics::http_code(answer.status()),
                );
                return answer;
            }
            #[cfg(feature = "metrics")]
            let endpoint = http::endpoint_label(&this.evaluator, request.uri().path());
            let answer = http::answer(&this.evaluator, this.reasons, request).await;
            #[cfg(feature = "metrics")]
            crate::metrics::probe_answered(
                "http",
                endpoint,
                crate::metrics::http_code(answer.status()),
            );
            answer
        }
        .boxed()
    }
}
