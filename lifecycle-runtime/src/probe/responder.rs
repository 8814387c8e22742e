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

use crate::config::ReasonsPolicy;
use crate::probe::evaluate::Evaluator;
use crate::probe::http::RequestProtocol;
use crate::probe::http::{self, Answer};
use crate::registry::BoxFuture;

/// Answers probe requests from one evaluator.
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
        protocol: RequestProtocol,
    ) -> BoxFuture<Answer> {
        #[cfg(feature = "grpc")]
        if protocol == RequestProtocol::Grpc {
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
        // Without the `grpc` feature, every request is an HTTP probe.
        #[cfg(not(feature = "grpc"))]
        let RequestProtocol::Http = protocol;
        let evaluator = self.evaluator.clone();
        let reasons = self.reasons;
        #[cfg(feature = "metrics")]
        let metrics = self.metrics;
        async move {
            http::route(
                &evaluator,
                reasons,
                #[cfg(feature = "metrics")]
                metrics,
                request,
            )
            .await
        }
        .boxed()
    }
}
