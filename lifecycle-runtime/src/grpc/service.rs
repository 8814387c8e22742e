//! `grpc.health.v1.Health` over the probe evaluator: `Check`, `List` and
//! `Watch`.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;

use futures_util::future::join_all;
use futures_util::Stream;
use hyper::header::CONTENT_TYPE;
use hyper::{Request, Version};
use once_cell::sync::OnceCell;
use tokio_util::sync::CancellationToken;
use tonic::{Response, Status};

use crate::grpc::names::{self, response, status};
use crate::grpc::proto::health_check_response::ServingStatus;
use crate::grpc::proto::health_server::{Health, HealthServer};
use crate::grpc::proto::{
    HealthCheckRequest, HealthCheckResponse, HealthListRequest, HealthListResponse,
};
use crate::grpc::watch::Watches;
use crate::probe::evaluate::Evaluator;

/// The evaluator of the service `#[service_main]` runs, for
/// [`health_service`].
static INSTALLED: OnceCell<Arc<Evaluator>> = OnceCell::new();

/// Makes `evaluator` the one [`health_service`] answers from.
pub(crate) fn install(evaluator: Arc<Evaluator>) {
    let _ = INSTALLED.set(evaluator);
}

/// `grpc.health.v1.Health` answered from lifecycle's checks and phase, for
/// the application's own tonic server: add it with
/// `tonic::transport::Server::builder().add_service(health_service()?)`.
///
/// It is built inside a `#[service_main]`: in the body of `main`, a hook,
/// a check or a task. Anywhere else no lifecycle runs the service, and it
/// fails with [`NotRunning`], as tokio's `Handle::try_current()` does
/// outside a runtime, rather than answer `UNAVAILABLE` to every call. Its
/// `Watch` streams end when [`shutdown_signal`](crate::shutdown_signal)
/// completes, so that tonic's graceful stop does not wait on them.
pub fn health_service() -> Result<HealthServer<HealthService>, NotRunning> {
    let evaluator = INSTALLED.get().ok_or(NotRunning(()))?.clone();
    let streams_end = evaluator.lifecycle().shutdown_token().clone();
    Ok(server(HealthService {
        evaluator,
        streams_end,
        serves: "application",
        watches: Arc::new(Watches::default()),
    }))
}

/// The error of [`health_service`] outside a `#[service_main]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotRunning(());

impl fmt::Display for NotRunning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "lifecycle is not running this service: health_service() is built inside a \
             #[service_main] (its body, a hook, a check or a task)",
        )
    }
}

impl std::error::Error for NotRunning {}

fn server(service: HealthService) -> HealthServer<HealthService> {
    HealthServer::new(service).max_decoding_message_size(MAX_REQUEST_BYTES)
}

/// A health request is a service name: anything larger is not one, and is
/// refused before it is buffered.
const MAX_REQUEST_BYTES: usize = 4 * 1024;

/// The same service on the probe port, its `Watch` streams ending when
/// `streams_end` is cancelled (the probe server stops).
pub(crate) fn probe_port_service(
    evaluator: Arc<Evaluator>,
    streams_end: CancellationToken,
) -> HealthServer<HealthService> {
    server(HealthService {
        evaluator,
        streams_end,
        serves: "probe port",
        watches: Arc::new(Watches::default()),
    })
}

/// Whether the probe server hands `request` to gRPC: HTTP/2 with a gRPC
/// content type. Everything else is an HTTP probe, over either version.
pub(crate) fn is_grpc<B>(request: &Request<B>) -> bool {
    // `application/grpc`, `application/grpc+proto` and the like; not
    // grpc-web, whose framing tonic does not speak without a layer.
    let grpc = |v: &[u8]| match v.strip_prefix(b"application/grpc") {
        Some(rest) => rest.is_empty() || rest.starts_with(b"+") || rest.starts_with(b";"),
        None => false,
    };
    request.version() == Version::HTTP_2
        && request
            .headers()
            .get(CONTENT_TYPE)
            .is_some_and(|v| grpc(v.as_bytes()))
}

/// The implementation of `grpc.health.v1.Health` behind
/// [`health_service`]: answers from lifecycle's checks and phase.
pub struct HealthService {
    evaluator: Arc<Evaluator>,
    /// Ends the `Watch` streams: the probe server's stop on the probe
    /// port, `shutdown_signal()` on the application's.
    streams_end: CancellationToken,
    /// Which port it serves, for `Debug`.
    serves: &'static str,
    /// One poll per watched name, shared by its watchers.
    watches: Arc<Watches>,
}

impl fmt::Debug for HealthService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HealthService")
            .field("serves", &self.serves)
            .finish_non_exhaustive()
    }
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<HealthCheckResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Health for HealthService {
    async fn check(
        &self,
        request: tonic::Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        let evaluator = &self.evaluator;
        let name = &request.get_ref().service;
        let status = status(evaluator, name).await;
        #[cfg(feature = "metrics")]
        crate::metrics::probe_answered(
            "grpc",
            names::endpoint_label(evaluator, name),
            std::borrow::Cow::Borrowed(status.map_or("NOT_FOUND", |s| s.as_str_name())),
        );
        match status {
            Some(status) => Ok(Response::new(response(status))),
            None => Err(Status::not_found(format!(
                "unknown service {name:?}: ask for \"\", livez, readyz, startupz or \
                 livez/NAME, readyz/NAME, startupz/NAME"
            ))),
        }
    }

    async fn list(
        &self,
        _request: tonic::Request<HealthListRequest>,
    ) -> Result<Response<HealthListResponse>, Status> {
        let evaluator = &self.evaluator;
        // One run per check: concurrent evaluations share it.
        let statuses = join_all(names::all(evaluator).into_iter().map(|name| async move {
            let status = status(evaluator, &name)
                .await
                .unwrap_or(ServingStatus::ServiceUnknown);
            (name, response(status))
        }))
        .await;
        Ok(Response::new(HealthListResponse {
            statuses: statuses.into_iter().collect(),
        }))
    }

    type WatchStream = WatchStream;

    async fn watch(
        &self,
        request: tonic::Request<HealthCheckRequest>,
    ) -> Result<Response<WatchStream>, Status> {
        let (evaluator, streams_end) = (&self.evaluator, self.streams_end.clone());
        let name = request.into_inner().service;
        let stream = self.watches.watch(evaluator.clone(), name, streams_end);
        Ok(Response::new(Box::pin(stream)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outside_a_service_main_health_service_is_an_error_that_says_where() {
        // No unit test installs an evaluator: this process runs no service.
        let error = health_service().unwrap_err();
        assert_eq!(error, NotRunning(()));
        assert!(
            error.to_string().contains("inside a #[service_main]"),
            "{error}"
        );
    }
}
